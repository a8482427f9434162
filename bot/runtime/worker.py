"""Drains the outbox: hydrate emoji captures, post triage cards, send receipts; retries with backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.capture import service as capture
from bot.runtime.outbox import Defer, Handler, Job, MaybeSent, Permanent, Retry, begin, finish
from bot.settings import Settings
from bot.slack.gateway import SlackError, SlackGateway
from bot.suggest.service import SuggestionService
from bot.triage import blocks
from bot.triage.cards import card_data
from storage import queries
from storage.db import session_scope, utcnow
from storage.models import Feedback, OutboxItem

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)


@contextmanager
def _slack_errors(*, posting: bool = False) -> Iterator[None]:
    """Maps Slack failures onto the outbox outcomes; a post that timed out or hit a 5xx may have landed."""
    try:
        yield
    except SlackError as exc:
        if not exc.retryable:
            raise Permanent(str(exc)) from exc
        if posting and exc.error != "ratelimited":
            raise MaybeSent(str(exc), exc.retry_after) from exc
        raise Retry(str(exc), exc.retry_after) from exc


class Worker:
    """One per process; `drain()` is also called directly by tests and the console for determinism."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        gateway: SlackGateway,
        settings: Settings,
        suggestions: SuggestionService | None = None,
    ):
        self.sessions = sessions
        self.suggestions = suggestions
        self.gateway = gateway
        self.settings = settings
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self.handlers: dict[str, Handler] = {
            "hydrate": self._hydrate,
            "card": self._card,
            "card_update": self._card_update,
            "receipt": self._receipt,
            "audit": self._audit,
        }

    def register(self, kind: str, handler: Handler) -> None:
        """Later features (Linear, loop messages) add their own outbox kinds."""
        self.handlers[kind] = handler

    def drain(self, max_items: int = 1000) -> int:
        """Processes every due row once; returns how many were attempted."""
        done = 0
        with self._drain_lock:
            while done < max_items:
                with session_scope(self.sessions) as session:
                    items = queries.claim_due(session=session, now=utcnow(), lease=LEASE, limit=10)
                if not items:
                    return done
                for item in items:
                    self._run_one(item.id)
                    done += 1
        return done

    def _run_one(self, item_id: int) -> None:
        with session_scope(self.sessions) as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != "sending":
                return
            job = begin(item)
        handler = self.handlers.get(job.kind)
        result: dict[str, Any] | None = None
        error: Exception | None = None
        try:
            with session_scope(self.sessions) as session, session.no_autoflush:
                if handler is None:
                    raise Permanent(f"no handler for outbox kind {job.kind!r}")
                result = handler(session, job)  # writes flush at commit, after the network calls
        except (Retry, Permanent) as exc:
            error = exc
        except DBAPIError as exc:  # e.g. locked or unreachable database, possibly after a successful send
            log.warning("outbox %s: database error, will reconcile and retry: %s", job.key, exc)
            error = MaybeSent(f"database error: {exc}")
        except Exception as exc:
            log.exception("outbox %s crashed", job.key)
            error = Permanent(f"internal error: {exc}")
        if error is None and result and result.get("failed"):  # a refusal whose state change was committed
            error = Permanent(str(result["failed"]))
        with session_scope(self.sessions) as session:
            item = session.get(OutboxItem, item_id)
            if item is not None:
                # a deferred Slack event must outlive any outage: it retries (capped at 10 min apart) until it runs
                limit = 10_000 if job.kind == "event" else self.settings.outbox_max_attempts
                finish(
                    item, now=utcnow(), result=result, error=error, max_attempts=limit, in_flight=job.crashed_mid_send
                )

    def start(self) -> None:
        """Background thread: drain, then sleep until woken or the poll interval passes."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="outbox-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Lets the loop finish its current item."""
        self._stop.set()
        self.wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:
                log.exception("outbox drain failed")
            self.wake.wait(self.settings.worker_poll_seconds)
            self.wake.clear()

    # --- handlers ---------------------------------------------------------------------------------

    def _feedback(self, session: Session, job: Job) -> Feedback:
        fb = queries.feedback_by_id(session=session, feedback_id=int(job.payload["feedback_id"]))
        if fb is None:
            raise Permanent(f"feedback {job.payload['feedback_id']} not found")
        return fb

    def _hydrate(self, session: Session, job: Job) -> dict[str, Any]:
        """Emoji captures know only channel+ts: fetch the words, author and permalink, then queue the card."""
        fb = self._feedback(session, job)
        assert fb.channel_id and fb.message_ts
        with _slack_errors():
            msg = self.gateway.fetch_message(fb.channel_id, fb.message_ts)
            fb.permalink = fb.permalink or self.gateway.permalink(fb.channel_id, fb.message_ts)
        if msg is None:
            queries.add_event(
                session=session,
                feedback=fb,
                kind="hydrate_failed",
                actor=None,
                detail={"reason": "message not found"},
            )
        else:
            fb.text, fb.text_truncated = capture.clean_text(msg.get("text"), self.settings.feedback_max_text)
            fb.author_user_id = fb.author_user_id or msg.get("user")
            fb.thread_ts = fb.thread_ts or msg.get("thread_ts")
            team = msg.get("user_team") or msg.get("team")
            fb.author_team_id = fb.author_team_id or team
            fb.is_external = bool(team and team != self.gateway.team_id)
        fb.needs_hydration = False
        queries.enqueue(session=session, key=f"card:{fb.id}", kind="card", payload={"feedback_id": fb.id})
        self.wake.set()
        return {"found": msg is not None}

    def _suggest(self, session: Session, fb: Feedback, job: Job) -> str | None:
        """Suggestions before the card; waits for a warming model, but a broken model never blocks the card."""
        svc = self.suggestions
        if svc is None or fb.suggested_at is not None or not fb.text:
            return None if svc else "suggestions are turned off"
        if svc.state == "warming":
            waited = (utcnow() - fb.created_at).total_seconds()
            if waited < self.settings.model_wait_seconds:
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

    def _card(self, session: Session, job: Job) -> dict[str, Any]:
        """Suggests, filters chatter, then posts the triage card to the internal channel and stores its ts."""
        fb = self._feedback(session, job)
        note = self._suggest(session, fb, job)
        if self._is_chatter(fb) and not job.payload.get("promoted"):
            fb.status = "maybe"
            queries.add_event(
                session=session, feedback=fb, kind="filtered", actor=None, detail={"feedback_score": fb.feedback_score}
            )
            return {"filtered": True, "feedback_score": fb.feedback_score}
        channel = self.settings.feedback_triage_channel
        if not channel:
            raise Permanent("FEEDBACK_TRIAGE_CHANNEL is not set; the card waits in the outbox")
        with _slack_errors():
            self._check_internal(session, channel)
            if not fb.permalink and fb.channel_id and fb.message_ts:
                fb.permalink = self.gateway.permalink(fb.channel_id, fb.message_ts)
        with _slack_errors(posting=True):
            ts = self.gateway.find_posted(channel, job.key, since=job.created_at - 60) if job.crashed_mid_send else None
            text, card_blocks = blocks.card(card_data(session, fb, note, self.settings.ref_secret()))
            ts = ts or self.gateway.post(channel, text, blocks=card_blocks, key=job.key)
        fb.card_channel, fb.card_ts = channel, ts
        capture.enqueue_receipt(session, self.settings, fb)  # after the network calls: no lock held while sending
        return {"channel": channel, "ts": ts}

    def _check_internal(self, session: Session, channel: str) -> None:
        """Cards are internal: refuse a triage channel shared with another organisation (a misconfiguration)."""
        cached = queries.get_channel(session=session, channel_id=channel)
        fresh = cached and cached.checked_at > utcnow() - timedelta(seconds=self.settings.channel_cache_seconds)
        shared = (
            cached.is_ext_shared
            if cached and fresh
            else capture.refresh_channel(session=session, gateway=self.gateway, channel_id=channel)
        )
        if shared:
            raise Permanent(
                f"FEEDBACK_TRIAGE_CHANNEL {channel} is shared with another organisation; "
                "triage cards are internal, so none is posted there"
            )

    def _is_chatter(self, fb: Feedback) -> bool:
        """Only auto-captures are filtered; a human's capture is feedback by definition."""
        if fb.capture_method != "auto" or fb.feedback_score is None or len(fb.tags) > 1:
            return False
        return fb.feedback_score < self.settings.feedback_noise_threshold

    def _card_update(self, session: Session, job: Job) -> dict[str, Any]:
        """chat.update on the stored card; before the card exists the post itself carries the change."""
        fb = self._feedback(session, job)
        if not (fb.card_channel and fb.card_ts):
            return {"skipped": "no card yet"}
        note = self._suggest(session, fb, job) if fb.suggested_at is None else None  # e.g. after an edit
        text, card_blocks = blocks.card(card_data(session, fb, note, self.settings.ref_secret()))
        with _slack_errors():
            self.gateway.update(fb.card_channel, fb.card_ts, text, blocks=card_blocks)
        return {"ts": fb.card_ts}

    def _audit(self, session: Session, job: Job) -> dict[str, Any]:
        """The audit trail lives in the card's thread: who did what, when."""
        fb = self._feedback(session, job)
        if not (fb.card_channel and fb.card_ts):
            return {"skipped": "no card"}
        with _slack_errors(posting=True):
            ts = (
                self.gateway.find_posted(fb.card_channel, job.key, thread_ts=fb.card_ts, since=job.created_at - 60)
                if job.crashed_mid_send
                else None
            )
            ts = ts or self.gateway.post(fb.card_channel, str(job.payload["text"]), thread_ts=fb.card_ts, key=job.key)
        return {"ts": ts}

    def _receipt(self, session: Session, job: Job) -> dict[str, Any]:
        """Tells the customer they were heard: a reaction or a thread reply, never twice."""
        fb = self._feedback(session, job)
        assert fb.channel_id and fb.message_ts
        mode = job.payload.get("mode", self.settings.feedback_receipt)
        with _slack_errors(posting=True):
            if mode == "reaction":
                self.gateway.react(fb.channel_id, fb.message_ts, self.settings.feedback_receipt_emoji)
                return {"reaction": self.settings.feedback_receipt_emoji}
            thread = fb.thread_ts or fb.message_ts
            ts = (
                self.gateway.find_posted(fb.channel_id, job.key, thread_ts=thread, since=job.created_at - 60)
                if job.crashed_mid_send
                else None
            )
            ts = ts or self.gateway.post(
                fb.channel_id, self.settings.feedback_receipt_text, thread_ts=thread, key=job.key
            )
        return {"ts": ts}
