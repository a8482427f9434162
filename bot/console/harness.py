"""The console harness: the real app behind real HTTP, against the fake Slack and fake Linear, rendered as text."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO
from urllib.parse import urlencode

import httpx

from bot.console import payloads
from bot.console.fake_linear import FakeLinear
from bot.console.fake_slack import FakeSlack
from bot.console.render import USER_NAMES, render_call
from bot.console.world import CHANNEL_IDS, CHANNELS, CUSTOMER_TEAM, OUR_TEAM, USER_IDS, USERS
from bot.settings import Settings
from storage import queries
from storage.db import utcnow


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
        self.fake.other_teams[CUSTOMER_TEAM] = "Acme"
        self.secret, self.linear_secret, self.events_secret = (uuid.uuid4().hex for _ in range(3))
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
                "linear_webhook_secret": self.linear_secret,
                "feedback_events_secret": self.events_secret,
            }
            | linear
        )
        self.bot = create_app(self.settings, **app_kwargs)
        suggestions = self.bot.suggestions
        if suggestions is not None:
            suggestions.settled.wait(self.settings.model_wait_seconds)
            if suggestions.state != "ready":
                out.write(f"(suggestions unavailable: {suggestions.error or 'the model is still loading'})\n")
        self._serve()
        self.last_view: dict[str, Any] | None = None
        self.seen, self.last_user, self.offset = 0, "U0STAFF", timedelta(0)

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
        self.http.close()
        self.server.close()
        self.bot.close()
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
        sig = payloads.sign(secret or self.secret, raw, ts)
        sent = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig, "Content-Type": content_type}
        return self.http.post("/slack/events", content=raw, headers=sent | (headers or {}))

    def post_linear(self, body: bytes, *, delivery: str | None = None, signature: str | None = None) -> httpx.Response:
        """POSTs a Linear webhook delivery to /linear/webhook, signed with the webhook secret unless told."""
        headers = {"Content-Type": "application/json; charset=utf-8", "Linear-Event": "Issue"}
        headers["Linear-Delivery"] = delivery or str(uuid.uuid4())
        headers["Linear-Signature"] = signature or payloads.linear_signature(self.linear_secret, body)
        return self.http.post("/linear/webhook", content=body, headers=headers)

    def move_issue(self, issue: str, state: str, *, webhook: bool = True) -> bytes:
        """Moves a fake Linear issue to a workflow state (name or type) and, like Linear, sends the webhook;
        returns the delivered body (tests redeliver it)."""
        before = next(i for i in self.linear.issues() if issue in (i["id"], i["identifier"]))
        self.linear.set_issue_state(issue, state)
        after = next(i for i in self.linear.issues() if i["id"] == before["id"])
        body = json.dumps(payloads.linear_issue_webhook(after, before["state"]["id"])).encode()
        if webhook:
            resp = self.post_linear(body)
            self.out.write(f"(Linear webhook: HTTP {resp.status_code} {resp.json().get('outcome', resp.text)})\n")
        return body

    def advance(self, delta: timedelta) -> None:
        """Moves the bot's clock (deps.now) forward, then runs every scheduled sweep as the scheduler would."""
        self.offset += delta
        self.bot.deps.now = lambda: utcnow() + self.offset
        self.out.write(f"(the bot's clock is now {self.bot.deps.now():%a %Y-%m-%d %H:%M} UTC)\n")
        for name in self.bot.scheduler.sweeps:
            result = self.bot.scheduler.run_now(name)
            if result.get("queued") or result.get("moved") or result.get("reminded") or result.get("overdue"):
                self.out.write(f"  {name}: {result}\n")
        self.settle()

    def report(self, kind: str) -> str:
        """This period's report (at the bot's clock) as Markdown; the chart goes to a file whose path is shown."""
        from bot.reports import chart, render, service
        from bot.reports.periods import period_for

        now = self.bot.deps.now()
        period = period_for(kind, now, self.settings.feedback_tz)
        with self.bot.deps.transaction() as session:
            built = service.build(session, self.settings, period, now)
        path = None
        if built.chart is not None:
            path = os.path.join(tempfile.gettempdir(), f"feedbackbot-{period.key.replace(':', '-')}.png")
            with open(path, "wb") as handle:
                handle.write(chart.png(built.chart))
        return render.markdown(built, path) + (f"(chart written to {path})\n" if path else "")

    def _signed(self, body: str, content_type: str) -> httpx.Response:
        return self.post_signed(body, content_type)

    def send_event(self, event: dict[str, Any], *, shared: bool | None = None) -> None:
        """An Events API envelope as Slack sends it to an app installed in our workspace."""
        envelope = payloads.event_envelope(event, shared=shared)
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
            "trigger_id": payloads.trigger_id(),
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

    # --- settling and rendering ------------------------------------------------------------------

    def settle(self, horizon: float = 1.5) -> None:
        """Waits for listeners and drains the outbox until nothing is due within `horizon` s, then renders."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.bot.executor.wait_idle(10)
            if self.bot.worker.drain() or not self.bot.executor.wait_idle(0.01):
                continue
            if not self._due_soon(horizon):
                break
            time.sleep(0.05)
        for call in self.fake.calls[self.seen :]:
            text = render_call(call.method, call.args, call.response, CHANNEL_IDS, USER_IDS)
            if text:
                self.out.write(text + "\n")
            if call.method in {"views.open", "views.push", "views.update"} and call.response.get("ok"):
                self.last_view = call.response["view"]
        self.seen = len(self.fake.calls)

    def _due_soon(self, horizon: float) -> bool:
        with self.bot.deps.transaction() as session:
            return queries.due_before(session=session, until=self.bot.deps.now() + timedelta(seconds=horizon))

    # --- commands --------------------------------------------------------------------------------

    def last_message(self, channel: str) -> dict[str, Any]:
        """The newest human message in a channel (what `react`/`shortcut` act on)."""
        cid = CHANNELS[channel.lstrip("#")][0]
        for msg in reversed(self.fake.messages(cid)):
            if not msg.get("bot_id"):
                return msg
        raise ValueError(f"no message in #{channel.lstrip('#')} yet")
