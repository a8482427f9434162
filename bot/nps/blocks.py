"""NPS messages: the survey, its reason modal, the owner's task and follow-up DMs, check-in prompts (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.slack.ids import Action, Callback, Field
from bot.slack.kit import button, escape, input_block, mrkdwn, plain, quote, text_input, truncate

SEGMENT_ICON = {"promoter": ":large_green_circle:", "passive": ":large_yellow_circle:", "detractor": ":red_circle:"}


def survey(question: str, score_ref: Callable[[int], str], mention: str | None = None) -> tuple[str, list[Any]]:
    """The question with 0-10 buttons (each carries the signed survey id and its score)."""
    head = f"<@{mention}> {escape(question)}" if mention else escape(question)
    scores = [button(Action.NPS_SCORE, str(n), score_ref(n)) | {"action_id": f"{Action.NPS_SCORE.value}.{n}"}
              for n in range(11)]  # fmt: skip
    blocks = [
        {"type": "section", "text": mrkdwn(head)},
        {"type": "actions", "block_id": "nps.scores", "elements": scores},
        {"type": "context", "elements": [mrkdwn("0 = not at all likely · 10 = extremely likely")]},
    ]
    return truncate(question, 3000), blocks


def scored(question: str, score: int, reason_ref: str | None) -> tuple[str, list[Any]]:
    """The survey after the click: the score is kept; a button reopens the reason modal until a reason is given."""
    text = f"{escape(question)}\nYou answered *{score}*." + ("" if reason_ref else " Thank you!")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": mrkdwn(text)}]
    if reason_ref:
        blocks.append({"type": "actions", "block_id": "nps.reason",
                       "elements": [button(Action.NPS_REASON, "Add your reason", reason_ref, "primary")]})  # fmt: skip
    return f"You answered {score}.", blocks


def reason_modal(prompt: str, score: int, ref: str) -> dict[str, Any]:
    """The required reason; an empty one is refused in the ack (response_action: errors)."""
    return {
        "type": "modal",
        "callback_id": Callback.NPS_REASON_MODAL.value,
        "private_metadata": ref,
        "title": plain("Your feedback", 24),
        "submit": plain("Send", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            {"type": "context", "elements": [mrkdwn(f"You answered *{score}* out of 10.")]},
            input_block(Field.NPS_REASON, prompt, text_input()),
        ],
    }


@dataclass(frozen=True)
class StaffView:
    """The owner's DM about one response: a detractor task, or a promoter/passive follow-up to approve."""

    ref: str
    who: str
    account: str
    score: int
    segment: str
    reason: str | None
    facts: list[str] = field(default_factory=list)
    state: str = ""
    followup: str | None = None  # the message awaiting approval
    open: bool = True
    task: bool = False


def staff(v: StaffView) -> tuple[str, list[dict[str, Any]]]:
    """(fallback, blocks) of the task or approval DM."""
    icon = SEGMENT_ICON.get(v.segment, "")
    kind = "Detractor follow-up" if v.task else f"{v.segment.title()} follow-up to approve"
    head = f"{icon} *{kind}: {v.who} ({v.account}) answered {v.score}*"
    reason = quote(v.reason, 1500) if v.reason else "_No reason given yet._"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn(f"{head}\n{reason}")},
    ]
    if v.facts:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(f"• {f}" for f in v.facts))})
    if v.followup is not None:
        blocks.append({"type": "section", "text": mrkdwn("*They would be told:*\n" + quote(v.followup, 1500))})
    blocks.append({"type": "context", "elements": [mrkdwn(f"Status: {v.state}")]})
    if v.open:
        blocks.append(
            {"type": "actions", "block_id": f"nps.{'task' if v.task else 'followup'}", "elements": controls(v)}
        )
    return f"{kind}: {v.who} answered {v.score}", blocks


def controls(v: StaffView) -> list[dict[str, Any]]:
    """Log call / Resolved / Snooze on a task; Send / Edit / Skip on a follow-up."""
    if v.task:
        return [button(Action.NPS_CALL, "Log call", v.ref, "primary"), button(Action.NPS_RESOLVE, "Resolved", v.ref),
                button(Action.NPS_SNOOZE, "Snooze 1 day", v.ref)]  # fmt: skip
    return [button(Action.NPS_SEND, "Send", v.ref, "primary"), button(Action.NPS_EDIT, "Edit", v.ref),
            button(Action.NPS_SKIP, "Skip", v.ref)]  # fmt: skip


def staff_modal(kind: str, ref: str, label: str, initial: str | None) -> dict[str, Any]:
    """One modal for staff text: a follow-up's or check-in's wording (`edit`, `checkin`), or a call note (`call`)."""
    title = {"call": "Log the call", "checkin": "Edit the question"}.get(kind, "Edit the message")
    field_id = Field.NOTE if kind == "call" else Field.MESSAGE
    return {
        "type": "modal",
        "callback_id": Callback.NPS_STAFF_MODAL.value,
        "private_metadata": f"{kind}:{ref}",
        "title": plain(title, 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "blocks": [input_block(field_id, label, text_input(initial))],
    }


def check_in(who: str, stage: str, question: str, ref: str | None, state: str) -> tuple[str, list[dict[str, Any]]]:
    """The owner's ready-to-post check-in prompt with Post / Edit / Skip."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn(f"*Check-in for {who}* ({escape(stage)}): ready to post in their channel")},
        {"type": "section", "text": mrkdwn(quote(question, 1500))},
        {"type": "context", "elements": [mrkdwn(f"Status: {state}")]},
    ]
    if ref:
        elements = [button(Action.CHECKIN_POST, "Post", ref, "primary"), button(Action.CHECKIN_EDIT, "Edit", ref),
                    button(Action.CHECKIN_SKIP, "Skip", ref)]  # fmt: skip
        blocks.append({"type": "actions", "block_id": "nps.checkin", "elements": elements})
    return f"Check-in for {who}: {question}", blocks


def overdue_rows(lines: list[str]) -> list[dict[str, Any]]:
    """App Home: NPS follow-ups past their 48 hours."""
    if not lines:
        return []
    text = ":hourglass: *NPS follow-ups overdue*\n" + "\n".join(f"• {line}" for line in lines[:20])
    return [{"type": "section", "text": mrkdwn(text)}]
