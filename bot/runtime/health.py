"""What /healthz reports: liveness plus what an operator wants at a glance."""

from __future__ import annotations

from typing import Any

from bot.deps import Deps
from storage import queries


def health(deps: Deps) -> dict[str, Any]:
    """Database reachable, model state, outbox backlog by status."""
    with deps.transaction() as session:
        outbox = queries.outbox_counts(session=session)
    suggestions = deps.suggestions
    return {"ok": True, "database": "ok", "outbox": outbox, "suggestions": suggestions.state if suggestions else "off"}
