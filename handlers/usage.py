"""POST /events/usage: product usage events (milestones, tickets, feature uses), HMAC-signed with
FEEDBACK_EVENTS_SECRET, stored before the 2xx."""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from bot.deps import Deps
from bot.domain import UserFacingError
from bot.nps import inbound as nps
from bot.nps.service import usage_signature as sign

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20
SKEW_SECONDS = 300


def _verified(secret: str, environ: dict[str, Any], body: bytes) -> bool:
    timestamp = environ.get("HTTP_X_FEEDBACK_TIMESTAMP", "")
    signature = environ.get("HTTP_X_FEEDBACK_SIGNATURE", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SKEW_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def usage_events(deps: Deps, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(HTTP status, JSON body) for one delivery of usage events."""
    secret = deps.settings.feedback_events_secret
    if secret is None:
        return "404 Not Found", {"ok": False, "error": "usage_events_not_configured"}
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        return "413 Payload Too Large", {"ok": False, "error": "too_large"}
    body = environ["wsgi.input"].read(length) if length else b""
    if not _verified(secret.get_secret_value(), environ, body):
        log.warning("usage events refused: bad signature or timestamp more than %d s off", SKEW_SECONDS)
        return "401 Unauthorized", {"ok": False, "error": "invalid_signature"}
    try:
        result = nps.accept_usage(deps, json.loads(body))
    except (ValueError, UserFacingError) as exc:  # json.JSONDecodeError is a ValueError
        return "400 Bad Request", {"ok": False, "error": "malformed_payload", "detail": str(exc)}
    answer = {"ok": not result.errors, "stored": result.stored, "duplicates": result.duplicates,
              "check_ins": result.check_ins, "errors": result.errors}  # fmt: skip
    return ("200 OK" if not result.errors else "422 Unprocessable Entity"), answer
