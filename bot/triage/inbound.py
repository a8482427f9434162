"""What a click on a card or in App Home means: check the clicker, verify the button, run the triage action."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.capture.inbound import read_state
from bot.deps import Deps
from bot.domain import CardRef, HomeItem, UserFacingError
from bot.triage import blocks
from bot.triage import service as triage
from bot.triage.blocks import MODAL_ACTIONS, Action, Field, TriageModal
from bot.triage.cards import triage_view, who
from storage import queries

log = logging.getLogger(__name__)
MODAL_FIELD = {
    TriageModal.WONT_DO: (Action.WONT_DO, Field.REASON),
    TriageModal.LINK: (Action.LINK, Field.ISSUE),
    TriageModal.DUPLICATE: (Action.DUPLICATE, Field.ORIGINAL),
}
HOME_LISTS = (
    ("Triage queue", ["new"], False),
    ("Assigned to me", ["new", "triaged", "in Linear", "roadmap", "quick win"], True),
    ("Roadmap backlog", ["roadmap"], False),
    ("Maybe feedback", ["maybe"], False),
)


def _clicker(body: dict[str, Any]) -> tuple[str, str | None]:
    user = body.get("user") or {}
    return str(user.get("id", "")), user.get("team_id") or (body.get("team") or {}).get("id")


def _ref(deps: Deps, action: dict[str, Any]) -> CardRef:
    raw = action.get("value") or str(action.get("block_id", "")).partition(".")[2]
    return CardRef.parse(raw, deps.settings.ref_secret())


def _choice(action: dict[str, Any]) -> str | None:
    return action.get("selected_user") or (action.get("selected_option") or {}).get("value")


def on_action(deps: Deps, body: dict[str, Any], action: dict[str, Any]) -> None:
    """One click; any refusal is told to the clicker alone and changes nothing."""
    user, team = _clicker(body)
    action_id = str(action.get("action_id", ""))
    filters = _filters(body)
    try:
        triage.require_triager(deps, user, team)
        if action_id.startswith(Action.HOME_FILTER.value):
            filters[action_id.rsplit(".", 1)[1]] = _choice(action) or ""
        else:
            _run(deps, body, action, user)
    except UserFacingError as exc:
        _tell(deps, body, user, str(exc))
    if (body.get("view") or {}).get("type") == "home" or (body.get("container") or {}).get("type") == "view":
        deps.gateway.publish_home(user, home_view(deps, user, filters))


def _run(deps: Deps, body: dict[str, Any], action: dict[str, Any], user: str) -> None:
    try:
        act = Action(str(action.get("action_id")))
    except ValueError as exc:
        raise UserFacingError(f"Unknown action {action.get('action_id')!r}.") from exc
    ref = _ref(deps, action)
    if act in MODAL_ACTIONS:
        deps.gateway.open_view(body["trigger_id"], _modal(deps, act, ref))
    elif act is Action.UNDO:
        triage.undo(deps, ref, user)
    else:
        triage.apply(deps, ref, act, user, _choice(action))


def _modal(deps: Deps, act: Action, ref: CardRef) -> dict[str, Any]:
    raw = ref.encode(deps.settings.ref_secret())
    if act is Action.WONT_DO:
        return blocks.wont_do_modal(raw)
    if act is Action.LINK:
        return blocks.link_modal(raw)
    return blocks.duplicate_modal(raw, triage.modal_candidates(deps, ref))


def _tell(deps: Deps, body: dict[str, Any], user: str, text: str) -> None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    if channel:
        deps.gateway.ephemeral(channel, user, text)
    elif body.get("trigger_id"):
        deps.gateway.open_view(body["trigger_id"], blocks.notice_modal("Feedback Loop", text))


def _modal_input(view: dict[str, Any]) -> tuple[Action, Field, str | None]:
    act, field = MODAL_FIELD[TriageModal(view["callback_id"])]
    return act, field, read_state(view).get(field.value)


def modal_before_ack(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """(errors, applied). Before the ack only caches and the database are used; an unknown clicker waits."""
    act, field, value = _modal_input(view)
    if not value:
        return {field.value: "Required."}, False
    user, team = _clicker(body)
    verdict = deps.gateway.staff_cached(user, team, deps.settings.feedback_staff_usergroup)
    if verdict is None:
        return {}, False
    try:
        if not verdict:
            raise UserFacingError(triage.NOT_STAFF)
        triage.apply(deps, CardRef.parse(view.get("private_metadata"), deps.settings.ref_secret()), act, user, value)
    except UserFacingError as exc:
        return {field.value: str(exc)[:150]}, False
    return {}, True


def on_modal_after_ack(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Finishes a submission whose clicker was not in the caches; refusals are DM'd."""
    act, _field, value = _modal_input(view)
    user, team = _clicker(body)
    try:
        triage.require_triager(deps, user, team)
        triage.apply(deps, CardRef.parse(view.get("private_metadata"), deps.settings.ref_secret()), act, user, value)
    except UserFacingError as exc:
        deps.gateway.post(user, f"Nothing changed: {exc}")


def _filters(body: dict[str, Any]) -> dict[str, str]:
    view = body.get("view") or {}
    try:
        data = json.loads(view.get("private_metadata") or "{}") if view.get("type") == "home" else {}
    except ValueError:
        data = {}
    return {k: str(v) for k, v in data.items() if k in {"type", "theme"}} if isinstance(data, dict) else {}


def home_view(deps: Deps, user_id: str, filters: dict[str, str] | None = None) -> dict[str, Any]:
    """App Home: queue (oldest first, filtered), assigned to me, roadmap backlog, maybe list; staff only."""
    filters = filters or {}
    try:
        triage.require_triager(deps, user_id, None)
    except UserFacingError:
        return blocks.home([], filters={}, themes=[], staff=False)
    type_ = filters.get("type") if filters.get("type", "").lower() not in {"", "any type"} else None
    theme = filters.get("theme") if filters.get("theme", "").lower() not in {"", "any theme"} else None
    secret = deps.settings.ref_secret()
    with deps.transaction() as session:
        sections: list[tuple[str, list[HomeItem]]] = []
        shown: set[int] = set()
        for title, statuses, mine in HOME_LISTS:
            rows = queries.feedback_list(
                session=session,
                statuses=statuses,
                owner_id=user_id if mine else None,
                type_=type_,
                theme=theme,
                limit=8 if title == "Triage queue" else 5,
            )
            rows = [fb for fb in rows if fb.id not in shown]  # block_ids must be unique within a view
            shown.update(fb.id for fb in rows)
            sections.append(
                (
                    title,
                    [
                        HomeItem(
                            fb.id,
                            fb.status,
                            who(fb),
                            fb.text,
                            triage_view(session, fb, secret),
                            fb.suggested_type,
                            fb.suggested_theme,
                        )
                        for fb in rows
                    ],
                )
            )
        themes = [t.name for t in queries.themes(session=session)]
    return blocks.home(sections, filters=filters, themes=themes)
