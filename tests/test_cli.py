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


def test_run_serves_http_mode_with_a_production_server(tmp_path: Path) -> None:
    """`feedbackbot run` (no app token): waitress on --port, /healthz, signed events, the worker sending."""
    import hashlib
    import hmac
    import json
    import socket
    import time

    import httpx

    from bot.console.fake_slack import FakeSlack
    from tests.conftest import payload

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FakeSlack() as fake:
        fake.add_channel("C0SHARED", "acme-shared", is_ext_shared=True)
        fake.add_user("U0CUST", "carol", team_id="T0CUSTOMER")
        fake.add_channel("C0TRIAGE", "feedback-triage")
        env = _env(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET="s3cret",
            SLACK_API_URL=fake.url,
            FEEDBACK_TRIAGE_CHANNEL="C0TRIAGE",
            FEEDBACK_SUGGESTIONS="false",
        )
        proc = subprocess.Popen(
            [sys.executable, "app.py", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            msg = fake.post_as_user("C0SHARED", "U0CUST", "The CSV export drops the last row")
            event = payload("slack_event_message_external.json")
            event["event"].update(ts=msg["ts"], text=msg["text"])
            body = json.dumps(event)
            ts = str(int(time.time()))
            sig = "v0=" + hmac.new(b"s3cret", f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
            resp = httpx.post(
                f"{base}/slack/events",
                content=body,
                headers={"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig},
            )
            assert resp.status_code == 200
            while time.time() < deadline and not fake.calls_to("reactions.add"):
                time.sleep(0.1)
            assert fake.calls_to("reactions.add") and fake.calls_to("chat.postMessage")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_settings_validate_type_emoji_and_normalise_the_api_url() -> None:
    s = Settings.model_validate(
        {"feedback_type_emoji": {":bug:": "bug", "sparkles": "Praise"}, "slack_api_url": "http://127.0.0.1:9/api"}
    )
    assert s.feedback_type_emoji == {"bug": "Bug", "sparkles": "Praise"}
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    with pytest.raises(ValueError, match="not a feedback type"):
        Settings.model_validate({"feedback_type_emoji": {"bug": "Bugz"}})
