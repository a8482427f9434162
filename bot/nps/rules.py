"""Who is asked, and when: pure rules over one contact's history, so every boundary is testable with a fixed clock."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.settings import Settings


@dataclass(frozen=True)
class Rules:
    """The sampling rules, from settings (NPS_*)."""

    min_tenure: timedelta = timedelta(days=30)
    interval: timedelta = timedelta(days=90)
    retry: timedelta = timedelta(days=30)
    ticket_quiet: timedelta = timedelta(days=14)
    per_quarter: int = 1
    sample_percent: float = 100.0
    heads_up: timedelta = timedelta(days=7)

    @classmethod
    def of(cls, s: Settings) -> Rules:
        """Reads NPS_MIN_TENURE_DAYS, NPS_INTERVAL_DAYS, NPS_RETRY_DAYS and the rest."""
        return cls(
            timedelta(days=s.nps_min_tenure_days), timedelta(days=s.nps_interval_days),
            timedelta(days=s.nps_retry_days), timedelta(days=s.nps_ticket_quiet_days), s.nps_per_quarter,
            s.nps_sample_percent, timedelta(days=s.nps_heads_up_days),
        )  # fmt: skip


@dataclass(frozen=True)
class Facts:
    """What the rules need to know about one contact (storage/surveys.py gathers it)."""

    contact_id: int
    name: str
    tenure_start: datetime | None = None
    left: bool = False
    pending: str | None = None  # a survey already scheduled or waiting for its answer
    last_answer: datetime | None = None
    last_unanswered: datetime | None = None  # sent, never answered
    asks: tuple[datetime, ...] = ()  # every time they were asked or answered (imports included)
    last_ticket: datetime | None = None
    open_task: bool = False  # a detractor follow-up is open on their account
    milestone: tuple[datetime, str] | None = None  # the newest milestone event since they were last asked
    owner: str | None = None
    account: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """When (if at all) to ask, and why, in words an operator reads in `nps run --dry-run`."""

    due: datetime | None
    trigger: str
    why: str


def quarter(moment: datetime) -> tuple[int, int]:
    """(year, quarter 0-3)."""
    return moment.year, (moment.month - 1) // 3


def next_quarter(moment: datetime) -> datetime:
    """Midnight on the first day of the following quarter."""
    year, q = quarter(moment)
    return datetime(year + (q == 3), 1 + 3 * ((q + 1) % 4), 1)


def sampled(contact_id: int, when: datetime, percent: float) -> bool:
    """A stable draw per contact and quarter: the same contacts are in the sample however often the sweep runs."""
    if percent >= 100:
        return True
    digest = hashlib.sha256(f"nps:{contact_id}:{quarter(when)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < percent * 100


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _base(f: Facts, rules: Rules) -> Decision:
    """The first moment the cadence allows: tenure, a milestone, 90 days after an answer, 30 after silence."""
    if f.last_unanswered and (not f.last_answer or f.last_unanswered > f.last_answer):
        return Decision(f.last_unanswered + rules.retry, "retry", f"no answer to the ask of {_day(f.last_unanswered)}")
    if f.last_answer:
        return Decision(f.last_answer + rules.interval, "interval", f"answered on {_day(f.last_answer)}")
    due = f.tenure_start + rules.min_tenure if f.tenure_start else None
    if f.milestone and (due is None or f.milestone[0] < due):
        return Decision(f.milestone[0], f"milestone:{f.milestone[1]}", f"{f.milestone[1]} on {_day(f.milestone[0])}")
    if due is None or f.tenure_start is None:
        return Decision(None, "", "tenure unknown (no first_seen, no account signup_date)")
    return Decision(due, "tenure", f"tenure from {_day(f.tenure_start)}")


def decide(f: Facts, now: datetime, rules: Rules) -> Decision:
    """The next ask for this contact after every guard (ticket, quarter, sample), or None with the reason."""
    if f.left:
        return Decision(None, "", "left the shared channel or was deactivated")
    if f.pending:
        return Decision(None, "", f"a survey is already {f.pending}")
    if f.open_task:
        return Decision(None, "", "a detractor follow-up is open on the account")
    base = _base(f, rules)
    if base.due is None:
        return base
    due, why = base.due, base.why
    if f.last_ticket and due < f.last_ticket + rules.ticket_quiet:
        due, why = f.last_ticket + rules.ticket_quiet, f"{why}; support ticket on {_day(f.last_ticket)}"
    for _ in range(8):  # a quarter's cap pushes to the next quarter, at most a few times
        if sum(quarter(a) == quarter(max(due, now)) for a in f.asks) < rules.per_quarter:
            break
        due, why = next_quarter(max(due, now)), f"{why}; already asked this quarter"
    if not sampled(f.contact_id, max(due, now), rules.sample_percent):
        return Decision(None, base.trigger, f"{why}; not in this quarter's {rules.sample_percent:g}% sample")
    return Decision(due, base.trigger, why)


def send_at(d: Decision, now: datetime, rules: Rules) -> datetime | None:
    """When a survey due at d.due goes out: owners hear a week ahead, so a late-found contact waits for the notice;
    a milestone goes at once (its owner is told as it goes). None while it is too early to schedule."""
    if d.due is None:
        return None
    if d.trigger.startswith("milestone:"):
        return max(d.due, now) if d.due <= now else None
    if d.due - rules.heads_up > now:
        return None
    return max(d.due, now + rules.heads_up)
