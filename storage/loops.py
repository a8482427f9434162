"""The reads and writes of closing the loop and of the scheduled sweeps (split from queries.py by size)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage.db import utcnow
from storage.models import (
    Feedback,
    FeedbackEvent,
    LinearIssue,
    LinearLink,
    LinkStatus,
    LoopMessage,
    LoopState,
    OutboxItem,
    OutboxStatus,
)
from storage.queries import insert_ignore

TERMINAL_STATES = ("completed", "canceled")


def linear_issue(*, session: Session, issue_id: str, lock: bool = False) -> LinearIssue | None:
    """The issue's last known state; `lock` serialises concurrent deliveries about one issue (PostgreSQL)."""
    stmt = select(LinearIssue).where(LinearIssue.id == issue_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt.execution_options(populate_existing=True))


def ensure_linear_issue(*, session: Session, issue_id: str) -> LinearIssue:
    """The row for an issue, created empty on first sight (insert-ignore, so two deliveries cannot both create)."""
    insert_ignore(session, LinearIssue, {"id": issue_id, "changed_at": utcnow()}, "id")
    row = linear_issue(session=session, issue_id=issue_id, lock=True)
    if row is None:  # pragma: no cover - the insert above just wrote it
        raise RuntimeError(f"linear issue {issue_id} vanished after its insert")
    return row


def is_linked(*, session: Session, issue_id: str) -> bool:
    """Does any feedback point at this issue (a webhook about any other issue is ignored)?"""
    stmt = select(LinearLink.id).where(
        LinearLink.issue_id == issue_id, LinearLink.status.in_([LinkStatus.LINKED, LinkStatus.PENDING])
    )
    return session.scalar(stmt.limit(1)) is not None


def requesters(*, session: Session, issue_id: str) -> Sequence[Feedback]:
    """Every live item linked to the issue (merged duplicates carry their own link), oldest first."""
    linked = select(LinearLink.feedback_id).where(
        LinearLink.issue_id == issue_id, LinearLink.status == LinkStatus.LINKED
    )
    stmt = select(Feedback).where(Feedback.id.in_(linked), Feedback.deleted_at.is_(None)).order_by(Feedback.id)
    return session.scalars(stmt).all()


def set_link_states(*, session: Session, issue_id: str, state_type: str | None, state_name: str | None) -> None:
    """Every link to the issue shows its current state on the cards."""
    session.execute(
        update(LinearLink)
        .where(LinearLink.issue_id == issue_id)
        .values(state_type=state_type, state_name=state_name)
        .execution_options(synchronize_session=False)
    )


def add_loop_message(*, session: Session, values: dict[str, Any]) -> LoopMessage | None:
    """The new message, or None when this item already has one of this kind (a redelivery, a relink)."""
    new_id = insert_ignore(session, LoopMessage, values, "feedback_id", "stage")
    return session.get(LoopMessage, new_id) if new_id is not None else None


def loop_message(*, session: Session, message_id: int) -> LoopMessage | None:
    """One message, fresh from the database."""
    return session.get(LoopMessage, message_id, populate_existing=True)


def loop_messages(*, session: Session, feedback_ids: Sequence[int]) -> Sequence[LoopMessage]:
    """The messages of some items, for their cards."""
    if not feedback_ids:
        return []
    stmt = select(LoopMessage).where(LoopMessage.feedback_id.in_(list(feedback_ids))).order_by(LoopMessage.id)
    return session.scalars(stmt).all()


def stage_message(*, session: Session, feedback_id: int, stage: str) -> LoopMessage | None:
    """An item's message of one kind, if it has one."""
    stmt = select(LoopMessage).where(LoopMessage.feedback_id == feedback_id, LoopMessage.stage == stage)
    return session.scalar(stmt.execution_options(populate_existing=True))


def has_loop_message(*, session: Session, feedback_id: int, stage: str) -> bool:
    """Whether the item was already given (or offered) a message of this kind."""
    stmt = select(LoopMessage.id).where(LoopMessage.feedback_id == feedback_id, LoopMessage.stage == stage)
    return session.scalar(stmt) is not None


def move_loop_message(
    *, session: Session, message_id: int, rev: int | None, from_states: Sequence[str], values: dict[str, Any]
) -> bool:
    """A conditional update: only one of two concurrent clicks (or replays) moves a message."""
    cond = [LoopMessage.id == message_id, LoopMessage.status.in_([str(s) for s in from_states])]
    if rev is not None:
        cond.append(LoopMessage.rev == rev)
    stmt = update(LoopMessage).where(*cond).values(**values, updated_at=utcnow())
    res = session.execute(stmt.execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


def open_loop_messages(*, session: Session, limit: int = 10) -> Sequence[LoopMessage]:
    """Messages waiting for a person (drafts, tasks, failures), oldest first, for App Home."""
    waiting = [LoopState.DRAFT, LoopState.TASK, LoopState.FAILED]
    stmt = select(LoopMessage).where(LoopMessage.status.in_(waiting)).order_by(LoopMessage.id).limit(limit)
    return session.scalars(stmt).all()


def issues_to_poll(*, session: Session, since: datetime) -> list[str]:
    """Linked issues whose loop can still move: not finished, or finished after `since` (it may reopen)."""
    stmt = (
        select(LinearLink.issue_id)
        .outerjoin(LinearIssue, LinearIssue.id == LinearLink.issue_id)
        .where(LinearLink.status == LinkStatus.LINKED)
        .where(
            or_(
                LinearIssue.id.is_(None),
                LinearIssue.state_type.is_(None),
                LinearIssue.state_type.not_in(TERMINAL_STATES),
                LinearIssue.changed_at >= since,
            )
        )
        .distinct()
    )
    return sorted(session.scalars(stmt))


def untriaged_before(*, session: Session, before: datetime, limit: int = 200) -> Sequence[Feedback]:
    """New items nobody triaged since `before`, oldest first."""
    stmt = (
        select(Feedback)
        .where(Feedback.status == "new", Feedback.created_at < before, Feedback.deleted_at.is_(None))
        .order_by(Feedback.id)
        .limit(limit)
    )
    return session.scalars(stmt).all()


def loops_overdue(
    *, session: Session, completed_before: datetime, feedback_ids: Sequence[int] | None = None
) -> list[tuple[Feedback, LinearIssue]]:
    """Requesters of issues that shipped before the cut-off and have not been told (nor skipped)."""
    stmt = (
        select(Feedback, LinearIssue)
        .join(LinearLink, LinearLink.feedback_id == Feedback.id)
        .join(LinearIssue, LinearIssue.id == LinearLink.issue_id)
        .where(LinearLink.status == LinkStatus.LINKED, Feedback.deleted_at.is_(None))
        .where(LinearIssue.state_type == "completed", LinearIssue.completed_at < completed_before)
        .where(LinearLink.created_at < LinearIssue.completed_at)  # merged or linked after it shipped: nothing promised
        .order_by(Feedback.id)
    )
    if feedback_ids is not None:
        stmt = stmt.where(Feedback.id.in_(list(feedback_ids)))
    done = {LoopState.SENT.value, LoopState.SKIPPED.value, LoopState.TOLD.value}
    out = []
    for fb, issue in session.execute(stmt).all():
        msg = session.scalar(
            select(LoopMessage).where(LoopMessage.feedback_id == fb.id, LoopMessage.stage == "resolution")
        )
        if msg is None or msg.status not in done:
            out.append((fb, issue))
    return out


def stuck_outbox(*, session: Session, limit: int = 10) -> Sequence[OutboxItem]:
    """Side effects that gave up (dead) or were refused (failed), newest first, for App Home's Retry."""
    stmt = (
        select(OutboxItem)
        .where(OutboxItem.status.in_([OutboxStatus.DEAD, OutboxStatus.FAILED]))
        .order_by(OutboxItem.id.desc())
        .limit(limit)
    )
    return session.scalars(stmt).all()


def retry_outbox(*, session: Session, item_id: int, now: datetime) -> OutboxItem | None:
    """A dead or failed row back to pending with fresh attempts; None when it is not stuck (any more)."""
    stmt = (
        update(OutboxItem)
        .where(OutboxItem.id == item_id, OutboxItem.status.in_([OutboxStatus.DEAD, OutboxStatus.FAILED]))
        .values(status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now, updated_at=utcnow())
    )
    if session.execute(stmt.execution_options(synchronize_session=False)).rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(OutboxItem, item_id, populate_existing=True)


def created_from(*, session: Session, issue_id: str) -> Feedback | None:
    """The item whose words we created the issue from (its title may quote them), if we created it."""
    stmt = (
        select(Feedback)
        .join(LinearLink, LinearLink.feedback_id == Feedback.id)
        .where(LinearLink.issue_id == issue_id, LinearLink.via == "create")
        .order_by(LinearLink.id)
        .limit(1)
    )
    return session.scalar(stmt)


def who_linked(*, session: Session, feedback_id: int) -> str | None:
    """The staff member whose action linked the item to Linear (route, link or duplicate), latest first."""
    stmt = (
        select(FeedbackEvent)
        .where(FeedbackEvent.feedback_id == feedback_id, FeedbackEvent.actor.is_not(None))
        .order_by(FeedbackEvent.id.desc())
    )
    return next((e.actor for e in session.scalars(stmt) if (e.detail or {}).get("links")), None)
