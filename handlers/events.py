"""Events API listeners. Bolt acks events before these run (process_before_response=False)."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.capture import inbound as intake
from bot.triage import inbound as clicks


def on_capture_event(body: dict[str, Any], context: BoltContext) -> None:
    """message (every subtype), reaction_added, and the channel events that refresh the watch cache."""
    intake.handle_event(context["deps"], body)


def on_app_home_opened(event: dict[str, Any], context: BoltContext) -> None:
    """Publishes the Home tab for the user who opened it."""
    if event.get("tab", "home") != "home" or not isinstance(event.get("user"), str):
        return
    deps = context["deps"]
    deps.gateway.publish_home(event["user"], clicks.home_view(deps, event["user"]))
