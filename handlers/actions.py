"""Triage-card and App Home controls: ack, then hand the click to bot/clicks."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext

from bot.triage import inbound as clicks


def on_triage_action(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    """Every `triage.*` and `home.*` button or select."""
    ack()
    clicks.on_action(context["deps"], body, action)
