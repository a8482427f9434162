"""NPS persistence: surveys, usage events and check-ins (the rules and wording live in bot/nps/)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.customers import midnight
from storage.models import Account, AccountTeam, CheckIn, Contact, Feedback, Survey, UsageEvent
from storage.queries import insert_ignore

LIVE = ("scheduled", "queued", "sent")  # a survey that still waits to go, or for its score


def survey(*, session: Session, survey_id: int) -> Survey | None:
    """One survey row."""
    return session.get(Survey, survey_id)


def add_survey(*, session: Session, values: dict[str, Any]) -> Survey | None:
    """A new survey; None when its dedupe key (an imported score) is already stored."""
    new_id = insert_ignore(session, Survey, values, "dedupe_key") if values.get("dedupe_key") else None
    if values.get("dedupe_key"):
        return session.get(Survey, new_id) if new_id is not None else None
    row = Survey(**values)
    session.add(row)
    session.flush()
    return row


def history(*, session: Session) -> dict[int, list[Survey]]:
    """Every contact's surveys, oldest first (one query; a few per contact per year)."""
    out: dict[int, list[Survey]] = defaultdict(list)
    for row in session.scalars(select(Survey).order_by(Survey.id)):
        out[row.contact_id].append(row)
    return out


def contacts_with_accounts(*, session: Session) -> list[tuple[Contact, Account | None]]:
    """Every contact that has a Slack id or an email, with its account."""
    stmt = select(Contact, Account).outerjoin(Account, Account.id == Contact.account_id).order_by(Contact.id)
    return [(c, a) for c, a in session.execute(stmt).all()]


def last_events(*, session: Session, names: Sequence[str]) -> dict[int, tuple[datetime, str]]:
    """The newest of the named usage events per contact."""
    out: dict[int, tuple[datetime, str]] = {}
    if not names:
        return out
    stmt = select(UsageEvent).where(UsageEvent.event.in_(list(names))).order_by(UsageEvent.at)
    for row in session.scalars(stmt):
        out[row.contact_id] = (row.at, row.event)
    return out


def last_ticket_items(*, session: Session) -> dict[int, datetime]:
    """The newest feedback item from a support ticket per contact (support tickets count as tickets too)."""
    stmt = (
        select(Feedback.contact_id, func.max(Feedback.created_at))
        .where(Feedback.source == "support_ticket", Feedback.contact_id.is_not(None))
        .group_by(Feedback.contact_id)
    )
    return {int(cid or 0): at for cid, at in session.execute(stmt).all()}


def open_task_accounts(*, session: Session) -> set[int]:
    """Accounts with a detractor follow-up still open."""
    stmt = select(Survey.account_id).where(Survey.task == "open", Survey.account_id.is_not(None))
    return {int(a or 0) for a in session.scalars(stmt)}


def due_to_send(*, session: Session, now: datetime, limit: int) -> Sequence[Survey]:
    """Scheduled surveys whose time has come, oldest due first."""
    stmt = select(Survey).where(Survey.status == "scheduled", Survey.due_at <= now).order_by(Survey.due_at, Survey.id)
    return session.scalars(stmt.limit(limit)).all()


def sent_between(*, session: Session, start: datetime, end: datetime) -> int:
    """How many surveys went out in [start, end) (the daily cap)."""
    stmt = select(func.count(Survey.id)).where(Survey.sent_at >= start, Survey.sent_at < end)
    return int(session.scalar(stmt) or 0)


def incomplete_before(*, session: Session, before: datetime) -> Sequence[Survey]:
    """Scores without a reason, not yet reminded, older than `before`."""
    stmt = select(Survey).where(
        Survey.status == "incomplete", Survey.reminded_at.is_(None), Survey.answered_at < before
    )
    return session.scalars(stmt).all()


def unanswered_before(*, session: Session, before: datetime) -> Sequence[Survey]:
    """Sent surveys nobody answered by `before` (they expire; the retry rule takes over)."""
    return session.scalars(select(Survey).where(Survey.status == "sent", Survey.sent_at < before)).all()


def open_tasks(*, session: Session) -> Sequence[Survey]:
    """Detractor follow-ups not yet called or resolved, oldest first."""
    return session.scalars(select(Survey).where(Survey.task == "open").order_by(Survey.answered_at)).all()


def waiting_followups(*, session: Session) -> Sequence[Survey]:
    """Promoter and passive follow-ups waiting for staff approval."""
    return session.scalars(select(Survey).where(Survey.followup == "waiting").order_by(Survey.answered_at)).all()


def responses(*, session: Session, since: datetime | None = None) -> list[tuple[Survey, Account | None]]:
    """Scored surveys (imports included) with their account, oldest first."""
    stmt = (
        select(Survey, Account).outerjoin(Account, Account.id == Survey.account_id)
        .where(Survey.score.is_not(None), Survey.answered_at.is_not(None)).order_by(Survey.answered_at)
    )  # fmt: skip
    if since is not None:
        stmt = stmt.where(Survey.answered_at >= since)
    return [(s, a) for s, a in session.execute(stmt).all()]


def themes_of(*, session: Session, feedback_ids: Sequence[int]) -> dict[int, str | None]:
    """Each reason item's theme (staff's, else the suggestion)."""
    if not feedback_ids:
        return {}
    stmt = select(Feedback.id, Feedback.theme, Feedback.suggested_theme).where(Feedback.id.in_(list(feedback_ids)))
    return {int(i): t or s for i, t, s in session.execute(stmt).all()}


def shared_channel(*, session: Session, contact: Contact) -> str | None:
    """Where this contact (else their account) last spoke to us: the shared channel to post a survey in."""
    teams = select(AccountTeam.team_id).where(AccountTeam.account_id == contact.account_id)
    for where in (Feedback.contact_id == contact.id, Feedback.account_id == contact.account_id,
                  Feedback.author_team_id.in_(teams)):  # fmt: skip
        stmt = select(Feedback.channel_id).where(where, Feedback.channel_id.is_not(None), Feedback.is_external)
        found = session.scalar(stmt.order_by(Feedback.created_at.desc()).limit(1))
        if found:
            return str(found)
    return None


def add_usage(*, session: Session, key: str, contact_id: int, event: str, at: datetime) -> bool:
    """One usage event, once per key; False for a repeat."""
    values = {"key": key, "contact_id": contact_id, "event": event, "at": at}
    return insert_ignore(session, UsageEvent, values, "key") is not None


def usage_count(*, session: Session, contact_id: int, event: str) -> int:
    """How often a contact has done `event` (the nth-use check-ins)."""
    stmt = select(func.count(UsageEvent.id)).where(UsageEvent.contact_id == contact_id, UsageEvent.event == event)
    return int(session.scalar(stmt) or 0)


def accounts_with_signup(*, session: Session) -> Sequence[Account]:
    """Accounts whose age is known (the day-N check-ins)."""
    return session.scalars(select(Account).where(Account.signup_date.is_not(None), Account.source != "merged")).all()


def add_check_in(*, session: Session, values: dict[str, Any]) -> CheckIn | None:
    """A new check-in, once per account and stage."""
    new_id = insert_ignore(session, CheckIn, values, "account_id", "stage")
    return session.get(CheckIn, new_id) if new_id is not None else None


def check_in(*, session: Session, check_in_id: int) -> CheckIn | None:
    """One check-in row."""
    return session.get(CheckIn, check_in_id)


def check_in_at(*, session: Session, channel_id: str, ts: str) -> CheckIn | None:
    """The posted check-in whose thread this is."""
    return session.scalar(select(CheckIn).where(CheckIn.channel_id == channel_id, CheckIn.ts == ts))


def signup_start(account: Account | None) -> datetime | None:
    """An account's signup day as a naive-UTC midnight."""
    return midnight(account.signup_date) if account is not None and account.signup_date else None
