"""Close-the-loop pieces without the app: quiet hours, templates, hostile text, Block Kit limits, webhook parsing."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from slack_sdk.models.views import View

from bot.domain import LoopDraft, LoopStage
from bot.linear.webhook import parse_webhook
from bot.loop import blocks
from bot.loop.service import render, stage_for
from bot.settings import QuietHours, Settings
from tests.conftest import PAYLOADS
from tests.test_triage import _check_limits


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        ("2026-12-02 12:00", "UTC", "2026-12-02 12:00"),  # a Wednesday noon: allowed
        ("2026-12-02 21:30", "UTC", "2026-12-03 08:00"),  # evening: next morning
        ("2026-12-03 07:59", "Europe/Paris", "2026-12-03 07:59"),  # 08:59 in Paris: allowed
        ("2026-12-04 19:59", "Europe/Paris", "2026-12-07 07:00"),  # Friday 20:59 Paris: Monday 08:00 Paris
        ("2026-12-05 10:00", "UTC", "2026-12-07 08:00"),  # Saturday: Monday morning
        ("2026-03-28 23:30", "Europe/Paris", "2026-03-30 06:00"),  # across the spring DST change
    ],
)
def test_quiet_hours_next_allowed(now: str, tz: str, expected: str) -> None:
    quiet = QuietHours.parse("20:00-08:00,weekends")
    assert quiet.next_allowed(datetime.fromisoformat(now), tz) == datetime.fromisoformat(expected)


def test_quiet_hours_parsing_and_settings_refuse_typos() -> None:
    assert QuietHours.parse("") == QuietHours()
    assert QuietHours.parse("12:00-13:30, weekend").windows == ((720, 810),)
    for bad in ("20-08", "25:00-08:00", "08:00-08:00", "nights"):
        with pytest.raises(ValueError):
            QuietHours.parse(bad)
    with pytest.raises(ValidationError):
        Settings(feedback_quiet_hours="evenings")
    with pytest.raises(ValidationError):
        Settings(feedback_tz="Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown message kind"):
        Settings(feedback_templates={"shipped": "x"})
    with pytest.raises(ValidationError, match=r"feedback_templates\.update"):
        Settings(feedback_templates={"update": "Hi {customer}"})
    with pytest.raises(ValidationError, match="FEEDBACK_LOOP_STATES"):
        Settings(feedback_loop_states={"started": "celebrate"})


def test_state_map_by_name_then_type() -> None:
    settings = Settings(feedback_loop_states={"started": "update", "completed": "resolution", "In Review": "update"})
    assert stage_for(settings, "started", "In Progress") is LoopStage.UPDATE
    assert stage_for(settings, "unstarted", "In Review") is LoopStage.UPDATE
    assert stage_for(settings, "canceled", "Canceled") is None  # not mapped here: nothing is offered
    assert stage_for(Settings(), "backlog", "Backlog") is None


def _fb(text: str, author: str | None) -> Any:
    return SimpleNamespace(text=text, author_name=author, customer=None)


def test_templates_quote_only_the_requesters_words_and_nothing_live() -> None:
    settings = Settings(feedback_templates={"update": "Hi {name}: {title}{quote}"})
    hostile = "<!channel> see <https://evil.example|your bank> &lt;b&gt; <@U0OTHER> *bold*"
    text = render(settings, LoopStage.UPDATE, _fb(hostile, "<!here> Mallory"), "Export &amp; import")
    assert "<!" not in text and "<@" not in text and "<http" not in text
    assert "your bank (https://evil.example)" in text and "&lt;b&gt;" in text and "&amp;lt;" not in text
    assert text.startswith("Hi &lt;!here&gt;: Export &amp; import")
    long = render(Settings(), LoopStage.RESOLUTION, _fb("word " * 2000, "Zoë Example"), "CSV")
    assert len(long) < 400 and "Zoë" in long and "Example" not in long  # quoted briefly; greeted by first name


def _draft(**over: Any) -> LoopDraft:
    base: dict[str, Any] = dict(
        message_id=10**9, ref="1.1000000000.7." + "a" * 12, stage="resolution", status="waiting for approval",
        issue="ENG-123", issue_url="https://linear.app/x/issue/ENG-123", customer="C" * 400, channel_id="C0SHARED",
        permalink="https://x.slack.com/archives/C0SHARED/p1", text="word " * 1000, note="n" * 3000,
        when="at once", decided=None,
    )  # fmt: skip
    return LoopDraft(**(base | over))


def test_approval_dm_edit_modal_and_home_rows_pass_block_kit_and_limits() -> None:
    for d in (_draft(), _draft(channel_id=None, stage="update"), _draft(status="told", note=None)):
        text, body = blocks.draft(d)
        _check_limits(body)
        assert len(text) <= 3000
        View(**blocks.edit_modal(d, d.text)).validate_json()
    late = ["#1 · " + "n" * 300 + " · ENG-1 shipped 4 days ago"] * 6
    rows = blocks.home_rows([_draft()] * 6, [("1.1.0." + "b" * 12, "loop.send:9", "x" * 5000)] * 6, late)
    _check_limits(rows)
    View(type="home", blocks=rows).validate_json()
    no_thread = blocks.draft(_draft(channel_id=None))[1]
    assert [e["action_id"] for e in no_thread[-1]["elements"]] == ["loop.told", "loop.edit", "loop.skip"]
    assert blocks.draft(_draft(status="told"))[1][-1]["type"] == "context"  # decided: no buttons left


def test_webhook_fixture_parses_title_updated_at_and_actor() -> None:
    event = parse_webhook((PAYLOADS / "linear_webhook_issue_update.json").read_bytes())
    assert (event.type, event.action, event.state_type, event.state_changed) == ("Issue", "update", "completed", True)
    assert event.title == "CSV export drops non-ASCII characters" and event.updated_at == "2025-11-23T03:53:20.111Z"
    assert event.actor_type == "user"
    comment = parse_webhook((PAYLOADS / "linear_webhook_comment_create.json").read_bytes())
    assert comment.type == "Comment" and comment.state_type is None
    with pytest.raises(ValueError):
        parse_webhook(json.dumps({"action": "update", "type": "Issue", "data": {}}).encode())


def test_staff_release_notes_and_account_names_are_inert_where_they_are_shown() -> None:
    from bot.slack.kit import markdown_name

    text = str(blocks.draft(_draft(note="<!channel> <https://evil.example|docs.example.com>"))[1])
    assert "<!channel>" not in text and "<https://evil" not in text
    assert (
        markdown_name("[Acme](https://evil) ![x](https://t)")
        == "\\[Acme\\]\\(https://evil\\) \\!\\[x\\]\\(https://t\\)"
    )
