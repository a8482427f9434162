"""The reads and writes bot/ needs. Keyword-only session; flush, never commit (callers own the transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.db import utcnow
from storage.models import Channel, Feedback, FeedbackEvent, LinearLink, LinkStatus, OutboxItem, OutboxStatus, Theme


def feedback_by_key(*, session: Session, dedupe_key: str) -> Feedback | None:
    """The one row a Slack message maps to, whichever path captured it."""
    return session.scalar(select(Feedback).where(Feedback.dedupe_key == dedupe_key))


def feedback_by_id(*, session: Session, feedback_id: int) -> Feedback | None:
    """Plain lookup by primary key."""
    return session.get(Feedback, feedback_id)


def list_feedback(*, session: Session, limit: int = 50) -> Sequence[Feedback]:
    """Newest first, for the console and App Home."""
    return session.scalars(select(Feedback).order_by(Feedback.id.desc()).limit(limit)).all()


def insert_ignore(session: Session, model: type[Any], values: dict[str, Any], *unique: str) -> Any | None:
    """INSERT ... ON CONFLICT DO NOTHING: no savepoint, so it stays inside the caller's one transaction."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    key = model.__mapper__.primary_key[0]
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(unique)).returning(key)
    return session.execute(stmt).scalar()


def insert_feedback(*, session: Session, values: dict[str, Any]) -> Feedback | None:
    """The new row, or None when another delivery or capture path already holds the dedupe key."""
    new_id = insert_ignore(session, Feedback, values, "dedupe_key")
    return session.get(Feedback, new_id) if new_id is not None else None


def add_event(
    *,
    session: Session,
    feedback: Feedback,
    kind: str,
    actor: str | None,
    detail: dict[str, Any] | None = None,
) -> FeedbackEvent:
    """Appends to the audit trail."""
    ev = FeedbackEvent(feedback_id=feedback.id, kind=kind, actor=actor, detail=detail or {})
    session.add(ev)
    session.flush()
    return ev


def has_event(*, session: Session, feedback_id: int, kind: str, actor: str | None) -> bool:
    """Lets a repeated capture by the same person be a no-op instead of a second audit line."""
    stmt = select(FeedbackEvent.id).where(
        FeedbackEvent.feedback_id == feedback_id, FeedbackEvent.kind == kind, FeedbackEvent.actor == actor
    )
    return session.scalar(stmt.limit(1)) is not None


def get_channel(*, session: Session, channel_id: str) -> Channel | None:
    """Cached channel facts."""
    return session.get(Channel, channel_id)


def upsert_channel(*, session: Session, channel_id: str, name: str | None, is_ext_shared: bool) -> Channel:
    """Refreshes the cache entry; concurrent listeners converge on one row."""
    values = {"name": name, "is_ext_shared": is_ext_shared, "checked_at": utcnow()}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Channel).values(id=channel_id, **values).on_conflict_do_update(index_elements=["id"], set_=values)
    session.execute(stmt)
    row = session.get(Channel, channel_id, populate_existing=True)
    if row is None:  # pragma: no cover - the upsert above just wrote it
        raise RuntimeError(f"channel {channel_id} vanished after its upsert")
    return row


def enqueue(*, session: Session, key: str, kind: str, payload: dict[str, Any], due: datetime | None = None) -> bool:
    """Adds a side effect once per key (not before `due`); False when the key already exists (a redelivery)."""
    values = {"key": key, "kind": kind, "payload": payload} | ({"next_attempt_at": due} if due else {})
    return insert_ignore(session, OutboxItem, values, "key") is not None


def outbox_by_key(*, session: Session, key: str) -> OutboxItem | None:
    """For tests and reconciliation."""
    return session.scalar(select(OutboxItem).where(OutboxItem.key == key))


def claim_due(
    *, session: Session, now: datetime, lease: timedelta, limit: int = 20, first: Sequence[str] = (),
    only: str | None = None, kinds: Sequence[str] | None = None, exclude: Sequence[str] = (),
) -> list[OutboxItem]:  # fmt: skip
    """Leases due rows so two workers never send the same item (SKIP LOCKED on PostgreSQL); kinds in `first`
    are claimed before the rest, oldest first within each group; `kinds` / `exclude` pick one class of work."""
    due = or_(
        (OutboxItem.status == OutboxStatus.PENDING) & (OutboxItem.next_attempt_at <= now),
        (OutboxItem.status == OutboxStatus.SENDING) & (OutboxItem.locked_until < now),
    )
    urgent = case((OutboxItem.kind.in_(list(first)), 0), else_=1) if first else literal(1)
    stmt = select(OutboxItem).where(due).order_by(urgent, OutboxItem.id).limit(limit)
    if only is not None:  # a one-off command drains only its own rows (e.g. one report's)
        stmt = stmt.where(OutboxItem.key.startswith(only, autoescape=True))
    if kinds is not None:
        stmt = stmt.where(OutboxItem.kind.in_(list(kinds)))
    if exclude:
        stmt = stmt.where(OutboxItem.kind.not_in(list(exclude)))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt))
    claimed = []
    for row in rows:
        res = session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == row.id, OutboxItem.updated_at == row.updated_at)
            .values(status=OutboxStatus.SENDING.value, locked_until=now + lease, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(row)
            claimed.append(row)
    return claimed


def extend_leases(*, session: Session, ids: Sequence[int], until: datetime) -> int:
    """The heartbeat of rows still in flight."""
    stmt = (
        update(OutboxItem)
        .where(OutboxItem.id.in_(list(ids)), OutboxItem.status == OutboxStatus.SENDING)
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def release_leases(*, session: Session, ids: Sequence[int], now: datetime) -> int:
    """A stopping process hands its claimed rows back: pending and due now (an in-flight mark is kept)."""
    stmt = (
        update(OutboxItem)
        .where(OutboxItem.id.in_(list(ids)), OutboxItem.status == OutboxStatus.SENDING)
        .values(status=OutboxStatus.PENDING.value, locked_until=None, next_attempt_at=now, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def outbox_counts(*, session: Session) -> dict[str, int]:
    """Status histogram for health checks and the console."""
    rows = session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
    return {str(status): int(n) for status, n in rows}


def themes(*, session: Session) -> Sequence[Theme]:
    """The taxonomy, in creation order."""
    return session.scalars(select(Theme).order_by(Theme.id)).all()


def ensure_theme(*, session: Session, name: str, description: str, examples: list[str]) -> Theme:
    """Adds a theme unless one of that name exists (configuration seeds, the table then rules)."""
    row = session.scalar(select(Theme).where(Theme.name == name))
    if row is None:
        row = Theme(name=name, description=description, examples=examples)
        session.add(row)
        session.flush()
    return row


def embedded_feedback(*, session: Session) -> Sequence[Feedback]:
    """Every item with a stored embedding, for rebuilding the in-memory index at start."""
    return session.scalars(select(Feedback).where(Feedback.embedding.is_not(None)).order_by(Feedback.id)).all()


def unembedded_feedback(*, session: Session, limit: int = 256) -> Sequence[Feedback]:
    """Items captured before the model was present, for backfill-embeddings."""
    stmt = select(Feedback).where(Feedback.embedding.is_(None), Feedback.text != "").order_by(Feedback.id)
    return session.scalars(stmt.limit(limit)).all()


def first_link(*, session: Session, feedback_id: int) -> LinearLink | None:
    """The Linear issue an item was routed or linked to (the earliest confirmed one)."""
    stmt = select(LinearLink).where(LinearLink.feedback_id == feedback_id, LinearLink.status == LinkStatus.LINKED)
    return session.scalar(stmt.order_by(LinearLink.id).limit(1))


def count_unembedded(*, session: Session) -> int:
    """How many items still lack an embedding."""
    stmt = select(func.count()).select_from(Feedback).where(Feedback.embedding.is_(None), Feedback.text != "")
    return int(session.scalar(stmt) or 0)


def links_for(*, session: Session, feedback_id: int) -> Sequence[LinearLink]:
    """Every Linear link of an item, oldest first (pending, linked, failed or unlinked)."""
    stmt = select(LinearLink).where(LinearLink.feedback_id == feedback_id).order_by(LinearLink.id)
    return session.scalars(stmt).all()


def demand(*, session: Session, issue_id: str) -> int:
    """How many feedback items are linked to one Linear issue."""
    stmt = select(func.count(func.distinct(LinearLink.feedback_id))).where(
        LinearLink.issue_id == issue_id, LinearLink.status == LinkStatus.LINKED
    )
    return int(session.scalar(stmt) or 0)


def duplicates_of(*, session: Session, feedback_id: int) -> Sequence[Feedback]:
    """Items marked as duplicates of this one: their customers are requesters too."""
    stmt = select(Feedback).where(Feedback.duplicate_of_id == feedback_id).order_by(Feedback.id)
    return session.scalars(stmt).all()


def last_triage_event(*, session: Session, feedback_id: int) -> FeedbackEvent | None:
    """The newest triage action not yet undone (what Undo reverts)."""
    stmt = (
        select(FeedbackEvent)
        .where(FeedbackEvent.feedback_id == feedback_id, FeedbackEvent.kind.startswith("triage."))
        .order_by(FeedbackEvent.id.desc())
    )
    for event in session.scalars(stmt.limit(50)):
        if not event.detail.get("undone"):
            return event
    return None


def add_link(*, session: Session, link: LinearLink) -> LinearLink:
    """Stores a pending or inherited link."""
    session.add(link)
    session.flush()
    return link


def link_by_id(*, session: Session, link_id: int) -> LinearLink | None:
    """Plain lookup for the Linear outbox jobs."""
    return session.get(LinearLink, link_id)


def cancel_outbox(*, session: Session, key: str) -> bool:
    """Stops a not-yet-sent side effect (Undo before Linear answered)."""
    item = outbox_by_key(session=session, key=key)
    if item is None or item.status not in {OutboxStatus.PENDING, OutboxStatus.FAILED, OutboxStatus.DEAD}:
        return False
    item.status = OutboxStatus.CANCELLED
    return True


def feedback_list(
    *,
    session: Session,
    statuses: list[str],
    owner_id: str | None = None,
    type_: str | None = None,
    theme: str | None = None,
    oldest_first: bool = True,
    limit: int = 10,
) -> Sequence[Feedback]:
    """App Home lists: by status, optionally owner, type (confirmed or suggested) and theme."""
    stmt = select(Feedback).where(Feedback.status.in_(statuses), Feedback.deleted_at.is_(None))
    if owner_id:
        stmt = stmt.where(Feedback.owner_id == owner_id)
    if type_:
        stmt = stmt.where(or_(Feedback.type == type_, (Feedback.type.is_(None)) & (Feedback.suggested_type == type_)))
    if theme:
        stmt = stmt.where(
            or_(Feedback.theme == theme, (Feedback.theme.is_(None)) & (Feedback.suggested_theme == theme))
        )
    order = Feedback.id.asc() if oldest_first else Feedback.id.desc()
    return session.scalars(stmt.order_by(order).limit(limit)).all()


def links_to_issue(*, session: Session, issue_id: str) -> Sequence[LinearLink]:
    """All linked items of one Linear issue."""
    stmt = select(LinearLink).where(LinearLink.issue_id == issue_id, LinearLink.status == LinkStatus.LINKED)
    return session.scalars(stmt).all()


def claim_rev(*, session: Session, feedback_id: int, rev: int) -> bool:
    """Compare-and-set on the card revision: of concurrent clicks on one card exactly one wins."""
    stmt = (
        update(Feedback)
        .where(Feedback.id == feedback_id, Feedback.rev == rev)
        .values(rev=rev + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def lock_feedback(*, session: Session, feedback: Feedback) -> Feedback:
    """Serialises concurrent deliveries touching one row: a no-op UPDATE takes the row (SQLite: db) write lock."""
    session.execute(
        update(Feedback)
        .where(Feedback.id == feedback.id)
        .values(rev=Feedback.rev)
        .execution_options(synchronize_session=False)
    )
    session.refresh(feedback)
    return feedback


def last_edit_ts(*, session: Session, feedback_id: int) -> str | None:
    """The Slack `edited.ts` of the newest edit applied, so an older redelivered edit cannot win."""
    stmt = (
        select(FeedbackEvent.detail)
        .where(FeedbackEvent.feedback_id == feedback_id, FeedbackEvent.kind == "edited")
        .order_by(FeedbackEvent.id.desc())
        .limit(1)
    )
    detail = session.scalar(stmt)
    return str(detail["edited_ts"]) if detail and detail.get("edited_ts") else None


def pending_outbox(*, session: Session, prefix: str) -> list[int]:
    """Ids of outbox rows under a key prefix that have not run yet (oldest first)."""
    stmt = select(OutboxItem.id).where(
        OutboxItem.key.startswith(prefix, autoescape=True),
        OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
    )
    return list(session.scalars(stmt.order_by(OutboxItem.id)))


def due_before(*, session: Session, until: datetime) -> bool:
    """Is any pending outbox row due by `until`? (the console waits for those before rendering)"""
    stmt = select(OutboxItem.id).where(OutboxItem.status == OutboxStatus.PENDING, OutboxItem.next_attempt_at <= until)
    return session.scalar(stmt.limit(1)) is not None


def outbox_items(*, session: Session) -> Sequence[OutboxItem]:
    """Every outbox row in order, for the console's `outbox` command."""
    return session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()


def thread_item(*, session: Session, channel_id: str, thread_ts: str, author: str | None = None) -> Feedback | None:
    """The item a thread already belongs to: its captured parent, else its first captured reply (by `author`)."""
    stmt = select(Feedback).where(
        Feedback.channel_id == channel_id,
        or_(Feedback.message_ts == thread_ts, Feedback.thread_ts == thread_ts),
        Feedback.deleted_at.is_(None),
    )
    if author is not None:
        stmt = stmt.where(Feedback.author_user_id == author)
    return session.scalar(stmt.order_by(Feedback.id).limit(1))


def last_item_by(*, session: Session, channel_id: str, author_user_id: str, method: str) -> Feedback | None:
    """The newest item one person started in one channel by one capture method."""
    stmt = select(Feedback).where(
        Feedback.channel_id == channel_id,
        Feedback.author_user_id == author_user_id,
        Feedback.capture_method == method,
        Feedback.deleted_at.is_(None),
    )
    return session.scalar(stmt.order_by(Feedback.id.desc()).limit(1))


def joined_ts(*, session: Session, feedback_id: int) -> list[str]:
    """Slack ts of the messages joined into an item (newest last)."""
    stmt = select(FeedbackEvent.kind).where(
        FeedbackEvent.feedback_id == feedback_id, FeedbackEvent.kind.startswith("joined:")
    )
    return [kind.removeprefix("joined:") for kind in session.scalars(stmt.order_by(FeedbackEvent.id))]


def join_events(*, session: Session, feedback_id: int) -> Sequence[FeedbackEvent]:
    """The joined, re-joined (edited) and un-joined (deleted) messages of an item, oldest first."""
    kinds = or_(*(FeedbackEvent.kind.startswith(p) for p in ("joined:", "rejoined:", "unjoined:")))
    stmt = select(FeedbackEvent).where(FeedbackEvent.feedback_id == feedback_id, kinds)
    return session.scalars(stmt.order_by(FeedbackEvent.id)).all()


def item_joining(*, session: Session, channel_id: str, ts: str) -> Feedback | None:
    """The item a message was joined into, if any."""
    stmt = (
        select(Feedback)
        .join(FeedbackEvent, FeedbackEvent.feedback_id == Feedback.id)
        .where(Feedback.channel_id == channel_id, FeedbackEvent.kind == f"joined:{ts}")
    )
    return session.scalar(stmt.limit(1))


def hold(*, session: Session, key: str, kind: str, payload: dict[str, Any], until: datetime) -> bool:
    """Stores input that this process handles right now: claimed (sending) until `until`, so only a crash
    hands it to the worker. False when the key exists (a double submit)."""
    values = {"key": key, "kind": kind, "payload": payload, "status": OutboxStatus.SENDING.value, "locked_until": until}
    return insert_ignore(session, OutboxItem, values, "key") is not None


def settle_held(*, session: Session, key: str, error: str | None) -> None:
    """The held input was handled (or failed for good): never replayed."""
    item = outbox_by_key(session=session, key=key)
    if item is not None and item.status == OutboxStatus.SENDING:
        item.status = OutboxStatus.FAILED if error else OutboxStatus.DONE
        item.last_error, item.locked_until = error, None
