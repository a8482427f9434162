"""Close the loop: Linear state changes (webhook or poll) -> drafts staff approve -> one message per requester."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update

from bot.console import Console, payloads
from storage.db import utcnow
from storage.models import Feedback, LinearIssue, LinearLink, LoopMessage, OutboxItem
from tests.conftest import payload, start_console
from tests.test_capture_scenarios import send
from tests.test_triage import capture, card_message, click, link_linear, submit_modal

pytestmark = pytest.mark.slow
DM_ALICE = "D0STAFF"


def loop_posts(bot: Console, channel: str) -> list[dict[str, Any]]:
    """Customer-facing loop messages in a channel (they carry an outbox key `loop.send:` in metadata)."""
    out = []
    for m in bot.fake.messages(channel):
        meta = (m.get("metadata") or {}).get("event_payload") or {}
        if str(meta.get("key", "")).startswith("loop.send:"):
            out.append(m)
    return out


def drafts(bot: Console, channel: str = DM_ALICE) -> list[dict[str, Any]]:
    """Approval DMs in a channel, as they stand now (updated in place)."""
    return [m for m in bot.fake.messages(channel) if "approve the message" in m.get("text", "")]


def press(bot: Console, msg: dict[str, Any], action_id: str, channel: str = DM_ALICE, user: str = "U0STAFF") -> int:
    """A real block_actions payload from the button on the posted DM."""
    block, el = next(
        (b, e) for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id
    )
    body = payload("slack_block_actions.json")
    body["user"].update(id=user, team_id="T0OURTEAM")
    body.update(payloads.card_click(msg, (channel, "directmessage")))
    body["actions"] = [payloads.action(el, block)]
    return bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded").status_code


def messages(bot: Console) -> list[LoopMessage]:
    with bot.bot.deps.transaction() as s:
        return list(s.scalars(select(LoopMessage).order_by(LoopMessage.id)))


def linked_item(bot: Console, text: str = "CSV export drops rows with filters", issue: str = "ENG-7") -> Feedback:
    fb = capture(bot, text)
    link_linear(bot, fb.id, issue)
    return fb


def test_started_drafts_a_dm_and_send_tells_the_customer_once(any_bot: Console) -> None:
    bot = any_bot
    fb = linked_item(bot)
    body = bot.move_issue("ENG-7", "started", webhook=False)
    statuses = []
    threads = [threading.Thread(target=lambda d=d: statuses.append(bot.post_linear(body, delivery=d).status_code))
               for d in ("dlv-1", "dlv-1", "dlv-2", "dlv-3")]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.settle()
    assert statuses == [200] * 4
    [dm] = drafts(bot)
    assert "started working on" in json.dumps(dm["blocks"]) and "Send" in json.dumps(dm["blocks"])
    assert loop_posts(bot, "C0SHARED") == []  # nothing reaches the customer before the Send click
    clicks = [threading.Thread(target=press, args=(bot, dm, "loop.send")) for _ in range(4)]
    for t in clicks:
        t.start()
    for t in clicks:
        t.join()
    bot.settle()
    [sent] = loop_posts(bot, "C0SHARED")
    assert sent["thread_ts"] == fb.message_ts and "CSV export drops rows" in sent["text"]
    assert "<@" not in sent["text"] and "<!" not in sent["text"]
    assert "started: told" in json.dumps(card_message(bot, fb.id)["blocks"])
    [msg] = messages(bot)
    assert msg.status == "sent" and msg.decided_by == "U0STAFF"


def test_resolution_edit_with_release_note_then_send(bot: Console) -> None:
    fb = linked_item(bot)
    bot.move_issue("ENG-7", "completed")
    bot.settle()
    [dm] = drafts(bot)
    assert "is now live" in json.dumps(dm["blocks"])
    press(bot, dm, "loop.edit")
    bot.settle()
    assert submit_modal(bot, {"message": "  "})["response_action"] == "errors"
    submit_modal(
        bot, {"message": "It's live: filters keep every row <!channel>", "release_note": "https://docs.example.com/csv"}
    )
    bot.settle()
    [dm] = drafts(bot)
    press(bot, dm, "loop.send")
    bot.settle()
    [sent] = loop_posts(bot, "C0SHARED")
    assert sent["text"] == "It's live: filters keep every row &lt;!channel&gt;\nhttps://docs.example.com/csv"
    # the later "started" (reopened and restarted) adds nothing: they already heard it shipped
    bot.move_issue("ENG-7", "started")
    bot.settle()
    assert [m.stage for m in messages(bot)] == ["resolution"] and fb.id == messages(bot)[0].feedback_id


def test_auto_mode_sends_without_a_draft_but_canceled_still_asks(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_close_loop="auto")
    try:
        linked_item(bot)
        bot.move_issue("ENG-7", "started")
        bot.settle()
        assert len(loop_posts(bot, "C0SHARED")) == 1 and drafts(bot) == []
        bot.move_issue("ENG-7", "canceled")
        bot.settle()
        assert len(loop_posts(bot, "C0SHARED")) == 1
        [dm] = drafts(bot)
        assert "decided not to build" in json.dumps(dm["blocks"])
        press(bot, dm, "loop.skip")
        bot.settle()
        assert [m.status for m in messages(bot)] == ["sent", "skipped"] and len(loop_posts(bot, "C0SHARED")) == 1
    finally:
        bot.close()


def test_off_mode_tells_nobody(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_close_loop="off")
    try:
        fb = linked_item(bot)
        bot.move_issue("ENG-7", "completed")
        bot.settle()
        assert messages(bot) == [] and drafts(bot) == []
        assert "(Done)" in json.dumps(card_message(bot, fb.id)["blocks"])  # the card still shows the state
    finally:
        bot.close()


def test_merged_duplicates_hear_in_their_own_thread_and_nothing_leaks(bot: Console) -> None:
    bot.fake.add_channel("C0GLOBEX", "globex-shared", is_ext_shared=True)
    bot.fake.add_user("U0GLOBEX", "erin", team_id="T0GLOBEX", real_name="Erin at Globex")
    first = linked_item(bot, "Acme needs the CSV export to keep filtered rows")
    env = payload("slack_event_message_external.json")
    msg = bot.fake.post_as_user("C0GLOBEX", "U0GLOBEX", "Please make exports keep all rows")
    env["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=msg["text"], channel="C0GLOBEX", user="U0GLOBEX",
                        user_team="T0GLOBEX", team="T0GLOBEX")  # fmt: skip
    send(bot, env)
    bot.settle()
    dup = max((f for f in _rows(bot)), key=lambda f: f.id)
    click(bot, dup.id, "triage.duplicate", user="U0STAFF2")
    bot.settle()
    submit_modal(bot, {"original": str(first.id)}, user="U0STAFF2")
    bot.settle()
    assert loop_posts(bot, "C0GLOBEX") == []  # merging tells the customer nothing
    bot.move_issue("ENG-7", "started")
    bot.settle()
    [alice] = drafts(bot, DM_ALICE)
    [bob] = drafts(bot, "D0STAFF2")  # the duplicate's draft goes to whoever merged it
    press(bot, alice, "loop.send")
    press(bot, bob, "loop.send", channel="D0STAFF2", user="U0STAFF2")
    bot.settle()
    [acme], [globex] = loop_posts(bot, "C0SHARED"), loop_posts(bot, "C0GLOBEX")
    assert "Acme needs" in acme["text"] and "Globex" not in acme["text"] and "Erin" not in acme["text"]
    assert "keep all rows" in globex["text"] and "Acme" not in globex["text"] and "Carol" not in globex["text"]
    assert globex["thread_ts"] == msg["ts"]


def _rows(bot: Console) -> list[Feedback]:
    with bot.bot.deps.transaction() as s:
        return list(s.scalars(select(Feedback).order_by(Feedback.id)))


def test_poll_closes_the_loop_without_webhooks_once_however_often_it_runs(any_bot: Console) -> None:
    bot = any_bot
    linked_item(bot)
    bot.move_issue("ENG-7", "started", webhook=False)
    runs = [threading.Thread(target=bot.bot.scheduler.run_now, args=("linear-poll",)) for _ in range(4)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    bot.settle()
    assert len(drafts(bot)) == 1 and len(messages(bot)) == 1
    assert "IssuesByIds" in bot.linear.operations()


def test_webhook_refusals_are_4xx_with_no_message(bot: Console, caplog: pytest.LogCaptureFixture) -> None:
    linked_item(bot)
    body = bot.move_issue("ENG-7", "started", webhook=False)
    assert bot.post_linear(body, signature="0" * 64).status_code == 401
    stale = json.loads(body) | {"webhookTimestamp": json.loads(body)["webhookTimestamp"] - 120_000}
    assert bot.post_linear(json.dumps(stale).encode()).status_code == 401
    assert bot.post_linear(b"{not json").status_code in (400, 401)
    unsigned_ok = json.dumps(
        {"action": "update", "type": "Issue", "webhookTimestamp": stale["webhookTimestamp"] + 120_000}
    )
    assert bot.post_linear(unsigned_ok.encode()).status_code == 400  # signed, fresh, but no data
    unknown = json.loads(body)
    unknown["data"]["id"] = "3f1c0d9e-0000-4000-8000-000000000000"
    resp = bot.post_linear(json.dumps(unknown).encode())
    assert resp.status_code == 200 and "not linked" in resp.json()["outcome"]
    bot.settle()
    assert messages(bot) == [] and drafts(bot) == []
    assert any("Linear webhook refused" in r.message for r in caplog.records)


def test_quiet_hours_hold_the_message_and_the_draft_says_when(sqlite_url: str) -> None:
    now = utcnow()
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2)).strftime("%H:%M")
    bot = start_console(sqlite_url, feedback_quiet_hours=f"{start}-{end}")
    try:
        fb = linked_item(bot)
        bot.move_issue("ENG-7", "started")
        bot.settle()
        [dm] = drafts(bot)
        assert "quiet hours now" in json.dumps(dm["blocks"])
        press(bot, dm, "loop.send")
        bot.settle()
        assert loop_posts(bot, "C0SHARED") == []
        assert "quiet hours, goes out" in json.dumps(card_message(bot, fb.id)["blocks"])
        with bot.bot.deps.transaction() as s:
            row = s.scalar(select(OutboxItem).where(OutboxItem.kind == "loop.send"))
            assert row is not None and row.next_attempt_at > utcnow() + timedelta(minutes=90)
    finally:
        bot.close()


def test_slack_faults_are_retried_until_the_message_lands_once(bot: Console) -> None:
    linked_item(bot)
    bot.move_issue("ENG-7", "started")
    bot.settle()
    [dm] = drafts(bot)
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    bot.fake.fail_next("chat.postMessage", status=503)
    bot.fake.stall_next("chat.postMessage", 7)  # past the 5 s client timeout: it may have landed
    press(bot, dm, "loop.send")
    for _ in range(12):
        bot.settle(horizon=15)
        if any(m.status == "sent" for m in messages(bot)):
            break
    assert len(loop_posts(bot, "C0SHARED")) == 1 and messages(bot)[0].status == "sent"
    posts = bot.fake.calls_to("chat.postMessage")
    limited = next(i for i, c in enumerate(posts) if c.status == 429)
    assert posts[limited + 1].at - posts[limited].at >= 0.95  # Retry-After: 1 was honoured


def test_a_refused_message_shows_in_home_and_retry_sends_it(bot: Console) -> None:
    fb = linked_item(bot)
    bot.move_issue("ENG-7", "started")
    bot.settle()
    [dm] = drafts(bot)
    bot.fake.fail_next("chat.postMessage", error="is_archived")
    press(bot, dm, "loop.send")
    bot.settle()
    assert messages(bot)[0].status == "failed" and "started: failed" in json.dumps(card_message(bot, fb.id)["blocks"])
    bot.send_event({"type": "app_home_opened", "user": "U0STAFF", "channel": "D0STAFF", "tab": "home",
                    "event_ts": "1700000000.000100"})  # fmt: skip
    bot.settle()
    home = bot.fake.calls_to("views.publish")[-1].args["view"]
    home = json.loads(home) if isinstance(home, str) else home
    assert "Failed deliveries" in json.dumps(home) and "Loops to close" in json.dumps(home)
    retry = next(
        e for b in home["blocks"] if b.get("accessory", {}).get("action_id") == "loop.retry" for e in [b["accessory"]]
    )
    body = payload("slack_block_actions.json")
    body["user"].update(id="U0STAFF", team_id="T0OURTEAM")
    body.update(container={"type": "view", "view_id": "V1"}, view={"id": "V1", "type": "home"})
    body.pop("channel", None), body.pop("message", None)
    body["actions"] = [payloads.action(retry, {"block_id": "b1"})]
    bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    bot.settle()
    assert len(loop_posts(bot, "C0SHARED")) == 1 and messages(bot)[0].status == "sent"


def test_untriaged_items_remind_once_a_day_and_open_loops_are_flagged(bot: Console) -> None:
    fb = capture(bot, "Search ignores accented letters")
    with bot.bot.deps.transaction() as s:
        s.execute(update(Feedback).where(Feedback.id == fb.id).values(created_at=utcnow() - timedelta(days=3)))
    for _ in range(3):
        bot.bot.scheduler.run_now("triage-reminders")
    bot.settle()
    reminders = [m for m in bot.fake.messages("C0TRIAGE") if "still need triage" in m.get("text", "")]
    assert len(reminders) == 1 and f"#{fb.id}" in reminders[0]["text"]
    shipped = linked_item(bot, "Exports lose rows when filtering")
    bot.move_issue("ENG-7", "completed")
    bot.settle()
    with bot.bot.deps.transaction() as s:  # linked a week ago, shipped 4 days ago, nobody told since
        s.execute(update(LinearIssue).values(completed_at=utcnow() - timedelta(days=4)))
        s.execute(update(LinearLink).values(created_at=utcnow() - timedelta(days=7)))
    assert bot.bot.scheduler.run_now("loops-overdue")["overdue"] == 1
    bot.settle()
    assert "loop still open after it shipped" in json.dumps(card_message(bot, shipped.id)["blocks"])
    bot.send_event({"type": "app_home_opened", "user": "U0STAFF", "channel": "D0STAFF", "tab": "home",
                    "event_ts": "1700000000.000100"})  # fmt: skip
    bot.settle()
    assert "Loops still open after shipping" in json.dumps(bot.fake.calls_to("views.publish")[-1].args["view"])


def test_scheduler_lock_admits_one_process(any_db_url: str) -> None:
    from bot.runtime.scheduler import SchedulerLock
    from storage.db import make_engine

    engine = make_engine(any_db_url)
    first, second = SchedulerLock(engine), SchedulerLock(make_engine(any_db_url))
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_linear_faults_during_polling_wait_for_retry_after_then_the_loop_moves(bot: Console) -> None:
    linked_item(bot)
    bot.move_issue("ENG-7", "completed", webhook=False)
    bot.linear.fail_next(status=400, error_code="RATELIMITED", retry_after=2)
    assert "rate" in bot.bot.scheduler.run_now("linear-poll")["error"].lower()
    calls = len(bot.linear.operations())
    assert "error" in bot.bot.scheduler.run_now("linear-poll")  # within Retry-After: no request is made
    assert len(bot.linear.operations()) == calls
    time.sleep(2.1)
    bot.linear.fail_next(status=500, error_code=None)
    bot.linear.stall_next(12)  # past the client's 10 s timeout
    assert "error" in bot.bot.scheduler.run_now("linear-poll")
    assert "error" in bot.bot.scheduler.run_now("linear-poll")
    assert bot.bot.scheduler.run_now("linear-poll")["moved"] == 1
    bot.settle()
    assert len(drafts(bot)) == 1 and [m.stage for m in messages(bot)] == ["resolution"]


def test_feedback_without_a_thread_becomes_a_task_for_the_owner(bot: Console) -> None:
    bot.send_command("alice", "/feedback", "")
    bot.settle()
    fields = {"customer_text": "Dana, Initech", "source": "sales_call", "context": "Renewal call"}
    submit_modal(bot, fields | {"verbatim": "The mobile app logs me out every day"})
    bot.settle()
    fb = _rows(bot)[-1]
    link_linear(bot, fb.id, "ENG-7")
    bot.move_issue("ENG-7", "completed")
    bot.settle()
    [dm] = drafts(bot)
    assert "tell them yourself" in json.dumps(dm["blocks"])
    press(bot, dm, "loop.told")
    bot.settle()
    assert messages(bot)[0].status == "told" and bot.fake.calls_to("chat.postMessage")[-1].args["channel"] != "C0SHARED"


def test_a_new_link_that_reveals_a_state_change_moves_every_requesters_loop(bot: Console) -> None:
    carol = linked_item(bot, "CSV export drops rows with filters")
    bot.move_issue("ENG-7", "started")
    bot.settle()
    bot.move_issue("ENG-7", "completed", webhook=False)  # the webhook is lost; Dave's link reads the new state
    dave = linked_item(bot, "Exports lose rows when a filter is set")
    bot.settle()
    shipped = {(m.feedback_id, m.stage) for m in messages(bot)}
    assert {(carol.id, "resolution"), (dave.id, "resolution")} <= shipped
