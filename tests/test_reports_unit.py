"""Report functions on fixed rows with a fixed `now`: periods, due runs, digest content, spikes, the won't-do
review, the chart and Block Kit limits. No app, no database."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block

from bot.domain import Report, ReportLine, ReportSection
from bot.reports import blocks, chart, render
from bot.reports.periods import due_period, last_run, period_for
from bot.reports.service import Issue, Item, Rows, monthly, poisson_tail, quarterly, spikes, weekly
from tests.test_triage import _check_limits

WEEKLY = "0 9 * * mon"
GRACE = timedelta(hours=96)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("kind", "moment", "tz", "key", "start", "end"),
    [
        ("weekly", "2026-11-29 22:30", "UTC", "digest:2026-W48", "2026-11-23 00:00", "2026-11-30 00:00"),
        ("weekly", "2026-11-29 23:30", "Europe/Paris", "digest:2026-W49", "2026-11-29 23:00", "2026-12-06 23:00"),
        ("weekly", "2026-11-30 03:00", "America/New_York", "digest:2026-W48", "2026-11-23 05:00", "2026-11-30 05:00"),
        ("weekly", "2027-01-01 12:00", "UTC", "digest:2026-W53", "2026-12-28 00:00", "2027-01-04 00:00"),
        ("monthly", "2026-11-30 23:30", "Europe/Paris", "monthly:2026-12", "2026-11-30 23:00", "2026-12-31 23:00"),
        ("monthly", "2026-02-10 00:00", "UTC", "monthly:2026-02", "2026-02-01 00:00", "2026-03-01 00:00"),
        ("quarterly", "2026-12-31 23:59", "UTC", "quarterly:2026-Q4", "2026-10-01 00:00", "2027-01-01 00:00"),
        ("quarterly", "2026-03-31 22:30", "Europe/Paris", "quarterly:2026-Q2", "2026-03-31 22:00", "2026-06-30 22:00"),
    ],
)
def test_periods_follow_the_teams_time_zone(kind: str, moment: str, tz: str, key: str, start: str, end: str) -> None:
    period = period_for(kind, at(moment), tz)
    assert (period.key, period.start, period.end) == (key, at(start), at(end))


def test_due_period_catches_up_within_grace_and_coalesces_missed_runs() -> None:
    monday_9 = at("2026-11-30 09:00")
    assert last_run(WEEKLY, monday_9, "UTC") == monday_9
    assert due_period("weekly", WEEKLY, monday_9 - timedelta(minutes=1), "UTC", timedelta(hours=1)) is None
    for late in (timedelta(0), timedelta(days=3)):  # on time, or after a 3-day outage: last week, once
        due = due_period("weekly", WEEKLY, monday_9 + late, "UTC", GRACE)
        assert due is not None and due.key == "digest:2026-W48"
    assert due_period("weekly", WEEKLY, monday_9 + timedelta(days=5), "UTC", GRACE) is None  # past the grace time
    two_weeks_down = due_period("weekly", WEEKLY, at("2026-12-08 10:00"), "UTC", GRACE)
    assert two_weeks_down is not None and two_weeks_down.key == "digest:2026-W49"  # only the latest one
    paris = due_period("weekly", WEEKLY, at("2026-11-30 08:30"), "Europe/Paris", GRACE)  # 09:30 in Paris
    assert paris is not None and paris.key == "digest:2026-W48"
    month = due_period("monthly", "0 9 1 * *", at("2026-12-01 10:00"), "UTC", GRACE)
    assert month is not None and month.key == "monthly:2026-11"


def it(n: int, when: str, type_: str = "Bug", theme: str = "Reporting", account: str = "Acme", **kw: object) -> Item:
    return Item(n, at(when), type_, theme, f"request {n} <!channel>", f"https://x.slack.com/p{n}", account,
                f"Person {n}", **kw)  # type: ignore[arg-type]  # fmt: skip


def test_weekly_digest_on_fixed_rows() -> None:
    period = period_for("weekly", at("2026-11-25 12:00"), "UTC")  # W48: 23-29 Nov
    items = [
        it(1, "2026-11-23 10:00"), it(2, "2026-11-24 10:00"), it(3, "2026-11-25 10:00", "Feature request", "SSO"),
        it(4, "2026-11-18 10:00"), it(5, "2026-11-30 00:00"),  # last week, and next week (outside)
    ]  # fmt: skip
    shipped = Issue("ENG-8", "CSV fix", "https://linear.app/x/issue/ENG-8", "completed", at("2026-11-26 09:00"),
                    [(items[0], at("2026-11-27 09:00")), (items[1], None)])  # fmt: skip
    open_a = Issue(
        "ENG-9", "SSO", None, "started", None, [(items[2], None), (it(6, "2026-10-01 00:00", account="Globex"), None)]
    )
    open_b = Issue("ENG-10", "Dark mode", None, "unstarted", None, [(items[3], None)])
    rows = Rows(items, [shipped, open_a, open_b], untriaged=7, overdue=2, stalled=[(items[1], 4.2)],
                stuck=["loop.send:3 (dead)"])  # fmt: skip
    report = weekly(rows, period, "UTC")
    assert report.key == "digest:2026-W48"
    assert report.summary[0] == "3 new feedback items (last week 1, +200%)"
    assert (
        report.summary[1] == "Loops closed: 1 of 2 requesters of what shipped (50%); median ask to resolution 4.0 days"
    )
    assert report.summary[2] == "Untriaged backlog: 7 (2 overdue)"
    by = {s.title: s for s in report.sections}
    assert [line.text for line in by["New by type"].lines] == [
        "Bug: 2 (last week 1, +100%)",
        "Feature request: 1 (last week 0, new)",
    ]
    assert len([line for line in by["Top themes"].lines if line.text.startswith("Reporting")]) == 2
    assert [line.text.split(":")[0] for line in by["Most requested (open)"].lines] == ["ENG-9 SSO", "ENG-10 Dark mode"]
    assert "Acme, Globex" in by["Most requested (open)"].lines[0].text
    assert (
        "told Person 1 (Acme); not told yet: Person 2 (Acme)"
        in by["Shipped, and whose loops were closed"].lines[0].text
    )
    assert "waiting 4.2 days" in by["Stalled promises (the customer spoke last)"].lines[0].text
    assert report.chart is not None and report.chart.weeks[-1] == "2026-W48" and len(report.chart.weeks) == 12
    assert report.chart.series["Bug"][-1] == 2 and report.chart.series["Bug"][-2] == 1
    md = render.markdown(report)
    assert "request 1 @channel" in md and "<!channel>" not in md


def test_empty_week_still_reports() -> None:
    report = weekly(Rows([], []), period_for("weekly", at("2026-11-25 12:00"), "UTC"), "UTC")
    assert report.summary[0] == "0 new feedback items (last week 0, ±0)"
    assert all(not s.lines for s in report.sections)
    assert "Nothing this period." in render.markdown(report)


def test_spikes_by_a_poisson_test_against_the_trailing_baseline() -> None:
    assert poisson_tail(0, 3.0) == pytest.approx(1.0) and poisson_tail(10, 1.0) < 1e-6
    items: list[Item] = []
    for week in range(8):  # a steady baseline of one Billing item a week
        items.append(it(100 + week, (at("2026-10-05 12:00") + timedelta(weeks=week)).isoformat(), theme="Billing"))
    for n in range(7):  # then seven in the week of 30 Nov
        items.append(it(200 + n, "2026-12-01 12:00", theme="Billing"))
    items.append(it(300, "2026-12-01 12:00", theme="Mobile"))
    found = spikes(items, at("2026-12-07 00:00"), "UTC")
    assert [(t, w, n) for t, w, n, _, _ in found] == [("Billing", "2026-W49", 7)]
    report = monthly(Rows(items, []), period_for("monthly", at("2026-12-15 00:00"), "UTC"), "UTC")
    assert report.details and report.details[0].title.startswith("Billing, 2026-W49: 7 items vs 1.0/week")


def test_quarterly_ranks_wont_do_items_that_kept_being_asked_for() -> None:
    period = period_for("quarterly", at("2026-11-15 00:00"), "UTC")
    sso, dark = it(1, "2026-07-01 00:00", theme="SSO"), it(2, "2026-07-02 00:00")
    later = [
        it(10, "2026-10-05 00:00", account="Acme", similar=[(1, 0.8)]),
        it(11, "2026-10-06 00:00", account="Globex", similar=[(1, 0.7)]),
        it(12, "2026-10-07 00:00", account="Globex", similar=[(2, 0.9)]),
        it(13, "2026-10-08 00:00", account="Initech", similar=[(1, 0.3)]),  # not similar enough
        it(14, "2026-08-01 00:00", account="Umbrella", similar=[(2, 0.9)]),  # before the decision
    ]
    report = quarterly([(sso, at("2026-08-01 00:00"), "Enterprise only"), (dark, at("2026-09-01 00:00"), "later")],
                       later, period, 0.5)  # fmt: skip
    lines = report.sections[0].lines
    assert [line.text.split(" ")[0] for line in lines] == ["#1", "#2"]
    assert "2 later requests from 2 accounts: Acme, Globex" in lines[0].text
    assert "1 later requests from 1 accounts: Globex" in lines[1].text


def test_chart_is_a_png_of_the_expected_size() -> None:
    report = weekly(Rows([it(1, "2026-11-23 10:00")], []), period_for("weekly", at("2026-11-25 12:00"), "UTC"), "UTC")
    assert report.chart is not None
    data = chart.png(report.chart)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 450)


def test_report_blocks_pass_block_kit_and_slacks_limits_even_when_huge() -> None:
    long = ReportLine("x" * 400, "https://linear.app/x", "word " * 800)
    sections = [ReportSection(f"Section {n}", [long] * 40) for n in range(40)]
    report = Report("weekly", "digest:2026-W48", "Weekly feedback digest", "week 48", ["s" * 900] * 3, sections,
                    details=sections[:3])  # fmt: skip
    text, body = blocks.message(report)
    _check_limits(body)
    assert len(text) <= 3000 and len(body) <= 50
    assert "more (see `feedbackbot report`)" in str(body)
    for _text, detail in blocks.details(report):
        _check_limits(detail)
    evil = ReportLine("<!here> fake <https://evil|bank>", "javascript:alert(1)", "<!channel> hi")
    rendered = str(blocks.section(ReportSection("t", [evil])))
    assert "<!here>" not in rendered and "<!channel>" not in rendered and "javascript:" not in rendered
    assert all(Block.parse(b) is not None for b in body)


def test_segments_break_feedback_down_and_flag_a_rising_share_of_complaints() -> None:
    period = period_for("monthly", at("2026-11-15 00:00"), "UTC")
    ent = [it(n, "2026-11-03 10:00", "Bug" if n < 4 else "Praise", segment="Enterprise / Tier 1") for n in range(6)]
    ent_before = [it(10 + n, "2026-10-03 10:00", "Bug" if n < 1 else "Praise", segment="Enterprise / Tier 1")
                  for n in range(5)]  # fmt: skip
    pro = [it(20 + n, "2026-11-04 10:00", "Bug", segment="Pro / Tier 2") for n in range(3)]  # too few to flag
    report = monthly(Rows([*ent, *ent_before, *pro], []), period, "UTC")
    by = {s.title: s for s in report.sections}
    assert [line.text for line in by["By plan / tier"].lines][:2] == [
        "Enterprise / Tier 1: 6 (last month 5, +20%)", "Pro / Tier 2: 3 (last month 0, new)"]  # fmt: skip
    assert [line.text for line in by["Segments with a rising share of bugs and complaints"].lines] == [
        "Enterprise / Tier 1: 67% bugs and complaints (6 items), was 20%"]  # fmt: skip


def test_a_weeks_spike_is_reported_in_one_month_only() -> None:
    items = [it(100 + w, (at("2026-09-28 12:00") + timedelta(weeks=w)).isoformat(), theme="Billing") for w in range(8)]
    items += [it(200 + n, "2026-11-25 12:00", theme="Billing") for n in range(7)]  # the week of 23-29 Nov
    november = monthly(Rows(items, []), period_for("monthly", at("2026-11-15 00:00"), "UTC"), "UTC")
    december = monthly(Rows(items, []), period_for("monthly", at("2026-12-15 00:00"), "UTC"), "UTC")
    assert [d.title.split(":")[0] for d in november.details] == ["Billing, 2026-W48"]
    assert december.details == []
    assert all("request 2" in line.quote for line in november.details[0].lines if line.quote)  # that week's items
