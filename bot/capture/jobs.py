"""Capture's outbox handlers: replay a deferred Slack event, hydrate an emoji capture, send the receipt."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.capture import events, service
from bot.deps import Deps
from bot.runtime.outbox import Job, Permanent, Retry, feedback_of, slack_errors
from bot.slack.gateway import SlackError
from storage import queries
from storage.models import Feedback


def _message_of(fb: Feedback) -> tuple[str, str]:
    """The Slack message an item came from; items typed into /feedback have none."""
    if not (fb.channel_id and fb.message_ts):
        raise Permanent(f"feedback {fb.id} has no Slack message")
    return fb.channel_id, fb.message_ts


def replay(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Deferred envelopes run in arrival order per message; Slack still down means retry later."""
    envelope = job.payload["envelope"]
    prefix = f"event:{events.message_ref(envelope['event'])}:"
    if [i for i in queries.pending_outbox(session=session, prefix=prefix) if i < job.item_id]:
        raise Retry("an earlier event about this message is still queued", retry_after=1.0)
    try:
        events.apply(deps, envelope)
    except SlackError as exc:
        if exc.retryable:
            raise Retry(str(exc), exc.retry_after) from exc
        raise Permanent(str(exc)) from exc
    return {"replayed": envelope["event"].get("type")}


def hydrate(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Emoji captures know only channel+ts: fetch the words, author and permalink, then queue the card."""
    fb = feedback_of(session, job)
    channel, ts = _message_of(fb)
    with slack_errors():
        msg = deps.slack.fetch_message(channel, ts)
        fb.permalink = fb.permalink or deps.slack.message_link(channel, ts, (msg or {}).get("thread_ts"))
    if msg is None:
        detail = {"reason": "message not found"}
        queries.add_event(session=session, feedback=fb, kind="hydrate_failed", actor=None, detail=detail)
    else:
        fb.text, fb.text_truncated = service.clean_text(msg.get("text"), deps.settings.feedback_max_text)
        fb.author_user_id = fb.author_user_id or msg.get("user")
        fb.thread_ts = fb.thread_ts or msg.get("thread_ts")
        team = msg.get("user_team") or msg.get("team")
        fb.author_team_id = fb.author_team_id or team
        fb.is_external = bool(team and team != deps.slack.team_id)
    fb.needs_hydration = False
    service.enqueue_card(session, fb.id)
    deps.wake.set()
    return {"found": msg is not None}


def receipt(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Tells the customer they were heard: a reaction or a thread reply, never twice."""
    fb = feedback_of(session, job)
    channel, ts = _message_of(fb)
    settings = deps.settings
    with slack_errors(posting=True):
        if job.payload.get("mode", settings.feedback_receipt) == "reaction":
            deps.slack.react(channel, ts, settings.feedback_receipt_emoji)
            return {"reaction": settings.feedback_receipt_emoji}
        sent = deps.slack.post_once(
            channel, settings.feedback_receipt_text, key=job.key, reconcile_since=job.reconcile_since,
            thread_ts=fb.thread_ts or ts,
        )  # fmt: skip
    return {"ts": sent}
