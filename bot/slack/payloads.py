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
    view = data.get("view") or {}
    if data["type"].startswith("view_") and not all(isinstance(view.get(k), str) for k in ("id", "callback_id")):
        return "payload.view needs an id and a callback_id"
    if "state" in view and not isinstance((view.get("state") or {}).get("values", {}), dict):
        return "payload.view.state.values is not an object"
    return None
