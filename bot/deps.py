"""The objects every listener needs, built once in app.py and handed down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.worker import Worker
from bot.settings import Settings
from bot.slack.gateway import SlackGateway
from storage.db import session_scope


@dataclass
class Deps:
    """Settings, database, Slack and the outbox worker; no globals anywhere else."""

    settings: Settings
    sessions: sessionmaker[Session]
    gateway: SlackGateway
    worker: Worker

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work; wakes the worker afterwards because it may have queued side effects."""
        with session_scope(self.sessions) as session:
            yield session
        self.worker.wake.set()
