"""Triage: staff decisions on a card. Each is one transaction with its audit event, card update and side effects."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.domain import CLOSED, IMPACTS, CardRef, FeedbackType, Status, UserFacingError
from bot.linear.client import parse_issue_ref
from bot.triage.blocks import Action
from storage import queries
from storage.db import utcnow
from storage.models import Feedback, LinearLink

log = logging.getLogger(__name__)
SNAPSHOT = ("status", "type", "theme", "impact", "owner_id", "reason", "duplicate_of_id")
NOT_STAFF = "Only members of the team that installed Feedback Loop can triage feedback."


class StaleCard(UserFacingError):
    """The card changed since it was rendered (another click got there first)."""


def require_triager(deps: Deps, user_id: str, team_id: str | None) -> None:
    """Full members of the installing workspace, and of FEEDBACK_STAFF_USERGROUP when it is set."""
    if (team_id and team_id != deps.gateway.team_id) or not deps.gateway.is_staff(user_id, team_id):
        raise UserFacingError(NOT_STAFF)
    group = deps.settings.feedback_staff_usergroup
    if group and user_id not in deps.gateway.usergroup_members(group):
        raise UserFacingError(f"Only members of the staff group <!subteam^{group}> can triage feedback.")


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
        if fb.status in {Status.NEW.value, Status.MAYBE.value}:
            fb.status = Status.TRIAGED.value
        return f"{field.capitalize()} set to {value}"

    return apply


def _assign(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not value or not deps.gateway.is_staff(value):
        raise UserFacingError("Pick an owner from our own team.")
    fb.owner_id = value
    return f"Assigned to <@{value}>"


def _status(status: Status, text: str) -> Callable[..., str]:
    def apply(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
        fb.status = status.value
        return text

    return apply


def _wont_do(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not value or not value.strip():
        raise UserFacingError("Say why this won't be done.")
    fb.status, fb.reason = Status.WONT_DO.value, value.strip()
    return "Marked won't do"


def _route(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not deps.settings.linear_ready():
        raise UserFacingError("Linear is not configured: set LINEAR_API_KEY and LINEAR_TEAM_ID.")
    active = [
        link for link in queries.links_for(session=session, feedback_id=fb.id) if link.status in {"pending", "linked"}
    ]
    if active:
        raise UserFacingError(f"Feedback #{fb.id} is already routed to {active[0].identifier or 'Linear'}.")
    link = queries.add_link(
        session=session, link=LinearLink(feedback_id=fb.id, issue_id=str(uuid.uuid4()), via="create", status="pending")
    )
    queries.enqueue(
        session=session,
        key=f"linear.create:{link.id}",
        kind="linear.create",
        payload={"link_id": link.id, "issue_id": link.issue_id},
    )
    fb.status = Status.LINEAR.value
    return "Routed to Linear"


def _link(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if not deps.settings.linear_ready():
        raise UserFacingError("Linear is not configured: set LINEAR_API_KEY and LINEAR_TEAM_ID.")
    try:
        ref = parse_issue_ref(value or "")
    except ValueError as exc:
        raise UserFacingError(str(exc)) from exc
    link_issue(session, fb, ref, via="link")
    fb.status = Status.LINEAR.value
    return f"Linked to Linear issue {ref}"


def link_issue(session: Session, fb: Feedback, ref: str, *, via: str) -> LinearLink:
    """A pending link to an existing issue; the worker resolves it and attaches the customer's message."""
    link = queries.add_link(
        session=session, link=LinearLink(feedback_id=fb.id, issue_id=ref, identifier=ref, via=via, status="pending")
    )
    queries.enqueue(session=session, key=f"linear.link:{link.id}", kind="linear.link", payload={"link_id": link.id})
    return link


def _duplicate(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    raw = (value or "").strip().lstrip("#")
    original = queries.feedback_by_id(session=session, feedback_id=int(raw)) if raw.isdigit() else None
    seen = set()
    while original is not None and original.duplicate_of_id and original.id not in seen:
        seen.add(original.id)
        original = queries.feedback_by_id(session=session, feedback_id=original.duplicate_of_id)
    if original is None or original.id == fb.id:
        raise UserFacingError(f"Pick another existing item as the original (got {value!r}).")
    fb.status, fb.duplicate_of_id = Status.DUPLICATE.value, original.id
    for link in queries.links_for(session=session, feedback_id=original.id):
        if link.status == "linked":
            link_issue(session, fb, link.identifier or link.issue_id, via="duplicate")
    _refresh(session, original, f"dup:{fb.id}:{fb.rev}")
    return f"Marked duplicate of #{original.id}"


def _promote(session: Session, deps: Deps, fb: Feedback, user: str, value: str | None) -> str:
    if fb.status != Status.MAYBE.value:
        raise UserFacingError(f"Feedback #{fb.id} is not in the maybe list.")
    fb.status = Status.NEW.value
    queries.enqueue(
        session=session, key=f"card:{fb.id}:promoted", kind="card", payload={"feedback_id": fb.id, "promoted": True}
    )
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
}
LEARNS = {Action.TYPE, Action.THEME, Action.NOT_FEEDBACK, Action.PROMOTE}


def _refresh(session: Session, fb: Feedback, reason: str) -> None:
    queries.enqueue(
        session=session, key=f"card_update:{fb.id}:{reason}", kind="card_update", payload={"feedback_id": fb.id}
    )


def _record(
    session: Session, fb: Feedback, kind: str, user: str, before: dict[str, Any], text: str, links_before: set[int]
) -> None:
    new_links = [
        link.id for link in queries.links_for(session=session, feedback_id=fb.id) if link.id not in links_before
    ]
    event = queries.add_event(
        session=session, feedback=fb, kind=kind, actor=user, detail={"text": text, "before": before, "links": new_links}
    )
    fb.triaged_by, fb.triaged_at = user, utcnow()
    _refresh(session, fb, f"ev:{event.id}")
    queries.enqueue(
        session=session,
        key=f"audit:{event.id}",
        kind="audit",
        payload={"feedback_id": fb.id, "text": f"<@{user}>: {text}"},
    )


def apply(deps: Deps, ref: CardRef, action: Action, user: str, value: str | None = None) -> str:
    """Runs one triage action; a stale card is refreshed and refused, any refusal changes nothing."""
    handler = HANDLERS.get(action)
    if handler is None:
        raise UserFacingError(f"Unknown triage action {action!r}.")
    try:
        with deps.transaction() as session:
            fb = _load(session, ref)
            if fb.status in CLOSED:
                raise UserFacingError(f"Feedback #{fb.id} is closed ({fb.status}); use Undo first.")
            before = {f: getattr(fb, f) for f in SNAPSHOT}
            links_before = {link.id for link in queries.links_for(session=session, feedback_id=fb.id)}
            text = handler(session, deps, fb, user, value)
            _record(session, fb, action.value, user, before, text, links_before)
    except StaleCard:
        with deps.transaction() as session:
            current = queries.feedback_by_id(session=session, feedback_id=ref.feedback_id)
            if current is not None:
                _refresh(session, current, f"stale:{ref.rev}:{utcnow().timestamp()}")
        raise
    log.info("feedback %s: %s by %s", ref.feedback_id, text, user)
    if action in LEARNS:
        _learn(deps, ref.feedback_id)
    return text


def _learn(deps: Deps, feedback_id: int) -> None:
    """Training happens after the commit, from the row as stored, so a rolled-back click teaches nothing."""
    if deps.worker.suggestions is None:
        return
    with deps.transaction() as session:
        fb = queries.feedback_by_id(session=session, feedback_id=feedback_id)
        if fb is not None:
            deps.worker.suggestions.learn(fb)


def undo(deps: Deps, ref: CardRef, user: str) -> str:
    """Reverts the last triage action: fields restored, unsent Linear calls cancelled, sent ones unlinked."""
    with deps.transaction() as session:
        fb = _load(session, ref)
        event = queries.last_triage_event(session=session, feedback_id=fb.id)
        if event is None:
            raise UserFacingError("There is nothing to undo on this card.")
        for field, value in event.detail.get("before", {}).items():
            setattr(fb, field, value)
        for link_id in event.detail.get("links", []):
            link = queries.link_by_id(session=session, link_id=link_id)
            if link is None:
                continue
            keys = (f"linear.create:{link.id}", f"linear.link:{link.id}")
            cancelled = any([queries.cancel_outbox(session=session, key=k) for k in keys])
            link.status = "cancelled" if cancelled and link.status == "pending" else "unlinked"
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
        recent = queries.feedback_list(
            session=session, statuses=["new", "triaged", "in Linear", "roadmap"], oldest_first=False, limit=20
        )
        ids += [r.id for r in recent if r.id not in ids]
        items = [queries.feedback_by_id(session=session, feedback_id=i) for i in ids if i != fb.id]
        return [(i.id, i.text) for i in items if i is not None][:20]
