"""NPS math and cadence rules: hand-computed fixtures and a fixed clock, no Slack."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from bot.nps import stats
from bot.nps.checkins import age_stage
from bot.nps.rules import Facts, Rules, decide, next_quarter, sampled, send_at

NOW = datetime(2026, 11, 16, 12, 0)
RULES = Rules()


def reference_interval(promoters: int, passives: int, detractors: int) -> tuple[float, float]:
    """Sauro & Lewis's adjusted Wald for NPS, written out independently: n+3, +0.75 promoters and detractors."""
    n = promoters + passives + detractors + 3
    p, d = (promoters + 0.75) / n, (detractors + 0.75) / n
    diff = p - d
    se = math.sqrt((p + d - diff * diff) / n)
    return 100 * max(-1.0, diff - 1.96 * se), 100 * min(1.0, diff + 1.96 * se)


def test_segments_at_their_boundaries() -> None:
    assert [stats.segment(s) for s in range(11)] == ["detractor"] * 7 + ["passive"] * 2 + ["promoter"] * 2


def test_hand_computed_nps_with_ties_and_an_empty_group() -> None:
    nps = stats.compute([10, 9, 9, 8, 7, 6, 0, 6, 10, 8])  # 4 promoters, 3 passives (8, 7, 8), 3 detractors
    assert (nps.n, nps.promoters, nps.passives, nps.detractors) == (10, 4, 3, 3)
    assert nps.score == pytest.approx(10.0)
    tie = stats.compute([9, 6])  # one of each: NPS 0, and the interval is symmetric around the adjusted centre
    assert tie.score == 0.0 and tie.interval[0] == pytest.approx(-tie.interval[1])
    empty = stats.compute([])
    assert empty.score is None and empty.n == 0 and not stats.below(empty, 30)
    assert empty.describe() == "no answers, n=0"
    groups = stats.by_group([("a", 10), ("b", 3), (None, 8)], lambda r: r[0], lambda r: r[1])
    assert list(groups) == ["a", "b", "unknown"] and groups["b"].score == -100.0


@pytest.mark.parametrize("counts", [(30, 10, 10), (0, 0, 5), (120, 60, 20), (1, 0, 0), (200, 100, 200)])
def test_interval_matches_the_reference_computation(counts: tuple[int, int, int]) -> None:
    p, pas, d = counts
    nps = stats.compute([10] * p + [7] * pas + [2] * d)
    low, high = nps.interval
    ref = reference_interval(p, pas, d)
    assert low == pytest.approx(ref[0], abs=0.01) and high == pytest.approx(ref[1], abs=0.01)
    assert low <= (nps.score or 0) + 1e-9 or nps.n < 5  # the point lies inside (tiny n shifts the centre)


def test_fifty_hand_computed() -> None:
    nps = stats.compute([10] * 30 + [8] * 10 + [3] * 10)  # n=53 adjusted: p=30.75/53, d=10.75/53
    assert nps.describe() == "NPS +40 (95% CI +16 to +59), n=50"
    low, high = nps.interval
    assert low == pytest.approx(16.19, abs=0.01) and high == pytest.approx(59.28, abs=0.01)


def test_below_fifty_is_a_range_with_a_warning_never_a_bare_score() -> None:
    text = stats.compute([10] * 20 + [2] * 5).describe()
    assert text.startswith("only 25 answers (<50)") and "n=25" in text and "NPS +" not in text


def test_alert_only_when_the_whole_interval_is_below() -> None:
    noisy = stats.compute([2] * 3 + [10] * 1)  # NPS -50 on 4 answers: the interval reaches above 30
    assert noisy.score == -50 and not stats.below(noisy, 30)
    real = stats.compute([2] * 60 + [10] * 20)  # NPS -50 on 80 answers
    assert stats.below(real, 30) and real.interval[1] < 30


def facts(**kw: object) -> Facts:
    return Facts(contact_id=7, name="Carol", **kw)  # type: ignore[arg-type]


def test_first_ask_after_thirty_days_of_tenure_to_the_minute() -> None:
    start = NOW - timedelta(days=30)
    assert decide(facts(tenure_start=start), NOW, RULES).due == NOW
    assert decide(facts(tenure_start=start + timedelta(minutes=1)), NOW, RULES).due == NOW + timedelta(minutes=1)
    assert decide(facts(), NOW, RULES).due is None  # tenure unknown


def test_ninety_days_after_an_answer_thirty_after_silence() -> None:
    answered = facts(tenure_start=NOW - timedelta(days=400), last_answer=NOW - timedelta(days=89),
                     asks=(NOW - timedelta(days=89),))  # fmt: skip
    assert decide(answered, NOW, RULES).due == NOW + timedelta(days=1)
    silent = facts(tenure_start=NOW - timedelta(days=400), last_unanswered=NOW - timedelta(days=29),
                   asks=(NOW - timedelta(days=29),))  # fmt: skip
    d = decide(silent, NOW, RULES)
    assert d.trigger == "retry" and d.due is not None and d.due >= NOW + timedelta(days=1)


def test_never_within_fourteen_days_of_a_ticket_or_with_an_open_task() -> None:
    ticket = NOW - timedelta(days=13, hours=23)
    d = decide(facts(tenure_start=NOW - timedelta(days=60), last_ticket=ticket), NOW, RULES)
    assert d.due == ticket + timedelta(days=14) and "support ticket" in d.why
    old_ticket = decide(facts(tenure_start=NOW - timedelta(days=60), last_ticket=NOW - timedelta(days=14)), NOW, RULES)
    assert old_ticket.due is not None and old_ticket.due <= NOW  # 14 days after the ticket: allowed again
    assert decide(facts(tenure_start=NOW - timedelta(days=60), open_task=True), NOW, RULES).due is None
    assert decide(facts(tenure_start=NOW - timedelta(days=60), left=True), NOW, RULES).due is None
    assert decide(facts(tenure_start=NOW - timedelta(days=60), pending="sent"), NOW, RULES).due is None


def test_at_most_once_a_quarter() -> None:
    asked = datetime(2026, 10, 2)  # Q4; an answer 45 days ago with a 30-day interval would be due now
    d = decide(facts(tenure_start=NOW - timedelta(days=400), last_answer=asked, asks=(asked,)), NOW,
               Rules(interval=timedelta(days=30)))  # fmt: skip
    assert d.due == datetime(2027, 1, 1) and "already asked this quarter" in d.why
    assert next_quarter(datetime(2026, 12, 31, 23, 59)) == datetime(2027, 1, 1)
    assert next_quarter(datetime(2026, 3, 31)) == datetime(2026, 4, 1)


def test_sampling_is_stable_per_contact_and_quarter_and_near_its_share() -> None:
    picked = [sampled(cid, NOW, 30) for cid in range(2000)]
    assert 0.26 < sum(picked) / 2000 < 0.34
    assert picked == [sampled(cid, NOW, 30) for cid in range(2000)]
    assert all(sampled(cid, NOW, 100) for cid in range(50)) and not any(sampled(cid, NOW, 0) for cid in range(50))
    out = next(cid for cid in range(100) if not sampled(cid, NOW, 30))
    d = decide(Facts(contact_id=out, name="x", tenure_start=NOW - timedelta(days=60)), NOW, Rules(sample_percent=30))
    assert d.due is None and "30% sample" in d.why


def test_heads_up_week_and_milestones() -> None:
    due = decide(facts(tenure_start=NOW - timedelta(days=25)), NOW, RULES)  # due in 5 days: announce now
    assert send_at(due, NOW, RULES) == NOW + timedelta(days=7)
    later = decide(facts(tenure_start=NOW - timedelta(days=20)), NOW, RULES)  # due in 10 days: not yet
    assert send_at(later, NOW, RULES) is None
    mile = decide(facts(tenure_start=NOW - timedelta(days=3), milestone=(NOW - timedelta(hours=1), "workflow_done")),
                  NOW, RULES)  # fmt: skip
    assert mile.trigger == "milestone:workflow_done" and send_at(mile, NOW, RULES) == NOW


def test_check_in_stage_by_account_age() -> None:
    signup = datetime(2026, 1, 1)
    assert age_stage(signup, signup + timedelta(days=6)) is None
    assert age_stage(signup, signup + timedelta(days=7)) == ("day7", "What's confusing?")
    assert age_stage(signup, signup + timedelta(days=36))[0] == "day30"  # type: ignore[index]
    assert age_stage(signup, signup + timedelta(days=60)) is None  # past day 30's grace: no late "day 30" question
    assert age_stage(signup, signup + timedelta(days=130))[0] == "day120"  # type: ignore[index]
    assert age_stage(signup, signup + timedelta(days=365))[0] == "day365"  # type: ignore[index]
