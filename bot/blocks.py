"""Pure Block Kit builders and the ids Slack sends back to us; no I/O, no Slack SDK."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from bot.domain import SOURCES, CardData, FeedbackType

SECTION_LIMIT = 3000
VERBATIM_LIMIT = 2800
MODAL_TEXT_LIMIT = 3000


class Callback(StrEnum):
    """callback_ids of shortcuts and modals; manifest.yml uses the shortcut ones."""

    LOG_SHORTCUT = "log_feedback"
    GLOBAL_SHORTCUT = "feedback_global"
    LOG_MODAL = "log_feedback_modal"
    FEEDBACK_MODAL = "feedback_modal"


class Field(StrEnum):
    """block_id == action_id of every modal input, so state lookups are one name."""

    VERBATIM = "verbatim"
    CONTEXT = "context"
    SOURCE = "source"
    TYPE_HINT = "type_hint"
    CUSTOMER_TEXT = "customer_text"
    CUSTOMER_USER = "customer_user"


def truncate(text: str, limit: int) -> str:
    """Cuts on a character boundary and says so, because Slack rejects over-long text."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int = VERBATIM_LIMIT) -> str:
    """mrkdwn blockquote of the customer's words, safe within a section's 3000 chars."""
    body = truncate(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), limit)
    return "\n".join(f">{line}" for line in body.splitlines() or [""])


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}


def _plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def card(data: CardData) -> tuple[str, list[dict[str, Any]]]:
    """The triage card: verbatim, who and where from, how captured; fallback text for notifications."""
    header = f"{data.author} ({data.organisation})"
    status = "deleted by the customer" if data.deleted else data.status
    verbatim = quote(data.text) if data.text else "_(message text not available)_"
    link = f"<{data.permalink}|original message>" if data.permalink else "no link"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "verbatim", "text": _mrkdwn(f"*Feedback from {header}*\n{verbatim}")},
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    f"Source: {SOURCES.get(data.source, data.source)} · via {', '.join(data.tags) or data.method}"
                    f" · {link}" + (f" · in <#{data.channel_id}>" if data.channel_id else "")
                )
            ],
        },
    ]
    if data.context:
        blocks.append({"type": "section", "block_id": "context", "text": _mrkdwn(f"*Context*\n{data.context}")})
    facts = [f"*Status:* {status}", f"*Item:* #{data.feedback_id}"]
    if data.captured_by:
        facts.append(f"*Captured by:* <@{data.captured_by}>")
    if data.type_hint:
        facts.append(f"*Type hint:* {data.type_hint}")
    if data.edited:
        facts.append("*Edited* by the customer")
    blocks.append({"type": "section", "block_id": "facts", "fields": [_mrkdwn(f) for f in facts]})
    blocks.append({"type": "section", "block_id": "suggestion", "text": _mrkdwn(_suggestion_text(data))})
    if data.similar:
        blocks.append({"type": "section", "block_id": "similar", "text": _mrkdwn(_similar_text(data))})
    fallback = truncate(f"Feedback #{data.feedback_id} from {header}: {data.text}", 3000)
    return fallback, blocks


def _suggestion_text(data: CardData) -> str:
    s = data.suggested
    if s is None:
        return f"*Suggestion:* {data.suggestion_note or 'no suggestion'}"
    theme = f"{s.theme} ({s.theme_confidence:.0%})" if s.theme else "no clear theme"
    return (
        f"*Suggested:* {s.type} ({s.type_confidence:.0%}) · theme {theme} · impact {s.impact}"
        f" · feedback score {s.feedback_score:.2f}"
    )


def _similar_text(data: CardData) -> str:
    lines = ["*Similar items*"]
    for item in data.similar[:5]:
        dup = " · *possible duplicate*" if item.duplicate else ""
        linear = (
            f" → <{item.linear_url}|{item.linear}>" if item.linear_url else (f" → {item.linear}" if item.linear else "")
        )
        lines.append(f"• #{item.feedback_id} ({item.score:.2f}){dup}{linear}: {truncate(item.text, 200)}")
    return "\n".join(lines)


def _input(
    field: Field, label: str, element: dict[str, Any], *, optional: bool = False, hint: str | None = None
) -> dict[str, Any]:
    block = {
        "type": "input",
        "block_id": field.value,
        "label": _plain(label, 2000),
        "element": {**element, "action_id": field.value},
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _text_input(initial: str | None = None, *, multiline: bool = True) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline, "max_length": MODAL_TEXT_LIMIT}
    if initial:
        el["initial_value"] = truncate(initial, MODAL_TEXT_LIMIT)
    return el


def _select(options: dict[str, str], initial: str | None = None) -> dict[str, Any]:
    opts = [{"text": _plain(label, 75), "value": value} for value, label in options.items()]
    el: dict[str, Any] = {"type": "static_select", "options": opts}
    if initial in options:
        el["initial_option"] = next(o for o in opts if o["value"] == initial)
    return el


TYPE_OPTIONS = {t.value: t.value for t in FeedbackType}


def log_modal(*, verbatim: str, author: str | None, permalink: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    """Message shortcut modal: the message is prefilled, staff add context, source and a type hint."""
    who = f"<@{author}>" if author else "unknown author"
    link = f" · <{permalink}|original>" if permalink else ""
    return {
        "type": "modal",
        "callback_id": Callback.LOG_MODAL.value,
        "title": _plain("Log as feedback", 24),
        "submit": _plain("Log", 24),
        "close": _plain("Cancel", 24),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": [
            {"type": "context", "elements": [_mrkdwn(f"From {who}{link}")]},
            _input(Field.VERBATIM, "Verbatim", _text_input(verbatim)),
            _input(
                Field.CONTEXT,
                "Context",
                _text_input(),
                hint="What was going on, who else cares, why it matters.",
            ),
            _input(Field.SOURCE, "Source", _select(SOURCES, "slack")),
            _input(Field.TYPE_HINT, "Type (hint)", _select(TYPE_OPTIONS), optional=True),
        ],
    }


def feedback_modal(*, metadata: dict[str, Any]) -> dict[str, Any]:
    """/feedback and the global shortcut: feedback heard outside Slack."""
    return {
        "type": "modal",
        "callback_id": Callback.FEEDBACK_MODAL.value,
        "title": _plain("Log feedback", 24),
        "submit": _plain("Log", 24),
        "close": _plain("Cancel", 24),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": [
            _input(Field.CUSTOMER_USER, "Customer (Slack user)", {"type": "users_select"}, optional=True),
            _input(
                Field.CUSTOMER_TEXT,
                "Customer (name and company)",
                _text_input(multiline=False),
                optional=True,
                hint="Fill one of the two customer fields.",
            ),
            _input(Field.SOURCE, "Source", _select({k: v for k, v in SOURCES.items() if k != "slack"})),
            _input(Field.VERBATIM, "Verbatim", _text_input(), hint="The customer's own words."),
            _input(Field.CONTEXT, "Context", _text_input()),
            _input(Field.TYPE_HINT, "Type (hint)", _select(TYPE_OPTIONS), optional=True),
        ],
    }


def home(items: list[tuple[int, str, str, str]]) -> dict[str, Any]:
    """App Home: the latest captured items (id, status, who, text)."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain("Feedback Loop", 150)}]
    if not items:
        blocks.append({"type": "section", "text": _mrkdwn("No feedback captured yet.")})
    for fid, status, who, text in items[:40]:
        blocks.append({"type": "section", "text": _mrkdwn(f"*#{fid}* · {status} · {who}\n{quote(text, 280)}")})
    return {"type": "home", "blocks": blocks}


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A one-message modal, for refusals and errors where there is no channel to answer in."""
    return {
        "type": "modal",
        "title": _plain(title, 24),
        "close": _plain("Close", 24),
        "blocks": [{"type": "section", "text": _mrkdwn(text)}],
    }
