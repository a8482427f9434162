"""Closing the loop: a Linear state change becomes one message per requester, drafted for staff or queued to send.

Each requester (a feedback item linked to the issue, merged duplicates included) gets each kind of message at
most once: `loop_message` is unique on (item, kind), so redeliveries, polls, relinks and double clicks add nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.capture.service import enqueue_card_update
from bot.deps import Deps
from bot.domain import CardRef, Kind, LoopDraft, LoopStage, UserFacingError
from bot.loop import blocks
from bot.settings import Settings
from bot.slack.kit import escape, name, shown, truncate
from bot.triage.service import LOOP_STATE_LABELS, requester, state_label
from storage import loops, queries
from storage.models import Feedback, LinearIssue, LoopMessage, LoopState

log = logging.getLogger(__name__)
QUOTE_CHARS = 100
GENERIC_TITLE = "the change you asked for"
DECIDED = {LoopState.QUEUED: "approved", LoopState.SENT: "approved", LoopState.FAILED: "approved",
           LoopState.SKIPPED: "skipped", LoopState.TOLD: "marked as told"}  # fmt: skip


@dataclass(frozen=True)
class IssueSnapshot:
    """A Linear issue's state as a webhook, a poll or a link read it."""

    id: str
    state_type: str | None
    state_name: str | None
    identifier: str | None = None
    title: str | None = None
    url: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> IssueSnapshot:
        """The snapshot an outbox row carries."""
        fields = ("state_type", "state_name", "identifier", "title", "url", "updated_at")
        return cls(str(payload["id"]), **{f: payload.get(f) for f in fields})


def ref_secret(settings: Settings) -> str:
    """Loop buttons are signed apart from card buttons, so one can never stand in for the other."""
    return settings.ref_secret() + ":loop"


def retry_secret(settings: Settings) -> str:
    """Retry buttons carry an outbox row id, signed apart again."""
    return settings.ref_secret() + ":retry"


def stage_for(settings: Settings, state_type: str | None, state_name: str | None) -> LoopStage | None:
    """FEEDBACK_LOOP_STATES maps a workflow state (its name first, then its type) to a kind of message."""
    states = settings.feedback_loop_states
    key = states.get((state_name or "").casefold()) or states.get((state_type or "").casefold())
    return LoopStage(key) if key else None


def apply_state(
    session: Session, settings: Settings, snap: IssueSnapshot, now: datetime, *, feedback_id: int | None = None
) -> dict[str, Any]:
    """Records the issue's state and offers each requester the message it calls for. A delivery that changes
    nothing (a redelivery, our own echo) or is older than what we hold is ignored. With `feedback_id` (a new link
    to an issue that already moved) only that item is offered a message."""
    row = loops.ensure_linear_issue(session=session, issue_id=snap.id)
    same = (row.state_type, row.state_name) == (snap.state_type, snap.state_name)
    if feedback_id is None and same:
        return {"ignored": f"no change ({snap.state_type})"}
    if snap.updated_at and row.state_at and snap.updated_at < row.state_at:
        return {"ignored": f"older than the state we hold ({row.state_at})"}
    _record(session, row, snap, now, moved=not same)
    # a state we had not seen moves every requester's loop; a new link to a state we knew offers only that item
    everyone = feedback_id is None or not same
    targets = [fb for fb in loops.requesters(session=session, issue_id=snap.id) if everyone or fb.id == feedback_id]
    if not same:
        for fb in targets:
            enqueue_card_update(session, fb.id, f"state:{snap.id}:{snap.state_name}:{snap.updated_at or now}")
    stage = stage_for(settings, snap.state_type, snap.state_name)
    if stage is None or settings.feedback_close_loop == "off":
        return {"state": snap.state_type, "offered": 0}
    offered = [m.id for fb in targets if (m := _offer(session, settings, fb, row, stage, now)) is not None]
    return {"state": snap.state_type, "stage": stage.value, "offered": len(offered)}


def _record(session: Session, row: LinearIssue, snap: IssueSnapshot, now: datetime, *, moved: bool) -> None:
    row.identifier = snap.identifier or row.identifier
    row.title = snap.title or row.title
    row.url = snap.url or row.url
    if moved:
        row.state_type, row.state_name, row.changed_at = snap.state_type, snap.state_name, now
        row.completed_at = now if snap.state_type == "completed" else None
    row.state_at = max(filter(None, (row.state_at, snap.updated_at)), default=None)
    loops.set_link_states(session=session, issue_id=row.id, state_type=row.state_type, state_name=row.state_name)


def _offer(
    session: Session, settings: Settings, fb: Feedback, issue: LinearIssue, stage: LoopStage, now: datetime
) -> LoopMessage | None:
    """One requester's message: queued (auto), drafted for approval, or a task when there is no thread."""
    if stage is LoopStage.UPDATE and loops.has_loop_message(session=session, feedback_id=fb.id, stage="resolution"):
        return None  # they already heard it shipped
    thread = fb.thread_ts or fb.message_ts if fb.channel_id else None
    auto = settings.feedback_close_loop == "auto" and stage is not LoopStage.CANCELED and thread is not None
    status = LoopState.QUEUED if auto else (LoopState.DRAFT if thread else LoopState.TASK)
    approver = fb.owner_id or loops.who_linked(session=session, feedback_id=fb.id)
    values = {
        "feedback_id": fb.id, "issue_id": issue.id, "stage": stage.value, "status": status.value,
        "text": render(settings, stage, fb, _title(session, fb, issue)), "approver": approver,
        "channel_id": fb.channel_id if thread else None, "thread_ts": thread, "send_after": None,
    }  # fmt: skip
    msg = loops.add_loop_message(session=session, values=values)
    if msg is None:
        return None
    if stage is LoopStage.RESOLUTION:
        supersede_update(session, fb.id)
    detail = {"stage": stage.value, "issue": issue.identifier or issue.id, "status": status.value}
    queries.add_event(session=session, feedback=fb, kind="loop_offered", actor=None, detail=detail)
    if auto:
        _queue_send(session, settings, msg, now)
    else:
        _enqueue_draft(session, msg)
    enqueue_card_update(session, fb.id, f"loop:{msg.id}:{msg.status}")
    return msg


def supersede_update(session: Session, feedback_id: int) -> bool:
    """Once it shipped, an unsent "we started" is old news: skipped (its draft says so), never sent after."""
    update = loops.stage_message(session=session, feedback_id=feedback_id, stage=LoopStage.UPDATE)
    if update is None or update.status not in (LoopState.DRAFT, LoopState.QUEUED, LoopState.TASK):
        return False
    update.status, update.error, update.rev = LoopState.SKIPPED.value, "superseded: it shipped", update.rev + 1
    if update.draft_ts:
        _enqueue_draft(session, update)
    enqueue_card_update(session, feedback_id, f"loop:{update.id}:superseded")
    return True


def _title(session: Session, fb: Feedback, issue: LinearIssue) -> str:
    """The issue's title, unless we created the issue from another customer's words: then a neutral phrase."""
    creator = loops.created_from(session=session, issue_id=issue.id)
    if creator is not None and creator.id != fb.id and _customer(creator) != _customer(fb):
        return GENERIC_TITLE
    title = re.sub(r"^\[[^\]]{1,40}\]\s*", "", issue.title or "")  # our own "[Bug] " prefix is for staff
    return escape(title) if title else GENERIC_TITLE


def _customer(fb: Feedback) -> tuple[str | None, str | None]:
    return fb.author_team_id or fb.customer, fb.channel_id


def render(settings: Settings, stage: LoopStage, fb: Feedback, title: str) -> str:
    """The template with this requester's own name and words only (escaped, quoted briefly, nothing live)."""
    words = " ".join(shown(fb.text).split())
    values = {
        "name": name((fb.author_name or "").split(" ")[0]) or "there",  # a greeting uses the first name
        "title": title,
        "quote": f" (“{truncate(words, QUOTE_CHARS)}”)" if words else "",
    }
    return truncate(settings.feedback_templates[stage.value].format_map(values), 3000)


def outgoing(msg: LoopMessage) -> str:
    """The text the customer receives: staff's wording plus the release note or docs link, on its own line."""
    return truncate(msg.text + (f"\n{escape(msg.note)}" if msg.note else ""), 3000)


def _enqueue_draft(session: Session, msg: LoopMessage) -> None:
    """Posts (rev 0) or refreshes (later revs) the approval DM."""
    payload = {"message_id": msg.id, "feedback_id": msg.feedback_id}
    queries.enqueue(session=session, key=f"loop.draft:{msg.id}:{msg.rev}", kind=Kind.LOOP_DRAFT, payload=payload)


def _queue_send(session: Session, settings: Settings, msg: LoopMessage, now: datetime) -> None:
    """The customer message goes out through the outbox, after quiet hours, paced per channel."""
    due = settings.quiet_hours().next_allowed(now, settings.feedback_tz)
    msg.send_after = due
    payload = {"message_id": msg.id, "lane": f"channel:{msg.channel_id}"}
    queries.enqueue(session=session, key=f"loop.send:{msg.id}", kind=Kind.LOOP_SEND, payload=payload, due=due)


def decide(deps: Deps, ref: CardRef, verb: str, user: str) -> str:
    """Send, Skip or "I told them" from the approval DM; a second click or a replay changes nothing."""
    moves = {
        "send": ([LoopState.DRAFT], LoopState.QUEUED),
        "skip": ([LoopState.DRAFT, LoopState.TASK, LoopState.FAILED], LoopState.SKIPPED),
        "told": ([LoopState.TASK], LoopState.TOLD),
    }
    if verb not in moves:
        raise UserFacingError(f"Unknown loop action {verb!r}.")
    sources, target = moves[verb]
    with deps.transaction() as session:
        now = deps.now()
        values = {"status": target.value, "decided_by": user, "decided_at": now, "rev": ref.rev + 1}
        if not loops.move_loop_message(session=session, message_id=ref.feedback_id, rev=ref.rev, from_states=sources,
                                       values=values):  # fmt: skip
            raise UserFacingError(_already(session, ref.feedback_id))
        msg = message(session, ref.feedback_id)
        if target is LoopState.QUEUED:
            _queue_send(session, deps.settings, msg, now)
        _after_change(session, msg, user, verb)
    return {"send": "Approved: it goes out", "skip": "Skipped", "told": "Marked as told"}[verb]


def edit(deps: Deps, ref: CardRef, user: str, text: str, note: str | None) -> None:
    """Saves staff's wording (raw text, escaped here) on a draft; the DM shows it and Send sends it."""
    clean = escape(text.strip())
    if not clean:
        raise UserFacingError("The message cannot be empty.")
    with deps.transaction() as session:
        values = {"text": truncate(clean, 3000), "note": (note or "").strip() or None, "rev": ref.rev + 1}
        sources = [LoopState.DRAFT, LoopState.TASK]
        if not loops.move_loop_message(session=session, message_id=ref.feedback_id, rev=ref.rev, from_states=sources,
                                       values=values):  # fmt: skip
            raise UserFacingError(_already(session, ref.feedback_id))
        _after_change(session, message(session, ref.feedback_id), user, "edit")


def message(session: Session, message_id: int) -> LoopMessage:
    msg = loops.loop_message(session=session, message_id=message_id)
    if msg is None:
        raise UserFacingError("This message no longer exists.")
    return msg


def _already(session: Session, message_id: int) -> str:
    msg = message(session, message_id)
    return f"Nothing changed: this message is {LOOP_STATE_LABELS[LoopState(msg.status)]} (or was edited meanwhile)."


def _after_change(session: Session, msg: LoopMessage, user: str, verb: str) -> None:
    fb = queries.feedback_by_id(session=session, feedback_id=msg.feedback_id)
    if fb is not None:
        detail = {"stage": msg.stage, "verb": verb}
        queries.add_event(session=session, feedback=fb, kind=f"loop_{verb}", actor=user, detail=detail)
    _enqueue_draft(session, msg)
    enqueue_card_update(session, msg.feedback_id, f"loop:{msg.id}:{msg.rev}")


def retry(deps: Deps, item_id: int) -> str:
    """App Home's Retry on a dead or failed outbox row: fresh attempts now; a failed customer message re-queues."""
    with deps.transaction() as session:
        item = loops.retry_outbox(session=session, item_id=item_id, now=deps.now())
        if item is None:
            raise UserFacingError("That delivery is no longer stuck; nothing to retry.")
        if item.kind == Kind.LOOP_SEND:
            values = {"status": LoopState.QUEUED.value, "error": None}
            loops.move_loop_message(session=session, message_id=int(item.payload["message_id"]), rev=None,
                                    from_states=[LoopState.FAILED], values=values)  # fmt: skip
    return f"Retrying {item.kind} ({item.key})"


def mark_sent(session: Session, msg: LoopMessage, ts: str) -> None:
    """The customer message landed (or was found after a crash): recorded with the card and DM updates."""
    msg.status, msg.sent_ts, msg.error = LoopState.SENT.value, ts, None
    msg.rev += 1
    fb = queries.feedback_by_id(session=session, feedback_id=msg.feedback_id)
    if fb is not None:
        queries.add_event(session=session, feedback=fb, kind="loop_sent", actor=None, detail={"stage": msg.stage})
    if msg.draft_ts:
        _enqueue_draft(session, msg)
    enqueue_card_update(session, msg.feedback_id, f"loop:{msg.id}:sent")


def mark_failed(session: Session, msg: LoopMessage, error: str) -> None:
    """Slack refused the message for good (channel archived, bot removed): shown on the card and in App Home."""
    msg.status, msg.error = LoopState.FAILED.value, error[:500]
    msg.rev += 1
    if msg.draft_ts:
        _enqueue_draft(session, msg)
    enqueue_card_update(session, msg.feedback_id, f"loop:{msg.id}:failed")


def draft_view(deps: Deps, session: Session, msg: LoopMessage) -> LoopDraft:
    """What the approval DM shows for one message."""
    fb = queries.feedback_by_id(session=session, feedback_id=msg.feedback_id)
    issue = loops.linear_issue(session=session, issue_id=msg.issue_id)
    now, settings = deps.now(), deps.settings
    when = None
    if msg.status == LoopState.DRAFT:
        due = settings.quiet_hours().next_allowed(now, settings.feedback_tz)
        when = f"quiet hours now: it would go out {due:%a %d %b %H:%M} UTC" if due > now else "at once"
    decided = None
    if msg.decided_by:
        verb = DECIDED.get(LoopState(msg.status), "decided")
        decided = f"{verb} by <@{msg.decided_by}> at {msg.decided_at:%Y-%m-%d %H:%M} UTC"
    return LoopDraft(
        message_id=msg.id, ref=CardRef(msg.id, msg.rev).encode(ref_secret(settings)), stage=msg.stage,
        status=state_label(session, msg, now), issue=(issue.identifier if issue else None) or msg.issue_id,
        issue_url=issue.url if issue else None, customer=requester(fb) if fb else "",
        channel_id=msg.channel_id, permalink=fb.permalink if fb else None, text=msg.text, note=msg.note,
        when=when, decided=decided,
    )  # fmt: skip


def home_rows(deps: Deps, session: Session) -> list[dict[str, Any]]:
    """App Home's "Loops to close" (drafts, tasks, failures) and "Failed deliveries" with Retry."""
    drafts = [draft_view(deps, session, m) for m in loops.open_loop_messages(session=session, limit=6)]
    secret = retry_secret(deps.settings)
    stuck = [
        (CardRef(item.id, 0).encode(secret), item.key, escape(item.last_error or item.status))
        for item in loops.stuck_outbox(session=session, limit=6)
    ]
    cut = deps.now() - timedelta(days=deps.settings.feedback_loop_sla_days)
    late = [
        f"#{fb.id} · {requester(fb)} · {issue.identifier or issue.id} shipped "
        f"{(deps.now() - issue.completed_at).days if issue.completed_at else '?'} days ago"
        for fb, issue in loops.loops_overdue(session=session, completed_before=cut)[:6]
    ]
    return blocks.home_rows(drafts, stuck, late)
