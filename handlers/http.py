"""The HTTP edge: a WSGI router in front of Bolt (/slack/events, /healthz), and Socket Mode's acking handler."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.capture import inbound as capture
from bot.deps import Deps
from bot.runtime.health import health, readiness
from bot.slack import payloads
from handlers.usage import usage_events
from handlers.webhooks import linear_webhook

log = logging.getLogger(__name__)
SOCKET_PING_SECONDS = 1.5
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
WEBHOOKS = {"/linear/webhook": linear_webhook, "/events/usage": usage_events}  # signed by their senders, not Slack


def _respond(start: StartResponse, status: str, body: dict[str, Any], exc_info: Any = None) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start(status, headers, exc_info) if exc_info else start(status, headers)
    return [data]


def valid_signature(secret: str, body: bytes, timestamp: str, signature: str, *, now: float | None = None) -> bool:
    """Slack's v0 signature over the raw bytes (any encoding), within 5 minutes of now."""
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > 300:
        return False
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _answer_unhandled(start: StartResponse) -> StartResponse:
    """Bolt answers 404 to events no listener wants; Slack would retry those, so they become 200."""

    def wrapped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("404"):
            log.info("no listener for this request; acknowledged and ignored")
            status = "200 OK"
        return start(status, headers, exc_info) if exc_info else start(status, headers)

    return wrapped


def _health(start: StartResponse, deps: Deps, path: str, socket_connected: Callable[[], bool] | None) -> list[bytes]:
    """/healthz: the process answers (and what it holds); /readyz: it can take traffic now."""
    if path == "/healthz":
        return _respond(start, "200 OK", health(deps))
    ready = readiness(deps, socket_connected)
    return _respond(start, "200 OK" if ready["ready"] else "503 Service Unavailable", ready)


def make_wsgi(
    app: App, deps: Deps, socket_connected: Callable[[], bool] | None = None, *, events: bool = True
) -> WSGIApp:
    """Signature first, then shape, then Bolt; a malformed signed body is a 400, our own failure a 500."""
    bolt = SlackRequestHandler(app)
    secret = deps.settings.slack_signing_secret.get_secret_value() if deps.settings.slack_signing_secret else ""

    def wsgi(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method == "GET" and path in ("/healthz", "/readyz"):
            return _health(start, deps, path, socket_connected)
        if path in WEBHOOKS and method == "POST" and events:
            return _respond(start, *WEBHOOKS[path](deps, environ))
        if path != "/slack/events" or method != "POST" or not events:  # a worker-only process serves health only
            return _respond(start, "404 Not Found", {"ok": False, "error": "not_found"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not secret or not valid_signature(secret, body, timestamp, signature):
            return _respond(start, "401 Unauthorized", {"ok": False, "error": "invalid_signature"})
        reason = payloads.problem(body, environ.get("CONTENT_TYPE", ""))
        if reason:
            log.warning("rejected a signed request Slack would not send (%d bytes): %s", len(body), reason)
            return _respond(start, "400 Bad Request", {"ok": False, "error": "malformed_payload", "detail": reason})
        if "json" in environ.get("CONTENT_TYPE", "") and capture.accept_event(deps, json.loads(body)):
            return _respond(start, "200 OK", {"ok": True})  # stored first: the 200 means "it is on disk"
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            return list(bolt(environ, _answer_unhandled(start)))
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("error %s while dispatching a signed request", error_id)
            body_out = {"ok": False, "error": "internal_error", "id": error_id}
            return _respond(start, "500 Internal Server Error", body_out, exc_info=sys.exc_info())

    return wsgi


def socket_mode_handler(app: App, deps: Deps, app_token: str) -> Any:
    """Socket Mode: events we act on are stored before their ack, like in HTTP mode; envelopes no listener wants
    are acked, not redelivered."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
    from slack_bolt.response import BoltResponse
    from slack_sdk.socket_mode.response import SocketModeResponse

    class AckingHandler(SocketModeHandler):
        def handle(self, client: Any, req: Any) -> None:
            start = time.time()
            if req.type == "events_api" and isinstance(req.payload, dict) and capture.accept_event(deps, req.payload):
                client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            resp = run_bolt_app(self.app, req)
            if resp.status == 404:
                log.info("no listener for this envelope; acknowledged and ignored")
                resp = BoltResponse(status=200, body="")
            send_response(client, req, resp, start)

    # a ping every 1.5 s: a half-open connection (no pong for 6 s) is replaced within 10 s, not after a minute
    handler = AckingHandler(app, app_token, ping_interval=SOCKET_PING_SECONDS)
    handler.client.__class__ = _handover_client()
    return handler


def _handover_client() -> type:
    """slack_sdk's client, but on a refresh the new connection takes over at once: slack_sdk keeps reading the old
    socket until its pending read times out, so the first envelope on the new connection was acked after ~3 s,
    past Slack's limit. Here the old socket is shut down (waking that read) and closed in the background."""
    from slack_sdk.socket_mode.builtin import SocketModeClient
    from slack_sdk.socket_mode.builtin.connection import Connection, ConnectionState

    class HandoverClient(SocketModeClient):
        def connect(self) -> None:
            old_session, old_state = self.current_session, self.current_session_state
            if self.wss_uri is None:
                self.wss_uri = self.issue_new_wss_url()
            session = Connection(
                url=self.wss_uri, logger=self.logger, ping_interval=self.ping_interval,
                trace_enabled=self.trace_enabled, all_message_trace_enabled=self.all_message_trace_enabled,
                ping_pong_trace_enabled=self.ping_pong_trace_enabled, receive_buffer_size=self.receive_buffer_size,
                proxy=self.proxy, proxy_headers=self.proxy_headers, on_message_listener=self._on_message,
                on_error_listener=self._on_error, on_close_listener=self._on_close, ssl_context=self.web_client.ssl,
            )  # fmt: skip
            session.connect()
            self.current_session, self.current_session_state = session, ConnectionState()
            self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
            if old_state is not None:
                old_state.terminated = True
            if old_session is not None:  # wake the reader blocked on the old socket now, then close it properly
                with contextlib.suppress(OSError, AttributeError):
                    old_session.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
                threading.Thread(target=old_session.close, name="socket-close-old", daemon=True).start()
            if not self.current_app_monitor_started:
                self.current_app_monitor_started = True
                self.current_app_monitor.start()
            log.info("Socket Mode session established (session id: %s)", self.session_id())

    return HandoverClient
