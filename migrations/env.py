"""Alembic environment: targets storage.db.Base.metadata; batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import storage.models  # noqa: F401 - registers the tables
from storage.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Uses a connection handed over by feedbackbot (tests, `db upgrade`) or builds one from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///./feedback.db")
    with engine.begin() as conn:
        _run(conn)


run_migrations_online()
