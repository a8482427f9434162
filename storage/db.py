"""Engine, metadata and the one transaction helper every caller uses."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self, cast

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so Alembic diffs are stable on every backend."""

    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    """Naive UTC, because SQLite drops time zones and both backends must compare equal."""
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets the worker read while a listener writes; busy_timeout queues concurrent writers."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


URGENT, SOON, NORMAL = 0, 1, 2  # writer priorities on SQLite: an ack, then receipts and events, then the rest


class _Gate:
    """One writer at a time, handed over at once; a waiting writer of a higher priority (the acks first, then the
    customer's receipt and unprocessed events) goes before the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._waiting = [0, 0, 0]

    def acquire(self, *, level: int, timeout: float) -> bool:
        with self._cond:
            self._waiting[level] += 1
            try:
                free = self._cond.wait_for(lambda: not self._busy and not any(self._waiting[:level]), timeout)
                self._busy = self._busy or free
                return free
            finally:
                self._waiting[level] -= 1

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


_LEVEL = threading.local()


@contextmanager
def urgent() -> Iterator[None]:
    """Writes in this block go first on SQLite (the store-before-ack write: someone is waiting for the answer)."""
    with priority(URGENT):
        yield


@contextmanager
def priority(level: int) -> Iterator[None]:
    """Writes in this block (this thread) queue at `level` on SQLite's writer gate; PostgreSQL needs no gate."""
    before = getattr(_LEVEL, "value", NORMAL)
    _LEVEL.value = level
    try:
        yield
    finally:
        _LEVEL.value = before


class _GatedCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        cast(_GatedConnection, self.connection).enter(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any, /) -> Self:
        cast(_GatedConnection, self.connection).enter(sql)
        return super().executemany(sql, seq)


class _GatedConnection(sqlite3.Connection):
    """SQLite connections whose writers queue on one in-process lock, taken at a transaction's first write and
    released at its commit or rollback. SQLite's own busy handler makes a waiting writer sleep in growing steps
    (up to 100 ms) however soon the lock frees, which was the ack path's tail under load; this queue hands over at
    once. A writer that cannot get the gate in 10 s (never seen) falls back to SQLite's own waiting."""

    gate: _Gate  # one per engine: set by _gated()
    writing = False

    def cursor(self, factory: Any = _GatedCursor) -> Any:
        return super().cursor(factory)

    def enter(self, sql: str) -> None:
        if not self.writing and sql.lstrip()[:7].upper().startswith(_WRITES):
            self.writing = self.gate.acquire(level=getattr(_LEVEL, "value", NORMAL), timeout=10)

    def leave(self) -> None:
        if self.writing:
            self.writing = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave()


def _gated() -> type[_GatedConnection]:
    """A connection class with its own gate: one writer queue per engine (per database)."""
    return type("GatedConnection", (_GatedConnection,), {"gate": _Gate()})


def make_engine(url: str, *, pool_size: int = 15) -> Engine:
    """One engine per process; SQLite gets WAL, thread sharing and one writer queue, PostgreSQL a pool. The pool
    must cover every thread that may hold a connection at once (a job's session plus the service transaction it
    opens), or threads wait out the pool timeout."""
    if url.startswith("sqlite"):
        factory = _gated()
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10, "factory": factory},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions keep loaded attributes after commit so services can return rows."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
