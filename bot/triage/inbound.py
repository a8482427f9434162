"""What a click on a card (or a card's controls in App Home) means: check the clicker, verify, run the action."""

from __future__ import annotations

import logging
from typing import Any

from bot.accounts.service import NEW, NOT_STAFF, account_options, require_staff, staff_cached
from bot.deps import Deps
from bot.domain import CardRef, UserFacingError
from bot.slack.ids import MODAL_ACTIONS, Action, Field, TriageModal
from bot.slack.payloads import choice, clicker, read_state, reply_target
from bot.triage import blocks, service

log = logging.getLogger(__name__)
MODAL_FIELD = {
    TriageModal.WONT_DO: (Action.WONT_DO, Field.REASON),
    TriageModal.LINK: (Action.LINK, Field.ISSUE),
    TriageModal.DUPLICATE: (Action.DUPLICATE, Field.ORIGINAL),
    TriageModal.ACCOUNT: (Action.ACCOUNT, Field.ACCOUNT),
}


def _ref(deps: Deps, action: dict[str, Any]) -> CardRef:
    raw = action.get("value") or str(action.get("block_id", "")).partition(".")[2]
    return CardRef.parse(raw, deps.settings.ref_secret())


def on_action(deps: Deps, body: dict[str, Any], action: dict[str, Any]) -> None:
    """One click on a `triage.*` control; any refusal is told to the clicker alone and changes nothing."""
    user, team = clicker(body)
    try:
        require_staff(deps.slack, deps.settings, user, team)
        _run(deps, body, action, user)
    except UserFacingError as exc:
        channel, trigger = reply_target(body)
        deps.slack.tell(user, str(exc), channel=channel, trigger_id=trigger)


def _run(deps: Deps, body: dict[str, Any], action: dict[str, Any], user: str) -> None:
    try:
        act = Action(str(action.get("action_id")))
    except ValueError as exc:
        raise UserFacingError(f"Unknown action {action.get('action_id')!r}.") from exc
    ref = _ref(deps, action)
    if act in MODAL_ACTIONS:
        deps.slack.open_view(body["trigger_id"], _modal(deps, act, ref))
    elif act is Action.UNDO:
        service.undo(deps, ref, user)
    else:
        service.apply(deps, ref, act, user, choice(action))


def _modal(deps: Deps, act: Action, ref: CardRef) -> dict[str, Any]:
    raw = ref.encode(deps.settings.ref_secret())
    if act is Action.WONT_DO:
        return blocks.wont_do_modal(raw)
    if act is Action.LINK:
        return blocks.link_modal(raw)
    if act is Action.ACCOUNT:
        return blocks.account_modal(raw, account_options(deps))
    return blocks.duplicate_modal(raw, service.modal_candidates(deps, ref))


def _modal_input(view: dict[str, Any]) -> tuple[Action, Field, str | None]:
    act, field = MODAL_FIELD[TriageModal(view["callback_id"])]
    state = read_state(view)
    if act is Action.ACCOUNT and not any(b.get("block_id") == field.value for b in view.get("blocks", [])):
        field = Field.NEW_ACCOUNT  # no accounts yet, so no picker: errors go to the name field
    if act is Action.ACCOUNT and not state.get(field.value) and state.get(Field.NEW_ACCOUNT.value):
        return act, field, f"{NEW}{state[Field.NEW_ACCOUNT.value]}"  # a new account, named by hand
    return act, field, state.get(field.value)


def modal_before_ack(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """(errors, applied). Before the ack only caches and the database are used; an unknown clicker waits."""
    act, field, value = _modal_input(view)
    if not value:
        return {field.value: "Required."}, False
    user, team = clicker(body)
    verdict = staff_cached(deps.slack, deps.settings, user, team)
    if verdict is None:
        return {}, False
    try:
        if not verdict:
            raise UserFacingError(NOT_STAFF)
        service.apply(deps, CardRef.parse(view.get("private_metadata"), deps.settings.ref_secret()), act, user, value)
    except UserFacingError as exc:
        return {field.value: str(exc)[:150]}, False
    return {}, True


def on_modal_after_ack(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Finishes a submission whose clicker was not in the caches; refusals are DM'd."""
    act, _field, value = _modal_input(view)
    user, team = clicker(body)
    try:
        require_staff(deps.slack, deps.settings, user, team)
        service.apply(deps, CardRef.parse(view.get("private_metadata"), deps.settings.ref_secret()), act, user, value)
    except UserFacingError as exc:
        deps.slack.post(user, f"Nothing changed: {exc}")
