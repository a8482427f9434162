"""The `report`, `export`, `accounts import` and `contacts import` commands: no server, no Socket Mode, the same
keys as the scheduler (app.py parses the arguments and passes create_app in, so this module imports no handlers)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient

from bot.accounts import service as accounts
from bot.domain import UserFacingError
from bot.reports import chart, render, service
from bot.reports.ledger import ledger as build_ledger
from bot.reports.periods import period_for
from bot.routing.service import refresh_after_import
from bot.runtime.worker import Worker
from bot.settings import Settings
from bot.slack.gateway import SlackError, SlackGateway
from storage import customers, migrate, queries
from storage.db import make_engine, make_sessionmaker, session_scope, utcnow
from storage.models import OutboxStatus

POST_TIMEOUT = 120.0


def _sessions(settings: Settings) -> Any:
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return make_sessionmaker(engine)


def local_moment(text: str, tz: str) -> datetime:
    """`--since 2026-11-30` means that day in FEEDBACK_TZ (a time with an offset is taken as given), as naive UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment.astimezone(UTC).replace(tzinfo=None)


def report(
    settings: Settings, create_app: Callable[..., Any], kind: str, since: str | None, post: bool, out: str | None
) -> int:
    """Prints the period's report as Markdown (and writes it with its chart); `--post` posts it once per period."""
    moment = local_moment(since, settings.feedback_tz) if since else utcnow()
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


def ledger(settings: Settings, lookup: str, out: str | None) -> int:
    """One account's ledger as Markdown (name, domain or external id); an unknown account exits 2."""
    with session_scope(_sessions(settings)) as session:
        account = customers.account_lookup(session=session, text=lookup)
        if account is None:
            print(f"feedbackbot report account: no account named {lookup!r} (looked up by name, domain and "
                  "external id)", file=sys.stderr)  # fmt: skip
            return 2
        text = render.markdown(build_ledger(session, account, utcnow()))
    if out:
        Path(out).write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


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
    worker = Worker(bot.deps, bot.worker.handlers, only=period.key)  # this report's rows, nothing else
    deadline = time.monotonic() + POST_TIMEOUT
    while time.monotonic() < deadline:
        worker.drain()
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


class Rollback(Exception):
    """Raised inside the import's transaction so nothing of a refused file is written."""


def _staff_by_email(settings: Settings) -> Callable[[str], str | None]:
    """Owner emails resolve to staff Slack users (users.lookupByEmail); without a token they cannot."""
    if settings.slack_bot_token is None:

        def unknown(email: str) -> str | None:
            raise ValueError(f"cannot look up {email} without SLACK_BOT_TOKEN; give the owner's Slack user id")

        return unknown
    slack = SlackGateway(WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url))

    def lookup(email: str) -> str | None:
        try:
            user = slack.user_by_email(email)
        except SlackError as exc:
            raise ValueError(f"Slack could not look up {email}: {exc}") from exc
        ours = user is not None and user.get("team_id") == slack.team_id and not user.get("is_restricted")
        return str(user["id"]) if ours and user is not None else None

    return lookup


def import_table(settings: Settings, what: str, path: str, mapping: str | None, skip_bad: bool) -> int:
    """Imports the file; prints created/updated counts, or every problem (exit 1, nothing written)."""
    try:
        raw, columns = Path(path).read_bytes(), accounts.parse_map(mapping)
    except (OSError, ValueError) as exc:
        print(f"feedbackbot {what} import: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    result = accounts.ImportResult()
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            if what == "accounts":
                result = accounts.import_accounts(session, raw, columns, skip_bad=skip_bad,
                                                  staff_by_email=_staff_by_email(settings))  # fmt: skip
            else:
                result = accounts.import_contacts(session, raw, columns, skip_bad=skip_bad)
            if not result.written:
                raise Rollback
            refresh_after_import(session, result.issues, result.items)
    except Rollback:
        pass
    return accounts.report(result, path, what, f"{result.created} created, {result.updated} updated")
