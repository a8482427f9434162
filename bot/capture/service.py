"""Capture: turn a Slack message, reaction, shortcut or command into exactly one Feedback row."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.capture import joins
from bot.capture.noise import Noise, noise
from bot.deps import Deps
from bot.domain import CaptureMethod, CaptureRequest, Kind, Status, UserFacingError
from bot.settings import Settings
from storage import queries, surveys
from storage.db import utcnow
from storage.models import Feedback

log = logging.getLogger(__name__)

ALLOWED_SUBTYPES = {None, "thread_broadcast", "file_share", "me_message"}


@dataclass(frozen=True)
class CaptureResult:
    """The row and whether this call created it (False: a redelivery or a second path)."""

    feedback: Feedback
    created: bool


def _safe_char(ch: str) -> str:
    """Drops control characters and replaces lone surrogates, which no database or JSON encoder accepts."""
    kind = unicodedata.category(ch)
    if kind == "Cs":
        return "\ufffd"
    return ch if ch in "\n\t" or kind != "Cc" else ""


def clean_text(raw: object, limit: int) -> tuple[str, bool]:
    """Verbatim text made safe to store: str, no NULs or stray control chars, capped at `limit`."""
    if raw is None:
        return "", False
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    kept = (_safe_char(ch) for ch in str(raw))
    text = "".join(ch for ch in kept if ch).strip()
    if len(text) > limit:
        return text[:limit], True
    return text, False


def author_team(event: dict[str, Any]) -> str | None:
    """The author's organisation as the event states it (Slack Connect events carry user_team/source_team)."""
    team = event.get("user_team") or event.get("source_team") or event.get("team")
    return team if isinstance(team, str) and team else None


def _customer_words(event: dict[str, Any], bot_user_id: str) -> bool:
    """A person's own new message: no bot, no hidden or system subtype, and not ourselves."""
    if event.get("subtype") not in ALLOWED_SUBTYPES or event.get("bot_id") or event.get("hidden"):
        return False
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    return isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str) and user != bot_user_id


def auto_capture_request(deps: Deps, event: dict[str, Any], shared_hint: bool | None) -> CaptureRequest | None:
    """The one auto-capture decision: a customer's (Slack Connect user's or guest's) non-empty message in a
    watched channel qualifies; staff messages are captured only when a staff member tags them. Its Slack
    lookups run outside any transaction."""
    slack, settings = deps.slack, deps.settings
    if not _customer_words(event, slack.bot_user_id):
        return None
    channel, user = str(event["channel"]), str(event["user"])
    if not channel_watched(deps, channel, hint=shared_hint):
        return None
    team = author_team(event) or slack.user(user).get("team_id")
    info = slack.user(user) if team == slack.team_id else {}
    guest = bool(info.get("is_restricted") or info.get("is_ultra_restricted"))
    if not team or (team == slack.team_id and not guest):
        return None
    if not clean_text(event.get("text"), settings.feedback_max_text)[0]:
        log.info("empty message %s in %s not captured", event.get("ts"), channel)
        return None
    verdict = noise(str(event.get("text") or ""))
    if verdict in {Noise.EMOJI, Noise.OUT_OF_OFFICE}:
        log.info("message %s in %s is %s: not captured", event.get("ts"), channel, verdict)
        return None
    profile = event.get("user_profile") or {}
    return CaptureRequest(
        method=CaptureMethod.AUTO, text=event.get("text") or "", team_id=slack.team_id, channel_id=channel,
        message_ts=str(event["ts"]), thread_ts=event.get("thread_ts"), author_user_id=user, author_team_id=team,
        author_name=profile.get("real_name") or profile.get("display_name") or profile.get("name"), is_external=True,
    )  # fmt: skip


def channel_watched(deps: Deps, channel_id: str, *, hint: bool | None = None) -> bool:
    """Configured channels always; otherwise shared channels, cached from the envelope or conversations.info."""
    if channel_id in deps.settings.feedback_watch_channels:
        return True
    return channel_shared(deps, channel_id, hint=hint)


def channel_shared(deps: Deps, channel_id: str, *, hint: bool | None = None) -> bool:
    """The one channel-cache freshness rule: a cached flag younger than CHANNEL_CACHE_SECONDS, else the
    envelope's hint, else conversations.info; each read and write is its own short transaction, and the Slack
    call happens between them, never inside one."""
    with deps.transaction() as session:
        cached = queries.get_channel(session=session, channel_id=channel_id)
        name = cached.name if cached else None
        if cached and cached.checked_at > utcnow() - timedelta(seconds=deps.settings.channel_cache_seconds):
            return cached.is_ext_shared
    if hint is not None:
        with deps.transaction() as session:
            queries.upsert_channel(session=session, channel_id=channel_id, name=name, is_ext_shared=hint)
        return hint
    return refresh_channel(deps, channel_id)


def refresh_channel(deps: Deps, channel_id: str) -> bool:
    """Re-reads conversations.info (on join, share, unshare, or a stale cache), then stores it."""
    info = deps.slack.channel_info(channel_id)
    shared = bool(info.get("is_ext_shared") or info.get("is_shared"))
    with deps.transaction() as session:
        queries.upsert_channel(session=session, channel_id=channel_id, name=info.get("name"), is_ext_shared=shared)
    return shared


def capture(*, session: Session, settings: Settings, req: CaptureRequest, followups: bool = True) -> CaptureResult:
    """One transaction: the row (unique key), its audit line and its outbox rows (none for an import); never a
    side effect."""
    text, truncated = clean_text(req.text, settings.feedback_max_text)
    hydrate = req.text is None
    if not text and not hydrate:
        raise UserFacingError("The feedback text is empty: there is nothing to capture.")
    key = req.key()
    existing = queries.feedback_by_key(session=session, dedupe_key=key)
    if existing is not None:
        return CaptureResult(_merge(session, settings, existing, req), created=False)
    values = {
        "dedupe_key": key, "team_id": req.team_id, "channel_id": req.channel_id, "message_ts": req.message_ts,
        "thread_ts": req.thread_ts, "permalink": req.permalink, "author_user_id": req.author_user_id,
        "author_team_id": req.author_team_id, "author_name": req.author_name, "customer": req.customer,
        "is_external": req.is_external, "source": req.source, "capture_method": req.method.value, "text": text,
        "text_truncated": truncated, "context": req.context, "captured_by": req.captured_by,
        "type_hint": req.type_hint, "tags": [req.method.value], "needs_hydration": hydrate,
    }  # fmt: skip
    fb = queries.insert_feedback(session=session, values=values)
    if fb is None:
        existing = queries.feedback_by_key(session=session, dedupe_key=key)
        if existing is None:  # pragma: no cover - the unique key guarantees a row
            raise RuntimeError(f"dedupe key {key} vanished")
        return CaptureResult(_merge(session, settings, existing, req), created=False)
    queries.add_event(
        session=session,
        feedback=fb,
        kind="captured",
        actor=req.captured_by or req.author_user_id,
        detail={"method": req.method.value, "truncated": truncated},
    )
    if followups:
        _enqueue_followups(session, settings, fb)
    log.info("captured feedback %s via %s (%d chars)", fb.id, req.method.value, len(text))
    return CaptureResult(fb, created=True)


def _merge(session: Session, settings: Settings, fb: Feedback, req: CaptureRequest) -> Feedback:
    """A later capture of the same message adds its tag, context and hint instead of a new row."""
    actor = req.captured_by or req.author_user_id
    queries.lock_feedback(session=session, feedback=fb)
    if queries.has_event(session=session, feedback_id=fb.id, kind=f"tagged:{req.method.value}", actor=actor):
        return fb
    if req.method.value not in fb.tags:
        fb.tags = [*fb.tags, req.method.value]
    if req.context and req.context not in (fb.context or ""):
        fb.context = f"{fb.context}\n{req.context}" if fb.context else req.context
    fb.type_hint = fb.type_hint or req.type_hint
    fb.captured_by = fb.captured_by or req.captured_by
    if req.method is not CaptureMethod.AUTO:
        queries.add_event(
            session=session,
            feedback=fb,
            kind=f"tagged:{req.method.value}",
            actor=actor,
            detail={"context": req.context, "type_hint": req.type_hint},
        )
        enqueue_card_update(session, fb.id, f"tag:{req.method.value}:{actor}")
        if fb.status == Status.MAYBE:  # a human capture is never filtered: the chatter verdict was wrong
            promote(session, settings, fb)
    return fb


def _enqueue_followups(session: Session, settings: Settings, fb: Feedback) -> None:
    """Receipt to the customer and the path to a triage card, keyed so redelivery adds nothing."""
    if fb.needs_hydration:
        queries.enqueue(session=session, key=f"hydrate:{fb.id}", kind=Kind.HYDRATE, payload={"feedback_id": fb.id})
    else:
        enqueue_card(session, fb.id)
    if fb.capture_method != CaptureMethod.AUTO or noise(fb.text) is None:  # receipt first, unless an ack;
        enqueue_receipt(session, settings, fb)  # then the model decides the card (an ack's receipt waits for it)


def enqueue_receipt(session: Session, settings: Settings, fb: Feedback) -> None:
    """The customer's "we heard you", once per item, for items that came from a Slack message."""
    if fb.channel_id and fb.message_ts and settings.feedback_receipt != "off":
        queries.enqueue(
            session=session,
            key=f"receipt:{fb.id}",
            kind=Kind.RECEIPT,
            payload={"feedback_id": fb.id, "mode": settings.feedback_receipt},
        )


def enqueue_card(session: Session, feedback_id: int) -> None:
    """The item's triage card, posted once."""
    queries.enqueue(session=session, key=f"card:{feedback_id}", kind=Kind.CARD, payload={"feedback_id": feedback_id})


def promote(session: Session, settings: Settings, fb: Feedback) -> None:
    """A "maybe" item becomes feedback: it gets its card (past the chatter filter) and its receipt."""
    fb.status = Status.NEW
    payload = {"feedback_id": fb.id, "promoted": True}
    queries.enqueue(session=session, key=f"card:{fb.id}:promoted", kind=Kind.CARD, payload=payload)
    enqueue_receipt(session, settings, fb)


def enqueue_card_update(session: Session, feedback_id: int, reason: str) -> None:
    """Cards change in place (chat.update); one update per distinct reason, so a redelivery adds nothing."""
    key = f"card_update:{feedback_id}:{reason}"
    queries.enqueue(session=session, key=key, kind=Kind.CARD_UPDATE, payload={"feedback_id": feedback_id})


def record_edit(
    *, session: Session, settings: Settings, channel_id: str, ts: str, new_text: object, edited_ts: str | None
) -> Feedback | None:
    """message_changed: the stored verbatim follows the newest edit; older text stays in the audit trail."""
    fb = queries.feedback_by_key(session=session, dedupe_key=f"msg:{channel_id}:{ts}")
    if fb is None:
        return _edit_joined(session=session, settings=settings, channel_id=channel_id, ts=ts, new_text=new_text)
    text, truncated = clean_text(new_text, settings.feedback_max_text)
    if not text:
        return fb
    queries.lock_feedback(session=session, feedback=fb)
    joined = joins.parts(session, fb)
    last = queries.last_edit_ts(session=session, feedback_id=fb.id)
    if text == joins.root_text(fb, joined) or _not_newer(edited_ts, last):
        return fb  # a redelivered or out-of-order (older) edit
    queries.add_event(
        session=session,
        feedback=fb,
        kind="edited",
        actor=fb.author_user_id,
        detail={"previous": fb.text, "edited_ts": edited_ts},
    )
    whole, cut = clean_text(joins.compose(text, joined), settings.feedback_max_text)  # replies joined stay
    fb.text, fb.text_truncated, fb.edited_at = whole, truncated or cut, utcnow()
    fb.embedding, fb.suggested_at = None, None  # the card update re-embeds and re-suggests the new words
    enqueue_card_update(session, fb.id, f"edit:{edited_ts or utcnow().isoformat()}")
    return fb


def _edit_joined(
    *, session: Session, settings: Settings, channel_id: str, ts: str, new_text: object
) -> Feedback | None:
    """An edit of a message joined into an item updates that part of the item's text."""
    fb = queries.item_joining(session=session, channel_id=channel_id, ts=ts)
    text, _ = clean_text(new_text, settings.feedback_max_text)
    if fb is None or not text:
        log.info("edit of %s in %s: not captured (yet); the capture keeps the text it saw", ts, channel_id)
        return None
    queries.lock_feedback(session=session, feedback=fb)
    joined = joins.parts(session, fb)
    if ts not in joined or joined[ts] == text:
        return fb  # deleted meanwhile, or a redelivery
    root = joins.root_text(fb, joined)
    queries.add_event(session=session, feedback=fb, kind=f"rejoined:{ts}", actor=fb.author_user_id,
                      detail={"text": text, "previous": joined[ts]})  # fmt: skip
    _set_joined(settings, fb, root, {**joined, ts: text})
    enqueue_card_update(session, fb.id, f"rejoin:{ts}:{utcnow().timestamp()}")
    return fb


def _set_joined(settings: Settings, fb: Feedback, root: str, joined: dict[str, str]) -> None:
    """The item's text from its parts, re-suggested on the next card update."""
    fb.text, fb.text_truncated = clean_text(joins.compose(root, joined), settings.feedback_max_text)
    fb.embedding, fb.suggested_at = None, None


def _not_newer(edited_ts: str | None, last: str | None) -> bool:
    """An edit whose `edited.ts` is not after the last one applied is a late redelivery."""
    try:
        return bool(edited_ts and last and float(edited_ts) <= float(last))
    except ValueError:
        return False


def _delete_joined(*, session: Session, settings: Settings, channel_id: str, ts: str) -> Feedback | None:
    """A joined message the customer deleted leaves the item's text (the audit trail keeps it)."""
    fb = queries.item_joining(session=session, channel_id=channel_id, ts=ts)
    if fb is None:
        return None
    queries.lock_feedback(session=session, feedback=fb)
    joined = joins.parts(session, fb)
    if ts not in joined:
        return fb  # a redelivered deletion
    root = joins.root_text(fb, joined)
    queries.add_event(session=session, feedback=fb, kind=f"unjoined:{ts}", actor=fb.author_user_id,
                      detail={"previous": joined.pop(ts)})  # fmt: skip
    _set_joined(settings, fb, root, joined)
    enqueue_card_update(session, fb.id, f"unjoin:{ts}")
    return fb


def record_delete(*, session: Session, settings: Settings, channel_id: str, ts: str) -> Feedback | None:
    """message_deleted: mark, keep the row and its history, and show it on the card."""
    fb = queries.feedback_by_key(session=session, dedupe_key=f"msg:{channel_id}:{ts}")
    if fb is None:
        return _delete_joined(session=session, settings=settings, channel_id=channel_id, ts=ts)
    queries.lock_feedback(session=session, feedback=fb)
    if fb.deleted_at is not None:  # a redelivered deletion
        return fb
    fb.deleted_at = utcnow()
    queries.add_event(session=session, feedback=fb, kind="deleted", actor=fb.author_user_id, detail={})
    enqueue_card_update(session, fb.id, "deleted")
    return fb


def join_target(*, session: Session, settings: Settings, req: CaptureRequest) -> Feedback | None:
    """One conversation, one item: a reply in a captured thread joins that item; with FEEDBACK_BURST_SECONDS,
    so does the same customer's next top-level message in the same channel within that many seconds."""
    if not (req.channel_id and req.message_ts):
        return None
    if req.thread_ts and req.thread_ts != req.message_ts:
        return queries.thread_item(session=session, channel_id=req.channel_id, thread_ts=req.thread_ts)
    window = settings.feedback_burst_seconds
    if window <= 0 or not req.author_user_id:
        return None
    prev = queries.last_item_by(
        session=session, channel_id=req.channel_id, author_user_id=req.author_user_id, method=CaptureMethod.AUTO
    )
    if prev is None or not prev.message_ts or prev.thread_ts not in (None, prev.message_ts):
        return None
    last = max(float(ts) for ts in [prev.message_ts, *queries.joined_ts(session=session, feedback_id=prev.id)])
    return prev if 0 <= float(req.message_ts) - last <= window else None


def join(*, session: Session, settings: Settings, fb: Feedback, req: CaptureRequest) -> bool:
    """Appends a message to an item (once, also under redelivery); the card shows the whole text, re-suggested."""
    queries.lock_feedback(session=session, feedback=fb)
    kind = f"joined:{req.message_ts}"
    if fb.message_ts == req.message_ts or queries.has_event(
        session=session, feedback_id=fb.id, kind=kind, actor=req.author_user_id
    ):
        return False
    text, _ = clean_text(req.text, settings.feedback_max_text)
    joined = joins.parts(session, fb)
    root = joins.root_text(fb, joined)
    detail = {"ts": req.message_ts, "text": text, "thread_ts": req.thread_ts}
    queries.add_event(session=session, feedback=fb, kind=kind, actor=req.author_user_id, detail=detail)
    _set_joined(settings, fb, root, {**joined, str(req.message_ts): text})  # the card re-suggests the whole
    enqueue_card_update(session, fb.id, f"join:{req.message_ts}")
    log.info("message %s joined feedback %s", req.message_ts, fb.id)
    return True


def record_thread_reply(*, session: Session, channel_id: str, thread_ts: str, at: datetime, staff: bool) -> None:
    """A person replied in a captured item's thread: who spoke last, and whether staff ever answered (the
    weekly digest's stalled promises)."""
    fb = queries.thread_item(session=session, channel_id=channel_id, thread_ts=thread_ts)
    if fb is None:
        return
    fb.thread_last_at, fb.thread_last_staff = at, staff
    if staff and fb.staff_replied_at is None:
        fb.staff_replied_at = at


def check_in_answer(session: Session, req: CaptureRequest) -> tuple[CaptureRequest, str | None]:
    """A reply in the thread of a posted check-in question is feedback about that stage (tagged with it)."""
    if not (req.channel_id and req.thread_ts) or req.thread_ts == req.message_ts:
        return req, None
    asked = surveys.check_in_at(session=session, channel_id=req.channel_id, ts=req.thread_ts)
    if asked is None:
        return req, None
    return replace(req, source="checkin", context=f"Check-in ({asked.stage}): {asked.text}"), asked.stage
