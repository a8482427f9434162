"""Ack latency of POST /slack/events under load: the HTTP answer must not wait on Slack, Linear or the model.

Runs the real app (waitress, Bolt, SQLite in a temp dir) against the fake Slack, with the outbox worker running
in the background, and sends signed message events from several client threads. Prints p50/p95/p99/max.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from bot.console import Console
from bot.settings import Settings

EVENTS, CLIENTS, TARGET_P95_MS = 400, 4, 50.0


def main() -> None:
    """Sends EVENTS signed events from CLIENTS threads and reports the ack latency distribution."""
    db = Path(tempfile.mkdtemp()) / "bench.db"
    console = Console(Settings.model_validate({"database_url": f"sqlite:///{db}"}), create_app, io.StringIO())
    console.bot.worker.start()
    console.fake.fail_next("reactions.add", status=429, retry_after=30, times=10)  # slow Slack must not matter
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(EVENTS // CLIENTS):
            msg = console.fake.post_as_user("C0SHARED", "U0CUST", f"Export to CSV is broken #{n}-{i}")
            env = {
                "type": "event_callback",
                "team_id": "T0CUSTOMER",
                "api_app_id": "A0FEEDBACK",
                "event_id": f"Ev{n}{i}",
                "event_time": int(time.time()),
                "is_ext_shared_channel": True,
                "authorizations": [{"team_id": "T0OURTEAM", "user_id": "U0BOT", "is_bot": True}],
                "event": {**msg, "channel": "C0SHARED", "event_ts": msg["ts"], "channel_type": "channel"},
            }
            start = time.perf_counter()
            resp = console.post_signed(json.dumps(env), "application/json")
            elapsed = (time.perf_counter() - start) * 1000
            assert resp.status_code == 200, resp.text
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    console.bot.executor.wait_idle(60)
    q = statistics.quantiles(latencies, n=100)
    print(f"ack latency over {len(latencies)} signed events, {CLIENTS} concurrent clients, worker running:")
    print(
        f"  p50 {q[49]:.1f} ms   p95 {q[94]:.1f} ms (target <= {TARGET_P95_MS:.0f} ms)   p99 {q[98]:.1f} ms   "
        f"max {max(latencies):.1f} ms"
    )
    print(f"  throughput {len(latencies) / wall:.0f} events/s")
    console.close()


if __name__ == "__main__":
    main()
