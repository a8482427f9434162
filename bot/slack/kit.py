"""Text safety and the Block Kit pieces every builder shares; pure functions, no I/O, no Slack SDK.

Customer message text is kept as Slack sends it: `& < >` already arrive as `&amp; &lt; &gt;`, and `<...>` is
always one of Slack's control sequences (a mention, a broadcast, a link). `shown()` makes that text inert for our
mrkdwn (escaped once, no live mention, broadcast or disguised link); `to_markdown()` makes it plain Markdown
for Linear. Names and staff-typed fields are raw text: `escape()` them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.slack.ids import Action, Field

SECTION_LIMIT = 3000
VERBATIM_LIMIT = 2800
MODAL_TEXT_LIMIT = 3000
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_CONTROL = re.compile(r"(<[^<>\n]*>)")
_STRAY_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_NAME_FORMATTING = str.maketrans({"*": "∗", "_": "＿", "~": "∼", "`": "ˋ"})


def truncate(text: str, limit: int) -> str:
    """Cuts on a character boundary and says so, because Slack rejects over-long text."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(raw: str) -> str:
    """Raw text (a name, a modal field) into Slack's encoding: the three entities, bidi overrides dropped."""
    return raw.translate(BIDI_CONTROLS).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def name(raw: str) -> str:
    """A display name inside our formatting: escaped, and `* _ ~ `` ` `` swapped for look-alikes so it cannot style."""
    return escape(raw).translate(_NAME_FORMATTING)


def unescape(text: str) -> str:
    """Slack's entities back to characters (for a plain-text input or Linear)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mentioned_users(text: str) -> set[str]:
    """User ids mentioned in Slack-encoded text, so a caller can resolve their names before rendering."""
    return set(_MENTION.findall(text or ""))


def _readable(control: str, names: Mapping[str, str]) -> str:
    """One `<...>` control sequence as the plain text a person would read, with nothing live left in it."""
    target, _, label = control[1:-1].partition("|")
    if target.startswith("@"):
        return "@" + (names.get(target[1:]) or label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        special = target[1:].split("^", 1)[0]
        return label if special in {"subteam", "date"} and label else "@" + special
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    return f"{label} ({target})" if label and label != target else target


def _escape_once(text: str) -> str:
    return _STRAY_AMP.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def shown(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack-encoded customer text made inert for our mrkdwn: entities kept (not doubled), mentions and links
    as plain readable text, bidi overrides dropped."""
    parts = _CONTROL.split((text or "").translate(BIDI_CONTROLS))
    return "".join(_escape_once(unescape(_readable(p, names or {})) if i % 2 else p) for i, p in enumerate(parts))


def to_markdown(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack-encoded customer text as plain Markdown for Linear: readable mentions, visible link targets."""
    parts = _CONTROL.split((text or "").translate(BIDI_CONTROLS))
    return unescape("".join(_readable(p, names or {}) if i % 2 else p for i, p in enumerate(parts)))


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()!<>#|~])")


def markdown_name(raw: str) -> str:
    """A raw name (a Slack organisation's, an imported account's) as inert Markdown text: no link, image or styling."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(raw.translate(BIDI_CONTROLS).split()))


def quote(text: str, limit: int = VERBATIM_LIMIT, names: Mapping[str, str] | None = None) -> str:
    """mrkdwn blockquote of the customer's words, safe within a section's 3000 chars."""
    body = truncate(shown(text, names), limit)
    return "\n".join(f">{line}" for line in body.splitlines() or [""])


def quote_line(text: str, limit: int, names: Mapping[str, str] | None = None) -> str:
    """The customer's words as one quoted line (lists of items: line breaks would break out of the quote)."""
    return ">" + truncate(" ".join(shown(text, names).split()), limit)


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object within a section's limit."""
    return {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}


def plain(text: str, limit: int = 150) -> dict[str, Any]:
    """A plain_text object within the given limit (75 for buttons and options, 24 for modal titles)."""
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def button(action: Action, label: str, ref: str, style: str | None = None) -> dict[str, Any]:
    """A button carrying a card reference as its value."""
    el: dict[str, Any] = {"type": "button", "action_id": action.value, "text": plain(label, 75), "value": ref}
    if style:
        el["style"] = style
    return el


def option_select(action: Action, placeholder: str, options: list[str], chosen: str | None) -> dict[str, Any]:
    """A static select whose option values are the labels themselves."""
    opts = [{"text": plain(o, 75), "value": o[:150]} for o in options[:100]]
    el: dict[str, Any] = {
        "type": "static_select",
        "action_id": action.value,
        "placeholder": plain(placeholder, 150),
        "options": opts,
    }
    initial = next((o for o in opts if o["value"] == chosen), None)
    if initial is not None:
        el["initial_option"] = initial
    return el


def input_block(
    field: Field, label: str, element: dict[str, Any], *, optional: bool = False, hint: str | None = None
) -> dict[str, Any]:
    """A modal input whose block_id and action_id are both the field name."""
    block = {
        "type": "input",
        "block_id": field.value,
        "label": plain(label, 2000),
        "element": {**element, "action_id": field.value},
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def text_input(initial: str | None = None, *, multiline: bool = True) -> dict[str, Any]:
    """A plain_text_input, prefilled within Slack's 3000-char limit."""
    el: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline, "max_length": MODAL_TEXT_LIMIT}
    if initial:
        el["initial_value"] = truncate(initial, MODAL_TEXT_LIMIT)
    return el


def select(options: dict[str, str], initial: str | None = None) -> dict[str, Any]:
    """A static select from value -> label."""
    opts = [{"text": plain(label, 75), "value": value} for value, label in options.items()]
    el: dict[str, Any] = {"type": "static_select", "options": opts}
    if initial in options:
        el["initial_option"] = next(o for o in opts if o["value"] == initial)
    return el


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A one-message modal, for refusals and errors where there is no channel to answer in."""
    return {
        "type": "modal",
        "title": plain(title, 24),
        "close": plain("Close", 24),
        "blocks": [{"type": "section", "text": mrkdwn(text)}],
    }
