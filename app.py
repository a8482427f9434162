"""Feedback Loop: create_app() wires everything; main() is the `feedbackbot` CLI."""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

import handlers
from bot import jobs
from bot.deps import Deps
from bot.linear.client import LinearClient
from bot.nps import cli as nps_cli
from bot.runtime.scheduler import Scheduler, SchedulerLock
from bot.runtime.worker import Worker
from bot.settings import Settings
from bot.slack.client import KeepAliveWebClient
from bot.slack.gateway import SlackGateway
from bot.suggest import retrain
from bot.suggest.embedder import Embedder
from bot.suggest.service import SuggestionService
from handlers import middleware, replay
from handlers.http import StartResponse, make_wsgi, socket_mode_handler
from storage import migrate
from storage.db import make_engine, make_sessionmaker

log = logging.getLogger("feedbackbot")


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
    worker: Worker
    executor: TrackingExecutor
    suggestions: SuggestionService | None
    scheduler: Scheduler

    def close(self) -> None:
        """Stops the background work and releases connections (tests and the console make many bots)."""
        self.scheduler.stop()
        self.worker.stop()
        self.executor.shutdown(wait=True)
        client = self.deps.slack.client
        if isinstance(client, KeepAliveWebClient):
            client.close()
        if self.deps.linear is not None:
            self.deps.linear.close()
        engine = self.deps.sessions.kw.get("bind")
        if engine is not None:
            engine.dispose()

    def wsgi(self) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
        """The HTTP surface: POST /slack/events, GET /healthz."""
        return make_wsgi(self.app, self.deps)


def _migrated(settings: Settings, migrate_db: bool) -> Any:
    """The engine, at the code's schema head (or a clear refusal with --no-migrate)."""
    # per worker thread a job's session and the transaction it opens; listeners, HTTP threads and helpers besides
    engine = make_engine(settings.database_url, pool_size=2 * settings.worker_concurrency + 24)
    if migrate_db:
        migrate.upgrade(engine)
    elif migrate.current(engine) != migrate.head():
        raise SystemExit(
            f"The database is at revision {migrate.current(engine)} but the code needs {migrate.head()}. "
            "Run `feedbackbot db upgrade` (or start without --no-migrate)."
        )
    return engine


def create_app(
    settings: Settings,
    *,
    migrate_db: bool = True,
    socket_mode: bool = False,
    embedder: Embedder | None = None,
    model: bool = True,
) -> Bot:
    """Builds engine, adapters, model, worker and the Bolt app; no module-level state."""
    engine = _migrated(settings, migrate_db)
    sessions = make_sessionmaker(engine)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    timeout = int(max(1, round(settings.slack_timeout_seconds)))  # slack_sdk takes whole seconds
    client = KeepAliveWebClient(token=token, base_url=settings.slack_api_url, timeout=timeout)
    key = settings.linear_api_key.get_secret_value() if settings.linear_api_key else None
    linear = (
        LinearClient(key, base_url=settings.linear_api_url, timeout=settings.linear_timeout_seconds)
        if key and settings.linear_ready()
        else None
    )
    suggestions = SuggestionService(settings, sessions, embedder) if settings.feedback_suggestions and model else None
    if suggestions:
        suggestions.start()
    deps = Deps(
        settings=settings, sessions=sessions, slack=SlackGateway(client), linear=linear, suggestions=suggestions
    )
    worker = Worker(deps, jobs.OUTBOX, persistent=jobs.PERSISTENT, prepare=jobs.PREPARE)
    executor = TrackingExecutor()
    app = _bolt(deps, executor, token, timeout, socket_mode=socket_mode)
    deps.redeliver = functools.partial(replay.interaction, deps)
    scheduler = Scheduler(deps, jobs.SCHEDULE, SchedulerLock(engine, settings.feedback_scheduler_lock))
    return Bot(app=app, deps=deps, worker=worker, executor=executor, suggestions=suggestions, scheduler=scheduler)


def _bolt(deps: Deps, executor: TrackingExecutor, token: str | None, timeout: int, *, socket_mode: bool) -> App:
    """The Bolt app with every listener; its client has no token: each request's comes from `authorize`, which
    never calls Slack."""
    bolt_log = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, middleware.QuietTokenWarning) for f in bolt_log.filters):
        bolt_log.addFilter(middleware.QuietTokenWarning())
    settings = deps.settings
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = App(
        client=WebClient(base_url=settings.slack_api_url, timeout=timeout),
        signing_secret=secret or ("socket-mode" if socket_mode else None),
        process_before_response=False,
        listener_executor=executor,
        authorize=middleware.authorize(deps, token),
        request_verification_enabled=not socket_mode,
        ignoring_self_events_enabled=True,
    )
    handlers.register(app, deps)
    return app


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    socket_mode = settings.slack_app_token is not None
    missing = settings.missing_slack_settings(socket_mode=socket_mode or args.role in ("worker", "scheduler"))
    if missing:
        print(
            f"feedbackbot run: missing settings: {', '.join(missing)}.\n"
            "Set them (see README), or try the bot locally with `feedbackbot console`.",
            file=sys.stderr,
        )
        return 2
    if args.role in ("web", "scheduler"):  # the model belongs to the worker; corrections reach it via the outbox
        bot = create_app(settings, migrate_db=not args.no_migrate, socket_mode=socket_mode, model=False)
    else:
        bot = create_app(settings, migrate_db=not args.no_migrate, socket_mode=socket_mode)
    stop = threading.Event()
    threading.Thread(target=bot.deps.slack.warm_up, args=(stop,), name="slack-warm-up", daemon=True).start()
    socket = None
    serves_slack = args.role in ("all", "web")
    if settings.slack_app_token is not None and serves_slack:
        socket = _connect(bot, settings.slack_app_token.get_secret_value())
        if socket is None:
            return 2
    if args.role in ("all", "worker"):
        bot.worker.start()
    if args.role in ("all", "scheduler"):
        bot.scheduler.start()
    gc.collect()
    gc.freeze()  # start-up objects leave the collector's generations: fewer, shorter pauses on the ack path
    sys.setswitchinterval(0.001)  # request threads get the interpreter back sooner from busy worker threads
    from waitress.server import create_server

    connected = (lambda: bool(socket.client.is_connected())) if socket is not None else None
    wsgi = make_wsgi(bot.app, bot.deps, connected, events=serves_slack)
    server = create_server(wsgi, host=args.host, port=args.port, threads=8)
    signal.signal(signal.SIGTERM, lambda *_: _shutdown(bot, server, socket, stop))
    signal.signal(signal.SIGINT, lambda *_: _shutdown(bot, server, socket, stop))
    log.info("serving HTTP on %s:%d", args.host, args.port)
    server.run()
    return 0


def _connect(bot: Bot, app_token: str) -> Any:
    """The Socket Mode connection, or None (after saying why) when Slack refuses the app token."""
    socket = socket_mode_handler(bot.app, bot.deps, app_token)
    try:
        socket.connect()
    except Exception as exc:  # apps.connections.open refused the token, or Slack is unreachable
        print(f"feedbackbot run: Socket Mode could not connect with SLACK_APP_TOKEN: {exc}", file=sys.stderr)
        return None
    log.info("Socket Mode connected")
    return socket


def _shutdown(bot: Bot, server: Any, socket: Any, stop: threading.Event) -> None:
    """SIGTERM: take no new work, let in-flight work finish (or hand it back to the outbox), exit within 10 s.
    Nothing acked is lost either way: it was stored before its ack."""
    log.info("stopping: no new requests; finishing or releasing in-flight work")
    stop.set()
    server.close()
    if socket is not None:
        socket.close()
    bot.executor.wait_idle(2.0)
    bot.scheduler.stop()
    bot.worker.stop(timeout=6.0)
    logging.shutdown()
    os._exit(0)


def _cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    if args.action == "upgrade":
        migrate.upgrade(engine)
    print(f"database at {migrate.current(engine)} (code head {migrate.head()})")
    return 0


def _cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    from bot.console import run_console  # the console and its fakes load only for this command

    return run_console(settings, create_app, script=args.script, database_url=args.database_url)


def _cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from bot.suggest.evaluate import EvaluationError, evaluate
    from bot.suggest.service import type_specs

    try:
        tuned = retrain.finetuned(vars(args)) if args.finetune and args.train else None  # `train`'s run, on TRAIN
        embedder = tuned or Embedder(backend=settings.feedback_embed_backend)
        report = evaluate(
            args.file,
            train_path=args.train,
            text_column=args.text_column,
            label_column=args.label_column,
            types=type_specs(settings),
            embedder=embedder,
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


def _cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    bot = create_app(settings, model=False)
    print(json.dumps(bot.scheduler.run_now(args.name)))
    return 0


def _cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from bot.reports import cli

    if args.kind == "nps":
        return nps_cli.report_nps(settings, args.by, args.out)
    if args.kind == "account":
        if not args.name:
            print("feedbackbot report account: name the account (NAME_OR_DOMAIN)", file=sys.stderr)
            return 2
        return cli.ledger(settings, args.name, args.out)
    return cli.report(settings, create_app, args.kind, args.since, args.post, args.out)


def _cmd_table_import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.reports import cli

    return cli.import_table(settings, args.table, args.file, args.map, args.skip_bad_rows)


def _cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.reports import cli

    return cli.export(settings, args.format, args.out)


def _cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.capture.slack_export import run_cli

    return run_cli(settings, args.path, args.channel, args.team)


def _report_commands(sub: Any) -> None:
    """report, export and import: reading and writing the data outside Slack."""
    rp = sub.add_parser("report", help="the weekly digest, monthly trends or quarterly won't-do review as Markdown")
    rp.add_argument("kind", choices=["weekly", "monthly", "quarterly", "account", "nps"])
    rp.add_argument("name", nargs="?", help="for `account`: the account's name, domain or external id")
    rp.add_argument("--since", help="a date in the period (default: the current one, in FEEDBACK_TZ)")
    rp.add_argument("--post", action="store_true", help="post it to the digest channel (once per period)")
    rp.add_argument("--out", help="write the Markdown here, and the chart as a .png next to it")
    rp.add_argument("--by", choices=nps_cli.by_choices(), help="for `nps`: one table per segment value")
    rp.set_defaults(fn=_cmd_report)
    ex = sub.add_parser("export", help="every feedback item with its triage history, routing and loop state")
    ex.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    ex.add_argument("--out", help="a file (default: stdout)")
    ex.set_defaults(fn=_cmd_export)
    im = sub.add_parser("import", help="import customer messages from elsewhere")
    im.add_argument("source", choices=["slack-export"])
    im.add_argument("path", help="a Slack export folder or ZIP")
    im.add_argument("--channel", action="append", required=True, help="a shared channel's name (repeatable)")
    im.add_argument("--team", help="our workspace's team id (default: guessed from users.json)")
    im.set_defaults(fn=_cmd_import)
    for table in ("accounts", "contacts"):
        tp = sub.add_parser(table, help=f"{table} from a CSV file (see README for the columns)")
        tp.add_argument("action", choices=["import"])
        tp.add_argument("file")
        tp.add_argument("--map", help="other tools' column names: name=Company,arr=Annual Revenue")
        tp.add_argument("--skip-bad-rows", action="store_true", help="import the good rows, report the bad ones")
        tp.set_defaults(fn=_cmd_table_import, table=table)


def build_parser() -> argparse.ArgumentParser:
    """The CLI surface documented in README."""
    parser = argparse.ArgumentParser(prog="feedbackbot", description="Feedback Loop Slack bot")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Socket Mode if SLACK_APP_TOKEN is set, else HTTP on --port")
    run.add_argument("--port", type=int, default=3000)
    run.add_argument("--host", default="0.0.0.0")
    run.add_argument("--no-migrate", action="store_true", help="refuse to start if the database is behind")
    run.add_argument(
        "--role",
        choices=["all", "web", "worker", "scheduler"],
        default="all",
        help="all: one process; web: take Slack's and Linear's requests (store, ack) only; worker: drain the "
        "outbox only; scheduler: run the scheduled sweeps only (one active at a time)",
    )
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
    retrain.add_commands(sub, ev)
    bf = sub.add_parser("backfill-embeddings", help="embed items captured before the model was present")
    bf.add_argument("--batch", type=int, default=64)
    bf.set_defaults(fn=_cmd_backfill)
    sw = sub.add_parser("sweep", help="run one scheduled sweep now (its messages go out through the outbox)")
    sw.add_argument("name", choices=[s.name for s in jobs.SCHEDULE])
    sw.set_defaults(fn=_cmd_sweep)
    _report_commands(sub)
    nps_cli.add_commands(sub, create_app)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `feedbackbot` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.fn(Settings(), args) or 0)


if __name__ == "__main__":
    sys.exit(main())
