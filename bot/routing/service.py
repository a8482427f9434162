"""Routing to Linear: links between items and issues, and how an item reads in Linear (plain Markdown)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.orm import Session

from bot.accounts.service import refresh_demand
from bot.capture.service import enqueue_card_update
from bot.domain import Kind
from bot.slack.kit import BIDI_CONTROLS, to_markdown
from storage import queries
from storage.models import Feedback, LinearLink, LinkStatus


def link_issue(session: Session, fb: Feedback, ref: str, *, via: str) -> LinearLink:
    """A pending link to an existing issue; the worker resolves it and attaches the customer's message."""
    link = queries.add_link(
        session=session,
        link=LinearLink(feedback_id=fb.id, issue_id=ref, identifier=ref, via=via, status=LinkStatus.PENDING),
    )
    queries.enqueue(session=session, key=f"linear.link:{link.id}", kind=Kind.LINEAR_LINK, payload={"link_id": link.id})
    return link


def create_issue(session: Session, fb: Feedback, issue_id: str) -> LinearLink:
    """A pending link under a UUID we chose, so retries and a second worker can never create two issues."""
    link = queries.add_link(
        session=session,
        link=LinearLink(feedback_id=fb.id, issue_id=issue_id, via="create", status=LinkStatus.PENDING),
    )
    payload = {"link_id": link.id, "issue_id": link.issue_id}
    queries.enqueue(session=session, key=f"linear.create:{link.id}", kind=Kind.LINEAR_CREATE, payload=payload)
    return link


def customer(fb: Feedback, names: Mapping[str, str] | None = None) -> str:
    """Who asked, as plain text (Linear shows no Slack mentions or entities); `names` resolves the author."""
    known = (names or {}).get(fb.author_user_id or "")
    name = (fb.customer or fb.author_name or known or "").translate(BIDI_CONTROLS).strip()
    if name and fb.author_user_id:
        return f"{name} (Slack user {fb.author_user_id})"
    return name or (f"Slack user {fb.author_user_id}" if fb.author_user_id else "unknown")


def issue_title(fb: Feedback, names: Mapping[str, str] | None = None) -> str:
    """`[Type] first line of the verbatim`, short enough for a Linear title."""
    text = to_markdown(fb.text, names)
    first = (text.splitlines() or ["Customer feedback"])[0].strip()
    kind = fb.type or fb.suggested_type or "Feedback"
    return f"[{kind}] {first[:120]}{'…' if len(first) > 120 else ''}"


def issue_description(fb: Feedback, names: Mapping[str, str] | None = None) -> str:
    """Markdown body: the customer's words quoted, who and where, context, and a link back to Slack."""
    quoted = "\n".join(f"> {line}" for line in to_markdown(fb.text, names).splitlines()) or "> (no text)"
    lines = [
        quoted,
        "",
        f"**Customer:** {customer(fb, names)}" + (f" ({fb.author_team_id})" if fb.author_team_id else ""),
        f"**Source:** {fb.source} · captured via {', '.join(fb.tags)}",
    ]
    if fb.context:
        lines.append(f"**Context:** {fb.context.translate(BIDI_CONTROLS)}")
    if fb.permalink:
        lines.append(f"**Original message:** {fb.permalink}")
    lines.append(f"\nFeedback #{fb.id}, routed from Slack by Feedback Loop.")
    return "\n".join(lines)


def refresh_after_import(session: Session, issues: set[str], items: set[int]) -> None:
    """After an account or contact import: the demand comments and the cards show the imported names and ARR."""
    refresh_demand(session, issues)
    stamp = uuid.uuid4().hex[:12]  # each import is a new reason to refresh the card
    for feedback_id in sorted(items):
        enqueue_card_update(session, feedback_id, f"import:{stamp}")
