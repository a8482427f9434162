"""Report sweeps (is a period due and not yet queued?) and the outbox handlers that post them.

A period's output is keyed (`digest:2026-W48`, `monthly:2026-11`, `quarterly:2026-Q4`): the sweep, the CLI's
`--post` and a second scheduler by mistake all try to enqueue that key, and only the first succeeds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.capture.service import channel_shared
from bot.deps import Deps
from bot.domain import Kind
from bot.reports import blocks, chart, service
from bot.reports.periods import Period, due_period
from bot.runtime.outbox import Job, Permanent, slack_errors
from storage import queries

CRON = {"weekly": "feedback_digest_cron", "monthly": "feedback_monthly_cron", "quarterly": "feedback_quarterly_cron"}


def sweep(kind: str) -> Any:
    """The scheduled sweep for one kind: queue the due period, if any (safe to run any number of times)."""

    def run(deps: Deps) -> dict[str, Any]:
        settings = deps.settings
        grace = timedelta(hours=settings.feedback_report_grace_hours)
        period = due_period(kind, getattr(settings, CRON[kind]), deps.now(), settings.feedback_tz, grace)
        if period is None:
            return {"due": None}
        if not settings.digest_channel():
            return {"skipped": "no FEEDBACK_DIGEST_CHANNEL or FEEDBACK_TRIAGE_CHANNEL"}
        with deps.transaction() as session:
            return {"due": period.key, "queued": service.queue(session, deps, period)}

    return run


def _period(payload: dict[str, Any]) -> Period:
    start, end = datetime.fromisoformat(payload["start"]), datetime.fromisoformat(payload["end"])
    return Period(payload["kind"], start, end, payload["key"], payload["label"])


def post(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """The report's message (built now from the database), then its chart or thread as their own rows."""
    period = _period(job.payload)
    report = service.build(session, deps.settings, period, deps.now())
    text, body = blocks.message(report)
    channel = str(job.payload["channel"])
    with slack_errors():
        if channel_shared(deps, channel):  # reports name customers and quote them: internal channels only
            raise Permanent(f"FEEDBACK_DIGEST_CHANNEL {channel} is shared with another organisation; not posted")
    with slack_errors(posting=True):
        ts = deps.slack.post_once(channel, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since)
    follow = {**job.payload, "thread_ts": ts}
    if report.chart is not None:
        queries.enqueue(session=session, key=f"{job.key}:chart", kind=Kind.REPORT_CHART, payload=follow)
    for n in range(len(report.details)):
        payload = follow | {"detail": n}
        queries.enqueue(session=session, key=f"{job.key}:detail:{n}", kind=Kind.REPORT_THREAD, payload=payload)
    return {"ts": ts, "details": len(report.details)}


def upload_chart(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """The weekly chart as a PNG in the digest's thread; an upload that died mid-send is looked for first."""
    period = _period(job.payload)
    report = service.build(session, deps.settings, period, deps.now())
    if report.chart is None:
        return {"skipped": "no chart"}
    channel, thread = str(job.payload["channel"]), str(job.payload["thread_ts"])
    title = f"{report.title}, {period.label} ({period.key})"
    with slack_errors(posting=True):
        if job.reconcile_since is not None and deps.slack.find_file(channel, thread, title):
            return {"found": title}
        name = f"{period.key.replace(':', '-')}.png"
        return {
            "file": deps.slack.upload(channel, chart.png(report.chart), filename=name, title=title, thread_ts=thread)
        }


def post_detail(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """One detail section as a reply in the report's thread."""
    report = service.build(session, deps.settings, _period(job.payload), deps.now())
    n = int(job.payload["detail"])
    if n >= len(report.details):
        return {"skipped": "detail no longer in the report"}
    text, body = blocks.details(report)[n]
    channel, thread = str(job.payload["channel"]), str(job.payload["thread_ts"])
    with slack_errors(posting=True):
        ts = deps.slack.post_once(channel, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since,
                                  thread_ts=thread)  # fmt: skip
    return {"ts": ts}
