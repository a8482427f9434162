"""The `feedbackbot` CLI: run refuses clearly without Slack, db commands, and the console tour."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import app
from bot.console import run_console
from bot.settings import Settings
from storage import migrate
from storage.db import make_engine

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}",
        "FEEDBACKBOT_CONFIG": str(tmp_path / "none.toml"),
        **extra,
    }


def test_run_without_slack_tokens_names_what_is_missing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "app.py", "run"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "FEEDBACK_TRIAGE_CHANNEL", "feedbackbot console"):
        assert name in proc.stderr


def test_no_migrate_refuses_a_database_that_is_behind(tmp_path: Path) -> None:
    settings = Settings.model_validate({"database_url": f"sqlite:///{tmp_path / 'f.db'}"})
    with pytest.raises(SystemExit, match="feedbackbot db upgrade"):
        app.create_app(settings, migrate_db=False)


def test_db_upgrade_and_current(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("FEEDBACKBOT_CONFIG", str(tmp_path / "none.toml"))
    assert app.main(["db", "current"]) == 0
    assert "database at None" in capsys.readouterr().out
    assert app.main(["db", "upgrade"]) == 0
    assert f"database at {migrate.head()}" in capsys.readouterr().out
    assert migrate.current(make_engine(f"sqlite:///{tmp_path / 'f.db'}")) == migrate.head()


def test_settings_from_toml_and_env(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "feedbackbot.toml"
    cfg.write_text('feedback_triage_channel = "C0TOML"\nfeedback_receipt = "reply"\nfeedback_emoji = ":fb:"\n')
    monkeypatch.setenv("FEEDBACKBOT_CONFIG", str(cfg))
    monkeypatch.setenv("FEEDBACK_RECEIPT", "off")
    monkeypatch.setenv("FEEDBACK_WATCH_CHANNELS", "C1, C2")
    s = Settings()
    assert (s.feedback_triage_channel, s.feedback_receipt, s.feedback_emoji) == ("C0TOML", "off", "fb")
    assert s.feedback_watch_channels == ["C1", "C2"]


def test_console_tour_script_shows_the_whole_capture_flow(tmp_path: Path) -> None:
    out = io.StringIO()
    settings = Settings.model_validate({})
    assert (
        run_console(
            settings,
            app.create_app,
            script=str(ROOT / "examples" / "tour.txt"),
            database_url=f"sqlite:///{tmp_path / 'c.db'}",
            out=out,
        )
        == 0
    )
    text = out.getvalue()
    assert "[#feedback-triage] Feedback Loop:" in text
    assert "reacted :eyes:" in text
    assert "! source: Required." in text
    assert "(modal closed)" in text
    assert "#4 [new] command" in text
    assert "#5 [maybe] auto" in text, "chatter is held back"
    assert "*Linear:* ENG-8" in text and "2 requests" in text and "Also requested by:* Dave at Acme" in text
    assert "only visible to @carol] Only members" in text
    assert "ENG-8 [Backlog] [Bug] The CSV export drops the last row" in text
    assert "HTTP 5" not in text and "failed" not in text
