"""The one app.error boundary: a log line with an error id, and the person who acted is told, privately."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from bot.deps import Deps
from bot.domain import UserFacingError
from bot.slack.gateway import SlackError
from bot.slack.payloads import clicker, reply_target

log = logging.getLogger(__name__)
PEOPLE_ACT = {"block_actions", "view_submission", "shortcut", "message_action"}


def error_text(error_id: str) -> str:
    """What a person sees when we failed them: the id to quote to whoever runs the bot."""
    return f"Sorry, that did not work: something went wrong on our side (error id {error_id}). Nothing changed."


def boundary(deps: Deps) -> Callable[..., None]:
    """app.error: user-facing errors are told as they are; anything else is logged with an id that is told too.
    Events (a customer's message) are never answered: only people acting on our controls are."""

    def on_error(error: Exception, body: dict[str, Any]) -> None:
        kind = body.get("type") or (body.get("event") or {}).get("type") or body.get("command") or "request"
        if isinstance(error, UserFacingError):
            log.info("%s refused: %s", kind, error)
            text = str(error)
        else:
            error_id = uuid.uuid4().hex[:8]
            log.error("error %s while handling %s: %s", error_id, kind, error, exc_info=error)
            text = error_text(error_id)
        if kind in PEOPLE_ACT or "command" in body:
            user, _team = clicker(body)
            channel, _trigger = reply_target(body)
            try:  # the trigger may be spent by now: answer in the channel, else by DM
                if user:
                    deps.slack.tell(user, text, channel=channel)
            except SlackError as exc:
                log.warning("could not tell %s about %s: %s", user, kind, exc)

    return on_error
