"""Outbox state machine: which failures are retried, which reconcile first, which stop."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.runtime.outbox import IN_FLIGHT, Defer, MaybeSent, Permanent, Retry, backoff, begin, finish
from bot.runtime.outbox import slack_errors as _slack_errors
from bot.slack.gateway import SlackError
from storage.models import OutboxItem

NOW = datetime(2026, 1, 1)


def item(**kw) -> OutboxItem:
    return OutboxItem(key="k", kind="card", payload={}, status="sending", attempts=0, created_at=NOW, **kw)


def test_retry_after_is_honoured_and_backoff_grows() -> None:
    assert backoff(1, 7.0) == timedelta(seconds=7)
    assert [backoff(n, None).total_seconds() for n in (1, 2, 3, 12)] == [2, 4, 8, 600]


def test_maybe_sent_keeps_the_row_in_flight_so_the_next_attempt_reconciles() -> None:
    row = item()
    begin(row)
    finish(row, now=NOW, error=MaybeSent("503"))
    assert row.status == "pending" and (row.last_error or "").startswith(IN_FLIGHT)
    assert begin(row).crashed_mid_send


def test_defer_is_not_an_attempt_and_permanent_stops() -> None:
    row = item()
    begin(row)
    finish(row, now=NOW, error=Defer("warming", 0.5))
    assert (row.status, row.attempts) == ("pending", 0)
    begin(row)
    finish(row, now=NOW, error=Permanent("channel_not_found"))
    assert row.status == "failed"


def test_retries_end_dead_after_the_limit() -> None:
    row = item()
    for _ in range(3):
        begin(row)
        finish(row, now=NOW, error=Retry("500"), max_attempts=3)
    assert row.status == "dead"


@pytest.mark.parametrize(
    ("error", "posting", "expected"),
    [
        (SlackError("x", error="ratelimited", retryable=True, retry_after=3), True, Retry),
        (SlackError("x", error="network", retryable=True), True, MaybeSent),
        (SlackError("x", error="network", retryable=True), False, Retry),
        (SlackError("x", error="channel_not_found", retryable=False), True, Permanent),
    ],
)
def test_slack_errors_map_to_outcomes(error: SlackError, posting: bool, expected: type) -> None:
    with pytest.raises(expected) as caught, _slack_errors(posting=posting):
        raise error
    assert type(caught.value) is expected
