"""The outbox state machine: pending -> sending -> done | pending (retry) | failed | dead."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.slack.gateway import SlackError
from storage import queries
from storage.models import Feedback, OutboxItem, OutboxStatus

log = logging.getLogger(__name__)

IN_FLIGHT = "in flight"
MAYBE_SENT_WAIT = timedelta(seconds=10)


class Retry(Exception):
    """Try again later, after `retry_after` seconds when the remote said so (429 Retry-After)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class MaybeSent(Retry):
    """The outcome is unknown (e.g. the database failed after the send): retry, reconciling first."""


class Defer(Retry):
    """Not an error: a prerequisite (the model warming up) is not there yet; the attempt is not counted."""


class Permanent(Exception):
    """Retrying cannot help (bad channel, missing permission); the row keeps the error for a human."""


@dataclass(frozen=True)
class Job:
    """What a handler sees: the row's kind, payload, and whether an earlier attempt died mid-send."""

    item_id: int
    key: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    crashed_mid_send: bool
    created_at: float

    @property
    def reconcile_since(self) -> float | None:
        """Where to look for a message an earlier attempt may have posted; None when none died mid-send."""
        return self.created_at - 60 if self.crashed_mid_send else None


Handler = Callable[[Deps, Session, Job], dict[str, Any]]
Preparer = Callable[[Deps, list[dict[str, Any]]], None]


@contextmanager
def slack_errors(*, posting: bool = False) -> Iterator[None]:
    """Maps Slack failures onto the outcomes; a post that timed out or hit a 5xx may have landed."""
    try:
        yield
    except SlackError as exc:
        if not exc.retryable:
            raise Permanent(str(exc)) from exc
        if posting and exc.error != "ratelimited":
            raise MaybeSent(str(exc), exc.retry_after) from exc
        raise Retry(str(exc), exc.retry_after) from exc


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """The server's Retry-After when it gave one; otherwise exponential from 2 s, capped at 10 min."""
    if retry_after is not None:
        return timedelta(seconds=max(retry_after, 0.0))
    return timedelta(seconds=min(2.0 * 2 ** max(attempts - 1, 0), 600.0))


def begin(item: OutboxItem) -> Job:
    """Marks the attempt before the side effect, so a crash leaves a trace to reconcile."""
    created = item.created_at.replace(tzinfo=UTC).timestamp()
    crashed = (item.last_error or "").startswith(IN_FLIGHT)
    job = Job(item.id, item.key, item.kind, dict(item.payload), item.attempts, crashed, created)
    item.attempts += 1
    item.last_error = IN_FLIGHT
    return job


def finish(
    item: OutboxItem,
    *,
    now: datetime,
    result: dict[str, Any] | None = None,
    error: Exception | None = None,
    max_attempts: int = 8,
    in_flight: bool = False,
) -> None:
    """Records the outcome of one attempt; "maybe sent" survives until an attempt settles it either way."""
    item.locked_until = None
    if error is None:
        item.status, item.result, item.last_error = OutboxStatus.DONE, result or {}, None
        return
    text = f"{type(error).__name__}: {error}"
    unsettled = isinstance(error, MaybeSent) or (in_flight and isinstance(error, Retry))
    item.last_error = (f"{IN_FLIGHT}: {text}" if unsettled else text)[:2000]
    if isinstance(error, Defer):
        item.attempts -= 1
        item.status, item.next_attempt_at = OutboxStatus.PENDING, now + backoff(item.attempts, error.retry_after)
        log.debug("outbox %s deferred: %s", item.key, error)
        return
    if isinstance(error, Retry) and item.attempts < max_attempts:
        item.status = OutboxStatus.PENDING
        delay = backoff(item.attempts, error.retry_after)
        if isinstance(error, MaybeSent):  # a timed-out post may still land: look for it once it surely has
            delay = max(delay, MAYBE_SENT_WAIT)
        item.next_attempt_at = now + delay
        log.warning("outbox %s retry %d in %s: %s", item.key, item.attempts, item.next_attempt_at - now, error)
    elif isinstance(error, Retry):
        item.status = OutboxStatus.DEAD
        log.error("outbox %s gave up after %d attempts: %s", item.key, item.attempts, error)
    else:
        item.status = OutboxStatus.FAILED
        log.error("outbox %s failed: %s", item.key, error)


def feedback_of(session: Session, job: Job) -> Feedback:
    """The row a job is about; gone means nothing can be sent."""
    fb = queries.feedback_by_id(session=session, feedback_id=int(job.payload["feedback_id"]))
    if fb is None:
        raise Permanent(f"feedback {job.payload['feedback_id']} not found")
    return fb
