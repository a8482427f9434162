"""`feedbackbot run` as a real process, killed with SIGKILL at random moments (also right after a 2xx), and
stopped with SIGTERM: every acknowledged message ends up stored once, with one card and one receipt."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.console import payloads
from bot.console.fake_linear import FakeLinear
from bot.console.fake_slack import FakeSlack
from bot.console.world import CHANNELS, USERS
from tests.conftest import payload

ROOT = Path(__file__).resolve().parents[1]
SECRET = "crash-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bot:
    """One `python app.py run` in HTTP mode against the fake Slack; restartable on the same database."""

    def __init__(self, fake: FakeSlack, tmp: Path):
        self.fake, self.tmp, self.port = fake, tmp, _free_port()
        self.env = {
            "PATH": "/usr/bin:/bin", "HOME": str(tmp), "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url, "FEEDBACK_TRIAGE_CHANNEL": "C0TRIAGE",
            "DATABASE_URL": f"sqlite:///{tmp / 'f.db'}", "FEEDBACKBOT_CONFIG": str(tmp / "none.toml"),
            "FEEDBACK_SUGGESTIONS": "false", "OUTBOX_LEASE_SECONDS": "3",
        }  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    def start(self, role: str = "all") -> None:
        out = (self.tmp / f"{role}.log").open("ab")
        cmd = [sys.executable, "app.py", "run", "--role", role, "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("the bot did not start: " + (self.tmp / f"{role}.log").read_text()[-2000:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def send(self, envelope: dict) -> int:
        body = json.dumps(envelope).encode()
        ts = str(int(time.time()))
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": payloads.sign(SECRET, body, ts)}
        try:
            resp = self.http.post("/slack/events", content=body, headers=headers | {"Content-Type": "application/json"})
        except httpx.TransportError:
            return 0  # never answered: Slack would redeliver it
        return resp.status_code


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        for name, (uid, team, real) in USERS.items():
            fake.add_user(uid, name, team_id=team, real_name=real)
        for name, (cid, shared) in CHANNELS.items():
            fake.add_channel(cid, name, is_ext_shared=shared)
        yield fake


def _message(fake: FakeSlack, i: int) -> dict:
    msg = fake.post_as_user("C0SHARED", "U0CUST", f"Report {i}: the export drops row {i} when filtered")
    env = payload("slack_event_message_external.json")
    env["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=msg["text"])
    env["event_id"] = f"Ev{i:08d}"
    return env


def _settled(fake: FakeSlack, acked: list[dict], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    want = {e["event"]["ts"] for e in acked}
    while time.monotonic() < deadline:
        reacted = {c.args["timestamp"] for c in fake.calls_to("reactions.add") if c.response.get("ok")}
        if want <= reacted and len(_cards(fake)) >= len(want):
            return
        time.sleep(0.2)
    raise AssertionError(f"{len(want - reacted)} acked messages never got a receipt")


def _cards(fake: FakeSlack) -> list[dict]:
    """Cards (not the scheduled reports a fresh bot may post to the same channel)."""
    keys = [
        (m, str(((m.get("metadata") or {}).get("event_payload") or {}).get("key", "")))
        for m in fake.messages("C0TRIAGE")
    ]
    return [m for m, key in keys if key.startswith("card:")]


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(fake: FakeSlack, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    bot = Bot(fake, tmp_path)
    acked: list[dict] = []
    sent = 0
    for _round in range(3):
        bot.start()
        for _ in range(rng.randint(8, 20)):
            env = _message(fake, sent)
            sent += 1
            if bot.send(env) == 200:
                acked.append(env)
        time.sleep(rng.choice([0.0, 0.0, 0.05, 0.3]))  # 0: killed right after the last 2xx
        bot.kill()
    bot.start()
    try:
        _settled(fake, acked)
        time.sleep(1.0)  # anything still due would show up as a duplicate now
        by_ts: dict[str, int] = {}
        for card in _cards(fake):
            key = card["metadata"]["event_payload"]["key"]
            by_ts.setdefault(key, 0)
            by_ts[key] += 1
        assert all(n == 1 for n in by_ts.values()), f"duplicate cards: { {k: n for k, n in by_ts.items() if n > 1} }"
        reactions = [c.args["timestamp"] for c in fake.calls_to("reactions.add") if c.response.get("ok")]
        assert len(reactions) == len(set(reactions)), "a receipt was sent twice"
        assert {e["event"]["ts"] for e in acked} <= set(reactions)
        assert len(by_ts) >= len(acked), "every acked message has its card"
        texts = [card["text"] for card in _cards(fake)]
        for env in acked:  # one item per message: exactly one card quotes it
            assert sum(env["event"]["text"] in t for t in texts) == 1, env["event"]["text"]
    finally:
        bot.kill(signal.SIGTERM)


def test_sigterm_exits_within_ten_seconds_and_keeps_the_backlog(fake: FakeSlack, tmp_path: Path) -> None:
    bot = Bot(fake, tmp_path)
    bot.start()
    fake.latency = 0.3  # a slow Slack, so work is in flight when the signal comes
    acked = [env for env in (_message(fake, i) for i in range(15)) if bot.send(env) == 200]
    assert len(acked) == 15, "every store-before-ack answer is a 200"
    started = time.monotonic()
    bot.kill(signal.SIGTERM)
    assert time.monotonic() - started < 10
    assert bot.proc is not None and bot.proc.returncode == 0
    fake.latency = 0.0
    bot.start()
    try:
        _settled(fake, acked, timeout=30)
        reactions = [c.args["timestamp"] for c in fake.calls_to("reactions.add") if c.response.get("ok")]
        assert len(reactions) == len(set(reactions)) == 15
    finally:
        bot.kill(signal.SIGTERM)


def test_web_and_worker_roles_split_the_work(fake: FakeSlack, tmp_path: Path) -> None:
    web = Bot(fake, tmp_path)
    web.start(role="web")  # migrates the database first
    worker = Bot(fake, tmp_path)
    worker.env["WORKER_POLL_SECONDS"] = "0.1"
    worker.start(role="worker")
    try:
        assert worker.send(_message(fake, 0)) == 404, "a worker process takes no Slack requests"
        acked = [env for env in (_message(fake, i) for i in range(1, 6)) if web.send(env) == 200]
        assert len(acked) == 5
        _settled(fake, acked, timeout=30)
        assert len(_cards(fake)) == 5
    finally:
        web.kill(signal.SIGTERM)
        worker.kill(signal.SIGTERM)


def _seed_linked_items(bot: Bot, fake: FakeSlack, linear: FakeLinear, issues: int, per_issue: int) -> list[dict]:
    """Items already captured and linked (written through the models, as earlier runs would have), each in its
    own shared channel so their messages are paced independently."""
    from sqlalchemy.orm import Session

    from storage import migrate
    from storage.db import make_engine
    from storage.models import Feedback, LinearLink

    engine = make_engine(bot.env["DATABASE_URL"])
    migrate.upgrade(engine)
    items = []
    with Session(engine) as session:
        for i in range(issues):
            issue_id = linear.add_issue(f"ENG-{i + 1}", f"Export fix {i + 1}", state="Todo")
            for j in range(per_issue):
                channel = f"C0CUST{i}{j}"
                fake.add_channel(channel, f"customer-{i}-{j}", is_ext_shared=True)
                msg = fake.post_as_user(channel, "U0CUST", f"Issue {i} customer {j}: exports drop rows")
                fb = Feedback(dedupe_key=f"msg:{channel}:{msg['ts']}", channel_id=channel, message_ts=msg["ts"],
                              author_user_id="U0CUST", author_name="Carol", text=msg["text"], source="slack",
                              capture_method="auto", status="in Linear")  # fmt: skip
                session.add(fb)
                session.flush()
                session.add(LinearLink(feedback_id=fb.id, issue_id=issue_id, identifier=f"ENG-{i + 1}", status="linked",
                                       via="link", state_type="unstarted", state_name="Todo"))  # fmt: skip
                items.append({"channel": channel, "ts": msg["ts"], "issue": f"ENG-{i + 1}"})
        session.commit()
    engine.dispose()
    return items


def test_sigkill_while_loop_messages_flow_tells_each_requester_once(fake: FakeSlack, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    with FakeLinear(api_key="lin_api_crash") as linear:
        team = linear.add_team("ENG")
        bot = Bot(fake, tmp_path)
        bot.env.update(FEEDBACK_CLOSE_LOOP="auto", LINEAR_WEBHOOK_SECRET="whsec", LINEAR_API_KEY="lin_api_crash",
                       LINEAR_API_URL=linear.url, LINEAR_TEAM_ID=team, FEEDBACK_LINEAR_POLL_SECONDS="3600")  # fmt: skip
        items = _seed_linked_items(bot, fake, linear, issues=3, per_issue=3)
        fake.fail_next("chat.postMessage", status=503, times=2)
        fake.fail_next("chat.postMessage", status=429, retry_after=1)
        pending: list[bytes] = []
        moves = [(f"ENG-{i + 1}", state) for state in ("started", "completed") for i in range(3)]
        for round_moves in (moves[:2], moves[2:4], moves[4:]):
            bot.start()
            for body in [*pending, *(_move(linear, issue, state) for issue, state in round_moves)]:
                if body in pending:
                    pending.remove(body)
                if _deliver(bot, body) != 200:
                    pending.append(body)  # unanswered: Linear redelivers it
            time.sleep(rng.choice([0.0, 0.2, 0.8, 1.5]))
            bot.kill()
        bot.start()
        try:
            for body in pending:
                assert _deliver(bot, body) == 200
            _loop_settled(fake, items, timeout=90)
            time.sleep(1.5)  # anything still due would show up as a duplicate now
            for item in items:  # the start-up poll may see "completed" first: then "started" is old news, not sent
                posts = _loop_posts(fake, item["channel"])
                kinds = ["update" if "started working" in p["text"] else "resolution" for p in posts]
                assert kinds in (["update", "resolution"], ["resolution"]), f"{item}: {[p['text'] for p in posts]}"
                assert all(p["thread_ts"] == item["ts"] for p in posts)
        finally:
            bot.kill(signal.SIGTERM)


def _move(linear: FakeLinear, issue: str, state: str) -> bytes:
    before = next(i for i in linear.issues() if i["identifier"] == issue)
    linear.set_issue_state(issue, state)
    after = next(i for i in linear.issues() if i["identifier"] == issue)
    return json.dumps(payloads.linear_issue_webhook(after, before["state"]["id"])).encode()


def _deliver(bot: Bot, body: bytes) -> int:
    headers = {"Content-Type": "application/json", "Linear-Signature": payloads.linear_signature("whsec", body),
               "Linear-Delivery": json.loads(body)["webhookId"]}  # fmt: skip
    try:
        return bot.http.post("/linear/webhook", content=body, headers=headers).status_code
    except httpx.TransportError:
        return 0


def _loop_posts(fake: FakeSlack, channel: str) -> list[dict]:
    return [
        m for m in fake.messages(channel)
        if str(((m.get("metadata") or {}).get("event_payload") or {}).get("key", "")).startswith("loop.send:")
    ]  # fmt: skip


def _loop_settled(fake: FakeSlack, items: list[dict], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_shipped(fake, i["channel"]) for i in items):
            return
        time.sleep(0.3)
    missing = [i for i in items if not _shipped(fake, i["channel"])]
    raise AssertionError(f"{len(missing)} requesters were never told it shipped: {missing}")


def _shipped(fake: FakeSlack, channel: str) -> bool:
    return any("live" in p["text"] for p in _loop_posts(fake, channel))


def test_one_scheduler_is_active_and_a_standby_takes_over(fake: FakeSlack, tmp_path: Path) -> None:
    first, second = Bot(fake, tmp_path / "a"), Bot(fake, tmp_path / "b")
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    second.env["DATABASE_URL"] = first.env["DATABASE_URL"]  # one database, two scheduler processes
    first.start(role="scheduler")
    second.start(role="scheduler")
    try:
        assert first.send(_message(fake, 0)) == 404, "a scheduler process takes no Slack requests"
        active = _wait_for_log([tmp_path / "a" / "scheduler.log", tmp_path / "b" / "scheduler.log"], 15)
        standby = second if active == 0 else first
        (first if active == 0 else second).kill()
        log = standby.tmp / "scheduler.log"
        assert _wait_for_log([log], 15) == 0, "the standby never took over"
    finally:
        first.kill(signal.SIGTERM) if first.proc and first.proc.poll() is None else None
        second.kill(signal.SIGTERM) if second.proc and second.proc.poll() is None else None


def _wait_for_log(logs: list[Path], timeout: float) -> int:
    """Index of the one log that says its scheduler is active (fails if none, or more than one, does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = [i for i, p in enumerate(logs) if p.exists() and "scheduler active" in p.read_text()]
        if active:
            time.sleep(1.0)  # a second one would have said so by now
            again = [i for i, p in enumerate(logs) if p.exists() and "scheduler active" in p.read_text()]
            assert again == active, "two schedulers became active at once"
            return active[0]
        time.sleep(0.2)
    raise AssertionError("no scheduler became active")
