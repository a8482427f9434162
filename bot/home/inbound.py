"""What App Home events and filter clicks mean: re-publish the Home tab for the person."""

from __future__ import annotations

import json
from typing import Any

from bot.accounts.service import require_staff
from bot.deps import Deps
from bot.domain import UserFacingError
from bot.home.service import home_view
from bot.slack.payloads import choice, clicker, from_home, reply_target


def _filters(body: dict[str, Any]) -> dict[str, str]:
    """The filters the Home tab was rendered with (kept in its private_metadata)."""
    view = body.get("view") or {}
    try:
        data = json.loads(view.get("private_metadata") or "{}") if view.get("type") == "home" else {}
    except ValueError:
        data = {}
    return (
        {k: str(v) for k, v in data.items() if k in {"type", "theme", "sort", "account"}}
        if isinstance(data, dict)
        else {}
    )


def on_opened(deps: Deps, event: dict[str, Any]) -> None:
    """app_home_opened: publishes the Home tab for the user who opened it."""
    if event.get("tab", "home") != "home" or not isinstance(event.get("user"), str):
        return
    deps.slack.publish_home(event["user"], home_view(deps, event["user"]))


def on_filter(deps: Deps, body: dict[str, Any], action: dict[str, Any]) -> None:
    """A `home.filter.*` select: staff only; re-renders the lists with the new filter."""
    user, team = clicker(body)
    filters = _filters(body)
    try:
        require_staff(deps.slack, deps.settings, user, team)
        filters[str(action.get("action_id", "")).rsplit(".", 1)[-1]] = choice(action) or ""
    except UserFacingError as exc:
        channel, trigger = reply_target(body)
        deps.slack.tell(user, str(exc), channel=channel, trigger_id=trigger)
    deps.slack.publish_home(user, home_view(deps, user, filters))


def after_click(deps: Deps, body: dict[str, Any]) -> None:
    """A card control pressed in App Home: the tab shows the item's new state."""
    if from_home(body):
        user, _team = clicker(body)
        deps.slack.publish_home(user, home_view(deps, user, _filters(body)))
