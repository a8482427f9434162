"""The capture modals: "Log as feedback" on a message, and /feedback for feedback heard elsewhere."""

from __future__ import annotations

import json
from typing import Any

from bot.domain import SOURCES, FeedbackType
from bot.slack.ids import Callback, Field
from bot.slack.kit import input_block, mrkdwn, plain, select, text_input

TYPE_OPTIONS = {t.value: t.value for t in FeedbackType}


def log_modal(*, verbatim: str, author: str | None, permalink: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    """Message shortcut modal: the message is prefilled, staff add context, source and a type hint."""
    who = f"<@{author}>" if author else "unknown author"
    link = f" · <{permalink}|original>" if permalink else ""
    return {
        "type": "modal",
        "callback_id": Callback.LOG_MODAL.value,
        "title": plain("Log as feedback", 24),
        "submit": plain("Log", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": [
            {"type": "context", "elements": [mrkdwn(f"From {who}{link}")]},
            input_block(Field.VERBATIM, "Verbatim", text_input(verbatim)),
            input_block(
                Field.CONTEXT,
                "Context",
                text_input(),
                hint="What was going on, who else cares, why it matters.",
            ),
            input_block(Field.SOURCE, "Source", select(SOURCES, "slack")),
            input_block(Field.TYPE_HINT, "Type (hint)", select(TYPE_OPTIONS), optional=True),
        ],
    }


def feedback_modal(*, metadata: dict[str, Any], accounts: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """/feedback and the global shortcut: feedback heard outside Slack, for an account when one is picked."""
    modal: dict[str, Any] = {
        "type": "modal",
        "callback_id": Callback.FEEDBACK_MODAL.value,
        "title": plain("Log feedback", 24),
        "submit": plain("Log", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": [
            input_block(Field.CUSTOMER_USER, "Customer (Slack user)", {"type": "users_select"}, optional=True),
            input_block(
                Field.CUSTOMER_TEXT,
                "Customer (name and company)",
                text_input(multiline=False),
                optional=True,
                hint="Fill one of the two customer fields.",
            ),
            input_block(Field.SOURCE, "Source", select({k: v for k, v in SOURCES.items() if k != "slack"})),
            input_block(Field.VERBATIM, "Verbatim", text_input(), hint="The customer's own words."),
            input_block(Field.CONTEXT, "Context", text_input()),
            input_block(Field.TYPE_HINT, "Type (hint)", select(TYPE_OPTIONS), optional=True),
        ],
    }
    if accounts:
        picker = select({value: label[:75] for value, label in accounts[:100]})
        modal["blocks"].insert(2, input_block(Field.ACCOUNT, "Account", picker, optional=True))
    return modal
