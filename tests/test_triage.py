"""Triage scenario tests: clicks are real block_actions payloads built from the card the bot actually posted."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import select

from bot.accounts.service import NOT_STAFF
from bot.console import Console, payloads
from bot.domain import CardData, CardRef, LinkView, SimilarItem, Suggested, TriageView
from bot.triage import blocks
from storage.models import Feedback, LinearLink, OutboxItem
from tests.conftest import payload, start_console
from tests.test_capture_scenarios import customer_message, rows, send

pytestmark = pytest.mark.slow


def capture(bot: Console, text: str) -> Feedback:
    send(bot, customer_message(bot, text))
    bot.settle()
    return rows(bot)[-1]


def card_message(bot: Console, fid: int) -> dict[str, Any]:
    """The card as it stands now in the triage channel."""
    fb = next(f for f in rows(bot) if f.id == fid)
    return next(m for m in bot.fake.messages("C0TRIAGE") if m["ts"] == fb.card_ts)


def click(
    bot: Console,
    fid: int,
    action_id: str,
    value: str | None = None,
    *,
    user: str = "U0STAFF",
    team: str = "T0OURTEAM",
    message: dict[str, Any] | None = None,
    tamper: str | None = None,
    rev: int | None = None,
) -> int:
    """Builds a block_actions payload (trimmed fixture) from the element on the posted card and sends it.

    `rev` stands for the card re-rendered at that revision (when the worker has not updated the posted one yet).
    """
    msg = message or card_message(bot, fid)
    if rev is not None:
        ref = CardRef(fid, rev).encode(bot.settings.ref_secret())
        text = {"type": "plain_text", "text": action_id}
        block: dict[str, Any] = {"block_id": f"b.{ref}"}
        el: dict[str, Any] = {"type": "button", "value": ref, "text": text}
    else:
        block, el = next(
            (b, e)
            for b in msg["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e.get("action_id") == action_id
        )
    body = payload("slack_block_actions.json")
    body["user"].update(id=user, team_id=team)
    body.update(payloads.card_click(msg, ("C0TRIAGE", "feedback-triage")))
    action = payloads.action({**el, "action_id": action_id}, block, value)
    if tamper:
        action["value"] = tamper
    body["actions"] = [action]
    resp = bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    return resp.status_code


def submit_modal(bot: Console, values: dict[str, str], user: str = "U0STAFF") -> dict[str, Any]:
    view = bot.fake.calls_to("views.open")[-1].response["view"]
    body = payload("slack_view_submission.json")
    body["view"].update(
        id=view["id"],
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        blocks=view["blocks"],
        state=payloads.view_state(view, values),
    )
    body["user"]["id"] = user
    resp = bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    return resp.json() if resp.content else {}


def ephemerals(bot: Console) -> list[str]:
    return [c.args["text"] for c in bot.fake.calls_to("chat.postEphemeral")]


def test_selects_set_type_theme_impact_owner_update_card_and_audit_thread(bot: Console) -> None:
    fb = capture(bot, "The CSV export drops the last row when a filter is applied")
    svc = bot.bot.suggestions
    examples = len(svc.suggester.types._ys)
    for action, value in (
        ("triage.type", "Bug"),
        ("triage.theme", "Reporting"),
        ("triage.impact", "High"),
        ("triage.owner", "U0STAFF2"),
    ):
        assert click(bot, fb.id, action, value) == 200
        bot.settle()
    [fb] = rows(bot)
    assert (fb.type, fb.theme, fb.impact, fb.owner_id, fb.status) == ("Bug", "Reporting", "High", "U0STAFF2", "triaged")
    assert fb.rev == 4 and len(svc.suggester.types._ys) == examples + 1
    updates = bot.fake.calls_to("chat.update")
    assert len(updates) == 4 and "*Owner:* <@U0STAFF2>" in json.dumps(updates[-1].args["blocks"])
    thread = [m for m in bot.fake.messages("C0TRIAGE") if m.get("thread_ts") == fb.card_ts and m["ts"] != fb.card_ts]
    assert [m["text"] for m in thread] == [
        "<@U0STAFF>: Type set to Bug",
        "<@U0STAFF>: Theme set to Reporting",
        "<@U0STAFF>: Impact set to High",
        "<@U0STAFF>: Assigned to <@U0STAFF2>",
    ]


def test_route_to_linear_replayed_four_times_creates_one_issue(any_bot: Console) -> None:
    bot = any_bot
    fb = capture(bot, "Scheduled reports arrive empty since Monday")
    msg = card_message(bot, fb.id)
    threads = [
        threading.Thread(target=click, args=(bot, fb.id, "triage.route_linear"), kwargs={"message": msg})
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.settle()
    issues = bot.linear.issues()
    created = [i for i in issues if i["identifier"] != "ENG-7"]
    assert len(created) == 1
    issue = created[0]
    assert "Scheduled reports arrive empty" in issue["title"] and "> Scheduled reports" in issue["description"]
    assert fb.permalink in issue["description"]
    with bot.bot.deps.transaction() as s:
        [link] = s.scalars(select(LinearLink)).all()
    assert (link.status, link.identifier, link.issue_id) == ("linked", issue["identifier"], issue["id"])
    assert len(ephemerals(bot)) == 3 and all("changed since" in e for e in ephemerals(bot))
    assert f"*Linear:* <{issue['url']}|{issue['identifier']}>" in json.dumps(card_message(bot, fb.id)["blocks"])


def test_linear_rate_limit_is_retried_and_validation_errors_show_on_the_card(bot: Console) -> None:
    fb = capture(bot, "Invoices show the wrong VAT rate for German customers")
    bot.linear.fail_next(status=400, error_code="RATELIMITED", retry_after=1)
    click(bot, fb.id, "triage.route_linear")
    bot.settle(horizon=0)
    with bot.bot.deps.transaction() as s:
        item = s.scalars(select(OutboxItem).where(OutboxItem.kind == "linear.create")).one()
        assert item.status == "pending" and "rate limit" in (item.last_error or "").lower()
    time.sleep(1.1)
    bot.settle()
    assert len([i for i in bot.linear.issues() if i["identifier"] != "ENG-7"]) == 1
    other = capture(bot, "Billing page crashes when the card expired")
    bot.linear.fail_next(status=400, error_code="INPUT_ERROR", message="Argument Validation Error", times=1)
    click(bot, other.id, "triage.route_linear")
    bot.settle()
    text = json.dumps(card_message(bot, other.id)["blocks"])
    assert "*failed:*" in text
    with bot.bot.deps.transaction() as s:
        assert (
            s.scalars(select(OutboxItem).where(OutboxItem.key.startswith("linear.create"))).all()[-1].status == "failed"
        )


def test_external_and_non_group_users_cannot_triage(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_staff_usergroup="S0TRIAGE")
    try:
        bot.fake.add_usergroup("S0TRIAGE", "triage", ["U0STAFF"])
        fb = capture(bot, "The mobile app logs me out every day")
        assert click(bot, fb.id, "triage.not_feedback", user="U0CUST", team="T0CUSTOMER") == 200
        assert click(bot, fb.id, "triage.quick_win", user="U0STAFF2") == 200
        bot.settle()
        [after] = rows(bot)
        assert (after.status, after.rev) == ("new", 0)
        assert bot.fake.calls_to("chat.update") == []
        texts = ephemerals(bot)
        assert texts == [NOT_STAFF, NOT_STAFF], "one staff check, one wording, for outsiders and non-group staff"
        assert click(bot, fb.id, "triage.quick_win") == 200
        bot.settle()
        assert rows(bot)[0].status == "quick win"
    finally:
        bot.close()


def test_forged_and_malformed_button_values_are_refused(bot: Console) -> None:
    fb = capture(bot, "Please add an API for usage data")
    forged = CardRef(fb.id, 0).encode("not-our-secret")
    click(bot, fb.id, "triage.roadmap", tamper=forged)
    click(bot, fb.id, "triage.roadmap", tamper="DROP TABLE feedback")
    click(bot, fb.id, "triage.roadmap", tamper=CardRef(999, 0).encode(bot.settings.ref_secret()))
    bot.settle()
    assert rows(bot)[0].status == "new"
    texts = " | ".join(ephemerals(bot))  # the three clicks are handled concurrently after their acks
    assert "did not verify" in texts and "not one of ours" in texts and "no longer exists" in texts


def test_link_existing_issue_by_url_counts_demand(bot: Console) -> None:
    first = capture(bot, "CSV export drops rows with filters")
    second = capture(bot, "Exports lose rows when a filter is set")
    click(bot, first.id, "triage.link_linear")
    bot.settle()
    assert submit_modal(bot, {"issue": "not an issue"})["response_action"] == "errors"
    assert submit_modal(bot, {"issue": "https://linear.app/acme/issue/ENG-7/csv-export-drops-rows"}) == {}
    bot.settle()
    click(bot, second.id, "triage.link_linear")
    bot.settle()
    submit_modal(bot, {"issue": "eng-7"})
    bot.settle()
    eng7 = next(i for i in bot.linear.issues() if i["identifier"] == "ENG-7")
    assert len(bot.linear.attachments) == 2 and all(
        a["issue_id"] == eng7["id"] for a in bot.linear.attachments.values()
    )
    assert "2 requests" in json.dumps(card_message(bot, first.id)["blocks"])


def link_linear(bot: Console, fid: int, issue: str) -> None:
    """Link Linear issue on a card: the button, then the modal with the key."""
    click(bot, fid, "triage.link_linear")
    bot.settle()
    submit_modal(bot, {"issue": issue})
    bot.settle()


def test_unknown_linear_issue_key_fails_visibly(bot: Console) -> None:
    fb = capture(bot, "Dashboard widgets reset after reload")
    link_linear(bot, fb.id, "ENG-999")
    assert "*failed:*" in json.dumps(card_message(bot, fb.id)["blocks"])


def test_wont_do_needs_a_reason_and_closes_the_card(bot: Console) -> None:
    fb = capture(bot, "Please support Internet Explorer 11")
    click(bot, fb.id, "triage.wont_do")
    bot.settle()
    assert submit_modal(bot, {"reason": ""})["errors"] == {"reason": "Required."}
    assert submit_modal(bot, {"reason": "IE11 is end-of-life"}) == {}
    bot.settle()
    [fb] = rows(bot)
    assert (fb.status, fb.reason) == ("won't do", "IE11 is end-of-life")
    msg = card_message(bot, fb.id)
    buttons = [e["action_id"] for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["triage.undo"]
    click(bot, fb.id, "triage.undo")
    bot.settle()
    assert rows(bot)[0].status == "new" and rows(bot)[0].reason is None


def test_duplicate_inherits_routing_and_adds_requester(bot: Console) -> None:
    original = capture(bot, "Please add single sign-on with Okta for our whole company")
    click(bot, original.id, "triage.route_linear")
    bot.settle()
    dup = capture(bot, "We need Okta single sign-on for all our users")
    click(bot, dup.id, "triage.duplicate")
    bot.settle()
    options = bot.fake.calls_to("views.open")[-1].args["view"]["blocks"][0]["element"]["options"]
    assert options[0]["value"] == str(original.id)
    assert submit_modal(bot, {"original": str(original.id)}) == {}
    bot.settle()
    with bot.bot.deps.transaction() as s:
        links = s.scalars(select(LinearLink).order_by(LinearLink.id)).all()
        assert [(lk.feedback_id, lk.status) for lk in links] == [(original.id, "linked"), (dup.id, "linked")]
        assert links[0].issue_id == links[1].issue_id
    text = json.dumps(card_message(bot, original.id)["blocks"])
    assert "Also requested by:* <@U0CUST>" in text and "2 requests" in text


def test_undo_before_linear_answers_cancels_the_create(bot: Console) -> None:
    fb = capture(bot, "Please add a Salesforce sync for account data")
    bot.linear.fail_next(status=503, error_code=None, times=2)  # Linear is down: the create stays pending
    click(bot, fb.id, "triage.route_linear")
    bot.settle(horizon=0)
    assert "sending to Linear" in json.dumps(card_message(bot, fb.id)["blocks"])
    click(bot, fb.id, "triage.undo")
    bot.settle()
    assert [i["identifier"] for i in bot.linear.issues()] == ["ENG-7"]
    [fb] = rows(bot)
    assert fb.status == "new"
    with bot.bot.deps.transaction() as s:
        assert s.scalars(select(LinearLink)).one().status == "cancelled"


def test_not_feedback_is_a_chatter_label(bot: Console) -> None:
    fb = capture(bot, "The onboarding checklist is confusing for new admins")
    svc = bot.bot.suggestions
    before = list(svc.suggester.chatter._ys)
    click(bot, fb.id, "triage.not_feedback")
    bot.settle()
    assert rows(bot)[0].status == "not_feedback"
    assert svc.suggester.chatter._ys == [*before, "chatter"]
    assert fb.id not in svc.suggester.index


def test_app_home_queue_filters_actions_and_promote(bot: Console) -> None:
    a = capture(bot, "The app crashes when I upload a logo")
    capture(bot, "Please add a dark mode")
    maybe = capture(bot, "ok thanks")
    assert maybe.status == "maybe"
    home_event = payload("slack_event_app_home_opened.json")
    send(bot, home_event)
    bot.settle()
    view = bot.fake.calls_to("views.publish")[-1].args["view"]
    View(**view).validate_json()
    text = json.dumps(view)
    assert text.index("#1*") < text.index("#2*") and "Promote to feedback" in text
    body = payload("slack_block_actions.json")
    body.pop("channel", None)
    body.pop("message", None)
    body["container"] = {"type": "view", "view_id": "V0HOME"}
    body["view"] = {**view, "id": "V0HOME", "type": "home"}
    block = next(b for b in view["blocks"] if b["type"] == "actions" and b.get("block_id") != "home_filters")
    el = next(e for e in block["elements"] if e["action_id"] == "triage.type")
    body["actions"] = [
        {
            "action_id": "triage.type",
            "block_id": block["block_id"],
            "type": "static_select",
            "selected_option": next(o for o in el["options"] if o["value"] == "Bug"),
            "action_ts": "1",
        }
    ]
    bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    bot.settle()
    assert rows(bot)[0].type == "Bug" and rows(bot)[0].id == a.id
    filt = next(b for b in view["blocks"] if b.get("block_id") == "home_filters")["elements"][0]
    body["actions"] = [
        {
            "action_id": filt["action_id"],
            "block_id": "home_filters",
            "type": "static_select",
            "selected_option": next(o for o in filt["options"] if o["value"] == "Feature request"),
        }
    ]
    bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    bot.settle()
    filtered = json.dumps(bot.fake.calls_to("views.publish")[-1].args["view"])
    assert "dark mode" in filtered and "upload a logo" not in filtered
    promote = next(b for b in view["blocks"] if b["type"] == "actions" and b["block_id"].startswith("m."))
    body["actions"] = [
        {
            "action_id": "triage.promote",
            "block_id": promote["block_id"],
            "type": "button",
            "value": promote["elements"][0]["value"],
            "action_ts": "1",
        }
    ]
    bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    bot.settle()
    assert rows(bot)[2].status == "new" and rows(bot)[2].card_ts is not None


def test_non_staff_home_shows_nothing_internal(bot: Console) -> None:
    capture(bot, "The app crashes when I upload a logo")
    event = payload("slack_event_app_home_opened.json")
    event["event"]["user"] = "U0CUST"
    send(bot, event)
    bot.settle()
    assert "upload a logo" not in json.dumps(bot.fake.calls_to("views.publish")[-1].args["view"])


def _check_limits(msg_blocks: list[dict[str, Any]]) -> None:
    assert len(msg_blocks) <= 50
    for raw in msg_blocks:
        parsed = Block.parse(raw)
        assert parsed is not None
        parsed.validate_json()
        assert len((raw.get("text") or {}).get("text", "")) <= 3000
        for f in raw.get("fields", []):
            assert len(f["text"]) <= 2000
        for el in raw.get("elements", []):
            if el.get("type") == "button":
                assert len(el["value"]) <= 2000 and len(el["text"]["text"]) <= 75
        assert len(raw.get("block_id", "")) <= 255


def test_cards_pass_block_kit_validation_and_limits_even_when_huge() -> None:
    long = "word " * 5000
    triage = TriageView(
        ref=CardRef(10**12, 10**6).encode("s"),
        type="Bug",
        theme="T" * 70,
        impact="High",
        owner_id="U1",
        reason=long,
        duplicate_of=3,
        links=[LinkView("ENG-1", "https://linear.app/x/issue/ENG-1", True, "Todo", 12)] * 20,
        requesters=["<@U123456>"] * 200,
        last_action="x" * 500,
        themes=[f"Theme {i}" for i in range(150)],
        can_undo=True,
    )
    data = CardData(
        feedback_id=1,
        text=long,
        author="a" * 300,
        organisation="external",
        source="slack",
        method="auto",
        permalink="https://x",
        channel_id="C1",
        captured_by="U1",
        status="triaged",
        tags=["auto"],
        context=long,
        type_hint="Bug",
        suggested=Suggested(
            "Bug", 0.9, "Reporting", 0.8, "High", 0.9, examples=[SimilarItem(i, 0.9, False, long) for i in range(9)]
        ),
        similar=[SimilarItem(i, 0.9, True, long, "ENG-1", "https://l") for i in range(5)],
        triage=triage,
    )
    text, card_blocks = blocks.card(data)
    _check_limits(card_blocks)
    assert len(text) <= 3000
    for modal in (
        blocks.wont_do_modal(triage.ref),
        blocks.link_modal(triage.ref),
        blocks.duplicate_modal(triage.ref, [(i, long) for i in range(30)]),
    ):
        View(**modal).validate_json()


def test_a_close_call_says_not_sure_and_shows_why() -> None:
    why = [
        SimilarItem(7, 0.81, False, "Export *fails* <!channel>", url="https://x.slack.com/p7"),
        SimilarItem(9, 0.7, False, "b"),
    ]
    data = CardData(
        feedback_id=1,
        text="t",
        author="a",
        organisation="o",
        source="slack",
        method="auto",
        permalink=None,
        channel_id=None,
        captured_by=None,
        status="new",
        suggested=Suggested("Bug", 0.41, None, 0.2, "Low", 0.9, unsure=True, examples=why),
    )
    _, card_blocks = blocks.card(data)
    _check_limits(card_blocks)
    text = next(b["text"]["text"] for b in card_blocks if b.get("block_id") == "suggestion")
    assert "*Suggested:* Bug (not sure)" in text and "41%" not in text
    assert "<https://x.slack.com/p7|#7> (0.81)" in text and "#9 (0.70)" in text
    assert "<!channel>" not in text and "@channel" in text  # a quoted example cannot ping anyone
    sure = blocks.card(CardData(**{**data.__dict__, "suggested": Suggested("Bug", 0.93, None, 0.2, "Low", 0.9)}))[1]
    assert "Bug (93%)" in json.dumps(sure) and "Why" not in json.dumps(sure)


def test_undo_while_linear_is_answering_leaves_the_issue_unlinked(bot: Console) -> None:
    fb = capture(bot, "Please add a Salesforce sync for opportunity data")
    bot.linear.stall_next(1.5)
    click(bot, fb.id, "triage.route_linear")
    bot.bot.executor.wait_idle(10)
    worker = threading.Thread(target=bot.bot.worker.drain)
    worker.start()
    time.sleep(0.5)  # the create is in flight now
    click(bot, fb.id, "triage.undo", rev=1)
    bot.bot.executor.wait_idle(10)
    worker.join()
    bot.settle()
    with bot.bot.deps.transaction() as s:
        link = s.scalars(select(LinearLink)).one()
    assert link.status == "unlinked" and link.identifier  # the issue exists in Linear, but is not ours any more
    assert rows(bot)[0].status == "new"


def test_duplicate_marked_before_routing_follows_the_original(bot: Console) -> None:
    original = capture(bot, "Please add single sign-on with Okta for our whole company")
    dup = capture(bot, "We need Okta single sign-on for all our users")
    click(bot, dup.id, "triage.duplicate")
    bot.settle()
    submit_modal(bot, {"original": str(original.id)})
    bot.settle()
    click(bot, original.id, "triage.route_linear")
    bot.settle()
    with bot.bot.deps.transaction() as s:
        links = s.scalars(select(LinearLink).order_by(LinearLink.id)).all()
    assert [(lk.feedback_id, lk.status) for lk in links] == [(original.id, "linked"), (dup.id, "linked")]


def test_assigned_new_item_appears_once_in_home(bot: Console) -> None:
    fb = capture(bot, "The app crashes when I upload a logo")
    click(bot, fb.id, "triage.owner", "U0STAFF")
    bot.settle()
    with bot.bot.deps.transaction() as s:
        s.get(Feedback, fb.id).status = "new"
    send(bot, payload("slack_event_app_home_opened.json"))
    bot.settle()
    view = bot.fake.calls_to("views.publish")[-1].args["view"]
    ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(ids) == len(set(ids))
    View(**view).validate_json()


def test_customer_text_cannot_ping_or_forge_links(bot: Console) -> None:
    capture(bot, "<!channel> the export is broken, see <http://evil.example|our report>")
    card = bot.fake.calls_to("chat.postMessage")[0]
    text = json.dumps(card.args)
    assert "<!channel>" not in text and "<http://evil" not in text and "|our report" not in text
    assert ">@channel the export is broken, see our report (http://evil.example)" in text, "inert, link target shown"


def test_triage_modal_from_an_unknown_user_is_checked_after_the_ack(bot: Console) -> None:
    fb = capture(bot, "Please support Internet Explorer 11 in the admin console")
    click(bot, fb.id, "triage.wont_do")
    bot.settle()
    bot.bot.deps.slack._users.clear()  # e.g. a restart between the click and the submit
    assert submit_modal(bot, {"reason": "IE11 is end-of-life"}, user="U0CUST") == {}
    bot.settle()
    assert rows(bot)[0].status == "new"
    dm = [c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "U0CUST"]
    assert dm and "Nothing changed" in dm[0].args["text"]
