"""Who counts as staff: the one check every capture and triage path uses, with one refusal wording."""

from __future__ import annotations

from bot.domain import UserFacingError
from bot.settings import Settings
from bot.slack.gateway import SlackGateway

NOT_STAFF = "Only members of the team that installed Feedback Loop can log or triage feedback."


def is_staff(slack: SlackGateway, settings: Settings, user_id: str, team_id: str | None = None) -> bool:
    """Full members of the installing workspace (not guests, not Slack Connect users), and of
    FEEDBACK_STAFF_USERGROUP when it is set; may ask Slack (users.info, usergroups.users.list)."""
    if (team_id and team_id != slack.team_id) or not slack.is_member(user_id, team_id):
        return False
    group = settings.feedback_staff_usergroup
    return not group or user_id in slack.usergroup_members(group)


def require_staff(slack: SlackGateway, settings: Settings, user_id: str, team_id: str | None = None) -> None:
    """is_staff or a UserFacingError with the one refusal wording."""
    if not is_staff(slack, settings, user_id, team_id):
        raise UserFacingError(NOT_STAFF)


def staff_cached(slack: SlackGateway, settings: Settings, user_id: str, team_id: str | None) -> bool | None:
    """is_staff from the caches alone (safe before an ack); None when the answer needs Slack."""
    return slack.member_cached(user_id, team_id, settings.feedback_staff_usergroup)
