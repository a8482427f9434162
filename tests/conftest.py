"""Shared fixtures: the real app over real HTTP against the fake Slack Web API, on SQLite or PostgreSQL."""

from __future__ import annotations

import copy
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from bot.console import Console
from bot.settings import Settings
from bot.suggest.embedder import Embedder

PAYLOADS = Path(__file__).parent / "payloads"
SCHEMAS = Path(__file__).resolve().parents[1].parent / "shared" / "schemas"
PG_ADMIN_URL = os.environ.get("FEEDBACKBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a trimmed Slack/Linear fixture."""
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text()))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings from explicit values only, so a developer's env vars never leak into a test."""
    return Settings.model_validate({"database_url": database_url, **overrides})


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file per test."""
    return f"sqlite:///{tmp_path / 'feedback.db'}"


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__}); set FEEDBACKBOT_TEST_PG"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database, or a skip that says why."""
    reason = _pg_available()
    if reason and os.environ.get("FEEDBACKBOT_REQUIRE_PG"):
        pytest.fail(f"FEEDBACKBOT_REQUIRE_PG is set but {reason}")
    if reason:
        pytest.skip(reason)
    name = f"fbtest_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test on both backends (PostgreSQL skips with a reason when absent)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("pg_url")


_EMBEDDER: list[Embedder] = []


def shared_embedder() -> Embedder:
    """One loaded model for the whole test session (loading it per test would dominate the run time)."""
    if not _EMBEDDER:
        embedder = Embedder()
        embedder.load()
        _EMBEDDER.append(embedder)
    return _EMBEDDER[0]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The loaded model, shared by every test that needs one."""
    return shared_embedder()


def start_console(database_url: str, **overrides: Any) -> Console:
    """The real app behind real HTTP, with the fake Slack, the way `feedbackbot console` runs it."""
    return Console(make_settings(database_url, **overrides), create_app, io.StringIO(), embedder=shared_embedder())


@pytest.fixture
def bot(sqlite_url: str) -> Iterator[Console]:
    """Default harness on SQLite."""
    console = start_console(sqlite_url)
    yield console
    console.close()


@pytest.fixture
def any_bot(any_db_url: str) -> Iterator[Console]:
    """The harness on SQLite and on PostgreSQL."""
    console = start_console(any_db_url)
    yield console
    console.close()
