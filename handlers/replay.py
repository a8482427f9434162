"""Replays a stored interaction through the listener that handles it (after a crash between ack and done)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext

from bot.deps import Deps
from bot.slack.ids import Callback, TriageModal
from handlers import actions, views


def interaction(deps: Deps, body: dict[str, Any]) -> None:
    """Synchronously, with a no-op ack (Slack was answered long ago) and `replay` set so nothing is stored again."""
    context = BoltContext({"deps": deps, "replay": True})
    if body.get("type") == "block_actions":
        for action in body.get("actions") or []:
            if str(action.get("action_id", "")).startswith("triage."):
                actions.on_triage_action(Ack(), body, action, context)
        return
    view = body.get("view") or {}
    callback = view.get("callback_id")
    if callback == Callback.LOG_MODAL:
        views.on_log_submitted(Ack(), body, view, context)
    elif callback == Callback.FEEDBACK_MODAL:
        views.on_feedback_submitted(Ack(), body, view, context)
    elif callback in {m.value for m in TriageModal}:
        views.on_triage_modal(Ack(), body, view, context)
