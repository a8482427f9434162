"""register(app, deps): the one list of listeners, so manifest.yml can be checked against it."""

from __future__ import annotations

import re

from slack_bolt import App

from bot.deps import Deps
from bot.slack.ids import Callback, TriageModal
from handlers import actions, commands, errors, events, middleware, views

EVENTS = (
    "message",
    "reaction_added",
    "app_home_opened",
    "member_joined_channel",
    "member_left_channel",
    "user_change",
    "channel_shared",
    "channel_unshared",
)
COMMANDS = ("/feedback",)
SHORTCUTS = (Callback.LOG_SHORTCUT.value, Callback.GLOBAL_SHORTCUT.value)
VIEWS = (
    Callback.LOG_MODAL.value,
    Callback.FEEDBACK_MODAL.value,
    Callback.LOOP_EDIT_MODAL.value,
    Callback.NPS_REASON_MODAL.value,
    Callback.NPS_STAFF_MODAL.value,
    *(m.value for m in TriageModal),
)
TRIAGE_ACTIONS = re.compile(r"^triage\.")
HOME_ACTIONS = re.compile(r"^home\.")
LOOP_ACTIONS = re.compile(r"^loop\.")
NPS_ACTIONS = re.compile(r"^nps\.")


def register(app: App, deps: Deps) -> None:
    """Wires every listener; handlers stay glue and call bot/ services."""
    app.use(middleware.inject(deps))
    for name in ("message", "reaction_added", "member_joined_channel", "member_left_channel", "user_change",
                 "channel_shared", "channel_unshared"):  # fmt: skip
        app.event(name)(events.on_capture_event)
    app.event("app_home_opened")(events.on_app_home_opened)
    app.shortcut(Callback.LOG_SHORTCUT.value)(commands.on_log_shortcut)
    app.shortcut(Callback.GLOBAL_SHORTCUT.value)(commands.on_feedback_command)
    app.command("/feedback")(commands.on_feedback_command)
    app.view(Callback.LOG_MODAL.value)(views.on_log_submitted)
    app.view(Callback.FEEDBACK_MODAL.value)(views.on_feedback_submitted)
    app.action(TRIAGE_ACTIONS)(actions.on_triage_action)
    app.action(HOME_ACTIONS)(actions.on_home_action)
    app.action(LOOP_ACTIONS)(actions.on_loop_action)
    app.view(Callback.LOOP_EDIT_MODAL.value)(views.on_loop_edit)
    app.action(NPS_ACTIONS)(actions.on_nps_action)
    app.view(Callback.NPS_REASON_MODAL.value)(views.on_nps_reason)
    app.view(Callback.NPS_STAFF_MODAL.value)(views.on_nps_staff_modal)
    for modal in TriageModal:
        app.view(modal.value)(views.on_triage_modal)
    app.error(errors.boundary(deps))
