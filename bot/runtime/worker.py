"""Drains the outbox: claims due rows, runs each kind's handler from bot/jobs.py, records the outcome."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from bot.deps import Deps
from bot.domain import Kind
from bot.runtime.outbox import Handler, MaybeSent, Permanent, Retry, begin, finish
from storage import queries
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
NEVER_GIVE_UP_ATTEMPTS = 10_000


class Worker:
    """One per process; `drain()` is also called directly by tests and the console for determinism."""

    def __init__(self, deps: Deps, handlers: Mapping[Kind, Handler], *, persistent: Collection[Kind] = ()):
        self.deps = deps
        self.handlers = dict(handlers)
        self.persistent = frozenset(persistent)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()

    def drain(self, max_items: int = 1000) -> int:
        """Processes every due row once; returns how many were attempted."""
        done = 0
        with self._drain_lock:
            while done < max_items:
                with session_scope(self.deps.sessions) as session:
                    items = queries.claim_due(session=session, now=self.deps.now(), lease=LEASE, limit=10)
                if not items:
                    return done
                for item in items:
                    self._run_one(item.id)
                    done += 1
        return done

    def _run_one(self, item_id: int) -> None:
        with session_scope(self.deps.sessions) as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != OutboxStatus.SENDING:
                return
            job = begin(item)
        handler = self.handlers.get(Kind(job.kind)) if job.kind in set(Kind) else None
        result: dict[str, Any] | None = None
        error: Exception | None = None
        try:
            with session_scope(self.deps.sessions) as session, session.no_autoflush:
                if handler is None:
                    raise Permanent(f"no handler for outbox kind {job.kind!r}")
                result = handler(self.deps, session, job)  # writes flush at commit, after the network calls
        except (Retry, Permanent) as exc:
            error = exc
        except DBAPIError as exc:  # e.g. locked or unreachable database, possibly after a successful send
            log.warning("outbox %s: database error, will reconcile and retry: %s", job.key, exc)
            error = MaybeSent(f"database error: {exc}")
        except Exception as exc:
            log.exception("outbox %s crashed", job.key)
            error = Permanent(f"internal error: {exc}")
        if error is None and result and result.get("failed"):  # a refusal whose state change was committed
            error = Permanent(str(result["failed"]))
        with session_scope(self.deps.sessions) as session:
            item = session.get(OutboxItem, item_id)
            if item is not None:
                # persistent kinds (deferred Slack events) must outlive any outage: capped at 10 min apart
                limit = (
                    NEVER_GIVE_UP_ATTEMPTS if job.kind in self.persistent else self.deps.settings.outbox_max_attempts
                )
                finish(
                    item, now=self.deps.now(), result=result, error=error, max_attempts=limit,
                    in_flight=job.crashed_mid_send,
                )  # fmt: skip

    def start(self) -> None:
        """Background thread: drain, then sleep until woken or the poll interval passes."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="outbox-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Lets the loop finish its current item."""
        self._stop.set()
        self.deps.wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:
                log.exception("outbox drain failed")
            self.deps.wake.wait(self.deps.settings.worker_poll_seconds)
            self.deps.wake.clear()
