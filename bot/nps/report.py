"""NPS over time and by segment, always with n and a 95% interval; alerts only when a whole interval is low."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.domain import Kind
from bot.nps.stats import Nps, below, by_group, segment
from bot.settings import Settings
from storage import queries, surveys
from storage.models import Account

log = logging.getLogger(__name__)
WINDOW = timedelta(days=90)  # segments and alerts look at each contact's latest answer in this trailing window
DIMENSIONS = ("plan", "tier", "industry", "region", "lifecycle", "cohort")


@dataclass(frozen=True)
class Answer:
    """One response, flattened with its account's segment values."""

    contact_id: int
    score: int
    at: datetime
    feedback_id: int | None
    segments: dict[str, str | None]


def _cohort(account: Account | None) -> str | None:
    day = account.signup_date if account else None
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}" if day else None


def answers(session: Session, since: datetime | None = None) -> list[Answer]:
    """Every scored response (imports included), oldest first."""
    out = []
    for s, account in surveys.responses(session=session, since=since):
        values: dict[str, str | None] = {d: getattr(account, d, None) if account else None for d in DIMENSIONS[:-1]}
        values["cohort"] = _cohort(account)
        out.append(Answer(s.contact_id, int(s.score or 0), s.answered_at or s.created_at, s.feedback_id, values))
    return out


def latest_per_contact(rows: list[Answer], since: datetime) -> list[Answer]:
    """Each contact counts once in a trailing window: their newest answer."""
    newest: dict[int, Answer] = {}
    for row in rows:
        if row.at >= since:
            newest[row.contact_id] = row
    return list(newest.values())


def by_month(rows: list[Answer], tz: str) -> dict[str, Nps]:
    """NPS per calendar month (team time zone) of the answer."""
    zone = ZoneInfo(tz)
    return by_group(rows, lambda r: f"{r.at.replace(tzinfo=UTC).astimezone(zone):%Y-%m}", lambda r: r.score)


def by_segment(rows: list[Answer], dimension: str) -> dict[str, Nps]:
    """NPS per value of an account dimension (plan, tier, industry, region, lifecycle, cohort)."""
    return by_group(rows, lambda r: r.segments.get(dimension), lambda r: r.score)


def detractor_themes(session: Session, rows: list[Answer]) -> list[tuple[str, int]]:
    """Detractor reasons' themes, most frequent first (staff's theme, else the suggestion)."""
    ids = [r.feedback_id for r in rows if r.feedback_id and segment(r.score) == "detractor"]
    themes = surveys.themes_of(session=session, feedback_ids=ids)
    return Counter(t or "unthemed" for t in themes.values()).most_common()


def _table(title: str, groups: dict[str, Nps]) -> list[str]:
    lines = [f"## {title}", "", "| | NPS | 95% CI | n | promoters / passives / detractors |", "|---|---|---|---|---|"]
    for label, nps in groups.items():
        low, high = nps.interval
        score = f"{nps.score:+.0f}" if nps.enough and nps.score is not None else f"⚠ n<{50}: no score"
        lines.append(f"| {label} | {score} | {low:+.0f} to {high:+.0f} | n={nps.n} | "
                     f"{nps.promoters} / {nps.passives} / {nps.detractors} |")  # fmt: skip
    return [*lines, ""] if groups else [*lines[:2], "No answers yet.", ""]


def markdown(session: Session, settings: Settings, now: datetime, by: str | None = None) -> str:
    """`feedbackbot report nps`: overall, by month (12 months), by segment, and ranked detractor themes."""
    rows = answers(session, since=now - timedelta(days=366))
    recent = latest_per_contact(rows, now - WINDOW)
    overall = Nps(0, 0, 0, 0) if not recent else by_group(recent, lambda r: "all", lambda r: r.score)["all"]
    out = ["# NPS", "", f"Last 90 days (each contact's latest answer): {overall.describe()}", ""]
    out += _table("By month (every answer)", by_month(rows, settings.feedback_tz))
    for dim in [by] if by else []:
        out += _table(f"By {dim}, last 90 days", by_segment(recent, dim))
    themes = detractor_themes(session, recent)
    out += ["## What detractors talk about (last 90 days)", ""]
    out += [f"{i}. {theme}: {n}" for i, (theme, n) in enumerate(themes, 1)] or ["No detractor reasons yet."]
    low = [
        f"{label}: {nps.describe()}" for label, nps in _segments(recent).items() if below(nps, settings.nps_alert_below)
    ]
    out += ["", "## Alerts", ""] + ([f"- {line}" for line in low] or [f"None below {settings.nps_alert_below:+g}."])
    return "\n".join(out) + "\n"


def _segments(rows: list[Answer]) -> dict[str, Nps]:
    """Overall and every dimension's values, labelled `plan=Enterprise`."""
    out = by_group(rows, lambda r: "overall", lambda r: r.score) if rows else {}
    for dim in DIMENSIONS:
        for value, nps in by_segment(rows, dim).items():
            if value != "unknown":
                out[f"{dim}={value}"] = nps
    return out


def alerts(session: Session, settings: Settings, now: datetime) -> int:
    """Posts to the digest channel when a segment's trailing interval lies wholly below NPS_ALERT_BELOW, once a
    week per segment; never into a channel shared with a customer."""
    channel = settings.digest_channel()
    if not channel:
        return 0
    known = queries.get_channel(session=session, channel_id=channel)
    if known is not None and known.is_ext_shared:
        log.warning("NPS alert not posted: the digest channel %s is shared with a customer", channel)
        return 0
    week = f"{now:%G-W%V}"
    count = 0
    for label, nps in _segments(latest_per_contact(answers(session, now - WINDOW), now - WINDOW)).items():
        if below(nps, settings.nps_alert_below):
            text = f":rotating_light: NPS for {label} is below {settings.nps_alert_below:+g}: {nps.describe()}"
            count += queries.enqueue(session=session, key=f"nps.alert:{label}:{week}", kind=Kind.REMINDER,
                                     payload={"to": channel, "text": text})  # fmt: skip
    return count


def monthly_lines(session: Session, settings: Settings, start: datetime, end: datetime) -> list[str]:
    """The monthly report's NPS section: the month's score with its interval and its detractor themes."""
    rows = [r for r in answers(session, since=start) if r.at < end]
    if not rows:
        return ["No NPS answers this month."]
    nps = by_group(rows, lambda r: "all", lambda r: r.score)["all"]
    themes = detractor_themes(session, rows)
    top = ", ".join(f"{t} ({n})" for t, n in themes[:5]) or "none"
    return [f"NPS this month: {nps.describe()}", f"Detractor themes: {top}"]
