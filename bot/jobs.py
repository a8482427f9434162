"""THE registry of outbox kinds: every Kind's handler, in one place (the worker gets them through app.py)."""

from __future__ import annotations

from bot.capture import jobs as capture
from bot.domain import Kind
from bot.routing import jobs as routing
from bot.runtime import inbox
from bot.runtime.outbox import Handler, Preparer
from bot.triage import jobs as triage

OUTBOX: dict[Kind, Handler] = {
    Kind.EVENT: capture.replay,
    Kind.HYDRATE: capture.hydrate,
    Kind.RECEIPT: capture.receipt,
    Kind.CARD: triage.card,
    Kind.CARD_UPDATE: triage.card_update,
    Kind.AUDIT: triage.audit,
    Kind.LINEAR_CREATE: routing.create,
    Kind.LINEAR_LINK: routing.link,
    Kind.INTERACTION: inbox.replay,
    Kind.LEARN: triage.learn,
}
# Run on a whole claimed batch of one kind before its rows run (one model call for many cards).
PREPARE: dict[Kind, Preparer] = {Kind.CARD: triage.prepare, Kind.CARD_UPDATE: triage.prepare}
# A deferred Slack event is a message someone wrote: it is retried until Slack answers, never given up.
PERSISTENT: frozenset[Kind] = frozenset({Kind.EVENT})
