"""The console's world (users, channels) and its commands: each builds the payload Slack would send."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storage import queries

if TYPE_CHECKING:
    from bot.console import Console

OUR_TEAM, CUSTOMER_TEAM = "T0OURTEAM", "T0CUSTOMER"
USERS = {  # name -> (id, team, real name)
    "alice": ("U0STAFF", OUR_TEAM, "Alice (CSM)"),
    "bob": ("U0STAFF2", OUR_TEAM, "Bob (PM)"),
    "carol": ("U0CUST", CUSTOMER_TEAM, "Carol at Acme"),
    "dave": ("U0CUST2", CUSTOMER_TEAM, "Dave at Acme"),
}
CHANNELS = {
    "acme-shared": ("C0SHARED", True),
    "feedback-triage": ("C0TRIAGE", False),
    "general": ("C0INTERNAL", False),
}
HELP = """commands:
  say USER #CHANNEL TEXT        a user posts a message (users: alice, bob = staff; carol, dave = Acme)
  reply USER #CHANNEL TEXT      a thread reply to the last top-level message in the channel
  edit #CHANNEL TEXT            the author edits the last message
  delete #CHANNEL               the author deletes the last message
  react USER :EMOJI: #CHANNEL   react to the last message (try :feedback:, :bug:, :bulb:)
  shortcut USER #CHANNEL        "Log as feedback" on the last message (opens a modal)
  /feedback USER                the slash command (opens a modal); `global USER` for the global shortcut
  submit FIELD=VALUE ...        submit the open modal (fields are shown with the modal)
  click USER ACTION #ID [VALUE]  press a control on item #ID's triage card; ACTION is one of type, theme,
                                impact, owner, route_linear, link_linear, roadmap, quick_win, wont_do,
                                duplicate, not_feedback, undo (VALUE for the selects: e.g. Bug, Billing, High, bob)
  homeclick USER ACTION #ID [VALUE]  the same from USER's App Home (also: promote)
  home USER                     open the App Home tab
  linear                        list the issues in the (fake) Linear workspace
  feedback | outbox             show stored feedback rows / outbox items
  help | quit"""


def _user(name: str) -> tuple[str, str, str]:
    if name not in USERS:
        raise ValueError(f"unknown user {name!r}; try one of {', '.join(USERS)}")
    return USERS[name]


def _channel(name: str) -> tuple[str, bool]:
    key = name.lstrip("#")
    if key not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}; try one of #{', #'.join(CHANNELS)}")
    return CHANNELS[key]


def _say(c: Console, rest: str, *, thread: bool = False) -> None:
    user, channel, text = rest.split(" ", 2)
    uid, team, real = _user(user)
    cid, shared = _channel(channel)
    parent = c.last_message(channel)["ts"] if thread else None
    msg = c.fake.post_as_user(cid, uid, text, thread_ts=parent)
    event = {
        **msg,
        "channel": cid,
        "event_ts": msg["ts"],
        "channel_type": "channel",
        "user_profile": {"real_name": real, "display_name": user, "name": user, "team": team},
    }
    c.send_event(event, shared=shared)


def _edit(c: Console, rest: str) -> None:
    channel, text = rest.split(" ", 1)
    cid, shared = _channel(channel)
    msg = c.last_message(channel)
    new = {**msg, "text": text, "edited": {"user": msg["user"], "ts": str(time.time())}}
    c.send_event(
        {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": cid,
            "message": new,
            "previous_message": msg,
            "ts": str(time.time()),
            "event_ts": str(time.time()),
        },
        shared=shared,
    )


def _delete(c: Console, rest: str) -> None:
    cid, shared = _channel(rest.strip())
    msg = c.last_message(rest.strip())
    c.send_event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": cid,
            "deleted_ts": msg["ts"],
            "previous_message": msg,
            "ts": str(time.time()),
            "event_ts": str(time.time()),
        },
        shared=shared,
    )


def _react(c: Console, rest: str) -> None:
    user, emoji, channel = rest.split()
    uid, _, _ = _user(user)
    cid, _ = _channel(channel)
    msg = c.last_message(channel)
    c.fake.react_as_user(cid, msg["ts"], uid, emoji.strip(":"))
    c.send_event(
        {
            "type": "reaction_added",
            "user": uid,
            "reaction": emoji.strip(":"),
            "item_user": msg["user"],
            "item": {"type": "message", "channel": cid, "ts": msg["ts"]},
            "event_ts": str(time.time()),
        }
    )


def _interaction(c: Console, kind: str, user: str, **fields: Any) -> dict[str, Any]:
    """The fields every interactivity payload from `user` carries (trimmed from Slack's documented shapes)."""
    uid, team, _ = _user(user)
    c.last_user = uid
    return {
        "type": kind,
        "token": "unused",
        "action_ts": str(time.time()),
        "trigger_id": c._trigger(),
        "team": {"id": OUR_TEAM, "domain": "ourco"},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": "A0FEEDBACK",
        "user": {"id": uid, "username": user, "name": user, "team_id": team},
        **fields,
    }


def _shortcut(c: Console, rest: str) -> None:
    user, channel = rest.split()
    cid, _ = _channel(channel)
    msg = c.last_message(channel)
    c.send_interaction(
        _interaction(
            c,
            "message_action",
            user,
            callback_id="log_feedback",
            channel={"id": cid, "name": channel.lstrip("#")},
            response_url="https://hooks.slack.com/app/T0OURTEAM/1/x",
            message={k: msg[k] for k in ("type", "user", "ts", "text", "team", "user_team") if k in msg},
        )
    )


def _command(c: Console, rest: str) -> None:
    user = rest.split()[0] if rest.split() else "alice"
    c.last_user = _user(user)[0]
    c.send_command(user, "/feedback", "")


def _global(c: Console, rest: str) -> None:
    c.send_interaction(_interaction(c, "shortcut", rest.strip() or "alice", callback_id="feedback_global"))


def _element_state(element: dict[str, Any], value: str) -> dict[str, Any]:
    """What Slack puts in view.state.values for one input element."""
    kind = element.get("type")
    if kind == "static_select":
        for opt in element.get("options", []):
            if value in (opt["value"], opt["text"]["text"]):
                return {"type": kind, "selected_option": opt}
        raise ValueError(
            f"{value!r} is not an option; choose from {', '.join(o['value'] for o in element.get('options', []))}"
        )
    if kind == "users_select":
        return {"type": kind, "selected_user": USERS[value][0] if value in USERS else value}
    return {"type": kind, "value": value}


def _submit(c: Console, rest: str) -> None:
    view = c.last_view
    if view is None or view.get("type") != "modal" or "submit" not in view:
        raise ValueError("no modal is open")
    given = dict(part.split("=", 1) for part in shlex.split(rest))
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        el = block["element"]
        value = given.pop(block["block_id"], None)
        if value is None:
            initial = el.get("initial_value") or (el.get("initial_option") or {}).get("value")
            value = initial
        state = _element_state(el, value) if value else {"type": el["type"], "value": None}
        values[block["block_id"]] = {el["action_id"]: state}
    if given:
        raise ValueError(f"unknown field(s) {', '.join(given)}")
    user = next(n for n, (i, _, _) in USERS.items() if i == c.last_user)
    resp = c.send_interaction(
        _interaction(c, "view_submission", user, view={**view, "state": {"values": values}}, response_urls=[])
    )
    if resp.status_code == 200 and not resp.content:
        c.last_view = None
        c.out.write("(modal closed)\n")


def _home(c: Console, rest: str) -> None:
    uid, _, _ = _user(rest.strip() or "alice")
    c.send_event(
        {
            "type": "app_home_opened",
            "user": uid,
            "channel": "D0HOME",
            "tab": "home",
            "event_ts": str(time.time()),
        }
    )


def _rows(c: Console, _rest: str) -> None:
    with c.bot.deps.transaction() as session:
        for fb in reversed(queries.list_feedback(session=session, limit=50)):
            flags = "deleted " if fb.deleted_at else ""
            c.out.write(
                f"  #{fb.id} [{fb.status}] {flags}{fb.capture_method} tags={','.join(fb.tags)} "
                f"from={fb.customer or fb.author_user_id} source={fb.source}: {fb.text[:80]!r}\n"
            )


def _outbox(c: Console, _rest: str) -> None:
    with c.bot.deps.transaction() as session:
        for item in queries.outbox_items(session=session):
            c.out.write(f"  {item.key:<28} {item.status:<8} attempts={item.attempts} {item.last_error or ''}\n")


def _find_element(blocks: list[dict[str, Any]], action_id: str, fid: int) -> tuple[dict, dict] | None:
    """The (block, element) for action_id whose button/block carries item `fid`'s reference."""
    for block in blocks:
        if block.get("type") != "actions":
            continue
        ref = str(block.get("block_id", "")).partition(".")[2]
        if not ref.startswith(f"1.{fid}."):
            continue
        for el in block.get("elements", []):
            if el.get("action_id") == action_id:
                return block, el
    return None


def _action_payload(el: dict[str, Any], block: dict[str, Any], value: str | None) -> dict[str, Any]:
    action: dict[str, Any] = {
        "action_id": el["action_id"],
        "block_id": block["block_id"],
        "type": el["type"],
        "action_ts": str(time.time()),
    }
    if el["type"] == "button":
        action.update(value=el["value"], text=el["text"])
    elif el["type"] == "users_select":
        action["selected_user"] = USERS[value][0] if value in USERS else value
    else:
        action["selected_option"] = _element_state(el, value or "")["selected_option"]
    return action


def _click(c: Console, rest: str, *, home: bool = False) -> None:
    parts = shlex.split(rest)
    if len(parts) < 3:
        raise ValueError("usage: click USER ACTION #ID [VALUE]")
    user, name, item = parts[:3]
    value = " ".join(parts[3:]) or None
    fid = int(item.lstrip("#"))
    action_id = f"triage.{name}"
    base = _interaction(c, "block_actions", user)
    uid = c.last_user
    if home:
        view = c.fake.views.get(f"home:{uid}")
        found = _find_element(view["blocks"], action_id, fid) if view else None
        if view is None or found is None:
            raise ValueError(f"no {name!r} control for #{fid} in {user}'s App Home (run `home {user}` first)")
        c.send_interaction(
            base
            | {
                "container": {"type": "view", "view_id": view.get("id")},
                "view": view,
                "actions": [_action_payload(found[1], found[0], value)],
            }
        )
        return
    for msg in reversed(c.fake.messages(CHANNELS["feedback-triage"][0])):
        found = _find_element(msg.get("blocks") or [], action_id, fid)
        if found:
            c.send_interaction(
                base
                | {
                    "container": {
                        "type": "message",
                        "message_ts": msg["ts"],
                        "channel_id": "C0TRIAGE",
                        "is_ephemeral": False,
                    },
                    "channel": {"id": "C0TRIAGE", "name": "feedback-triage"},
                    "message": msg,
                    "response_url": "https://hooks.slack.com/actions/T0OURTEAM/1/x",
                    "actions": [_action_payload(found[1], found[0], value)],
                }
            )
            return
    raise ValueError(f"no card with a {name!r} control for #{fid}")


def _linear(c: Console, _rest: str) -> None:
    for issue in c.linear.issues():
        c.out.write(f"  {issue['identifier']} [{issue['state']['name']}] {issue['title']}\n")


COMMANDS: dict[str, Callable[[Console, str], None]] = {
    "click": _click,
    "homeclick": lambda c, r: _click(c, r, home=True),
    "linear": _linear,
    "say": _say,
    "reply": lambda c, r: _say(c, r, thread=True),
    "edit": _edit,
    "delete": _delete,
    "react": _react,
    "shortcut": _shortcut,
    "/feedback": _command,
    "global": _global,
    "submit": _submit,
    "home": _home,
    "feedback": _rows,
    "outbox": _outbox,
    "help": lambda c, r: None,
}
