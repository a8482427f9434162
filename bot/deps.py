"""The objects every listener, service and job needs, built once in app.py and handed down."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.linear.client import LinearClient
from bot.settings import Settings
from bot.slack.gateway import SlackGateway
from storage.db import session_scope, utcnow
from storage.models import Feedback


class Suggestions(Protocol):
    """What the domains use of bot/suggest's service; a Protocol so deps.py imports no domain."""

    error: str | None

    @property
    def state(self) -> str:
        """warming | ready | failed."""
        ...

    def suggest_for(self, session: Session, fb: Feedback) -> Any:
        """Embeds, suggests and records the suggestion on the row."""
        ...

    def learn(self, fb: Feedback) -> None:
        """Makes the models agree with the row's current decisions."""
        ...

    def distinct(self, earlier: str, later: str) -> bool:
        """Is `later` clearly a different request from `earlier`?"""
        ...

    def embed_missing(self, feedback_ids: list[int]) -> int:
        """Embeds the items that lack an embedding in one model call; returns how many."""
        ...


@dataclass
class Deps:
    """Settings, database, the adapters and the model; no worker, so web, worker and scheduler can run apart."""

    settings: Settings
    sessions: sessionmaker[Session]
    slack: SlackGateway
    linear: LinearClient | None = None
    suggestions: Suggestions | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    now: Callable[[], datetime] = utcnow
    redeliver: Callable[[dict[str, Any]], None] | None = None  # replays a stored interaction through its listener

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work; wakes the worker afterwards because it may have queued side effects."""
        with session_scope(self.sessions) as session:
            yield session
        self.wake.set()
