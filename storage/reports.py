"""Reads for the scheduled reports and the export (split from queries.py by size); nothing here writes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import (
    Feedback,
    FeedbackEvent,
    LinearIssue,
    LinearLink,
    LinkStatus,
    LoopMessage,
    OutboxItem,
    OutboxStatus,
)

NOT_FEEDBACK = ("maybe", "not_feedback")


def items_between(*, session: Session, start: datetime, end: datetime) -> Sequence[Feedback]:
    """Feedback (not chatter) captured in [start, end), oldest first."""
    stmt = (
        select(Feedback)
        .where(Feedback.created_at >= start, Feedback.created_at < end, Feedback.deleted_at.is_(None))
        .where(Feedback.status.not_in(NOT_FEEDBACK))
        .order_by(Feedback.id)
    )
    return session.scalars(stmt).all()


def linked_issues(*, session: Session) -> list[tuple[LinearIssue | None, str, Sequence[Feedback]]]:
    """Every issue some live item is linked to: (its state row if known, its id, the linked items)."""
    stmt = (
        select(LinearLink.issue_id, Feedback)
        .join(Feedback, Feedback.id == LinearLink.feedback_id)
        .where(LinearLink.status == LinkStatus.LINKED, Feedback.deleted_at.is_(None))
        .order_by(LinearLink.issue_id, Feedback.id)
    )
    grouped: dict[str, list[Feedback]] = {}
    for issue_id, fb in session.execute(stmt).all():
        grouped.setdefault(issue_id, []).append(fb)
    return [(session.get(LinearIssue, i), i, items) for i, items in grouped.items()]


def first_link(*, session: Session, issue_id: str) -> LinearLink | None:
    """A link to the issue, for its identifier, title and url when no state row exists yet."""
    return session.scalar(select(LinearLink).where(LinearLink.issue_id == issue_id).order_by(LinearLink.id).limit(1))


def loop_messages_for(*, session: Session, feedback_ids: Sequence[int]) -> Sequence[LoopMessage]:
    """The loop messages of some items."""
    if not feedback_ids:
        return []
    return session.scalars(select(LoopMessage).where(LoopMessage.feedback_id.in_(list(feedback_ids)))).all()


def count_status(*, session: Session, status: str, before: datetime | None = None) -> int:
    """Live items in a status (created before a cut-off when given)."""
    stmt = select(func.count(Feedback.id)).where(Feedback.status == status, Feedback.deleted_at.is_(None))
    if before is not None:
        stmt = stmt.where(Feedback.created_at < before)
    return int(session.scalar(stmt) or 0)


def stalled(*, session: Session, before: datetime, closed: Sequence[str]) -> Sequence[Feedback]:
    """Open items whose thread staff answered once, where the customer spoke last, before the cut-off."""
    stmt = (
        select(Feedback)
        .where(Feedback.staff_replied_at.is_not(None), Feedback.thread_last_staff.is_(False))
        .where(Feedback.thread_last_at < before, Feedback.deleted_at.is_(None), Feedback.status.not_in(list(closed)))
        .order_by(Feedback.thread_last_at)
    )
    return session.scalars(stmt).all()


def stuck_outbox(*, session: Session) -> Sequence[OutboxItem]:
    """Side effects that gave up or were refused, newest first."""
    stmt = select(OutboxItem).where(OutboxItem.status.in_([OutboxStatus.DEAD, OutboxStatus.FAILED]))
    return session.scalars(stmt.order_by(OutboxItem.id.desc())).all()


def decided_wont_do(*, session: Session) -> Sequence[Feedback]:
    """Won't-do items with the time of the decision, oldest decision first."""
    stmt = select(Feedback).where(Feedback.status == "won't do", Feedback.deleted_at.is_(None))
    return session.scalars(stmt.order_by(Feedback.triaged_at)).all()


def items_after(*, session: Session, after: datetime) -> Sequence[Feedback]:
    """Feedback captured after a moment (the requests that kept coming)."""
    stmt = select(Feedback).where(Feedback.created_at > after, Feedback.deleted_at.is_(None))
    return session.scalars(stmt.where(Feedback.status.not_in(NOT_FEEDBACK)).order_by(Feedback.id)).all()


def export_batches(*, session: Session, batch: int = 1000) -> Iterator[tuple[list[Feedback], dict[int, list]]]:
    """Every item in id order, `batch` at a time, with its events, links and loop messages: constant memory."""
    after = 0
    while True:
        items = list(session.scalars(select(Feedback).where(Feedback.id > after).order_by(Feedback.id).limit(batch)))
        if not items:
            return
        ids = [fb.id for fb in items]
        related: dict[int, list] = {i: [] for i in ids}
        for model in (FeedbackEvent, LinearLink, LoopMessage):
            stmt = select(model).where(model.feedback_id.in_(ids)).order_by(model.id)  # type: ignore[attr-defined]
            for row in session.scalars(stmt):
                related[row.feedback_id].append(row)  # type: ignore[attr-defined]
        yield items, related
        after = ids[-1]
        session.expunge_all()  # what was written out leaves memory
