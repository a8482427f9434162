"""What /healthz reports: liveness plus what an operator wants at a glance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from storage import queries


def health(deps: Deps) -> dict[str, Any]:
    """Database reachable, model state, outbox backlog by status."""
    with deps.transaction() as session:
        outbox = queries.outbox_counts(session=session)
    suggestions = deps.suggestions
    return {"ok": True, "database": "ok", "outbox": outbox, "suggestions": suggestions.state if suggestions else "off"}


def readiness(deps: Deps, socket_connected: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Ready to take traffic: database reachable, auth.test known, and in Socket Mode a live connection."""
    checks = {"database": True, "slack_auth": deps.slack.auth_cached() is not None}
    try:
        with deps.transaction() as session:
            queries.outbox_counts(session=session)
    except Exception:  # any driver error means "not ready", which is the answer, not a crash
        checks["database"] = False
    if socket_connected is not None:
        checks["socket"] = socket_connected()
    return {"ready": all(checks.values()), **checks}
