"""Why: only a real `feedbackbot run` shows how fast a Linear state change reaches every requester, paced and once.

Seeds `--issues` Linear issues with `--per-issue` requesters each, already captured, carded and linked (written
through the models, as earlier runs would have left them), then starts the bot (`run --role all`, HTTP mode, SQLite
in a temp dir, FEEDBACK_CLOSE_LOOP=auto) against the fake Slack (`--latency` per answer) and the fake Linear. Moves
every issue to `started` and POSTs its signed webhook from `--clients` threads, timing each 2xx; then waits until
every requester got their customer message (metadata key `loop.send:`) and prints how long that took, messages/s,
the most loop posts any channel got within one second (the bot paces to one per 1.1 s per channel: must be <= 1)
and duplicates (must be 0). Two layouts: `own` (each requester in their own shared channel) and `shared`
(`--channels` channels with the requesters spread over them, so per-channel pacing shows). After each, a bare
waitress app that only checks the same HMAC signature takes the same bodies the same way, for the ack ratio.
Everything listens on 127.0.0.1 only.

Usage: python bench/bench_loop.py [--quick] [--issues N] [--per-issue M] [--channels C] [--layouts own,shared]
       [--latency SECONDS] [--clients K] [--no-cards] [--skip-bare]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import queue
import re
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import Process  # noqa: E402  - the same child-process wrapper as the pipeline benchmark

from bot.console import payloads  # noqa: E402
from bot.console.fake_linear import FakeLinear  # noqa: E402
from bot.console.fake_slack import FakeSlack  # noqa: E402
from bot.console.world import CHANNELS, CUSTOMER_TEAM, USERS  # noqa: E402
from bot.slack.gateway import PACE_SECONDS  # noqa: E402

SIGNING_SECRET, WEBHOOK_SECRET = "bench-loop-signing-secret", "bench-loop-webhook-secret"
TOKEN, LINEAR_KEY = "xoxb-bench", "lin_api_bench"
TRIAGE = "C0TRIAGE"
WINDOW = 1.0  # seconds: Slack allows about one message per second per channel
LAYOUTS = ("own", "shared")


@dataclass(frozen=True)
class Requester:
    """One seeded feedback item: its author's message (the loop answers in its thread) and its issue."""

    channel: str
    ts: str
    issue: str


@dataclass
class Delivery:
    """One signed webhook body and how its POST went."""

    issue: str
    body: bytes
    sent: float = 0.0  # monotonic, just before the request
    ms: float = math.nan
    status: int = 0  # 0: no HTTP answer
    outcome: str = ""


@dataclass(frozen=True)
class Post:
    """One customer loop message the fake Slack accepted."""

    channel: str
    thread_ts: str
    key: str
    at: float  # monotonic, when the fake answered


@dataclass
class Result:
    """One layout's headline numbers, for the closing summary."""

    layout: str
    acks: list[float]
    bare: list[float]
    told: int
    total: int
    told_s: float
    max_window: int
    duplicates: int


def _free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _wait_for(what: str, check: Callable[[], bool], timeout: float, proc: Process) -> float:
    """Polls `check` until it holds; fails with the child's log tail when it exits or `timeout` passes."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not proc.alive():
            raise SystemExit(f"{what}: the process exited ({proc.proc.returncode}):\n{proc.tail()}")
        try:
            if check():
                return time.monotonic() - started
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what}: not after {timeout:.0f} s:\n{proc.tail()}")


def _outbox(base: str) -> dict[str, int]:
    """The bot's outbox rows by status, as /healthz reports them."""
    return {str(k): int(v) for k, v in (httpx.get(f"{base}/healthz", timeout=5).json().get("outbox") or {}).items()}


def _idle(base: str) -> bool:
    """No outbox row waiting or in flight."""
    counts = _outbox(base)
    return counts.get("pending", 0) + counts.get("sending", 0) == 0


def _issue(linear: FakeLinear, identifier: str) -> dict[str, Any]:
    """One issue as the fake Linear API shows it."""
    return next(i for i in linear.issues() if i["identifier"] == identifier)


def _move(linear: FakeLinear, identifier: str, state: str) -> bytes:
    """Moves the issue in the fake Linear and returns the webhook body Linear would send about it."""
    before = _issue(linear, identifier)
    linear.set_issue_state(identifier, state)
    return json.dumps(payloads.linear_issue_webhook(_issue(linear, identifier), before["state"]["id"])).encode()


def _channel(layout: str, k: int, channels: int) -> str:
    """Requester k's shared channel: their own, or one of `channels` taken in turn."""
    return f"C0REQ{k:05d}" if layout == "own" else f"C0SHR{k % channels:04d}"


def seed(fake: FakeSlack, linear: FakeLinear, db_url: str, args: argparse.Namespace, layout: str) -> list[Requester]:
    """Items already captured, carded and linked to issues in Todo, as earlier runs would have left them."""
    from sqlalchemy.orm import Session

    from storage import migrate
    from storage.db import make_engine
    from storage.models import Feedback, LinearIssue, LinearLink

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    requesters: list[Requester] = []
    known: set[str] = set()
    slack = httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    with Session(engine) as session, slack:
        for i in range(args.issues):
            ident = f"ENG-{i + 1}"
            issue_id = linear.add_issue(ident, f"Export fix {i + 1}", state="Todo")
            view = _issue(linear, ident)
            session.add(LinearIssue(id=issue_id, identifier=ident, title=view["title"], url=view["url"],
                                    state_type="unstarted", state_name="Todo"))  # fmt: skip
            for j in range(args.per_issue):
                k = i * args.per_issue + j
                channel, user = _channel(layout, k, args.channels), f"U0REQ{k:05d}"
                if channel not in known:
                    fake.add_channel(channel, f"customer-{channel[2:].lower()}", is_ext_shared=True)
                    known.add(channel)
                fake.add_user(user, f"req{k}", team_id=CUSTOMER_TEAM, real_name=f"Requester{k} at Acme")
                msg = fake.post_as_user(channel, user, f"Issue {i + 1}, requester {k}: exports drop rows when filtered")
                card = _post_card(slack, f"Card for item {k}") if args.cards else None
                fb = Feedback(dedupe_key=f"msg:{channel}:{msg['ts']}", channel_id=channel, message_ts=msg["ts"],
                              author_user_id=user, author_team_id=CUSTOMER_TEAM, author_name=f"Requester{k} at Acme",
                              is_external=True, text=msg["text"], source="slack", capture_method="auto",
                              status="in Linear", card_channel=TRIAGE if card else None, card_ts=card)  # fmt: skip
                session.add(fb)
                session.flush()
                session.add(LinearLink(feedback_id=fb.id, issue_id=issue_id, identifier=ident, url=view["url"],
                                       title=view["title"], status="linked", via="link", state_type="unstarted",
                                       state_name="Todo"))  # fmt: skip
                requesters.append(Requester(channel, msg["ts"], ident))
        session.commit()
    engine.dispose()
    fake.reset_calls()  # the seeding's card posts are not the bot's
    return requesters


def _post_card(slack: httpx.Client, text: str) -> str:
    """A triage card posted as the bot, so the bot's chat.update calls find it."""
    answer = slack.post("chat.postMessage", json={"channel": TRIAGE, "text": text}).json()
    if not answer.get("ok"):
        raise SystemExit(f"seeding a card failed: {answer}")
    return str(answer["ts"])


def _headers(body: bytes) -> dict[str, str]:
    """Linear's delivery headers: the hex HMAC-SHA256 of the body and the delivery id."""
    return {
        "Content-Type": "application/json",
        "Linear-Signature": payloads.linear_signature(WEBHOOK_SECRET, body),
        "Linear-Delivery": str(json.loads(body)["webhookId"]),
    }


def _post(http: httpx.Client, d: Delivery) -> None:
    """One timed POST (signing happens before the clock starts: it is the sender's work)."""
    headers = _headers(d.body)
    d.sent = time.monotonic()
    try:
        resp = http.post("/linear/webhook", content=d.body, headers=headers)
    except httpx.HTTPError:
        d.ms = (time.monotonic() - d.sent) * 1000
        return
    d.ms = (time.monotonic() - d.sent) * 1000
    d.status = resp.status_code
    try:
        d.outcome = str(resp.json().get("outcome") or resp.json().get("error") or "")
    except ValueError:
        d.outcome = resp.text[:40]


def deliver(base: str, deliveries: list[Delivery], clients: int, timeout: float) -> None:
    """POSTs every delivery from `clients` threads, each with its own keep-alive connection."""
    work: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
    for d in deliveries:
        work.put(d)
    for _ in range(clients):
        work.put(None)

    def client() -> None:
        with httpx.Client(base_url=base, timeout=timeout) as http:
            while (d := work.get()) is not None:
                _post(http, d)

    threads = [threading.Thread(target=client, name=f"client-{n}", daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def loop_posts(fake: FakeSlack) -> list[Post]:
    """Every customer loop message the bot posted (metadata key `loop.send:`), in answer order."""
    posts = []
    for call in fake.calls_to("chat.postMessage"):
        meta = call.args.get("metadata")
        key = str(((meta if isinstance(meta, dict) else {}).get("event_payload") or {}).get("key", ""))
        if call.status == 200 and call.response.get("ok") and key.startswith("loop.send:"):
            posts.append(Post(str(call.args.get("channel")), str(call.args.get("thread_ts") or ""), key, call.at))
    return posts


def wait_told(fake: FakeSlack, requesters: list[Requester], timeout: float) -> float:
    """Waits until every requester has a loop message in their thread, or `timeout`; the seconds waited."""
    started, want = time.monotonic(), {(r.channel, r.ts) for r in requesters}
    while time.monotonic() - started < timeout:
        if want <= {(p.channel, p.thread_ts) for p in loop_posts(fake)}:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def _max_in_window(times: list[float], window: float) -> int:
    """The most timestamps inside any `window`-second span."""
    ordered, best, left = sorted(times), 0, 0
    for right, t in enumerate(ordered):
        while ordered[left] <= t - window:
            left += 1
        best = max(best, right - left + 1)
    return best


def _ms_line(values: list[float]) -> str:
    """p50/p95/p99/max of a list of milliseconds."""
    return (
        f"p50 {_pct(values, 50):.1f} ms   p95 {_pct(values, 95):.1f} ms   p99 {_pct(values, 99):.1f} ms   "
        f"max {_pct(values, 100):.1f} ms   (n={len(values)}{', so p99 is the max' if len(values) < 100 else ''})"
    )


def _print_acks(name: str, deliveries: list[Delivery]) -> list[float]:
    """The webhook answers: statuses, outcomes and 2xx latencies; returns the 2xx latencies."""
    ok = [d.ms for d in deliveries if 200 <= d.status < 300]
    statuses = Counter(d.status for d in deliveries)
    outcomes = Counter(d.outcome for d in deliveries if d.outcome)
    first = min(d.sent for d in deliveries)
    span = max(d.sent + d.ms / 1000 for d in deliveries) - first
    said = ", ".join(f"{n} {o!r}" for o, n in outcomes.most_common()) or "nothing"
    print(f"{name} webhooks: {len(deliveries)} sent in {span:.2f} s, HTTP {dict(statuses)}, answered {said}")
    print(f"  2xx latency {_ms_line(ok)}")
    return ok


def report_loop(
    fake: FakeSlack, requesters: list[Requester], deliveries: list[Delivery]
) -> tuple[int, float, int, int]:
    """Prints delivery time, rate, pacing and duplicates; returns (told, seconds, max per window, duplicates)."""
    posts, t0 = loop_posts(fake), min(d.sent for d in deliveries)
    sent_at = {d.issue: d.sent for d in deliveries}
    first: dict[tuple[str, str], Post] = {}
    for p in sorted(posts, key=lambda p: p.at):
        first.setdefault((p.channel, p.thread_ts), p)
    told = [first[(r.channel, r.ts)] for r in requesters if (r.channel, r.ts) in first]
    e2e = [first[(r.channel, r.ts)].at - sent_at[r.issue] for r in requesters if (r.channel, r.ts) in first]
    took = max((p.at for p in told), default=math.nan) - t0
    per_channel = Counter(r.channel for r in requesters)
    floor = (max(per_channel.values()) - 1) * PACE_SECONDS
    print(
        f"loop messages: {len(told)}/{len(requesters)} requesters told, the last {took:.1f} s after the first webhook"
        f" = {len(told) / took:.1f} messages/s   (pacing floor {floor:.1f} s: up to {max(per_channel.values())} per"
        f" channel x {PACE_SECONDS} s)"
    )
    print(
        f"  webhook -> requester's message p50 {_pct(e2e, 50):.2f} s   p95 {_pct(e2e, 95):.2f} s   "
        f"max {_pct(e2e, 100):.2f} s   (first one after {min(e2e, default=math.nan):.2f} s)"
    )
    by_channel: dict[str, list[float]] = defaultdict(list)
    for p in posts:
        by_channel[p.channel].append(p.at)
    most = max((_max_in_window(v, WINDOW) for v in by_channel.values()), default=0)
    gaps = [b - a for v in by_channel.values() for a, b in zip(sorted(v), sorted(v)[1:], strict=False)]
    closest = f"{min(gaps):.3f} s" if gaps else "n/a (one post per channel)"
    verdict = "OK" if most <= 1 else "OVER"
    print(f"  most loop posts to one channel within any {WINDOW:.0f} s: {most} (limit 1: {verdict});"
          f" closest two in one channel: {closest}")  # fmt: skip
    return len(told), took, most, _print_duplicates(posts, requesters)


def _print_duplicates(posts: list[Post], requesters: list[Requester]) -> int:
    """Keys posted twice, requesters told twice, posts outside a requester's thread; returns the duplicates."""
    keys = Counter(p.key for p in posts)
    threads = Counter((p.channel, p.thread_ts) for p in posts)
    wanted = {(r.channel, r.ts) for r in requesters}
    twice_keys = sum(n - 1 for n in keys.values() if n > 1)
    twice_told = sum(1 for n in threads.values() if n > 1)
    stray = sum(n for t, n in threads.items() if t not in wanted)
    missing = len(wanted - threads.keys())
    verdict = "OK" if twice_keys == twice_told == stray == missing == 0 else "WRONG"
    print(f"  duplicates: {twice_keys} extra posts of a loop.send key, {twice_told} requesters told more than once;"
          f" {missing} never told, {stray} posts outside a requester's thread ({verdict})")  # fmt: skip
    return twice_keys + twice_told


def _print_calls(fake: FakeSlack) -> None:
    """The bot's Slack Web API calls by method (a non-200 status in brackets)."""
    with fake._lock:
        recorded = list(fake.calls)
    calls = Counter(c.method if c.status == 200 else f"{c.method}[{c.status}]" for c in recorded)
    refused = Counter(str(c.response.get("error")) for c in recorded if c.status == 200 and not c.response.get("ok"))
    print(f"  Slack Web API calls: {', '.join(f'{m} {n}' for m, n in calls.most_common())}")
    if refused:
        print(f"  Slack ok:false answers: {dict(refused)}")


def _print_log_problems(log: Path) -> None:
    """Warnings and errors the bot logged, folded by shape (digits masked)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if re.search(r"WARNING|ERROR|Traceback", ln)]
    shapes = Counter(re.sub(r"\d+", "#", ln)[:200] for ln in lines)
    print(f"bot log: {len(lines)} warning/error lines ({log})")
    for shape, n in shapes.most_common(8):
        print(f"  {n:>5} x {shape}")


def _bot_env(fake: FakeSlack, linear: FakeLinear, team: str, tmp: Path) -> dict[str, str]:
    """The bot's environment: fakes, SQLite in `tmp`, the loop on auto, no model, no periodic poll."""
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp), "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url, "FEEDBACK_TRIAGE_CHANNEL": TRIAGE, "DATABASE_URL": f"sqlite:///{tmp / 'f.db'}",
        "FEEDBACKBOT_CONFIG": str(tmp / "none.toml"), "FEEDBACK_SUGGESTIONS": "false",
        "FEEDBACK_CLOSE_LOOP": "auto", "LINEAR_WEBHOOK_SECRET": WEBHOOK_SECRET, "LINEAR_API_KEY": LINEAR_KEY,
        "LINEAR_API_URL": linear.url, "LINEAR_TEAM_ID": team, "FEEDBACK_LINEAR_POLL_SECONDS": "3600",
    }  # fmt: skip
    env.update({k: v for k, v in os.environ.items() if k.startswith(("WORKER_", "OUTBOX_", "SLACK_TIMEOUT"))})
    return env


def _start_bot(env: dict[str, str], tmp: Path) -> tuple[Process, str]:
    """`app.py run --role all`, up and quiet: healthy, its start-up sweeps (the Linear poll, a digest) run, and what
    they queued sent, so the timed phase starts from an empty outbox."""
    port = _free_port()
    cmd = [sys.executable, "app.py", "run", "--role", "all", "--host", "127.0.0.1", "--port", str(port)]
    bot = Process(cmd, env, tmp / "bot.log")
    base = f"http://127.0.0.1:{port}"
    up = _wait_for("bot /healthz", lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 120, bot)
    swept = _wait_for("start-up sweeps", lambda: _sweeps_done(bot.log.read_text()), 60, bot)
    quiet = _wait_for("outbox empty", lambda: _idle(base), 60, bot)
    print(f"started in {up:.1f} s (start-up sweeps done {swept:.1f} s later, outbox empty {quiet:.1f} s later)")
    return bot, base


def _sweeps_done(log: str) -> bool:
    """Every sweep the scheduler named when it became active has logged its first run."""
    found = re.search(r"scheduler active: (.+)", log)
    return found is not None and all(f"sweep {name.strip()}:" in log for name in found.group(1).split(","))


def _warm_up(base: str, body: bytes) -> None:
    """One delivery before timing (about an issue nobody linked), so one-off first-request costs count for no one."""
    d = Delivery("warm-up", body)
    with httpx.Client(base_url=base, timeout=30) as http:
        _post(http, d)
    if d.status != 200:
        raise SystemExit(f"warm-up webhook answered {d.status} {d.outcome}")


def _print_header(args: argparse.Namespace, layout: str, requesters: list[Requester]) -> None:
    """What this layout runs."""
    channels = len({r.channel for r in requesters})
    per = max(Counter(r.channel for r in requesters).values())
    print(
        f"== layout {layout}: {args.issues} issues x {args.per_issue} requesters = {len(requesters)} items in "
        f"{channels} shared channels (up to {per} per channel); fake Slack latency {args.latency * 1000:.0f} ms; "
        f"cards {'on' if args.cards else 'off'}; {args.clients} client threads"
    )
    print(f"load average at start: {_load()}")


def bench_layout(args: argparse.Namespace, layout: str, tmp: Path) -> Result:
    """One layout: seed, start the bot, move every issue, time webhooks and loop messages, then the bare peer."""
    with FakeSlack() as fake, FakeLinear(api_key=LINEAR_KEY) as linear:
        for name, (uid, team_id, real) in USERS.items():
            fake.add_user(uid, name, team_id=team_id, real_name=real)
        for name, (cid, shared) in CHANNELS.items():
            fake.add_channel(cid, name, is_ext_shared=shared)
        team = linear.add_team("ENG")
        requesters = seed(fake, linear, f"sqlite:///{tmp / 'f.db'}", args, layout)
        linear.add_issue(f"ENG-{args.issues + 1}", "Nobody asked for this", state="Todo")  # for the warm-up
        fake.latency = args.latency
        _print_header(args, layout, requesters)
        bot, base = _start_bot(_bot_env(fake, linear, team, tmp), tmp)
        try:
            warm = _move(linear, f"ENG-{args.issues + 1}", "started")
            _warm_up(base, warm)
            fake.reset_calls()  # from here on, every Slack call is the timed phase's
            deliveries = [
                Delivery(f"ENG-{i + 1}", _move(linear, f"ENG-{i + 1}", "started")) for i in range(args.issues)
            ]
            deliver(base, deliveries, args.clients, args.request_timeout)
            acks = _print_acks("ours", deliveries)
            waited = wait_told(fake, requesters, args.drain_timeout)
            time.sleep(2.0)  # a late duplicate would show up now
            told, took, most, dups = report_loop(fake, requesters, deliveries)
            if told < len(requesters):
                print(f"  gave up waiting after {waited:.0f} s (--drain-timeout)")
            _print_drain(base, bot, fake, min(d.sent for d in deliveries))
            _print_calls(fake)
            print(f"bot peak RSS (VmHWM): {bot.peak_rss_mb():.1f} MB")
            print(f"load average at end: {_load()}")
        finally:
            code = bot.stop()
        print(f"bot exit code after SIGTERM: {code}")
        _print_log_problems(bot.log)
    bare = [] if args.skip_bare else bench_bare(args, tmp, warm, [d.body for d in deliveries], acks)
    return Result(layout, acks, bare, told, len(requesters), took, most, dups)


def _print_drain(base: str, bot: Process, fake: FakeSlack, t0: float) -> None:
    """When the last Slack call (card updates included) came, and the outbox's rows by status once it is empty."""
    try:
        _wait_for("outbox drain", lambda: _idle(base), 60, bot)
        counts = _outbox(base)
    except SystemExit as exc:
        print(f"  outbox: {exc}".splitlines()[0])
        return
    with fake._lock:
        last = max((c.at for c in fake.calls), default=math.nan)
    bad = {k: v for k, v in counts.items() if k in ("failed", "dead", "pending", "sending") and v}
    print(f"  all Slack work (card updates included) done {last - t0:.1f} s after the first webhook;"
          f" outbox rows by status {counts} ({'none failed' if not bad else f'NOT DONE: {bad}'})")  # fmt: skip


def bench_bare(args: argparse.Namespace, tmp: Path, warm: bytes, bodies: list[bytes], ours: list[float]) -> list[float]:
    """The bare peer takes the same bodies the same way; prints its latencies and the ratios to ours."""
    port = _free_port()
    print("== bare WSGI peer (waitress threads=8, HMAC check only, no database), the same bodies the same way")
    print(f"load average at start: {_load()}")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peer-serve", str(port)]
    peer = Process(cmd, {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}, tmp / "bare.log")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for("bare peer", lambda: httpx.get(base, timeout=2).status_code < 500, 60, peer)
        _warm_up(base, warm)
        deliveries = [Delivery(f"body-{n}", body) for n, body in enumerate(bodies)]
        deliver(base, deliveries, args.clients, args.request_timeout)
        bare = _print_acks("bare", deliveries)
        print(f"load average at end: {_load()}")
    finally:
        peer.stop()
    for p in (50, 99):
        a, b = _pct(ours, p), _pct(bare, p)
        print(f"webhook ack p{p} ours/bare: {a:.1f} / {b:.1f} ms = {a / b:.2f}x")
    return bare


def peer_serve(port: int) -> None:
    """The comparison: a WSGI app that reads the body, checks Linear's HMAC and answers 200, nothing else."""
    from waitress import serve

    key = WEBHOOK_SECRET.encode()

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(expected, str(environ.get("HTTP_LINEAR_SIGNATURE", "")).strip().lower())
        status, data = ("200 OK", b'{"ok": true}') if good else ("401 Unauthorized", b'{"ok": false}')
        start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    serve(app, host="127.0.0.1", port=port, threads=8)


def _print_summary(results: list[Result]) -> None:
    """One line per layout."""
    print("== summary")
    for r in results:
        ratio = ""
        if r.bare:
            ratio = f" (bare {_pct(r.bare, 50):.1f} / {_pct(r.bare, 99):.1f} ms)"
        print(
            f"  {r.layout:<6} webhook ack p50 {_pct(r.acks, 50):.1f} ms, p99 {_pct(r.acks, 99):.1f} ms{ratio};"
            f" {r.told}/{r.total} told in {r.told_s:.1f} s = {r.told / r.told_s:.1f} msg/s;"
            f" max {r.max_window} per channel per {WINDOW:.0f} s; {r.duplicates} duplicates"
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (`--quick` shrinks the run to a smoke test)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--issues", type=int, default=20, help="Linear issues moved to started (default 20)")
    p.add_argument("--per-issue", type=int, default=10, help="requesters linked to each issue (default 10)")
    p.add_argument("--channels", type=int, default=10, help="channels in the shared layout (default 10)")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated: own, shared (default both)")
    p.add_argument("--latency", type=float, default=0.1, help="seconds the fake Slack adds to each answer")
    p.add_argument("--clients", type=int, default=4, help="client threads sending webhooks (default 4)")
    p.add_argument("--cards", action=argparse.BooleanOptionalAction, default=True,
                   help="seed a triage card per item, so state changes also update cards (default on)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: 5 issues x 4 requesters, 2 shared channels")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="max seconds to wait for every message")
    p.add_argument("--request-timeout", type=float, default=10.0, help="HTTP timeout for one webhook")
    p.add_argument("--skip-bare", action="store_true", help="do not run the bare WSGI comparison")
    p.add_argument("--peer-serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.issues, args.per_issue, args.channels = 5, 4, 2
    args.layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    if bad := [x for x in args.layouts if x not in LAYOUTS]:
        p.error(f"unknown layout(s) {bad}; choose from {', '.join(LAYOUTS)}")
    if min(args.issues, args.per_issue, args.channels, args.clients) < 1:
        p.error("--issues, --per-issue, --channels and --clients must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs each layout in a fresh temp dir (kept: the logs are worth reading afterwards)."""
    args = parse(argv)
    if args.peer_serve:
        peer_serve(args.peer_serve)
        return 0
    results = []
    for layout in args.layouts:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-loop-{layout}-"))
        results.append(bench_layout(args, layout, tmp))
    _print_summary(results)
    return 0 if all(r.told == r.total and r.max_window <= 1 and r.duplicates == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
