"""Why: only a real `feedbackbot run` process under backlog + steady load shows true ack, receipt and card latency.

Starts the bot (HTTP mode, SQLite in a temp dir) against an in-process fake Slack Web API with `--latency` per answer,
sends signed message events from an external customer (a backlog as fast as possible, then `--rate` events/s for
`--seconds`), and times every ack, every receipt (reactions.add) and every triage card (chat.postMessage) as the fake
records them. Then runs a bare bolt-python app (one no-op `message` listener, waitress) on the same schedule and
compares ack latencies. Everything listens on 127.0.0.1 only.

Usage: python bench/bench_pipeline.py [--quick] [--backlog N] [--rate R] [--seconds S] [--latency SECONDS] [--model]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.console import payloads  # noqa: E402
from bot.console.fake_slack import FakeSlack, _parse_args  # noqa: E402
from bot.console.world import CHANNELS, USERS  # noqa: E402

SECRET = "bench-pipeline-secret"
TOKEN = "xoxb-bench"
SHARED, CUSTOMER, TRIAGE = "C0SHARED", "U0CUST", "C0TRIAGE"
TEMPLATE = json.loads((ROOT / "tests" / "payloads" / "slack_event_message_external.json").read_text())
TAG = re.compile(r"Report (\d{6}):")
SLOW_ACK_MS = 250.0
TARGET_RATIO = 1.5


def _text(i: int) -> str:
    """A unique, feedback-like text whose tag `Report NNNNNN:` finds its card again."""
    return f"Report {i:06d}: the export drops row {i} when a filter is applied"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class TimedFake(FakeSlack):
    """The fake Slack, also noting when each successful receipt and triage card arrived (monotonic clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.receipts: dict[str, list[float]] = defaultdict(list)  # message ts -> arrival times
        self.cards: dict[int, list[float]] = defaultdict(list)  # message index -> arrival times
        self.receipt_errors: dict[str, int] = defaultdict(int)  # reactions.add ok:false errors, by error
        self._seen = threading.Lock()

    def _handle_api(self, method: str, query: str, body: bytes, ctype: str, auth: str) -> tuple[int, Any, bytes]:
        status, headers, payload = super()._handle_api(method, query, body, ctype, auth)
        now = time.monotonic()
        if status != 200 or method not in ("reactions.add", "chat.postMessage"):
            return status, headers, payload
        response = json.loads(payload)
        if method == "reactions.add":
            ts = str(_parse_args(query, body, ctype).get("timestamp", ""))
            with self._seen:
                if response.get("ok"):
                    self.receipts[ts].append(now)
                else:
                    self.receipt_errors[str(response.get("error"))] += 1
            return status, headers, payload
        msg = response.get("message") or {}
        if response.get("ok") and response.get("channel") == TRIAGE and not msg.get("thread_ts"):
            found = TAG.search(str(msg.get("text") or "")) or TAG.search(json.dumps(msg.get("blocks") or []))
            if found:
                with self._seen:
                    self.cards[int(found.group(1))].append(now)
        return status, headers, payload


@dataclass
class Sample:
    """One event sent: when, how long its ack took, what came back."""

    idx: int
    phase: str  # backlog | steady
    ts: str = ""
    sent: float = 0.0  # monotonic, just before the request
    lag: float = 0.0  # how late the send started against its schedule
    ack_ms: float = float("nan")
    status: int = 0  # 0: no HTTP answer


@dataclass
class Run:
    """Every sample of one target, plus the wall times of its phases."""

    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    backlog_sent: float = 0.0
    finished: float = 0.0

    def acked(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200]


def _envelope(fake: FakeSlack, i: int, text: str) -> tuple[str, bytes]:
    """Posts the customer's message into the fake, then builds the matching signed-to-be Events API body."""
    msg = fake.post_as_user(SHARED, CUSTOMER, text)
    env = copy.deepcopy(TEMPLATE)
    env["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=msg["text"], blocks=msg["blocks"])
    env["event"]["client_msg_id"] = msg["client_msg_id"]
    env["event_id"] = f"EvBench{i:08d}"
    env["event_time"] = int(time.time())
    return msg["ts"], json.dumps(env).encode()


def _post(client: httpx.Client, body: bytes) -> int:
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": payloads.sign(SECRET, body, stamp),
    }
    try:
        return client.post("/slack/events", content=body, headers=headers).status_code
    except httpx.HTTPError:
        return 0


def drive(base_url: str, fake: FakeSlack, args: argparse.Namespace, first: int) -> Run:
    """The schedule: `backlog` events at once, then `rate`/s for `seconds`, sent by `clients` threads."""
    run = Run()
    work: queue.Queue[tuple[int, str, float] | None] = queue.Queue()
    done = threading.Condition()

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=args.request_timeout) as http:
            while (item := work.get()) is not None:
                idx, phase, due = item
                sample = Sample(idx, phase)
                sample.ts, body = _envelope(fake, idx, _text(idx))
                sample.sent = time.monotonic()
                sample.lag = sample.sent - due
                sample.status = _post(http, body)
                sample.ack_ms = (time.monotonic() - sample.sent) * 1000
                with done:
                    run.samples.append(sample)
                    done.notify_all()

    threads = [threading.Thread(target=client, name=f"client-{n}", daemon=True) for n in range(args.clients)]
    for t in threads:
        t.start()
    run.started = time.monotonic()
    for i in range(args.backlog):
        work.put((first + i, "backlog", run.started))
    with done:  # the steady phase starts once the whole backlog has been answered (or timed out)
        limit = args.request_timeout * (args.backlog / args.clients + 1) + 5
        done.wait_for(lambda: len(run.samples) >= args.backlog, timeout=limit)
    run.backlog_sent = time.monotonic()
    for k in range(int(args.rate * args.seconds)):
        due = run.backlog_sent + k / args.rate
        time.sleep(max(0.0, due - time.monotonic()))
        work.put((first + args.backlog + k, "steady", due))
    for _ in threads:
        work.put(None)
    deadline = time.monotonic() + args.request_timeout * (work.qsize() / args.clients + 2) + 5
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    run.finished = time.monotonic()
    with done:
        run.samples.sort(key=lambda s: s.idx)
    return run


def warm_up(base_url: str, fake: FakeSlack) -> None:
    """One event before timing, so one-off first-request costs (lazy imports, Bolt's auth.test) count for no one."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        _post(http, _envelope(fake, 999_999, "Warm-up: hello from the benchmark")[1])


class Process:
    """A child process with its output in a file, stopped with SIGTERM, then SIGKILL."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)

    def peak_rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _wait_http(
    url: str, timeout: float, proc: Process, ready: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """Polls GET `url` until it answers (and `ready(json)` holds); fails with the child's log tail."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not proc.alive():
            raise SystemExit(f"{url}: the process exited ({proc.proc.returncode}):\n{proc.tail()}")
        try:
            resp = httpx.get(url, timeout=2)
            last = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            if resp.status_code < 500 and (ready is None or ready(last)):
                return last
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s (last answer {last}):\n{proc.tail()}")


def _print_sending(run: Run) -> None:
    backlog, total = run.backlog_sent - run.started, run.finished - run.started
    print(f"sending took {total:.1f} s (backlog answered in {backlog:.1f} s, then the steady phase)")


def _print_acks(name: str, run: Run) -> None:
    acks = [s.ack_ms for s in run.acked()]
    other = len(run.samples) - len(acks)
    slow = sum(a > SLOW_ACK_MS for a in acks)
    lag = max((s.lag for s in run.samples if s.phase == "steady"), default=0.0)
    print(f"{name} acks: {len(run.samples)} sent, {len(acks)} x 200, {other} other/no answer")
    print(
        f"  ack p50 {_pct(acks, 50):.1f} ms   p99 {_pct(acks, 99):.1f} ms   max {_pct(acks, 100):.1f} ms"
        f"   over {SLOW_ACK_MS:.0f} ms: {slow}   (steady sends at most {lag * 1000:.0f} ms behind schedule)"
    )
    for phase in ("backlog", "steady"):
        part = [s.ack_ms for s in run.acked() if s.phase == phase]
        print(f"    {phase:<8} n={len(part):<5} p50 {_pct(part, 50):.1f} ms   p99 {_pct(part, 99):.1f} ms")
    slowest = sorted((s for s in run.acked() if s.ack_ms > SLOW_ACK_MS), key=lambda s: -s.ack_ms)[:8]
    if slowest:
        where = ", ".join(f"{s.ack_ms:.0f} ms ({s.phase} at +{s.sent - run.started:.1f} s)" for s in slowest)
        print(f"    slowest acks: {where}")


def _bot_env(fake: FakeSlack, tmp: Path, model: bool) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp), "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.url, "FEEDBACK_TRIAGE_CHANNEL": TRIAGE, "DATABASE_URL": f"sqlite:///{tmp / 'f.db'}",
        "FEEDBACKBOT_CONFIG": str(tmp / "none.toml"), "FEEDBACK_SUGGESTIONS": "true" if model else "false",
    }  # fmt: skip
    if model:  # keep the caller's model cache settings, if any
        env.update({k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_"))})
    tuning = (
        "WORKER_",
        "OUTBOX_",
        "SLACK_TIMEOUT",
        "FEEDBACK_EMBED_",
        "DATABASE_URL",
    )  # settings to compare, e.g. WORKER_CONCURRENCY
    env.update({k: v for k, v in os.environ.items() if k.startswith(tuning)})
    return env


def _settle(fake: TimedFake, run: Run, timeout: float) -> float:
    """Waits until every acked message has a receipt and a card, or `timeout`; returns the seconds waited."""
    started = time.monotonic()
    want = run.acked()
    while time.monotonic() - started < timeout:
        with fake._seen:
            done = all(fake.receipts.get(s.ts) and fake.cards.get(s.idx) for s in want)
        if done:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def bench_ours(fake: TimedFake, args: argparse.Namespace, tmp: Path) -> Run:
    """The real bot: every ack, receipt and card timed."""
    port = _free_port()
    mode = "on" if args.model else "off"
    print(
        f"== feedbackbot run: backlog {args.backlog}, then {args.rate:g}/s for {args.seconds:g} s; "
        f"fake Slack latency {args.latency * 1000:.0f} ms; {args.clients} client threads; suggestions {mode}"
    )
    print(f"load average at start: {_load()}")
    cmd = [sys.executable, "app.py", "run", "--host", "127.0.0.1", "--port", str(port)]
    worker: Process | None = None
    if args.split:
        cmd += ["--role", "web"]
        print("(split: `run --role web` takes the requests, `run --role worker` drains the outbox)")
    bot = Process(cmd, _bot_env(fake, tmp, args.model), tmp / "bot.log")
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        _wait_http(f"{base}/healthz", 120, bot)
        if args.split:  # after the web process has migrated the database
            env = _bot_env(fake, tmp, args.model) | {"WORKER_POLL_SECONDS": "0.05"}
            worker_port = _free_port()
            worker_cmd = [sys.executable, "app.py", "run", "--role", "worker", "--host", "127.0.0.1"]
            worker = Process([*worker_cmd, "--port", str(worker_port)], env, tmp / "worker.log")
            _wait_http(f"http://127.0.0.1:{worker_port}/healthz", 120, worker)
        if args.model:
            _wait_http(f"{base}/healthz", args.model_timeout, bot, lambda h: h.get("suggestions") == "ready")
        print(f"started in {time.monotonic() - started:.1f} s")
        warm_up(base, fake)
        run = drive(base, fake, args, 0)
        _print_sending(run)
        _print_acks("ours", run)
        waited = _settle(fake, run, args.drain_timeout)
        time.sleep(2.0)  # a late duplicate would show up now
        rss = bot.peak_rss_mb()
        _print_pipeline(fake, run, waited, args.drain_timeout)
        print(f"bot peak RSS (VmHWM): {rss:.1f} MB")
        print(f"load average at end: {_load()}")
    finally:
        code = bot.stop()
        if worker is not None:
            print(f"worker peak RSS (VmHWM): {worker.peak_rss_mb():.1f} MB, exit code {worker.stop()}")
    print(f"bot exit code after SIGTERM: {code}")
    _print_log_problems(bot.log)
    return run


def _print_pipeline(fake: TimedFake, run: Run, waited: float, timeout: float) -> None:
    with fake._seen:
        receipts = {k: list(v) for k, v in fake.receipts.items()}
        cards = {k: list(v) for k, v in fake.cards.items()}
        errors = dict(fake.receipt_errors)
    acked = run.acked()
    for phase in (None, "backlog", "steady"):
        part = [s for s in acked if phase is None or s.phase == phase]
        rec = [receipts[s.ts][0] - s.sent for s in part if receipts.get(s.ts)]
        crd = [cards[s.idx][0] - s.sent for s in part if cards.get(s.idx)]
        label = phase or "all"
        print(
            f"  {label:<8} receipt e2e p50 {_pct(rec, 50):.2f} s  p95 {_pct(rec, 95):.2f} s (n={len(rec)})   "
            f"card e2e p50 {_pct(crd, 50):.2f} s  p95 {_pct(crd, 95):.2f} s (n={len(crd)})"
        )
    backlog_cards = sorted(cards[s.idx][0] for s in acked if s.phase == "backlog" and cards.get(s.idx))
    if len(backlog_cards) >= 2:
        span = backlog_cards[-1] - backlog_cards[0]
        print(
            f"  backlog drain: {len(backlog_cards)} cards from first to last in {span:.1f} s = "
            f"{len(backlog_cards) / span:.1f} cards/s sustained"
        )
    no_receipt = [s for s in acked if not receipts.get(s.ts)]
    no_card = [s for s in acked if not cards.get(s.idx)]
    lost = {s.idx for s in no_receipt} | {s.idx for s in no_card}
    dup_cards = sum(len(v) > 1 for v in cards.values())
    dup_receipts = sum(len(v) > 1 for v in receipts.values())
    settled = "settled" if not lost else f"gave up after {timeout:.0f} s"
    print(
        f"  lost: {len(lost)} (no receipt {len(no_receipt)}, no card {len(no_card)}; {settled}, waited {waited:.1f} s"
        f" after sending)   duplicated: {dup_cards} messages with >1 card, {dup_receipts} with >1 receipt"
    )
    calls: dict[str, int] = defaultdict(int)
    with fake._lock:
        recorded = list(fake.calls)
    for call in recorded:
        calls[call.method if call.status == 200 else f"{call.method}[{call.status}]"] += 1
    per = ", ".join(f"{m} {n}" for m, n in sorted(calls.items(), key=lambda kv: -kv[1]))
    print(f"  Slack Web API calls for {len(acked) + 1} messages (warm-up included): {per}")
    if errors:
        print(f"  reactions.add ok:false answers: {errors}")
    if lost:
        print(f"  first lost indexes: {sorted(lost)[:10]}")


def _print_log_problems(log: Path) -> None:
    """Warnings and errors the bot logged, folded by shape (digits masked)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if re.search(r"WARNING|ERROR|Traceback", ln)]
    shapes: dict[str, int] = defaultdict(int)
    for ln in lines:
        shapes[re.sub(r"\d+", "#", ln)[:200]] += 1
    print(f"bot log: {len(lines)} warning/error lines ({log})")
    for shape, n in sorted(shapes.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {n:>5} x {shape}")


def bench_bare(fake: TimedFake, args: argparse.Namespace, tmp: Path) -> Run:
    """The bare Bolt app on the same schedule: acks only."""
    port = _free_port()
    print("== bare bolt-python app (one no-op message listener, waitress threads=8) on the same schedule")
    print(f"load average at start: {_load()}")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peer-serve", str(port), "--peer-slack-url", fake.url]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
    peer = Process(cmd, env, tmp / "bare.log")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/slack/events", 60, peer)
        warm_up(base, fake)
        run = drive(base, fake, args, 2_000_000)
        _print_sending(run)
        _print_acks("bare", run)
        print(f"bare app peak RSS (VmHWM): {peer.peak_rss_mb():.1f} MB")
        print(f"load average at end: {_load()}")
    finally:
        peer.stop()
    return run


def peer_serve(port: int, slack_url: str) -> None:
    """The comparison: what any Bolt app costs per ack, with nothing of ours in it."""
    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient
    from waitress import serve

    app = App(
        client=WebClient(token=TOKEN, base_url=slack_url),
        signing_secret=SECRET,
        token_verification_enabled=False,
    )

    @app.event("message")
    def _noop() -> None:
        return None

    serve(SlackRequestHandler(app), host="127.0.0.1", port=port, threads=8)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--backlog", type=int, default=400, help="events sent at once first (default 400)")
    p.add_argument("--rate", type=float, default=10.0, help="steady events per second afterwards (default 10)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the steady phase lasts (default 60)")
    p.add_argument("--latency", type=float, default=0.1, help="seconds the fake Slack adds to each answer")
    p.add_argument("--clients", type=int, default=8, help="client threads sending events (default 8)")
    p.add_argument("--model", action="store_true", help="turn the embedding model on (waits until it is ready)")
    p.add_argument("--quick", action="store_true", help="smoke run: backlog 100, 15 s steady")
    p.add_argument("--drain-timeout", type=float, default=180.0, help="max seconds to wait for receipts and cards")
    p.add_argument("--model-timeout", type=float, default=600.0, help="max seconds to wait for the model")
    p.add_argument("--request-timeout", type=float, default=10.0, help="HTTP timeout for one event")
    p.add_argument("--skip-bare", action="store_true", help="do not run the bare Bolt comparison")
    p.add_argument("--split", action="store_true", help="run our bot as `--role web` plus `--role worker`")
    p.add_argument("--peer-serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--peer-slack-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.backlog, args.seconds = 100, 15.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.peer_serve:
        peer_serve(args.peer_serve, args.peer_slack_url)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))  # kept: the logs are worth reading afterwards
    fake = TimedFake()
    fake.start()
    try:
        fake.latency = args.latency
        for name, (uid, team, real) in USERS.items():
            fake.add_user(uid, name, team_id=team, real_name=real)
        for name, (cid, shared) in CHANNELS.items():
            fake.add_channel(cid, name, is_ext_shared=shared)
        ours = bench_ours(fake, args, tmp)
        if args.skip_bare:
            return 0
        bare = bench_bare(fake, args, tmp)
        for phase in (None, "backlog", "steady"):
            a, b = (_pct([x.ack_ms for x in r.acked() if phase in (None, x.phase)], 99) for r in (ours, bare))
            verdict = f"   target <= {TARGET_RATIO}x: " + ("OK" if a <= TARGET_RATIO * b else "MISS")
            print(
                f"ack p99 ours/bare ({phase or 'all'}): {a:.1f} / {b:.1f} ms = {a / b:.2f}x{'' if phase else verdict}"
            )
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
