"""Modal submissions: validation errors go back in the ack, as Slack requires."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.accounts.service import NOT_STAFF, staff_cached
from bot.capture import inbound as capture
from bot.deps import Deps
from bot.loop import inbound as loop
from bot.nps import inbound as nps
from bot.runtime.inbox import held
from bot.slack.payloads import clicker
from bot.triage import inbound as triage


def _submit(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    context: BoltContext,
    validate: Callable[[dict[str, Any]], dict[str, str]],
    store: Callable[[Deps, str, dict[str, Any]], int],
) -> None:
    errors = validate(view)
    deps = context["deps"]
    user, team = clicker(body)
    if not errors and staff_cached(deps.slack, deps.settings, user, team) is False:
        errors = {next(iter(view["state"]["values"]), "verbatim"): NOT_STAFF}
    _ack_then(ack, body, context, errors, lambda: capture.submit_after_ack(deps, body.get("user") or {}, view, store))


def _ack_then(
    ack: Ack, body: dict[str, Any], context: BoltContext, errors: dict[str, str], handle: Callable[[], None]
) -> None:
    """Validation errors go back in the ack; otherwise the submission is stored, acked, then handled."""
    if errors:
        ack(response_action="errors", errors=errors)
        return
    with held(context["deps"], body, replay=bool(context.get("replay"))) as fresh:
        ack()
        if fresh:
            handle()


def on_log_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Message shortcut modal submitted."""
    _submit(ack, body, view, context, capture.validate_log, capture.submit_log)


def on_feedback_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """/feedback modal submitted."""
    _submit(ack, body, view, context, capture.validate_feedback, capture.submit_feedback)


def on_triage_modal(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Won't do / Link Linear issue / Duplicate of: database-only checks, so their errors can be in the ack."""
    deps = context["deps"]
    errors, applied = triage.modal_before_ack(deps, body, view)
    if applied and not errors:  # committed before the ack: nothing left to lose
        ack()
        return
    _ack_then(ack, body, context, errors, lambda: triage.on_modal_after_ack(deps, body, view))


def on_loop_edit(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """The approval DM's Edit modal: an empty message is refused in the ack; the save is stored before it."""
    deps = context["deps"]
    _ack_then(ack, body, context, loop.edit_errors(view), lambda: loop.on_edit(deps, body, view))


def on_nps_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """The survey's reason modal: an empty reason is refused in the ack; the answer is stored before it."""
    deps = context["deps"]
    _ack_then(ack, body, context, nps.reason_errors(view), lambda: nps.on_reason(deps, body, view))


def on_nps_staff_modal(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """A follow-up's or check-in's new wording, or a call note: empty text is refused in the ack."""
    deps = context["deps"]
    _ack_then(ack, body, context, nps.staff_modal_errors(view), lambda: nps.on_staff_modal(deps, body, view))
