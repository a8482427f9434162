"""SlackGateway: the narrow surface of the Slack Web API the bot uses, with errors sorted for retries."""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.kit import notice_modal

log = logging.getLogger(__name__)

METADATA_EVENT = "feedbackbot_outbox"
PACE_SECONDS = 1.1  # Slack allows about one message per second per channel


class SlackError(Exception):
    """A Slack call failed; `retryable` says whether the outbox should try again."""

    def __init__(self, message: str, *, error: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


_ERROR_CODE = re.compile(r"^[a-z0-9_.]{1,64}$")
_HTML = re.compile(r"<(!doctype|html|head|body)\b", re.IGNORECASE)


class OneLine(logging.Filter):
    """slack_sdk logs a whole HTML error page when an outage answers with one; keep the first 200 chars."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = original = record.getMessage()
        page = _HTML.search(text)
        if page:
            text = f"{text[: page.start()]}[an HTML page of {len(text) - page.start()} chars]"
        if "\n" in text or len(text) > 300:
            text = " ".join(text.split())[:200] + " …"
        if text != original:
            record.msg, record.args = text, None
        return True


def _classify(method: str, exc: Exception) -> SlackError:
    """Turns slack_sdk and network exceptions into one error type with a retry decision, as one short line."""
    if isinstance(exc, SlackApiError):
        resp = exc.response
        status = getattr(resp, "status_code", 200)
        raw_error = str(resp.get("error", "unknown")) if hasattr(resp, "get") else "unknown"
        error = raw_error if _ERROR_CODE.match(raw_error) else f"http_{status}"  # not an HTML page
        if status == 429 or error == "ratelimited":
            raw = (resp.headers or {}).get("Retry-After") or (resp.headers or {}).get("retry-after") or "1"
            return SlackError(f"{method}: rate limited", error="ratelimited", retryable=True, retry_after=float(raw))
        if status >= 500 or error in {
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        }:
            return SlackError(f"{method}: Slack unavailable ({status} {error})", error=error, retryable=True)
        return SlackError(f"{method}: {error}", error=error, retryable=False)
    if isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError, OSError)):
        return SlackError(f"{method}: network error {str(exc)[:200]}", error="network", retryable=True)
    if isinstance(exc, ValueError):  # a 5xx with a non-JSON body
        return SlackError(f"{method}: unreadable answer", error="bad_response", retryable=True)
    raise exc


class SlackGateway:
    """Wraps one WebClient; caches auth.test and users.info because they never change mid-run."""

    def __init__(self, client: WebClient):
        self.client = client
        sdk_log = logging.getLogger("slack_sdk.web.base_client")
        if not any(isinstance(f, OneLine) for f in sdk_log.filters):
            sdk_log.addFilter(OneLine())
        self._auth: dict[str, Any] | None = None
        self._users: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()
        self._dms: dict[str, str] = {}
        self._team_names: dict[str, str | None] = {}
        self._last_post: dict[str, float] = {}
        self._pace_lock = threading.Lock()

    def _call(self, method: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise _classify(method, exc) from exc

    def auth_cached(self) -> dict[str, Any] | None:
        """auth.test's answer if we have it: request paths read this and never call Slack before an ack."""
        return self._auth

    def warm_up(self, stop: threading.Event, *, max_wait: float = 30.0) -> bool:
        """auth.test at start-up, retried with backoff while Slack is down, so no request ever waits on it."""
        wait = 1.0
        while not stop.is_set():
            try:
                self.auth()
                return True
            except SlackError as exc:
                if not exc.retryable:
                    log.error("auth.test refused the bot token (%s): check SLACK_BOT_TOKEN", exc.error)
                    return False
                log.warning("auth.test failed (%s); retrying in %.0f s", exc.error, wait)
            stop.wait(wait)
            wait = min(wait * 2, max_wait)
        return False

    def auth(self) -> dict[str, Any]:
        """auth.test once: our team id and bot user id decide who is internal."""
        with self._lock:
            if self._auth is None:
                self._auth = dict(self._call("auth.test", self.client.auth_test).data)
            return self._auth

    @property
    def team_id(self) -> str:
        """The installing workspace."""
        return str(self.auth()["team_id"])

    @property
    def bot_user_id(self) -> str:
        """The bot's own user, so we never capture ourselves."""
        return str(self.auth().get("user_id", ""))

    def user(self, user_id: str) -> dict[str, Any]:
        """users.info, cached; an unknown user becomes an empty dict rather than an error."""
        if user_id in self._users:
            return self._users[user_id]
        try:
            info = dict(self._call("users.info", self.client.users_info, user=user_id).data["user"])
        except SlackError as exc:
            if exc.retryable:
                raise
            log.warning("users.info %s failed: %s", user_id, exc.error)
            info = {}
        self._users[user_id] = info
        return info

    def is_member(self, user_id: str, team_id: str | None = None) -> bool:
        """Full members of the installing workspace: not guests, not Slack Connect users."""
        info = self.user(user_id)
        team = info.get("team_id") or team_id
        if not info or team != self.team_id:
            return False
        return not (info.get("is_restricted") or info.get("is_ultra_restricted") or info.get("is_stranger"))

    def member_cached(self, user_id: str, team_id: str | None, group: str | None = None) -> bool | None:
        """is_member (and group membership) from the caches alone; None when an answer needs Slack."""
        if team_id and "team_id" in (self._auth or {}) and team_id != self.team_id:
            return False
        cached_group = self._groups.get(group) if group else None
        if user_id not in self._users or self._auth is None or (group and not cached_group):
            return None
        if group and cached_group and user_id not in cached_group[1]:
            return False
        return self.is_member(user_id, team_id)

    def usergroup_members(self, group_id: str, ttl: float = 300.0) -> set[str]:
        """usergroups.users.list, cached for `ttl` seconds (membership changes rarely)."""
        cached = self._groups.get(group_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        users = set(self._call("usergroups.users.list", self.client.usergroups_users_list, usergroup=group_id)["users"])
        self._groups[group_id] = (time.monotonic() + ttl, users)
        return users

    def channel_info(self, channel: str) -> dict[str, Any]:
        """conversations.info, for the is_ext_shared flag."""
        return dict(self._call("conversations.info", self.client.conversations_info, channel=channel)["channel"])

    def fetch_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One message by ts: history holds top-level messages; a reply is found in its thread."""
        window = {"channel": channel, "latest": ts, "oldest": ts, "inclusive": True}
        hist = self._call("conversations.history", self.client.conversations_history, limit=1, **window)
        found = [m for m in hist.get("messages", []) if m.get("ts") == ts]
        if not found:  # replies always lists the thread's parent first, so ask for more than one
            replies = self._call("conversations.replies", self.client.conversations_replies, ts=ts, limit=10, **window)
            found = [m for m in replies.get("messages", []) if m.get("ts") == ts]
        return dict(found[0]) if found else None

    def message_link(self, channel: str, ts: str, thread_ts: str | None = None) -> str | None:
        """A message's permalink built from the workspace URL (auth.test), as chat.getPermalink would return it,
        without a call per message; asks Slack only when the URL is not known."""
        base = str((self._auth or {}).get("url") or "")
        if not base.startswith("https://"):
            return self.permalink(channel, ts)
        link = f"{base.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
        return link + (f"?thread_ts={thread_ts}&cid={channel}" if thread_ts and thread_ts != ts else "")

    def permalink(self, channel: str, ts: str) -> str | None:
        """A link back to the customer's words; missing is tolerable."""
        try:
            resp = self._call("chat.getPermalink", self.client.chat_getPermalink, channel=channel, message_ts=ts)
        except SlackError as exc:
            if exc.retryable:
                raise
            return None
        return str(resp.get("permalink")) if resp.get("permalink") else None

    def post(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> str:
        """chat.postMessage; the outbox key rides in message metadata so a crash can be reconciled."""
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if blocks:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if key:
            kwargs["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"key": key}}
        return str(self._call("chat.postMessage", self.client.chat_postMessage, **kwargs)["ts"])

    def find_posted(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float | None = None, max_pages: int = 10
    ) -> str | None:
        """Looks for a message we already posted for this outbox key (after a crash mid-send), page by page."""
        method, fn = (
            ("conversations.replies", self.client.conversations_replies)
            if thread_ts
            else ("conversations.history", self.client.conversations_history)
        )
        args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
        if thread_ts:
            args["ts"] = thread_ts
        if since is not None:
            args["oldest"] = f"{since:.6f}"
        for _ in range(max_pages):
            resp = self._call(method, fn, **args)
            for msg in resp.get("messages", []):
                meta = msg.get("metadata") or {}
                if meta.get("event_type") == METADATA_EVENT and (meta.get("event_payload") or {}).get("key") == key:
                    return str(msg["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
            args["cursor"] = cursor
        return None

    def post_once(
        self,
        channel: str,
        text: str,
        *,
        key: str,
        reconcile_since: float | None,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        paced: bool = False,
    ) -> str:
        """Posts under an outbox key; after an attempt that died mid-send, first finds the message it may have left.
        `paced` keeps this process at or under one message per second per channel (Slack's posting limit)."""
        found = (
            self.find_posted(channel, key, thread_ts=thread_ts, since=reconcile_since)
            if reconcile_since is not None
            else None
        )
        if found:
            return found
        if paced:
            self.pace(channel)
        return self.post(channel, text, blocks=blocks, thread_ts=thread_ts, key=key)

    def pace(self, channel: str, interval: float = PACE_SECONDS) -> None:
        """Waits until `interval` has passed since this process last posted a paced message to the channel."""
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._last_post.get(channel, 0.0) + interval)
            self._last_post[channel] = slot
        if slot > now:
            time.sleep(slot - now)

    def upload(self, channel: str, content: bytes, *, filename: str, title: str, thread_ts: str | None = None) -> str:
        """files_upload_v2 (get an upload URL, send the bytes, complete into the channel or thread); the file id."""
        kwargs: dict[str, Any] = {"channel": channel, "content": content, "filename": filename, "title": title}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        resp = self._call("files.upload_v2", self.client.files_upload_v2, **kwargs)
        files = resp.get("files") or [resp.get("file") or {}]
        return str(files[0].get("id", ""))

    def find_file(self, channel: str, thread_ts: str, title: str) -> bool:
        """Whether a file with this title was already shared in the thread (an upload that died mid-send)."""
        resp = self._call("conversations.replies", self.client.conversations_replies, channel=channel, ts=thread_ts)
        return any(f.get("title") == title for m in resp.get("messages", []) for f in m.get("files") or [])

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        """users.lookupByEmail; None when no one in the workspace has that email."""
        try:
            return dict(self._call("users.lookupByEmail", self.client.users_lookupByEmail, email=email)["user"])
        except SlackError as exc:
            if exc.retryable:
                raise
            return None

    def team_name(self, team_id: str) -> str | None:
        """A Slack Connect organisation's name (team.info, cached for the process); None when Slack will not say."""
        if team_id not in self._team_names:
            try:
                resp = self._call("team.info", self.client.team_info, team=team_id)
            except SlackError as exc:
                if exc.retryable:
                    raise
                self._team_names[team_id] = None  # a refusal is an answer too: not asked again for every card
                return None
            self._team_names[team_id] = str((resp.get("team") or {}).get("name") or team_id)
        return self._team_names[team_id]

    def dm_channel(self, user_id: str) -> str:
        """The app's DM conversation with a person (conversations.open, cached), so posts there can be found."""
        if user_id not in self._dms:
            resp = self._call("conversations.open", self.client.conversations_open, users=user_id)
            self._dms[user_id] = str((resp.get("channel") or {})["id"])
        return self._dms[user_id]

    def display_names(self, user_ids: set[str]) -> dict[str, str]:
        """Names for mentions in customer text (users.info, cached); an unknown user keeps its id."""
        names = {}
        for uid in user_ids:
            try:
                info = self.user(uid)
            except SlackError:
                info = {}
            profile = info.get("profile") or {}
            names[uid] = profile.get("display_name") or profile.get("real_name") or info.get("name") or uid
        return names

    def full_name(self, user_id: str) -> str:
        """A person's full name for documents outside Slack (best effort: the id when Slack cannot say)."""
        try:
            info = self.user(user_id)
        except SlackError:
            info = {}
        profile = info.get("profile") or {}
        return str(info.get("real_name") or profile.get("real_name") or info.get("name") or user_id)

    def update(self, channel: str, ts: str, text: str, *, blocks: list[dict[str, Any]] | None = None) -> None:
        """chat.update, so a card changes in place."""
        self._call("chat.update", self.client.chat_update, channel=channel, ts=ts, text=text, blocks=blocks or [])

    def react(self, channel: str, ts: str, name: str) -> None:
        """reactions.add; already_reacted means the job is done."""
        try:
            self._call("reactions.add", self.client.reactions_add, channel=channel, timestamp=ts, name=name)
        except SlackError as exc:
            if exc.error != "already_reacted":
                raise

    def tell(self, user: str, text: str, *, channel: str | None = None, trigger_id: str | None = None) -> None:
        """A private answer: ephemeral where the person acted, else a modal on their trigger, else a DM."""
        if channel:
            self.ephemeral(channel, user, text)
        elif trigger_id:
            self.open_view(trigger_id, notice_modal("Feedback Loop", text))
        else:
            self.post(user, text)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A private note to one person (refusals, errors)."""
        self._call("chat.postEphemeral", self.client.chat_postEphemeral, channel=channel, user=user, text=text)

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> str:
        """views.open; returns the view id."""
        return str(self._call("views.open", self.client.views_open, trigger_id=trigger_id, view=view)["view"]["id"])

    def publish_home(self, user_id: str, view: dict[str, Any]) -> None:
        """views.publish for App Home."""
        self._call("views.publish", self.client.views_publish, user_id=user_id, view=view)
