"""NPS end to end: the real app over HTTP, signed Slack payloads, the fake Slack; imports and usage events."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from app import main
from bot.console import Console, payloads
from bot.console.commands import COMMANDS
from bot.console.world import USERS
from bot.nps import service
from bot.nps.service import usage_signature
from storage.db import make_engine, make_sessionmaker, session_scope
from storage.models import Account, AccountTeam, CheckIn, Contact, Feedback, OutboxItem, Survey, UsageEvent
from tests.conftest import make_settings, start_console

CUSTOMER_DMS = ("D0CUST", "D0CUST2")


def seed(bot: Console, *, first_seen: datetime | None = None, signup: date | None = None) -> None:
    """Acme (Enterprise, owner alice) with Carol and Dave as contacts."""
    with bot.bot.deps.transaction() as s:
        acct = Account(name="Acme", plan="Enterprise", tier="Tier 1", owner_id="U0STAFF", arr=Decimal(150000),
                       currency="USD", signup_date=signup, source="import")  # fmt: skip
        s.add(acct)
        s.flush()
        s.add(AccountTeam(team_id="T0CUSTOMER", account_id=acct.id))
        for uid, name in (("U0CUST", "Carol at Acme"), ("U0CUST2", "Dave at Acme")):
            s.add(Contact(slack_user_id=uid, name=name, account_id=acct.id, first_seen=first_seen))


def run(bot: Console, line: str) -> None:
    word, _, rest = line.partition(" ")
    COMMANDS[word](bot, rest)
    bot.settle()


def button(bot: Console, channel: str, action_id: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    for msg in reversed(bot.fake.messages(channel)):
        for block in msg.get("blocks") or []:
            for el in block.get("elements") or []:
                if isinstance(el, dict) and el.get("action_id") == action_id:
                    return msg, block, el
    raise AssertionError(f"no {action_id} button in {channel}")


def click_payload(bot: Console, user: str, channel: str, action_id: str) -> dict[str, Any]:
    msg, block, el = button(bot, channel, action_id)
    bot.last_user = USERS[user][0]
    return (payloads.interaction("block_actions", user) | payloads.card_click(msg, (channel, "directmessage"))
            | {"actions": [payloads.action(el, block)]})  # fmt: skip


def submit_payload(bot: Console, user: str, values: dict[str, str]) -> dict[str, Any]:
    view = bot.last_view
    assert view is not None
    return payloads.interaction("view_submission", user, view={**view, "state": payloads.view_state(view, values)})


def surveys(bot: Console) -> list[Survey]:
    with bot.bot.deps.transaction() as s:
        rows = list(s.scalars(select(Survey).order_by(Survey.id)))
        s.expunge_all()
        return rows


def customer_texts(bot: Console, channel: str) -> list[str]:
    return [m.get("text", "") for m in bot.fake.messages(channel)]


def answer(bot: Console, user: str, score: int, reason: str, times: int = 1) -> None:
    dm = f"D{USERS[user][0][1:]}"
    click = click_payload(bot, user, dm, f"nps.score.{score}")
    for _ in range(times):
        bot.send_interaction(click)
    bot.settle()
    submit = submit_payload(bot, user, {"nps_reason": reason})
    for _ in range(times):
        bot.send_interaction(submit)
    bot.settle()


@pytest.fixture
def acme(any_db_url: str) -> Any:
    console = start_console(any_db_url)
    seed(console, first_seen=console.bot.deps.now() - timedelta(days=45))
    yield console
    console.close()


def test_survey_score_and_reason_each_delivered_four_times_make_one_response(acme: Console) -> None:
    run(acme, "nps send dave")
    text = customer_texts(acme, "D0CUST2")[0]
    assert text == "How likely are you to recommend us to a colleague?"
    body = acme.fake.messages("D0CUST2")[0]["blocks"]
    assert [e["text"]["text"] for e in body[1]["elements"]] == [str(n) for n in range(11)]
    for block in body:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    answer(acme, "dave", 9, "The Slack integration saves us hours", times=4)
    (row,) = surveys(acme)
    assert (row.score, row.reason, row.status) == (9, "The Slack integration saves us hours", "answered")
    with acme.bot.deps.transaction() as s:
        items = list(s.scalars(select(Feedback).where(Feedback.source == "nps")))
        assert len(items) == 1 and items[0].text == "The Slack integration saves us hours"
        assert "nps:promoter" in items[0].tags and "score 9 of 10" in (items[0].context or "")
        assert items[0].account_id is not None and items[0].suggested_type is not None  # suggested like any other
        keys = [o.key for o in s.scalars(select(OutboxItem).where(OutboxItem.key.like("nps.%")))]
    assert sum(k.startswith("nps.confirmation:") for k in keys) == 1
    assert customer_texts(acme, "D0CUST2").count("Thanks for your answer, Dave at Acme. We read every one.") == 1
    # the promoter's follow-up waits for the owner's approval in their DM, then goes once
    assert any("Promoter follow-up to approve" in m["text"] for m in acme.fake.messages("D0STAFF"))
    send = click_payload(acme, "alice", "D0STAFF", "nps.send")
    for _ in range(4):
        acme.send_interaction(send)
    acme.settle()
    asks = [t for t in customer_texts(acme, "D0CUST2") if "review" in t]
    assert len(asks) == 1 and surveys(acme)[0].followup == "sent"


def test_empty_reason_is_refused_in_the_ack_and_a_score_alone_is_kept_and_reminded_once(bot: Console) -> None:
    seed(bot, first_seen=bot.bot.deps.now() - timedelta(days=45))
    run(bot, "nps send dave")
    bot.send_interaction(click_payload(bot, "dave", "D0CUST2", "nps.score.7"))
    bot.settle()
    resp = bot.send_interaction(submit_payload(bot, "dave", {"nps_reason": "   "}))
    assert resp.json() == {"response_action": "errors", "errors": {"nps_reason": "Please tell us the main reason "
                                                                                "for your score."}}  # fmt: skip
    assert surveys(bot)[0].status == "incomplete" and surveys(bot)[0].score == 7
    bot.advance(timedelta(hours=25))
    bot.advance(timedelta(hours=25))
    reminders = [t for t in customer_texts(bot, "D0CUST2") if "What's the main reason" in t]
    assert len(reminders) == 1
    # the reminder carries the button that reopens the modal; the answer then completes the response
    bot.send_interaction(click_payload(bot, "dave", "D0CUST2", "nps.reason"))
    bot.settle()
    bot.send_interaction(submit_payload(bot, "dave", {"nps_reason": "Setup took a while"}))
    bot.settle()
    assert surveys(bot)[0].status == "answered" and surveys(bot)[0].score == 7


def test_a_detractor_never_gets_an_automated_message_on_any_path(bot: Console) -> None:
    seed(bot, first_seen=bot.bot.deps.now() - timedelta(days=45))
    run(bot, "nps send carol")
    bot.send_interaction(click_payload(bot, "carol", "D0CUST", "nps.score.2"))
    bot.settle()
    assert any("Detractor follow-up" in m["text"] for m in bot.fake.messages("D0STAFF"))  # at once, before a reason
    bot.advance(timedelta(hours=30))  # a score without a reason: a passive would be reminded, a detractor is not
    bot.send_interaction(click_payload(bot, "carol", "D0CUST", "nps.reason"))
    bot.settle()
    bot.send_interaction(submit_payload(bot, "carol", {"nps_reason": "Exports break every week"}))
    bot.settle()
    bot.advance(timedelta(days=3))  # follow-up drafting, reminders, overdue sweeps all run
    with bot.bot.deps.transaction() as s:
        row = s.scalars(select(Survey)).one()
        assert service.customer_message(s, row, "followup") is False
        assert service.customer_message(s, row, "reminder") is False
        keys = [o.key for o in s.scalars(select(OutboxItem))]
    assert [k for k in keys if k.startswith(("nps.reminder", "nps.followup:", "nps.promoter", "nps.passive"))] == []
    bot_posts = [m["text"] for m in bot.fake.messages("D0CUST")][1:]  # after the survey itself
    assert bot_posts == ["Thanks for your answer, Carol at Acme. We read every one."]
    # the owner's task: context, reminders until done, overdue in App Home and the digest
    task = next(m for m in bot.fake.messages("D0STAFF") if "Detractor follow-up" in m["text"])
    text = json.dumps(task["blocks"])
    assert "Plan: Enterprise" in text and "ARR: " in text and "150" in text and "Exports break every week" in text
    assert any("Reminder: a call to a detractor" in m["text"] for m in bot.fake.messages("D0STAFF"))
    with bot.bot.deps.transaction() as s:
        assert "Carol at Acme answered 2 (detractor call" in service.overdue(s, bot.settings, bot.bot.deps.now())[0]
    run(bot, "home alice")
    assert "NPS follow-ups overdue" in json.dumps(bot.fake.views["home:U0STAFF"]["blocks"])
    assert "NPS follow-ups overdue" in bot.report("weekly")
    bot.send_interaction(click_payload(bot, "alice", "D0STAFF", "nps.resolve"))
    bot.settle()
    assert surveys(bot)[0].task == "resolved"
    with bot.bot.deps.transaction() as s:
        assert service.overdue(s, bot.settings, bot.bot.deps.now()) == []


def test_only_the_surveyed_person_can_answer_and_forged_values_are_refused(bot: Console) -> None:
    seed(bot, first_seen=bot.bot.deps.now() - timedelta(days=45))
    run(bot, "nps send carol")
    stolen = click_payload(bot, "carol", "D0CUST", "nps.score.0")
    stolen["user"] = {"id": "U0CUST2", "username": "dave", "name": "dave", "team_id": "T0CUSTOMER"}
    bot.send_interaction(stolen)
    forged = click_payload(bot, "carol", "D0CUST", "nps.score.10")
    forged["actions"][0]["value"] = forged["actions"][0]["value"][:-3] + "abc"
    bot.send_interaction(forged)
    bot.settle()
    assert surveys(bot)[0].score is None


def test_cadence_heads_up_a_week_before_then_the_survey_within_the_daily_cap(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, nps_daily_cap=1)
    try:
        seed(bot, first_seen=bot.bot.deps.now() - timedelta(days=25))
        bot.advance(timedelta(hours=1))
        heads_up = [m["text"] for m in bot.fake.messages("D0STAFF") if m["text"].startswith("Heads-up")]
        assert len(heads_up) == 1 and "Carol at Acme" in heads_up[0] and "Dave at Acme" in heads_up[0]
        assert all(not bot.fake.messages(dm) for dm in CUSTOMER_DMS)
        bot.advance(timedelta(days=7))
        assert sum(bool(bot.fake.messages(dm)) for dm in CUSTOMER_DMS) == 1  # the cap: one a day
        bot.advance(timedelta(days=1))
        assert all(bot.fake.messages(dm) for dm in CUSTOMER_DMS)
        bot.advance(timedelta(days=1))
        assert all(len(bot.fake.messages(dm)) == 1 for dm in CUSTOMER_DMS)  # never twice
    finally:
        bot.close()


def test_shared_channel_mode_mentions_the_contact_in_their_channel(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, nps_channel="shared")
    try:
        seed(bot)
        run(bot, "say carol #acme-shared Exports are slow on big files")
        run(bot, "nps send carol")
        last = bot.fake.messages("C0SHARED")[-1]
        assert last["text"].startswith("How likely") and last["blocks"][0]["text"]["text"].startswith("<@U0CUST>")
        assert not bot.fake.messages("D0CUST")
        run(bot, "nps send dave")  # Dave never wrote: his account's channel, found through Carol's message
        assert surveys(bot)[-1].status == "sent" and bot.fake.messages("C0SHARED")[-1]["blocks"][0]["text"][
            "text"].startswith("<@U0CUST2>")  # fmt: skip
    finally:
        bot.close()


def test_a_survey_that_cannot_be_delivered_fails_without_blocking_the_next(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, nps_channel="shared")
    try:
        seed(bot)
        run(bot, "nps send carol")  # no shared channel is known for Acme yet
        row = surveys(bot)[0]
        assert (row.status, row.sent_at) == ("failed", None)
        run(bot, "say carol #acme-shared Exports are slow on big files")
        run(bot, "nps send carol")
        assert surveys(bot)[-1].status == "sent" and len(surveys(bot)) == 2
    finally:
        bot.close()


def signed_usage(bot: Console, body: bytes, secret: str | None = None) -> Any:
    stamp = str(int(time.time()))
    sig = usage_signature(secret or bot.events_secret, stamp, body)
    headers = {"Content-Type": "application/json", "X-Feedback-Timestamp": stamp, "X-Feedback-Signature": sig}
    return bot.http.post("/events/usage", content=body, headers=headers)


def test_usage_events_are_signed_idempotent_and_trigger_milestones_and_check_ins(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, nps_milestones="workflow_completed")
    try:
        seed(bot, first_seen=bot.bot.deps.now() - timedelta(days=2))  # too new for a tenure survey
        when = f"{bot.bot.deps.now():%Y-%m-%dT%H:%M:%S}Z"
        body = json.dumps(
            {
                "events": [
                    {"contact": "U0CUST", "event": "workflow_completed", "time": when},
                    {"contact": "U0CUST2", "event": "export_used", "time": when},
                    {"contact": "nobody@x.com", "event": "export_used", "time": when},
                ]
            }
        ).encode()
        assert bot.http.post("/events/usage", content=body).status_code == 401
        assert signed_usage(bot, body, "wrong").status_code == 401
        first = signed_usage(bot, body)
        assert first.status_code == 422 and first.json()["stored"] == 2 and "nobody@x.com" in first.json()["errors"][0]
        assert signed_usage(bot, body).json()["duplicates"] == 2
        assert signed_usage(bot, b"{not json").status_code == 400
        bot.advance(timedelta(hours=1))
        assert bot.fake.messages("D0CUST")  # the milestone asked Carol at once
        assert not bot.fake.messages("D0CUST2")  # Dave's first use made a check-in prompt for the owner instead
        with bot.bot.deps.transaction() as s:
            assert [c.stage for c in s.scalars(select(CheckIn))] == ["use:export_used:1:2"]
            assert len(list(s.scalars(select(UsageEvent)))) == 2
    finally:
        bot.close()


def test_check_in_posted_by_the_owner_and_answers_in_its_thread_become_tagged_feedback(bot: Console) -> None:
    seed(bot, signup=(bot.bot.deps.now() - timedelta(days=30)).date())
    run(bot, "say carol #acme-shared The audit log is hard to search")
    bot.advance(timedelta(hours=1))
    prompt = button(bot, "D0STAFF", "nps.checkin_post")[0]  # beside the heads-up for Acme's contacts, in any order
    assert "What's frustrating?" in json.dumps(prompt["blocks"])
    bot.send_interaction(click_payload(bot, "alice", "D0STAFF", "nps.checkin_post"))
    bot.settle()
    question = bot.fake.messages("C0SHARED")[-1]
    assert "What's frustrating?" in question["text"]
    thread = {"type": "message", "channel": "C0SHARED", "user": "U0CUST2", "text": "Permissions are confusing",
              "ts": f"{time.time():.6f}", "thread_ts": question["ts"], "team": "T0CUSTOMER",
              "user_team": "T0CUSTOMER", "event_ts": f"{time.time():.6f}", "channel_type": "channel"}  # fmt: skip
    bot.send_event(thread, shared=True)
    bot.settle()
    with bot.bot.deps.transaction() as s:
        fb = s.scalars(select(Feedback).where(Feedback.text == "Permissions are confusing")).one()
        assert fb.source == "checkin" and "checkin:day30" in fb.tags


IMPORT = (
    "email,slack_user_id,score,reason,date\n"
    "carol@acme.com,,3,Too slow,2026-10-01\n"
    ",U0CUST2,10,Great support,2026-10-02T09:00:00Z\n"
)


def test_score_import_reports_bad_rows_and_a_reimport_changes_nothing(
    sqlite_url, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    settings = make_settings(sqlite_url)
    engine = make_engine(sqlite_url)
    from storage import migrate

    migrate.upgrade(engine)
    with session_scope(make_sessionmaker(engine)) as s:
        acct = Account(name="Acme", plan="Pro", source="import")
        s.add(acct)
        s.flush()
        s.add(Contact(email="carol@acme.com", name="Carol", account_id=acct.id))
        s.add(Contact(slack_user_id="U0CUST2", name="Dave", account_id=acct.id))
    bad = tmp_path / "bad.csv"
    bad.write_bytes((IMPORT + "nobody@x.com,,5,?,2026-10-03\ncarol@acme.com,,11,x,2026-10-04\n"
                     "carol@acme.com,,7,x,yesterday\n").encode("utf-16"))  # fmt: skip
    assert main(["nps", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 4: no contact 'nobody@x.com'" in err and "line 5, column 'score'" in err
    assert "line 6, column 'date'" in err and "nothing was imported" in err
    good = tmp_path / "good.csv"
    good.write_bytes(IMPORT.replace(",", ";").replace("Too slow", "Trop lent, très").encode("cp1252"))
    assert main(["nps", "import", str(good)]) == 0
    assert main(["nps", "import", str(good)]) == 0
    assert "0 imported, 2 already there" in capsys.readouterr().out
    assert main(["nps", "import", str(bad), "--skip-bad-rows"]) == 0
    with session_scope(make_sessionmaker(engine)) as s:
        rows = list(s.scalars(select(Survey)))
        assert sorted(r.score or 0 for r in rows) == [3, 10]
        assert {r.reason for r in rows} == {"Trop lent, très", "Great support"}
    assert settings.nps_channel == "dm"


def test_report_nps_cli_and_dry_run(sqlite_url: str, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    engine = make_engine(sqlite_url)
    from storage import migrate

    migrate.upgrade(engine)
    now = datetime.utcnow()
    with session_scope(make_sessionmaker(engine)) as s:
        ent = Account(name="Big", plan="Enterprise", source="import", signup_date=date(2025, 2, 1))
        pro = Account(name="Small", plan="Pro", source="import")
        s.add_all([ent, pro])
        s.flush()
        for i in range(60):
            c = Contact(email=f"p{i}@x.com", name=f"P{i}", account_id=(ent if i < 40 else pro).id,
                        first_seen=now - timedelta(days=100))  # fmt: skip
            s.add(c)
            s.flush()
            s.add(Survey(contact_id=c.id, account_id=c.account_id, trigger="import", status="answered",
                         score=(2 if i < 40 else 10), answered_at=now - timedelta(days=5)))  # fmt: skip
    assert main(["report", "nps", "--by", "plan", "--out", str(tmp_path / "nps.md")]) == 0
    out = capsys.readouterr().out
    assert "NPS -33 (95% CI" in out and "n=60" in out
    assert "| Enterprise | ⚠ n<50: no score |" in out and "n=40" in out
    assert "plan=Enterprise" in out.split("## Alerts")[1]
    assert (tmp_path / "nps.md").read_text() == out
    assert main(["nps", "run", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "never  P0 (Big): answered on" not in plan and "later  P0 (Big) from" in plan
    assert "0 of 60 contacts would be scheduled (dry run)." in plan


def test_passive_gets_the_resource_for_its_theme_after_approval(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, nps_resources={"Reporting": "https://docs.example.com/reports",
                                                   "default": "https://docs.example.com"})  # fmt: skip
    try:
        seed(bot, first_seen=bot.bot.deps.now() - timedelta(days=45))
        run(bot, "nps send dave")
        answer(bot, "dave", 8, "The CSV export and the dashboards are missing some reporting options")
        row = surveys(bot)[0]
        assert row.followup == "waiting" and "https://docs.example.com" in (row.followup_text or "")
        assert "call" in (row.followup_text or "")
        bot.send_interaction(click_payload(bot, "alice", "D0STAFF", "nps.skip"))
        bot.settle()
        assert surveys(bot)[0].followup == "skipped"
        assert [m["text"] for m in bot.fake.messages("D0CUST2")][1:] == [
            "Thanks for your answer, Dave at Acme. We read every one."]  # fmt: skip
    finally:
        bot.close()


def test_alert_fires_once_a_week_only_when_a_segment_is_surely_low(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, nps_alert_below=30)
    try:
        now = bot.bot.deps.now()
        with bot.bot.deps.transaction() as s:
            low, noisy = Account(name="Low", plan="Pro", source="import"), Account(name="Few", plan="Team",
                                                                                   source="import")  # fmt: skip
            s.add_all([low, noisy])
            s.flush()
            for i in range(64):
                acct = low if i < 60 else noisy
                c = Contact(email=f"c{i}@x.com", account_id=acct.id)
                s.add(c)
                s.flush()
                score = (3 if i % 3 else 9) if acct is low else (2 if i % 2 else 10)  # Team: NPS 0 on 4 answers
                s.add(Survey(contact_id=c.id, account_id=acct.id, trigger="import", status="answered", score=score,
                             answered_at=now - timedelta(days=3)))  # fmt: skip
        bot.advance(timedelta(hours=1))
        bot.advance(timedelta(hours=1))
        alerts = [m["text"] for m in bot.fake.messages("C0TRIAGE") if "rotating_light" in m["text"]]
        assert any("plan=Pro" in a for a in alerts) and any("overall" in a for a in alerts)
        assert not any("plan=Team" in a for a in alerts)  # 4 answers: the interval reaches above 30
        assert len(alerts) == len(set(alerts))
    finally:
        bot.close()
