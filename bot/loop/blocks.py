"""The approval DM, its Edit modal, and App Home's loop rows: pure functions of plain values."""

from __future__ import annotations

from typing import Any

from bot.domain import LoopDraft
from bot.slack.ids import Action, Callback, Field
from bot.slack.kit import button, escape, input_block, mrkdwn, plain, quote, text_input, truncate

TITLES = {"update": "Work started", "resolution": "Shipped", "canceled": "Canceled"}
OPEN = {"waiting for approval", "owner to tell them (no Slack thread)"}


def draft(d: LoopDraft) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) of the DM that asks staff to approve one customer message."""
    issue = f"<{d.issue_url}|{d.issue}>" if d.issue_url else d.issue
    where = f"in <#{d.channel_id}>, in the thread of " if d.channel_id else "(no Slack thread: tell them yourself) "
    message = f"<{d.permalink}|their message>" if d.permalink and d.channel_id else "their request"
    head = f"*{TITLES.get(d.stage, d.stage)}: {issue}*: {d.customer} will be told {where}{message}:"
    body = quote(d.text, 2600) + (f"\n>{truncate(escape(d.note), 300)}" if d.note else "")  # as the customer gets it
    facts = [f"Status: {d.status}"] + ([f"Sending: {d.when}"] if d.when else []) + ([d.decided] if d.decided else [])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn(head)},
        {"type": "section", "text": mrkdwn(body)},
        {"type": "context", "elements": [mrkdwn(" · ".join(facts))]},
    ]
    if d.status in OPEN:
        blocks.append({"type": "actions", "block_id": f"loop.{d.message_id}", "elements": controls(d)})
    return f"{TITLES.get(d.stage, d.stage)}: approve the message to {d.customer} about {d.issue}", blocks


def controls(d: LoopDraft) -> list[dict[str, Any]]:
    """Send / Edit / Skip (or "I told them" when there is no thread to answer in)."""
    first = (
        button(Action.LOOP_SEND, "Send", d.ref, "primary")
        if d.channel_id
        else button(Action.LOOP_TOLD, "I told them", d.ref, "primary")
    )
    return [first, button(Action.LOOP_EDIT, "Edit", d.ref), button(Action.LOOP_SKIP, "Skip", d.ref)]


def edit_modal(d: LoopDraft, raw_text: str) -> dict[str, Any]:
    """The message as plain text to reword; a resolution can carry a release note or docs link."""
    blocks = [input_block(Field.MESSAGE, f"Message to {d.customer}"[:2000], text_input(raw_text))]
    if d.stage == "resolution":
        hint = "Added on its own line, e.g. https://docs.example.com/csv-export"
        element = text_input(d.note, multiline=False)
        blocks.append(input_block(Field.RELEASE_NOTE, "Release note or docs link", element, optional=True, hint=hint))
    return {
        "type": "modal",
        "callback_id": Callback.LOOP_EDIT_MODAL.value,
        "private_metadata": d.ref,
        "title": plain("Edit the message", 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }


def home_rows(
    drafts: list[LoopDraft], stuck: list[tuple[str, str, str]], late: list[str] | None = None
) -> list[dict[str, Any]]:
    """App Home: loops still open after the issue shipped, loops waiting for someone, then deliveries that gave
    up, each with its button."""
    rows: list[dict[str, Any]] = []
    if late:
        text = ":warning: *Loops still open after shipping*\n" + "\n".join(f"• {line}" for line in late)
        rows.append({"type": "section", "text": mrkdwn(text)})
    if drafts:
        rows += [{"type": "header", "text": plain("Loops to close", 150)}]
        for d in drafts:
            line = f"*{TITLES.get(d.stage, d.stage)} · {d.issue}* · {d.customer}: {d.status}\n{quote(d.text, 300)}"
            rows.append({"type": "section", "text": mrkdwn(line)})
            if d.status in OPEN:
                rows.append({"type": "actions", "block_id": f"loop.{d.message_id}", "elements": controls(d)})
    if stuck:
        rows += [{"type": "header", "text": plain("Failed deliveries", 150)}]
        for ref, key, error in stuck:
            entry = mrkdwn(f"`{truncate(key, 120)}`: {truncate(error, 400)}")
            rows.append({"type": "section", "text": entry, "accessory": button(Action.LOOP_RETRY, "Retry", ref)})
    return rows
