"""An item's text is its first message plus the messages joined into it; edits and deletions of either keep
the others. The joined parts live in the audit trail (joined:/rejoined:/unjoined: events), so nothing new is
stored on the row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage import queries
from storage.models import Feedback

SEPARATOR = "\n\n"


def parts(session: Session, fb: Feedback) -> dict[str, str]:
    """Joined message ts -> its current text, in the order they joined."""
    current: dict[str, str] = {}
    for event in queries.join_events(session=session, feedback_id=fb.id):
        kind, _, ts = event.kind.partition(":")
        if kind == "unjoined":
            current.pop(ts, None)
        else:
            current[ts] = str(event.detail.get("text", ""))
    return current


def root_text(fb: Feedback, joined: dict[str, str]) -> str:
    """The first message's text: the item's text without the joined parts (all of it if they do not match,
    e.g. after truncation, so nothing is ever dropped)."""
    suffix = "".join(SEPARATOR + text for text in joined.values())
    return fb.text[: -len(suffix)] if suffix and fb.text.endswith(suffix) else fb.text


def compose(root: str, joined: dict[str, str]) -> str:
    """The whole conversation as the card and the model see it."""
    return SEPARATOR.join([root, *joined.values()])
