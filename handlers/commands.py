"""/feedback and the two shortcuts: ack, check staff, open a modal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.capture import inbound as intake
from bot.domain import UserFacingError
from bot.triage import blocks


def _open(
    context: BoltContext, trigger_id: str, build: Callable[[], dict[str, Any]], user: str, team: str | None
) -> None:
    deps = context["deps"]
    if not trigger_id:
        return  # nothing to open a modal with; Slack always sends one
    try:
        intake.require_staff(deps, user, team)
        view = build()
    except UserFacingError as exc:
        view = blocks.notice_modal("Feedback Loop", str(exc))
    deps.gateway.open_view(trigger_id, view)


def on_log_shortcut(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Message shortcut "Log as feedback"."""
    ack()
    user = body.get("user") or {}
    _open(
        context,
        body.get("trigger_id", ""),
        lambda: intake.log_modal(context["deps"], body),
        user.get("id", ""),
        user.get("team_id") or (body.get("team") or {}).get("id"),
    )


def on_feedback_command(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """/feedback and the global shortcut: feedback heard outside Slack."""
    ack()
    user = body.get("user") or {}
    user_id = body.get("user_id") or user.get("id", "")
    team = body.get("team_id") or user.get("team_id") or (body.get("team") or {}).get("id")
    _open(context, body.get("trigger_id", ""), lambda: intake.feedback_modal(body.get("channel_id")), user_id, team)
