"""What each Slack entry point means for capture: called by handlers/ after ack()."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from bot.accounts.service import account_options, require_staff
from bot.capture import blocks, events, service
from bot.deps import Deps
from bot.domain import SOURCES, CaptureMethod, CaptureRequest, FeedbackType, Kind, UserFacingError
from bot.slack.gateway import SlackError
from bot.slack.ids import Field
from bot.slack.kit import MODAL_TEXT_LIMIT, escape, truncate, unescape
from bot.slack.payloads import read_state
from storage import queries
from storage.db import urgent

log = logging.getLogger(__name__)


def accept_event(deps: Deps, envelope: dict[str, Any]) -> bool:
    """Stores an Events API envelope we act on, raw and keyed by its event_id, in one short transaction:
    called before the HTTP answer or the Socket Mode ack, so nothing acked can be lost. The worker processes it
    (in arrival order per message); a redelivery finds the key taken. False: not an event we act on."""
    event = envelope.get("event")
    if envelope.get("type") != "event_callback" or not isinstance(event, dict) or event.get("type") not in events.KINDS:
        return False
    # a redelivery repeats the event exactly; the digest keeps two events that share an id (never seen from
    # Slack, but cheap to guard) apart
    digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:12]
    key = f"event:{events.message_ref(event)}:{envelope.get('event_id') or event.get('event_ts')}:{digest}"
    payload: dict[str, Any] = {"envelope": envelope}
    if deps.settings.feedback_burst_seconds > 0 and (lane := events.channel_lane(event)):
        payload["lane"] = lane
    with urgent(), deps.transaction() as session:
        queries.enqueue(session=session, key=key, kind=Kind.EVENT, payload=payload)
    return True


def log_modal(deps: Deps, payload: dict[str, Any]) -> dict[str, Any]:
    """The message shortcut's modal, prefilled from the message in the payload (and its permalink)."""
    msg = payload.get("message") or {}
    channel = (payload.get("channel") or {}).get("id")
    text = unescape(str(msg.get("text") or ""))  # the input shows characters, not Slack's entities
    if not channel or not msg.get("ts"):
        raise UserFacingError("Slack did not say which message this is; try the shortcut again.")
    meta = {
        "channel": channel, "ts": msg.get("ts"), "thread_ts": msg.get("thread_ts"), "user": msg.get("user"),
        "user_team": service.author_team(msg), "long": _digest(truncate(text, MODAL_TEXT_LIMIT))
        if len(text) > MODAL_TEXT_LIMIT else None,
    }  # fmt: skip
    try:
        permalink = deps.slack.permalink(channel, str(msg["ts"]))
    except SlackError:  # best effort: the modal must open within the trigger's 3 s; the card adds the link later
        permalink = None
    return blocks.log_modal(verbatim=text, author=msg.get("user"), permalink=permalink, metadata=meta)


def _digest(text: str) -> str:
    """Short fingerprint of the prefilled verbatim: unchanged means "use the whole message", edited means theirs."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def feedback_modal(deps: Deps, channel_id: str | None) -> dict[str, Any]:
    """The /feedback and global-shortcut modal."""
    return blocks.feedback_modal(metadata={"channel": channel_id}, accounts=account_options(deps))


def _check(values: dict[str, str | None], required: list[Field]) -> dict[str, str]:
    errors = {f.value: "Required." for f in required if not values.get(f.value)}
    if values.get(Field.SOURCE) and values[Field.SOURCE] not in SOURCES:
        errors[Field.SOURCE.value] = "Pick one of the listed sources."
    if values.get(Field.TYPE_HINT) and values[Field.TYPE_HINT] not in {t.value for t in FeedbackType}:
        errors[Field.TYPE_HINT.value] = "Pick one of the listed types."
    return errors


def validate_log(view: dict[str, Any]) -> dict[str, str]:
    """Errors keyed by block_id for response_action="errors"; empty when the modal is good."""
    return _check(read_state(view), [Field.VERBATIM, Field.CONTEXT, Field.SOURCE])


def validate_feedback(view: dict[str, Any]) -> dict[str, str]:
    """Customer (either field), source, verbatim and context are all required."""
    values = read_state(view)
    errors = _check(values, [Field.SOURCE, Field.VERBATIM, Field.CONTEXT])
    if not values.get(Field.CUSTOMER_TEXT) and not values.get(Field.CUSTOMER_USER):
        errors[Field.CUSTOMER_TEXT.value] = "Name the customer, or pick them as a Slack user."
    return errors


def submit_after_ack(
    deps: Deps, user: dict[str, Any], view: dict[str, Any], store: Callable[[Deps, str, dict[str, Any]], int]
) -> None:
    """After the ack: the full staff check (may call Slack), then store; a refusal is DM'd to the submitter."""
    try:
        require_staff(deps.slack, deps.settings, user.get("id", ""), user.get("team_id"))
        store(deps, user["id"], view)
    except UserFacingError as exc:
        deps.slack.post(user.get("id", ""), f"Your feedback was not logged: {exc}")


def submit_log(deps: Deps, user_id: str, view: dict[str, Any]) -> int:
    """Stores the shortcut's message; a message already captured gets this context added."""
    values = read_state(view)
    meta = json.loads(view.get("private_metadata") or "{}")
    team = meta.get("user_team")
    verbatim = values.get(Field.VERBATIM)
    if meta.get("long") and verbatim and _digest(verbatim) == meta["long"]:
        verbatim = None  # the modal held a truncated copy: the worker fetches the full message from Slack
    verbatim = escape(verbatim) if verbatim else verbatim  # typed text is raw; stored text is Slack-encoded
    req = CaptureRequest(
        method=CaptureMethod.SHORTCUT,
        text=verbatim,
        team_id=deps.slack.team_id,
        channel_id=meta.get("channel"),
        message_ts=meta.get("ts"),
        thread_ts=meta.get("thread_ts"),
        author_user_id=meta.get("user"),
        author_team_id=team,
        is_external=bool(team and team != deps.slack.team_id),
        source=values.get(Field.SOURCE) or "slack",
        context=values.get(Field.CONTEXT),
        captured_by=user_id,
        type_hint=values.get(Field.TYPE_HINT),
    )
    return _store(deps, req, values.get(Field.ACCOUNT))


def _store(deps: Deps, req: CaptureRequest, account: str | None) -> int:
    """One capture; feedback logged on behalf of an account (picked in the modal) counts for that account."""
    with deps.transaction() as session:
        fb = service.capture(session=session, settings=deps.settings, req=req).feedback
        if account and account.isdigit():
            fb.account_id = int(account)
        return fb.id


def submit_feedback(deps: Deps, user_id: str, view: dict[str, Any]) -> int:
    """Stores feedback heard elsewhere; the view id is its dedupe key (a double submit is one item)."""
    values = read_state(view)
    customer_user = values.get(Field.CUSTOMER_USER)
    team = deps.slack.user(customer_user).get("team_id") if customer_user else None
    req = CaptureRequest(
        method=CaptureMethod.COMMAND,
        text=escape(values.get(Field.VERBATIM) or ""),
        team_id=deps.slack.team_id,
        author_user_id=customer_user,
        author_team_id=team,
        customer=values.get(Field.CUSTOMER_TEXT),
        is_external=bool(team and team != deps.slack.team_id) or not customer_user,
        source=values.get(Field.SOURCE) or "other",
        context=values.get(Field.CONTEXT),
        captured_by=user_id,
        type_hint=values.get(Field.TYPE_HINT),
        dedupe_key=f"view:{view.get('id')}",
    )
    return _store(deps, req, values.get(Field.ACCOUNT))
