"""Triage-card and App Home controls: ack, then hand the click to the domain that owns it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.deps import Deps
from bot.home import inbound as home
from bot.loop import inbound as loop
from bot.nps import inbound as nps
from bot.runtime.inbox import held
from bot.triage import inbound as triage


def _held_click(ack: Ack, body: dict[str, Any], context: BoltContext, handle: Callable[[Deps], None]) -> None:
    """Stored before the ack, so a crash while handling the click is replayed, not lost; App Home then shows the
    new state when the click came from there."""
    deps = context["deps"]
    with held(deps, body, replay=bool(context.get("replay"))) as fresh:
        ack()
        if fresh:
            handle(deps)
            home.after_click(deps, body)


def on_triage_action(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    """Every `triage.*` button or select, on a card or in App Home."""
    _held_click(ack, body, context, lambda deps: triage.on_action(deps, body, action))


def on_home_action(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    """`home.filter.*` selects in App Home."""
    ack()
    home.on_filter(context["deps"], body, action)


def on_loop_action(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    """Send / Edit / Skip / I told them on an approval DM or App Home, Retry on a failed delivery."""
    _held_click(ack, body, context, lambda deps: loop.on_action(deps, body, action))


def on_nps_action(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    """A survey score or "Add your reason" (the respondent), or staff's follow-up, task and check-in buttons."""
    _held_click(ack, body, context, lambda deps: nps.on_action(deps, body, action))
