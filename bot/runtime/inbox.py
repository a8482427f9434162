"""Interactions stored before their ack: handled inline at once, replayed by the worker only after a crash."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.domain import Kind
from bot.runtime.outbox import Job, Permanent
from storage import queries
from storage.db import urgent

log = logging.getLogger(__name__)
HOLD = timedelta(seconds=30)  # handling a click takes a second or two; after a crash the worker replays it


def key_of(body: Mapping[str, Any]) -> str:
    """One key per interaction: a click by its user and action_ts, a submission by its view's id and hash."""
    user = (body.get("user") or {}).get("id") or body.get("user_id") or ""
    if body.get("type") == "block_actions":
        action = (body.get("actions") or [{}])[0]
        return f"interaction:{user}:{action.get('action_ts') or body.get('trigger_id')}:{_digest(action)}"
    if body.get("type") == "view_submission":
        view = body.get("view") or {}
        return f"interaction:{user}:{view.get('id')}:{view.get('hash')}:{_digest(view.get('state'))}"
    return f"interaction:{user}:{_digest(body)}"


def _digest(value: object) -> str:
    """A short fingerprint: the same click or submission delivered twice has the same one."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


@contextmanager
def held(deps: Deps, body: dict[str, Any], *, replay: bool = False) -> Iterator[bool]:
    """Write first (call ack() inside), then handle; yields False for a double submit, which is not handled again.
    A replay by the worker is already stored, so nothing is written."""
    if replay:
        yield True
        return
    key = key_of(body)
    with urgent(), deps.transaction() as session:
        fresh = queries.hold(session=session, key=key, kind=Kind.INTERACTION, payload={"body": body},
                             until=deps.now() + HOLD)  # fmt: skip
    error: str | None = None
    try:
        yield fresh
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        if fresh:
            with deps.transaction() as session:
                queries.settle_held(session=session, key=key, error=error)


def replay(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Outbox handler for an interaction whose process died after the ack: handled again through the same
    listener (app.py gives Deps the way in); a stale card or an expired trigger is refused there as usual."""
    if deps.redeliver is None:
        raise Permanent("this process cannot replay interactions (no listeners)")
    deps.redeliver(job.payload["body"])
    return {"replayed": job.payload["body"].get("type")}
