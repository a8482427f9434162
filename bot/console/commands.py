"""The console's commands: each builds the payload Slack would send and posts it, signed, to the running app."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.console import payloads
from bot.console.harness import Console
from bot.console.nps import NPS_HELP, NPS_USAGE, nps, report_nps
from bot.console.world import CHANNELS, USERS
from storage import loops, queries

USAGE = {
    "say": "say USER #CHANNEL TEXT",
    "reply": "reply USER #CHANNEL TEXT",
    "edit": "edit #CHANNEL TEXT",
    "delete": "delete #CHANNEL",
    "react": "react USER :EMOJI: #CHANNEL",
    "shortcut": "shortcut USER #CHANNEL",
    "/feedback": "/feedback [USER]",
    "global": "global [USER]",
    "submit": "submit FIELD=VALUE ...",
    "click": "click USER ACTION #ID [VALUE]",
    "homeclick": "homeclick USER ACTION #ID [VALUE]",
    "home": "home [USER]",
    "linear": "linear [move ISSUE STATE]",
    "loop": "loop USER send|edit|skip|told #ID",
    "sweep": "sweep linear-poll|triage-reminders|loops-overdue|weekly-digest|monthly-report|quarterly-review",
    "report": "report weekly|monthly|quarterly|nps",
    "nps": NPS_USAGE,
    "clock": "clock +Nd|+Nh",
    "feedback": "feedback",
    "outbox": "outbox",
}
HELP = f"""commands:
  {USAGE["say"]:<29} a user posts a message (users: alice, bob = staff; carol, dave = Acme)
  {USAGE["reply"]:<29} a thread reply to the last top-level message in the channel
  {USAGE["edit"]:<29} the author edits the last message
  {USAGE["delete"]:<29} the author deletes the last message
  {USAGE["react"]:<29} react to the last message (try :feedback:, :bug:, :bulb:)
  {USAGE["shortcut"]:<29} "Log as feedback" on the last message (opens a modal)
  /feedback USER                the slash command (opens a modal); `global USER` for the global shortcut
  {USAGE["submit"]:<29} submit the open modal (fields are shown with the modal)
  click USER ACTION #ID [VALUE]  press a control on item #ID's triage card; ACTION is one of type, theme,
                                impact, owner, route_linear, link_linear, roadmap, quick_win, wont_do,
                                duplicate, not_feedback, undo (VALUE for the selects: e.g. Bug, Billing, High, bob)
  homeclick USER ACTION #ID [VALUE]  the same from USER's App Home (also: promote)
  home USER                     open the App Home tab
  linear                        list the issues in the (fake) Linear workspace
  linear move ISSUE STATE       move an issue (ENG-7 started|completed|canceled, or a state name); Linear's
                                webhook is delivered, so the owner gets a draft to approve
  loop USER send|edit|skip|told #ID  press a button on the approval DM for item #ID (edit opens the modal)
  sweep NAME                    run a scheduled sweep now (linear-poll catches states without webhooks)
  report weekly|monthly|quarterly  this period's report as Markdown; the chart is written to a file
{NPS_HELP}
  clock +7d                     move the bot's clock forward (days or hours), then run every scheduled sweep
  feedback | outbox             show stored feedback rows / outbox items
  help | quit"""


class UsageError(ValueError):
    """The command's words do not fit its syntax; the console prints the syntax with the error."""


def _words(rest: str, count: int, what: str) -> list[str]:
    """Exactly `count` words, the last taking the rest of the line (message texts have spaces)."""
    parts = rest.split(None, count - 1)
    if len(parts) < count:
        raise UsageError(f"missing {what}")
    return parts


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
    user, channel, text = _words(rest, 3, "USER, #CHANNEL or TEXT")
    uid, team, real = _user(user)
    cid, shared = _channel(channel)
    parent = c.last_message(channel)["ts"] if thread else None
    msg = c.fake.post_as_user(cid, uid, text, thread_ts=parent)
    profile = {"real_name": real, "display_name": user, "name": user, "team": team}
    event = {**msg, "channel": cid, "event_ts": msg["ts"], "channel_type": "channel", "user_profile": profile}
    c.send_event(event, shared=shared)


def _edit(c: Console, rest: str) -> None:
    channel, text = _words(rest, 2, "#CHANNEL or TEXT")
    cid, shared = _channel(channel)
    msg = c.last_message(channel)
    new = {**msg, "text": text, "edited": {"user": msg["user"], "ts": str(time.time())}}
    now = str(time.time())
    event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": cid, "message": new,
             "previous_message": msg, "ts": now, "event_ts": now}  # fmt: skip
    c.send_event(event, shared=shared)


def _delete(c: Console, rest: str) -> None:
    (channel,) = _words(rest, 1, "#CHANNEL")
    cid, shared = _channel(channel.strip())
    msg = c.last_message(channel.strip())
    now = str(time.time())
    event = {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": cid,
             "deleted_ts": msg["ts"], "previous_message": msg, "ts": now, "event_ts": now}  # fmt: skip
    c.send_event(event, shared=shared)


def _react(c: Console, rest: str) -> None:
    parts = rest.split()
    if len(parts) != 3:
        raise UsageError("need USER, :EMOJI: and #CHANNEL")
    user, emoji, channel = parts
    uid, _, _ = _user(user)
    cid, _ = _channel(channel)
    msg = c.last_message(channel)
    c.fake.react_as_user(cid, msg["ts"], uid, emoji.strip(":"))
    item = {"type": "message", "channel": cid, "ts": msg["ts"]}
    event = {"type": "reaction_added", "user": uid, "reaction": emoji.strip(":"), "item_user": msg["user"],
             "item": item, "event_ts": str(time.time())}  # fmt: skip
    c.send_event(event)


def _interaction(c: Console, kind: str, user: str, **fields: Any) -> dict[str, Any]:
    c.last_user = _user(user)[0]
    return payloads.interaction(kind, user, **fields)


def _shortcut(c: Console, rest: str) -> None:
    parts = rest.split()
    if len(parts) != 2:
        raise UsageError("need USER and #CHANNEL")
    user, channel = parts
    cid, _ = _channel(channel)
    msg = c.last_message(channel)
    message = {k: msg[k] for k in ("type", "user", "ts", "text", "team", "user_team") if k in msg}
    c.send_interaction(
        _interaction(
            c, "message_action", user, callback_id="log_feedback", channel={"id": cid, "name": channel.lstrip("#")},
            response_url="https://hooks.slack.com/app/T0OURTEAM/1/x", message=message,
        )
    )  # fmt: skip


def _command(c: Console, rest: str) -> None:
    user = rest.split()[0] if rest.split() else "alice"
    c.last_user = _user(user)[0]
    c.send_command(user, "/feedback", "")


def _global(c: Console, rest: str) -> None:
    c.send_interaction(_interaction(c, "shortcut", rest.strip() or "alice", callback_id="feedback_global"))


def _submit(c: Console, rest: str) -> None:
    view = c.last_view
    if view is None or view.get("type") != "modal" or "submit" not in view:
        raise ValueError("no modal is open")
    pairs = [part.partition("=") for part in shlex.split(rest)]
    if any(not name or not eq for name, eq, _ in pairs):
        raise UsageError("fields are FIELD=VALUE")
    given = {name: value for name, _, value in pairs}
    fields = {b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"}
    unknown = [name for name in given if name not in fields]
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    user = next(n for n, (i, _, _) in USERS.items() if i == c.last_user)
    submitted = {**view, "state": payloads.view_state(view, given)}
    resp = c.send_interaction(_interaction(c, "view_submission", user, view=submitted, response_urls=[]))
    if resp.status_code == 200 and not resp.content:
        c.last_view = None
        c.out.write("(modal closed)\n")


def _home(c: Console, rest: str) -> None:
    uid, _, _ = _user(rest.strip() or "alice")
    c.send_event({"type": "app_home_opened", "user": uid, "channel": "D0HOME", "tab": "home",
                  "event_ts": str(time.time())})  # fmt: skip


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


def _click(c: Console, rest: str, *, home: bool = False) -> None:
    parts = shlex.split(rest)
    if len(parts) < 3 or not parts[2].lstrip("#").isdigit():
        raise UsageError("need USER, ACTION and #ID")
    user, name, item = parts[:3]
    value = " ".join(parts[3:]) or None
    fid, action_id = int(item.lstrip("#")), f"triage.{name}"
    base = _interaction(c, "block_actions", user)
    if home:
        view = c.fake.views.get(f"home:{c.last_user}")
        found = payloads.find_element(view["blocks"], action_id, fid) if view else None
        if view is None or found is None:
            raise ValueError(f"no {name!r} control for #{fid} in {user}'s App Home (run `home {user}` first)")
        container = {"container": {"type": "view", "view_id": view.get("id")}, "view": view}
        c.send_interaction(base | container | {"actions": [payloads.action(found[1], found[0], value)]})
        return
    triage = ("C0TRIAGE", "feedback-triage")
    for msg in reversed(c.fake.messages(triage[0])):
        found = payloads.find_element(msg.get("blocks") or [], action_id, fid)
        if found:
            actions = {"actions": [payloads.action(found[1], found[0], value)]}
            c.send_interaction(base | payloads.card_click(msg, triage) | actions)
            return
    raise ValueError(f"no card with a {name!r} control for #{fid}")


def _linear(c: Console, rest: str) -> None:
    words = rest.split()
    if words and words[0] == "move":
        if len(words) != 3:
            raise UsageError("need ISSUE and STATE")
        c.move_issue(words[1].upper(), words[2])
        return
    if words:
        raise UsageError(f"unknown subcommand {words[0]!r}")
    for issue in c.linear.issues():
        c.out.write(f"  {issue['identifier']} [{issue['state']['name']}] {issue['title']}\n")


def _loop(c: Console, rest: str) -> None:
    parts = rest.split()
    if len(parts) != 3 or parts[1] not in ("send", "edit", "skip", "told") or not parts[2].lstrip("#").isdigit():
        raise UsageError("need USER, send|edit|skip|told and #ID")
    user, verb, fid = parts[0], parts[1], int(parts[2].lstrip("#"))
    with c.bot.deps.transaction() as session:
        ids = {m.id: (m.draft_channel, m.draft_ts) for m in loops.loop_messages(session=session, feedback_ids=[fid])}
    for mid, (channel, ts) in sorted(ids.items(), reverse=True):
        msg = next((m for m in c.fake.messages(channel or "") if m["ts"] == ts), None)
        found = next(
            ((b, e) for b in (msg or {}).get("blocks") or [] if b.get("block_id") == f"loop.{mid}"
             for e in b["elements"] if e["action_id"] == f"loop.{verb}"),
            None,
        )  # fmt: skip
        if msg is not None and found is not None:
            base = _interaction(c, "block_actions", user)
            actions = {"actions": [payloads.action(found[1], found[0])]}
            c.send_interaction(base | payloads.card_click(msg, (str(channel), "directmessage")) | actions)
            return
    raise ValueError(f"no open approval DM with a {verb!r} button for #{fid}")


def _sweep(c: Console, rest: str) -> None:
    name = rest.strip()
    if name not in c.bot.scheduler.sweeps:
        raise UsageError(f"unknown sweep {name!r}")
    c.out.write(f"  {name}: {c.bot.scheduler.run_now(name)}\n")


def _report(c: Console, rest: str) -> None:
    kind = rest.strip()
    if kind not in ("weekly", "monthly", "quarterly", "nps"):
        raise UsageError("need weekly, monthly, quarterly or nps")
    c.out.write(report_nps(c) if kind == "nps" else c.report(kind))


def _clock(c: Console, rest: str) -> None:
    m = re.fullmatch(r"\+(\d+)([dh])", rest.strip())
    if not m:
        raise UsageError("need +Nd or +Nh")
    c.advance(timedelta(days=int(m.group(1))) if m.group(2) == "d" else timedelta(hours=int(m.group(1))))


COMMANDS: dict[str, Callable[[Console, str], None]] = {
    "nps": nps,
    "report": _report,
    "clock": _clock,
    "loop": _loop,
    "sweep": _sweep,
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
