"""Accounts, contacts and revenue-weighted demand (split from queries.py by size)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Account, AccountTeam, Contact, Feedback, LinearLink, LinkStatus, Vote
from storage.queries import insert_ignore

MERGED = "merged"


def midnight(day: date) -> datetime:
    """A date as the naive-UTC datetime the tables store."""
    return datetime.combine(day, time())


def find_account(*, session: Session, external_id: str | None = None, domain: str | None = None) -> Account | None:
    """By external id first, then by domain (the import's keys)."""
    if external_id:
        row = session.scalar(select(Account).where(Account.external_id == external_id))
        if row is not None:
            return row
    if domain:
        return session.scalar(select(Account).where(func.lower(Account.domain) == domain.lower()))
    return None


def account_by_team(*, session: Session, team_id: str) -> Account | None:
    """The account a Slack Connect organisation belongs to."""
    stmt = select(Account).join(AccountTeam, AccountTeam.account_id == Account.id).where(AccountTeam.team_id == team_id)
    return session.scalar(stmt)


def map_teams(*, session: Session, account: Account, team_ids: Sequence[str]) -> None:
    """Points Slack teams at an account (an import moves a team from the account Slack suggested to the real one)."""
    for team in team_ids:
        before = account_by_team(session=session, team_id=team)
        if before is not None and before.id != account.id:
            _merge_into(session, before, account, team)
        insert_ignore(session, AccountTeam, {"team_id": team, "account_id": account.id}, "team_id")
        session.execute(update(AccountTeam).where(AccountTeam.team_id == team).values(account_id=account.id))
        session.execute(
            update(Feedback).where(Feedback.author_team_id == team).values(account_id=account.id)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    account.slack_team_ids = sorted({*(account.slack_team_ids or []), *team_ids})


def _merge_into(session: Session, old: Account, new: Account, team: str) -> None:
    """An import claims a team that Slack had given its own account: that account's people and items move too,
    so one company never counts as two; the Slack-made account goes when nothing points at it any more."""
    both = select(Vote.feedback_id).where(Vote.account_id == new.id)
    session.execute(delete(Vote).where(Vote.account_id == old.id, Vote.feedback_id.in_(both)))  # one vote each
    for model in (Contact, Feedback, Vote):
        session.execute(
            update(model).where(model.account_id == old.id).values(account_id=new.id)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    others = select(AccountTeam.team_id).where(AccountTeam.account_id == old.id, AccountTeam.team_id != team)
    if old.source == "slack" and session.scalar(others.limit(1)) is None:
        old.source = MERGED  # kept (an old Undo may still name it), but no longer offered or looked up


def account_for_team(*, session: Session, team_id: str, name: str) -> Account:
    """The team's account, created from what Slack says the first time it is seen (an import may rename it)."""
    found = account_by_team(session=session, team_id=team_id)
    if found is not None:
        return found
    account = Account(name=name, slack_team_ids=[team_id], source="slack")
    session.add(account)
    session.flush()
    if insert_ignore(session, AccountTeam, {"team_id": team_id, "account_id": account.id}, "team_id") is None:
        session.delete(account)  # another process mapped the team first: use its account
        session.flush()
        found = account_by_team(session=session, team_id=team_id)
        if found is None:  # pragma: no cover - the conflicting row exists
            raise RuntimeError(f"team {team_id} lost its account")
        return found
    return account


def find_contact(*, session: Session, slack_user_id: str | None = None, email: str | None = None) -> Contact | None:
    """By Slack user id first, then by email."""
    if slack_user_id:
        row = session.scalar(select(Contact).where(Contact.slack_user_id == slack_user_id))
        if row is not None:
            return row
    if email:
        return session.scalar(select(Contact).where(func.lower(Contact.email) == email.lower()))
    return None


def contact_for(*, session: Session, slack_user_id: str, name: str | None, account_id: int | None,
                seen: datetime) -> Contact:  # fmt: skip
    """The person's contact, created on first sight; an imported account wins over the one Slack implied."""
    contact = find_contact(session=session, slack_user_id=slack_user_id)
    if contact is None:
        insert_ignore(session, Contact, {"slack_user_id": slack_user_id, "name": name, "account_id": account_id,
                                         "first_seen": seen}, "slack_user_id")  # fmt: skip
        contact = find_contact(session=session, slack_user_id=slack_user_id)
        if contact is None:  # pragma: no cover - just inserted
            raise RuntimeError(f"contact {slack_user_id} vanished")
    contact.account_id = contact.account_id or account_id
    contact.name = contact.name or name
    return contact


def relink_contact_items(*, session: Session, contact: Contact) -> set[str]:
    """Items by an (imported) contact count for the contact's account; the Linear issues whose demand changed."""
    session.execute(
        update(Feedback).where(Feedback.author_user_id == contact.slack_user_id)
        .values(account_id=contact.account_id, contact_id=contact.id).execution_options(synchronize_session=False)
    )  # fmt: skip
    return issues_of_account(session=session, account_id=contact.account_id or 0)


def issues_of_account(*, session: Session, account_id: int) -> set[str]:
    """Linear issues an account's items are linked to."""
    stmt = (
        select(LinearLink.issue_id)
        .join(Feedback, Feedback.id == LinearLink.feedback_id)
        .where(Feedback.account_id == account_id, LinearLink.status == LinkStatus.LINKED)
    )
    return set(session.scalars(stmt))


def issue_accounts(*, session: Session, issue_id: str) -> list[tuple[Account | None, list[Feedback]]]:
    """Who asks for an issue: each account once with its items (items with no account are grouped as None)."""
    linked = select(LinearLink.feedback_id).where(
        LinearLink.issue_id == issue_id, LinearLink.status == LinkStatus.LINKED
    )
    items = session.scalars(select(Feedback).where(Feedback.id.in_(linked), Feedback.deleted_at.is_(None))).all()
    grouped: dict[int | None, list[Feedback]] = {}
    for fb in items:
        grouped.setdefault(fb.account_id, []).append(fb)
    voters = select(Vote.account_id).where(Vote.feedback_id.in_([fb.id for fb in items]))
    for account_id in session.scalars(voters):  # a customer's :+1: makes their account a requester
        grouped.setdefault(account_id, [])
    return [(session.get(Account, aid) if aid else None, fbs) for aid, fbs in grouped.items()]


def add_vote(*, session: Session, feedback_id: int, account_id: int, user_id: str) -> bool:
    """Records an account's :+1: on an item; False when that account already counted for it."""
    values = {"feedback_id": feedback_id, "account_id": account_id, "user_id": user_id}
    return insert_ignore(session, Vote, values, "feedback_id", "account_id") is not None


def account_lookup(*, session: Session, text: str) -> Account | None:
    """An account by name (case-insensitive), domain or external id, for the ledger."""
    value = text.strip()
    stmt = select(Account).where(Account.source != MERGED).where(
        or_(func.lower(Account.name) == value.lower(), func.lower(Account.domain) == value.lower(),
            Account.external_id == value)
    )  # fmt: skip
    return session.scalars(stmt.order_by(Account.id)).first()


def account_items(*, session: Session, account_id: int) -> Sequence[Feedback]:
    """An account's live items, oldest first."""
    stmt = select(Feedback).where(Feedback.account_id == account_id, Feedback.deleted_at.is_(None))
    return session.scalars(stmt.order_by(Feedback.id)).all()


def accounts_of(*, session: Session, ids: Sequence[int]) -> dict[int, Account]:
    """Accounts by id, for reports."""
    if not ids:
        return {}
    return {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(list(ids))))}


def values_of(account: Account) -> dict[str, Any]:
    """An account's fields for a ledger header."""
    fields = ("name", "domain", "external_id", "plan", "tier", "industry", "region", "use_case", "lifecycle",
              "signup_date", "owner_id", "arr", "currency", "slack_team_ids")  # fmt: skip
    return {f: getattr(account, f) for f in fields}


def main_contact(*, session: Session, account_id: int) -> Contact | None:
    """The account's champion: a contact whose role says so (champion, main, primary), else the one who gave the
    most feedback."""
    people = list(session.scalars(select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)))
    named = [c for c in people if any(w in (c.role or "").lower() for w in ("champion", "main", "primary"))]
    if named:
        return named[0]
    counts: dict[int, int] = {
        c.id: int(session.scalar(select(func.count(Feedback.id)).where(Feedback.contact_id == c.id)) or 0)
        for c in people
    }
    best = max(people, key=lambda c: counts[c.id], default=None)
    return best if best is not None and counts[best.id] else None


def contacts_of(*, session: Session, account_id: int) -> Sequence[Contact]:
    """An account's contacts."""
    return session.scalars(select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)).all()


def all_accounts(*, session: Session, limit: int = 100) -> Sequence[Account]:
    """Accounts for a picker: largest ARR first, then by name."""
    stmt = select(Account).where(Account.source != MERGED)
    stmt = stmt.order_by(Account.arr.desc().nulls_last(), Account.name).limit(limit)
    return session.scalars(stmt).all()


def manual_account(*, session: Session, text: str) -> Account | None:
    """An account named by hand: the existing one with that name, domain or external id, else a new one."""
    if not text:
        return None
    found = account_lookup(session=session, text=text)
    if found is not None:
        return found
    is_domain = "." in text and " " not in text
    account = Account(name=text, domain=text.lower() if is_domain else None, source="manual")
    session.add(account)
    session.flush()
    return account


def issues_of_item(*, session: Session, feedback_id: int) -> set[str]:
    """The Linear issues an item is linked to."""
    stmt = select(LinearLink.issue_id).where(
        LinearLink.feedback_id == feedback_id, LinearLink.status == LinkStatus.LINKED
    )
    return set(session.scalars(stmt))
