"""What each report says: rows read in one transaction, then pure functions of those rows and the period.

Demand is the number of live feedback items linked to an issue, with the accounts asking (an account is the
customer's organisation as we know it: the name staff typed, else their Slack team).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.accounts.service import demand
from bot.deps import Deps
from bot.domain import CLOSED, ChartData, Kind, Report, ReportLine, ReportSection, UserFacingError
from bot.nps import service as nps
from bot.reports.items import Item
from bot.reports.ledger import ledger
from bot.reports.periods import Period, period_for
from bot.reports.trends import BASELINE_WEEKS, SPIKE_MIN, SPIKE_P, month_spikes, poisson_tail, segment_shifts, spikes
from bot.settings import Settings
from storage import queries, reports
from storage.models import Feedback, LinearIssue, LoopState

__all__ = ["Item", "ledger", "poisson_tail", "spikes"]  # used by App Home and the tests
CHART_WEEKS = 12
TOLD = {LoopState.SENT.value, LoopState.TOLD.value}


@dataclass(frozen=True)
class Issue:
    """A linked Linear issue with its requesters: (item, when they were told it shipped, or None)."""

    identifier: str
    title: str
    url: str | None
    state: str | None
    completed_at: datetime | None
    requesters: list[tuple[Item, datetime | None]]
    reach: str = ""  # "2 accounts · $200k ARR"
    arr: float = 0.0  # the asking accounts' ARR, for ranking


@dataclass(frozen=True)
class Rows:
    """Everything the weekly digest reads, as plain values."""

    items: list[Item]
    issues: list[Issue]
    untriaged: int = 0
    overdue: int = 0
    stalled: list[tuple[Item, float]] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    nps_overdue: list[str] = field(default_factory=list)  # NPS follow-ups past their 48 hours
    nps_month: list[str] = field(default_factory=list)  # the month's NPS with its interval, detractor themes


def account(fb: Feedback) -> str:
    """The customer's organisation as we know it: the account (imported or from Slack Connect), else what we have."""
    if fb.account is not None:
        return fb.account.name
    return fb.customer or fb.author_team_id or fb.author_name or "unknown"


def segment(fb: Feedback) -> str:
    """The account's plan and tier, for breakdowns."""
    if fb.account is None:
        return "unknown account"
    return f"{fb.account.plan or 'no plan'} / {fb.account.tier or 'no tier'}"


def item(fb: Feedback) -> Item:
    """A row as a report item (a confirmed type or theme wins over the suggestion)."""
    similar = [(int(h["id"]), float(h["score"])) for h in fb.similar or [] if "id" in h and "score" in h]
    return Item(
        fb.id,
        fb.created_at,
        fb.type or fb.suggested_type or "Unclassified",
        fb.theme or fb.suggested_theme or "No theme",
        fb.text,
        fb.permalink,
        account(fb),
        fb.author_name or fb.customer or f"item #{fb.id}",
        similar,
        segment(fb),
    )


def read_rows(session: Session, settings: Settings, period: Period, now: datetime) -> Rows:
    """One transaction's worth of reads for a period (12 weeks back for the chart and baselines)."""
    since = min(period.start, period.previous(settings.feedback_tz).start) - timedelta(weeks=CHART_WEEKS)
    items = [item(fb) for fb in reports.items_between(session=session, start=since, end=period.end)]
    issues = [_issue(session, row, issue_id, fbs) for row, issue_id, fbs in reports.linked_issues(session=session)]
    stalled_before = now - timedelta(days=settings.feedback_stalled_days)
    stalled = [
        (item(fb), (now - (fb.thread_last_at or now)).total_seconds() / 86400)
        for fb in reports.stalled(session=session, before=stalled_before, closed=[s.value for s in CLOSED])
    ]
    return Rows(
        items=items,
        issues=issues,
        untriaged=reports.count_status(session=session, status="new"),
        overdue=reports.count_status(
            session=session, status="new", before=now - timedelta(hours=settings.feedback_triage_sla_hours)
        ),
        stalled=stalled,
        stuck=[f"{o.key} ({o.status})" for o in reports.stuck_outbox(session=session)],
        nps_overdue=nps.overdue(session, settings, now),
        nps_month=nps.monthly_lines(session, settings, period.start, period.end),
    )


def _issue(session: Session, row: LinearIssue | None, issue_id: str, fbs: Sequence[Feedback]) -> Issue:
    """An issue with its requesters and when each was told it shipped (state from its row, else a link)."""
    told = {
        m.feedback_id: m.updated_at
        for m in reports.loop_messages_for(session=session, feedback_ids=[f.id for f in fbs])
        if m.stage == "resolution" and m.status in TOLD
    }
    link = reports.first_link(session=session, issue_id=issue_id)
    identifier = (row.identifier if row else None) or (link.identifier if link else None) or issue_id
    title = (row.title if row else None) or (link.title if link else None) or ""
    url = (row.url if row else None) or (link.url if link else None)
    state = (row.state_type if row else None) or (link.state_type if link else None)
    completed = row.completed_at if row else None
    d = demand(session, issue_id)
    arr = float(sum(a[1] or 0 for a in d.accounts))
    return Issue(identifier, title, url, state, completed, [(item(f), told.get(f.id)) for f in fbs], d.label(), arr)


def _in(items: list[Item], period: Period) -> list[Item]:
    return [i for i in items if period.start <= i.created_at < period.end]


def _change(now: int, before: int) -> str:
    if before == 0:
        return "new" if now else "±0"
    return f"{(now - before) / before:+.0%}"


def _counts(title: str, now: Counter[str], before: Counter[str], word: str) -> ReportSection:
    lines = [
        ReportLine(f"{name}: {n} (last {word} {before[name]}, {_change(n, before[name])})")
        for name, n in now.most_common()
    ]
    lines += [ReportLine(f"{name}: 0 (last {word} {n})") for name, n in before.items() if name not in now]
    return ReportSection(title, lines)


def weekly(rows: Rows, period: Period, tz: str) -> Report:
    """The weekly digest: a pure function of the rows and the period."""
    this, last = _in(rows.items, period), _in(rows.items, period.previous(tz))
    themes = Counter(i.theme for i in this)
    top = [
        ReportLine(f"{theme} ({n} new), example {k + 1}: {example.who} ({example.account})", example.link, example.text)
        for theme, n in themes.most_common(3)
        for k, example in enumerate([i for i in this if i.theme == theme][:2])
    ]
    shipped = [i for i in rows.issues if i.completed_at and period.start <= i.completed_at < period.end]
    summary = [
        f"{len(this)} new feedback items (last week {len(last)}, {_change(len(this), len(last))})",
        _closure(shipped),
        f"Untriaged backlog: {rows.untriaged} ({rows.overdue} overdue)",
    ]
    return Report(
        kind="weekly",
        key=period.key,
        title="Weekly feedback digest",
        period=period.label,
        summary=summary,
        sections=[
            _counts("New by type", Counter(i.type for i in this), Counter(i.type for i in last), "week"),
            _counts("New by theme", themes, Counter(i.theme for i in last), "week"),
            _counts("New by plan / tier", Counter(i.segment for i in this), Counter(i.segment for i in last), "week"),
            ReportSection("Top themes", top),
            ReportSection("Most requested (open)", _demand(rows.issues)),
            ReportSection("Shipped, and whose loops were closed", [_shipped(i) for i in shipped]),
            ReportSection(
                "Stalled promises (the customer spoke last)",
                [
                    ReportLine(f"#{it.id} · {it.account} · waiting {days:.1f} days", link=it.link, quote=it.text)
                    for it, days in rows.stalled[:10]
                ],
            ),
            ReportSection("NPS follow-ups overdue", [ReportLine(t) for t in rows.nps_overdue[:10]], empty="None."),
            ReportSection("Dead outbox items", [ReportLine(key) for key in rows.stuck[:10]], empty="None."),
        ],
        chart=chart_data(rows.items, period.end, tz),
    )


def _closure(shipped: list[Issue]) -> str:
    """Loop-closure rate over the requesters of what shipped, and the median days from their ask to being told."""
    told = [(it, at) for issue in shipped for it, at in issue.requesters if at is not None]
    asked = sum(len(issue.requesters) for issue in shipped)
    text = f"Loops closed: {len(told)} of {asked} requesters of what shipped"
    if not asked or not told:
        return text
    waits = [(at - it.created_at).total_seconds() / 86400 for it, at in told]
    return text + f" ({len(told) / asked:.0%}); median ask to resolution {statistics.median(waits):.1f} days"


def _demand(issues: list[Issue], limit: int = 8) -> list[ReportLine]:
    """Open issues by the revenue asking for them, then by how many items ask, with the accounts asking."""
    open_issues = [i for i in issues if i.state not in ("completed", "canceled")]
    ranked = sorted(open_issues, key=lambda i: (-i.arr, -len(i.requesters), i.identifier))[:limit]
    lines = []
    for issue in ranked:
        accounts = sorted({it.account for it, _ in issue.requesters})
        text = f"{issue.identifier} {issue.title}: {len(issue.requesters)} requests from {', '.join(accounts)}"
        text += f" ({issue.reach})" if issue.reach else ""
        lines.append(ReportLine(text, link=issue.url))
    return lines


def _shipped(issue: Issue) -> ReportLine:
    told = sorted({f"{it.who} ({it.account})" for it, at in issue.requesters if at is not None})
    waiting = sorted({f"{it.who} ({it.account})" for it, at in issue.requesters if at is None})
    text = f"{issue.identifier} {issue.title}: told {', '.join(told) or 'nobody yet'}"
    return ReportLine(text + (f"; not told yet: {', '.join(waiting)}" if waiting else ""), link=issue.url)


def chart_data(items: list[Item], end: datetime, tz: str) -> ChartData:
    """Counts by type for the 12 weeks ending with the period."""
    weeks = [period_for("weekly", end - timedelta(days=1) - timedelta(weeks=n), tz) for n in range(CHART_WEEKS)][::-1]
    types = sorted({i.type for i in items})
    series = {
        t: [sum(1 for i in items if i.type == t and w.start <= i.created_at < w.end) for w in weeks] for t in types
    }
    return ChartData([w.key.split(":")[1] for w in weeks], series)


def monthly(rows: Rows, period: Period, tz: str) -> Report:
    """Trends by type and theme against the previous month, and theme spikes (details in the thread)."""
    this, last = _in(rows.items, period), _in(rows.items, period.previous(tz))
    found, details = month_spikes(rows.items, period, tz)
    return Report(
        kind="monthly",
        key=period.key,
        title="Monthly feedback trends",
        period=period.label,
        summary=[
            f"{len(this)} new feedback items (last month {len(last)}, {_change(len(this), len(last))})",
            f"{len(found)} theme spike(s): at least {SPIKE_MIN} items in a week and p < {SPIKE_P} against a "
            f"Poisson with the theme's trailing {BASELINE_WEEKS}-week mean",
        ],
        sections=[
            _counts("By type", Counter(i.type for i in this), Counter(i.type for i in last), "month"),
            _counts("By theme", Counter(i.theme for i in this), Counter(i.theme for i in last), "month"),
            _counts("By plan / tier", Counter(i.segment for i in this), Counter(i.segment for i in last), "month"),
            ReportSection(
                "Segments with a rising share of bugs and complaints",
                segment_shifts(this, last),
                empty="No segment's share of bugs and complaints rose.",
            ),
            ReportSection("NPS", [ReportLine(t) for t in rows.nps_month]),
            ReportSection(
                "Spikes",
                [ReportLine(f"{t} in {w}: {n} items vs {b:.1f}/week") for t, w, n, b, _ in found],
                empty="No theme spiked.",
            ),
        ],
        details=details,
    )


def quarterly(decided: list[tuple[Item, datetime, str]], later: list[Item], period: Period, min_score: float) -> Report:
    """Won't-do items whose similar requests kept arriving after the decision, by how many and which accounts."""
    ranked = []
    for wont, at, reason in decided:
        asks = [
            i
            for i in later
            if i.created_at > at
            and i.created_at < period.end
            and any(fid == wont.id and score >= min_score for fid, score in i.similar)
        ]
        if asks:
            ranked.append((wont, at, reason, asks, sorted({i.account for i in asks})))
    ranked.sort(key=lambda r: (-len(r[3]), -len(r[4]), r[0].id))
    lines = [
        ReportLine(
            f"#{w.id} won't do since {at:%Y-%m-%d} ({reason}): {len(asks)} later requests from "
            f"{len(accts)} accounts: {', '.join(accts)}",
            link=w.link,
            quote=w.text,
        )
        for w, at, reason, asks, accts in ranked[:15]
    ]
    return Report(
        kind="quarterly",
        key=period.key,
        title="Quarterly won't-do review",
        period=period.label,
        summary=[f"{len(ranked)} won't-do decision(s) kept getting similar requests; worth reconsidering"],
        sections=[ReportSection("Still being asked for", lines, empty="No won't-do item was asked for again.")],
    )


def build(session: Session, settings: Settings, period: Period, now: datetime) -> Report:
    """The report for a period, read in the caller's transaction."""
    tz = settings.feedback_tz
    if period.kind == "quarterly":
        decided = [
            (item(fb), fb.triaged_at or fb.updated_at, fb.reason or "no reason given")
            for fb in reports.decided_wont_do(session=session)
            if (fb.triaged_at or fb.updated_at) < period.end
        ]
        first = min((at for _, at, _ in decided), default=period.end)
        later = [item(fb) for fb in reports.items_after(session=session, after=first)]
        return quarterly(decided, later, period, settings.feedback_similar_min)
    rows = read_rows(session, settings, period, now)
    return weekly(rows, period, tz) if period.kind == "weekly" else monthly(rows, period, tz)


def queue(session: Session, deps: Deps, period: Period) -> bool:
    """Enqueues the period's report once; False when it was already queued or posted (by anyone)."""
    channel = deps.settings.digest_channel()
    if not channel:
        raise UserFacingError("set FEEDBACK_DIGEST_CHANNEL (or FEEDBACK_TRIAGE_CHANNEL) to post reports")
    payload = {"kind": period.kind, "key": period.key, "start": period.start.isoformat(), "end": period.end.isoformat(),
               "label": period.label, "channel": channel, "lane": f"report:{period.key}"}  # fmt: skip
    return queries.enqueue(session=session, key=period.key, kind=Kind.REPORT_POST, payload=payload)
