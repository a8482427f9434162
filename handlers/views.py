"""Modal submissions: validation errors go back in the ack, as Slack requires."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot import clicks, intake
from bot.deps import Deps
from bot.domain import UserFacingError


def _submit(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    context: BoltContext,
    validate: Callable[[dict[str, Any]], dict[str, str]],
    store: Callable[[Deps, str, dict[str, Any]], int],
) -> None:
    errors = validate(view)
    if errors:
        ack(response_action="errors", errors=errors)
        return
    user = body.get("user") or {}
    deps = context["deps"]
    try:
        intake.require_staff(deps, user.get("id", ""), user.get("team_id"))
    except UserFacingError as exc:
        ack(response_action="errors", errors={next(iter(view["state"]["values"]), "verbatim"): str(exc)})
        return
    ack()
    store(deps, user["id"], view)


def on_log_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Message shortcut modal submitted."""
    _submit(ack, body, view, context, intake.validate_log, intake.submit_log)


def on_feedback_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """/feedback modal submitted."""
    _submit(ack, body, view, context, intake.validate_feedback, intake.submit_feedback)


def on_triage_modal(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Won't do / Link Linear issue / Duplicate of: a database change, so errors can come back in the ack."""
    errors = clicks.on_modal(context["deps"], body, view)
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack()
