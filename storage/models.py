"""Tables. Every side effect outside the database is an OutboxItem written in the same transaction."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, LargeBinary, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.db import Base, utcnow


class LinkStatus(StrEnum):
    """A Linear link's life: pending until Linear answers, then linked or failed; Undo cancels or unlinks."""

    PENDING = "pending"
    LINKED = "linked"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNLINKED = "unlinked"


ACTIVE_LINKS = frozenset({LinkStatus.PENDING, LinkStatus.LINKED})
GONE_LINKS = frozenset({LinkStatus.CANCELLED, LinkStatus.UNLINKED})


class OutboxStatus(StrEnum):
    """pending -> sending -> done | pending (retry) | failed | dead; Undo may cancel an unsent row."""

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Channel(Base):
    """Cache of conversations.info so auto-capture does not ask Slack on every message."""

    __tablename__ = "channel"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    is_ext_shared: Mapped[bool] = mapped_column(default=False)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    """One piece of customer feedback; dedupe_key makes every capture path converge on one row."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    permalink: Mapped[str | None] = mapped_column(String(1024))
    author_user_id: Mapped[str | None] = mapped_column(String(32))
    author_team_id: Mapped[str | None] = mapped_column(String(32))
    author_name: Mapped[str | None] = mapped_column(String(255))
    customer: Mapped[str | None] = mapped_column(String(255))
    is_external: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(64))
    capture_method: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    text_truncated: Mapped[bool] = mapped_column(default=False)
    context: Mapped[str | None] = mapped_column(Text)
    captured_by: Mapped[str | None] = mapped_column(String(32))
    type_hint: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="new")
    needs_hydration: Mapped[bool] = mapped_column(default=False)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    suggested_type: Mapped[str | None] = mapped_column(String(64))
    type_confidence: Mapped[float | None] = mapped_column(Float)
    suggested_theme: Mapped[str | None] = mapped_column(String(64))
    theme_confidence: Mapped[float | None] = mapped_column(Float)
    suggested_impact: Mapped[str | None] = mapped_column(String(16))
    feedback_score: Mapped[float | None] = mapped_column(Float)
    similar: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    suggestion_why: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"unsure", "examples": [{id, score}]}
    suggested_at: Mapped[datetime | None] = mapped_column()
    type: Mapped[str | None] = mapped_column(String(64))
    theme: Mapped[str | None] = mapped_column(String(64))
    impact: Mapped[str | None] = mapped_column(String(16))
    owner_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="SET NULL"), index=True)
    triaged_by: Mapped[str | None] = mapped_column(String(32))
    triaged_at: Mapped[datetime | None] = mapped_column()
    rev: Mapped[int] = mapped_column(default=0)
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()
    thread_last_at: Mapped[datetime | None] = mapped_column()  # the newest human reply in the item's thread
    thread_last_staff: Mapped[bool | None] = mapped_column()  # ...written by staff (else by the customer)
    staff_replied_at: Mapped[datetime | None] = mapped_column()  # the first staff reply: a promise was made
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))

    account: Mapped[Account | None] = relationship(viewonly=True)  # many-to-one: one query per account at most
    events: Mapped[list[FeedbackEvent]] = relationship(
        back_populates="feedback", order_by="FeedbackEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_feedback_channel_ts", "channel_id", "message_ts"),)


class Theme(Base):
    """The theme taxonomy: seeded from configuration, editable without code changes."""

    __tablename__ = "theme"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    examples: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinearLink(Base):
    """A feedback item attached to a Linear issue; several items on one issue are demand."""

    __tablename__ = "linear_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    issue_id: Mapped[str] = mapped_column(String(64), index=True)
    identifier: Mapped[str | None] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(String(1024))
    title: Mapped[str | None] = mapped_column(String(512))
    state_type: Mapped[str | None] = mapped_column(String(32))
    state_name: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=LinkStatus.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackEvent(Base):
    """Audit trail: who captured, tagged, edited or deleted what, and when; never rewritten."""

    __tablename__ = "feedback_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    feedback: Mapped[Feedback] = relationship(back_populates="events")


class OutboxItem(Base):
    """A pending side effect (Slack post, reaction, Linear call) with a unique key: sent once, retried."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class LoopState(StrEnum):
    """A customer message's life: drafted for staff, queued (maybe for quiet hours), sent; or skipped, or a task
    for the owner when there is no Slack thread to answer in."""

    DRAFT = "draft"
    QUEUED = "queued"
    SENT = "sent"
    SKIPPED = "skipped"
    TASK = "task"
    TOLD = "told"
    FAILED = "failed"


LOOP_DONE = frozenset({LoopState.SENT, LoopState.SKIPPED, LoopState.TOLD})


class LinearIssue(Base):
    """The last known state of a linked Linear issue (keyed on Linear's immutable id): what the loop moves on."""

    __tablename__ = "linear_issue"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    identifier: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(String(1024))
    state_type: Mapped[str | None] = mapped_column(String(32))
    state_name: Mapped[str | None] = mapped_column(String(64))
    state_at: Mapped[str | None] = mapped_column(String(40))  # Linear's updatedAt of the state we hold (ISO 8601)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    demand_comment_id: Mapped[str | None] = mapped_column(String(64))  # our UUID for the one demand comment
    demand_hash: Mapped[str | None] = mapped_column(String(16))  # what the comment says now (a digest)
    demand_rev: Mapped[int] = mapped_column(default=0, server_default="0")


class LoopMessage(Base):
    """One message to one requester (a feedback item) of one kind: at most one per item and kind, ever."""

    __tablename__ = "loop_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    issue_id: Mapped[str] = mapped_column(String(64), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str | None] = mapped_column(Text)
    approver: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    send_after: Mapped[datetime | None] = mapped_column()
    draft_channel: Mapped[str | None] = mapped_column(String(32))
    draft_ts: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column()
    sent_ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    rev: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("feedback_id", "stage", name="uq_loop_message_feedback_stage"),)


class Account(Base):
    """A customer organisation: from Slack Connect (its team's name) or imported (imported values win)."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(255), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    slack_team_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    plan: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(64))
    industry: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(64))
    use_case: Mapped[str | None] = mapped_column(String(255))
    lifecycle: Mapped[str | None] = mapped_column(String(64))
    signup_date: Mapped[date | None] = mapped_column()
    owner_id: Mapped[str | None] = mapped_column(String(32))
    arr: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(16), default="slack")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AccountTeam(Base):
    """Which account a Slack team (a Slack Connect organisation) belongs to: one account per team."""

    __tablename__ = "account_team"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)


class Contact(Base):
    """A person at a customer: their Slack user and/or email, role and account, and when we first saw them."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    email: Mapped[str | None] = mapped_column(String(255), unique=True)
    name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(128))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"), index=True)
    first_seen: Mapped[datetime | None] = mapped_column()
    left_at: Mapped[datetime | None] = mapped_column()  # left a shared channel, or deactivated
    left_how: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Vote(Base):
    """A customer's :+1: on a captured message: their account asks too (once per account and item)."""

    __tablename__ = "vote"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("feedback_id", "account_id", name="uq_vote_feedback_account"),)


class Survey(Base):
    """One NPS ask (or one imported score): sent, answered, followed up; a detractor's task lives on the row."""

    __tablename__ = "nps_survey"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"), index=True)
    trigger: Mapped[str] = mapped_column(String(64))  # tenure, interval, retry, milestone:<event>, manual, import
    status: Mapped[str] = mapped_column(String(16), index=True)  # scheduled sent incomplete answered expired
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)  # imports: contact, date, score
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    heads_up_at: Mapped[datetime | None] = mapped_column()
    channel_id: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column()
    score: Mapped[int | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(index=True)
    reminded_at: Mapped[datetime | None] = mapped_column()
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="SET NULL"))
    followup: Mapped[str | None] = mapped_column(String(16))  # promoters/passives: waiting, sent, skipped
    followup_text: Mapped[str | None] = mapped_column(Text)
    draft_channel: Mapped[str | None] = mapped_column(String(32))
    draft_ts: Mapped[str | None] = mapped_column(String(32))
    task: Mapped[str | None] = mapped_column(String(16), index=True)  # detractors: open, called, resolved
    task_owner: Mapped[str | None] = mapped_column(String(32))
    task_note: Mapped[str | None] = mapped_column(Text)
    task_snoozed_until: Mapped[datetime | None] = mapped_column()
    task_done_by: Mapped[str | None] = mapped_column(String(32))
    task_done_at: Mapped[datetime | None] = mapped_column()
    rev: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UsageEvent(Base):
    """A product usage event about a contact (milestones, tickets, feature uses); the key makes imports idempotent."""

    __tablename__ = "usage_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    """A maturity check-in question for one account (day 7..365) or contact (nth use of a feature)."""

    __tablename__ = "check_in"
    __table_args__ = (UniqueConstraint("account_id", "stage", name="uq_check_in_stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    stage: Mapped[str] = mapped_column(String(160))  # day7, day30, day120, day365, use:<feature>:<n>:<contact>
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # waiting, posted, skipped
    channel_id: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32), index=True)
    draft_channel: Mapped[str | None] = mapped_column(String(32))
    draft_ts: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(32))
    rev: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A fine-tuned encoder exported by `feedbackbot train`; the active row is what running bots load."""

    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    base_sha256: Mapped[str] = mapped_column(String(64))
    labels: Mapped[int] = mapped_column(default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
