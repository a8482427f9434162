"""THE registry of outbox kinds: every Kind's handler, in one place (the worker gets them through app.py)."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.capture import jobs as capture
from bot.domain import Kind
from bot.loop import jobs as loop
from bot.nps import jobs as nps
from bot.reports import jobs as reports
from bot.routing import jobs as routing
from bot.runtime import inbox
from bot.runtime.outbox import Handler, Preparer
from bot.runtime.scheduler import Sweep
from bot.suggest import jobs as suggest
from bot.triage import jobs as triage

OUTBOX: dict[Kind, Handler] = {
    Kind.EVENT: capture.replay,
    Kind.HYDRATE: capture.hydrate,
    Kind.RECEIPT: capture.receipt,
    Kind.CARD: triage.card,
    Kind.CARD_UPDATE: triage.card_update,
    Kind.AUDIT: triage.audit,
    Kind.LINEAR_CREATE: routing.create,
    Kind.LINEAR_LINK: routing.link,
    Kind.LINEAR_DEMAND: routing.demand_comment,
    Kind.INTERACTION: inbox.replay,
    Kind.LEARN: triage.learn,
    Kind.LINEAR_STATE: loop.state,
    Kind.LOOP_DRAFT: loop.draft,
    Kind.LOOP_SEND: loop.send,
    Kind.REMINDER: loop.reminder,
    Kind.REPORT_POST: reports.post,
    Kind.REPORT_CHART: reports.upload_chart,
    Kind.REPORT_THREAD: reports.post_detail,
    Kind.NPS_SURVEY: nps.survey,
    Kind.NPS_MESSAGE: nps.message,
    Kind.NPS_FOLLOWUP: nps.followup,
    Kind.NPS_STAFF: nps.staff,
    Kind.CHECK_IN: nps.check_in,
}
# Run on a whole claimed batch of one kind before its rows run (one model call for many cards).
PREPARE: dict[Kind, Preparer] = {Kind.CARD: triage.prepare, Kind.CARD_UPDATE: triage.prepare}
# A deferred Slack event is a message someone wrote: it is retried until Slack answers, never given up.
PERSISTENT: frozenset[Kind] = frozenset({Kind.EVENT})
# THE registry of scheduled sweeps (bot/runtime/scheduler.py runs them in one process at a time).
SCHEDULE: list[Sweep] = [
    Sweep("linear-poll", lambda s: IntervalTrigger(seconds=s.feedback_linear_poll_seconds), loop.poll),
    Sweep(
        "triage-reminders",
        lambda s: CronTrigger(hour=9, minute=0, timezone=s.feedback_tz),
        loop.triage_reminders,
        at_start=False,
    ),
    Sweep("loops-overdue", lambda s: IntervalTrigger(hours=1), loop.loops_overdue),
    # reports: every 15 minutes, "is a period due and not yet queued?" (late runs within the grace time)
    Sweep("weekly-digest", lambda s: IntervalTrigger(minutes=15), reports.sweep("weekly")),
    Sweep("monthly-report", lambda s: IntervalTrigger(minutes=15), reports.sweep("monthly")),
    Sweep("quarterly-review", lambda s: IntervalTrigger(minutes=15), reports.sweep("quarterly")),
    # NPS: plan and announce asks, send due ones within the daily cap, remind, alert, check in (idempotent steps)
    Sweep("nps", lambda s: IntervalTrigger(hours=1), nps.sweep),
    Sweep("train", lambda s: CronTrigger.from_crontab(s.feedback_train_cron or "0 3 * * sun"), suggest.train, False),
]
