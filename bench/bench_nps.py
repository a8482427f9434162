"""How long the NPS sweep's planning takes as contacts grow: `feedbackbot nps run --dry-run` as a whole process
over N contacts with a year of survey history, and `report nps --by plan`. Prints the load average."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import migrate  # noqa: E402
from storage.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from storage.models import Account, Contact, Survey, UsageEvent  # noqa: E402


def seed(url: str, contacts: int) -> None:
    """contacts over contacts/20 accounts; each contact has 0-3 past surveys and a few usage events."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    rnd = random.Random(7)
    now = datetime.utcnow()
    with session_scope(make_sessionmaker(engine)) as s:
        accounts = [Account(name=f"A{i}", plan=rnd.choice(["Pro", "Team", "Enterprise"]), source="import",
                            signup_date=date(2024, 1, 1) + timedelta(days=rnd.randrange(900)))
                    for i in range(max(1, contacts // 20))]  # fmt: skip
        s.add_all(accounts)
        s.flush()
        for i in range(contacts):
            c = Contact(email=f"c{i}@x.com", name=f"C{i}", account_id=accounts[i % len(accounts)].id,
                        first_seen=now - timedelta(days=rnd.randrange(10, 700)))  # fmt: skip
            s.add(c)
            s.flush()
            for k in range(rnd.randrange(4)):
                at = now - timedelta(days=30 + 100 * k + rnd.randrange(60))
                s.add(Survey(contact_id=c.id, account_id=c.account_id, trigger="tenure", status="answered",
                             sent_at=at, score=rnd.randrange(11), answered_at=at))  # fmt: skip
            for k in range(rnd.randrange(3)):
                s.add(UsageEvent(key=f"{i}:{k}", contact_id=c.id, event=rnd.choice(["support_ticket", "export"]),
                                 at=now - timedelta(days=rnd.randrange(60))))  # fmt: skip


def timed(args: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "app.py"), *args], env=env, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    base = timed(["--help"], dict(os.environ), args.runs)
    print(f"feedbackbot --help (process start, the floor): median {sorted(base)[len(base) // 2]:.2f} s")
    for n in args.contacts:
        url = f"sqlite:///{tempfile.mkdtemp()}/nps.db"
        seed(url, n)
        env = dict(os.environ, DATABASE_URL=url)
        dry = timed(["--log-level", "WARNING", "nps", "run", "--dry-run"], env, args.runs)
        rep = timed(["--log-level", "WARNING", "report", "nps", "--by", "plan"], env, args.runs)
        print(f"{n:>6} contacts: nps run --dry-run median {sorted(dry)[len(dry) // 2]:.2f} s, "
              f"report nps --by plan median {sorted(rep)[len(rep) // 2]:.2f} s")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
