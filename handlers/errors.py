"""The one app.error boundary: a log line with an error id; nothing escapes to crash the process."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bot.domain import UserFacingError

log = logging.getLogger(__name__)


def on_error(error: Exception, body: dict[str, Any]) -> None:
    """User-facing errors are logged plainly; anything else gets an id to find it in the logs."""
    kind = body.get("type") or (body.get("event") or {}).get("type") or body.get("command") or "request"
    if isinstance(error, UserFacingError):
        log.info("%s refused: %s", kind, error)
        return
    error_id = uuid.uuid4().hex[:8]
    log.error("error %s while handling %s: %s", error_id, kind, error, exc_info=error)
