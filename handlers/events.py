"""Events API listeners. Bolt acks events before these run (process_before_response=False)."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot import clicks, intake


def on_message(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
    """Every message subtype: capture, edit, delete or ignore."""
    intake.on_message(context["deps"], event, body)


def on_reaction_added(event: dict[str, Any], context: BoltContext) -> None:
    """:feedback: and type emoji."""
    intake.on_reaction(context["deps"], event)


def on_app_home_opened(event: dict[str, Any], context: BoltContext) -> None:
    """Publishes the Home tab for the user who opened it."""
    if event.get("tab", "home") != "home" or not isinstance(event.get("user"), str):
        return
    deps = context["deps"]
    deps.gateway.publish_home(event["user"], clicks.home_view(deps, event["user"]))


def on_channel_change(event: dict[str, Any], context: BoltContext) -> None:
    """The bot joined, or a channel became (un)shared: refresh the watch cache."""
    deps = context["deps"]
    channel = event.get("channel")
    if isinstance(channel, dict):
        channel = channel.get("id")
    if event.get("type") == "member_joined_channel" and event.get("user") != deps.gateway.bot_user_id:
        return
    if isinstance(channel, str):
        intake.on_channel_change(deps, channel)
