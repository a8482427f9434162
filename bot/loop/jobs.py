"""Loop outbox handlers (state changes, approval DMs, customer messages, reminders) and its scheduled sweeps."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.capture.service import enqueue_card_update
from bot.deps import Deps
from bot.domain import Kind
from bot.linear.client import LinearError
from bot.loop import blocks, service
from bot.runtime.outbox import Defer, Job, Permanent, slack_errors
from bot.slack.kit import quote_line
from storage import loops, queries
from storage.models import LoopMessage, LoopState

log = logging.getLogger(__name__)
POLL_HORIZON = timedelta(days=30)  # finished issues are still polled this long after they moved (they may reopen)


def state(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """A stored webhook delivery, or a new link to an issue that already moved: apply it (database only)."""
    snap = service.IssueSnapshot.from_payload(job.payload["issue"])
    return service.apply_state(session, deps.settings, snap, deps.now(), feedback_id=job.payload.get("feedback_id"))


def _loop_message(session: Session, job: Job) -> LoopMessage:
    msg = loops.loop_message(session=session, message_id=int(job.payload["message_id"]))
    if msg is None:
        raise Permanent(f"loop message {job.payload['message_id']} not found")
    return msg


def draft(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Posts the approval DM to the owner (else whoever routed it, else the triage channel), or refreshes it."""
    msg = _loop_message(session, job)
    text, body = blocks.draft(service.draft_view(deps, session, msg))
    with slack_errors(posting=msg.draft_ts is None):
        if msg.draft_channel and msg.draft_ts:
            deps.slack.update(msg.draft_channel, msg.draft_ts, text, blocks=body)
            return {"updated": msg.draft_ts}
        channel = _approver_channel(deps, msg)
        ts = deps.slack.post_once(channel, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since)
    msg.draft_channel, msg.draft_ts = channel, ts
    return {"channel": channel, "ts": ts}


def _approver_channel(deps: Deps, msg: LoopMessage) -> str:
    """The approver's DM; the triage channel when there is no approver or Slack will not open the DM."""
    triage = deps.settings.feedback_triage_channel or ""
    if not msg.approver:
        return triage
    try:
        with slack_errors():
            return deps.slack.dm_channel(msg.approver)
    except Permanent as exc:
        log.warning("cannot DM %s (%s); the draft goes to the triage channel", msg.approver, exc)
        return triage


def send(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """The customer message, in their own thread, after quiet hours, paced per channel, never twice."""
    msg = _loop_message(session, job)
    if msg.status != LoopState.QUEUED:
        return {"skipped": msg.status}
    now, settings = deps.now(), deps.settings
    due = settings.quiet_hours().next_allowed(now, settings.feedback_tz)
    if due > now + timedelta(seconds=1):  # approved or retried during quiet hours: not an attempt
        raise Defer(f"quiet hours until {due:%Y-%m-%d %H:%M} UTC", (due - now).total_seconds())
    if not msg.channel_id or not msg.thread_ts:
        raise Permanent("no Slack thread to answer in")
    try:
        with slack_errors(posting=True):
            ts = deps.slack.post_once(
                msg.channel_id, service.outgoing(msg), key=job.key, reconcile_since=job.reconcile_since,
                thread_ts=msg.thread_ts, paced=True,
            )  # fmt: skip
    except Permanent as exc:
        service.mark_failed(session, msg, str(exc))
        return {"failed": f"Slack refused the message: {exc}"}
    service.mark_sent(session, msg, ts)
    return {"ts": ts}


def reminder(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """A reminder to a person (DM) or to the triage channel."""
    to = str(job.payload["to"])
    with slack_errors(posting=True):
        channel = deps.slack.dm_channel(to) if to.startswith(("U", "W")) else to
        ts = deps.slack.post_once(channel, str(job.payload["text"]), key=job.key, reconcile_since=job.reconcile_since)
    return {"ts": ts}


def poll(deps: Deps) -> dict[str, Any]:
    """Reads the state of every linked issue whose loop can still move (one request per 100 issues), so Socket
    Mode installs and missed webhooks still close the loop."""
    if deps.linear is None:
        return {"skipped": "Linear is not configured"}
    with deps.transaction() as session:
        ids = loops.issues_to_poll(session=session, since=deps.now() - POLL_HORIZON)
    if not ids:
        return {"polled": 0}
    try:
        issues = deps.linear.issues_by_ids(ids)
    except LinearError as exc:
        log.warning("polling %d Linear issues failed (the next sweep retries): %s", len(ids), exc)
        return {"error": str(exc)}
    moved = 0
    for issue in issues:
        snap = service.IssueSnapshot(issue.id, issue.state_type, issue.state_name, issue.identifier, issue.title,
                                     issue.url, issue.updated_at)  # fmt: skip

        with deps.transaction() as session:
            moved += "ignored" not in service.apply_state(session, deps.settings, snap, deps.now())
    return {"polled": len(ids), "found": len(issues), "moved": moved}


def triage_reminders(deps: Deps) -> dict[str, Any]:
    """Items untriaged after FEEDBACK_TRIAGE_SLA_HOURS: one reminder a day to their owner or the triage channel."""
    now = deps.now()
    with deps.transaction() as session:
        late = loops.untriaged_before(
            session=session, before=now - timedelta(hours=deps.settings.feedback_triage_sla_hours)
        )
        groups: dict[str, list[str]] = defaultdict(list)
        for fb in late:
            days = (now - fb.created_at).total_seconds() / 86400
            groups[fb.owner_id or deps.settings.feedback_triage_channel or ""].append(
                f"• #{fb.id} · {service.requester(fb)} · waiting {days:.1f} days: {quote_line(fb.text, 120)[1:]}"
            )
        for to, lines in groups.items():
            if not to:
                continue
            text = f"{len(lines)} feedback item(s) still need triage:\n" + "\n".join(lines[:30])
            key = f"remind.triage:{to}:{local_day(now, deps.settings.feedback_tz)}"  # once a day, the team's day
            queries.enqueue(session=session, key=key, kind=Kind.REMINDER, payload={"to": to, "text": text})
    return {"late": len(late), "reminded": len(groups)}


def local_day(moment: datetime, tz: str) -> str:
    """The date of a naive-UTC moment in the team's time zone."""
    return f"{moment.replace(tzinfo=UTC).astimezone(ZoneInfo(tz)):%Y-%m-%d}"


def loops_overdue(deps: Deps) -> dict[str, Any]:
    """Flags (once) the cards of requesters not told FEEDBACK_LOOP_SLA_DAYS after their issue shipped."""
    cut = deps.now() - timedelta(days=deps.settings.feedback_loop_sla_days)
    with deps.transaction() as session:
        late = loops.loops_overdue(session=session, completed_before=cut)
        for fb, issue in late:
            enqueue_card_update(session, fb.id, f"loop-overdue:{issue.id}")
    return {"overdue": len(late)}
