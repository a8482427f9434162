"""`feedbackbot console`: the real app and database against an in-process Slack, rendered as text."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import shlex
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import httpx

from bot.console_render import USER_NAMES, render_call
from bot.fake_linear import FakeLinear
from bot.fake_slack import FakeSlack
from bot.settings import Settings

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


class Console:
    """Drives the real HTTP endpoint with signed Slack payloads and prints what Slack would show."""

    def __init__(self, settings: Settings, create_app: Callable[..., Any], out: TextIO, **app_kwargs: Any):
        self.out = out
        self.fake = FakeSlack(team_id=OUR_TEAM, team_name="Our Co").start()
        for name, (uid, team, real) in USERS.items():
            self.fake.add_user(uid, name, team_id=team, real_name=real)
            USER_NAMES[uid] = name
        for name, (cid, shared) in CHANNELS.items():
            self.fake.add_channel(cid, name, is_ext_shared=shared)
        self.secret = uuid.uuid4().hex
        self.linear = FakeLinear(api_key="lin_api_console").start()
        team = self.linear.add_team("ENG", "Engineering")
        for label in ("Bug", "Feature request", "Reporting", "Billing"):
            self.linear.add_label(label, team_id=team)
        self.linear.add_issue("ENG-7", "CSV export drops rows", state="Todo")
        linear = {"linear_api_key": "lin_api_console", "linear_api_url": self.linear.url, "linear_team_id": team}
        if settings.linear_ready():
            linear = {}
        self.settings = Settings.model_validate(
            settings.model_dump()
            | {
                "slack_bot_token": "xoxb-console",
                "slack_signing_secret": self.secret,
                "slack_api_url": self.fake.url,
                "feedback_triage_channel": CHANNELS["feedback-triage"][0],
                "slack_app_token": None,
            }
            | linear
        )
        self.bot = create_app(self.settings, **app_kwargs)
        suggestions = self.bot.deps.worker.suggestions
        if suggestions is not None:
            suggestions.settled.wait(self.settings.model_wait_seconds)
            if suggestions.state != "ready":
                out.write(f"(suggestions unavailable: {suggestions.error or 'the model is still loading'})\n")
        self._serve()
        self.seen = 0
        self.last_view: dict[str, Any] | None = None
        self.last_user = "U0STAFF"

    def _serve(self) -> None:
        from waitress.server import create_server

        self.server = create_server(self.bot.wsgi(), host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=self._run_server, daemon=True, name="console-http").start()
        port = self.server.effective_port  # type: ignore[union-attr]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def _run_server(self) -> None:
        with contextlib.suppress(OSError):  # close() pulls the socket from under the loop: waitress's stop
            self.server.run()

    def close(self) -> None:
        """Stops the HTTP server and the fake Slack."""
        self.bot.deps.worker.stop()
        self.http.close()
        self.server.close()
        self.bot.executor.shutdown(wait=True)
        self.fake.stop()
        self.linear.stop()

    # --- sending ---------------------------------------------------------------------------------

    def post_signed(
        self,
        body: str | bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        """POSTs to /slack/events signed the way Slack signs (v0 HMAC-SHA256 of `v0:ts:body`)."""
        raw = body.encode() if isinstance(body, str) else body
        ts = str(int(time.time()) if timestamp is None else timestamp)
        key = (secret or self.secret).encode()
        sig = "v0=" + hmac.new(key, b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
        sent = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig, "Content-Type": content_type}
        return self.http.post("/slack/events", content=raw, headers=sent | (headers or {}))

    def _signed(self, body: str, content_type: str) -> httpx.Response:
        return self.post_signed(body, content_type)

    def send_event(self, event: dict[str, Any], *, shared: bool | None = None) -> None:
        """An Events API envelope as Slack sends it to an app installed in our workspace."""
        envelope = {
            "token": "unused", "team_id": event.get("user_team") or OUR_TEAM, "api_app_id": "A0FEEDBACK",
            "event": event, "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()), "authorizations": [{"enterprise_id": None, "team_id": OUR_TEAM,
            "user_id": "U0BOT", "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": bool(shared), "event_context": uuid.uuid4().hex,
        }  # fmt: skip
        self._check(self._signed(json.dumps(envelope), "application/json"))

    def send_interaction(self, payload: dict[str, Any]) -> httpx.Response:
        """Interactivity payloads are form-encoded with one `payload` field."""
        resp = self._signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
        return self._check(resp)

    def send_command(self, user: str, command: str, text: str) -> None:
        """Slash commands are plain form fields."""
        uid, team, _ = USERS[user]
        form = {
            "token": "unused",
            "team_id": team,
            "team_domain": "ourco",
            "channel_id": "C0INTERNAL",
            "channel_name": "general",
            "user_id": uid,
            "user_name": user,
            "command": command,
            "text": text,
            "api_app_id": "A0FEEDBACK",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T0OURTEAM/1/x",
            "trigger_id": self._trigger(),
        }
        self._check(self._signed(urlencode(form), "application/x-www-form-urlencoded"))

    def _check(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 300:
            self.out.write(f"! HTTP {resp.status_code}: {resp.text}\n")
        elif resp.content and resp.headers.get("content-type", "").startswith("application/json"):
            body = resp.json()
            if body.get("response_action") == "errors":
                for field, msg in body.get("errors", {}).items():
                    self.out.write(f"! {field}: {msg}\n")
        return resp

    @staticmethod
    def _trigger() -> str:
        return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"

    # --- settling and rendering ------------------------------------------------------------------

    def settle(self, horizon: float = 1.5) -> None:
        """Waits for listeners and drains the outbox until nothing is due within `horizon` s, then renders."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.bot.executor.wait_idle(10)
            if self.bot.deps.worker.drain() or not self.bot.executor.wait_idle(0.01):
                continue
            if not self._due_soon(horizon):
                break
            time.sleep(0.05)
        names = {cid: name for name, (cid, _) in CHANNELS.items()}
        users = {uid: name for name, (uid, _, _) in USERS.items()}
        for call in self.fake.calls[self.seen :]:
            text = render_call(call.method, call.args, call.response, names, users)
            if text:
                self.out.write(text + "\n")
            if call.method in {"views.open", "views.push", "views.update"} and call.response.get("ok"):
                self.last_view = call.response["view"]
        self.seen = len(self.fake.calls)

    def _due_soon(self, horizon: float) -> bool:
        from datetime import timedelta

        from sqlalchemy import select

        from storage.db import utcnow
        from storage.models import OutboxItem

        soon = utcnow() + timedelta(seconds=horizon)
        with self.bot.deps.transaction() as session:
            stmt = select(OutboxItem.id).where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= soon)
            return session.scalar(stmt.limit(1)) is not None

    # --- commands --------------------------------------------------------------------------------

    def last_message(self, channel: str) -> dict[str, Any]:
        """The newest human message in a channel (what `react`/`shortcut` act on)."""
        cid = CHANNELS[channel.lstrip("#")][0]
        for msg in reversed(self.fake.messages(cid)):
            if not msg.get("bot_id"):
                return msg
        raise ValueError(f"no message in #{channel.lstrip('#')} yet")

    def run_line(self, line: str, *, echo: bool = True) -> bool:
        """Runs one command (echoed in scripted transcripts); False means quit."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        if echo:
            self.out.write(f"> {line}\n")
        word, _, rest = line.partition(" ")
        try:
            handler = COMMANDS.get(word)
            if word in {"quit", "exit"}:
                return False
            if handler is None or word == "help":
                self.out.write(HELP + "\n")
                return True
            handler(self, rest)
        except (KeyError, ValueError, IndexError) as exc:
            self.out.write(f"! {exc}\n")
        self.settle()
        return True


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
    from storage import queries

    with c.bot.deps.transaction() as session:
        for fb in reversed(queries.list_feedback(session=session, limit=50)):
            flags = "deleted " if fb.deleted_at else ""
            c.out.write(
                f"  #{fb.id} [{fb.status}] {flags}{fb.capture_method} tags={','.join(fb.tags)} "
                f"from={fb.customer or fb.author_user_id} source={fb.source}: {fb.text[:80]!r}\n"
            )


def _outbox(c: Console, _rest: str) -> None:
    from sqlalchemy import select

    from storage.models import OutboxItem

    with c.bot.deps.transaction() as session:
        for item in session.scalars(select(OutboxItem).order_by(OutboxItem.id)):
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


def _lines(script: str | None) -> Iterator[str]:
    if script:
        yield from Path(script).read_text(encoding="utf-8").splitlines()
        return
    while True:
        try:
            yield input("feedbackbot> ")
        except EOFError:
            return


def run_console(
    settings: Settings,
    create_app: Callable[..., Any],
    *,
    script: str | None,
    database_url: str | None,
    out: TextIO | None = None,
) -> int:
    """Runs a scripted or interactive session; the database defaults to a fresh temp SQLite file."""
    import sys

    stream = out or sys.stdout
    if database_url is None:
        database_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='feedbackbot-')) / 'console.db'}"
    console = Console(settings.model_copy(update={"database_url": database_url}), create_app, stream)
    stream.write(f"Feedback Loop console (database {database_url}). Type `help`.\n")
    try:
        for line in _lines(script):
            if not console.run_line(line, echo=script is not None):
                break
    finally:
        console.close()
    return 0
