"""App Home: the triage queue with filters, assigned to me, roadmap backlog and the maybe list."""

from __future__ import annotations

import json
from typing import Any

from bot.domain import FeedbackType, HomeItem, Report, Status
from bot.reports.blocks import section as report_section
from bot.slack.ids import Action
from bot.slack.kit import button, escape, mrkdwn, option_select, plain, quote
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


SORTS = ("Roadmap: newest first", "Roadmap: most ARR asking")
NO_LEDGER = "No account ledger"


def _filters(filters: dict[str, str], themes: list[str], accounts: list[str]) -> dict[str, Any]:
    """The type and theme filters, the roadmap's order, and the account whose ledger to show."""
    any_type, any_theme = "Any type", "Any theme"
    types = [any_type, *(t.value for t in FeedbackType)]
    elements = [
        _filter("type", "Type", types, filters.get("type", any_type)),
        _filter("theme", "Theme", [any_theme, *themes], filters.get("theme", any_theme)),
        _filter("sort", "Roadmap order", list(SORTS), filters.get("sort", SORTS[0])),
    ]
    if accounts:
        elements.append(_filter("account", "Account ledger", [NO_LEDGER, *accounts[:99]], filters.get("account", "")))
    return {"type": "actions", "block_id": "home_filters", "elements": elements}


def home(
    sections: list[tuple[str, list[HomeItem]]],
    *,
    filters: dict[str, str],
    themes: list[str],
    staff: bool = True,
    first: list[dict[str, Any]] | None = None,
    accounts: list[str] | None = None,
    ledger: Report | None = None,
) -> dict[str, Any]:
    """App Home: the triage queue with filters, assigned to me, roadmap backlog, and the "maybe" list."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain("Feedback Loop", 150)}]
    if not staff:
        blocks.append({"type": "section", "text": mrkdwn("Feedback Loop is used by the team that installed it.")})
        return {"type": "home", "blocks": blocks}
    blocks.append(_filters(filters, themes, accounts or []))
    if ledger is not None:  # the account picked in the ledger picker, as `report account` prints it
        facts = "\n".join(f"• {escape(f)}" for f in ledger.summary)
        blocks += [{"type": "header", "text": plain(ledger.title, 150)}, {"type": "section", "text": mrkdwn(facts)}]
        blocks += [b for sec in ledger.sections for b in report_section(sec)]
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
