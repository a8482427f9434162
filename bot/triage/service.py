"""Triage: staff decisions on a card. Each is one transaction with its audit event, card update and side effects."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.accounts.service import assign, demand, organisation, refresh_demand
from bot.capture.service import enqueue_card_update, promote
from bot.deps import Deps
from bot.domain import (
    CLOSED,
    IMPACTS,
    OPEN,
    CardData,
    CardRef,
    FeedbackType,
    Kind,
    LinkView,
    LoopLine,
    LoopStage,
    Status,
    TriageView,
    UserFacingError,
)  # fmt: skip
from bot.linear.client import parse_issue_ref
from bot.routing.service import create_issue, link_issue
from bot.slack.ids import Action
from bot.slack.kit import name
from bot.suggest.service import similar_items, suggested_view
from storage import loops, queries
from storage.db import utcnow
from storage.models import ACTIVE_LINKS, Feedback, LinkStatus, LoopMessage, LoopState, OutboxStatus

log = logging.getLogger(__name__)
NOT_AN_OWNER = "Pick an owner from our own team."
KEYS = ("linear.create", "linear.link")
SNAPSHOT = ("status", "type", "theme", "impact", "owner_id", "reason", "duplicate_of_id", "account_id")


class StaleCard(UserFacingError):
    """The card changed since it was rendered (another click got there first)."""


def _load(session: Session, ref: CardRef) -> Feedback:
    """Claims the card revision first (a write, so concurrent clicks serialise), then loads the row."""
    claimed = queries.claim_rev(session=session, feedback_id=ref.feedback_id, rev=ref.rev)
    fb = queries.feedback_by_id(session=session, feedback_id=ref.feedback_id)
    if fb is None:
        raise UserFacingError(f"Feedback #{ref.feedback_id} no longer exists.")
    if not claimed:
        raise StaleCard(f"Feedback #{fb.id} changed since this card was shown; it has been refreshed, try again.")
    session.refresh(fb)
    return fb


def _set_choice(field: str, allowed: Callable[[Session], list[str]]) -> Callable[..., str]:
    def apply(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
        if value not in allowed(session):
            raise UserFacingError(f"{value!r} is not a known {field}.")
        setattr(fb, field, value)
        if fb.status in {Status.NEW, Status.MAYBE}:
            fb.status = Status.TRIAGED
        return f"{field.capitalize()} set to {value}"

    return apply


def _assign(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not value:  # checked against Slack in apply(), before the transaction
        raise UserFacingError(NOT_AN_OWNER)
    fb.owner_id = value
    return f"Assigned to <@{value}>"


def _status(status: Status, text: str) -> Callable[..., str]:
    def apply(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
        fb.status = status
        return text

    return apply


def _wont_do(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not value or not value.strip():
        raise UserFacingError("Say why this won't be done.")
    fb.status, fb.reason = Status.WONT_DO, value.strip()
    return "Marked won't do"


def _route(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not deps.settings.linear_ready():
        raise UserFacingError("Linear is not configured: set LINEAR_API_KEY and LINEAR_TEAM_ID.")
    active = [link for link in queries.links_for(session=session, feedback_id=fb.id) if link.status in ACTIVE_LINKS]
    if active:
        raise UserFacingError(f"Feedback #{fb.id} is already routed to {active[0].identifier or 'Linear'}.")
    create_issue(session, fb, str(uuid.uuid4()))
    fb.status = Status.LINEAR
    return "Routed to Linear"


def _link(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not deps.settings.linear_ready():
        raise UserFacingError("Linear is not configured: set LINEAR_API_KEY and LINEAR_TEAM_ID.")
    try:
        ref = parse_issue_ref(value or "")
    except ValueError as exc:
        raise UserFacingError(str(exc)) from exc
    link_issue(session, fb, ref, via="link")
    fb.status = Status.LINEAR
    return f"Linked to Linear issue {ref}"


def _duplicate(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    raw = (value or "").strip().lstrip("#")
    original = queries.feedback_by_id(session=session, feedback_id=int(raw)) if raw.isdigit() else None
    seen = set()
    while original is not None and original.duplicate_of_id and original.id not in seen:
        seen.add(original.id)
        original = queries.feedback_by_id(session=session, feedback_id=original.duplicate_of_id)
    if original is None or original.id == fb.id:
        raise UserFacingError(f"Pick another existing item as the original (got {value!r}).")
    fb.status, fb.duplicate_of_id = Status.DUPLICATE, original.id
    for link in queries.links_for(session=session, feedback_id=original.id):
        if link.status == LinkStatus.LINKED:
            link_issue(session, fb, link.identifier or link.issue_id, via="duplicate")
    enqueue_card_update(session, original.id, f"dup:{fb.id}:{fb.rev}")
    return f"Marked duplicate of #{original.id}"


def _promote(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if fb.status != Status.MAYBE:
        raise UserFacingError(f"Feedback #{fb.id} is not in the maybe list.")
    promote(session, deps.settings, fb)
    return "Promoted to feedback"


def _themes(session: Session) -> list[str]:
    return [t.name for t in queries.themes(session=session)]


HANDLERS: dict[Action, Callable[..., str]] = {
    Action.TYPE: _set_choice("type", lambda s: [t.value for t in FeedbackType]),
    Action.THEME: _set_choice("theme", _themes),
    Action.IMPACT: _set_choice("impact", lambda s: list(IMPACTS)),
    Action.OWNER: _assign,
    Action.ROUTE: _route,
    Action.LINK: _link,
    Action.ROADMAP: _status(Status.ROADMAP, "Added to the roadmap backlog"),
    Action.QUICK_WIN: _status(Status.QUICK_WIN, "Marked quick win"),
    Action.WONT_DO: _wont_do,
    Action.DUPLICATE: _duplicate,
    Action.NOT_FEEDBACK: _status(Status.NOT_FEEDBACK, "Dismissed as not feedback"),
    Action.PROMOTE: _promote,
    Action.ACCOUNT: lambda session, deps, fb, user, value: assign(session, fb, value),
}
LEARNS = {Action.TYPE, Action.THEME, Action.NOT_FEEDBACK, Action.PROMOTE}


def _record(
    session: Session, fb: Feedback, kind: str, user: str, before: dict[str, Any], text: str, links_before: set[int]
) -> None:
    new_links = [k.id for k in queries.links_for(session=session, feedback_id=fb.id) if k.id not in links_before]
    event = queries.add_event(
        session=session, feedback=fb, kind=kind, actor=user, detail={"text": text, "before": before, "links": new_links}
    )
    fb.triaged_by, fb.triaged_at = user, utcnow()
    enqueue_card_update(session, fb.id, f"ev:{event.id}")
    payload = {"feedback_id": fb.id, "text": f"<@{user}>: {text}"}
    queries.enqueue(session=session, key=f"audit:{event.id}", kind=Kind.AUDIT, payload=payload)


def apply(deps: Deps, ref: CardRef, action: Action, user: str, value: str | None = None) -> str:
    """Runs one triage action; a stale card is refreshed and refused, any refusal changes nothing."""
    handler = HANDLERS.get(action)
    if handler is None:
        raise UserFacingError(f"Unknown triage action {action!r}.")
    if action is Action.OWNER and not (value and deps.slack.is_member(value)):  # Slack before the write lock
        raise UserFacingError(NOT_AN_OWNER)
    try:
        with deps.transaction() as session:
            fb = _load(session, ref)
            if fb.status in CLOSED:
                raise UserFacingError(f"Feedback #{fb.id} is closed ({fb.status}); use Undo first.")
            before = {f: getattr(fb, f) for f in SNAPSHOT}
            links_before = {link.id for link in queries.links_for(session=session, feedback_id=fb.id)}
            text = handler(session, deps, fb, user, value)
            changed = {f: v for f, v in before.items() if getattr(fb, f) != v}  # Undo restores only these
            _record(session, fb, action.value, user, changed, text, links_before)
    except StaleCard:
        with deps.transaction() as session:
            current = queries.feedback_by_id(session=session, feedback_id=ref.feedback_id)
            if current is not None:
                enqueue_card_update(session, current.id, f"stale:{ref.rev}:{utcnow().timestamp()}")
        raise
    log.info("feedback %s: %s by %s", ref.feedback_id, text, user)
    if action in LEARNS:
        _learn(deps, ref.feedback_id)
    return text


def _learn(deps: Deps, feedback_id: int) -> None:
    """Training happens after the commit, from the row as stored, so a rolled-back click teaches nothing."""
    if deps.suggestions is None:
        if deps.settings.feedback_suggestions:  # the model lives in the worker process (`run --role web`)
            with deps.transaction() as session:
                key = f"learn:{feedback_id}:{uuid.uuid4().hex[:8]}"
                queries.enqueue(session=session, key=key, kind=Kind.LEARN, payload={"feedback_id": feedback_id})
        return
    with deps.transaction() as session:
        fb = queries.feedback_by_id(session=session, feedback_id=feedback_id)
        if fb is not None:
            deps.suggestions.learn(fb)


def undo(deps: Deps, ref: CardRef, user: str) -> str:
    """Reverts the last triage action: fields restored, unsent Linear calls cancelled, sent ones unlinked."""
    with deps.transaction() as session:
        fb = _load(session, ref)
        event = queries.last_triage_event(session=session, feedback_id=fb.id)
        if event is None:
            raise UserFacingError("There is nothing to undo on this card.")
        linked = {k.issue_id for k in queries.links_for(session=session, feedback_id=fb.id) if k.status == "linked"}
        for field, value in event.detail.get("before", {}).items():
            setattr(fb, field, value)
        for link in filter(
            None, (queries.link_by_id(session=session, link_id=i) for i in event.detail.get("links", []))
        ):
            cancelled = any([queries.cancel_outbox(session=session, key=f"{k}:{link.id}") for k in KEYS])
            pending = cancelled and link.status == LinkStatus.PENDING
            link.status = LinkStatus.CANCELLED if pending else LinkStatus.UNLINKED
        refresh_demand(session, linked)  # the account or the link may have changed: the Linear comment follows
        event.detail = {**event.detail, "undone": True}
        text = f"Undid: {event.detail.get('text', event.kind)}"
        _record(session, fb, "undo", user, {}, text, set())
    _learn(deps, ref.feedback_id)
    return text


def modal_candidates(deps: Deps, ref: CardRef) -> list[tuple[int, str]]:
    """Duplicate-of choices: the card's similar items, then recent open items."""
    with deps.transaction() as session:
        fb = queries.feedback_by_id(session=session, feedback_id=ref.feedback_id)
        if fb is None:
            raise UserFacingError(f"Feedback #{ref.feedback_id} no longer exists.")
        ids = [int(h["id"]) for h in fb.similar or []]
        recent = queries.feedback_list(session=session, statuses=list(OPEN), oldest_first=False, limit=20)
        ids += [r.id for r in recent if r.id not in ids]
        items = [queries.feedback_by_id(session=session, feedback_id=i) for i in ids if i != fb.id]
        return [(i.id, i.text) for i in items if i is not None][:20]


# --- what a card shows -----------------------------------------------------------------------------

LINK_NOTES = {LinkStatus.PENDING: "sending to Linear…", LinkStatus.UNLINKED: "unlinked"}


def _author(fb: Feedback) -> str:
    """Slack mentions for known users; free text (typed by staff or from a profile) escaped."""
    label = name(fb.customer or fb.author_name or "") or None
    if label and fb.author_user_id:
        return f"{label} (<@{fb.author_user_id}>)"
    if fb.author_user_id:
        return f"<@{fb.author_user_id}>"
    return label or "unknown"


def who(fb: Feedback) -> str:
    """Short customer label for lists."""
    return _author(fb)


LOOP_STATE_LABELS = {
    LoopState.DRAFT: "waiting for approval",
    LoopState.QUEUED: "approved, sending",
    LoopState.SENT: "told",
    LoopState.SKIPPED: "skipped",
    LoopState.TASK: "owner to tell them (no Slack thread)",
    LoopState.TOLD: "told by hand",
    LoopState.FAILED: "failed",
}

STAGE_LABELS = {LoopStage.UPDATE: "started", LoopStage.RESOLUTION: "shipped", LoopStage.CANCELED: "canceled"}


def state_label(session: Session, msg: LoopMessage, now: datetime) -> str:
    """Where one message stands, as staff read it (quiet hours and dead deliveries included)."""
    if msg.status == LoopState.QUEUED:
        item = queries.outbox_by_key(session=session, key=f"loop.send:{msg.id}")
        if item is not None and item.status in (OutboxStatus.DEAD, OutboxStatus.FAILED):
            return "failed (see App Home)"
        if msg.send_after and msg.send_after > now:
            return f"quiet hours, goes out {msg.send_after:%a %d %b %H:%M} UTC"
    return LOOP_STATE_LABELS[LoopState(msg.status)]


def loop_lines(session: Session, fbs: list[Feedback], now: datetime, sla_days: float) -> list[LoopLine]:
    """Each requester's messages for a card; a requester not told `sla_days` after the issue shipped is flagged."""
    by_id = {fb.id: fb for fb in fbs}
    cut = now - timedelta(days=sla_days)
    overdue = {
        fb.id
        for fb, _ in loops.loops_overdue(session=session, completed_before=cut, feedback_ids=list(by_id))
        if fb.id in by_id
    }
    lines, told = [], set()
    for msg in loops.loop_messages(session=session, feedback_ids=list(by_id)):
        label = f"{STAGE_LABELS[LoopStage(msg.stage)]}: {state_label(session, msg, now)}"
        late = msg.feedback_id in overdue and msg.stage == LoopStage.RESOLUTION
        lines.append(LoopLine(requester(by_id[msg.feedback_id]), msg.stage, label, overdue=late))
        told.add(msg.feedback_id) if late else None
    for fid in sorted(overdue - told):
        lines.append(LoopLine(requester(by_id[fid]), LoopStage.RESOLUTION, "shipped: not told yet", overdue=True))
    return lines


def requester(fb: Feedback) -> str:
    """A requester's name as staff see it (plain text, escaped)."""
    return name(fb.author_name or fb.customer or "") or f"item #{fb.id}"


def triage_view(session: Session, fb: Feedback, secret: str, *, loop_sla_days: float = 3.0) -> TriageView:
    """Decisions, Linear links with demand, requesters and the last action, for cards and App Home."""
    links, link_rows = [], queries.links_for(session=session, feedback_id=fb.id)
    for link in link_rows:
        linked = link.status == LinkStatus.LINKED
        links.append(
            LinkView(
                identifier=link.identifier or "Linear issue",
                url=link.url,
                linked=linked,
                state=link.state_name,
                demand=queries.demand(session=session, issue_id=link.issue_id) if linked else 0,
                reach=demand(session, link.issue_id).label() if linked else None,
                note=LINK_NOTES.get(LinkStatus(link.status)),
                error=(link.error or "see logs") if link.status == LinkStatus.FAILED else None,
            )
        )
    dups = list(queries.duplicates_of(session=session, feedback_id=fb.id))
    requesters = [_author(d) for d in dups]
    last = queries.last_triage_event(session=session, feedback_id=fb.id)
    last_text = None
    if last is not None:
        last_text = f"{last.detail.get('text', last.kind)} by <@{last.actor}> at {last.created_at:%Y-%m-%d %H:%M} UTC"
    return TriageView(
        ref=CardRef(fb.id, fb.rev).encode(secret),
        type=fb.type,
        theme=fb.theme,
        impact=fb.impact,
        owner_id=fb.owner_id,
        reason=fb.reason,
        duplicate_of=fb.duplicate_of_id,
        links=links,
        requesters=requesters,
        last_action=last_text,
        themes=[t.name for t in queries.themes(session=session)],
        can_undo=last is not None,
        routed=any(link.status in ACTIVE_LINKS for link in link_rows),
        loop=loop_lines(session, [fb, *dups], utcnow(), loop_sla_days),
    )


def card_data(
    session: Session,
    fb: Feedback,
    note: str | None = None,
    secret: str | None = None,
    *,
    loop_sla_days: float = 3.0,
) -> CardData:
    """Plain values for blocks.card."""
    org = organisation(session, fb)
    return CardData(
        feedback_id=fb.id,
        text=fb.text,
        author=_author(fb),
        organisation=org,
        source=fb.source,
        method=fb.capture_method,
        permalink=fb.permalink,
        channel_id=fb.channel_id,
        captured_by=fb.captured_by,
        status=fb.status,
        tags=list(fb.tags),
        context=fb.context,
        type_hint=fb.type_hint,
        deleted=fb.deleted_at is not None,
        edited=fb.edited_at is not None,
        suggested=suggested_view(fb, session),
        suggestion_note=note,
        similar=similar_items(session, fb),
        triage=triage_view(session, fb, secret, loop_sla_days=loop_sla_days) if secret is not None else None,
    )
