"""Trend tests behind the monthly report: Poisson spikes per theme and week, and segments whose share of bugs and
complaints rose. Pure functions of report items."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from bot.domain import ReportLine, ReportSection
from bot.reports.items import Item
from bot.reports.periods import Period, period_for

SPIKE_MIN, SPIKE_P, BASELINE_WEEKS = 5, 0.01, 8


def spikes(items: list[Item], end: datetime, tz: str, weeks: int = 4) -> list[tuple[str, str, int, float, float]]:
    """(theme, week, count, baseline, p) for the weeks before `end`: a theme spikes when it has at least 5 items in
    a week and a Poisson test against its trailing 8-week mean gives p < 0.01."""
    found = []
    spans = [
        period_for("weekly", end - timedelta(days=1) - timedelta(weeks=n), tz) for n in range(weeks + BASELINE_WEEKS)
    ]
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)  # week key -> theme -> count
    for it in items:
        for w in spans:
            if w.start <= it.created_at < w.end:
                counts[w.key][it.theme] += 1
    for idx, week in enumerate(spans[:weeks]):
        base_weeks = spans[idx + 1 : idx + 1 + BASELINE_WEEKS]
        for theme, n in counts[week.key].items():
            baseline = sum(counts[w.key][theme] for w in base_weeks) / BASELINE_WEEKS
            p = poisson_tail(n, max(baseline, 0.5))
            if n >= SPIKE_MIN and p < SPIKE_P:
                found.append((theme, week.key.split(":")[1], n, baseline, p))
    return sorted(found, key=lambda s: s[4])


COMPLAINTS = {"Bug", "UX issue", "Content/data issue"}
SHIFT_MIN_ITEMS, SHIFT_POINTS = 5, 0.15


def segment_shifts(this: list[Item], last: list[Item]) -> list[ReportLine]:
    """Segments (plan / tier) with at least 5 items this period whose share of bugs and complaints rose by 15
    points or more against the previous period."""
    lines = []
    for seg in sorted({i.segment for i in this}):
        now_items, before = [i for i in this if i.segment == seg], [i for i in last if i.segment == seg]
        if len(now_items) < SHIFT_MIN_ITEMS:
            continue
        share = sum(i.type in COMPLAINTS for i in now_items) / len(now_items)
        was = sum(i.type in COMPLAINTS for i in before) / len(before) if before else 0.0
        if share - was >= SHIFT_POINTS:
            lines.append(ReportLine(f"{seg}: {share:.0%} bugs and complaints ({len(now_items)} items), was {was:.0%}"))
    return lines


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    term, below = math.exp(-mean), 0.0
    for i in range(k):
        below += term
        term *= mean / (i + 1)
    return max(0.0, 1.0 - below)


def month_spikes(items: list[Item], period: Period, tz: str) -> tuple[list[Any], list[ReportSection]]:
    """The month's spikes, each ISO week counted in the month of its Thursday (so in one monthly report only),
    with up to three examples from the spike week."""
    weeks = {
        w.key.split(":")[1]: w
        for w in (period_for("weekly", period.end - timedelta(days=1, weeks=n), tz) for n in range(6))
        if period.start <= w.start + timedelta(days=3) < period.end
    }
    found = [s for s in spikes(items, period.end, tz, weeks=6) if s[1] in weeks]
    details = []
    for theme, week, n, baseline, p in found:
        span = weeks[week]
        examples = [i for i in items if i.theme == theme and span.start <= i.created_at < span.end][:3]
        lines = [ReportLine(f"#{i.id} · {i.account}", link=i.link, quote=i.text) for i in examples]
        details.append(ReportSection(f"{theme}, {week}: {n} items vs {baseline:.1f}/week (p = {p:.4f})", lines))
    return found, details
