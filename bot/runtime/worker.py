"""Drains the outbox: claims due rows, runs each kind's handler from bot/jobs.py on a bounded pool, records outcomes.

Concurrency: rows are grouped into lanes (one item's jobs, or one message's deferred events) that run in claim
order; different lanes run at once on `WORKER_CONCURRENCY` threads. Leases are short (`OUTBOX_LEASE_SECONDS`)
and renewed while a row is in flight, so rows leased by a process that died are retried seconds after it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.domain import Kind
from bot.runtime.outbox import Handler, Job, MaybeSent, Permanent, Preparer, Retry, begin, finish
from storage import queries
from storage.db import NORMAL, SOON, priority, session_scope
from storage.models import OutboxItem, OutboxStatus

log = logging.getLogger(__name__)
NEVER_GIVE_UP_ATTEMPTS = 10_000
PRIORITY = (Kind.RECEIPT, Kind.EVENT)  # the customer's "we heard you" and unprocessed input never wait on cards
FAST, BULK = "fast", "bulk"  # the two classes of work, each with its own claim budget


def _kind(value: str) -> Kind | None:
    """A stored kind as the enum; None for a kind this version does not know (its row fails visibly)."""
    try:
        return Kind(value)
    except ValueError:
        return None


def lane(item: OutboxItem) -> str:
    """Rows in one lane run in order: an item's card before its updates, a message's events in arrival order,
    a channel's customer messages one by one."""
    payload = item.payload or {}
    if payload.get("lane"):  # e.g. one channel's customer messages (paced), one issue's state changes (ordered)
        return str(payload["lane"])
    if item.kind == Kind.EVENT:  # event:<channel>:<ts>:<event id>:<digest>
        return ":".join(item.key.split(":")[:3])
    for field in ("feedback_id", "link_id"):
        if field in payload:
            return f"{field}:{payload[field]}"
    return f"row:{item.id}"


class Worker:
    """One per process; `drain()` is also called directly by tests and the console for determinism."""

    def __init__(
        self,
        deps: Deps,
        handlers: Mapping[Kind, Handler],
        *,
        persistent: Collection[Kind] = (),
        prepare: Mapping[Kind, Preparer] | None = None,
        only: str | None = None,
    ):
        self.deps = deps
        self.handlers = dict(handlers)
        self.prepare = dict(prepare or {})
        self.persistent = frozenset(persistent)
        self.only = only  # claim only rows whose key starts with this (a command's own work), else every due row
        self.lease = timedelta(seconds=deps.settings.outbox_lease_seconds)
        fast = bulk = deps.settings.worker_concurrency
        # Receipts and stored events keep `fast` threads free of card work: bulk rows in flight (queued or running)
        # never exceed `bulk`, so they never fill the pool, and one FIFO pool keeps receipts ahead of queued cards.
        # Receipts are claimed before events: a customer waiting for the :eyes: comes before the next capture.
        self._pool = ThreadPoolExecutor(fast + bulk, thread_name_prefix="outbox")
        self._slots = {FAST: bulk * 2, BULK: bulk}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self._inflight: set[int] = set()
        self._inflight_lock = threading.Lock()
        self._lanes: dict[str, deque[Job]] = {}
        self._lanes_changed = threading.Condition()
        self._queued = {FAST: 0, BULK: 0}

    def drain(self, max_items: int = 1000) -> int:
        """Claims due rows as pool slots free up and runs them, lanes in parallel, until nothing is due and nothing
        runs; returns how many rows were attempted. A hung call holds one lane, never the others."""
        done = 0
        with self._drain_lock:
            while done < max_items and not self._stop.is_set():
                with self._lanes_changed:
                    free = {cls: self._slots[cls] - self._queued[cls] for cls in self._slots}
                    if all(n <= 0 for n in free.values()):
                        self._lanes_changed.wait(0.05)
                        continue
                claimed = self._claim(free)
                if claimed:
                    self._dispatch(claimed)
                    done += len(claimed)
                    continue
                with self._lanes_changed:
                    if not self._lanes:
                        return done
                    self._lanes_changed.wait(0.05)
        return done

    def _claim(self, free: dict[str, int]) -> list[tuple[Job, str]]:
        """Leases due rows for each class with room (receipts and events, then the rest), prepares batches."""
        batches: dict[str, list[dict[str, Any]]] = {}
        claimed: list[tuple[Job, str]] = []
        with priority(SOON), session_scope(self.deps.sessions) as session:  # every lane waits on the claim
            for cls, limit in free.items():
                if limit <= 0:
                    continue
                items = queries.claim_due(
                    session=session, now=self.deps.now(), lease=self.lease, limit=limit, only=self.only,
                    kinds=PRIORITY if cls == FAST else None, exclude=() if cls == FAST else PRIORITY,
                    first=(Kind.RECEIPT,) if cls == FAST else (),
                )  # fmt: skip
                claimed += [(begin(item), f"{cls}|{lane(item)}") for item in items]  # marked in flight
                for item in items:
                    batches.setdefault(item.kind, []).append(dict(item.payload or {}))
        self._prepare(batches)
        return claimed

    def _prepare(self, batches: dict[str, list[dict[str, Any]]]) -> None:
        """Batch work for a kind (one model call for many cards); a failure only loses the batching."""
        for kind, payloads in batches.items():
            known = _kind(kind)
            prepare = self.prepare.get(known) if known else None
            if prepare is not None and len(payloads) > 1:
                try:
                    prepare(self.deps, payloads)
                except Exception:
                    log.exception("preparing a batch of %s failed; its rows run one by one", kind)

    def _dispatch(self, claimed: list[tuple[Job, str]]) -> None:
        """Queues each row on its lane; a lane not running yet gets a pool thread."""
        self._track(add=[job.item_id for job, _ in claimed])
        with self._lanes_changed:
            for job, name in claimed:
                cls = name.split("|", 1)[0]
                self._queued[cls] += 1
                if name in self._lanes:
                    self._lanes[name].append(job)
                else:
                    self._lanes[name] = deque([job])
                    self._pool.submit(self._run_lane, name)

    def _run_lane(self, name: str) -> None:
        """Runs a lane's rows in order; receipts' and events' writes queue ahead of card work on SQLite."""
        with priority(SOON if name.startswith(f"{FAST}|") else NORMAL):
            self._run_lane_rows(name)

    def _run_lane_rows(self, name: str) -> None:
        while True:
            with self._lanes_changed:
                queue = self._lanes[name]
                if not queue:
                    del self._lanes[name]
                    self._lanes_changed.notify_all()
                    return
                job = queue.popleft()
            try:
                if self._stop.is_set():
                    self._release(job.item_id)
                else:
                    self._run_one(job)
            except Exception:  # the database itself failed: the lease expires and the row is retried
                log.exception("outbox row %s could not be run or recorded", job.item_id)
            finally:
                self._track(remove=[job.item_id])
                with self._lanes_changed:
                    self._queued[name.split("|", 1)[0]] -= 1
                    self._lanes_changed.notify_all()

    def _track(self, *, add: list[int] | None = None, remove: list[int] | None = None) -> None:
        with self._inflight_lock:
            self._inflight.update(add or [])
            self._inflight.difference_update(remove or [])

    def _release(self, item_id: int) -> None:
        """Stopping: a claimed row that has not started goes back to pending at once, for the next process."""
        with session_scope(self.deps.sessions) as session:
            queries.release_leases(session=session, ids=[item_id], now=self.deps.now())

    def _run_one(self, job: Job) -> None:
        """The handler's writes and the row's outcome commit together; a failure rolls the writes back and
        records the outcome on its own."""
        known = _kind(job.kind)
        handler = self.handlers.get(known) if known else None
        error: Exception | None = None
        try:
            with session_scope(self.deps.sessions) as session, session.no_autoflush:
                if handler is None:
                    raise Permanent(f"no handler for outbox kind {job.kind!r}")
                result = handler(self.deps, session, job)  # writes flush at commit, after the network calls
                refused = Permanent(str(result["failed"])) if result and result.get("failed") else None
                self._finish(session, job, result, refused)  # a refusal's state change commits with it
            return
        except (Retry, Permanent) as exc:
            error = exc
        except DBAPIError as exc:  # e.g. locked or unreachable database, possibly after a successful send
            log.warning("outbox %s: database error, will reconcile and retry: %s", job.key, exc)
            error = MaybeSent(f"database error: {exc}")
        except Exception as exc:
            log.exception("outbox %s crashed", job.key)
            error = Permanent(f"internal error: {exc}")
        with session_scope(self.deps.sessions) as session:
            self._finish(session, job, None, error)

    def _finish(self, session: Session, job: Job, result: dict[str, Any] | None, error: Exception | None) -> None:
        item = session.get(OutboxItem, job.item_id)
        if item is not None and item.status == OutboxStatus.SENDING:
            # persistent kinds (deferred Slack events) must outlive any outage: capped at 10 min apart
            limit = NEVER_GIVE_UP_ATTEMPTS if job.kind in self.persistent else self.deps.settings.outbox_max_attempts
            finish(
                item, now=self.deps.now(), result=result, error=error, max_attempts=limit,
                in_flight=job.crashed_mid_send,
            )  # fmt: skip

    def renew_leases(self) -> int:
        """Extends the leases of rows still in flight, so a slow call is not mistaken for a dead process."""
        with self._inflight_lock:
            ids = sorted(self._inflight)
        if not ids:
            return 0
        with session_scope(self.deps.sessions) as session:
            return queries.extend_leases(session=session, ids=ids, until=self.deps.now() + self.lease)

    def start(self) -> None:
        """Background threads: the drain loop, and the lease heartbeat."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="outbox-worker", daemon=True)
        self._thread.start()
        threading.Thread(target=self._heartbeat, name="outbox-heartbeat", daemon=True).start()

    def stop(self, timeout: float = 8.0) -> None:
        """Takes no new rows; rows claimed but not started are released; in-flight ones get `timeout` to finish."""
        self._stop.set()
        self.deps.wake.set()
        if self._thread:
            self._thread.join(timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._inflight_lock:
            left = sorted(self._inflight)
        if left:  # back to pending now; one that began is marked in flight, so its next attempt reconciles first
            log.warning("stopping: %d outbox rows released for the next process", len(left))
            with session_scope(self.deps.sessions) as session:
                queries.release_leases(session=session, ids=left, now=self.deps.now())

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                self.renew_leases()
            except DBAPIError as exc:
                log.warning("could not renew outbox leases: %s", exc)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:
                log.exception("outbox drain failed")
            self.deps.wake.wait(self.deps.settings.worker_poll_seconds)
            self.deps.wake.clear()
