"""What Slack clicks and Linear webhooks mean for the loop (run by handlers; webhooks are stored before the 2xx)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from typing import Any

from bot.accounts.service import require_staff
from bot.deps import Deps
from bot.domain import CardRef, Kind, UserFacingError
from bot.linear.webhook import WebhookEvent
from bot.loop import blocks, service
from bot.slack.ids import Action, Field
from bot.slack.kit import unescape
from bot.slack.payloads import clicker, read_state, reply_target
from storage import loops, queries
from storage.db import urgent

log = logging.getLogger(__name__)
VERBS = {Action.LOOP_SEND: "send", Action.LOOP_SKIP: "skip", Action.LOOP_TOLD: "told"}


def accept_webhook(deps: Deps, event: WebhookEvent, delivery: str | None, body: bytes) -> str:
    """Stores an issue state change about an issue we link to; anything else is acknowledged and ignored."""
    if event.type != "Issue" or event.action == "remove" or not event.issue_id or not event.state_type:
        return f"ignored: {event.type} {event.action} is not an issue state"
    snap = service.IssueSnapshot(
        id=event.issue_id, state_type=event.state_type, state_name=event.state_name, identifier=event.identifier,
        title=event.title, url=event.url, updated_at=event.updated_at,
    )  # fmt: skip
    key = f"linear.webhook:{delivery or hashlib.sha256(body).hexdigest()[:32]}"
    with urgent(), deps.transaction() as session:  # Linear is waiting for the answer: first in line on SQLite
        if not loops.is_linked(session=session, issue_id=event.issue_id):
            return f"ignored: issue {event.identifier or event.issue_id} is not linked to any feedback"
        payload = {"issue": asdict(snap), "source": "webhook", "lane": f"issue:{snap.id}"}
        stored = queries.enqueue(session=session, key=key, kind=Kind.LINEAR_STATE, payload=payload)
    return "stored" if stored else "duplicate delivery"


def on_action(deps: Deps, body: dict[str, Any], action: dict[str, Any]) -> None:
    """Send / Edit / Skip / I told them on an approval DM or in App Home, and Retry on a failed delivery."""
    user, team = clicker(body)
    try:
        require_staff(deps.slack, deps.settings, user, team)
        note = _run(deps, body, action, user)
    except UserFacingError as exc:
        note = str(exc)
    if note:
        channel, trigger = reply_target(body)
        deps.slack.tell(user, note, channel=channel, trigger_id=trigger)


def _run(deps: Deps, body: dict[str, Any], action: dict[str, Any], user: str) -> str | None:
    try:
        act = Action(str(action.get("action_id")))
    except ValueError as exc:
        raise UserFacingError(f"Unknown action {action.get('action_id')!r}.") from exc
    if act is Action.LOOP_RETRY:
        ref = CardRef.parse(action.get("value"), service.retry_secret(deps.settings))
        return service.retry(deps, ref.feedback_id)
    ref = CardRef.parse(action.get("value"), service.ref_secret(deps.settings))
    if act is Action.LOOP_EDIT:
        with deps.transaction() as session:
            msg = service.message(session, ref.feedback_id)
            view = service.draft_view(deps, session, msg)
        deps.slack.open_view(body["trigger_id"], blocks.edit_modal(view, unescape(view.text)))
        return None
    if act not in VERBS:
        raise UserFacingError(f"Unknown action {act.value!r}.")
    return service.decide(deps, ref, VERBS[act], user)


def edit_errors(view: dict[str, Any]) -> dict[str, str]:
    """Checked in the ack: an empty message is refused where staff typed it."""
    text = (read_state(view).get(Field.MESSAGE.value) or "").strip()
    return {} if text else {Field.MESSAGE.value: "The message cannot be empty."}


def on_edit(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Saves the edited wording on the draft; a refusal (already sent, edited meanwhile) is told by DM."""
    user, team = clicker(body)
    values = read_state(view)
    try:
        require_staff(deps.slack, deps.settings, user, team)
        ref = CardRef.parse(view.get("private_metadata"), service.ref_secret(deps.settings))
        service.edit(deps, ref, user, values.get(Field.MESSAGE.value) or "", values.get(Field.RELEASE_NOTE.value))
    except UserFacingError as exc:
        deps.slack.tell(user, str(exc))
