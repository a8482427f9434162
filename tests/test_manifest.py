"""manifest.yml validates against Slack's published schema and matches the registered listeners."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import jsonschema
import pytest
import yaml
from slack_bolt import BoltRequest

import handlers
from tests.conftest import SCHEMAS, payload

ROOT = Path(__file__).resolve().parents[1]


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slack_schema() -> None:
    schema_file = SCHEMAS / "slack-app-manifest.schema.1.0.0.json"
    if not schema_file.exists():
        pytest.skip(f"Slack's manifest schema not found at {schema_file} (../shared/schemas is absent)")
    jsonschema.validate(manifest(), json.loads(schema_file.read_text()))


def test_socket_mode_or_request_urls() -> None:
    """Slack refuses events/interactivity without a request URL unless Socket Mode is on."""
    settings = manifest()["settings"]
    if not settings.get("socket_mode_enabled"):
        assert settings["event_subscriptions"].get("request_url")
        assert settings["interactivity"].get("request_url")


def test_every_manifest_entry_has_a_listener_and_back() -> None:
    m = manifest()
    assert {c["command"] for c in m["features"]["slash_commands"]} == set(handlers.COMMANDS)
    assert {s["callback_id"] for s in m["features"]["shortcuts"]} == set(handlers.SHORTCUTS)
    events = {e.split(".")[0] for e in m["settings"]["event_subscriptions"]["bot_events"]}
    assert events == set(handlers.EVENTS)


def _signed(bot, body: str, content_type: str) -> BoltRequest:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(bot.secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return BoltRequest(
        body=body,
        headers={"content-type": [content_type], "x-slack-request-timestamp": [ts], "x-slack-signature": [sig]},
    )


def test_every_manifest_entry_reaches_a_listener(bot) -> None:
    """Bolt answers 404 when no listener matches: each declared event/command/shortcut must not."""
    m = manifest()
    env = payload("slack_event_app_home_opened.json")
    for name in m["settings"]["event_subscriptions"]["bot_events"]:
        event = {"type": name.split(".")[0], "channel": "C0INTERNAL", "user": "U0STAFF", "event_ts": "1.0"}
        resp = bot.bot.app.dispatch(_signed(bot, json.dumps(env | {"event": event}), "application/json"))
        assert resp.status == 200, name
    for shortcut in m["features"]["shortcuts"]:
        body = payload(
            "slack_shortcut_global.json" if shortcut["type"] == "global" else "slack_shortcut_message_action.json"
        ) | {"callback_id": shortcut["callback_id"]}
        form = urlencode({"payload": json.dumps(body)})
        assert bot.bot.app.dispatch(_signed(bot, form, "application/x-www-form-urlencoded")).status == 200
    for command in m["features"]["slash_commands"]:
        form = urlencode(payload("slack_command_feedback.json") | {"command": command["command"]})
        assert bot.bot.app.dispatch(_signed(bot, form, "application/x-www-form-urlencoded")).status == 200
    unknown = urlencode(payload("slack_command_feedback.json") | {"command": "/nope"})
    assert bot.bot.app.dispatch(_signed(bot, unknown, "application/x-www-form-urlencoded")).status == 404
    bot.settle()


def test_no_listener_is_missing_from_the_manifest(bot) -> None:
    """Registered listeners = manifest entries + our own modals (views need no manifest entry)."""
    m = manifest()
    declared = (
        len(m["settings"]["event_subscriptions"]["bot_events"])
        - 1  # message.* share one listener
        + len(m["features"]["shortcuts"])
        + len(m["features"]["slash_commands"])
        + len(handlers.VIEWS)
        + 4  # block_actions: one listener each for triage.*, home.*, loop.* and nps.* controls
    )
    assert len(bot.bot.app._listeners) == declared
