"""The triage card, its controls (shared with App Home) and the triage modals; pure builders, no I/O."""

from __future__ import annotations

from typing import Any

from bot.domain import CLOSED, IMPACTS, SOURCES, CardData, FeedbackType, TriageView
from bot.slack.ids import Action, Field, TriageModal
from bot.slack.kit import (
    button,
    escape,
    input_block,
    mrkdwn,
    option_select,
    plain,
    quote,
    quote_line,
    select,
    shown,
    text_input,
    truncate,
)


def card(data: CardData) -> tuple[str, list[dict[str, Any]]]:
    """The triage card: verbatim, who and where from, how captured; fallback text for notifications."""
    header = f"{data.author} ({data.organisation})"
    status = "deleted by the customer" if data.deleted else data.status
    verbatim = quote(data.text, names=data.names) if data.text else "_(message text not available)_"
    link = f"<{data.permalink}|original message>" if data.permalink else "no link"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "verbatim", "text": mrkdwn(f"*Feedback from {header}*\n{verbatim}")},
        {
            "type": "context",
            "elements": [
                mrkdwn(
                    f"Source: {SOURCES.get(data.source, data.source)} · via {', '.join(data.tags) or data.method}"
                    f" · {link}" + (f" · in <#{data.channel_id}>" if data.channel_id else "")
                )
            ],
        },
    ]
    if data.context:
        blocks.append({"type": "section", "block_id": "context", "text": mrkdwn(f"*Context*\n{escape(data.context)}")})
    blocks.append({"type": "section", "block_id": "facts", "fields": [mrkdwn(f) for f in _facts(data, status)]})
    blocks.append({"type": "section", "block_id": "suggestion", "text": mrkdwn(_suggestion_text(data))})
    if data.similar:
        blocks.append({"type": "section", "block_id": "similar", "text": mrkdwn(_similar_text(data))})
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
    fallback = truncate(f"Feedback #{data.feedback_id} from {header}: {shown(data.text, data.names)}", 3000)
    return fallback, blocks


def _facts(data: CardData, status: str) -> list[str]:
    """The short fields under the verbatim (status moves to the decisions block once triage controls show)."""
    facts = [f"*Item:* #{data.feedback_id}"] if data.triage else [f"*Status:* {status}", f"*Item:* #{data.feedback_id}"]
    if data.captured_by:
        facts.append(f"*Captured by:* <@{data.captured_by}>")
    if data.type_hint:
        facts.append(f"*Type hint:* {data.type_hint}")
    if data.edited:
        facts.append("*Edited* by the customer")
    return facts


def _suggestion_text(data: CardData) -> str:
    s = data.suggested
    if s is None:
        return f"*Suggestion:* {data.suggestion_note or 'no suggestion'}"
    theme = f"{s.theme} ({s.theme_confidence:.0%})" if s.theme else "no clear theme"
    sure = "not sure" if s.unsure else f"{s.type_confidence:.0%}"
    text = f"*Suggested:* {s.type} ({sure}) · theme {theme} · impact {s.impact} · feedback score {s.feedback_score:.2f}"
    if s.examples:
        text += f"\n_Why {s.type}: the nearest items staff labelled so_"
        for item in s.examples[:2]:
            ref = f"<{item.url}|#{item.feedback_id}>" if item.url else f"#{item.feedback_id}"
            text += f"\n• {ref} ({item.score:.2f})\n{quote_line(item.text, 150, data.names)}"
    return text


def _similar_text(data: CardData) -> str:
    lines = ["*Similar items*"]
    for item in data.similar[:5]:
        dup = " · *possible duplicate*" if item.duplicate else ""
        linear = (
            f" → <{item.linear_url}|{item.linear}>" if item.linear_url else (f" → {item.linear}" if item.linear else "")
        )
        lines.append(f"• #{item.feedback_id} ({item.score:.2f}){dup}{linear}")
        lines.append(quote_line(item.text, 200, data.names))
    return "\n".join(lines)


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
        demand = f" · {link.demand} request{'s' if link.demand != 1 else ''}" if link.linked else ""
        demand += f" · {link.reach}" if link.linked and link.reach else ""
        note = f" · *failed:* {escape(link.error)}" if link.error else (f" · {link.note}" if link.note else "")
        parts.append(f"*Linear:* {label}{state}{demand}{note}")
    if t.requesters:
        parts.append(f"*Also requested by:* {', '.join(t.requesters[:20])}")
    for line in t.loop[:10]:
        flag = " · :warning: *loop still open after it shipped*" if line.overdue else ""
        parts.append(f"*Loop:* {line.who}: {line.state}{flag}")
    if t.last_action:
        parts.append(f"_{t.last_action}_")
    return "\n".join(parts)


def triage_controls(
    t: TriageView, status: str, suggested_type: str | None = None, suggested_theme: str | None = None
) -> list[dict[str, Any]]:
    """The actions blocks shared by cards and App Home; a closed item keeps only Undo."""
    if status in CLOSED:
        return [{"type": "actions", "block_id": f"u.{t.ref}", "elements": [button(Action.UNDO, "Undo", t.ref)]}]
    selects = [
        option_select(Action.TYPE, "Type", [ft.value for ft in FeedbackType], t.type or suggested_type),
        option_select(Action.THEME, "Theme", t.themes or ["(no themes)"], t.theme or suggested_theme),
        option_select(Action.IMPACT, "Impact", list(IMPACTS), t.impact),
        {
            "type": "users_select",
            "action_id": Action.OWNER.value,
            "placeholder": plain("Owner", 150),
            **({"initial_user": t.owner_id} if t.owner_id else {}),
        },
    ]
    buttons = [
        *([] if t.routed else [button(Action.ROUTE, "Route to Linear", t.ref, "primary")]),
        button(Action.LINK, "Link Linear issue", t.ref),
        button(Action.ROADMAP, "Add to roadmap", t.ref),
        button(Action.QUICK_WIN, "Quick win", t.ref),
        button(Action.WONT_DO, "Won't do", t.ref, "danger"),
        button(Action.DUPLICATE, "Duplicate of…", t.ref),
        button(Action.NOT_FEEDBACK, "Not feedback", t.ref),
        button(Action.ACCOUNT, "Account…", t.ref),
    ]
    if t.can_undo:
        buttons.append(button(Action.UNDO, "Undo", t.ref))
    return [
        {"type": "actions", "block_id": f"s.{t.ref}", "elements": selects},
        {"type": "actions", "block_id": f"b.{t.ref}", "elements": buttons},
    ]


def triage_blocks(
    t: TriageView, status: str, suggested_type: str | None, suggested_theme: str | None, *, shown_status: str
) -> list[dict[str, Any]]:
    """Decisions so far, then the controls."""
    return [
        {"type": "section", "block_id": "decisions", "text": mrkdwn(_decisions(t, shown_status))},
        *triage_controls(t, status, suggested_type, suggested_theme),
    ]


def _triage_modal(callback: TriageModal, title: str, ref: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback.value,
        "title": plain(title, 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "private_metadata": ref,
        "blocks": [block],
    }


def wont_do_modal(ref: str) -> dict[str, Any]:
    """Won't do needs a reason: it goes on the card and into the quarterly review."""
    return _triage_modal(
        TriageModal.WONT_DO,
        "Won't do",
        ref,
        input_block(Field.REASON, "Why not?", text_input(), hint="The customer may hear this."),
    )


def link_modal(ref: str) -> dict[str, Any]:
    """Link to an existing Linear issue by key or URL."""
    el = {"type": "plain_text_input", "placeholder": plain("ENG-123 or https://linear.app/…/issue/ENG-123", 150)}
    return _triage_modal(TriageModal.LINK, "Link Linear issue", ref, input_block(Field.ISSUE, "Linear issue", el))


def duplicate_modal(ref: str, candidates: list[tuple[int, str]]) -> dict[str, Any]:
    """Duplicate of: pick one of the similar items (or type an item number)."""
    if candidates:
        opts = {str(i): truncate(f"#{i} {text}", 75) for i, text in candidates}
        block = input_block(Field.ORIGINAL, "Duplicate of", select(opts))
    else:
        block = input_block(Field.ORIGINAL, "Duplicate of item #", text_input(multiline=False))
    return _triage_modal(TriageModal.DUPLICATE, "Duplicate of", ref, block)


def account_modal(ref: str, accounts: list[tuple[str, str]]) -> dict[str, Any]:
    """Which customer account this is: pick a known one, or type a new account's name or domain."""
    new = input_block(Field.NEW_ACCOUNT, "…or a new account (name or domain)", text_input(multiline=False),
                      optional=True)  # fmt: skip
    modal = _triage_modal(TriageModal.ACCOUNT, "Account", ref, new)
    if accounts:
        picker = select({value: truncate(label, 75) for value, label in accounts[:100]})
        modal["blocks"].insert(0, input_block(Field.ACCOUNT, "Account", picker, optional=True))
    return modal
