"""Linear webhooks: verify `Linear-Signature` and `webhookTimestamp`, and read the parts we act on."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WebhookEvent:
    """The parts of a Linear webhook delivery that bot/loop/ acts on."""

    action: str  # create / update / remove
    type: str  # Issue, Comment, IssueLabel, ...
    issue_id: str | None
    identifier: str | None
    state_type: str | None
    state_name: str | None
    url: str | None
    webhook_timestamp: int  # UNIX ms, when Linear sent it
    state_changed: bool = False  # updatedFrom carries stateId: the workflow state moved
    title: str | None = None
    updated_at: str | None = None  # the issue's updatedAt (ISO 8601): orders deliveries about one issue
    actor_type: str | None = None


def verify_webhook(
    body: bytes,
    signature: str | None,
    secret: str,
    *,
    timestamp_ms: int | None = None,
    now_ms: int | None = None,
    tolerance_s: int = 60,
) -> bool:
    """Check ``Linear-Signature`` (hex HMAC-SHA256 of the raw body) and that ``webhookTimestamp`` is fresh."""
    if not signature or not secret:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        return False
    if timestamp_ms is None:
        timestamp_ms = _body_timestamp(body)
    if timestamp_ms is None:
        return False
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return abs(now - timestamp_ms) <= tolerance_s * 1000


def _body_timestamp(body: bytes) -> int | None:
    """``webhookTimestamp`` (UNIX ms) from a signed body, so a replayed delivery can be refused."""
    try:
        value = json.loads(body).get("webhookTimestamp")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_webhook(body: bytes) -> WebhookEvent:
    """Parse a (verified) Linear webhook body; ValueError when it is not a Linear data-change event."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"Linear webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("Linear webhook body is not a JSON object")
    action, kind, data = payload.get("action"), payload.get("type"), payload.get("data")
    stamp = payload.get("webhookTimestamp")
    if not isinstance(action, str) or not isinstance(kind, str) or not isinstance(data, dict):
        raise ValueError("Linear webhook body lacks action/type/data")
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        raise ValueError("Linear webhook body lacks an integer webhookTimestamp")
    is_issue = kind == "Issue"
    state = _dict(data.get("state")) if is_issue else {}
    updated_from = payload.get("updatedFrom")
    issue_id = data.get("id") if is_issue else data.get("issueId") or _dict(data.get("issue")).get("id")
    return WebhookEvent(
        action=action,
        type=kind,
        issue_id=_str_or_none(issue_id),
        identifier=_str_or_none(data.get("identifier")) if is_issue else None,
        state_type=_str_or_none(state.get("type")),
        state_name=_str_or_none(state.get("name")),
        url=_str_or_none(payload.get("url") or data.get("url")),
        webhook_timestamp=stamp,
        state_changed=is_issue and isinstance(updated_from, dict) and "stateId" in updated_from,
        title=_str_or_none(data.get("title")) if is_issue else None,
        updated_at=_str_or_none(data.get("updatedAt")) if is_issue else None,
        actor_type=_str_or_none(_dict(payload.get("actor")).get("type")),
    )


def _dict(value: object) -> dict[str, Any]:
    """A nested webhook object, or {} when absent or of the wrong kind."""
    return value if isinstance(value, dict) else {}


def _str_or_none(value: object) -> str | None:
    """Webhook fields are loosely typed; keep only real strings."""
    return value if isinstance(value, str) and value else None
