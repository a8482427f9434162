"""`feedbackbot train`: a few seconds of real fine-tuning, the checked ONNX export, and the hot swap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import app
from bot.suggest import jobs as suggest_jobs
from bot.suggest import retrain
from bot.suggest.embedder import Embedder, ModelUnavailable, sha256_file
from bot.suggest.service import SuggestionService, from_blob
from bot.suggest.train import train
from storage import model_versions
from storage.db import session_scope
from storage.models import Feedback
from tests.conftest import shared_embedder, start_console
from tests.test_capture_scenarios import customer_message, rows, send

BUGS = ["The export crashes with an error", "Login fails after the update", "Saving a report throws a 500",
        "The sync is broken since Monday", "Charts are blank after reload", "Upload fails for big files"]  # fmt: skip
QUESTIONS = ["How do I add a user?", "Where is the API key?", "Can I change the billing date?",
             "Is there a dark mode?", "How do I export to CSV?", "Which browsers are supported?"]  # fmt: skip


def test_cli_takes_the_training_flags() -> None:
    args = app.build_parser().parse_args(["eval", "t.csv", "--train", "tr.csv", "--finetune", "--minutes", "2"])
    assert args.finetune and args.minutes == 2.0 and args.threads == 1
    args = app.build_parser().parse_args(["train", "--from-csv", "f.csv", "--label-column", "kind"])
    assert args.from_csv == "f.csv" and args.label_column == "kind" and args.minutes == 15.0


@pytest.mark.slow
def test_train_exports_a_checked_encoder_that_a_running_service_swaps_in(sqlite_url: str, tmp_path: Path) -> None:
    bot = start_console(sqlite_url)
    try:
        for text in BUGS + QUESTIONS:
            send(bot, customer_message(bot, text))
        bot.settle()
        with bot.bot.deps.transaction() as s:
            for fb in s.scalars(select(Feedback)):
                fb.type, fb.status = ("Bug" if fb.text in BUGS else "Question"), "triaged"
        sessions = bot.bot.deps.sessions
        texts, tasks = retrain.labelled(sessions, None, "text", "label")
        assert sorted(str(y) for y in tasks[0]) == ["Bug"] * 6 + ["Question"] * 6 and tasks[1] == [None] * 12
        result = train(texts, tasks, minutes=0.05, base=shared_embedder(), cache_dir=tmp_path)
        assert result.steps >= 1 and result.seconds < 60 and 0 <= result.base_f1 <= 1 and 0 <= result.tuned_f1 <= 1
        meta = json.loads(result.path.with_suffix(".json").read_text())
        assert meta["sha256"] == result.sha256 == sha256_file(result.path)
        assert "held-out macro-F1: current encoder" in "\n".join(retrain.report(result))
        with pytest.raises(ModelUnavailable, match="does not match"):
            Embedder(onnx_file=result.path, onnx_sha256="0" * 64).load()

        svc = SuggestionService(bot.bot.deps.settings, sessions)  # builds its own encoder, as `run` does
        svc.start().join()
        before = {fb.id: from_blob(fb.embedding or b"") for fb in rows(bot)}
        with session_scope(sessions) as s:
            version = model_versions.add_version(
                session=s, path=str(result.path), sha256=result.sha256, base_sha256="b", labels=12, metrics={}
            ).id
        swap = svc.check_version()
        assert swap is not None
        assert svc.suggester is not None and svc.suggester.suggest("The export crashes").type  # still serving
        swap.join(120)
        assert svc.version_id == version and svc.embedder.onnx_file == result.path
        after = {fb.id: from_blob(fb.embedding or b"") for fb in rows(bot)}
        assert after.keys() == before.keys() and len(svc.suggester.index) == 12
        assert any(not np.allclose(after[i], before[i], atol=1e-6) for i in after)  # re-embedded by the new one
        assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in after.values())
        assert svc.suggester.types.n_labelled == 12 and svc.check_version() is None  # nothing new to swap
        assert svc.suggester.suggest("Saving crashes with an error").type in {"Bug", "Question"}
    finally:
        bot.close()


def test_scheduled_training_is_off_by_default_and_waits_for_new_labels(sqlite_url: str) -> None:
    bot = start_console(sqlite_url)
    try:
        deps = bot.bot.deps
        assert suggest_jobs.train(deps) == {"skipped": "FEEDBACK_TRAIN_CRON is not set"}
        deps.settings = deps.settings.model_copy(update={"feedback_train_cron": "0 3 * * sun"})
        send(bot, customer_message(bot, "The export crashes"))
        bot.settle()
        with deps.transaction() as s:
            s.scalars(select(Feedback)).one().type = "Bug"
        assert suggest_jobs.train(deps) == {"skipped": "1 new labels (fine-tuning waits for 50)"}
    finally:
        bot.close()
