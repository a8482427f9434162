"""Feedback Loop: create_app() wires everything; main() is the `feedbackbot` CLI."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

import handlers
from bot.capture import inbound as intake
from bot.deps import Deps
from bot.linear.client import LinearClient
from bot.routing.jobs import LinearJobs
from bot.runtime.worker import Worker
from bot.settings import Settings
from bot.slack import payloads
from bot.slack.gateway import SlackGateway
from bot.suggest.embedder import Embedder
from bot.suggest.service import SuggestionService
from storage import migrate, queries
from storage.db import make_engine, make_sessionmaker

log = logging.getLogger("feedbackbot")
StartResponse = Callable[..., Any]


class TrackingExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, counting work in flight so tests and the console can wait for quiet."""

    def __init__(self, max_workers: int = 8):
        super().__init__(max_workers=max_workers, thread_name_prefix="listener")
        self._pending = 0
        self._cond = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Counts the task until it finishes."""
        with self._cond:
            self._pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True when no listener is running."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout=timeout)


@dataclass
class Bot:
    """The running pieces, returned by create_app for `run`, the console and tests."""

    app: App
    deps: Deps
    executor: TrackingExecutor

    def wsgi(self) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
        """The HTTP surface: POST /slack/events, GET /healthz."""
        return make_wsgi(self)


def create_app(
    settings: Settings, *, migrate_db: bool = True, socket_mode: bool = False, embedder: Embedder | None = None
) -> Bot:
    """Builds engine, Slack client, worker and the Bolt app; no module-level state."""
    engine = make_engine(settings.database_url)
    if migrate_db:
        migrate.upgrade(engine)
    elif migrate.current(engine) != migrate.head():
        raise SystemExit(
            f"The database is at revision {migrate.current(engine)} but the code needs {migrate.head()}. "
            "Run `feedbackbot db upgrade` (or start without --no-migrate)."
        )
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url)
    gateway = SlackGateway(client)
    sessions = make_sessionmaker(engine)
    suggestions = SuggestionService(settings, sessions, embedder) if settings.feedback_suggestions else None
    if suggestions:
        suggestions.start()
    worker = Worker(sessions=sessions, gateway=gateway, settings=settings, suggestions=suggestions)
    if settings.linear_ready():
        assert settings.linear_api_key is not None
        linear = LinearClient(settings.linear_api_key.get_secret_value(), base_url=settings.linear_api_url)
        jobs = LinearJobs(settings, linear, gateway)
        worker.register("linear.create", jobs.create)
        worker.register("linear.link", jobs.link)
    deps = Deps(settings=settings, sessions=sessions, gateway=gateway, worker=worker)
    worker.register("event", lambda _session, job: intake.replay_job(deps, job))
    executor = TrackingExecutor()
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = App(
        client=client,
        signing_secret=secret or ("socket-mode" if socket_mode else None),
        process_before_response=False,
        listener_executor=executor,
        token_verification_enabled=False,
        request_verification_enabled=not socket_mode,
        ignoring_self_events_enabled=True,
    )
    handlers.register(app, deps)
    return Bot(app=app, deps=deps, executor=executor)


def health(bot: Bot) -> dict[str, Any]:
    """Liveness plus what an operator wants at a glance: database, model state, outbox backlog."""
    with bot.deps.transaction() as session:
        outbox = queries.outbox_counts(session=session)
    suggestions = bot.deps.worker.suggestions
    return {"ok": True, "database": "ok", "outbox": outbox, "suggestions": suggestions.state if suggestions else "off"}


def _respond(start: StartResponse, status: str, body: dict[str, Any], exc_info: Any = None) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start(status, headers, exc_info) if exc_info else start(status, headers)
    return [data]


def _valid_signature(secret: str, body: bytes, timestamp: str, signature: str, *, now: float | None = None) -> bool:
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


def make_wsgi(bot: Bot) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A tiny router in front of Bolt's WSGI adapter: signature first, then parse, then Bolt."""
    bolt = SlackRequestHandler(bot.app)
    secret = bot.deps.settings.slack_signing_secret.get_secret_value() if bot.deps.settings.slack_signing_secret else ""

    def wsgi(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method == "GET":
            return _respond(start, "200 OK", health(bot))
        if path != "/slack/events" or method != "POST":
            return _respond(start, "404 Not Found", {"ok": False, "error": "not_found"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not secret or not _valid_signature(secret, body, timestamp, signature):
            return _respond(start, "401 Unauthorized", {"ok": False, "error": "invalid_signature"})
        reason = payloads.problem(body, environ.get("CONTENT_TYPE", ""))
        if reason:
            log.warning("rejected a signed request Slack would not send (%d bytes): %s", len(body), reason)
            return _respond(start, "400 Bad Request", {"ok": False, "error": "malformed_payload", "detail": reason})
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            return list(bolt(environ, _answer_unhandled(start)))
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("error %s while dispatching a signed request", error_id)
            return _respond(
                start,
                "400 Bad Request",
                {"ok": False, "error": "unprocessable", "id": error_id},
                exc_info=sys.exc_info(),
            )

    return wsgi


def _socket_mode_handler(app: App, app_token: str) -> Any:
    """Socket Mode acks only Bolt's 200s; like HTTP mode, envelopes no listener wants are acked, not redelivered."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
    from slack_bolt.response import BoltResponse

    class AckingHandler(SocketModeHandler):
        def handle(self, client: Any, req: Any) -> None:
            start = time.time()
            resp = run_bolt_app(self.app, req)
            if resp.status == 404:
                log.info("no listener for this envelope; acknowledged and ignored")
                resp = BoltResponse(status=200, body="")
            send_response(client, req, resp, start)

    return AckingHandler(app, app_token)


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    socket_mode = settings.slack_app_token is not None
    missing = settings.missing_slack_settings(socket_mode=socket_mode)
    if missing:
        print(
            f"feedbackbot run: missing settings: {', '.join(missing)}.\n"
            "Set them (see README), or try the bot locally with `feedbackbot console`.",
            file=sys.stderr,
        )
        return 2
    bot = create_app(settings, migrate_db=not args.no_migrate, socket_mode=socket_mode)
    bot.deps.worker.start()
    if socket_mode:
        assert settings.slack_app_token is not None
        log.info("starting in Socket Mode")
        _socket_mode_handler(bot.app, settings.slack_app_token.get_secret_value()).start()
        return 0
    from waitress import serve

    log.info("starting HTTP mode on %s:%d", args.host, args.port)
    serve(bot.wsgi(), host=args.host, port=args.port, threads=8)
    return 0


def _cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    if args.action == "upgrade":
        migrate.upgrade(engine)
    print(f"database at {migrate.current(engine)} (code head {migrate.head()})")
    return 0


def _cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    from bot.console import run_console

    return run_console(settings, create_app, script=args.script, database_url=args.database_url)


def _cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from bot.suggest.evaluate import EvaluationError, evaluate
    from bot.suggest.service import type_specs

    try:
        report = evaluate(
            args.file,
            train_path=args.train,
            text_column=args.text_column,
            label_column=args.label_column,
            types=type_specs(settings),
            embedder=Embedder(backend=settings.feedback_embed_backend),
        )
        print(report)
    except EvaluationError as exc:
        print(f"feedbackbot eval: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from bot.suggest.service import SuggestionService, backfill

    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    service = SuggestionService(settings, make_sessionmaker(engine))
    service.embedder.load()
    print(f"embedded {backfill(service, batch=args.batch)} items")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI surface documented in README."""
    parser = argparse.ArgumentParser(prog="feedbackbot", description="Feedback Loop Slack bot")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Socket Mode if SLACK_APP_TOKEN is set, else HTTP on --port")
    run.add_argument("--port", type=int, default=3000)
    run.add_argument("--host", default="0.0.0.0")
    run.add_argument("--no-migrate", action="store_true", help="refuse to start if the database is behind")
    run.set_defaults(fn=_cmd_run)
    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(fn=_cmd_db)
    console = sub.add_parser("console", help="try the bot locally against an in-process Slack")
    console.add_argument("--script", help="run commands from a file instead of the prompt")
    console.add_argument("--database-url", help="defaults to a fresh SQLite file in a temp folder")
    console.set_defaults(fn=_cmd_console)
    ev = sub.add_parser("eval", help="score the suggestions on a labelled CSV; last line `macro-F1 0.XXX`")
    ev.add_argument("file")
    ev.add_argument("--train", help="learn from this labelled CSV first")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--label-column", default="label")
    ev.set_defaults(fn=_cmd_eval)
    bf = sub.add_parser("backfill-embeddings", help="embed items captured before the model was present")
    bf.add_argument("--batch", type=int, default=64)
    bf.set_defaults(fn=_cmd_backfill)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `feedbackbot` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.fn(Settings(), args) or 0)


if __name__ == "__main__":
    sys.exit(main())
