"""Modal submissions: validation errors go back in the ack, as Slack requires."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.capture import inbound as intake
from bot.deps import Deps
from bot.triage import inbound as clicks


def _submit(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    context: BoltContext,
    validate: Callable[[dict[str, Any]], dict[str, str]],
    store: Callable[[Deps, str, dict[str, Any]], int],
) -> None:
    errors = validate(view)
    user = body.get("user") or {}
    deps = context["deps"]
    if not errors and deps.gateway.staff_cached(user.get("id", ""), user.get("team_id")) is False:
        errors = {next(iter(view["state"]["values"]), "verbatim"): intake.NOT_STAFF}
    if errors:
        ack(response_action="errors", errors=errors)
        return
    ack()
    intake.submit_after_ack(deps, user, view, store)


def on_log_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Message shortcut modal submitted."""
    _submit(ack, body, view, context, intake.validate_log, intake.submit_log)


def on_feedback_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """/feedback modal submitted."""
    _submit(ack, body, view, context, intake.validate_feedback, intake.submit_feedback)


def on_triage_modal(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Won't do / Link Linear issue / Duplicate of: database-only checks, so their errors can be in the ack."""
    deps = context["deps"]
    errors, applied = clicks.modal_before_ack(deps, body, view)
    if errors:
        ack(response_action="errors", errors=errors)
        return
    ack()
    if not applied:
        clicks.on_modal_after_ack(deps, body, view)
