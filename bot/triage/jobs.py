"""Triage's outbox handlers: suggest and post the card, update it in place, and thread the audit trail."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from bot.accounts.service import link_account
from bot.capture.service import channel_shared, enqueue_receipt
from bot.deps import Deps
from bot.domain import CaptureMethod, Status
from bot.runtime.outbox import Defer, Job, Permanent, feedback_of, slack_errors
from bot.slack.kit import mentioned_users
from bot.triage import blocks
from bot.triage.service import card_data
from storage import queries
from storage.models import Feedback

log = logging.getLogger(__name__)


def _suggest(deps: Deps, session: Session, fb: Feedback) -> str | None:
    """Suggestions before the card; waits for a warming model, but a broken model never blocks the card."""
    svc = deps.suggestions
    if svc is None or fb.suggested_at is not None or not fb.text:
        return None if svc else "suggestions are turned off"
    if svc.state == "warming":
        waited = (deps.now() - fb.created_at).total_seconds()
        if waited < deps.settings.model_wait_seconds:
            raise Defer("the embedding model is still warming up", retry_after=0.5)
        return "no suggestion (the model was still loading)"
    if svc.state == "failed":
        return f"no suggestion ({svc.error})"
    try:
        svc.suggest_for(session, fb)
    except Exception as exc:
        log.exception("suggestion failed for feedback %s", fb.id)
        return f"no suggestion ({type(exc).__name__})"
    return None


def _is_chatter(deps: Deps, fb: Feedback) -> bool:
    """Only auto-captures are filtered; a human's capture is feedback by definition."""
    if fb.capture_method != CaptureMethod.AUTO or fb.feedback_score is None or len(fb.tags) > 1:
        return False
    return fb.feedback_score < deps.settings.feedback_noise_threshold


def _render(deps: Deps, session: Session, fb: Feedback, note: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The card for a row as it stands, with the names of users the customer mentioned."""
    data = card_data(session, fb, note, deps.settings.ref_secret(), loop_sla_days=deps.settings.feedback_loop_sla_days)
    mentioned = mentioned_users(data.text).union(*(mentioned_users(item.text) for item in data.similar))
    return blocks.card(replace(data, names=deps.slack.display_names(mentioned)))


def card(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Suggests, filters chatter, then posts the triage card to the internal channel and stores its ts."""
    fb = feedback_of(session, job)
    note = _suggest(deps, session, fb)
    if _is_chatter(deps, fb) and not job.payload.get("promoted"):
        fb.status = Status.MAYBE
        detail = {"feedback_score": fb.feedback_score}
        queries.add_event(session=session, feedback=fb, kind="filtered", actor=None, detail=detail)
        return {"filtered": True, "feedback_score": fb.feedback_score}
    channel = deps.settings.feedback_triage_channel
    if not channel:
        raise Permanent("FEEDBACK_TRIAGE_CHANNEL is not set; the card waits in the outbox")
    with slack_errors():
        if channel_shared(deps, channel):  # its own short transactions: no write lock held while Slack answers
            raise Permanent(
                f"FEEDBACK_TRIAGE_CHANNEL {channel} is shared with another organisation; "
                "triage cards are internal, so none is posted there"
            )
        if not fb.permalink and fb.channel_id and fb.message_ts:
            fb.permalink = deps.slack.message_link(fb.channel_id, fb.message_ts, fb.thread_ts)
        fb.account_id, fb.contact_id = link_account(deps, fb)  # team.info first, then its own short transaction
    with slack_errors(posting=True):
        text, card_blocks = _render(deps, session, fb, note)
        ts = deps.slack.post_once(channel, text, key=job.key, reconcile_since=job.reconcile_since, blocks=card_blocks)
    fb.card_channel, fb.card_ts = channel, ts
    enqueue_receipt(session, deps.settings, fb)  # after the network calls: no lock held while sending
    return {"channel": channel, "ts": ts}


def card_update(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """chat.update on the stored card; before the card exists the post itself carries the change."""
    fb = feedback_of(session, job)
    if not (fb.card_channel and fb.card_ts):
        return {"skipped": "no card yet"}
    note = _suggest(deps, session, fb) if fb.suggested_at is None else None  # e.g. after an edit
    with slack_errors():
        text, card_blocks = _render(deps, session, fb, note)
        deps.slack.update(fb.card_channel, fb.card_ts, text, blocks=card_blocks)
    return {"ts": fb.card_ts}


def audit(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """The audit trail lives in the card's thread: who did what, when."""
    fb = feedback_of(session, job)
    if not (fb.card_channel and fb.card_ts):
        return {"skipped": "no card"}
    with slack_errors(posting=True):
        ts = deps.slack.post_once(
            fb.card_channel, str(job.payload["text"]), key=job.key, reconcile_since=job.reconcile_since,
            thread_ts=fb.card_ts,
        )  # fmt: skip
    return {"ts": ts}


def prepare(deps: Deps, payloads: list[dict[str, Any]]) -> None:
    """Before a batch of due cards runs: embed all their texts in one model call instead of one each."""
    if deps.suggestions is not None:
        deps.suggestions.embed_missing([int(p["feedback_id"]) for p in payloads if "feedback_id" in p])


def learn(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """A correction made in a web process reaches the model in the worker process."""
    if deps.suggestions is None:
        return {"skipped": "no model in this process"}
    deps.suggestions.learn(feedback_of(session, job))
    return {"learned": job.payload["feedback_id"]}
