"""Reads and writes of the fine-tuned encoder versions (`feedbackbot train`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import Feedback, ModelVersion


def active_version(*, session: Session) -> ModelVersion | None:
    """The encoder running bots should use (None: the bundled base model)."""
    return session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)).order_by(ModelVersion.id.desc()))


def add_version(
    *, session: Session, path: str, sha256: str, base_sha256: str, labels: int, metrics: dict[str, Any]
) -> ModelVersion:
    """Records a new encoder and makes it the only active one."""
    session.execute(update(ModelVersion).values(active=False))
    row = ModelVersion(path=path, sha256=sha256, base_sha256=base_sha256, labels=labels, metrics=metrics, active=True)
    session.add(row)
    session.flush()
    return row


def labelled_feedback(*, session: Session) -> Sequence[tuple[str, str | None, str | None]]:
    """(text, confirmed type, confirmed theme) of every live item staff labelled."""
    query = select(Feedback.text, Feedback.type, Feedback.theme).where(
        Feedback.deleted_at.is_(None), (Feedback.type.is_not(None)) | (Feedback.theme.is_not(None))
    )
    return [(t, y, th) for t, y, th in session.execute(query)]
