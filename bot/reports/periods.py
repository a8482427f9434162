"""Report periods in the team's time zone, their unique keys, and which one is due now (from the crontabs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

KINDS = ("weekly", "monthly", "quarterly")
LOOKBACK = timedelta(days=100)  # longer than a quarter: the last scheduled run is always found


@dataclass(frozen=True)
class Period:
    """[start, end) as naive UTC (how the database stores times), its key and a label people read."""

    kind: str
    start: datetime
    end: datetime
    key: str
    label: str

    def previous(self, tz: str) -> Period:
        """The period just before this one (the digest compares with it)."""
        return period_for(self.kind, self.start - timedelta(seconds=1), tz)


def _utc(day: date, tz: str) -> datetime:
    """Local midnight of `day` in `tz`, as naive UTC."""
    return datetime.combine(day, time(), ZoneInfo(tz)).astimezone(UTC).replace(tzinfo=None)


def _local(moment: datetime, tz: str) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))


def period_for(kind: str, moment: datetime, tz: str) -> Period:
    """The week (ISO, from Monday), month or quarter containing `moment` (naive UTC) in `tz`."""
    day = _local(moment, tz).date()
    if kind == "weekly":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
        iso = first.isocalendar()
        key, label = (
            f"digest:{iso.year}-W{iso.week:02d}",
            f"week {iso.week}, {first:%d %b} – {last - timedelta(days=1):%d %b %Y}",
        )
    elif kind == "monthly":
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
        key, label = f"monthly:{first:%Y-%m}", f"{first:%B %Y}"
    elif kind == "quarterly":
        quarter = (day.month - 1) // 3
        first = date(day.year, quarter * 3 + 1, 1)
        last = date(day.year + (quarter == 3), (quarter * 3 + 3) % 12 + 1, 1)
        key, label = f"quarterly:{first.year}-Q{quarter + 1}", f"Q{quarter + 1} {first.year}"
    else:
        raise ValueError(f"unknown report kind {kind!r} ({', '.join(KINDS)})")
    return Period(kind, _utc(first, tz), _utc(last, tz), key, label)


def last_run(cron: str, now: datetime, tz: str) -> datetime | None:
    """The latest time at or before `now` (naive UTC) the crontab fires in `tz`, as naive UTC."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    current = now.replace(tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, current - LOOKBACK)
    found = None
    while fire is not None and fire <= current:
        found = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return found.astimezone(UTC).replace(tzinfo=None) if found is not None else None


def due_period(kind: str, cron: str, now: datetime, tz: str, grace: timedelta) -> Period | None:
    """The period the last scheduled run reports on (the one under way the day before it), if that run is at
    most `grace` ago; runs missed for longer are skipped, and several missed runs coalesce into the latest."""
    fired = last_run(cron, now, tz)
    if fired is None or now - fired > grace:
        return None
    day_before = datetime.combine(_local(fired, tz).date(), time(), ZoneInfo(tz)) - timedelta(microseconds=1)
    return period_for(kind, day_before.astimezone(UTC).replace(tzinfo=None), tz)
