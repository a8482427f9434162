"""What a triage card shows for a row: the row itself, its suggestion, similar items and their Linear issues."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.domain import CardData, CardRef, LinkView, SimilarItem, Suggested, TriageView
from bot.triage.blocks import escape
from storage import queries
from storage.models import Feedback


def _author(fb: Feedback) -> str:
    """Slack mentions for known users; free text (typed by staff or from a profile) escaped."""
    name = escape(fb.customer or fb.author_name or "") or None
    if name and fb.author_user_id:
        return f"{name} (<@{fb.author_user_id}>)"
    if fb.author_user_id:
        return f"<@{fb.author_user_id}>"
    return name or "unknown"


def _suggested(fb: Feedback) -> Suggested | None:
    if fb.suggested_type is None:
        return None
    return Suggested(
        type=fb.suggested_type,
        type_confidence=fb.type_confidence or 0.0,
        theme=fb.suggested_theme,
        theme_confidence=fb.theme_confidence or 0.0,
        impact=fb.suggested_impact or "Low",
        feedback_score=fb.feedback_score if fb.feedback_score is not None else 1.0,
    )


def similar_items(session: Session, fb: Feedback) -> list[SimilarItem]:
    """The stored similar hits, resolved to text and the Linear issue each was routed to."""
    items = []
    for hit in fb.similar or []:
        other = queries.feedback_by_id(session=session, feedback_id=int(hit["id"]))
        if other is None:
            continue
        link = queries.first_link(session=session, feedback_id=other.id)
        items.append(
            SimilarItem(
                feedback_id=other.id,
                score=float(hit["score"]),
                duplicate=bool(hit["duplicate"]),
                text=other.text,
                linear=link.identifier if link else None,
                linear_url=link.url if link else None,
            )
        )
    return items


def who(fb: Feedback) -> str:
    """Short customer label for lists."""
    return _author(fb)


def triage_view(session: Session, fb: Feedback, secret: str) -> TriageView:
    """Decisions, Linear links with demand, requesters and the last action, for cards and App Home."""
    links = []
    for link in queries.links_for(session=session, feedback_id=fb.id):
        demand = queries.demand(session=session, issue_id=link.issue_id) if link.status == "linked" else 0
        links.append(
            LinkView(
                identifier=link.identifier or "Linear issue",
                url=link.url,
                status=link.status,
                state=link.state_name,
                demand=demand,
                error=link.error,
            )
        )
    requesters = [_author(d) for d in queries.duplicates_of(session=session, feedback_id=fb.id)]
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
    )


def card_data(session: Session, fb: Feedback, note: str | None = None, secret: str | None = None) -> CardData:
    """Plain values for blocks.card."""
    org = "external" if fb.is_external else "internal"
    if fb.author_team_id:
        org = f"{org} · {fb.author_team_id}"
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
        suggested=_suggested(fb),
        suggestion_note=note,
        similar=similar_items(session, fb),
        triage=triage_view(session, fb, secret) if secret is not None else None,
    )
