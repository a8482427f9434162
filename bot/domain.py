"""Small shared vocabulary: enums, plain data passed between layers, and the user-facing error."""

from __future__ import annotations

import hashlib
import hmac
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
    NPS = "nps"
    CHECK_IN = "checkin"


SOURCES: dict[str, str] = {
    "slack": "Slack conversation",
    "sales_call": "Sales call",
    "support_ticket": "Support ticket",
    "research_interview": "Research interview",
    "community": "Community",
    "email": "Email",
    "nps": "NPS survey",
    "checkin": "Check-in",
    "other": "Other",
}


class Status(StrEnum):
    """Where an item stands in triage."""

    NEW = "new"
    MAYBE = "maybe"
    TRIAGED = "triaged"
    LINEAR = "in Linear"
    ROADMAP = "roadmap"
    QUICK_WIN = "quick win"
    WONT_DO = "won't do"
    DUPLICATE = "duplicate"
    NOT_FEEDBACK = "not_feedback"


CLOSED = frozenset({Status.WONT_DO, Status.DUPLICATE, Status.NOT_FEEDBACK})
OPEN = (Status.NEW, Status.TRIAGED, Status.LINEAR, Status.ROADMAP)


class Kind(StrEnum):
    """Outbox kinds: each is registered with its handler in bot/jobs.py and nowhere else."""

    EVENT = "event"
    HYDRATE = "hydrate"
    CARD = "card"
    CARD_UPDATE = "card_update"
    RECEIPT = "receipt"
    AUDIT = "audit"
    LINEAR_CREATE = "linear.create"
    LINEAR_LINK = "linear.link"
    LINEAR_DEMAND = "linear.demand"
    INTERACTION = "interaction"
    LEARN = "learn"
    LINEAR_STATE = "linear.state"
    LOOP_DRAFT = "loop.draft"
    LOOP_SEND = "loop.send"
    REMINDER = "reminder"
    REPORT_POST = "report.post"
    REPORT_CHART = "report.chart"
    REPORT_THREAD = "report.thread"
    NPS_SURVEY = "nps.survey"
    NPS_MESSAGE = "nps.message"
    NPS_FOLLOWUP = "nps.followup"
    NPS_STAFF = "nps.staff"
    CHECK_IN = "nps.checkin"


class LoopStage(StrEnum):
    """What a customer is told: work started, it shipped, or it will not be built."""

    UPDATE = "update"
    RESOLUTION = "resolution"
    CANCELED = "canceled"


IMPACTS = ("High", "Medium", "Low")


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
    url: str | None = None  # the item's own Slack message


@dataclass(frozen=True)
class Suggested:
    """The model's suggestion as shown on a card (None when the model was unavailable)."""

    type: str
    type_confidence: float
    theme: str | None
    theme_confidence: float
    impact: str
    feedback_score: float
    unsure: bool = False  # the top two types were too close: the card says "not sure"
    examples: list[SimilarItem] = field(default_factory=list)  # labelled items nearest to it, of its type


@dataclass(frozen=True)
class LinkView:
    """A Linear issue as shown on a card: its key, state and how many items ask for it (demand)."""

    identifier: str
    url: str | None
    linked: bool
    state: str | None
    demand: int
    note: str | None = None
    error: str | None = None
    reach: str | None = None  # "2 accounts · $200k ARR"


@dataclass(frozen=True)
class LoopLine:
    """One requester's loop on a card or in App Home: who, what kind of message, and where it stands."""

    who: str
    stage: str
    state: str
    overdue: bool = False


@dataclass(frozen=True)
class LoopDraft:
    """A customer message as staff see it in the approval DM: who hears what, where, and when."""

    message_id: int
    ref: str
    stage: str
    status: str
    issue: str
    issue_url: str | None
    customer: str
    channel_id: str | None
    permalink: str | None
    text: str
    note: str | None = None
    when: str | None = None
    decided: str | None = None


@dataclass(frozen=True)
class TriageView:
    """The triage half of a card: decisions so far and what the controls need."""

    ref: str
    type: str | None = None
    theme: str | None = None
    impact: str | None = None
    owner_id: str | None = None
    reason: str | None = None
    duplicate_of: int | None = None
    links: list[LinkView] = field(default_factory=list)
    requesters: list[str] = field(default_factory=list)
    last_action: str | None = None
    themes: list[str] = field(default_factory=list)
    can_undo: bool = False
    routed: bool = False
    loop: list[LoopLine] = field(default_factory=list)


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
    triage: TriageView | None = None
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CardRef:
    """What a card's buttons carry: only ids, versioned and MAC'd, so forged or stale clicks are refused."""

    feedback_id: int
    rev: int
    VERSION = "1"

    def encode(self, secret: str) -> str:
        """`1.<id>.<rev>.<mac>`; well under Slack's 2000-char value and 255-char block_id limits."""
        body = f"{self.VERSION}.{self.feedback_id}.{self.rev}"
        return f"{body}.{_mac(secret, body)}"

    @classmethod
    def parse(cls, raw: object, secret: str) -> CardRef:
        """Validates shape, version and MAC; anything else is a UserFacingError, never a crash."""
        parts = raw.split(".") if isinstance(raw, str) else []
        if len(parts) != 4 or parts[0] != cls.VERSION or not (parts[1].isdigit() and parts[2].isdigit()):
            raise UserFacingError("This button is not one of ours (or from an older version); nothing changed.")
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], _mac(secret, body)):
            raise UserFacingError("This button's value did not verify; nothing changed.")
        return cls(int(parts[1]), int(parts[2]))


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:12]


@dataclass(frozen=True)
class HomeItem:
    """One row of the App Home lists."""

    feedback_id: int
    status: str
    who: str
    text: str
    triage: TriageView
    suggested_type: str | None = None
    suggested_theme: str | None = None
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportLine:
    """One line of a report: our own words (raw), an optional link, and an optional customer verbatim (as Slack
    sends it), so Markdown and Block Kit renderers can each make it safe their own way."""

    text: str
    link: str | None = None
    quote: str | None = None


@dataclass(frozen=True)
class ReportSection:
    """A titled list of lines; `empty` is shown when there are none."""

    title: str
    lines: list[ReportLine] = field(default_factory=list)
    empty: str = "Nothing this period."


@dataclass(frozen=True)
class ChartData:
    """Weekly counts by type for the digest's chart: week labels and one series per type."""

    weeks: list[str]
    series: dict[str, list[int]]


@dataclass(frozen=True)
class Report:
    """A digest, monthly or quarterly report as plain values; `details` go in a thread under the message."""

    kind: str
    key: str
    title: str
    period: str
    summary: list[str]
    sections: list[ReportSection]
    details: list[ReportSection] = field(default_factory=list)
    chart: ChartData | None = None
