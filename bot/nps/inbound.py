"""What NPS clicks and modals mean: a customer's score and reason, staff's follow-up decisions and check-ins."""

from __future__ import annotations

import logging
from typing import Any

from bot.accounts.service import require_staff
from bot.deps import Deps
from bot.domain import CardRef, UserFacingError
from bot.nps import blocks, checkins, importer, service
from bot.slack.ids import Action, Field
from bot.slack.kit import unescape
from bot.slack.payloads import clicker, read_state, reply_target
from storage import surveys
from storage.models import Contact, Survey

log = logging.getLogger(__name__)
STAFF_VERBS = {Action.NPS_SEND: "send", Action.NPS_SKIP: "skip", Action.NPS_RESOLVE: "resolve",
               Action.NPS_SNOOZE: "snooze"}  # fmt: skip
CHECKIN_VERBS = {Action.CHECKIN_POST: "post", Action.CHECKIN_SKIP: "skip"}
REASON_REQUIRED = "Please tell us the main reason for your score."


def on_action(deps: Deps, body: dict[str, Any], action: dict[str, Any]) -> None:
    """Score buttons and "Add your reason" (the surveyed person only); everything else is staff's."""
    user, team = clicker(body)
    action_id = str(action.get("action_id") or "")
    try:
        if action_id.startswith(f"{Action.NPS_SCORE.value}.") or action_id == Action.NPS_REASON.value:
            note = _respondent(deps, body, action, user)
        else:
            require_staff(deps.slack, deps.settings, user, team)
            note = _staff(deps, body, action, user)
    except UserFacingError as exc:
        note = str(exc)
    if note:
        channel, trigger = reply_target(body)
        deps.slack.tell(user, note, channel=channel, trigger_id=None if channel else trigger)


def _mine(session: Any, ref: CardRef, user: str) -> tuple[Survey, Contact]:
    s = surveys.survey(session=session, survey_id=ref.feedback_id)
    contact = session.get(Contact, s.contact_id) if s else None
    if s is None or contact is None:
        raise UserFacingError("This survey is no longer open.")
    if contact.slack_user_id != user:
        raise UserFacingError("This survey was sent to someone else, so your click was not counted.")
    return s, contact


def _respondent(deps: Deps, body: dict[str, Any], action: dict[str, Any], user: str) -> str | None:
    """The first score counts (a re-click or a redelivery changes nothing); the reason modal opens either way
    until a reason is given."""
    ref = CardRef.parse(action.get("value"), service.ref_secret(deps.settings))
    with deps.transaction() as session:
        s, _ = _mine(session, ref, user)
        if str(action.get("action_id")).startswith(f"{Action.NPS_SCORE.value}."):
            service.record_score(session, deps.settings, s, ref.rev, deps.now())
        score, done = s.score, s.reason is not None
    if score is None:
        raise UserFacingError("Please pick a score first.")
    if done:
        return f"Thanks, we already have your answer ({score})."
    modal_ref = CardRef(ref.feedback_id, score).encode(service.ref_secret(deps.settings))
    prompt = service.wording(deps.settings, "reason", None)
    deps.slack.open_view(str(body.get("trigger_id") or ""), blocks.reason_modal(prompt, score, modal_ref))
    return None


def reason_errors(view: dict[str, Any]) -> dict[str, str]:
    """Checked in the ack: an empty reason is refused where the person typed it."""
    return {} if read_state(view).get(Field.NPS_REASON.value) else {Field.NPS_REASON.value: REASON_REQUIRED}


def on_reason(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Stores the reason once (its feedback item, the confirmation and the follow-up path go with it)."""
    user, _ = clicker(body)
    reason = read_state(view).get(Field.NPS_REASON.value) or ""
    try:
        ref = CardRef.parse(view.get("private_metadata"), service.ref_secret(deps.settings))
        with deps.transaction() as session:
            s, contact = _mine(session, ref, user)
            service.record_reason(session, deps.settings, s, reason, contact)
    except UserFacingError as exc:
        deps.slack.tell(user, str(exc))


def _staff(deps: Deps, body: dict[str, Any], action: dict[str, Any], user: str) -> str | None:
    try:
        act = Action(str(action.get("action_id")))
    except ValueError as exc:
        raise UserFacingError(f"Unknown action {action.get('action_id')!r}.") from exc
    ref = CardRef.parse(action.get("value"), service.staff_secret(deps.settings))
    trigger = str(body.get("trigger_id") or "")
    if act in (Action.NPS_EDIT, Action.NPS_CALL, Action.CHECKIN_EDIT):
        deps.slack.open_view(trigger, _modal(deps, act, ref))
        return None
    with deps.transaction() as session:
        if act in CHECKIN_VERBS:
            return checkins.decide(deps, session, ref.feedback_id, CHECKIN_VERBS[act], user)
        if act not in STAFF_VERBS:
            raise UserFacingError(f"Unknown action {act.value!r}.")
        return service.decide(session, _survey(session, ref.feedback_id), STAFF_VERBS[act], user, deps.now())


def _survey(session: Any, survey_id: int) -> Survey:
    s = surveys.survey(session=session, survey_id=survey_id)
    if s is None:
        raise UserFacingError("This survey no longer exists.")
    return s


def _modal(deps: Deps, act: Action, ref: CardRef) -> dict[str, Any]:
    raw = ref.encode(service.staff_secret(deps.settings))
    with deps.transaction() as session:
        if act is Action.CHECKIN_EDIT:
            return blocks.staff_modal("checkin", raw, "Question", checkins.raw_text(session, ref.feedback_id))
        if act is Action.NPS_CALL:
            return blocks.staff_modal("call", raw, "What did you learn on the call?", None)
        text = unescape(_survey(session, ref.feedback_id).followup_text or "")
    return blocks.staff_modal("edit", raw, "Message", text)


def staff_modal_errors(view: dict[str, Any]) -> dict[str, str]:
    """An empty message, question or call note is refused in the ack."""
    values = read_state(view)
    field = Field.NOTE.value if Field.NOTE.value in values else Field.MESSAGE.value
    return {} if values.get(field) else {field: "This cannot be empty."}


def on_staff_modal(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Saves an edited follow-up or check-in question, or logs a call."""
    user, team = clicker(body)
    values = read_state(view)
    kind, _, raw = str(view.get("private_metadata") or "").partition(":")
    try:
        require_staff(deps.slack, deps.settings, user, team)
        ref = CardRef.parse(raw, service.staff_secret(deps.settings))
        with deps.transaction() as session:
            if kind == "checkin":
                note = checkins.decide(deps, session, ref.feedback_id, "edit", user, values.get(Field.MESSAGE.value))
            else:
                verb = "call" if kind == "call" else "edit"
                text = values.get(Field.NOTE.value if kind == "call" else Field.MESSAGE.value)
                note = service.decide(session, _survey(session, ref.feedback_id), verb, user, deps.now(), text)
    except UserFacingError as exc:
        note = str(exc)
    deps.slack.tell(user, note)


def accept_usage(deps: Deps, body: Any) -> importer.UsageResult:
    """POST /events/usage: stored in one transaction before the answer; a repeat is counted, not stored."""
    events = importer.usage_from_json(body)
    with deps.transaction() as session:
        return importer.record_usage(session, deps.settings, events)
