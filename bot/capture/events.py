"""What each Events API event means for capture; run after the ack, and again by the outbox's replay."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from bot.accounts.service import account_of_user, champion_left, enqueue_demand, is_staff
from bot.capture import service
from bot.deps import Deps
from bot.domain import CaptureMethod, CaptureRequest
from storage import customers, queries
from storage.models import LinkStatus

log = logging.getLogger(__name__)
CHANNEL_EVENTS = {"member_joined_channel", "channel_shared", "channel_unshared"}
VOTES = {"+1", "thumbsup"}  # Slack's names for 👍 (skin tones arrive as "+1::skin-tone-2")
PEOPLE_EVENTS = {"member_left_channel", "user_change"}
KINDS = {
    "message",
    "reaction_added",
    *CHANNEL_EVENTS,
    *PEOPLE_EVENTS,
}  # the events capture acts on (stored before the ack)


def message_ref(event: dict[str, Any]) -> str:
    """`channel:ts` of the message an event is about, so events about one message replay in order."""
    raw_item, raw_message = event.get("item"), event.get("message")
    item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
    message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    thread = message.get("thread_ts") or event.get("thread_ts")  # a thread's events share its root's lane
    ts = item.get("ts") or thread or message.get("ts") or event.get("deleted_ts") or event.get("ts")
    channel = item.get("channel") or event.get("channel")
    channel = channel.get("id") if isinstance(channel, dict) else channel
    return f"{channel}:{ts}"


def channel_lane(event: dict[str, Any]) -> str | None:
    """With FEEDBACK_BURST_SECONDS on, one channel's message events run in arrival order (`event:<channel>`), so a
    burst's messages join one item, and an emoji or a thread reply never overtakes the message it is about, even
    when the worker runs many lanes at once. Channels still run in parallel."""
    item = event.get("item")
    channel = event.get("channel") or (item.get("channel") if isinstance(item, dict) else None)
    return f"event:{channel}" if isinstance(channel, str) and channel else None


def apply(deps: Deps, envelope: dict[str, Any]) -> None:
    """The capture-relevant events, by type; raises SlackError when Slack must answer first."""
    event = envelope["event"]
    kind = event.get("type")
    if kind == "message":
        on_message(deps, event, envelope)
    elif kind == "reaction_added":
        on_reaction(deps, event)
    elif kind in PEOPLE_EVENTS:
        _person_left(deps, event)
    elif kind in CHANNEL_EVENTS:
        channel = event.get("channel")
        channel = channel.get("id") if isinstance(channel, dict) else channel
        joined_by_someone_else = kind == "member_joined_channel" and event.get("user") != deps.slack.bot_user_id
        if isinstance(channel, str) and not joined_by_someone_else:
            service.refresh_channel(deps, channel)


def on_message(deps: Deps, event: dict[str, Any], envelope: dict[str, Any]) -> None:
    """Auto-capture, edits and deletions of messages in channels the bot is in."""
    subtype = event.get("subtype")
    channel = event.get("channel")
    if not isinstance(channel, str):
        log.info("message event without a channel ignored")
        return
    if subtype not in {"message_changed", "message_deleted"}:
        _note_thread_reply(deps, event, channel)
        req = service.auto_capture_request(deps, event, envelope.get("is_ext_shared_channel"))  # Slack first
        if req is not None:
            _capture_or_join(deps, req)
        return
    with deps.transaction() as session:
        if subtype == "message_changed":
            _on_changed(deps, session, channel, event)
        else:
            service.record_delete(
                session=session, settings=deps.settings, channel_id=channel, ts=str(event.get("deleted_ts"))
            )


def _note_thread_reply(deps: Deps, event: dict[str, Any], channel: str) -> None:
    """A person's reply in a thread: recorded on the thread's item (if any) for the digest's stalled promises."""
    thread, ts, user = event.get("thread_ts"), event.get("ts"), event.get("user")
    if not isinstance(thread, str) or thread == ts or event.get("bot_id") or not isinstance(user, str):
        return
    if user == deps.slack.bot_user_id or event.get("subtype") not in service.ALLOWED_SUBTYPES:
        return
    staff = (service.author_team(event) or deps.slack.user(user).get("team_id")) == deps.slack.team_id
    with deps.transaction() as session:
        service.record_thread_reply(session=session, channel_id=channel, thread_ts=thread, at=deps.now(), staff=staff)


def _capture_or_join(deps: Deps, req: CaptureRequest) -> None:
    """A reply in a captured thread (or a burst's next message) joins its item; anything else is a new item."""
    with deps.transaction() as session:
        req, stage = service.check_in_answer(session, req)
        if stage:  # each person's answers to a check-in are their own item
            target = queries.thread_item(session=session, channel_id=req.channel_id or "",
                                         thread_ts=req.thread_ts or "", author=req.author_user_id or "")  # fmt: skip
        else:
            target = service.join_target(session=session, settings=deps.settings, req=req)
        earlier = target.text if target is not None else ""
        burst = target is not None and not (req.thread_ts and req.thread_ts != req.message_ts)
    model = deps.suggestions if deps.suggestions is not None and deps.suggestions.state == "ready" else None
    if burst and model is not None and model.distinct(earlier, req.text or ""):  # model work outside any tx
        target = None
    with deps.transaction() as session:
        if target is not None:
            fb = queries.feedback_by_id(session=session, feedback_id=target.id)
            if fb is not None and fb.deleted_at is None:
                service.join(session=session, settings=deps.settings, fb=fb, req=req)
                return
        result = service.capture(session=session, settings=deps.settings, req=req)
        if stage and result.created:
            result.feedback.tags = [*result.feedback.tags, f"checkin:{stage}"]


def _on_changed(deps: Deps, session: Session, channel: str, event: dict[str, Any]) -> None:
    msg = event.get("message")
    if not isinstance(msg, dict):
        return
    if msg.get("subtype") == "tombstone":  # a thread parent was deleted; Slack keeps a placeholder
        service.record_delete(session=session, settings=deps.settings, channel_id=channel, ts=str(msg.get("ts")))
        return
    edited_ts = (msg.get("edited") or {}).get("ts") or event.get("ts")
    service.record_edit(
        session=session,
        settings=deps.settings,
        channel_id=channel,
        ts=str(msg.get("ts")),
        new_text=msg.get("text"),
        edited_ts=edited_ts,
    )


def _person_left(deps: Deps, event: dict[str, Any]) -> None:
    """member_left_channel (a shared channel) or user_change with deleted: a champion change, maybe."""
    if event.get("type") == "member_left_channel":
        user, channel = event.get("user"), event.get("channel")
        if isinstance(user, str) and isinstance(channel, str) and service.channel_shared(deps, channel):
            champion_left(deps, user, f"left <#{channel}>")
        return
    person = event.get("user")
    if isinstance(person, dict) and person.get("deleted") and isinstance(person.get("id"), str):
        champion_left(deps, str(person["id"]), "was deactivated")


def _vote(deps: Deps, user: str, channel: str, ts: str) -> None:
    """A customer's :+1: on a captured message adds their account as a requester, once per account; staff
    reactions do not count."""
    with deps.transaction() as session:
        fb = queries.feedback_by_key(session=session, dedupe_key=f"msg:{channel}:{ts}")
        target = (fb.id, fb.created_at) if fb is not None else None
    team = deps.slack.user(user).get("team_id") if target else None  # Slack first, outside any transaction
    if target is None or not team or team == deps.slack.team_id:
        return
    account_id, _ = account_of_user(deps, user, str(team), None, deps.now())
    with deps.transaction() as session:
        if not customers.add_vote(session=session, feedback_id=target[0], account_id=account_id, user_id=user):
            return
        service.enqueue_card_update(session, target[0], f"vote:{account_id}")
        for link in queries.links_for(session=session, feedback_id=target[0]):
            if link.status == LinkStatus.LINKED:
                enqueue_demand(session, link.issue_id)
    log.info("account %s +1'd feedback %s", account_id, target[0])


def on_reaction(deps: Deps, event: dict[str, Any]) -> None:
    """A staff member's :feedback: (or a type emoji) on any message captures it, with a type hint."""
    name = str(event.get("reaction", "")).split("::")[0]
    type_hint = deps.settings.feedback_type_emoji.get(name)
    item = event.get("item") or {}
    user = event.get("user")
    if name in VOTES and isinstance(user, str) and item.get("type") == "message":
        _vote(deps, user, str(item.get("channel")), str(item.get("ts")))
        return
    if name != deps.settings.feedback_emoji and type_hint is None:
        return
    if item.get("type") != "message" or not isinstance(user, str) or not item.get("channel") or not item.get("ts"):
        return
    if event.get("item_user") == deps.slack.bot_user_id or item["channel"] == deps.settings.feedback_triage_channel:
        return  # our own cards, receipts and audit replies are not customer feedback
    if not is_staff(deps.slack, deps.settings, user):
        log.info("reaction :%s: by non-staff %s ignored", name, user)
        return
    req = CaptureRequest(
        method=CaptureMethod.EMOJI,
        text=None,
        team_id=deps.slack.team_id,
        channel_id=item["channel"],
        message_ts=item["ts"],
        author_user_id=event.get("item_user"),
        captured_by=user,
        type_hint=type_hint,
    )
    with deps.transaction() as session:
        service.capture(session=session, settings=deps.settings, req=req)
