"""Small shared vocabulary: enums, plain data passed between layers, and the user-facing error."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FeedbackType(StrEnum):
    """The suggested and triaged kinds of feedback."""

    BUG = "Bug"
    FEATURE = "Feature request"
    UX = "UX issue"
    PRAISE = "Praise"
    CONTENT = "Content/data issue"
    QUESTION = "Question"


class CaptureMethod(StrEnum):
    """How an item entered the system; later captures of the same message add tags."""

    AUTO = "auto"
    EMOJI = "emoji"
    SHORTCUT = "shortcut"
    COMMAND = "command"


SOURCES: dict[str, str] = {
    "slack": "Slack conversation",
    "sales_call": "Sales call",
    "support_ticket": "Support ticket",
    "research_interview": "Research interview",
    "community": "Community",
    "email": "Email",
    "other": "Other",
}


class UserFacingError(Exception):
    """An error whose message is safe and useful to show to the person who caused it."""


@dataclass(frozen=True)
class CaptureRequest:
    """Everything a capture path knows about one piece of feedback, already parsed from Slack."""

    method: CaptureMethod
    text: str | None
    team_id: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    author_user_id: str | None = None
    author_team_id: str | None = None
    author_name: str | None = None
    customer: str | None = None
    is_external: bool = False
    source: str = "slack"
    context: str | None = None
    captured_by: str | None = None
    type_hint: str | None = None
    permalink: str | None = None
    dedupe_key: str | None = None

    def key(self) -> str:
        """Messages dedupe on channel+ts across every path; modal-only items on their own key."""
        if self.channel_id and self.message_ts:
            return f"msg:{self.channel_id}:{self.message_ts}"
        if self.dedupe_key:
            return self.dedupe_key
        raise UserFacingError("This feedback has neither a Slack message nor a submission id to track it by.")


@dataclass(frozen=True)
class SimilarItem:
    """An earlier item shown on a card, with where it was routed."""

    feedback_id: int
    score: float
    duplicate: bool
    text: str
    linear: str | None = None
    linear_url: str | None = None


@dataclass(frozen=True)
class Suggested:
    """The model's suggestion as shown on a card (None when the model was unavailable)."""

    type: str
    type_confidence: float
    theme: str | None
    theme_confidence: float
    impact: str
    feedback_score: float


@dataclass(frozen=True)
class CardData:
    """What a triage card shows, as plain values so blocks.py stays a pure function."""

    feedback_id: int
    text: str
    author: str
    organisation: str
    source: str
    method: str
    permalink: str | None
    channel_id: str | None
    captured_by: str | None
    status: str
    tags: list[str] = field(default_factory=list)
    context: str | None = None
    type_hint: str | None = None
    deleted: bool = False
    edited: bool = False
    suggested: Suggested | None = None
    suggestion_note: str | None = None
    similar: list[SimilarItem] = field(default_factory=list)
