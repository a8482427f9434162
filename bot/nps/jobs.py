"""NPS outbox handlers (survey, customer messages, follow-up drafts, owner DMs, check-ins) and the daily sweep."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.domain import CardRef, Kind
from bot.nps import blocks, checkins, report, service
from bot.nps.service import Planned
from bot.runtime.outbox import Defer, Job, Permanent, slack_errors
from bot.slack.kit import escape, name
from storage import queries, surveys
from storage.models import Account, Contact, Survey

log = logging.getLogger(__name__)
THEME_WAIT = timedelta(minutes=2)  # a passive's resource follows the reason's theme: wait this long for it


def _survey(session: Session, job: Job) -> Survey:
    row = surveys.survey(session=session, survey_id=int(job.payload["survey_id"]))
    if row is None:
        raise Permanent(f"survey {job.payload['survey_id']} not found")
    return row


def _contact(session: Session, s: Survey) -> Contact:
    contact = session.get(Contact, s.contact_id)
    if contact is None:
        raise Permanent(f"contact {s.contact_id} not found")
    return contact


def survey(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Posts the 0-10 question (DM, or the shared channel with a mention), or shows the score once clicked."""
    s, settings = _survey(session, job), deps.settings
    question = service.wording(settings, "question", None)
    if job.payload.get("update"):
        if not (s.channel_id and s.message_ts and s.score is not None):
            return {"skipped": "nothing to update"}
        ref = CardRef(s.id, s.score).encode(service.ref_secret(settings)) if s.reason is None else None
        text, body = blocks.scored(question, s.score, ref)
        with slack_errors():
            deps.slack.update(s.channel_id, s.message_ts, text, blocks=body)
        return {"updated": s.message_ts}
    if s.status != "queued":
        return {"skipped": s.status}
    due = settings.quiet_hours().next_allowed(deps.now(), settings.feedback_tz)
    if due > deps.now() + timedelta(seconds=1):
        raise Defer(f"quiet hours until {due:%Y-%m-%d %H:%M} UTC", (due - deps.now()).total_seconds())
    try:
        channel, mention = _where(deps, session, _contact(session, s))
        text, body = blocks.survey(question, lambda n: CardRef(s.id, n).encode(service.ref_secret(settings)), mention)
        with slack_errors(posting=True):
            ts = deps.slack.post_once(channel, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since)
    except Permanent as exc:  # no Slack user, no channel, DMs refused: this ask is over (not counted as one)
        s.status, s.sent_at = "failed", None
        log.warning("NPS survey %s not sent: %s", s.id, exc)
        return {"failed": str(exc)}
    s.status, s.channel_id, s.message_ts, s.sent_at = "sent", channel, ts, deps.now()
    return {"channel": channel, "ts": ts}


def _where(deps: Deps, session: Session, contact: Contact) -> tuple[str, str | None]:
    """(channel, who to mention): their DM, or their account's shared channel (NPS_CHANNEL=shared)."""
    if not contact.slack_user_id and contact.email:
        with slack_errors():
            found = deps.slack.user_by_email(contact.email)
        contact.slack_user_id = str(found["id"]) if found else None
    if not contact.slack_user_id:
        raise Permanent(f"contact {contact.id} has no Slack user (no id, and no Slack user has their email)")
    if deps.settings.nps_channel == "shared":
        channel = surveys.shared_channel(session=session, contact=contact)
        if channel is None:
            raise Permanent(f"no shared channel known for contact {contact.id}")
        return channel, contact.slack_user_id
    with slack_errors():
        return deps.slack.dm_channel(contact.slack_user_id), None


def message(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """A message to a respondent, where they answered; refused again here for a detractor (belt and braces)."""
    s, kind = _survey(session, job), str(job.payload["kind"])
    if not service.allowed(s, kind):
        raise Permanent("a detractor gets no automated message")
    if not s.channel_id:
        raise Permanent("the survey was never posted")
    contact = _contact(session, s)
    body = None
    text = (s.followup_text or "") if kind == "followup" else service.wording(deps.settings, kind, contact, s.score)
    if kind == "reminder" and s.score is not None:
        ref = CardRef(s.id, s.score).encode(service.ref_secret(deps.settings))
        body = blocks.scored(text, s.score, ref)[1]
    thread = None if s.channel_id.startswith("D") else s.message_ts
    with slack_errors(posting=True):
        ts = deps.slack.post_once(s.channel_id, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since,
                                  thread_ts=thread, paced=True)  # fmt: skip
    return {"ts": ts}


def followup(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Drafts a promoter's or passive's follow-up once the reason has a theme (or after THEME_WAIT without)."""
    s = _survey(session, job)
    fb = queries.feedback_by_id(session=session, feedback_id=s.feedback_id or 0)
    theme = (fb.theme or fb.suggested_theme) if fb else None
    waited = deps.now() - (s.answered_at or deps.now())
    if theme is None and fb is not None and fb.suggested_at is None and waited < THEME_WAIT:
        raise Defer("waiting for the reason's theme", 1.0)
    service.draft_followup(session, deps.settings, s, theme)
    return {"followup": s.followup, "theme": theme}


def staff(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """The owner's task or approval DM (the triage channel when there is no owner), posted once, then updated."""
    s = _survey(session, job)
    text, body = blocks.staff(service.staff_view(session, deps.settings, s, deps.now()))
    with slack_errors(posting=s.draft_ts is None):
        if s.draft_channel and s.draft_ts:
            deps.slack.update(s.draft_channel, s.draft_ts, text, blocks=body)
            return {"updated": s.draft_ts}
        owner = s.task_owner or _owner(session, s)
        channel = deps.slack.dm_channel(owner) if owner else deps.settings.feedback_triage_channel or ""
        ts = deps.slack.post_once(channel, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since)
    s.draft_channel, s.draft_ts = channel, ts
    return {"channel": channel, "ts": ts}


def _owner(session: Session, s: Survey) -> str | None:
    account = session.get(Account, s.account_id) if s.account_id else None
    return account.owner_id if account else None


def check_in(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """A check-in: the owner's ready-to-post prompt, or the question itself in the shared channel."""
    return checkins.deliver(deps, session, job)


def sweep(deps: Deps) -> dict[str, Any]:
    """Hourly: plan and announce new surveys, send due ones within the daily cap, expire, remind, alert,
    check in. Each step is idempotent, so a missed or doubled run changes nothing."""
    if not deps.settings.nps_surveys:
        return {"skipped": "NPS_SURVEYS is off"}
    now, out = deps.now(), {}
    with deps.transaction() as session:
        planned = service.plan(session, deps.settings, now)  # once: scheduling and the send-time guards share it
        made = service.schedule(session, planned, now)
        out["scheduled"] = len(made)
        _heads_up(deps, session, made, now)
    with deps.transaction() as session:
        out["queued"] = _send_due(deps, session, now, planned)
        out["reminded"] = _remind(deps, session, now)
    with deps.transaction() as session:
        out["alerts"] = report.alerts(session, deps.settings, now)
        out["check_ins"] = checkins.plan(deps.settings, session, now)
    return out


def local_day(moment: datetime, tz: str) -> tuple[str, datetime, datetime]:
    """The team's local date of a naive-UTC moment and that day's bounds in naive UTC."""
    local = moment.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    bounds = [(start + timedelta(days=d)).astimezone(UTC).replace(tzinfo=None) for d in (0, 1)]
    return f"{local:%Y-%m-%d}", bounds[0], bounds[1]


def _heads_up(deps: Deps, session: Session, made: list[Planned], now: datetime) -> None:
    """Each owner hears which of their contacts will be asked, and when, before it happens."""
    day = local_day(now, deps.settings.feedback_tz)[0]
    groups: dict[str, list[str]] = defaultdict(list)
    ids: dict[str, list[int]] = defaultdict(list)
    how = "by DM" if deps.settings.nps_channel == "dm" else "in their shared channel"
    for p in made:
        to = p.facts.owner or deps.settings.feedback_triage_channel or ""
        when = f"{p.at:%a %Y-%m-%d}" if p.at else "soon"
        ids[to].append(p.facts.contact_id)
        groups[to].append(f"• {name(p.facts.name)} ({name(p.facts.account or 'no account')}) on {when}: "
                          f"{escape(p.decision.why)}")  # fmt: skip
    for to, lines in groups.items():
        if to:
            text = f"Heads-up: {len(lines)} of your contacts will be asked for NPS {how}:\n" + "\n".join(lines[:40])
            batch = hashlib.sha256(",".join(map(str, sorted(ids[to]))).encode()).hexdigest()[:12]
            queries.enqueue(session=session, key=f"nps.headsup:{to}:{day}:{batch}", kind=Kind.REMINDER,
                            payload={"to": to, "text": text})  # fmt: skip


def _send_due(deps: Deps, session: Session, now: datetime, planned: list[Planned]) -> int:
    """Due surveys go out, at most NPS_DAILY_CAP a local day (the rest wait for tomorrow); a ticket or an open
    task since the heads-up postpones or cancels the ask."""
    _, start, end = local_day(now, deps.settings.feedback_tz)
    room = deps.settings.nps_daily_cap - surveys.sent_between(session=session, start=start, end=end)
    if room <= 0:
        return 0
    facts = {p.facts.contact_id: p for p in planned}
    quiet = timedelta(days=deps.settings.nps_ticket_quiet_days)
    queued = 0
    for s in surveys.due_to_send(session=session, now=now, limit=room):
        f = facts.get(s.contact_id)
        if f is None or f.facts.left or f.facts.open_task:
            s.status = "skipped"
        elif f.facts.last_ticket and f.facts.last_ticket + quiet > now:
            s.due_at = f.facts.last_ticket + quiet
        else:
            s.status, s.sent_at = "queued", now
            queries.enqueue(session=session, key=f"nps.survey:{s.id}", kind=Kind.NPS_SURVEY,
                            payload={"survey_id": s.id})  # fmt: skip
            queued += 1
    return queued


def _remind(deps: Deps, session: Session, now: datetime) -> int:
    """A score without a reason is reminded once (never a detractor's); unanswered asks expire; open detractor
    tasks and unapproved follow-ups remind their owner once a local day until done."""
    settings, count = deps.settings, 0
    for s in surveys.incomplete_before(session=session, before=now - timedelta(hours=settings.nps_reminder_hours)):
        s.reminded_at = now
        count += service.customer_message(session, s, "reminder")
    for s in surveys.unanswered_before(session=session, before=now - timedelta(days=settings.nps_retry_days)):
        s.status = "expired"
    day = local_day(now, settings.feedback_tz)[0]
    cut = now - timedelta(hours=settings.nps_reminder_hours)
    for s in [*surveys.open_tasks(session=session), *surveys.waiting_followups(session=session)]:
        if (s.answered_at and s.answered_at > cut) or (s.task_snoozed_until and s.task_snoozed_until > now):
            continue
        to = s.task_owner or _owner(session, s) or settings.feedback_triage_channel or ""
        what = "a call to a detractor" if s.task else "a follow-up to approve"
        text = f"Reminder: {what} is waiting: {_who(session, s)} answered {s.score}. See the DM above."
        count += queries.enqueue(session=session, key=f"nps.remind:{s.id}:{day}", kind=Kind.REMINDER,
                                 payload={"to": to, "text": text})  # fmt: skip
    return count


def _who(session: Session, s: Survey) -> str:
    contact = session.get(Contact, s.contact_id)
    return name((contact.name if contact else None) or "a contact")
