"""Scenario tests: signed Slack payloads through the real HTTP endpoint; assert rows and Web API calls."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from bot.console import Console
from bot.runtime.outbox import IN_FLIGHT
from storage.db import utcnow
from storage.models import Feedback, FeedbackEvent, OutboxItem
from tests.conftest import payload, start_console


def rows(bot: Console) -> list[Feedback]:
    with bot.bot.deps.transaction() as s:
        return list(s.scalars(select(Feedback).order_by(Feedback.id)))


def outbox(bot: Console) -> dict[str, OutboxItem]:
    with bot.bot.deps.transaction() as s:
        return {o.key: o for o in s.scalars(select(OutboxItem))}


def customer_message(bot: Console, text: str = "The CSV export drops the last row when a filter is applied") -> dict:
    """The documented external message fixture, pointing at a message that exists in the fake's history."""
    env = payload("slack_event_message_external.json")
    msg = bot.fake.post_as_user("C0SHARED", "U0CUST", text)
    env["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=text)
    return env


def staff_reaction(ts: str, *, channel: str = "C0SHARED", **event: object) -> dict:
    """The documented reaction_added fixture (U0STAFF reacts :feedback:) pointed at one message."""
    reaction = payload("slack_event_reaction_added.json")
    reaction["event"]["item"].update(channel=channel, ts=ts)
    reaction["event"].update(event)
    return reaction


def send(bot: Console, env: dict, **headers: str) -> int:
    return bot.post_signed(json.dumps(env), "application/json", headers=headers).status_code


def interact(bot: Console, body: dict) -> tuple[int, dict]:
    resp = bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    return resp.status_code, (resp.json() if resp.content else {})


def posts_to(bot: Console, channel: str) -> list:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.args.get("channel") == channel]


def test_external_message_is_captured_with_receipt_and_card(bot: Console) -> None:
    env = customer_message(bot)
    assert send(bot, env) == 200
    bot.settle()
    [fb] = rows(bot)
    ev = env["event"]
    assert (fb.channel_id, fb.message_ts, fb.author_user_id, fb.author_team_id) == (
        "C0SHARED",
        ev["ts"],
        "U0CUST",
        "T0CUSTOMER",
    )
    assert fb.is_external and fb.team_id == "T0OURTEAM" and fb.capture_method == "auto"
    assert fb.text == ev["text"] and fb.source == "slack"
    assert fb.permalink and "C0SHARED" in fb.permalink
    [card] = posts_to(bot, "C0TRIAGE")
    assert ev["text"] in json.dumps(card.args["blocks"]) and card.args["text"]
    assert (fb.card_channel, fb.card_ts) == ("C0TRIAGE", card.response["ts"])
    assert not posts_to(bot, "C0SHARED"), "cards never go to the shared channel"
    assert [r["name"] for r in bot.fake.reactions("C0SHARED", ev["ts"])] == ["eyes"]


def test_redelivery_four_times_one_in_flight_gives_one_row_one_receipt(bot: Console) -> None:
    env = customer_message(bot)
    threads = [
        threading.Thread(target=send, args=(bot, env)),
        threading.Thread(
            target=send, args=(bot, env), kwargs={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in (2, 3):
        assert send(bot, env, **{"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}) == 200
    bot.settle()
    assert len(rows(bot)) == 1
    assert len(bot.fake.calls_to("reactions.add")) == 1
    assert len(posts_to(bot, "C0TRIAGE")) == 1


def test_bad_signature_and_stale_timestamp_are_401_and_store_nothing(bot: Console) -> None:
    env = customer_message(bot)
    assert bot.post_signed(json.dumps(env), "application/json", secret="wrong").status_code == 401
    old = int(time.time()) - 6 * 60
    assert bot.post_signed(json.dumps(env), "application/json", timestamp=old).status_code == 401
    resp = bot.http.post("/slack/events", content=json.dumps(env), headers={"Content-Type": "application/json"})
    assert resp.status_code == 401
    bot.settle()
    assert rows(bot) == []


def test_unparseable_bodies_are_4xx_never_5xx(bot: Console) -> None:
    assert bot.post_signed(b"{not json", "application/json").status_code == 400
    assert bot.post_signed(b"\xff\xfe\x00garbage", "application/json").status_code == 400
    assert bot.post_signed("payload=%7Bnope", "application/x-www-form-urlencoded").status_code == 400
    assert bot.post_signed("[1, 2]", "application/json").status_code == 400
    health = bot.http.get("/healthz").json()
    assert health["ok"] and health["database"] == "ok" and health["suggestions"] == "ready"


def test_odd_events_are_ignored_without_crashing(bot: Console) -> None:
    env = customer_message(bot)
    unknown = dict(env, event={"type": "star_added", "user": "U0CUST", "event_ts": "1.2"})
    assert send(bot, unknown) == 200
    missing = dict(env, event={"type": "message", "channel": "C0SHARED"})
    assert send(bot, missing) == 200
    empty = customer_message(bot, "   ")
    assert send(bot, empty) == 200
    for name in ("slack_event_bot_message.json", "slack_event_channel_join.json", "slack_event_message_internal.json"):
        assert send(bot, payload(name)) == 200
    bot.settle()
    assert rows(bot) == []


def test_huge_emoji_only_and_odd_text_are_stored_safely(bot: Console) -> None:
    huge = customer_message(bot, "The export to CSV fails for large reports and we lose data. " * 800)
    emoji = customer_message(bot, ":tada: 🎉")
    ctrl = customer_message(bot, "The dashboard shows bad\x00bytes \ud800 in the revenue chart")
    for env in (huge, emoji, ctrl):
        assert send(bot, env) == 200
    bot.settle()
    by_ts = {f.message_ts: f for f in rows(bot)}
    big = by_ts[huge["event"]["ts"]]
    assert len(big.text) == 40_000 and big.text_truncated
    assert emoji["event"]["ts"] not in by_ts, "emoji-only messages never become items"
    assert "\x00" not in by_ts[ctrl["event"]["ts"]].text
    cards = posts_to(bot, "C0TRIAGE")
    assert len(cards) == 2
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for c in cards for b in c.args["blocks"])


def test_not_shared_channel_unless_configured(sqlite_url: str) -> None:
    for watch, expected in (([], 0), (["C0INTERNAL"], 1)):
        bot = start_console(sqlite_url.replace(".db", f"{len(watch)}.db"), feedback_watch_channels=watch)
        try:
            env = payload("slack_event_message_external.json")
            msg = bot.fake.post_as_user("C0INTERNAL", "U0CUST", "Please add dark mode")
            env["event"].update(channel="C0INTERNAL", ts=msg["ts"], text="Please add dark mode")
            env["is_ext_shared_channel"] = False
            assert send(bot, env) == 200
            bot.settle()
            assert len(rows(bot)) == expected
        finally:
            bot.close()


def test_channel_flag_comes_from_conversations_info_when_envelope_lacks_it(bot: Console) -> None:
    env = customer_message(bot)
    del env["is_ext_shared_channel"]
    assert send(bot, env) == 200
    bot.settle()
    second = customer_message(bot, "Another one")
    del second["is_ext_shared_channel"]
    assert send(bot, second) == 200
    bot.settle()
    assert len(rows(bot)) == 2
    lookups = [c for c in bot.fake.calls_to("conversations.info") if c.args["channel"] == "C0SHARED"]
    assert len(lookups) == 1, "cached after the first lookup"


def test_edit_updates_verbatim_and_card_delete_keeps_audit(bot: Console) -> None:
    env = customer_message(bot)
    send(bot, env)
    bot.settle()
    changed = payload("slack_event_message_changed.json")
    changed["event"]["message"].update(ts=env["event"]["ts"], text="The CSV export drops the LAST TWO rows")
    changed["event"]["previous_message"]["ts"] = env["event"]["ts"]
    assert send(bot, changed) == 200
    bot.settle()  # Slack does not order events; this test wants edit-then-delete
    deleted = payload("slack_event_message_deleted.json")
    deleted["event"]["deleted_ts"] = env["event"]["ts"]
    assert send(bot, deleted) == 200
    assert send(bot, deleted, **{"X-Slack-Retry-Num": "1"}) == 200
    bot.settle()
    [fb] = rows(bot)
    assert fb.text == "The CSV export drops the LAST TWO rows" and fb.edited_at and fb.deleted_at
    with bot.bot.deps.transaction() as s:
        kinds = [e.kind for e in s.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id))]
        previous = s.scalar(select(FeedbackEvent.detail).where(FeedbackEvent.kind == "edited"))
    assert kinds == ["captured", "edited", "deleted"]
    assert previous["previous"] == env["event"]["text"]
    updates = bot.fake.calls_to("chat.update")
    assert len(updates) == 2 and "deleted by the customer" in json.dumps(updates[-1].args["blocks"])


def test_staff_emoji_captures_with_hint_and_merges_with_auto_capture(bot: Console) -> None:
    env = customer_message(bot)
    send(bot, env)
    reaction = staff_reaction(env["event"]["ts"], reaction="bug")
    assert send(bot, reaction) == 200
    assert send(bot, reaction, **{"X-Slack-Retry-Num": "1"}) == 200
    bot.settle()
    [fb] = rows(bot)
    assert sorted(fb.tags) == ["auto", "emoji"] and fb.type_hint == "Bug" and fb.captured_by == "U0STAFF"
    assert len(posts_to(bot, "C0TRIAGE")) == 1


def test_emoji_on_any_message_fetches_text_and_customer_cannot_tag(bot: Console) -> None:
    msg = bot.fake.post_as_user("C0INTERNAL", "U0STAFF2", "Prospect asked for a Salesforce sync")
    reaction = staff_reaction(msg["ts"], channel="C0INTERNAL", item_user="U0STAFF2")
    outsider = json.loads(json.dumps(reaction))
    outsider["event"]["user"] = "U0CUST"
    outsider["event_id"] = "Ev0OUTSIDER1"  # another event: Slack gives every event its own id
    assert send(bot, outsider) == 200
    bot.settle()
    assert rows(bot) == []
    assert send(bot, reaction) == 200
    bot.settle()
    [fb] = rows(bot)
    assert fb.text == "Prospect asked for a Salesforce sync" and fb.capture_method == "emoji"
    assert not fb.is_external and fb.author_user_id == "U0STAFF2" and fb.permalink


def _shortcut(bot: Console, ts: str, user: str = "U0STAFF", team: str = "T0OURTEAM") -> dict:
    body = payload("slack_shortcut_message_action.json")
    body["message"].update(ts=ts, text="Could we get SSO with Okta?", user="U0CUST")
    body["user"].update(id=user, team_id=team)
    return body


def _submit_view(bot: Console, values: dict[str, str], user: str = "U0STAFF") -> tuple[int, dict]:
    view = bot.fake.views[bot.fake.calls_to("views.open")[-1].response["view"]["id"]]
    body = payload("slack_view_submission.json")
    state = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        el, bid = block["element"], block["block_id"]
        value = values.get(bid)
        if el["type"] == "static_select":
            opt = next((o for o in el["options"] if o["value"] == value), None)
            state[bid] = {bid: {"type": "static_select", "selected_option": opt}}
        elif el["type"] == "users_select":
            state[bid] = {bid: {"type": "users_select", "selected_user": value}}
        else:
            state[bid] = {bid: {"type": "plain_text_input", "value": value}}
    body["view"].update(
        id=view["id"],
        callback_id=view["callback_id"],
        blocks=view["blocks"],
        private_metadata=view.get("private_metadata", ""),
        state={"values": state},
    )
    body["user"].update(id=user)
    return interact(bot, body)


def test_message_shortcut_modal_requires_context_and_merges(bot: Console) -> None:
    env = customer_message(bot, "Could we get SSO with Okta?")
    send(bot, env)
    status, _ = interact(bot, _shortcut(bot, env["event"]["ts"]))
    assert status == 200
    bot.settle()
    opened = bot.fake.calls_to("views.open")[-1].args["view"]
    assert "Could we get SSO with Okta?" in json.dumps(opened)
    status, body = _submit_view(bot, {"verbatim": "Could we get SSO with Okta?", "source": "slack"})
    assert status == 200 and body["response_action"] == "errors" and "context" in body["errors"]
    status, body = _submit_view(
        bot,
        {
            "verbatim": "Could we get SSO with Okta?",
            "source": "slack",
            "context": "Raised in the QBR",
            "type_hint": "Feature request",
        },
    )
    assert status == 200 and not body
    bot.settle()
    [fb] = rows(bot)
    assert fb.tags == ["auto", "shortcut"] and fb.context == "Raised in the QBR"
    assert fb.type_hint == "Feature request"
    assert len(posts_to(bot, "C0TRIAGE")) == 1 and len(bot.fake.calls_to("chat.update")) == 1


def test_external_user_cannot_use_the_shortcut(bot: Console) -> None:
    env = customer_message(bot)
    send(bot, env)
    bot.settle()
    interact(bot, _shortcut(bot, env["event"]["ts"], user="U0CUST", team="T0CUSTOMER"))
    bot.settle()
    shown = bot.fake.calls_to("views.open")[-1].args["view"]
    assert "Only members" in json.dumps(shown) and "submit" not in shown


def test_slash_command_modal_requires_every_field(bot: Console) -> None:
    form = {k: str(v) for k, v in payload("slack_command_feedback.json").items()}
    resp = bot.post_signed(urlencode(form), "application/x-www-form-urlencoded")
    assert resp.status_code == 200
    bot.settle()
    assert bot.fake.calls_to("views.open")[-1].args["view"]["callback_id"] == "feedback_modal"
    status, body = _submit_view(bot, {"verbatim": "Mobile app logs me out daily"})
    assert set(body["errors"]) == {"customer_text", "source", "context"}
    status, body = _submit_view(
        bot,
        {
            "verbatim": "Mobile app logs me out daily",
            "source": "sales_call",
            "customer_text": "Dana, Initech",
            "context": "Renewal call",
        },
    )
    assert status == 200 and not body
    _submit_view(
        bot,
        {
            "verbatim": "Mobile app logs me out daily",
            "source": "sales_call",
            "customer_text": "Dana, Initech",
            "context": "Renewal call",
        },
    )
    bot.settle()
    [fb] = rows(bot)
    assert (fb.customer, fb.source, fb.context, fb.capture_method) == (
        "Dana, Initech",
        "sales_call",
        "Renewal call",
        "command",
    )
    assert len(posts_to(bot, "C0TRIAGE")) == 1


def test_global_shortcut_opens_the_same_modal(bot: Console) -> None:
    assert interact(bot, payload("slack_shortcut_global.json"))[0] == 200
    bot.settle()
    assert bot.fake.calls_to("views.open")[-1].args["view"]["callback_id"] == "feedback_modal"


def test_reply_receipt_retries_429_after_retry_after_and_never_twice(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_receipt="reply")
    try:
        bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
        env = customer_message(bot)
        send(bot, env)
        bot.settle(horizon=0)
        box = outbox(bot)
        first = box["card:1"] if box["card:1"].status == "pending" else box["receipt:1"]
        assert first.status == "pending" and "rate limited" in (first.last_error or "")
        assert first.next_attempt_at >= utcnow() + timedelta(seconds=0.5)
        time.sleep(1.1)
        bot.settle()
        assert {o.status for o in outbox(bot).values()} == {"done"}
        replies = [c for c in posts_to(bot, "C0SHARED") if c.response.get("ok")]
        assert len(replies) == 1 and replies[0].args["thread_ts"] == env["event"]["ts"]
        assert replies[0].args["text"] == "Thanks, passed to the product team."
    finally:
        bot.close()


def test_5xx_is_retried_and_permanent_errors_keep_the_row(bot: Console) -> None:
    bot.fake.fail_next("reactions.add", status=503)
    env = customer_message(bot)
    send(bot, env)
    bot.settle(horizon=0)
    assert outbox(bot)["receipt:1"].status == "pending"
    with bot.bot.deps.transaction() as s:
        s.get(OutboxItem, outbox(bot)["receipt:1"].id).next_attempt_at = utcnow()
    bot.settle()
    assert outbox(bot)["receipt:1"].status == "done"
    bot.fake.fail_next("chat.postMessage", error="channel_not_found")
    send(bot, customer_message(bot, "Search results ignore the date filter on the audit log page"))
    bot.settle()
    card = outbox(bot)["card:2"]
    assert card.status == "failed" and "channel_not_found" in (card.last_error or "")
    assert len(rows(bot)) == 2


def test_crash_between_send_and_record_is_reconciled_not_resent(bot: Console) -> None:
    send(bot, customer_message(bot))
    bot.settle()
    with bot.bot.deps.transaction() as s:
        item = s.scalar(select(OutboxItem).where(OutboxItem.key == "card:1"))
        item.status, item.last_error, item.locked_until = "sending", IN_FLIGHT, utcnow() - timedelta(seconds=1)
        fb = s.get(Feedback, 1)
        posted_ts, fb.card_ts = fb.card_ts, None
    bot.settle()
    assert len(posts_to(bot, "C0TRIAGE")) == 1
    assert rows(bot)[0].card_ts == posted_ts


def test_background_worker_delivers_without_manual_drain(bot: Console) -> None:
    bot.bot.worker.start()
    try:
        env = customer_message(bot)
        send(bot, env)
        deadline = time.time() + 10
        while time.time() < deadline and not bot.fake.reactions("C0SHARED", env["event"]["ts"]):
            time.sleep(0.05)
        assert bot.fake.reactions("C0SHARED", env["event"]["ts"])
    finally:
        bot.bot.worker.stop()


def test_redelivery_on_postgresql(pg_url: str) -> None:
    bot = start_console(pg_url)
    try:
        env = customer_message(bot)
        threads = [
            threading.Thread(target=send, args=(bot, env), kwargs={"X-Slack-Retry-Num": str(i)}) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bot.settle()
        with bot.bot.deps.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Feedback)) == 1
        assert len(bot.fake.calls_to("reactions.add")) == 1
    finally:
        bot.close()


def test_two_workers_on_postgresql_send_each_item_once(pg_url: str) -> None:
    """Scale-out: several processes drain one outbox (FOR UPDATE SKIP LOCKED); nothing is sent twice."""
    from bot import jobs
    from bot.runtime.worker import Worker

    bot = start_console(pg_url, feedback_suggestions=False)
    try:
        deps = bot.bot.deps
        for i in range(20):
            send(bot, customer_message(bot, f"Report export number {i} is missing its totals row"))
        bot.bot.executor.wait_idle(10)
        other = Worker(deps, jobs.OUTBOX, persistent=jobs.PERSISTENT)
        threads = [threading.Thread(target=w.drain) for w in (bot.bot.worker, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bot.settle()
        assert len(posts_to(bot, "C0TRIAGE")) == 20
        assert len(bot.fake.calls_to("reactions.add")) == 20
    finally:
        bot.close()


def test_reaction_by_an_unknown_user_is_ignored(bot: Console) -> None:
    env = customer_message(bot)
    reaction = staff_reaction(env["event"]["ts"], user="U0NOBODY")
    assert send(bot, reaction) == 200
    bot.settle()
    assert rows(bot) == []
    assert bot.fake.calls_to("users.info")[-1].response["error"] == "user_not_found"


def test_a_shared_triage_channel_gets_no_cards(sqlite_url: str) -> None:
    bot = start_console(sqlite_url)
    try:
        bot.settings.feedback_triage_channel = "C0SHARED"  # misconfigured: the customer's own channel
        send(bot, customer_message(bot))
        bot.settle()
        card = outbox(bot)["card:1"]
        assert card.status == "failed" and "shared with another organisation" in (card.last_error or "")
        assert posts_to(bot, "C0SHARED") == [] and len(rows(bot)) == 1
    finally:
        bot.close()


def test_url_verification_and_rate_limit_notices(bot: Console) -> None:
    challenge = payload("slack_url_verification.json")
    resp = bot.post_signed(json.dumps(challenge), "application/json")
    assert resp.status_code == 200 and challenge["challenge"] in resp.text
    notice = {
        "token": "x",
        "type": "app_rate_limited",
        "team_id": "T0OURTEAM",
        "minute_rate_limited": 1518467820,
        "api_app_id": "A0FEEDBACK",
    }
    assert bot.post_signed(json.dumps(notice), "application/json").status_code == 200


def test_a_post_that_failed_with_5xx_is_reconciled_before_any_resend(bot: Console) -> None:
    """Slack may have posted the card before answering 500: the retry looks for it by outbox key first."""
    send(bot, customer_message(bot))
    bot.settle()
    [fb] = rows(bot)
    with bot.bot.deps.transaction() as s:
        item = s.scalar(select(OutboxItem).where(OutboxItem.key == "card:1"))
        # as if the first post landed but Slack answered 503: MaybeSent leaves the row in flight, due again
        item.status, item.last_error, item.next_attempt_at = "pending", "in flight: Slack unavailable", utcnow()
        s.get(Feedback, fb.id).card_ts = None
    bot.settle()
    assert len(posts_to(bot, "C0TRIAGE")) == 1
    assert rows(bot)[0].card_ts == fb.card_ts


def test_author_team_falls_back_to_source_team_then_users_info(bot: Console) -> None:
    only_source = customer_message(bot, "Our SSO login loops back to the start page")
    ev = only_source["event"]
    ev.pop("user_team")
    ev.pop("team", None)
    send(bot, only_source)
    no_team = customer_message(bot, "The audit log misses role changes")
    for key in ("user_team", "source_team", "team"):
        no_team["event"].pop(key, None)
    send(bot, no_team)
    bot.settle()
    assert [(f.author_team_id, f.is_external) for f in rows(bot)] == [("T0CUSTOMER", True), ("T0CUSTOMER", True)]


def test_guests_are_customers_in_watched_channels(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_watch_channels=["C0INTERNAL"])
    try:
        bot.fake.add_user("U0GUEST", "gina", is_restricted=True)
        msg = bot.fake.post_as_user("C0INTERNAL", "U0GUEST", "The reporting API returns 500 for large ranges")
        env = payload("slack_event_message_internal.json")
        env["event"].update(channel="C0INTERNAL", user="U0GUEST", ts=msg["ts"], text=msg["text"])
        env["is_ext_shared_channel"] = False
        staff = payload("slack_event_message_internal.json")
        staff_msg = bot.fake.post_as_user("C0INTERNAL", "U0STAFF", "I will check the reporting API")
        staff["event"].update(channel="C0INTERNAL", ts=staff_msg["ts"], text=staff_msg["text"])
        send(bot, env)
        send(bot, staff)
        bot.settle()
        assert [f.author_user_id for f in rows(bot)] == ["U0GUEST"]
    finally:
        bot.close()


def test_tombstones_delete_and_older_edits_lose(bot: Console) -> None:
    env = customer_message(bot, "Exports time out for big accounts")
    send(bot, env)
    bot.settle()
    ts = env["event"]["ts"]

    def edit(text: str, edited_ts: str) -> dict:
        changed = payload("slack_event_message_changed.json")
        changed["event"]["message"].update(ts=ts, text=text, edited={"user": "U0CUST", "ts": edited_ts})
        return changed

    send(bot, edit("Exports time out for accounts over 10k rows", "1900000002.000000"))
    bot.settle()
    send(bot, edit("Exports time out", "1900000001.000000"))  # an older edit redelivered late
    bot.settle()
    assert rows(bot)[0].text == "Exports time out for accounts over 10k rows"
    tomb = edit("This message was deleted.", "1900000003.000000")
    tomb["event"]["message"]["subtype"] = "tombstone"
    send(bot, tomb)
    bot.settle()
    fb = rows(bot)[0]
    assert fb.deleted_at is not None and fb.text == "Exports time out for accounts over 10k rows"


def test_reactions_on_our_own_messages_are_not_feedback(bot: Console) -> None:
    send(bot, customer_message(bot, "Exports time out for big accounts"))
    bot.settle()
    card = rows(bot)[0]
    reaction = staff_reaction(str(card.card_ts), channel="C0TRIAGE", item_user="U0BOT")
    send(bot, reaction)
    bot.settle()
    assert len(rows(bot)) == 1


def test_shortcut_on_a_long_message_keeps_every_word(bot: Console) -> None:
    long_text = "The nightly export loses rows. " * 200
    msg = bot.fake.post_as_user("C0SHARED", "U0CUST", long_text)
    body = _shortcut(bot, msg["ts"])
    body["message"]["text"] = long_text
    interact(bot, body)
    bot.settle()
    view = bot.fake.calls_to("views.open")[-1].args["view"]
    assert "original" in json.dumps(view) and "slack.com/archives/C0SHARED" in json.dumps(view)
    initial = next(b for b in view["blocks"] if b.get("block_id") == "verbatim")["element"]["initial_value"]
    assert len(initial) == 3000
    _submit_view(bot, {"verbatim": initial, "source": "slack", "context": "From the QBR"})
    bot.settle()
    [fb] = rows(bot)
    assert fb.text == long_text.strip() and fb.capture_method == "shortcut"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "event_callback", "event": []},
        {"type": "event_callback", "event": "x"},
        {"type": "event_callback"},
        {"type": "event_callback", "event": {"type": "message", "channel": 5, "user": ["a"], "ts": 1.5, "text": {}}},
        {
            "type": "event_callback",
            "event": {"type": "message", "subtype": "message_changed", "channel": "C0SHARED", "message": "x"},
        },
        {"type": "event_callback", "event": {"type": "app_home_opened"}},
    ],
)
def test_malformed_events_are_4xx_or_ignored_never_5xx(bot: Console, body: dict) -> None:
    assert bot.post_signed(json.dumps(body), "application/json").status_code in {200, 400}
    bot.settle()
    assert bot.http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"type": "block_actions", "actions": "x"},
        {"type": "block_actions", "user": "U0STAFF", "actions": []},
        {"type": "view_submission", "user": {"id": "U0STAFF"}, "view": {"callback_id": "feedback_modal"}},
        {
            "type": "view_submission",
            "user": {"id": "U0STAFF", "team_id": "T0OURTEAM"},
            "view": {
                "id": "V1",
                "callback_id": "triage_wont_do_modal",
                "private_metadata": "garbage",
                "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": "x"}}}},
            },
        },
        {"type": "shortcut", "callback_id": "feedback_global"},
    ],
)
def test_malformed_interactions_are_4xx_or_refused_never_5xx(bot: Console, body: dict) -> None:
    resp = bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    assert resp.status_code in {200, 400}


def test_slack_down_during_intake_defers_the_event_instead_of_losing_it(bot: Console) -> None:
    env = customer_message(bot)
    reaction = staff_reaction(env["event"]["ts"])
    bot.bot.deps.slack._users.clear()
    bot.fake.fail_next("users.info", status=503, times=1)  # the staff check cannot be answered right now
    assert send(bot, reaction) == 200
    bot.settle(horizon=3)  # the first try meets the outage; the retry comes after the 2 s backoff
    [fb] = rows(bot)
    assert fb.capture_method == "emoji" and fb.captured_by == "U0STAFF"
    prefix = f"event:C0SHARED:{env['event']['ts']}:{reaction['event_id']}:"
    [event] = [o for k, o in outbox(bot).items() if k.startswith(prefix)]
    assert event.status == "done" and event.attempts == 2


def test_an_edit_and_a_delete_wait_behind_a_queued_capture(bot: Console) -> None:
    """Slack is down for the capture's lookup; the edit and the deletion that follow replay after it, in order."""
    env = customer_message(bot, "Exports time out for big accounts")
    del env["is_ext_shared_channel"]  # so the capture must ask conversations.info
    bot.fake.fail_next("conversations.info", status=503, times=1)
    send(bot, env)
    bot.bot.executor.wait_idle(10)
    changed = payload("slack_event_message_changed.json")
    changed["event"]["message"].update(
        ts=env["event"]["ts"],
        text="Exports time out for accounts over 10k rows",
        edited={"user": "U0CUST", "ts": "1900000002.000000"},
    )
    send(bot, changed)
    bot.bot.executor.wait_idle(10)
    deleted = payload("slack_event_message_deleted.json")
    deleted["event"]["deleted_ts"] = env["event"]["ts"]
    send(bot, deleted)
    bot.settle()
    [fb] = rows(bot)
    assert fb.text == "Exports time out for accounts over 10k rows" and fb.deleted_at is not None
    assert {o.status for k, o in outbox(bot).items() if k.startswith("event:")} == {"done"}


def test_payload_shapes_slack_never_sends_are_named_in_the_400() -> None:
    from bot.slack.payloads import problem

    assert (
        problem(b'{"type": "event_callback", "event": {"type": "message", "user": ["U1"]}}', "application/json")
        == "event.user is not a string"
    )
    assert problem(b"payload=%7B%22type%22%3A%20%22shortcut%22%7D", "application/x-www-form-urlencoded") == (
        "shortcut without payload.user"
    )
    assert problem(json.dumps(payload("slack_event_message_external.json")).encode(), "application/json") is None
    form = urlencode({"payload": json.dumps(payload("slack_block_actions.json"))}).encode()
    assert problem(form, "application/x-www-form-urlencoded") is None
