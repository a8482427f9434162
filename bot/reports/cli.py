"""The `report`, `export` and `import slack-export` commands: no server, no Socket Mode, the same keys as the
scheduler (app.py parses the arguments and passes create_app in, so this module imports no handlers)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.domain import UserFacingError
from bot.reports import chart, render, service
from bot.reports.periods import period_for
from bot.settings import Settings
from storage import migrate, queries
from storage.db import make_engine, make_sessionmaker, session_scope, utcnow
from storage.models import OutboxStatus

POST_TIMEOUT = 120.0


def _sessions(settings: Settings) -> Any:
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return make_sessionmaker(engine)


def report(
    settings: Settings, create_app: Callable[..., Any], kind: str, since: str | None, post: bool, out: str | None
) -> int:
    """Prints the period's report as Markdown (and writes it with its chart); `--post` posts it once per period."""
    moment = datetime.fromisoformat(since) if since else utcnow()
    period = period_for(kind, moment, settings.feedback_tz)
    sessions = _sessions(settings)
    with session_scope(sessions) as session:
        built = service.build(session, settings, period, utcnow())
    chart_file = None
    if out:
        chart_path = Path(out).with_suffix(".png")
        if built.chart is not None:
            chart_path.write_bytes(chart.png(built.chart))
            chart_file = chart_path.name
        Path(out).write_text(render.markdown(built, chart_file), encoding="utf-8")
    print(render.markdown(built, chart_file), end="")
    if out:
        print(f"(written to {out}" + (f" and {Path(out).with_suffix('.png')}" if chart_file else "") + ")")
    return _post(settings, create_app, period) if post else 0


def _post(settings: Settings, create_app: Callable[..., Any], period: Any) -> int:
    """Queues the period under its key and drains the outbox until its rows settle (a second run posts nothing)."""
    bot = create_app(settings, model=False)
    try:
        with bot.deps.transaction() as session:
            fresh = service.queue(session, bot.deps, period)
    except UserFacingError as exc:
        print(f"feedbackbot report: {exc}", file=sys.stderr)
        return 2
    if not fresh:
        print(f"{period.key} was already posted (or queued by the running bot); nothing posted.")
        return 0
    deadline = time.monotonic() + POST_TIMEOUT
    while time.monotonic() < deadline:
        bot.worker.drain()
        with bot.deps.transaction() as session:
            rows = [r for r in queries.outbox_items(session=session) if r.key.startswith(period.key)]
            states = {r.key: (r.status, r.last_error) for r in rows}
        if all(status in (OutboxStatus.DONE, OutboxStatus.FAILED, OutboxStatus.DEAD) for status, _ in states.values()):
            break
        time.sleep(0.5)
    failed = {k: e for k, (status, e) in states.items() if status != OutboxStatus.DONE}
    for key, error in failed.items():
        print(f"feedbackbot report: {key} not posted: {error}", file=sys.stderr)
    if not failed:
        print(f"posted {period.key} to {settings.digest_channel()}")
    return 1 if failed else 0


def export(settings: Settings, fmt: str, out: str | None) -> int:
    """Every item, streamed to a file or stdout."""
    from bot.reports.export import write

    sessions = _sessions(settings)
    with session_scope(sessions) as session:
        if out:
            with open(out, "w", encoding="utf-8", newline="") as handle:
                count = write(session, fmt, handle)
            print(f"exported {count} items to {out}", file=sys.stderr)
        else:
            count = write(session, fmt, sys.stdout)
    return 0
