"""`feedbackbot nps run|import|events import` and `report nps`: no server; the sweep's keys are the scheduler's, so
a CLI run and the running bot never ask anyone twice (app.py passes create_app in)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.accounts.service import ImportResult, parse_map
from bot.accounts.service import report as report_import
from bot.domain import UserFacingError
from bot.nps import importer, report, service
from bot.runtime.worker import Worker
from bot.settings import Settings
from storage import migrate, queries
from storage.db import make_engine, make_sessionmaker, session_scope, utcnow
from storage.models import OutboxStatus

DRAIN_SECONDS = 120.0


class Rollback(Exception):
    """Raised inside an import's transaction so nothing of a refused file is written."""


def _sessions(settings: Settings) -> Any:
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return make_sessionmaker(engine)


def describe(p: service.Planned) -> str:
    """One line of `nps run`: who, and why they are (or are not) asked."""
    who = f"{p.facts.name} ({p.facts.account or 'no account'})"
    if p.at is not None:
        return f"ask    {who} on {p.at:%Y-%m-%d %H:%M} UTC: {p.decision.trigger}, {p.decision.why}"
    if p.decision.due is not None:
        return f"later  {who} from {p.decision.due:%Y-%m-%d}: {p.decision.why}"
    return f"never  {who}: {p.decision.why}"


def run(settings: Settings, create_app: Callable[..., Any], dry_run: bool) -> int:
    """Prints the plan; without --dry-run, runs the sweep and sends what it queued (the heads-up included)."""
    if dry_run:
        with session_scope(_sessions(settings)) as session:
            planned = service.plan(session, settings, utcnow())
        for p in planned:
            print(describe(p))
        print(f"{sum(p.at is not None for p in planned)} of {len(planned)} contacts would be scheduled (dry run).")
        return 0
    bot = create_app(settings, model=False)
    with bot.deps.transaction() as session:
        planned = service.plan(session, settings, bot.deps.now())
    for p in planned:
        print(describe(p))
    print(bot.scheduler.run_now("nps"))
    return _drain(bot)


def _drain(bot: Any) -> int:
    """Runs this sweep's outbox rows (keys `nps.`) until they settle; failures are printed, exit 1."""
    worker = Worker(bot.deps, bot.worker.handlers, only="nps.")
    deadline = time.monotonic() + DRAIN_SECONDS
    states: dict[str, tuple[str, str | None]] = {}
    while time.monotonic() < deadline:
        worker.drain()
        with bot.deps.transaction() as session:
            rows = [r for r in queries.outbox_items(session=session) if r.key.startswith("nps.")]
            states = {r.key: (r.status, r.last_error) for r in rows}
        waiting = [k for k, (status, _) in states.items() if status in (OutboxStatus.PENDING, OutboxStatus.SENDING)]
        if not waiting:
            break
        time.sleep(0.5)
    failed = {k: e for k, (status, e) in states.items() if status in (OutboxStatus.FAILED, OutboxStatus.DEAD)}
    for key, error in failed.items():
        print(f"feedbackbot nps run: {key}: {error}", file=sys.stderr)
    return 1 if failed else 0


def import_scores(settings: Settings, path: str, mapping: str | None, skip_bad: bool) -> int:
    """Imports the file; prints counts, or every problem (exit 1, nothing written)."""
    try:
        raw, columns = Path(path).read_bytes(), parse_map(mapping)
    except (OSError, ValueError) as exc:
        print(f"feedbackbot nps import: {exc}", file=sys.stderr)
        return 2
    result = ImportResult()
    try:
        with session_scope(_sessions(settings)) as session:
            result = importer.import_scores(session, settings, raw, columns, skip_bad=skip_bad)
            if not result.written:
                raise Rollback
    except Rollback:
        pass
    return report_import(result, path, "scores", f"{result.created} imported, {result.updated} already there (ignored)")


def import_events(settings: Settings, path: str) -> int:
    """Usage events from `contact, event, time` rows; unknown contacts are reported, the rest stored."""
    try:
        events = importer.usage_from_csv(Path(path).read_bytes())
    except (OSError, UserFacingError) as exc:
        print(f"feedbackbot nps events import: {exc}", file=sys.stderr)
        return 2
    with session_scope(_sessions(settings)) as session:
        result = importer.record_usage(session, settings, events)
    for error in result.errors:
        print(f"  {path}: {error}", file=sys.stderr)
    print(f"events: {result.stored} stored, {result.duplicates} already there, {len(result.errors)} problem(s), "
          f"{result.check_ins} check-in(s) created")  # fmt: skip
    return 1 if result.errors else 0


def report_nps(settings: Settings, by: str | None, out: str | None) -> int:
    """`report nps`: Markdown to stdout (and --out)."""
    with session_scope(_sessions(settings)) as session:
        text = report.markdown(session, settings, utcnow(), by)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


def add_commands(sub: Any, create_app: Callable[..., Any]) -> None:
    """The `nps` command group."""
    nps = sub.add_parser("nps", help="NPS surveys: run the sweep, import scores or usage events")
    verbs = nps.add_subparsers(dest="verb", required=True)
    rn = verbs.add_parser("run", help="run one NPS sweep now; prints who would be asked and why (or why not)")
    rn.add_argument("--dry-run", action="store_true", help="print the plan only; change nothing")
    rn.set_defaults(fn=lambda s, a: run(s, create_app, a.dry_run))
    im = verbs.add_parser("import", help="scores from other tools: email or slack_user_id, score, reason, date")
    im.add_argument("file")
    im.add_argument("--map", help="other tools' column names: score=NPS,reason=Comment")
    im.add_argument("--skip-bad-rows", action="store_true", help="import the good rows, report the bad ones")
    im.set_defaults(fn=lambda s, a: import_scores(s, a.file, a.map, a.skip_bad_rows))
    ev = verbs.add_parser("events", help="usage events (milestones, tickets, feature uses)")
    ev.add_argument("action", choices=["import"])
    ev.add_argument("file", help="a CSV with columns contact (email or Slack user id), event, time (ISO 8601)")
    ev.set_defaults(fn=lambda s, a: import_events(s, a.file))


def by_choices() -> tuple[str, ...]:
    """`report nps --by` values."""
    return report.DIMENSIONS
