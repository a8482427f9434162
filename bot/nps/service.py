"""NPS surveys: who is asked, what a score and a reason do, and what each segment hears (database only)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.accounts.service import money
from bot.capture.service import capture
from bot.domain import OPEN, CaptureMethod, CaptureRequest, CardRef, Kind, UserFacingError
from bot.nps import blocks
from bot.nps import rules as cadence
from bot.nps.report import monthly_lines
from bot.nps.rules import Decision, Facts, Rules, send_at
from bot.nps.stats import Nps, compute, segment
from bot.settings import Settings
from bot.slack.kit import escape, name
from storage import customers, loops, queries, surveys
from storage.models import Account, Contact, Survey

log = logging.getLogger(__name__)
__all__ = ["Nps", "compute", "monthly_lines", "segment"]
CUSTOMER_KINDS = ("confirmation", "reminder", "followup")


def usage_signature(secret: str, timestamp: str, body: bytes) -> str:
    """POST /events/usage: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>` (Slack's scheme, so senders can
    reuse their code)."""
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def ref_secret(settings: Settings) -> str:
    """Survey buttons are signed apart from every other button (a customer clicks them)."""
    return settings.ref_secret() + ":nps"


def staff_secret(settings: Settings) -> str:
    """Task, follow-up and check-in buttons, signed apart again."""
    return settings.ref_secret() + ":nps-staff"


def wording(settings: Settings, kind: str, contact: Contact | None, score: int | None = None, link: str = "") -> str:
    """A template filled in: names escaped, so nothing in them can mention or link."""
    who = escape((contact.name if contact else None) or "there")
    values = {"name": who, "product": escape(settings.nps_product or "us"), "score": "" if score is None else score,
              "link": link}  # fmt: skip
    return settings.nps_templates[kind].format_map(values)


@dataclass(frozen=True)
class Planned:
    """One contact in a sweep: the rules' decision and when the survey would go (None: not now)."""

    facts: Facts
    decision: Decision
    at: datetime | None
    account_id: int | None


def _facts(contact: Contact, account: Account | None, rows: list[Survey], extra: Mapping[str, object]) -> Facts:
    asks = tuple(a for r in rows if (a := r.sent_at or r.answered_at) is not None)
    unanswered = [r.sent_at for r in rows if r.sent_at and r.answered_at is None and r.status != "sent"]
    tickets = [t for t in (extra.get("ticket"), extra.get("ticket_item")) if isinstance(t, datetime)]
    milestone = extra.get("milestone")
    fresh = isinstance(milestone, tuple) and (not asks or milestone[0] > max(asks))
    return Facts(
        contact_id=contact.id, name=contact.name or contact.email or contact.slack_user_id or f"contact {contact.id}",
        tenure_start=contact.first_seen or surveys.signup_start(account), left=contact.left_at is not None,
        pending=next((r.status for r in rows if r.status in surveys.LIVE), None),
        last_answer=max((r.answered_at for r in rows if r.answered_at), default=None),
        last_unanswered=max(unanswered, default=None), asks=asks, last_ticket=max(tickets, default=None),
        open_task=bool(extra.get("open_task")), milestone=milestone if fresh else None,  # type: ignore[arg-type]
        owner=account.owner_id if account else None, account=account.name if account else None,
    )  # fmt: skip


def plan(session: Session, settings: Settings, now: datetime) -> list[Planned]:
    """Every contact with the rules applied, in contact order (the sweep and `nps run --dry-run` share it)."""
    rules = Rules.of(settings)
    history = surveys.history(session=session)
    tickets = surveys.last_events(session=session, names=settings.nps_ticket_events)
    ticket_items = surveys.last_ticket_items(session=session)
    milestones = surveys.last_events(session=session, names=settings.nps_milestones)
    blocked = surveys.open_task_accounts(session=session)
    out = []
    for contact, account in surveys.contacts_with_accounts(session=session):
        extra = {
            "ticket": (tickets.get(contact.id) or (None,))[0],
            "ticket_item": ticket_items.get(contact.id),
            "milestone": milestones.get(contact.id),
            "open_task": account is not None and account.id in blocked,
        }
        facts = _facts(contact, account, history.get(contact.id, []), extra)  # fmt: skip
        decision = cadence.decide(facts, now, rules)
        out.append(Planned(facts, decision, send_at(decision, now, rules), account.id if account else None))
    return out


def schedule(session: Session, planned: list[Planned], now: datetime) -> list[Planned]:
    """Creates a scheduled survey for each planned contact whose time has come; returns them (for the heads-up)."""
    made = []
    for p in planned:
        if p.at is None:
            continue
        surveys.add_survey(session=session, values={
            "contact_id": p.facts.contact_id, "account_id": p.account_id, "trigger": p.decision.trigger,
            "status": "scheduled", "due_at": p.at, "heads_up_at": now})  # fmt: skip
        made.append(p)
    return made


def ask_now(session: Session, contact: Contact, now: datetime) -> Survey:
    """A survey staff asked for by hand (`nps send`): no cadence rules, but never two live at once."""
    for row in surveys.history(session=session).get(contact.id, []):
        if row.status in surveys.LIVE:
            return row
    values = {"contact_id": contact.id, "account_id": contact.account_id, "trigger": "manual",
              "status": "queued", "due_at": now, "sent_at": now}  # fmt: skip
    made = surveys.add_survey(session=session, values=values)
    if made is None:  # pragma: no cover - only imports carry a dedupe key
        raise RuntimeError("survey not stored")
    queries.enqueue(session=session, key=f"nps.survey:{made.id}", kind=Kind.NPS_SURVEY, payload={"survey_id": made.id})
    return made


def record_score(session: Session, settings: Settings, s: Survey, score: int, now: datetime) -> bool:
    """The first click is the answer (re-clicks and redeliveries change nothing); True if it was new. A detractor's
    owner gets a task at once."""
    if s.score is not None:
        return False
    s.score, s.status, s.answered_at, s.rev = score, "incomplete", now, s.rev + 1
    queries.enqueue(session=session, key=f"nps.scored:{s.id}", kind=Kind.NPS_SURVEY,
                    payload={"survey_id": s.id, "update": True})  # fmt: skip
    if segment(score) == "detractor":
        account = customers.accounts_of(session=session, ids=[s.account_id or 0]).get(s.account_id or 0)
        s.task, s.task_owner = "open", account.owner_id if account else None
        enqueue_staff(session, s)
    return True


def record_reason(session: Session, settings: Settings, s: Survey, reason: str, contact: Contact) -> bool:
    """The reason becomes a feedback item (source NPS, with the score); everyone gets the one confirmation;
    promoters and passives get a follow-up drafted; a detractor's task shows the reason. False if already given."""
    if s.reason is not None or s.score is None:
        return False
    seg = segment(s.score)
    s.reason, s.status, s.rev = reason, "answered", s.rev + 1
    reason_item(session, settings, s, contact)
    queries.enqueue(session=session, key=f"nps.reasoned:{s.id}", kind=Kind.NPS_SURVEY,
                    payload={"survey_id": s.id, "update": True})  # fmt: skip
    customer_message(session, s, "confirmation")
    if seg == "detractor":
        enqueue_staff(session, s)
    else:
        s.followup = "drafting"
        queries.enqueue(session=session, key=f"nps.draft:{s.id}", kind=Kind.NPS_FOLLOWUP,
                        payload={"survey_id": s.id})  # fmt: skip
    return True


def reason_item(session: Session, settings: Settings, s: Survey, contact: Contact | None) -> None:
    """A scored reason as a feedback item (source NPS, the score in its context, tagged with the segment): with its
    card for a survey answered in Slack; without one for an imported score (`contact` None), which is history."""
    score = int(s.score or 0)
    seg, live = segment(score), contact is not None
    who = {"author_user_id": contact.slack_user_id, "author_name": contact.name,
           "customer": _account_name(session, s)} if contact else {}  # fmt: skip
    req = CaptureRequest(
        method=CaptureMethod.NPS, text=escape(s.reason or ""), is_external=True, source="nps",
        context=f"NPS {'survey' if live else '(imported)'}: score {score} of 10 ({seg})", dedupe_key=f"nps:{s.id}",
        **who,
    )  # fmt: skip
    fb = capture(session=session, settings=settings, req=req, followups=live).feedback
    fb.account_id, fb.contact_id = s.account_id, s.contact_id
    fb.tags = [*fb.tags, f"nps:{seg}", *([] if live else ["imported"])]
    s.feedback_id = fb.id


def customer_message(session: Session, s: Survey, kind: str) -> bool:
    """THE one way a message reaches a respondent, once per survey and kind. Detractors get the confirmation and
    nothing else, whatever asks (their owner talks to them)."""
    if kind not in CUSTOMER_KINDS:
        raise ValueError(f"unknown NPS message kind {kind!r}")
    if not allowed(s, kind):
        log.info("NPS %s for survey %s refused: a detractor gets no automated message", kind, s.id)
        return False
    payload = {"survey_id": s.id, "kind": kind}
    return queries.enqueue(session=session, key=f"nps.{kind}:{s.id}", kind=Kind.NPS_MESSAGE, payload=payload)


def allowed(s: Survey, kind: str) -> bool:
    """Checked when a message is queued and again when it is sent."""
    return kind == "confirmation" or s.score is None or segment(s.score) != "detractor"


def enqueue_staff(session: Session, s: Survey) -> None:
    """Posts or refreshes the owner's DM about this response (one key per revision)."""
    queries.enqueue(session=session, key=f"nps.staff:{s.id}:{s.rev}", kind=Kind.NPS_STAFF,
                    payload={"survey_id": s.id})  # fmt: skip


def _account_name(session: Session, s: Survey) -> str | None:
    account = customers.accounts_of(session=session, ids=[s.account_id or 0]).get(s.account_id or 0)
    return account.name if account else None


def draft_followup(session: Session, settings: Settings, s: Survey, theme: str | None) -> None:
    """A promoter's thanks-and-ask or a passive's resource for the reason's theme; approved by staff by default."""
    contact = session.get(Contact, s.contact_id)
    if s.score is None or not allowed(s, "followup"):
        return
    links = {k.casefold(): v for k, v in settings.nps_resources.items()}
    link = links.get((theme or "").casefold()) or links.get("default") or "the guides in our help center"
    kind = "promoter" if segment(s.score) == "promoter" else "passive"
    s.followup_text = wording(settings, kind, contact, s.score, escape(link))
    s.rev += 1
    if settings.nps_followup == "auto":
        s.followup = "sent"
        customer_message(session, s, "followup")
    else:
        s.followup = "waiting"
        enqueue_staff(session, s)


def staff_view(session: Session, settings: Settings, s: Survey, now: datetime) -> blocks.StaffView:
    """What the owner's DM shows: the answer, the account's context, the state and its buttons."""
    contact = session.get(Contact, s.contact_id)
    account = customers.accounts_of(session=session, ids=[s.account_id or 0]).get(s.account_id or 0)
    task = s.task is not None
    state = _state(s, now)
    return blocks.StaffView(
        ref=CardRef(s.id, 0).encode(staff_secret(settings)), who=name((contact.name if contact else None) or "?"),
        account=name(account.name if account else "no account"), score=s.score or 0, segment=segment(s.score or 0),
        reason=s.reason, facts=context_lines(session, account) if task else [], state=state,
        followup=None if task else s.followup_text, task=task,
        open=(s.task == "open") if task else s.followup == "waiting",
    )  # fmt: skip


def _state(s: Survey, now: datetime) -> str:
    if s.task == "open":
        snoozed = s.task_snoozed_until and s.task_snoozed_until > now
        return f"open, snoozed until {s.task_snoozed_until:%Y-%m-%d %H:%M} UTC" if snoozed else "open"
    if s.task:
        who = f" by <@{s.task_done_by}>" if s.task_done_by else ""
        note = f": {escape(s.task_note)}" if s.task_note else ""
        return f"{s.task}{who}{note}"
    return {"waiting": "waiting for approval", "sent": "sent", "skipped": "skipped"}.get(s.followup or "", "drafting")


def context_lines(session: Session, account: Account | None) -> list[str]:
    """Plan, ARR, open feedback and recent loop history: what the owner needs before the call."""
    if account is None:
        return ["No account is linked to this contact yet."]
    arr = money(account.arr, account.currency) if account.arr is not None else "unknown"
    lines = [f"Plan: {escape(account.plan or 'unknown')} · tier: {escape(account.tier or 'unknown')} · ARR: {arr}"]
    items = customers.account_items(session=session, account_id=account.id)
    open_items = [fb for fb in items if fb.status in OPEN and fb.source != "nps"]
    lines.append(f"Open feedback: {len(open_items)} item(s)" + "".join(f" · #{fb.id}" for fb in open_items[:5]))
    msgs = loops.loop_messages(session=session, feedback_ids=[fb.id for fb in items])
    for msg in sorted(msgs, key=lambda m: m.updated_at, reverse=True)[:3]:
        lines.append(f"Loop: {msg.stage} for #{msg.feedback_id}, {msg.status} {msg.updated_at:%Y-%m-%d}")
    return lines


def overdue(session: Session, settings: Settings, now: datetime, *, slack: bool = False) -> list[str]:
    """Open detractor tasks and unapproved follow-ups past NPS_FOLLOWUP_HOURS: raw text for the digest (its
    renderers escape), or Slack mrkdwn with the owner mentioned for App Home."""
    cut = now - timedelta(hours=settings.nps_followup_hours)
    rows = [*surveys.open_tasks(session=session), *surveys.waiting_followups(session=session)]
    out = []
    for s in rows:
        if s.answered_at is None or s.answered_at >= cut:
            continue
        contact = session.get(Contact, s.contact_id)
        raw = (contact.name if contact else None) or "?"
        who = name(raw) if slack else raw
        owner = (f"<@{s.task_owner}>" if slack else f"owner {s.task_owner}") if s.task_owner else "no owner"
        what = "detractor call" if s.task else "follow-up to approve"
        days = (now - s.answered_at).total_seconds() / 86400
        out.append(f"{who} answered {s.score} ({what}, {owner}), waiting {days:.1f} days")
    return out


def decide(session: Session, s: Survey, verb: str, user: str, now: datetime, text: str | None = None) -> str:
    """Staff on the owner's DM: send/skip/edit a follow-up; call/resolve/snooze a detractor task."""
    if verb in ("send", "skip", "edit"):
        if s.followup != "waiting":
            raise UserFacingError(f"This follow-up was already {s.followup or 'handled'}; nothing changed.")
        if verb == "edit":
            s.followup_text = escape((text or "").strip())
        else:
            s.followup = "sent" if verb == "send" else "skipped"
            if verb == "send":
                customer_message(session, s, "followup")
    else:
        if s.task != "open":
            raise UserFacingError(f"This follow-up is already {s.task or 'closed'}; nothing changed.")
        if verb == "snooze":
            s.task_snoozed_until = now + timedelta(days=1)
        else:
            s.task = "called" if verb == "call" else "resolved"
            s.task_note, s.task_done_by, s.task_done_at = (text or "").strip() or None, user, now
    s.rev += 1
    enqueue_staff(session, s)
    return {"send": "Sent.", "skip": "Skipped.", "edit": "Saved.", "snooze": "Snoozed for a day.",
            "call": "Call logged.", "resolve": "Marked resolved."}[verb]  # fmt: skip


def home_rows(session: Session, settings: Settings, now: datetime) -> list[dict[str, object]]:
    """App Home's overdue NPS follow-ups (staff only see App Home's internal parts)."""
    return blocks.overdue_rows(overdue(session, settings, now, slack=True))
