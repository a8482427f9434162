"""App Home: the triage queue with filters, assigned to me, roadmap backlog and the maybe list."""

from __future__ import annotations

import json
from typing import Any

from bot.domain import FeedbackType, HomeItem, Status
from bot.slack.ids import Action
from bot.slack.kit import button, mrkdwn, option_select, plain, quote
from bot.triage.blocks import triage_controls

HOME_BLOCK_LIMIT = 100


def _home_item(item: HomeItem) -> list[dict[str, Any]]:
    head = f"*#{item.feedback_id}* · {item.status} · {item.who}\n{quote(item.text, 280, item.names)}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": mrkdwn(head)}]
    if item.status == Status.MAYBE:
        ref = item.triage.ref
        blocks.append(
            {
                "type": "actions",
                "block_id": f"m.{ref}",
                "elements": [
                    button(Action.PROMOTE, "Promote to feedback", ref, "primary"),
                    button(Action.NOT_FEEDBACK, "Not feedback", ref),
                ],
            }
        )
        return blocks
    return blocks + triage_controls(item.triage, item.status, item.suggested_type, item.suggested_theme)


def _filter(name: str, placeholder: str, options: list[str], chosen: str) -> dict[str, Any]:
    """One filter select; its action_id names the filter (`home.filter.type`)."""
    return {
        **option_select(Action.HOME_FILTER, placeholder, options, chosen),
        "action_id": f"{Action.HOME_FILTER.value}.{name}",
    }


def _filters(filters: dict[str, str], themes: list[str]) -> dict[str, Any]:
    """The type and theme filters above the lists."""
    any_type, any_theme = "Any type", "Any theme"
    types = [any_type, *(t.value for t in FeedbackType)]
    return {
        "type": "actions",
        "block_id": "home_filters",
        "elements": [
            _filter("type", "Type", types, filters.get("type", any_type)),
            _filter("theme", "Theme", [any_theme, *themes], filters.get("theme", any_theme)),
        ],
    }


def home(
    sections: list[tuple[str, list[HomeItem]]],
    *,
    filters: dict[str, str],
    themes: list[str],
    staff: bool = True,
    first: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """App Home: the triage queue with filters, assigned to me, roadmap backlog, and the "maybe" list."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain("Feedback Loop", 150)}]
    if not staff:
        blocks.append({"type": "section", "text": mrkdwn("Feedback Loop is used by the team that installed it.")})
        return {"type": "home", "blocks": blocks}
    blocks.append(_filters(filters, themes))
    blocks.extend(first or [])  # loops waiting for someone and failed deliveries: the most urgent things
    for title, items in sections:
        blocks.append({"type": "header", "text": plain(f"{title} ({len(items)})", 150)})
        if not items:
            blocks.append({"type": "context", "elements": [mrkdwn("Nothing here.")]})
        for item in items:
            chunk = _home_item(item)
            if len(blocks) + len(chunk) > HOME_BLOCK_LIMIT - 1:
                blocks.append({"type": "context", "elements": [mrkdwn("More items than fit; narrow the filters.")]})
                return {"type": "home", "blocks": blocks, "private_metadata": json.dumps(filters)}
            blocks.extend(chunk)
    return {"type": "home", "blocks": blocks, "private_metadata": json.dumps(filters)}
