"""What each Slack entry point means for the product: called by handlers/ after ack()."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from bot.capture import service as capture
from bot.deps import Deps
from bot.domain import SOURCES, CaptureMethod, CaptureRequest, FeedbackType, UserFacingError
from bot.runtime.outbox import Job, Permanent, Retry
from bot.slack.gateway import SlackError
from bot.triage import blocks
from bot.triage.blocks import Field
from storage import queries

log = logging.getLogger(__name__)
NOT_STAFF = "Only members of this workspace's team can log feedback with Feedback Loop."


def _message_ref(event: dict[str, Any]) -> str:
    """`channel:ts` of the message an event is about, so events about one message replay in order."""
    raw_item, raw_message = event.get("item"), event.get("message")
    item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
    message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    ts = item.get("ts") or message.get("ts") or event.get("deleted_ts") or event.get("ts")
    channel = item.get("channel") or event.get("channel")
    return f"{channel}:{ts}"


def handle_event(deps: Deps, envelope: dict[str, Any]) -> None:
    """Runs one Events API envelope; when Slack cannot answer (or an earlier event about the same message is
    still queued), it waits in the outbox and is replayed in order: never lost after the ack."""
    ref = _message_ref(envelope["event"])
    with deps.transaction() as session:
        queued_before = queries.pending_outbox(session=session, prefix=f"event:{ref}:")
    try:
        if queued_before:
            raise SlackError("an earlier event about this message is queued", error="queued", retryable=True)
        replay_event(deps, envelope)
    except SlackError as exc:
        if not exc.retryable:
            raise
        key = f"event:{ref}:{envelope.get('event_id') or envelope['event'].get('event_ts')}"
        with deps.transaction() as session:
            queries.enqueue(session=session, key=key, kind="event", payload={"envelope": envelope})
        log.warning("%s: queued for replay (%s)", key, exc)


def replay_event(deps: Deps, envelope: dict[str, Any]) -> None:
    """The capture-relevant events, by type (also the outbox's replay of a deferred envelope)."""
    event = envelope["event"]
    kind = event.get("type")
    if kind == "message":
        on_message(deps, event, envelope)
    elif kind == "reaction_added":
        on_reaction(deps, event)
    elif kind in {"member_joined_channel", "channel_shared", "channel_unshared"}:
        channel = event.get("channel")
        channel = channel.get("id") if isinstance(channel, dict) else channel
        joined_by_someone_else = kind == "member_joined_channel" and event.get("user") != deps.gateway.bot_user_id
        if isinstance(channel, str) and not joined_by_someone_else:
            on_channel_change(deps, channel)


def replay_job(deps: Deps, job: Job) -> dict[str, Any]:
    """Outbox handler for deferred envelopes: in arrival order per message; Slack still down means retry later."""
    envelope = job.payload["envelope"]
    with deps.transaction() as session:
        earlier = [
            i
            for i in queries.pending_outbox(session=session, prefix=f"event:{_message_ref(envelope['event'])}:")
            if i < job.item_id
        ]
    if earlier:
        raise Retry("an earlier event about this message is still queued", retry_after=1.0)
    try:
        replay_event(deps, envelope)
    except SlackError as exc:
        if exc.retryable:
            raise Retry(str(exc), exc.retry_after) from exc
        raise Permanent(str(exc)) from exc
    return {"replayed": envelope["event"].get("type")}


def on_message(deps: Deps, event: dict[str, Any], envelope: dict[str, Any]) -> None:
    """Auto-capture, edits and deletions of messages in channels the bot is in."""
    subtype = event.get("subtype")
    channel = event.get("channel")
    if not isinstance(channel, str):
        log.info("message event without a channel ignored")
        return
    with deps.transaction() as session:
        if subtype == "message_changed":
            _on_changed(deps, session, channel, event)
        elif subtype == "message_deleted":
            capture.record_delete(session=session, channel_id=channel, ts=str(event.get("deleted_ts")))
        else:
            _on_posted(deps, session, channel, event, envelope)


def _on_changed(deps: Deps, session: Session, channel: str, event: dict[str, Any]) -> None:
    msg = event.get("message")
    if not isinstance(msg, dict):
        return
    if msg.get("subtype") == "tombstone":  # a thread parent was deleted; Slack keeps a placeholder
        capture.record_delete(session=session, channel_id=channel, ts=str(msg.get("ts")))
        return
    edited_ts = (msg.get("edited") or {}).get("ts") or event.get("ts")
    capture.record_edit(
        session=session,
        settings=deps.settings,
        channel_id=channel,
        ts=str(msg.get("ts")),
        new_text=msg.get("text"),
        edited_ts=edited_ts,
    )


def _on_posted(deps: Deps, session: Session, channel: str, event: dict[str, Any], envelope: dict[str, Any]) -> None:
    gateway, user = deps.gateway, event.get("user")
    if not isinstance(user, str) or event.get("bot_id") or event.get("subtype") not in capture.ALLOWED_SUBTYPES:
        return
    watched = capture.channel_is_watched(
        session=session,
        gateway=gateway,
        settings=deps.settings,
        channel_id=channel,
        shared_hint=envelope.get("is_ext_shared_channel"),
    )
    if not watched:
        return
    team = capture.author_team(event) or gateway.user(user).get("team_id")
    info = gateway.user(user) if team == gateway.team_id else {}
    guest = bool(info.get("is_restricted") or info.get("is_ultra_restricted"))
    req = capture.message_request(
        event, installing_team=gateway.team_id, bot_user_id=gateway.bot_user_id, team=team, guest=guest
    )
    if req is None:
        return
    if not capture.clean_text(req.text, deps.settings.feedback_max_text)[0]:
        log.info("empty message %s in %s not captured", req.message_ts, channel)
        return
    capture.capture(session=session, settings=deps.settings, req=req)


def on_reaction(deps: Deps, event: dict[str, Any]) -> None:
    """A staff member's :feedback: (or a type emoji) on any message captures it, with a type hint."""
    name = str(event.get("reaction", "")).split("::")[0]
    type_hint = deps.settings.feedback_type_emoji.get(name)
    item = event.get("item") or {}
    user = event.get("user")
    if name != deps.settings.feedback_emoji and type_hint is None:
        return
    if item.get("type") != "message" or not isinstance(user, str) or not item.get("channel") or not item.get("ts"):
        return
    if event.get("item_user") == deps.gateway.bot_user_id or item["channel"] == deps.settings.feedback_triage_channel:
        return  # our own cards, receipts and audit replies are not customer feedback
    if not deps.gateway.is_staff(user):
        log.info("reaction :%s: by non-staff %s ignored", name, user)
        return
    req = CaptureRequest(
        method=CaptureMethod.EMOJI,
        text=None,
        team_id=deps.gateway.team_id,
        channel_id=item["channel"],
        message_ts=item["ts"],
        author_user_id=event.get("item_user"),
        captured_by=user,
        type_hint=type_hint,
    )
    with deps.transaction() as session:
        capture.capture(session=session, settings=deps.settings, req=req)


def require_staff(deps: Deps, user_id: str, team_id: str | None) -> None:
    """Shortcuts and modals are staff-only; external Slack Connect users get a clear refusal."""
    if team_id and team_id != deps.gateway.team_id:
        raise UserFacingError(NOT_STAFF)
    if not deps.gateway.is_staff(user_id, team_id):
        raise UserFacingError(NOT_STAFF)


def log_modal(deps: Deps, payload: dict[str, Any]) -> dict[str, Any]:
    """The message shortcut's modal, prefilled from the message in the payload (and its permalink)."""
    msg = payload.get("message") or {}
    channel = (payload.get("channel") or {}).get("id")
    text = str(msg.get("text") or "")
    if not channel or not msg.get("ts"):
        raise UserFacingError("Slack did not say which message this is; try the shortcut again.")
    meta = {
        "channel": channel, "ts": msg.get("ts"), "thread_ts": msg.get("thread_ts"), "user": msg.get("user"),
        "user_team": capture.author_team(msg), "long": _digest(blocks.truncate(text, blocks.MODAL_TEXT_LIMIT))
        if len(text) > blocks.MODAL_TEXT_LIMIT else None,
    }  # fmt: skip
    try:
        permalink = deps.gateway.permalink(channel, str(msg["ts"]))
    except SlackError:  # best effort: the modal must open within the trigger's 3 s; the card adds the link later
        permalink = None
    return blocks.log_modal(verbatim=text, author=msg.get("user"), permalink=permalink, metadata=meta)


def _digest(text: str) -> str:
    """Short fingerprint of the prefilled verbatim: unchanged means "use the whole message", edited means theirs."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def feedback_modal(channel_id: str | None) -> dict[str, Any]:
    """The /feedback and global-shortcut modal."""
    return blocks.feedback_modal(metadata={"channel": channel_id})


def read_state(view: dict[str, Any]) -> dict[str, str | None]:
    """Flattens view.state.values into field -> value, whatever the element type."""
    out: dict[str, str | None] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for el in actions.values():
            value = el.get("value") or el.get("selected_user") or (el.get("selected_option") or {}).get("value")
            out[block_id] = value.strip() if isinstance(value, str) and value.strip() else None
    return out


def _check(values: dict[str, str | None], required: list[Field]) -> dict[str, str]:
    errors = {f.value: "Required." for f in required if not values.get(f.value)}
    if values.get(Field.SOURCE) and values[Field.SOURCE] not in SOURCES:
        errors[Field.SOURCE.value] = "Pick one of the listed sources."
    if values.get(Field.TYPE_HINT) and values[Field.TYPE_HINT] not in {t.value for t in FeedbackType}:
        errors[Field.TYPE_HINT.value] = "Pick one of the listed types."
    return errors


def validate_log(view: dict[str, Any]) -> dict[str, str]:
    """Errors keyed by block_id for response_action="errors"; empty when the modal is good."""
    return _check(read_state(view), [Field.VERBATIM, Field.CONTEXT, Field.SOURCE])


def validate_feedback(view: dict[str, Any]) -> dict[str, str]:
    """Customer (either field), source, verbatim and context are all required."""
    values = read_state(view)
    errors = _check(values, [Field.SOURCE, Field.VERBATIM, Field.CONTEXT])
    if not values.get(Field.CUSTOMER_TEXT) and not values.get(Field.CUSTOMER_USER):
        errors[Field.CUSTOMER_TEXT.value] = "Name the customer, or pick them as a Slack user."
    return errors


def submit_after_ack(
    deps: Deps, user: dict[str, Any], view: dict[str, Any], store: Callable[[Deps, str, dict[str, Any]], int]
) -> None:
    """After the ack: the full staff check (may call Slack), then store; a refusal is DM'd to the submitter."""
    try:
        require_staff(deps, user.get("id", ""), user.get("team_id"))
        store(deps, user["id"], view)
    except UserFacingError as exc:
        deps.gateway.post(user.get("id", ""), f"Your feedback was not logged: {exc}")


def submit_log(deps: Deps, user_id: str, view: dict[str, Any]) -> int:
    """Stores the shortcut's message; a message already captured gets this context added."""
    values = read_state(view)
    meta = json.loads(view.get("private_metadata") or "{}")
    team = meta.get("user_team")
    verbatim = values.get(Field.VERBATIM)
    if meta.get("long") and verbatim and _digest(verbatim) == meta["long"]:
        verbatim = None  # the modal held a truncated copy: the worker fetches the full message from Slack
    req = CaptureRequest(
        method=CaptureMethod.SHORTCUT,
        text=verbatim,
        team_id=deps.gateway.team_id,
        channel_id=meta.get("channel"),
        message_ts=meta.get("ts"),
        thread_ts=meta.get("thread_ts"),
        author_user_id=meta.get("user"),
        author_team_id=team,
        is_external=bool(team and team != deps.gateway.team_id),
        source=values.get(Field.SOURCE) or "slack",
        context=values.get(Field.CONTEXT),
        captured_by=user_id,
        type_hint=values.get(Field.TYPE_HINT),
    )
    with deps.transaction() as session:
        return capture.capture(session=session, settings=deps.settings, req=req).feedback.id


def submit_feedback(deps: Deps, user_id: str, view: dict[str, Any]) -> int:
    """Stores feedback heard elsewhere; the view id is its dedupe key (a double submit is one item)."""
    values = read_state(view)
    customer_user = values.get(Field.CUSTOMER_USER)
    team = deps.gateway.user(customer_user).get("team_id") if customer_user else None
    req = CaptureRequest(
        method=CaptureMethod.COMMAND,
        text=values.get(Field.VERBATIM),
        team_id=deps.gateway.team_id,
        author_user_id=customer_user,
        author_team_id=team,
        customer=values.get(Field.CUSTOMER_TEXT),
        is_external=bool(team and team != deps.gateway.team_id) or not customer_user,
        source=values.get(Field.SOURCE) or "other",
        context=values.get(Field.CONTEXT),
        captured_by=user_id,
        type_hint=values.get(Field.TYPE_HINT),
        dedupe_key=f"view:{view.get('id')}",
    )
    with deps.transaction() as session:
        return capture.capture(session=session, settings=deps.settings, req=req).feedback.id


def on_channel_change(deps: Deps, channel_id: str) -> None:
    """Joins and (un)shares refresh the cached is_ext_shared flag."""
    with deps.transaction() as session:
        capture.refresh_channel(session=session, gateway=deps.gateway, channel_id=channel_id)
