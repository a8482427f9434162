"""Events API listeners. Bolt acks events before these run (process_before_response=False)."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.capture import inbound as capture
from bot.home import inbound as home


def on_capture_event(body: dict[str, Any], context: BoltContext) -> None:
    """message (every subtype), reaction_added, channel events: the HTTP edge and the Socket Mode handler store
    these before acking (handlers/http.py); an envelope dispatched straight to Bolt is stored here."""
    capture.accept_event(context["deps"], body)


def on_app_home_opened(event: dict[str, Any], context: BoltContext) -> None:
    """Publishes the Home tab for the user who opened it."""
    home.on_opened(context["deps"], event)
