"""Customer text is escaped once, never live, quoted where shown, and plain Markdown in Linear (layout issue, point 5).

Also the error boundary (people see an error id; a genuine server error is a 500) and console usage errors.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from urllib.parse import urlencode

import pytest
from slack_sdk.models.blocks import Block

from bot.console import run_console, run_line
from bot.console.harness import Console
from bot.domain import CardData, SimilarItem
from bot.slack import kit
from bot.triage import blocks
from tests.conftest import payload, start_console
from tests.test_capture_scenarios import customer_message, rows, send
from tests.test_triage import capture, click, ephemerals, link_linear

# What Slack sends for a customer typing: R&D <team> @bob (a real mention) and a labelled link.
SLACK_TEXT = "R&amp;D &lt;team&gt; asks <@U0STAFF2>: see <https://evil.example/x|the docs>"


def test_shown_escapes_once_and_leaves_nothing_live() -> None:
    out = kit.shown(SLACK_TEXT, {"U0STAFF2": "bob"})
    assert out == "R&amp;D &lt;team&gt; asks @bob: see the docs (https://evil.example/x)"
    assert kit.shown("<!here> <!channel> <!subteam^S1|@eng> <#C1|general>") == "@here @channel @eng #general"
    assert kit.shown("a & b < c") == "a &amp; b &lt; c", "text that never came through Slack is escaped too"
    assert kit.shown("x\u202egnp.exe\u2066y\u2069") == "xgnp.exey", "bidi overrides are dropped"
    assert kit.shown("<@U9UNKNOWN>") == "@U9UNKNOWN", "an unresolved mention stays inert"


def test_to_markdown_is_plain_for_linear() -> None:
    md = kit.to_markdown(SLACK_TEXT, {"U0STAFF2": "bob"})
    assert md == "R&D <team> asks @bob: see the docs (https://evil.example/x)"


def test_names_cannot_style_the_bold_header() -> None:
    shown_name = kit.name("*Eve* _the_ ~admin~ `x` <!channel>")
    assert not set("*_~`<>") & set(shown_name.replace("&lt;", "").replace("&gt;", ""))


def _card(data: CardData) -> str:
    _text, card_blocks = blocks.card(data)
    for block in card_blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    return json.dumps(card_blocks)


def test_similar_items_are_quoted_one_line_each_and_inert() -> None:
    hostile = "*bold claim*\n&gt;fake quote\n<!here> click <http://evil.example|here>\u202e"
    data = CardData(
        feedback_id=2, text="ok", author="x", organisation="external", source="slack", method="auto",
        permalink=None, channel_id=None, captured_by=None, status="new",
        similar=[SimilarItem(1, 0.97, True, hostile)],
    )  # fmt: skip
    section = next(b for b in blocks.card(data)[1] if b.get("block_id") == "similar")["text"]["text"]
    item_line = section.splitlines()[2]
    assert section.count("\n") == 2, "one header line, one facts line, one quoted line"
    assert item_line.startswith(">*bold claim* &gt;fake quote @here click here (http://evil.example)")
    assert "<!here>" not in section and "\u202e" not in section and "|here>" not in section


def test_card_shows_slack_text_once_escaped_and_mentions_as_names(bot: Console) -> None:
    bot.fake.add_user("U0NAMED", "zed", team_id="T0OURTEAM", real_name="Zed Named")
    fb = capture(bot, "R&amp;D &lt;team&gt; needs <@U0NAMED> to fix exports")
    card = bot.fake.calls_to("chat.postMessage")[0]
    verbatim = card.args["blocks"][0]["text"]["text"]
    assert ">R&amp;D &lt;team&gt; needs @zed to fix exports" in verbatim
    assert "&amp;amp;" not in json.dumps(card.args) and "<@U0NAMED>" not in json.dumps(card.args["blocks"])
    assert fb.text.startswith("R&amp;D"), "the stored verbatim is what Slack sent"


def test_linear_gets_plain_markdown_names_and_text(bot: Console) -> None:
    bot.fake.add_user("U0NAMED", "zed", team_id="T0OURTEAM", real_name="Zed Named")
    fb = capture(bot, "R&amp;D &lt;team&gt; needs <@U0NAMED> and <https://x.example/a|this page>")
    assert click(bot, fb.id, "triage.route_linear") == 200
    bot.settle()
    [issue] = [i for i in bot.linear.issues() if i["title"].startswith("[")]
    text = issue["title"] + issue["description"]
    assert "R&D <team> needs @zed and this page (https://x.example/a)" in issue["description"]
    assert "&amp;" not in text and "&lt;" not in text and "<@" not in text and "<https" not in text
    assert "**Customer:** Carol at Acme (Slack user U0CUST) (T0CUSTOMER)" in issue["description"]


def test_linear_attachment_title_has_no_slack_markup(bot: Console) -> None:
    fb = capture(bot, "Please fix ENG-7 for us")
    link_linear(bot, fb.id, "ENG-7")
    [attachment] = bot.linear.attachments.values()
    assert attachment["title"] == "Feedback from Carol at Acme (Slack user U0CUST)"
    assert "<@" not in json.dumps(attachment) and "&amp;" not in json.dumps(attachment)


def test_bidi_overrides_never_reach_staff(bot: Console) -> None:
    capture(bot, "Invoice total is wrong \u202eFDP.exe in the billing page")
    card = json.dumps(bot.fake.calls_to("chat.postMessage")[0].args)
    assert "\\u202e" not in card and "FDP.exe" in card


def test_a_failing_click_shows_the_person_an_error_id(bot: Console, caplog: pytest.LogCaptureFixture) -> None:
    fb = capture(bot, "The export to PDF cuts off the last column")
    bot.fake.fail_next("views.open", error="invalid_arguments")  # Slack refuses the modal: our bug, not theirs
    with caplog.at_level(logging.ERROR):
        assert click(bot, fb.id, "triage.wont_do") == 200
        bot.settle()
    [told] = [t for t in ephemerals(bot) if "error id" in t]
    error_id = told.split("error id ")[1][:8]
    assert any(error_id in r.getMessage() for r in caplog.records), "the id in the message is the one in the log"
    assert rows(bot)[0].status == "new"


def test_a_genuine_server_error_is_a_500_with_an_id(bot: Console, caplog: pytest.LogCaptureFixture) -> None:
    def broken(next: object) -> None:  # a bug in the request path (fault injection at Bolt's edge)
        raise RuntimeError("boom")

    bot.bot.app.middleware(broken)
    body = urlencode({"payload": json.dumps(payload("slack_shortcut_global.json"))})
    with caplog.at_level(logging.ERROR):
        resp = bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 500, "our failure is a 5xx, so Slack retries; malformed input stays a 400"
    assert any("error " in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)


def test_malformed_but_signed_is_still_a_400(bot: Console) -> None:
    env = customer_message(bot)
    env["event"]["text"] = {"not": "a string"}
    assert send(bot, env) == 400


@pytest.mark.parametrize(
    "line",
    ["say carol #acme-shared", "say carol", "edit #acme-shared", "delete", "react alice :feedback:", "shortcut alice",
     "click alice type", "click alice type notanid", "submit =x"],
)  # fmt: skip
def test_console_usage_errors_name_the_syntax(tmp_path: Path, line: str) -> None:
    out = io.StringIO()
    console = start_console(f"sqlite:///{tmp_path / 'c.db'}", feedback_suggestions=False)
    try:
        console.out = out
        if line.startswith("submit"):
            run_line(console, "/feedback alice", echo=False)
        run_line(console, line, echo=False)
    finally:
        console.close()
    word = line.split()[0]
    assert f"! usage: {word}" in out.getvalue(), out.getvalue()
    assert "unpack" not in out.getvalue()


def test_console_script_with_a_usage_error_keeps_going(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("say carol #acme-shared\nsay carol #acme-shared The export is broken again\nfeedback\n")
    out = io.StringIO()
    settings = start_console.__globals__["make_settings"](f"sqlite:///{tmp_path / 'c.db'}", feedback_suggestions=False)
    import app

    assert run_console(settings, app.create_app, script=str(script), database_url=None, out=out) == 0
    text = out.getvalue()
    assert "! usage: say USER #CHANNEL TEXT" in text and "The export is broken again" in text


def test_typed_text_is_stored_in_slack_encoding_and_shown_once(bot: Console) -> None:
    run_line(bot, "/feedback alice", echo=False)
    run_line(bot, 'submit customer_text="Dana at Initech" source=email verbatim="R&D <team> wants SSO" context=call')
    [fb] = rows(bot)
    assert fb.text == "R&amp;D &lt;team&gt; wants SSO", "one encoding for every stored verbatim"
    card = bot.fake.calls_to("chat.postMessage")[-1].args["blocks"][0]["text"]["text"]
    assert ">R&amp;D &lt;team&gt; wants SSO" in card and "&amp;amp;" not in card


def test_the_shortcut_modal_shows_characters_not_entities(bot: Console) -> None:
    send(bot, customer_message(bot, "R&amp;D &lt;team&gt; cannot export"))
    bot.settle()
    run_line(bot, "shortcut alice #acme-shared", echo=False)
    view = bot.fake.calls_to("views.open")[-1].args["view"]
    verbatim = next(b for b in view["blocks"] if b.get("block_id") == "verbatim")["element"]["initial_value"]
    assert verbatim == "R&D <team> cannot export"
    run_line(bot, "submit context=seen source=slack verbatim='R&D <team> cannot export!'", echo=False)
    assert rows(bot)[0].context == "seen"
