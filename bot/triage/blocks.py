"""Pure Block Kit builders and the ids Slack sends back to us; no I/O, no Slack SDK."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from bot.domain import CLOSED, IMPACTS, SOURCES, CardData, FeedbackType, HomeItem, TriageView

SECTION_LIMIT = 3000
VERBATIM_LIMIT = 2800
MODAL_TEXT_LIMIT = 3000
HOME_BLOCK_LIMIT = 100


class Callback(StrEnum):
    """callback_ids of shortcuts and modals; manifest.yml uses the shortcut ones."""

    LOG_SHORTCUT = "log_feedback"
    GLOBAL_SHORTCUT = "feedback_global"
    LOG_MODAL = "log_feedback_modal"
    FEEDBACK_MODAL = "feedback_modal"


class Action(StrEnum):
    """action_ids of the triage controls (cards and App Home); one listener handles the `triage.` prefix."""

    TYPE = "triage.type"
    THEME = "triage.theme"
    IMPACT = "triage.impact"
    OWNER = "triage.owner"
    ROUTE = "triage.route_linear"
    LINK = "triage.link_linear"
    ROADMAP = "triage.roadmap"
    QUICK_WIN = "triage.quick_win"
    WONT_DO = "triage.wont_do"
    DUPLICATE = "triage.duplicate"
    NOT_FEEDBACK = "triage.not_feedback"
    UNDO = "triage.undo"
    PROMOTE = "triage.promote"
    HOME_FILTER = "home.filter"


MODAL_ACTIONS = {Action.LINK, Action.WONT_DO, Action.DUPLICATE}


class TriageModal(StrEnum):
    """callback_ids of the modals some triage buttons open."""

    LINK = "triage_link_modal"
    WONT_DO = "triage_wont_do_modal"
    DUPLICATE = "triage_duplicate_modal"


class Field(StrEnum):
    """block_id == action_id of every modal input, so state lookups are one name."""

    VERBATIM = "verbatim"
    REASON = "reason"
    ISSUE = "issue"
    ORIGINAL = "original"
    CONTEXT = "context"
    SOURCE = "source"
    TYPE_HINT = "type_hint"
    CUSTOMER_TEXT = "customer_text"
    CUSTOMER_USER = "customer_user"


def truncate(text: str, limit: int) -> str:
    """Cuts on a character boundary and says so, because Slack rejects over-long text."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Customer text must not ping (<!channel>) or forge links (<http://x|y>): Slack's three escapes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(text: str, limit: int = VERBATIM_LIMIT) -> str:
    """mrkdwn blockquote of the customer's words, safe within a section's 3000 chars."""
    body = truncate(escape(text), limit)
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
        blocks.append({"type": "section", "block_id": "context", "text": _mrkdwn(f"*Context*\n{escape(data.context)}")})
    facts = [f"*Item:* #{data.feedback_id}"] if data.triage else [f"*Status:* {status}", f"*Item:* #{data.feedback_id}"]
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
    if data.triage is not None:
        blocks.extend(
            triage_blocks(
                data.triage,
                data.status,
                data.suggested.type if data.suggested else None,
                data.suggested.theme if data.suggested else None,
                shown_status=status,
            )
        )
    fallback = truncate(f"Feedback #{data.feedback_id} from {header}: {escape(data.text)}", 3000)
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
        lines.append(f"• #{item.feedback_id} ({item.score:.2f}){dup}{linear}: {truncate(escape(item.text), 200)}")
    return "\n".join(lines)


def _button(action: Action, label: str, ref: str, style: str | None = None) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "button", "action_id": action.value, "text": _plain(label, 75), "value": ref}
    if style:
        el["style"] = style
    return el


def _option_select(action: Action, placeholder: str, options: list[str], chosen: str | None) -> dict[str, Any]:
    opts = [{"text": _plain(o, 75), "value": o[:150]} for o in options[:100]]
    el: dict[str, Any] = {
        "type": "static_select",
        "action_id": action.value,
        "placeholder": _plain(placeholder, 150),
        "options": opts,
    }
    if chosen in options:
        el["initial_option"] = next(o for o in opts if o["value"] == chosen)
    return el


def _decisions(t: TriageView, status: str) -> str:
    parts = [f"*Status:* {status}"]
    if t.owner_id:
        parts.append(f"*Owner:* <@{t.owner_id}>")
    if t.reason:
        parts.append(f"*Reason:* {truncate(escape(t.reason), 500)}")
    if t.duplicate_of:
        parts.append(f"*Duplicate of* #{t.duplicate_of}")
    for link in t.links:
        label = f"<{link.url}|{link.identifier}>" if link.url else link.identifier
        state = f" ({link.state})" if link.state else ""
        demand = f" · {link.demand} request{'s' if link.demand != 1 else ''}" if link.status == "linked" else ""
        note = {
            "pending": " · sending to Linear…",
            "failed": f" · *failed:* {link.error or 'see logs'}",
            "unlinked": " · unlinked",
        }.get(link.status, "")
        parts.append(f"*Linear:* {label}{state}{demand}{note}")
    if t.requesters:
        parts.append(f"*Also requested by:* {', '.join(t.requesters[:20])}")
    if t.last_action:
        parts.append(f"_{t.last_action}_")
    return "\n".join(parts)


def triage_controls(
    t: TriageView, status: str, suggested_type: str | None = None, suggested_theme: str | None = None
) -> list[dict[str, Any]]:
    """The actions blocks shared by cards and App Home; a closed item keeps only Undo."""
    if status in CLOSED:
        return [{"type": "actions", "block_id": f"u.{t.ref}", "elements": [_button(Action.UNDO, "Undo", t.ref)]}]
    selects = [
        _option_select(Action.TYPE, "Type", [ft.value for ft in FeedbackType], t.type or suggested_type),
        _option_select(Action.THEME, "Theme", t.themes or ["(no themes)"], t.theme or suggested_theme),
        _option_select(Action.IMPACT, "Impact", list(IMPACTS), t.impact),
        {
            "type": "users_select",
            "action_id": Action.OWNER.value,
            "placeholder": _plain("Owner", 150),
            **({"initial_user": t.owner_id} if t.owner_id else {}),
        },
    ]
    routed = any(link.status in {"pending", "linked"} for link in t.links)
    buttons = [
        *([] if routed else [_button(Action.ROUTE, "Route to Linear", t.ref, "primary")]),
        _button(Action.LINK, "Link Linear issue", t.ref),
        _button(Action.ROADMAP, "Add to roadmap", t.ref),
        _button(Action.QUICK_WIN, "Quick win", t.ref),
        _button(Action.WONT_DO, "Won't do", t.ref, "danger"),
        _button(Action.DUPLICATE, "Duplicate of…", t.ref),
        _button(Action.NOT_FEEDBACK, "Not feedback", t.ref),
    ]
    if t.can_undo:
        buttons.append(_button(Action.UNDO, "Undo", t.ref))
    return [
        {"type": "actions", "block_id": f"s.{t.ref}", "elements": selects},
        {"type": "actions", "block_id": f"b.{t.ref}", "elements": buttons},
    ]


def triage_blocks(
    t: TriageView, status: str, suggested_type: str | None, suggested_theme: str | None, *, shown_status: str
) -> list[dict[str, Any]]:
    """Decisions so far, then the controls."""
    return [
        {"type": "section", "block_id": "decisions", "text": _mrkdwn(_decisions(t, shown_status))},
        *triage_controls(t, status, suggested_type, suggested_theme),
    ]


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


def _home_item(item: HomeItem) -> list[dict[str, Any]]:
    head = f"*#{item.feedback_id}* · {item.status} · {item.who}\n{quote(item.text, 280)}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(head)}]
    if item.status == "maybe":
        ref = item.triage.ref
        blocks.append(
            {
                "type": "actions",
                "block_id": f"m.{ref}",
                "elements": [
                    _button(Action.PROMOTE, "Promote to feedback", ref, "primary"),
                    _button(Action.NOT_FEEDBACK, "Not feedback", ref),
                ],
            }
        )
        return blocks
    return blocks + triage_controls(item.triage, item.status, item.suggested_type, item.suggested_theme)


def home(
    sections: list[tuple[str, list[HomeItem]]], *, filters: dict[str, str], themes: list[str], staff: bool = True
) -> dict[str, Any]:
    """App Home: the triage queue with filters, assigned to me, roadmap backlog, and the "maybe" list."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain("Feedback Loop", 150)}]
    if not staff:
        blocks.append({"type": "section", "text": _mrkdwn("Feedback Loop is used by the team that installed it.")})
        return {"type": "home", "blocks": blocks}
    any_type, any_theme = "Any type", "Any theme"
    blocks.append(
        {
            "type": "actions",
            "block_id": "home_filters",
            "elements": [
                {
                    **_option_select(
                        Action.HOME_FILTER,
                        "Type",
                        [any_type] + [t.value for t in FeedbackType],
                        filters.get("type", any_type),
                    ),
                    "action_id": f"{Action.HOME_FILTER.value}.type",
                },
                {
                    **_option_select(
                        Action.HOME_FILTER, "Theme", [any_theme, *themes], filters.get("theme", any_theme)
                    ),
                    "action_id": f"{Action.HOME_FILTER.value}.theme",
                },
            ],
        }
    )
    for title, items in sections:
        blocks.append({"type": "header", "text": _plain(f"{title} ({len(items)})", 150)})
        if not items:
            blocks.append({"type": "context", "elements": [_mrkdwn("Nothing here.")]})
        for item in items:
            chunk = _home_item(item)
            if len(blocks) + len(chunk) > HOME_BLOCK_LIMIT - 1:
                blocks.append({"type": "context", "elements": [_mrkdwn("More items than fit; narrow the filters.")]})
                return {"type": "home", "blocks": blocks, "private_metadata": json.dumps(filters)}
            blocks.extend(chunk)
    return {"type": "home", "blocks": blocks, "private_metadata": json.dumps(filters)}


def _triage_modal(callback: TriageModal, title: str, ref: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback.value,
        "title": _plain(title, 24),
        "submit": _plain("Save", 24),
        "close": _plain("Cancel", 24),
        "private_metadata": ref,
        "blocks": [block],
    }


def wont_do_modal(ref: str) -> dict[str, Any]:
    """Won't do needs a reason: it goes on the card and into the quarterly review."""
    return _triage_modal(
        TriageModal.WONT_DO,
        "Won't do",
        ref,
        _input(Field.REASON, "Why not?", _text_input(), hint="The customer may hear this."),
    )


def link_modal(ref: str) -> dict[str, Any]:
    """Link to an existing Linear issue by key or URL."""
    el = {"type": "plain_text_input", "placeholder": _plain("ENG-123 or https://linear.app/…/issue/ENG-123", 150)}
    return _triage_modal(TriageModal.LINK, "Link Linear issue", ref, _input(Field.ISSUE, "Linear issue", el))


def duplicate_modal(ref: str, candidates: list[tuple[int, str]]) -> dict[str, Any]:
    """Duplicate of: pick one of the similar items (or type an item number)."""
    if candidates:
        opts = {str(i): truncate(f"#{i} {text}", 75) for i, text in candidates}
        block = _input(Field.ORIGINAL, "Duplicate of", _select(opts))
    else:
        block = _input(Field.ORIGINAL, "Duplicate of item #", _text_input(multiline=False))
    return _triage_modal(TriageModal.DUPLICATE, "Duplicate of", ref, block)


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A one-message modal, for refusals and errors where there is no channel to answer in."""
    return {
        "type": "modal",
        "title": _plain(title, 24),
        "close": _plain("Close", 24),
        "blocks": [{"type": "section", "text": _mrkdwn(text)}],
    }
