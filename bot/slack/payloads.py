"""Is a signed request body shaped like something Slack sends? Bolt crashes (500) on shapes it never expects."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

DICT_FIELDS = ("user", "view", "container", "message")
OPTIONAL_DICT_FIELDS = ("team", "channel", "enterprise")
EVENT_STR_FIELDS = (
    "user",
    "ts",
    "text",
    "subtype",
    "thread_ts",
    "event_ts",
    "team",
    "user_team",
    "reaction",
    "deleted_ts",
    "tab",
)
EVENT_DICT_FIELDS = ("item", "message", "previous_message", "view")
NEEDS = {  # what Bolt reads unguarded for each interactivity type
    "block_actions": ("user",),
    "view_submission": ("user", "view"),
    "view_closed": ("user", "view"),
    "shortcut": ("user",),
    "message_action": ("user", "channel", "message"),
}


def problem(body: bytes, content_type: str) -> str | None:
    """None for a well-formed Events API / interactivity / slash command body, else the reason to answer 400."""
    try:
        text = body.decode("utf-8")
        if "json" in content_type:
            return _event_problem(json.loads(text))
        form = parse_qs(text, strict_parsing=bool(text))
        if "payload" in form:
            return _interaction_problem(json.loads(form["payload"][0]))
        if not form:
            return "empty form"
        return None if "command" in form or "ssl_check" in form else "form without command or payload"
    except (UnicodeDecodeError, ValueError):
        return "not UTF-8 JSON or form data"


def _event_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "JSON body is not an object"
    if data.get("type") != "event_callback":
        return None
    event = data.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "event_callback without an event object"
    for key in EVENT_STR_FIELDS:
        if event.get(key) is not None and not isinstance(event[key], str):
            return f"event.{key} is not a string"
    for key in EVENT_DICT_FIELDS:
        if event.get(key) is not None and not isinstance(event[key], dict):
            return f"event.{key} is not an object"
    if event.get("channel") is not None and not isinstance(event["channel"], (str, dict)):
        return "event.channel is neither an id nor an object"
    return None


def _interaction_problem(data: Any) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return "interactivity payload without a type"
    for key in DICT_FIELDS:
        if key in data and not isinstance(data[key], dict):
            return f"payload.{key} is not an object"
    for key in OPTIONAL_DICT_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"payload.{key} is not an object"
    actions = data.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        return "payload.actions is not a list of objects"
    for key in NEEDS.get(data["type"], ()):
        if not isinstance(data.get(key), dict):
            return f"{data['type']} without payload.{key}"
    return _view_problem(data["type"], data.get("view") or {})


def _view_problem(kind: str, view: dict[str, Any]) -> str | None:
    """Bolt reads a view's id, type and callback_id unguarded; its state values must be an object."""
    if kind.startswith("view_") and not all(isinstance(view.get(k), str) for k in ("id", "type", "callback_id")):
        return "payload.view needs an id, a type and a callback_id"
    if "state" in view and not isinstance((view.get("state") or {}).get("values", {}), dict):
        return "payload.view.state.values is not an object"
    return None


def read_state(view: dict[str, Any]) -> dict[str, str | None]:
    """Flattens view.state.values into field -> value, whatever the element type."""
    out: dict[str, str | None] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for el in actions.values():
            value = el.get("value") or el.get("selected_user") or (el.get("selected_option") or {}).get("value")
            out[block_id] = value.strip() if isinstance(value, str) and value.strip() else None
    return out


def clicker(body: dict[str, Any]) -> tuple[str, str | None]:
    """Who clicked or submitted, and their team (Slack Connect users carry their own)."""
    user = body.get("user") or {}
    return str(user.get("id") or body.get("user_id") or ""), (
        user.get("team_id") or body.get("team_id") or (body.get("team") or {}).get("id")
    )


def choice(action: dict[str, Any]) -> str | None:
    """The value a select or user picker carries."""
    return action.get("selected_user") or (action.get("selected_option") or {}).get("value")


def reply_target(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """Where to answer the person privately: the channel of the click (ephemeral), else a trigger for a modal."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    if isinstance(body.get("channel_id"), str):  # slash commands are flat form fields
        channel = body["channel_id"]
    return channel, body.get("trigger_id")


def from_home(body: dict[str, Any]) -> bool:
    """Was this click made in App Home (so the Home tab must be re-published)?"""
    return (body.get("view") or {}).get("type") == "home" or (body.get("container") or {}).get("type") == "view"
