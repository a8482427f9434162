"""Listener middleware: puts Deps on the context (listeners run after ack, in their own thread)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext
from slack_bolt.authorization import AuthorizeResult

from bot.deps import Deps


def inject(deps: Deps) -> Callable[..., Any]:
    """Global middleware so every listener reads `context["deps"]` instead of a global."""

    def _inject(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["deps"] = deps
        return next()

    return _inject


def authorize(deps: Deps, token: str | None) -> Callable[..., AuthorizeResult]:
    """Bolt's authorization from what start-up learned (auth.test is warmed in the background), so the first
    requests after a start never call Slack before their ack, as Bolt's own single-team check would."""

    def _authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        known = deps.slack.auth_cached() or {}
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=token,
            bot_user_id=known.get("user_id"),
            bot_id=known.get("bot_id"),
            user_id=user_id,
        )

    return _authorize


class QuietTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that it is unused when a client is given; ours is on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()
