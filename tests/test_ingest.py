"""The ingest path: stored before the ack, no write lock across Slack calls, a hung call stalls nobody else."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from bot.console import payloads
from bot.console.harness import Console
from tests.conftest import payload, start_console
from tests.test_capture_scenarios import customer_message, outbox, posts_to, rows, send


@pytest.fixture
def quiet(sqlite_url: str):
    """No model: these tests are about the database and Slack, and must not wait for suggestions."""
    console = start_console(sqlite_url, feedback_suggestions=False)
    yield console
    console.close()


@pytest.fixture
def quiet_any(any_db_url: str):
    """The same, on SQLite and on PostgreSQL."""
    console = start_console(any_db_url, feedback_suggestions=False)
    yield console
    console.close()


def test_an_event_is_on_disk_when_the_ack_is_sent(quiet_any: Console) -> None:
    env = customer_message(quiet_any)
    assert send(quiet_any, env) == 200
    [row] = [o for k, o in outbox(quiet_any).items() if k.startswith("event:")]  # before any processing
    assert row.status == "pending" and row.payload["envelope"]["event_id"] == env["event_id"]
    assert rows(quiet_any) == []
    quiet_any.settle()
    assert len(rows(quiet_any)) == 1 and outbox(quiet_any)[row.key].status == "done"


def test_a_stalled_slack_call_holds_no_lock_and_stalls_no_other_item(quiet: Console) -> None:
    """The first card of a database refreshes the triage channel's cache, then Slack hangs for longer than
    SQLite's busy timeout (10 s): acks, captures and receipts must keep flowing meanwhile."""
    quiet.fake.stall_next("chat.postMessage", 11.0)
    send(quiet, customer_message(quiet, "The first card: Slack will hang while posting it"))
    drainer = threading.Thread(target=quiet.bot.worker.drain, daemon=True)
    drainer.start()
    deadline = time.monotonic() + 5
    while not quiet.fake.calls_to("conversations.info") and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the card's chat.postMessage is now hanging
    acks = []
    for i in range(10):
        env = customer_message(quiet, f"Message {i} while Slack hangs: exports lose their last row")
        started = time.monotonic()
        assert send(quiet, env) == 200
        acks.append(time.monotonic() - started)
    assert max(acks) < 1.0, f"acks waited on a lock: {acks}"

    def receipts() -> int:
        return len([c for c in quiet.fake.calls_to("reactions.add") if c.response.get("ok")])

    deadline = time.monotonic() + 8  # still inside the 11 s hang
    while time.monotonic() < deadline and (len(rows(quiet)) < 11 or receipts() < 10):
        threading.Event().wait(0.1)
    assert len(rows(quiet)) == 11, "captures went on while the card hung"
    assert receipts() >= 10, "receipts are not stuck behind the hung card"
    drainer.join(timeout=20)
    quiet.settle(horizon=12)  # the hung post timed out (5 s); its retry looks for it 10 s later, finds it landed
    keys = [m["metadata"]["event_payload"]["key"] for m in quiet.fake.messages("C0TRIAGE") if m.get("metadata")]
    assert len(keys) == len(set(keys)) == 11, "every card once, the hung one included"


def test_a_new_receipt_does_not_wait_behind_cards_already_queued(sqlite_url: str) -> None:
    """Eight slow cards fill both card threads and the queue; three later messages still get their receipts at
    once, on the threads kept for receipts and events."""
    bot = start_console(sqlite_url, feedback_suggestions=False, worker_concurrency=2)
    try:
        bot.fake.stall_next("chat.postMessage", 1.5, times=40)
        for i in range(8):
            send(bot, customer_message(bot, f"Backlog item {i}: the dashboard never finishes loading"))
        draining = threading.Thread(target=bot.bot.worker.drain)
        draining.start()
        time.sleep(2.0)  # the backlog's cards are now running and queued
        late = {}
        for i in range(3):
            env = customer_message(bot, f"Later item {i}: exports time out")
            late[env["event"]["ts"]] = time.monotonic()
            send(bot, env)
        draining.join(30)
        bot.settle()
        receipts = {c.args["timestamp"]: c.at for c in bot.fake.calls_to("reactions.add")}
        waits = [receipts[ts] - sent for ts, sent in late.items()]
        cards_left = sum(1 for c in posts_to(bot, "C0TRIAGE") if c.at > max(receipts[ts] for ts in late))
        assert max(waits) < 1.0 and cards_left >= 3, (waits, cards_left)  # behind queued cards: 2.5 s and more
    finally:
        bot.close()


def test_receipts_go_out_before_queued_cards(sqlite_url: str) -> None:
    """Two card threads, a slow Slack: the receipts have threads of their own and never queue behind cards."""
    bot = start_console(sqlite_url, feedback_suggestions=False, worker_concurrency=2)
    try:
        bot.fake.stall_next("chat.postMessage", 0.3, times=12)
        for i in range(12):
            send(bot, customer_message(bot, f"Backlog item {i}: the dashboard never finishes loading"))
        bot.settle()
        seq = [
            ("receipt" if c.method == "reactions.add" else "card")
            for c in bot.fake.calls
            if c.method == "reactions.add" or (c.method == "chat.postMessage" and c.args.get("channel") == "C0TRIAGE")
        ]
        assert seq.count("receipt") == 12 and seq.count("card") == 12
        assert seq.index("card") >= 6 and seq[:6] == ["receipt"] * 6, seq  # cards wait, receipts do not
        assert [i for i, kind in enumerate(seq) if kind == "receipt"][-1] < len(seq) - 4, seq
    finally:
        bot.close()


def test_a_slack_outage_page_is_logged_as_one_line(quiet: Console, caplog: pytest.LogCaptureFixture) -> None:
    quiet.fake.fail_next("chat.postMessage", status=503, times=1)
    send(quiet, customer_message(quiet))
    quiet.settle(horizon=12)
    assert all("<html>" not in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)
    assert any("503" in r.getMessage() for r in caplog.records)
    assert len([c for c in posts_to(quiet, "C0TRIAGE") if c.response.get("ok")]) == 1


def test_interactions_and_unknown_events_still_go_through_bolt(quiet: Console) -> None:
    assert send(quiet, payload("slack_url_verification.json")) == 200
    env = customer_message(quiet)
    env["event"] = {"type": "app_mention", "user": "U0CUST", "text": "hi", "ts": "1.2", "channel": "C0SHARED"}
    assert send(quiet, env) == 200
    quiet.settle()
    assert not [k for k in outbox(quiet) if k.startswith("event:")], "events we do not act on are not stored"
    resp = quiet.post_signed(json.dumps(payload("slack_url_verification.json")), "application/json")
    assert resp.json().get("challenge")


def _reply(bot: Console, parent_ts: str, text: str, user: str = "U0CUST") -> dict:
    """The documented thread-reply fixture, pointed at a real reply in the fake's history."""
    msg = bot.fake.post_as_user("C0SHARED", user, text, thread_ts=parent_ts)
    env = payload("slack_event_thread_reply.json")
    env["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=text, thread_ts=parent_ts, user=user)
    env["event_id"] = f"Ev{msg['ts'].replace('.', '')}"
    return env


def test_replies_in_a_captured_thread_join_the_item_and_update_the_card(quiet_any: Console) -> None:
    env = customer_message(quiet_any, "The CSV export drops the last row")
    send(quiet_any, env)
    quiet_any.settle()
    reply = _reply(quiet_any, env["event"]["ts"], "It also happens on the XLSX export")
    for _ in range(3):  # Slack redelivers; the reply joins once
        assert send(quiet_any, reply) == 200
    send(quiet_any, _reply(quiet_any, env["event"]["ts"], "And only when a filter is applied"))
    quiet_any.settle()
    [fb] = rows(quiet_any)
    parts = [
        "The CSV export drops the last row",
        "It also happens on the XLSX export",
        "And only when a filter is applied",
    ]
    assert fb.text == "\n\n".join(parts)
    assert len(posts_to(quiet_any, "C0TRIAGE")) == 1, "one conversation, one card"
    updated = quiet_any.fake.calls_to("chat.update")[-1].args["blocks"][0]["text"]["text"]
    assert "XLSX" in updated and "filter is applied" in updated
    assert len([c for c in quiet_any.fake.calls_to("reactions.add") if c.response.get("ok")]) == 1


def test_a_burst_of_messages_is_one_item_only_when_configured(sqlite_url: str) -> None:
    for window, expected in ((0.0, 3), (120.0, 1)):
        bot = start_console(sqlite_url.replace(".db", f"{int(window)}.db"), feedback_suggestions=False,
                            feedback_burst_seconds=window)  # fmt: skip
        try:
            for text in ("Exports are broken", "the CSV one", "since this morning, for every report"):
                send(bot, customer_message(bot, text))
                bot.settle()
            assert len(rows(bot)) == expected, window
        finally:
            bot.close()


def test_a_burst_delivered_at_once_is_one_item_although_the_worker_runs_lanes_in_parallel(any_db_url: str) -> None:
    bot = start_console(any_db_url, feedback_suggestions=False, feedback_burst_seconds=120.0)
    try:
        bot.fake.stall_next("users.info", 0.4, times=3)  # the first lookups are slow: lanes would overlap
        texts = ["Exports are broken", "the CSV one", "since this morning", "for every report", "all of them"]
        for text in texts:  # all five stored before the worker runs any
            send(bot, customer_message(bot, text))
        bot.settle()
        [fb] = rows(bot)
        assert fb.text == "\n\n".join(texts)
    finally:
        bot.close()


def test_a_staff_emoji_on_a_joined_reply_splits_it_off(quiet: Console) -> None:
    from tests.test_capture_scenarios import staff_reaction

    env = customer_message(quiet, "The CSV export drops the last row")
    send(quiet, env)
    quiet.settle()
    reply = _reply(quiet, env["event"]["ts"], "Separately: please add SSO for our contractors")
    send(quiet, reply)
    quiet.settle()
    send(quiet, staff_reaction(reply["event"]["ts"]))
    quiet.settle()
    assert [f.capture_method for f in rows(quiet)] == ["auto", "emoji"]


@pytest.mark.parametrize(
    "text",
    [":tada: :+1:", "🎉🎉", "I am out of the office until Monday with limited access to email.",
     "Automatic reply: on annual leave"],
)  # fmt: skip
def test_emoji_only_and_out_of_office_never_become_items(quiet: Console, text: str) -> None:
    send(quiet, customer_message(quiet, text))
    quiet.settle()
    assert rows(quiet) == [] and not quiet.fake.calls_to("reactions.add")


def test_an_acknowledgement_waits_for_the_model_before_any_receipt(bot: Console) -> None:
    send(bot, customer_message(bot, "thanks!"))
    bot.settle()
    [fb] = rows(bot)
    assert fb.status == "maybe" and not bot.fake.calls_to("reactions.add") and not posts_to(bot, "C0TRIAGE")


def test_a_click_is_stored_before_its_ack_and_settled_after(quiet_any: Console) -> None:
    from tests.test_triage import capture, click

    fb = capture(quiet_any, "The mobile app logs me out every day")
    assert click(quiet_any, fb.id, "triage.quick_win") == 200
    quiet_any.settle()
    held = [o for k, o in outbox(quiet_any).items() if k.startswith("interaction:")]
    assert [h.status for h in held] == ["done"] and rows(quiet_any)[0].status == "quick win"


def test_a_click_whose_process_died_after_the_ack_is_replayed(quiet_any: Console) -> None:
    """As if the process was killed between the ack and the end of handling: the row is held, its lease ran
    out, and the worker replays it through the same listener."""
    from bot.domain import Kind
    from storage import queries
    from storage.db import utcnow
    from tests.test_triage import capture, card_message

    fb = capture(quiet_any, "The mobile app logs me out every day")
    msg = card_message(quiet_any, fb.id)
    block, el = next((b, e) for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]
                     if e.get("action_id") == "triage.roadmap")  # fmt: skip
    body = payload("slack_block_actions.json") | {"actions": [payloads.action(el, block)]}
    body.update(payloads.card_click(msg, ("C0TRIAGE", "feedback-triage")))
    with quiet_any.bot.deps.transaction() as session:
        queries.hold(session=session, key="interaction:U0STAFF:lost", kind=Kind.INTERACTION, payload={"body": body},
                     until=utcnow())  # fmt: skip
    quiet_any.settle()
    assert rows(quiet_any)[0].status == "roadmap"
    assert outbox(quiet_any)["interaction:U0STAFF:lost"].status == "done"


def test_due_cards_are_embedded_in_one_model_call(bot: Console) -> None:
    """A backlog of cards (here: queued while the model warmed up) is embedded in one model call."""
    from bot.suggest.service import SuggestionService
    from tests.conftest import shared_embedder

    deps = bot.bot.deps
    cold = SuggestionService(deps.settings, deps.sessions, shared_embedder())
    deps.suggestions = cold
    embedder = cold.embedder
    sizes: list[int] = []
    real = embedder.encode

    def counting(texts: list[str]) -> np.ndarray:  # a spy: the real model runs, we only count its calls
        sizes.append(len(texts))
        return real(texts)

    for i in range(6):
        send(bot, customer_message(bot, f"Exports of report {i} drop their last row when filtered"))
    bot.settle(horizon=0)  # captured and receipted; the cards wait for the model
    assert posts_to(bot, "C0TRIAGE") == []
    cold.start().join()
    embedder.encode = counting  # type: ignore[method-assign]
    try:
        bot.settle()
    finally:
        embedder.encode = real  # type: ignore[method-assign]
    assert len(posts_to(bot, "C0TRIAGE")) == 6
    assert max(sizes) > 1 and len(sizes) < 6, sizes


def test_edits_and_deletions_keep_a_conversation_whole(quiet_any: Console) -> None:
    env = customer_message(quiet_any, "The CSV export drops the last row")
    send(quiet_any, env)
    quiet_any.settle()
    root_ts = env["event"]["ts"]
    reply = _reply(quiet_any, root_ts, "It also happens on XLSX")
    send(quiet_any, reply)
    send(quiet_any, _reply(quiet_any, root_ts, "Only with filters"))
    quiet_any.settle()

    def changed(ts: str, text: str, edited: str, thread_ts: str | None = None) -> dict:
        body = payload("slack_event_message_changed.json")
        body["event_id"] = f"Ev{edited.replace('.', '')}"
        body["event"]["message"].update(ts=ts, text=text, edited={"user": "U0CUST", "ts": edited})
        if thread_ts:
            body["event"]["message"]["thread_ts"] = thread_ts
        return body

    send(quiet_any, changed(root_ts, "The CSV export drops the LAST row", "1900000001.000000"))
    send(quiet_any, changed(reply["event"]["ts"], "It also happens on XLSX and ODS", "1900000002.000000", root_ts))
    quiet_any.settle()
    assert (
        rows(quiet_any)[0].text
        == "The CSV export drops the LAST row\n\nIt also happens on XLSX and ODS\n\nOnly with filters"
    )
    deleted = payload("slack_event_message_deleted.json")
    deleted["event"].update(deleted_ts=reply["event"]["ts"], channel="C0SHARED")
    deleted["event_id"] = "Ev0DELETEDREPLY"
    send(quiet_any, deleted)
    quiet_any.settle()
    [fb] = rows(quiet_any)
    assert fb.text == "The CSV export drops the LAST row\n\nOnly with filters" and fb.deleted_at is None
    assert "ODS" not in quiet_any.fake.calls_to("chat.update")[-1].args["blocks"][0]["text"]["text"]
