"""A stand-in for Slack's Web API over real HTTP, so slack_sdk.WebClient runs unchanged in tests and console.

Speaks Slack's wire format (JSON or form bodies, Bearer or `token` auth, ok:false errors, 429 + Retry-After)
for the methods the bot uses; everything it answers is recorded in `calls`. Socket Mode too: an `xapp-` token
gets a `ws://` URL from apps.connections.open, where a small RFC 6455 server says `hello`, carries the
envelopes a test pushes with `socket_send` and records the client's acks in `socket_acks` (see bot.fake_socket).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from bot.console.fake_socket import SocketMode
from bot.console.fake_socket import socket_envelope as socket_envelope  # re-exported: tests import it from here

Json = dict[str, Any]
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "metadata", "files", "outputs"})
_JSON_TYPE = "application/json; charset=utf-8"
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})  # the only methods that take an app-level token


@dataclass
class Call:
    """One Web API request the fake answered, so tests can assert on what the bot actually sent."""

    method: str
    args: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when it was answered, to check waits like Retry-After


@dataclass
class _Failure:
    status: int
    error: str | None
    retry_after: int | None


class _SlackError(Exception):
    """An ok:false answer, raised by handlers so each one stays a straight line."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _need(condition: object, error: str) -> None:
    """Guard clause: one line per documented Slack error."""
    if not condition:
        raise _SlackError(error)


def _truthy(value: Any) -> bool:
    """Slack takes "1"/"true" in forms and real booleans in JSON bodies."""
    return value.lower() in {"1", "true"} if isinstance(value, str) else bool(value)


def _ts(value: Any) -> Decimal:
    """Compare timestamps exactly: floats blur the microsecond part."""
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise _SlackError("invalid_ts_oldest") from exc


def _parse_args(query: str, body: bytes, content_type: str) -> Json:
    """Merge query-string and body args (JSON or form) as Slack does, decoding JSON-in-form fields."""
    args: Json = dict(parse_qsl(query, keep_blank_values=True))
    if body and content_type.startswith("application/json"):
        args.update(json.loads(body))
    elif body and content_type.startswith("application/x-www-form-urlencoded"):
        args.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_FIELDS & args.keys():
        if isinstance(args[key], str) and args[key][:1] in ("[", "{"):
            args[key] = json.loads(args[key])
    return args


def _window(msgs: list[Json], args: Json) -> list[Json]:
    """Apply Slack's oldest/latest/inclusive bounds."""
    inclusive = _truthy(args.get("inclusive", False))
    lo, hi = (_ts(args[k]) if args.get(k) else None for k in ("oldest", "latest"))

    def keep(t: Decimal) -> bool:
        below = lo is not None and (t < lo or (t == lo and not inclusive))
        return not below and not (hi is not None and (t > hi or (t == hi and not inclusive)))

    return [m for m in msgs if keep(_ts(m["ts"]))]


def _page(items: list[Any], args: Json) -> tuple[list[Any], Json]:
    """Cursor pagination; the cursor is an offset, opaque to callers."""
    try:
        start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 100)
    except ValueError as exc:
        raise _SlackError("invalid_cursor") from exc
    more = start + limit < len(items)
    meta = {"has_more": more, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}
    return items[start : start + limit], meta


def _render(msg: Json, with_metadata: bool) -> Json:
    """Copy a stored message for the wire; metadata only when the caller asked for it."""
    out = copy.deepcopy(msg)
    if not with_metadata:
        out.pop("metadata", None)
    return out


def _in_channel_view(msg: Json) -> bool:
    """conversations.history lists thread parents and broadcasts; other replies live only in the thread."""
    return msg.get("thread_ts") in (None, msg["ts"]) or msg.get("subtype") == "thread_broadcast"


def _failure_answer(f: _Failure) -> tuple[int, dict[str, str], Json, bytes]:
    """Turn a scripted failure into the status, headers and body Slack would send."""
    headers = {"Retry-After": str(f.retry_after or 1)} if f.status == 429 or f.retry_after else {}
    if f.status >= 500 and f.error is None:  # an HTML error page from the load balancer, as in real outages
        headers["Content-Type"] = "text/html; charset=utf-8"
        return f.status, headers, {"ok": False, "error": f"http_{f.status}"}, b"<html>Server Error</html>"
    body = {"ok": False, "error": "ratelimited" if f.status == 429 else (f.error or "internal_error")}
    return f.status, headers, body, json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops SYNs when many workers connect at once


class FakeSlack:
    """Slack's Web API in-process: real HTTP on 127.0.0.1, real wire format, state you can inspect."""

    app_id = "A0BOTAPP"

    def __init__(
        self,
        *,
        team_id: str = "T0OURTEAM",
        team_name: str = "Our Co",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
    ) -> None:
        self.team_id, self.team_name, self.bot_user_id, self.bot_id = team_id, team_name, bot_user_id, bot_id
        self.domain = re.sub(r"[^a-z0-9]", "", team_name.lower()) or "workspace"
        self.other_teams: dict[str, str] = {}  # Slack Connect organisations: team id -> name
        self.calls: list[Call] = []
        # chat.postEphemeral posts ({channel, ts, user, text, blocks, thread_ts}): never in history
        self.ephemerals: list[Json] = []
        self.uploads: list[Json] = []  # completed uploads: {file_id, filename, title, content, channel, ...}
        self.views: dict[str, Json] = {}
        self._channels: dict[str, Json] = {}
        self._members: dict[str, list[str]] = {}
        self._users: dict[str, Json] = {}
        self._groups: dict[str, list[str]] = {}
        self._history: dict[str, list[Json]] = defaultdict(list)
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._stalls: dict[str, deque[float]] = defaultdict(deque)
        self.latency = 0.0  # seconds added to every Web API answer (Slack's real ~100 ms, for benchmarks)
        self._files: dict[str, Json] = {}
        self._clock, self._seq = 1_700_000_000_000_000, 0
        self._lock = threading.RLock()
        self._socket = SocketMode(self.app_id, self._lock)
        # Socket Mode state lives in fake_socket; these are the same objects, shared for tests to read
        self.socket_acks: list[Json] = self._socket.acks  # what the client sent back: {envelope_id, payload?}
        self.socket_connected: threading.Event = self._socket.connected  # set while a client is connected
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.add_user(bot_user_id, "feedbackbot", is_bot=True, real_name="Feedback Loop")

    @property
    def url(self) -> str:
        """Base URL for slack_sdk's base_url; only meaningful once the server listens."""
        if self._server is None:
            raise RuntimeError("FakeSlack.url is only valid after start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        """Listen on an OS-chosen port in a daemon thread so parallel tests never collide on ports."""
        self._server = _Server(("127.0.0.1", 0), type("_BoundHandler", (_Handler,), {"fake": self}))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket and join the thread so no test leaks a server."""
        self._socket.drop_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_ext_shared: bool = False,
        is_private: bool = False,
        is_im: bool = False,
        members: list[str] | None = None,
    ) -> None:
        """Declare a conversation the bot is in, shaped like conversations.info's channel object."""
        with self._lock:
            self._channels[channel_id] = {
                "id": channel_id, "name": name, "is_channel": not (is_private or is_im), "is_im": is_im,
                "is_group": is_private and not is_im, "is_mpim": False, "is_private": is_private or is_im,
                "is_archived": False, "is_ext_shared": is_ext_shared, "is_shared": is_ext_shared,
                "is_org_shared": False, "is_member": True, "context_team_id": self.team_id,
            }  # fmt: skip
            self._members[channel_id] = list(members) if members is not None else [self.bot_user_id]

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        team_id: str | None = None,
        is_bot: bool = False,
        is_restricted: bool = False,
        real_name: str | None = None,
        email: str | None = None,
    ) -> None:
        """Declare a person: ours, a guest (is_restricted), or a Slack Connect user from another team."""
        real, team = real_name or name, team_id or self.team_id
        with self._lock:
            self._users[user_id] = {
                "id": user_id, "team_id": team, "name": name, "deleted": False, "real_name": real,
                "is_bot": is_bot, "is_app_user": False, "is_admin": False, "is_owner": False,
                "is_restricted": is_restricted, "is_ultra_restricted": False,
                "profile": {"real_name": real, "display_name": name, "team": team,
                            "email": email or f"{name}@example.com"},
            }  # fmt: skip

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> None:
        """Declare a user group (e.g. the staff group) for usergroups.users.list."""
        with self._lock:
            self._groups[group_id] = list(users)

    def post_as_user(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, subtype: str | None = None
    ) -> Json:
        """A person speaks: the message enters history without being recorded as a bot call."""
        with self._lock:
            if channel not in self._channels:
                raise KeyError(f"unknown channel {channel!r}; call add_channel first")
            team, self._seq = self._users.get(user, {}).get("team_id", self.team_id), self._seq + 1
            section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            msg: Json = {
                "type": "message", "user": user, "text": text, "ts": self._next_ts(), "team": team,
                "user_team": team, "source_team": team, "client_msg_id": str(uuid.uuid4()),
                "blocks": [{"type": "rich_text", "block_id": f"b{self._seq}", "elements": [section]}],
            }  # fmt: skip
            msg.update({k: v for k, v in (("thread_ts", thread_ts), ("subtype", subtype)) if v})
            if user not in self._members[channel]:
                self._members[channel].append(user)
            return copy.deepcopy(self._append(channel, msg))

    def react_as_user(self, channel: str, ts: str, user: str, name: str) -> None:
        """A person adds an emoji reaction; like post_as_user, not recorded as a bot call."""
        with self._lock:
            self._react(self._find(channel, ts), name, user)

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Script the next `times` answers to `method`: 429 + Retry-After, 5xx, or ok:false with `error`."""
        with self._lock:
            self._failures[method].extend(_Failure(status, error, retry_after) for _ in range(times))

    def stall_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Delay the next `times` answers to `method` (a slow or hung Slack), without holding the fake's lock."""
        with self._lock:
            self._stalls[method].extend(seconds for _ in range(times))

    def calls_to(self, method: str) -> list[Call]:
        """The calls made to one method, in order."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[Json]:
        """Everything in a channel (bot posts, thread replies, metadata included), oldest first."""
        with self._lock:
            return copy.deepcopy(self._history.get(channel, []))

    def reactions(self, channel: str, ts: str) -> list[Json]:
        """The reactions on one message, in Slack's {name, users, count} shape."""
        with self._lock:
            found = [m for m in self._history.get(channel, []) if m["ts"] == ts]
            return copy.deepcopy(found[0].get("reactions", [])) if found else []

    def reset_calls(self) -> None:
        """Forget recorded calls so a test can assert on one phase only."""
        with self._lock:
            self.calls.clear()

    def socket_send(self, envelope: Json) -> None:
        """Push one message (an envelope, or e.g. a `disconnect`) down the newest live Socket Mode connection."""
        self._socket.send(envelope)

    def socket_go_silent(self) -> None:
        """The newest Socket Mode connection goes half-open: no close frame, no pongs (a dropped network)."""
        self._socket.go_silent()

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Json:
        """The client's ack for one envelope; Slack redelivers what is not acked within 3 seconds."""
        return self._socket.wait_for_ack(envelope_id, timeout)

    def _handle_api(self, method: str, query: str, body: bytes, ctype: str, auth: str) -> tuple[int, Json, bytes]:
        """Parse, record and answer one Web API request, all under the lock (any latency or stall before it)."""
        with self._lock:
            stall = self._stalls[method].popleft() if self._stalls.get(method) else 0.0
        if stall or self.latency:
            time.sleep(stall + self.latency)
        with self._lock:
            try:
                args, bad_body = _parse_args(query, body, ctype), False
            except ValueError:
                args, bad_body = {}, True
            token = auth.removeprefix("Bearer ").strip() or str(args.get("token", ""))
            args.pop("token", None)
            if failures := self._failures.get(method):
                status, headers, response, payload = _failure_answer(failures.popleft())
            else:
                status, headers, response = 200, {}, self._answer(method, args, token, bad_body)
                payload = json.dumps(response).encode()
            self.calls.append(Call(method, args, status, response))
        return status, {"Content-Type": _JSON_TYPE, **headers}, payload

    def _answer(self, method: str, args: Json, token: str, bad_body: bool) -> Json:
        """Authenticate, then run the method's handler; every error is an ok:false body."""
        try:
            _need(method in _METHODS, "unknown_method")
            _need(token, "not_authed")
            _need(token.startswith(("xoxb-", "xoxp-", "xapp-")), "invalid_auth")
            _need(token.startswith("xapp-") == (method in _APP_TOKEN_METHODS), "not_allowed_token_type")
            _need(not bad_body, "invalid_json")
            return {"ok": True, **_METHODS[method](self, args)}
        except _SlackError as exc:
            return {"ok": False, "error": exc.error}

    def _receive_upload(self, file_id: str, body: bytes) -> tuple[int, Json, bytes]:
        """The upload URL handed out by files.getUploadURLExternal: keep the bytes for completion."""
        with self._lock:
            if file_id not in self._files:
                return 404, {"Content-Type": "text/plain"}, b"not found"
            self._files[file_id]["content"] = body
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, f"OK - {len(body)}".encode()

    def _next_ts(self) -> str:
        """Strictly increasing message timestamps in Slack's "seconds.micros" form."""
        self._clock = max(self._clock + 100, int(time.time() * 1_000_000))  # real epoch, like Slack's
        return f"{self._clock // 1_000_000}.{self._clock % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:08d}"

    def _channel(self, args: Json) -> str:
        channel = str(args.get("channel", ""))
        _need(channel in self._channels, "channel_not_found")
        return channel

    def _find(self, channel: str, ts: Any, error: str = "message_not_found") -> Json:
        found = [m for m in self._history.get(channel, []) if m["ts"] == ts]
        _need(found, error)
        return found[0]

    def _target(self, args: Json) -> tuple[str, Json]:
        """The (channel, message) a method points at with channel + ts/timestamp/message_ts."""
        channel = self._channel(args)
        ts = args.get("ts") or args.get("timestamp") or args.get("message_ts")
        return channel, self._find(channel, ts)

    def _im_for(self, user: str) -> str:
        """Posting to a user id lands in (and lazily opens) the bot's DM with them, as on Slack."""
        cid = "D" + user[1:]
        if cid not in self._channels:
            self.add_channel(cid, user, is_im=True, members=[self.bot_user_id, user])
            self._channels[cid]["user"] = user
        return cid

    def _append(self, channel: str, msg: Json) -> Json:
        """Store a message and keep its parent's thread counters the way Slack reports them."""
        parent_ts = msg.get("thread_ts")
        for parent in [m for m in self._history[channel] if m["ts"] == parent_ts != msg["ts"]]:
            users = parent.setdefault("reply_users", [])
            if msg["user"] not in users:
                users.append(msg["user"])
            parent.update(thread_ts=parent_ts, reply_count=parent.get("reply_count", 0) + 1)
            parent.update(reply_users_count=len(users), latest_reply=msg["ts"])
        self._history[channel].append(msg)
        return msg

    def _react(self, msg: Json, name: str, user: str, *, add: bool = True) -> None:
        name = name.strip(":")
        _need(name, "invalid_name")
        reactions: list[Json] = copy.deepcopy(msg.get("reactions", []))
        entry = next((r for r in reactions if r["name"] == name), None)
        _need(not add or entry is None or user not in entry["users"], "already_reacted")
        _need(add or (entry is not None and user in entry["users"]), "no_reaction")
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        entry["users"] = [*entry["users"], user] if add else [u for u in entry["users"] if u != user]
        entry["count"] = len(entry["users"])
        msg["reactions"] = [r for r in reactions if r["count"]]
        if not msg["reactions"]:
            del msg["reactions"]

    def _check_content(self, a: Json, *, required: bool = True) -> None:
        text, blocks = str(a.get("text") or ""), a.get("blocks")
        _need(not required or text or blocks or a.get("attachments"), "no_text")
        _need(len(text) <= 40_000, "msg_too_long")
        _need(blocks is None or (isinstance(blocks, list) and len(blocks) <= 50), "invalid_blocks")

    def _bot_message(self, a: Json, ts: str) -> Json:
        profile = {"id": self.bot_id, "app_id": self.app_id, "name": "Feedback Loop", "team_id": self.team_id}
        msg: Json = {
            "type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "app_id": self.app_id,
            "team": self.team_id, "text": str(a.get("text") or ""), "ts": ts, "blocks": a.get("blocks") or [],
            "bot_profile": profile,
        }  # fmt: skip
        msg.update({k: a[k] for k in ("metadata", "attachments", "thread_ts") if a.get(k)})
        if _truthy(a.get("reply_broadcast")):
            msg["subtype"] = "thread_broadcast"
        return msg

    def _view_object(self, view: Any, view_id: str | None = None) -> Json:
        """Echo a view as Slack stores it: the caller's fields plus id, hash, state and app ids."""
        _need(isinstance(view, dict) and view.get("type"), "invalid_arguments")
        vid = view_id or self._new_id("V")
        return {
            "private_metadata": "", "callback_id": "", "external_id": "", "blocks": [], "title": None,
            "submit": None, "close": None, "clear_on_close": False, "notify_on_close": False,
            "previous_view_id": None, **view, "id": vid, "team_id": self.team_id, "root_view_id": vid,
            "app_id": self.app_id, "bot_id": self.bot_id, "app_installed_team_id": self.team_id,
            "state": {"values": {}}, "hash": f"1700000000.{self._new_id('h')}",
        }  # fmt: skip

    def _apps_connections_open(self, a: Json) -> Json:
        ticket = self._socket.new_ticket()
        base = self.url.removesuffix("/api/").replace("http://", "ws://", 1)
        return {"url": f"{base}/link/?ticket={ticket}&app_id={self.app_id}"}

    def _auth_test(self, a: Json) -> Json:
        return {
            "url": f"https://{self.domain}.slack.com/", "team": self.team_name, "user": "feedbackbot",
            "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }  # fmt: skip

    def _team_info(self, a: Json) -> Json:
        team = a.get("team") or self.team_id
        if team in self.other_teams:  # a Slack Connect organisation the bot shares a channel with
            name = self.other_teams[team]
            return {"team": {"id": team, "name": name, "domain": re.sub(r"[^a-z0-9]", "", name.lower()), "icon": {}}}
        _need(team == self.team_id, "team_not_found")
        return {"team": {"id": self.team_id, "name": self.team_name, "domain": self.domain, "icon": {}}}

    def _conversations_info(self, a: Json) -> Json:
        return {"channel": copy.deepcopy(self._channels[self._channel(a)])}

    def _conversations_members(self, a: Json) -> Json:
        page, meta = _page(self._members[self._channel(a)], a)
        return {"members": page, "response_metadata": meta["response_metadata"]}

    def _conversations_open(self, a: Json) -> Json:
        user = str(a.get("users", "")).split(",")[0]
        _need(user in self._users, "user_not_found")
        return {"channel": {"id": self._im_for(user)}}

    def _conversations_history(self, a: Json) -> Json:
        top = [m for m in self._history[self._channel(a)] if _in_channel_view(m)]
        page, meta = _page(_window(top, a)[::-1], a)  # newest first, replies stay in their thread
        return {"messages": [_render(m, _truthy(a.get("include_all_metadata"))) for m in page], **meta}

    def _conversations_replies(self, a: Json) -> Json:
        channel = self._channel(a)
        parent = self._find(channel, a.get("ts"), "thread_not_found")
        replies = [m for m in self._history[channel] if m.get("thread_ts") == parent["ts"] != m["ts"]]
        page, meta = _page([parent, *_window(replies, a)], a)  # parent first, then replies oldest first
        return {"messages": [_render(m, _truthy(a.get("include_all_metadata"))) for m in page], **meta}

    def _chat_post_message(self, a: Json) -> Json:
        channel = str(a.get("channel", ""))
        channel = self._im_for(channel) if channel in self._users else self._channel(a)
        self._check_content(a)
        msg = self._append(channel, self._bot_message(a, self._next_ts()))
        return {"channel": channel, "ts": msg["ts"], "message": _render(msg, True)}

    def _chat_update(self, a: Json) -> Json:
        channel, msg = self._target(a)
        _need(msg.get("bot_id") == self.bot_id, "cant_update_message")
        self._check_content(a, required=False)
        msg.update({k: a[k] for k in ("text", "blocks", "metadata", "attachments") if k in a})
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"], "message": _render(msg, True)}

    def _chat_post_ephemeral(self, a: Json) -> Json:
        channel, ts = self._channel(a), self._next_ts()
        self._check_content(a)
        keep: Json = {k: a[k] for k in ("user", "text", "blocks", "thread_ts") if k in a}
        self.ephemerals.append({"channel": channel, "ts": ts, **keep})
        return {"message_ts": ts}

    def _chat_get_permalink(self, a: Json) -> Json:
        channel, msg = self._target(a)
        link = f"https://{self.domain}.slack.com/archives/{channel}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts") not in (None, msg["ts"]):
            link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _chat_delete(self, a: Json) -> Json:
        channel, msg = self._target(a)
        _need(msg.get("bot_id") == self.bot_id, "cant_delete_message")
        self._history[channel].remove(msg)
        return {"channel": channel, "ts": msg["ts"]}

    def _reactions_add(self, a: Json, *, add: bool = True) -> Json:
        self._react(self._target(a)[1], str(a.get("name") or ""), self.bot_user_id, add=add)
        return {}

    def _reactions_remove(self, a: Json) -> Json:
        return self._reactions_add(a, add=False)

    def _reactions_get(self, a: Json) -> Json:
        channel, msg = self._target(a)
        return {"type": "message", "channel": channel, "message": _render(msg, False)}

    def _views_open(self, a: Json) -> Json:
        _need(a.get("trigger_id") or a.get("interactivity_pointer"), "invalid_arguments")
        view = self._view_object(a.get("view"))
        self.views[view["id"]] = view
        return {"view": copy.deepcopy(view)}

    def _views_update(self, a: Json) -> Json:
        vid, ext = a.get("view_id"), a.get("external_id")
        keys = [k for k, v in self.views.items() if (vid and v["id"] == vid) or (ext and v["external_id"] == ext)]
        _need(keys, "not_found")
        old = self.views[keys[0]]
        _need(a.get("hash") in (None, "", old["hash"]), "hash_conflict")
        self.views[keys[0]] = self._view_object(a.get("view"), old["id"])
        return {"view": copy.deepcopy(self.views[keys[0]])}

    def _views_publish(self, a: Json) -> Json:
        view, key = a.get("view"), f"home:{a.get('user_id', '')}"
        _need(a.get("user_id") and isinstance(view, dict) and view.get("type") == "home", "invalid_arguments")
        self.views[key] = self._view_object(view, self.views[key]["id"] if key in self.views else None)
        return {"view": copy.deepcopy(self.views[key])}

    def _users_info(self, a: Json) -> Json:
        user = self._users.get(str(a.get("user", "")))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": copy.deepcopy(user) | ({"is_stranger": True} if user["team_id"] != self.team_id else {})}

    def _users_lookup_by_email(self, a: Json) -> Json:
        email = str(a.get("email", "")).lower()
        found = [u for u in self._users.values() if u["profile"].get("email", "").lower() == email]
        _need(bool(found), "users_not_found")
        return {"user": copy.deepcopy(found[0])}

    def _usergroups_users_list(self, a: Json) -> Json:
        _need(a.get("usergroup") in self._groups, "no_such_subteam")
        return {"users": list(self._groups[a["usergroup"]])}

    def _files_get_upload_url(self, a: Json) -> Json:
        _need(a.get("filename") and a.get("length"), "invalid_arguments")
        fid = self._new_id("F")
        self._files[fid] = {"filename": a["filename"], "length": int(a["length"]), "content": None}
        return {"upload_url": f"{self.url.removesuffix('/api/')}/upload/v1/{fid}", "file_id": fid}

    def _files_complete_upload(self, a: Json) -> Json:
        entries = a["files"] if isinstance(a.get("files"), list) else []
        _need(entries, "invalid_arguments")
        _need(
            all(self._files.get(f.get("id"), {}).get("content") is not None for f in entries),
            "file_not_found",
        )
        channel = str(a.get("channel_id") or str(a.get("channels") or "").split(",")[0])
        _need(not channel or channel in self._channels, "channel_not_found")
        shared = []
        for f in entries:
            stored, extra = self._files[f["id"]], {k: a.get(k) for k in ("initial_comment", "thread_ts")}
            title, content = f.get("title") or stored["filename"], stored["content"]
            self.uploads.append({"file_id": f["id"], "filename": stored["filename"], "title": title,
                                 "content": content, "channel": channel or None, **extra})  # fmt: skip
            shared.append({"id": f["id"], "name": stored["filename"], "title": title, "size": len(content)})
        if channel:  # Slack shares the files as a message from the app, carrying the initial comment
            note = {"text": a.get("initial_comment"), "thread_ts": a.get("thread_ts")}
            self._append(channel, {**self._bot_message(note, self._next_ts()), "files": shared, "upload": True})
        return {"files": [{"id": f["id"], "title": f["title"]} for f in shared]}


_METHODS: dict[str, Callable[[FakeSlack, Json], Json]] = {
    "apps.connections.open": FakeSlack._apps_connections_open,
    "auth.test": FakeSlack._auth_test,
    "team.info": FakeSlack._team_info,
    "users.lookupByEmail": FakeSlack._users_lookup_by_email,
    "conversations.info": FakeSlack._conversations_info,
    "conversations.members": FakeSlack._conversations_members,
    "conversations.open": FakeSlack._conversations_open,
    "conversations.history": FakeSlack._conversations_history,
    "conversations.replies": FakeSlack._conversations_replies,
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.update": FakeSlack._chat_update,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.getPermalink": FakeSlack._chat_get_permalink,
    "chat.delete": FakeSlack._chat_delete,
    "reactions.add": FakeSlack._reactions_add,
    "reactions.remove": FakeSlack._reactions_remove,
    "reactions.get": FakeSlack._reactions_get,
    "views.open": FakeSlack._views_open,
    "views.push": FakeSlack._views_open,
    "views.update": FakeSlack._views_update,
    "views.publish": FakeSlack._views_publish,
    "users.info": FakeSlack._users_info,
    "usergroups.users.list": FakeSlack._usergroups_users_list,
    "files.getUploadURLExternal": FakeSlack._files_get_upload_url,
    "files.completeUploadExternal": FakeSlack._files_complete_upload,
}


class _Handler(BaseHTTPRequestHandler):
    """Routes /api/<method> to the fake, /upload/v1/<file_id> to the upload sink, GET /link/ to Socket Mode."""

    fake: FakeSlack

    def do_POST(self) -> None:
        """Slack accepts POST (and GET) for every method."""
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if parts.path.startswith("/api/"):
            ctype, auth = self.headers.get("Content-Type", ""), self.headers.get("Authorization", "")
            status, headers, payload = self.fake._handle_api(parts.path[5:], parts.query, body, ctype, auth)
        elif parts.path.startswith("/upload/v1/"):
            status, headers, payload = self.fake._receive_upload(parts.path.rsplit("/", 1)[-1], body)
        else:
            status, headers, payload = 404, {"Content-Type": "text/plain"}, b"not found"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """Web API methods, plus the Socket Mode URL handed out by apps.connections.open."""
        parts = urlsplit(self.path)
        if parts.path == "/link/":
            self.fake._socket.serve(self, parse_qs(parts.query).get("ticket", [""])[0])
        else:
            self.do_POST()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; the fake's `calls` list is the log."""
