"""What a triage card shows for a row: the row itself, its suggestion, similar items and their Linear issues."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.domain import CardData, SimilarItem, Suggested
from storage import queries
from storage.models import Feedback


def _author(fb: Feedback) -> str:
    if fb.customer and fb.author_user_id:
        return f"{fb.customer} (<@{fb.author_user_id}>)"
    if fb.author_user_id:
        return f"<@{fb.author_user_id}>"
    return fb.customer or fb.author_name or "unknown"


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


def card_data(session: Session, fb: Feedback, note: str | None = None) -> CardData:
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
    )
