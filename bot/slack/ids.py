"""The ids Slack sends back to us: callback_ids, action_ids and block_ids of everything we render."""

from __future__ import annotations

from enum import StrEnum


class Callback(StrEnum):
    """callback_ids of shortcuts and modals; manifest.yml uses the shortcut ones."""

    LOG_SHORTCUT = "log_feedback"
    GLOBAL_SHORTCUT = "feedback_global"
    LOG_MODAL = "log_feedback_modal"
    FEEDBACK_MODAL = "feedback_modal"
    LOOP_EDIT_MODAL = "loop_edit_modal"
    NPS_REASON_MODAL = "nps_reason_modal"
    NPS_STAFF_MODAL = "nps_staff_modal"


class Action(StrEnum):
    """action_ids of the triage controls (cards and App Home); one listener handles the `triage.` prefix."""

    TYPE = "triage.type"
    THEME = "triage.theme"
    IMPACT = "triage.impact"
    OWNER = "triage.owner"
    ROUTE = "triage.route_linear"
    LINK = "triage.link_linear"
    ROADMAP = "triage.roadmap"
    QUICK_WIN = "triage.quick_win"
    WONT_DO = "triage.wont_do"
    DUPLICATE = "triage.duplicate"
    NOT_FEEDBACK = "triage.not_feedback"
    UNDO = "triage.undo"
    PROMOTE = "triage.promote"
    ACCOUNT = "triage.account"
    HOME_FILTER = "home.filter"
    LOOP_SEND = "loop.send"
    LOOP_EDIT = "loop.edit"
    LOOP_SKIP = "loop.skip"
    LOOP_TOLD = "loop.told"
    LOOP_RETRY = "loop.retry"
    NPS_SCORE = "nps.score"
    NPS_REASON = "nps.reason"
    NPS_SEND = "nps.send"
    NPS_EDIT = "nps.edit"
    NPS_SKIP = "nps.skip"
    NPS_CALL = "nps.call"
    NPS_RESOLVE = "nps.resolve"
    NPS_SNOOZE = "nps.snooze"
    CHECKIN_POST = "nps.checkin_post"
    CHECKIN_EDIT = "nps.checkin_edit"
    CHECKIN_SKIP = "nps.checkin_skip"


MODAL_ACTIONS = {Action.LINK, Action.WONT_DO, Action.DUPLICATE, Action.ACCOUNT}


class TriageModal(StrEnum):
    """callback_ids of the modals some triage buttons open."""

    LINK = "triage_link_modal"
    WONT_DO = "triage_wont_do_modal"
    DUPLICATE = "triage_duplicate_modal"
    ACCOUNT = "triage_account_modal"


class Field(StrEnum):
    """block_id == action_id of every modal input, so state lookups are one name."""

    VERBATIM = "verbatim"
    REASON = "reason"
    ISSUE = "issue"
    ORIGINAL = "original"
    CONTEXT = "context"
    SOURCE = "source"
    TYPE_HINT = "type_hint"
    CUSTOMER_TEXT = "customer_text"
    CUSTOMER_USER = "customer_user"
    MESSAGE = "message"
    ACCOUNT = "account"
    NEW_ACCOUNT = "new_account"
    RELEASE_NOTE = "release_note"
    NPS_REASON = "nps_reason"
    NOTE = "note"
