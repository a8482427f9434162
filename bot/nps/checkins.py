"""Maturity check-ins: one question at day 7, 30, 120 and 365 of an account, and at the 1st, 20th and 50th use of a
feature; the owner posts it (or it is posted, by policy) and answers in its thread become feedback."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.domain import CardRef, Kind, UserFacingError
from bot.nps import blocks, service
from bot.runtime.outbox import Job, Permanent, slack_errors
from bot.settings import Settings
from bot.slack.kit import escape, name, unescape
from storage import customers, queries, surveys
from storage.customers import midnight
from storage.models import Account, CheckIn, Contact

log = logging.getLogger(__name__)
AGE_STAGES = ((7, "What's confusing?"), (30, "What's frustrating?"), (120, "What's limiting?"),
              (365, "What keeps you here?"))  # fmt: skip
USE_STAGES = {1: "Is it obvious?", 20: "What slows you down?", 50: "What are the limits?"}
STAGE_GRACE_DAYS = 30  # an account found later than this after a stage skips it (no day-7 question on day 200)


def age_stage(signup: datetime, now: datetime) -> tuple[str, str] | None:
    """The age stage an account is in now (within the grace days after it), else None."""
    age = (now - signup).days
    for day, question in reversed(AGE_STAGES):
        if day <= age < day + STAGE_GRACE_DAYS:
            return f"day{day}", question
    return None


def stage_label(stage: str) -> str:
    """`day30` -> `day 30`; `use:export:20:5` -> `use 20 of export`."""
    if stage.startswith("day"):
        return f"day {stage[3:]}"
    parts = stage.split(":")
    return f"use {parts[2]} of {parts[1]}" if len(parts) >= 3 else stage


def question_text(settings_product: str, stage: str, question: str) -> str:
    """The ready-to-post wording (escaped once, no mentions)."""
    if stage.startswith("day"):
        lead = f"Quick check-in from {settings_product}: you've been with us {stage[3:]} days."
    else:
        feature = stage.split(":")[1]
        lead = f"Quick question about {feature}:"
    return escape(f"{lead} {question} Reply in this thread; we read every answer.")


def plan(settings: Settings, session: Session, now: datetime) -> int:
    """Creates the check-ins whose day has come (once per account and stage)."""
    if settings.nps_checkins == "off":
        return 0
    made = 0
    for account in surveys.accounts_with_signup(session=session):
        if account.signup_date is None:
            continue
        stage = age_stage(midnight(account.signup_date), now)
        if stage is not None:
            made += _create(settings, session, account, None, *stage)
    return made


def on_usage(settings: Settings, session: Session, contact: Contact, event: str) -> int:
    """The 1st, 20th and 50th use of a feature (NPS_CHECKIN_FEATURES, else any event that is not a ticket or a
    milestone) get their question."""
    features = settings.nps_checkin_features
    skip = {*settings.nps_ticket_events, *settings.nps_milestones}
    if settings.nps_checkins == "off" or (features and event not in features) or event in skip:
        return 0
    count = surveys.usage_count(session=session, contact_id=contact.id, event=event)
    account = session.get(Account, contact.account_id) if contact.account_id else None
    if count not in USE_STAGES or account is None:
        return 0
    return _create(settings, session, account, contact, f"use:{event}:{count}:{contact.id}", USE_STAGES[count])


def _create(settings: Settings, session: Session, account: Account, contact: Contact | None, stage: str, q: str) -> int:
    text = question_text(settings.nps_product or "us", stage, q)
    values = {"account_id": account.id, "contact_id": contact.id if contact else None, "stage": stage,
              "text": text, "status": "waiting"}  # fmt: skip
    row = surveys.add_check_in(session=session, values=values)
    if row is None:
        return 0
    queries.enqueue(session=session, key=f"nps.checkin:{row.id}", kind=Kind.CHECK_IN, payload={"check_in": row.id})
    return 1


def _row(session: Session, check_in_id: int) -> CheckIn:
    row = surveys.check_in(session=session, check_in_id=check_in_id)
    if row is None:
        raise Permanent(f"check-in {check_in_id} not found")
    return row


def deliver(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """The owner's prompt (NPS_CHECKINS=owner), or the question in the shared channel (a Post click, or =post)."""
    row = _row(session, int(job.payload["check_in"]))
    if job.payload.get("post") or (deps.settings.nps_checkins == "post" and row.status == "waiting"):
        return _post(deps, session, row, job)
    account = session.get(Account, row.account_id)
    ref = CardRef(row.id, row.rev).encode(service.staff_secret(deps.settings)) if row.status == "waiting" else None
    state = {"waiting": "waiting for you", "posted": "posted", "skipped": "skipped"}.get(row.status, row.status)
    who = name(account.name if account else "an account")
    text, body = blocks.check_in(who, stage_label(row.stage), row.text, ref, state)
    with slack_errors(posting=row.draft_ts is None):
        if row.draft_channel and row.draft_ts:
            deps.slack.update(row.draft_channel, row.draft_ts, text, blocks=body)
            return {"updated": row.draft_ts}
        owner = account.owner_id if account else None
        channel = deps.slack.dm_channel(owner) if owner else deps.settings.feedback_triage_channel or ""
        ts = deps.slack.post_once(channel, text, blocks=body, key=job.key, reconcile_since=job.reconcile_since)
    row.draft_channel, row.draft_ts = channel, ts
    return {"channel": channel, "ts": ts}


def _post(deps: Deps, session: Session, row: CheckIn, job: Job) -> dict[str, Any]:
    if row.status == "posted" and row.ts:
        return {"skipped": "already posted"}
    contact = session.get(Contact, row.contact_id) if row.contact_id else None
    main = contact or customers.main_contact(session=session, account_id=row.account_id)
    channel = surveys.shared_channel(session=session, contact=main) if main else None
    if channel is None:
        raise Permanent(f"no shared channel known for account {row.account_id}")
    with slack_errors(posting=True):
        ts = deps.slack.post_once(channel, row.text, key=job.key, reconcile_since=job.reconcile_since, paced=True)
    row.status, row.channel_id, row.ts = "posted", channel, ts
    if row.draft_ts:
        queries.enqueue(session=session, key=f"nps.checkin:{row.id}:posted", kind=Kind.CHECK_IN,
                        payload={"check_in": row.id})  # fmt: skip
    return {"channel": channel, "ts": ts}


def decide(deps: Deps, session: Session, check_in_id: int, verb: str, user: str, text: str | None = None) -> str:
    """Post / Skip / Edit on the owner's prompt; a decided prompt refuses a second decision."""
    row = _row(session, check_in_id)
    if row.status != "waiting":
        raise UserFacingError(f"This check-in was already {row.status}.")
    row.rev, row.decided_by = row.rev + 1, user
    if verb == "edit" and text is not None:
        row.text = escape(text.strip())
    elif verb == "skip":
        row.status = "skipped"
    elif verb == "post":
        queries.enqueue(session=session, key=f"nps.checkin:{row.id}:post", kind=Kind.CHECK_IN,
                        payload={"check_in": row.id, "post": True})  # fmt: skip
        return "Posting the check-in in their channel."
    queries.enqueue(session=session, key=f"nps.checkin:{row.id}:{row.rev}", kind=Kind.CHECK_IN,
                    payload={"check_in": row.id})  # fmt: skip
    return f"Check-in {row.status if verb == 'skip' else 'updated'}."


def raw_text(session: Session, check_in_id: int) -> str:
    """The question as plain text for the Edit modal."""
    return unescape(_row(session, check_in_id).text)


def usage_key(contact_id: int, event: str, at: datetime) -> str:
    """Idempotency key of a usage event: the same (contact, event, time) twice is one event."""
    return hashlib.sha256(f"{contact_id}|{event}|{at.isoformat()}".encode()).hexdigest()[:40]
