"""Listener middleware: puts Deps on the context (listeners run after ack, in their own thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext

from bot.deps import Deps


def inject(deps: Deps) -> Callable[..., Any]:
    """Global middleware so every listener reads `context["deps"]` instead of a global."""

    def _inject(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["deps"] = deps
        return next()

    return _inject
