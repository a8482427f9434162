"""Runs the sweeps of bot/jobs.SCHEDULE on APScheduler 3, in one process at a time.

Each sweep reads database state and is safe to run twice (what it sends goes through the outbox under a key
per period), so a restart, a late run or a second scheduler by mistake never sends twice. Only the holder of
the scheduler lock runs sweeps: a PostgreSQL advisory lock, or a lock file next to a SQLite database; the
others wait and take over when the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bot.deps import Deps
from bot.settings import Settings

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x46_42_53_43  # "FBSC"
GRACE_SECONDS = 3600  # a run missed by up to an hour (a restart, a busy box) still happens, once


@dataclass(frozen=True)
class Sweep:
    """A scheduled job: a name, when it runs (from settings), and the function over database state."""

    name: str
    trigger: Callable[[Settings], BaseTrigger]
    run: Callable[[Deps], dict[str, Any]]
    at_start: bool = True  # catch up when the scheduler starts (False: only on its trigger, e.g. a 09:00 reminder)


class SchedulerLock:
    """One active scheduler: a PostgreSQL session-level advisory lock, else an exclusive lock on a file."""

    def __init__(self, engine: Engine, path: str | None = None):
        self.engine = engine
        self.path = path or _lock_path(engine)
        self._conn: Connection | None = None
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """Non-blocking; True when this process now holds the lock."""
        if self.engine.dialect.name == "postgresql":  # autocommit: never "idle in transaction", so never killed
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}):
                self._conn = conn
                return True
            conn.close()
            return False
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        """Gives the lock up (closing the connection or file also does, so a crash frees it)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):  # the pool keeps the connection: unlock, do not just return it
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _lock_path(engine: Engine) -> str:
    """Next to a SQLite file; in the temp directory for an in-memory database."""
    database = engine.url.database or ""
    if database and database != ":memory:":
        return os.path.abspath(database) + ".scheduler.lock"
    return os.path.join(tempfile.gettempdir(), f"feedbackbot-{os.getpid()}.scheduler.lock")


class Scheduler:
    """Waits for the lock, then runs every sweep on its trigger; `run_now` runs one at once (CLI, console, tests)."""

    def __init__(self, deps: Deps, sweeps: list[Sweep], lock: SchedulerLock, *, retry_seconds: float = 5.0):
        self.deps = deps
        self.sweeps = {s.name: s for s in sweeps}
        self.lock = lock
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._aps: BackgroundScheduler | None = None
        self.active = threading.Event()

    def run_now(self, name: str) -> dict[str, Any]:
        """One sweep, now, in this thread; its errors are logged, never raised into the scheduler."""
        try:
            result = self.sweeps[name].run(self.deps)
        except Exception:
            log.exception("scheduled sweep %s failed; it runs again on its next turn", name)
            return {"error": "crashed"}
        log.info("sweep %s: %s", name, result)
        return result

    def start(self) -> None:
        """In the background: take the lock (retrying while another process holds it), then schedule."""
        threading.Thread(target=self._wait_for_lock, name="scheduler-lock", daemon=True).start()

    def _wait_for_lock(self) -> None:
        while not self._stop.is_set():
            if self.lock.acquire():
                self._begin()
                return
            self._stop.wait(self.retry_seconds)

    def _begin(self) -> None:
        aps = BackgroundScheduler(
            timezone=self.deps.settings.feedback_tz,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": GRACE_SECONDS},
        )
        for sweep in self.sweeps.values():
            aps.add_job(self.run_now, sweep.trigger(self.deps.settings), args=[sweep.name], id=sweep.name)
        aps.start()
        self._aps = aps
        self.active.set()
        log.info("scheduler active: %s", ", ".join(sorted(self.sweeps)))
        for sweep in self.sweeps.values():  # catch up at start: every sweep is safe to run again
            if sweep.at_start:
                aps.modify_job(sweep.name, next_run_time=datetime.now(aps.timezone))

    def stop(self) -> None:
        """Stops scheduling and releases the lock for a standby process."""
        self._stop.set()
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        self.active.clear()
        self.lock.release()
