"""POST /linear/webhook: verify, then store before answering 2xx; refusals are 4xx with a clear log line."""

from __future__ import annotations

import logging
from typing import Any

from bot.deps import Deps
from bot.linear.webhook import parse_webhook, verify_webhook
from bot.loop import inbound as loop

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20  # Linear's issue payloads are a few KB; a megabyte is someone else's request


def linear_webhook(deps: Deps, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(HTTP status, JSON body) for one Linear delivery."""
    secret = deps.settings.linear_webhook_secret
    if secret is None:
        log.warning("Linear webhook refused: LINEAR_WEBHOOK_SECRET is not set")
        return "404 Not Found", {"ok": False, "error": "linear_webhook_not_configured"}
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        log.warning("Linear webhook refused: %d bytes is too large", length)
        return "413 Payload Too Large", {"ok": False, "error": "too_large"}
    body = environ["wsgi.input"].read(length) if length else b""
    signature = environ.get("HTTP_LINEAR_SIGNATURE")
    delivery = environ.get("HTTP_LINEAR_DELIVERY") or None
    if not verify_webhook(body, signature, secret.get_secret_value()):
        why = "missing signature" if not signature else "bad signature or webhookTimestamp more than 60 s off"
        log.warning("Linear webhook refused (delivery %s): %s", delivery, why)
        return "401 Unauthorized", {"ok": False, "error": "invalid_signature"}
    try:
        event = parse_webhook(body)
    except ValueError as exc:
        log.warning("Linear webhook refused (delivery %s): %s", delivery, exc)
        return "400 Bad Request", {"ok": False, "error": "malformed_payload", "detail": str(exc)}
    outcome = loop.accept_webhook(deps, event, delivery, body)
    log.info("Linear webhook %s (%s %s %s): %s", delivery, event.type, event.action, event.identifier, outcome)
    return "200 OK", {"ok": True, "outcome": outcome}
