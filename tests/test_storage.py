"""Migrations reach exactly the models, on SQLite and PostgreSQL; SQLite runs in WAL mode."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from storage import migrate
from storage.db import Base, make_engine


def test_upgrade_empty_database_matches_models(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    migrate.upgrade(engine)  # idempotent
    engine.dispose()


def test_sqlite_uses_wal(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_capture_is_one_transaction(any_db_url: str) -> None:
    """The row, its audit line and its outbox rows commit together or not at all."""
    import pytest
    from sqlalchemy import func, select

    from bot.capture.service import capture
    from bot.domain import CaptureMethod, CaptureRequest
    from bot.settings import Settings
    from storage.db import make_sessionmaker, session_scope
    from storage.models import Feedback, FeedbackEvent, OutboxItem

    engine = make_engine(any_db_url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    req = CaptureRequest(method=CaptureMethod.COMMAND, text="Add SSO", dedupe_key="view:V1", captured_by="U1")
    with pytest.raises(RuntimeError), session_scope(sessions) as session:
        capture(session=session, settings=Settings.model_validate({}), req=req)
        raise RuntimeError("crash before commit")
    with session_scope(sessions) as session:
        for model in (Feedback, FeedbackEvent, OutboxItem):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
    engine.dispose()
