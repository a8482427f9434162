"""/feedback and the two shortcuts: ack, check staff, open a modal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.accounts.service import require_staff
from bot.capture import inbound as capture
from bot.domain import UserFacingError
from bot.slack.kit import notice_modal
from bot.slack.payloads import clicker


def _open(context: BoltContext, body: dict[str, Any], build: Callable[[], dict[str, Any]]) -> None:
    deps = context["deps"]
    trigger_id = body.get("trigger_id", "")
    if not trigger_id:
        return  # nothing to open a modal with; Slack always sends one
    user, team = clicker(body)
    try:
        require_staff(deps.slack, deps.settings, user, team)
        view = build()
    except UserFacingError as exc:
        view = notice_modal("Feedback Loop", str(exc))
    deps.slack.open_view(trigger_id, view)


def on_log_shortcut(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Message shortcut "Log as feedback"."""
    ack()
    _open(context, body, lambda: capture.log_modal(context["deps"], body))


def on_feedback_command(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """/feedback and the global shortcut: feedback heard outside Slack."""
    ack()
    _open(context, body, lambda: capture.feedback_modal(context["deps"], body.get("channel_id")))
