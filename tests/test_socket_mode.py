"""`feedbackbot run` in Socket Mode, end to end: the real process, slack_sdk's WebSocket client, the fake Slack."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.console import CHANNELS, USERS
from bot.console.fake_slack import Call, FakeSlack, socket_envelope
from tests.conftest import payload

ROOT = Path(__file__).resolve().parents[1]
SETTLE = 1.5  # three worker polls: long enough for a duplicate card or receipt to show up if one were coming


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _handshake_status(ws_url: str) -> int:
    """The HTTP status a WebSocket upgrade to `ws_url` gets (101 when it would connect)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(ws_url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=5)
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    conn.request("GET", f"{parts.path}?{parts.query}", headers={**headers, "Sec-WebSocket-Key": "dGhlIHNhbXBsZQ=="})
    status = conn.getresponse().status
    conn.close()
    return status


@dataclass
class Running:
    """The bot process connected to the fake over Socket Mode; `log` has its output for failure messages."""

    fake: FakeSlack
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def wait(self, what: str, done: Callable[[], Any], timeout: float = 15.0) -> None:
        """Poll until `done()`, failing fast (with the bot's log) if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{what}: not after {timeout}s (exit code {self.proc.poll()}); bot log:\n{tail}")
            time.sleep(0.05)

    def cards(self) -> list[Call]:
        """Triage cards: chat.postMessage to the triage channel under a card key (not the scheduled reports)."""
        return [
            c
            for c in self.fake.calls_to("chat.postMessage")
            if c.args.get("channel") == "C0TRIAGE"
            and str(((c.args.get("metadata") or {}).get("event_payload") or {}).get("key", "")).startswith("card:")
        ]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One `python app.py run` with only an app token and a bot token (no signing secret: Socket Mode needs none)."""
    tmp = tmp_path_factory.mktemp("socket_mode")
    port = _free_port()
    with FakeSlack() as fake:
        for name, (uid, team, real) in USERS.items():
            fake.add_user(uid, name, team_id=team, real_name=real)
        for name, (cid, shared) in CHANNELS.items():
            fake.add_channel(cid, name, is_ext_shared=shared)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_APP_TOKEN": "xapp-test",
            "SLACK_API_URL": fake.url,
            "FEEDBACK_TRIAGE_CHANNEL": "C0TRIAGE",
            "DATABASE_URL": f"sqlite:///{tmp / 'f.db'}",
            "FEEDBACKBOT_CONFIG": str(tmp / "none.toml"),
            "FEEDBACK_SUGGESTIONS": "false",
        }
        log = tmp / "bot.log"
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the bot mid-test
            proc = subprocess.Popen(
                [sys.executable, "app.py", "run", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
            )
        bot = Running(fake, proc, log, port)
        try:
            bot.wait("Socket Mode connection", fake.socket_connected.is_set, timeout=60)
            yield bot
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_connects_once_with_the_app_token(running: Running) -> None:
    opens = running.fake.calls_to("apps.connections.open")
    assert len(opens) == 1 and opens[0].response["url"].startswith("ws://127.0.0.1:")


def test_event_is_acked_captured_once_and_redelivery_adds_nothing(running: Running) -> None:
    fake = running.fake
    msg = fake.post_as_user("C0SHARED", "U0CUST", "The CSV export drops the last row when a filter is applied")
    event = payload("slack_event_message_external.json")
    event["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=msg["text"])
    first = socket_envelope("events_api", event)
    fake.socket_send(first)
    assert fake.wait_for_ack(first["envelope_id"]) == {"envelope_id": first["envelope_id"]}
    running.wait("receipt and triage card", lambda: fake.calls_to("reactions.add") and running.cards())
    receipt = fake.calls_to("reactions.add")[0].args
    assert (receipt["channel"], receipt["timestamp"]) == ("C0SHARED", msg["ts"])

    # Slack redelivers an unacked-looking event in a new envelope: same payload and event_id, retry_attempt 1.
    again = socket_envelope("events_api", event, retry_attempt=1)
    assert (again["retry_attempt"], again["retry_reason"]) == (1, "http_timeout")
    fake.socket_send(again)
    fake.wait_for_ack(again["envelope_id"])
    time.sleep(SETTLE)
    assert len(fake.calls_to("reactions.add")) == 1 and len(running.cards()) == 1


def test_global_shortcut_opens_the_feedback_modal(running: Running) -> None:
    shortcut = payload("slack_shortcut_global.json")
    envelope = socket_envelope("interactive", shortcut)
    assert envelope["accepts_response_payload"] is False
    running.fake.socket_send(envelope)
    running.fake.wait_for_ack(envelope["envelope_id"])
    running.wait("views.open", lambda: running.fake.calls_to("views.open"))
    assert running.fake.calls_to("views.open")[0].args["trigger_id"] == shortcut["trigger_id"]


def test_an_envelope_no_listener_wants_is_still_acked(running: Running) -> None:
    event = payload("slack_event_message_external.json")
    event.update(event_id="Ev0UNHANDLED", event={"type": "app_mention", "user": "U0STAFF", "text": "hi", "ts": "1.2"})
    envelope = socket_envelope("events_api", event)
    running.fake.socket_send(envelope)
    running.fake.wait_for_ack(envelope["envelope_id"], timeout=2)


def test_fake_speaks_socket_mode_to_slack_sdks_client_and_refreshes_connections() -> None:
    """The fake alone, in-process: token rules, hello first, a response payload, `disconnect` then a fresh URL."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.socket_mode.builtin import SocketModeClient
    from slack_sdk.socket_mode.response import SocketModeResponse

    with FakeSlack() as fake:
        web = WebClient(token="xoxb-test", base_url=fake.url)
        with pytest.raises(SlackApiError, match="not_allowed_token_type"):
            web.apps_connections_open(app_token="xoxb-test")
        with pytest.raises(SlackApiError, match="not_allowed_token_type"):
            WebClient(token="xapp-test", base_url=fake.url).auth_test()
        seen: list[str] = []
        client = SocketModeClient("xapp-test", web_client=web, on_message_listeners=[seen.append])
        client.socket_mode_request_listeners.append(
            lambda c, req: c.send_socket_mode_response(SocketModeResponse(req.envelope_id, payload={"text": "hi"}))
        )
        try:
            client.connect()
            assert fake.socket_connected.wait(5)
            command = socket_envelope("slash_commands", payload("slack_command_feedback.json"))
            fake.socket_send(command)
            assert fake.wait_for_ack(command["envelope_id"]) == {
                "envelope_id": command["envelope_id"],
                "payload": {"text": "hi"},
            }
            assert '"type": "hello"' in seen[0] and command["accepts_response_payload"] is True
            old_session, old_url = client.session_id(), client.wss_uri
            fake.socket_send({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}})
            deadline = time.monotonic() + 5
            while client.session_id() == old_session and time.monotonic() < deadline:
                time.sleep(0.05)  # closing mid-reconnect races inside slack_sdk, so wait for the new session
            assert client.is_connected() and client.wss_uri != old_url
            assert sum(c.response["ok"] for c in fake.calls_to("apps.connections.open")) == 2
            assert _handshake_status(str(old_url)) == 401, "a ticket opens one connection"
        finally:
            client.close()


def test_health_and_readiness_are_served_in_socket_mode(running: Running) -> None:
    import httpx

    base = f"http://127.0.0.1:{running.port}"
    running.wait("/readyz", lambda: httpx.get(f"{base}/readyz").status_code == 200)
    ready = httpx.get(f"{base}/readyz").json()
    assert ready == {"ready": True, "database": True, "slack_auth": True, "socket": True}
    assert httpx.get(f"{base}/healthz").json()["ok"] is True


def _customer_envelope(fake: FakeSlack, text: str, event_id: str) -> dict[str, Any]:
    """The documented external-message event, for a message posted into the fake, in a Socket Mode envelope."""
    event = payload("slack_event_message_external.json")
    msg = fake.post_as_user("C0SHARED", "U0CUST", text)
    event["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=msg["text"])
    event["event_id"] = event_id
    return socket_envelope("events_api", event)


def test_an_ack_across_a_refresh_takes_under_a_second(running: Running) -> None:
    fake = running.fake
    opens = len(fake.calls_to("apps.connections.open"))
    fake.socket_send({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}})
    running.wait("a new connection", lambda: len(fake.calls_to("apps.connections.open")) > opens)
    running.wait("connected", fake.socket_connected.is_set)
    envelope = _customer_envelope(fake, "After the refresh: exports still drop a row", "Ev0REFRESH1")
    started = time.monotonic()
    fake.socket_send(envelope)
    fake.wait_for_ack(envelope["envelope_id"], timeout=5)
    assert time.monotonic() - started < 1.0


def test_a_half_open_connection_is_replaced_within_ten_seconds(running: Running) -> None:
    fake = running.fake
    opens = len(fake.calls_to("apps.connections.open"))
    started = time.monotonic()
    fake.socket_go_silent()  # no close frame, no pongs: only the client's own checks can notice
    running.wait("a new connection", lambda: len(fake.calls_to("apps.connections.open")) > opens, timeout=20)
    assert time.monotonic() - started < 10.5
    running.wait("connected", fake.socket_connected.is_set)
    envelope = _customer_envelope(fake, "After the drop: the dashboard is slow", "Ev0AFTERDROP")
    fake.socket_send(envelope)
    fake.wait_for_ack(envelope["envelope_id"], timeout=3)


def test_a_bad_app_token_exits_with_a_message_naming_it(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        env = {
            "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_APP_TOKEN": "xoxb-not-an-app-token", "SLACK_API_URL": fake.url,
            "FEEDBACK_TRIAGE_CHANNEL": "C0TRIAGE", "DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}",
            "FEEDBACKBOT_CONFIG": str(tmp_path / "none.toml"), "FEEDBACK_SUGGESTIONS": "false",
        }  # fmt: skip
        done = subprocess.run(
            [sys.executable, "app.py", "run", "--port", str(_free_port())],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert "SLACK_APP_TOKEN" in done.stderr and "Traceback" not in done.stderr
