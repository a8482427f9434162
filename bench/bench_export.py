"""`feedbackbot export` on 100,000 items: wall time and peak memory of the whole process, against a bare
`SELECT * FROM feedback` written with the csv module (the least any export can do), and at 20,000 items to show
the memory stays flat as the table grows.

Usage: python bench/bench_export.py [--rows 100000] [--small 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from storage import migrate  # noqa: E402
from storage.db import make_engine, utcnow  # noqa: E402
from storage.models import Feedback, FeedbackEvent, LinearLink, LoopMessage  # noqa: E402

BARE = """
import csv, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
cur = con.execute("SELECT * FROM feedback ORDER BY id")
with open(sys.argv[2], "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow([d[0] for d in cur.description])
    for row in cur:
        out.writerow(row)
"""


def seed(path: Path, rows: int) -> None:
    """Items with two history events each, every fourth linked to Linear, every eighth with a loop message."""
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        for start in range(0, rows, 5000):
            ids = range(start + 1, min(start + 5000, rows) + 1)
            conn.execute(
                insert(Feedback),
                [
                    {
                        "id": i,
                        "dedupe_key": f"msg:C0SHARED:{1700000000 + i}.000100",
                        "channel_id": "C0SHARED",
                        "message_ts": f"{1700000000 + i}.000100",
                        "author_user_id": "U0CUST",
                        "author_name": "Carol",
                        "source": "slack",
                        "capture_method": "auto",
                        "status": "triaged",
                        "type": "Bug",
                        "theme": "Reporting",
                        "text": f"Request {i}: the CSV export drops rows when a filter is applied, again and again",
                        "tags": ["auto"],
                        "similar": [],
                        "created_at": now - timedelta(minutes=i),
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(FeedbackEvent),
                [
                    {"feedback_id": i, "kind": k, "actor": "U0STAFF", "detail": {"text": k}, "created_at": now}
                    for i in ids
                    for k in ("captured", "triage")
                ],
            )
            conn.execute(
                insert(LinearLink),
                [
                    {
                        "feedback_id": i,
                        "issue_id": f"issue-{i % 50}",
                        "identifier": f"ENG-{i % 50}",
                        "via": "link",
                        "status": "linked",
                        "created_at": now,
                    }
                    for i in ids
                    if i % 4 == 0
                ],
            )
            conn.execute(
                insert(LoopMessage),
                [
                    {
                        "feedback_id": i,
                        "issue_id": f"issue-{i % 50}",
                        "stage": "update",
                        "status": "sent",
                        "text": "hi",
                        "rev": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                    if i % 8 == 0
                ],
            )
    engine.dispose()


def measure(db: Path, out: Path, fmt: str, runs: int) -> tuple[float, float]:
    """Best wall time and the peak RSS of `feedbackbot export` over `runs` runs (fresh child each time)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "FEEDBACKBOT_CONFIG": "/nonexistent.toml"}
    cmd = [sys.executable, str(ROOT / "app.py"), "--log-level", "WARNING", "export", "--format", fmt, "--out", str(out)]
    results = [_isolated(cmd, env) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def _isolated(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """RUSAGE_CHILDREN keeps the maximum over all children: measure each run through its own wrapper process."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True,"
        " stdout=subprocess.DEVNULL); print(time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], env=env, check=True, capture_output=True, text=True)
    wall, peak = out.stdout.split()
    return float(wall), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (args.small, args.rows):
            db, out = Path(tmp) / f"f{rows}.db", Path(tmp) / "out"
            seed(db, rows)
            for fmt in ("csv", "jsonl"):
                wall, peak = measure(db, out.with_suffix(f".{fmt}"), fmt, args.runs)
                size = out.with_suffix(f".{fmt}").stat().st_size / 1e6
                rate = rows / wall
                print(f"export {fmt:<5} {rows:>7} rows: {wall:6.2f} s ({rate:8.0f} rows/s), peak RSS {peak:6.1f} MB, "
                      f"{size:6.1f} MB written")  # fmt: skip
            bare = [
                _isolated([sys.executable, "-c", BARE, str(db), str(out.with_suffix(".bare"))], dict(os.environ))
                for _ in range(args.runs)
            ]
            bare_wall, bare_peak = min(b[0] for b in bare), max(b[1] for b in bare)
            wall, _ = measure(db, out.with_suffix(".csv"), "csv", 1)
            print(
                f"bare SELECT * to csv {rows:>7} rows: {bare_wall:6.2f} s, peak RSS {bare_peak:6.1f} MB; "
                f"export csv / bare = {wall / bare_wall:.1f}x (export adds history, links, loop state)"
            )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
