"""Builders of the payloads Slack sends, shared by the console's commands and the tests (one copy of each shape).

Shapes are trimmed from Slack's documented payloads (tests/payloads/slack_SOURCES.md names the sources).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

from bot.console.world import OUR_TEAM, USERS


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of `v0:<timestamp>:<body>`."""
    return "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def trigger_id() -> str:
    """A fresh trigger id in Slack's shape."""
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def event_envelope(event: dict[str, Any], *, shared: bool | None = None) -> dict[str, Any]:
    """An Events API envelope as Slack sends it to an app installed in our workspace."""
    return {
        "token": "unused", "team_id": event.get("user_team") or OUR_TEAM, "api_app_id": "A0FEEDBACK",
        "event": event, "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()), "authorizations": [{"enterprise_id": None, "team_id": OUR_TEAM,
        "user_id": "U0BOT", "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": bool(shared), "event_context": uuid.uuid4().hex,
    }  # fmt: skip


def interaction(kind: str, user: str, **fields: Any) -> dict[str, Any]:
    """The fields every interactivity payload from the console user `user` carries."""
    uid, team, _ = USERS[user]
    return {
        "type": kind,
        "token": "unused",
        "action_ts": str(time.time()),
        "trigger_id": trigger_id(),
        "team": {"id": OUR_TEAM, "domain": "ourco"},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": "A0FEEDBACK",
        "user": {"id": uid, "username": user, "name": user, "team_id": team},
        **fields,
    }


def element_state(element: dict[str, Any], value: str) -> dict[str, Any]:
    """What Slack puts in view.state.values for one input element set to `value` (a user may be a console name)."""
    kind = element.get("type")
    if kind == "static_select":
        for opt in element.get("options", []):
            if value in (opt["value"], opt["text"]["text"]):
                return {"type": kind, "selected_option": opt}
        raise ValueError(
            f"{value!r} is not an option; choose from {', '.join(o['value'] for o in element.get('options', []))}"
        )
    if kind == "users_select":
        return {"type": kind, "selected_user": USERS[value][0] if value in USERS else value}
    return {"type": kind, "value": value}


def view_state(view: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """state.values for submitting `view` with `given` field values (unnamed fields keep their initial value)."""
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        el = block["element"]
        value = given.get(block["block_id"])
        if value is None:
            value = el.get("initial_value") or (el.get("initial_option") or {}).get("value")
        state = element_state(el, value) if value else {"type": el["type"], "value": None}
        values[block["block_id"]] = {el["action_id"]: state}
    return {"values": values}


def find_element(blocks: list[dict[str, Any]], action_id: str, fid: int) -> tuple[dict, dict] | None:
    """The (block, element) for action_id whose button/block carries item `fid`'s reference."""
    for block in blocks:
        if block.get("type") != "actions":
            continue
        ref = str(block.get("block_id", "")).partition(".")[2]
        if not ref.startswith(f"1.{fid}."):
            continue
        for el in block.get("elements", []):
            if el.get("action_id") == action_id:
                return block, el
    return None


def action(el: dict[str, Any], block: dict[str, Any], value: str | None = None) -> dict[str, Any]:
    """One entry of block_actions' `actions`: a button press, or a select/user pick of `value`."""
    out: dict[str, Any] = {
        "action_id": el["action_id"],
        "block_id": block["block_id"],
        "type": el["type"],
        "action_ts": str(time.time()),
    }
    if el["type"] == "button":
        out.update(value=el["value"], text=el["text"])
    elif el["type"] == "users_select":
        out["selected_user"] = USERS[value][0] if value in USERS else value
    else:
        out["selected_option"] = element_state(el, value or "")["selected_option"]
    return out


def card_click(message: dict[str, Any], channel: tuple[str, str]) -> dict[str, Any]:
    """The container, channel and message fields of a click on a message (a triage card)."""
    cid, name = channel
    return {
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": cid, "is_ephemeral": False},
        "channel": {"id": cid, "name": name},
        "message": message,
        "response_url": f"https://hooks.slack.com/actions/{OUR_TEAM}/1/x",
    }


def linear_issue_webhook(issue: dict[str, Any], previous_state_id: str | None) -> dict[str, Any]:
    """Linear's Issue `update` data-change webhook (tests/payloads/linear_webhook_issue_update.json's shape) for an
    issue as the fake store shows it, after its workflow state moved."""
    state, team = issue["state"], issue["team"]
    now_ms = int(time.time() * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000)) + f".{now_ms % 1000:03d}Z"
    data = {
        "id": issue["id"], "createdAt": issue["createdAt"], "updatedAt": stamp, "number": issue["number"],
        "title": issue["title"], "priority": 0, "priorityLabel": "No priority", "teamId": team["id"],
        "stateId": state["id"], "identifier": issue["identifier"], "url": issue["url"],
        "state": {"id": state["id"], "color": state["color"], "name": state["name"], "type": state["type"]},
        "team": {"id": team["id"], "key": team["key"], "name": team["name"]}, "labels": [],
    }  # fmt: skip
    return {
        "action": "update",
        "actor": {"id": str(uuid.uuid4()), "name": "Alice Staff", "type": "user"},
        "createdAt": stamp,
        "data": data,
        "updatedFrom": {"updatedAt": issue["updatedAt"], "stateId": previous_state_id},
        "url": issue["url"],
        "type": "Issue",
        "organizationId": str(uuid.uuid4()),
        "webhookTimestamp": now_ms,
        "webhookId": str(uuid.uuid4()),
    }


def linear_signature(secret: str, body: bytes) -> str:
    """`Linear-Signature`: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
