"""Reports through the real app: the scheduler's clock across week boundaries and an outage (one digest per
period, also with two schedulers), posting with chart and thread, the CLI, export and the Slack-export import."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import create_app, main
from bot.console import Console
from bot.console.fake_slack import FakeSlack
from bot.reports.export import write
from storage.db import utcnow
from storage.models import Feedback, OutboxItem
from tests.conftest import payload, start_console
from tests.test_capture_scenarios import customer_message, send
from tests.test_loop import linked_item
from tests.test_triage import capture

pytestmark = pytest.mark.slow


def next_monday(after: datetime, hour: int = 9, minute: int = 30) -> datetime:
    day = (after + timedelta(days=7 - after.weekday())).date()
    return datetime(day.year, day.month, day.day, hour, minute)


def digest_rows(bot: Console) -> list[OutboxItem]:
    with bot.bot.deps.transaction() as s:
        return list(s.scalars(select(OutboxItem).where(OutboxItem.kind == "report.post").order_by(OutboxItem.id)))


def test_one_digest_per_week_across_boundaries_an_outage_and_two_schedulers(any_bot: Console) -> None:
    bot = any_bot
    other = create_app(bot.settings, model=False)  # a second scheduler process by mistake, same database
    start = next_monday(utcnow() + timedelta(days=7), hour=0, minute=0)
    outage = (start + timedelta(days=19, hours=12), start + timedelta(days=22, hours=12))  # spans Monday 09:00
    clock = start
    try:
        while clock < start + timedelta(days=28, hours=18):
            if not outage[0] <= clock < outage[1]:
                for app in (bot.bot, other):
                    app.deps.now = lambda c=clock: c
                    app.scheduler.run_now("weekly-digest")
            clock += timedelta(hours=6)
        keys = [row.key for row in digest_rows(bot)]
        weeks = [(start + timedelta(days=7 * n - 1)).isocalendar() for n in range(5)]
        assert keys == [f"digest:{w.year}-W{w.week:02d}" for w in weeks]  # the Monday after the outage, late
        bot.settle()
        posted = [m for m in bot.fake.messages("C0TRIAGE") if "Weekly feedback digest" in m.get("text", "")]
        assert len(posted) == 5 and len(bot.fake.uploads) == 5
    finally:
        other.close()


def test_digest_posts_with_its_chart_in_the_thread_and_a_month_with_a_spike_gets_details(bot: Console) -> None:
    linked_item(bot)
    bot.move_issue("ENG-7", "completed")
    bot.settle()
    bot.bot.deps.now = lambda: next_monday(utcnow())
    assert bot.bot.scheduler.run_now("weekly-digest")["queued"] is True
    assert bot.bot.scheduler.run_now("weekly-digest")["queued"] is False
    bot.settle()
    [digest] = [m for m in bot.fake.messages("C0TRIAGE") if "Weekly feedback digest" in m.get("text", "")]
    body = json.dumps(digest["blocks"])
    assert "1 new feedback items" in body and "ENG-7" in body and "Reporting" in body
    [upload] = bot.fake.uploads
    assert upload["thread_ts"] == digest["ts"] and upload["content"][:8] == b"\x89PNG\r\n\x1a\n"
    month_start = datetime(utcnow().year, utcnow().month, 1)
    with bot.bot.deps.transaction() as s:
        for n in range(9):  # a quiet theme, then a burst of 7 in one week of this month
            when = month_start + (timedelta(days=3) if n < 7 else -timedelta(weeks=n))
            s.add(Feedback(dedupe_key=f"spike:{n}", text=f"Invoices are wrong {n}", source="slack", status="triaged",
                           capture_method="auto", type="Bug", theme="Billing", created_at=when))  # fmt: skip
    bot.bot.deps.now = lambda: (month_start + timedelta(days=32)).replace(day=1, hour=9, minute=30)
    assert bot.bot.scheduler.run_now("monthly-report")["queued"] is True
    bot.settle()
    [report] = [m for m in bot.fake.messages("C0TRIAGE") if "Monthly feedback trends" in m.get("text", "")
                and m.get("thread_ts") in (None, m["ts"])]  # fmt: skip
    details = [m for m in bot.fake.messages("C0TRIAGE") if m.get("thread_ts") == report["ts"] and m is not report]
    assert any("Billing" in m["text"] for m in details)


def test_stalled_promise_is_listed_when_the_customer_spoke_last(bot: Console) -> None:
    fb = capture(bot, "Can you confirm the SSO timeline?")
    for user, team, text in (("U0STAFF", "T0OURTEAM", "We'll get back to you this week"),
                             ("U0CUST", "T0CUSTOMER", "Any news?")):  # fmt: skip
        env = customer_message(bot, text)
        msg = bot.fake.post_as_user("C0SHARED", user, text, thread_ts=fb.message_ts)
        env["event"].update(ts=msg["ts"], event_ts=msg["ts"], user=user, user_team=team, team=team,
                            source_team=team, thread_ts=fb.message_ts)  # fmt: skip
        send(bot, env)
        bot.settle()
    bot.bot.deps.now = lambda: utcnow() + timedelta(days=4)
    stalled = bot.report("weekly").split("## Stalled promises")[1].split("##")[0]
    assert f"#{fb.id}" in stalled and "waiting 4.0 days" in stalled


def test_report_cli_posts_once_per_period_without_a_server(tmp_path: Path, monkeypatch, capsys) -> None:
    with FakeSlack() as fake:
        fake.add_channel("C0DIGEST", "feedback-digest")
        env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}", "SLACK_BOT_TOKEN": "xoxb-cli",
               "SLACK_API_URL": fake.url, "FEEDBACK_DIGEST_CHANNEL": "C0DIGEST", "FEEDBACK_SUGGESTIONS": "false",
               "FEEDBACKBOT_CONFIG": str(tmp_path / "none.toml")}  # fmt: skip
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        out = tmp_path / "digest.md"
        assert main(["--log-level", "WARNING", "report", "weekly", "--post", "--out", str(out)]) == 0
        assert "posted digest:" in capsys.readouterr().out
        assert main(["--log-level", "WARNING", "report", "weekly", "--post"]) == 0
        assert "already posted" in capsys.readouterr().out
        assert len([m for m in fake.messages("C0DIGEST") if "Weekly feedback digest" in m.get("text", "")]) == 1
        assert len(fake.uploads) == 1 and fake.calls_to("apps.connections.open") == []
        assert out.read_text().startswith("# Weekly feedback digest") and out.with_suffix(".png").exists()
        assert main(["report", "monthly", "--since", "2026-02-14"]) == 0
        assert "February 2026" in capsys.readouterr().out


def test_export_streams_items_with_history_routing_and_loop_state(bot: Console) -> None:
    linked_item(bot)
    bot.move_issue("ENG-7", "started")
    bot.settle()
    capture(bot, "Second request")
    with bot.bot.deps.transaction() as session:
        jsonl, table = io.StringIO(), io.StringIO()
        assert write(session, "jsonl", jsonl) == 2
        assert write(session, "csv", table) == 2
    first = json.loads(jsonl.getvalue().splitlines()[0])
    assert first["linear"][0]["identifier"] == "ENG-7" and first["loop"][0]["stage"] == "update"
    assert any(e["kind"] == "captured" for e in first["history"])
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert rows[0]["text"] == first["text"] and json.loads(rows[0]["linear"])[0]["identifier"] == "ENG-7"


def _slack_export(root: Path) -> None:
    """A standard workspace export: channels.json, users.json and one JSON file per channel and day; the
    messages are the documented message event's fields."""
    root.mkdir()
    (root / "channels.json").write_text(json.dumps([{"id": "C0SHARED", "name": "acme-shared"},
                                                    {"id": "C0INTERNAL", "name": "general"}]))  # fmt: skip
    users = [{"id": u, "team_id": "T0OURTEAM", "name": u.lower()} for u in ("U0STAFF", "U0STAFF2", "U0BOT")]
    (root / "users.json").write_text(json.dumps(users))
    base = payload("slack_event_message_external.json")["event"]
    day: list[Any] = [
        base | {"ts": "1700000000.000100", "text": "Exports drop rows", "user_profile": {"real_name": "Carol"}},
        base | {"ts": "1700000100.000200", "text": "We'll look", "user": "U0STAFF", "user_team": "T0OURTEAM",
                "team": "T0OURTEAM", "source_team": "T0OURTEAM"},
        base | {"ts": "1700000200.000300", "text": "bot says hi", "bot_id": "B1", "subtype": "bot_message"},
        {"type": "message", "text": "no user or ts"},
        base | {"ts": "1700000250.000250", "user_profile": "not an object"},
        base | {"ts": "1700000300.000400", "text": "And SSO please", "thread_ts": "1700000000.000100"},
    ]  # fmt: skip
    (root / "acme-shared").mkdir()
    (root / "acme-shared" / "2023-11-14.json").write_text(json.dumps(day))
    (root / "acme-shared" / "2023-11-15.json").write_text("{not json")


def test_slack_export_import_is_idempotent_and_a_later_live_event_is_not_a_second_item(
    bot: Console, tmp_path: Path, monkeypatch, capsys
) -> None:
    _slack_export(tmp_path / "export")
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as zf:  # zipped as a folder: one more level inside
        for f in (tmp_path / "export").rglob("*"):
            zf.write(f, f.relative_to(tmp_path))
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)
    monkeypatch.setenv("FEEDBACKBOT_CONFIG", str(tmp_path / "none.toml"))
    assert main(["import", "slack-export", str(tmp_path / "export"), "--channel", "acme-shared"]) == 1
    report = capsys.readouterr()
    assert "imported 2 new items" in report.out and "2023-11-14.json message 4" in report.err
    assert "2023-11-14.json message 5" in report.err  # a malformed profile is reported, the day still imports
    assert "2023-11-15.json: not JSON" in report.err
    assert main(["import", "slack-export", str(tmp_path / "export.zip"), "--channel", "#acme-shared"]) == 1
    assert "imported 0 new items; 2 were already stored" in capsys.readouterr().out
    assert main(["import", "slack-export", str(tmp_path / "export"), "--channel", "nope"]) == 2
    with bot.bot.deps.transaction() as s:
        items = list(s.scalars(select(Feedback).order_by(Feedback.id)))
        outbox = list(s.scalars(select(OutboxItem)))
    assert [f.text for f in items] == ["Exports drop rows", "And SSO please"] and outbox == []
    assert items[0].dedupe_key == "msg:C0SHARED:1700000000.000100" and "import" in items[0].tags
    assert items[0].created_at.year == 2023  # dated when it was said, not when it was imported
    live = customer_message(bot, "Exports drop rows")
    live["event"].update(ts="1700000000.000100", event_ts="1700000000.000100")
    send(bot, live)
    bot.settle()
    with bot.bot.deps.transaction() as s:
        assert len(list(s.scalars(select(Feedback)))) == 2


def test_reports_are_never_posted_to_a_shared_channel(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_digest_channel="C0SHARED")  # shared with a customer: refused
    try:
        bot.bot.deps.now = lambda: next_monday(utcnow())
        assert bot.bot.scheduler.run_now("weekly-digest")["queued"] is True
        bot.settle()
        [row] = digest_rows(bot)
        assert row.status == "failed" and "shared with another organisation" in (row.last_error or "")
        assert not [m for m in bot.fake.messages("C0SHARED") if "digest" in m.get("text", "").lower()]
    finally:
        bot.close()
