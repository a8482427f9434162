"""`feedbackbot nps import` (scores from other tools) and usage events (CSV or POST /events/usage): rows map to
contacts, every bad row is reported by line, and a repeat changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.accounts.service import ImportResult, read_table
from bot.domain import UserFacingError
from bot.nps import checkins
from bot.nps.service import reason_item
from bot.settings import Settings
from storage import customers, surveys
from storage.models import Contact

SCORE_COLUMNS = ("email", "slack_user_id", "score", "reason", "date")
EVENT_COLUMNS = ("contact", "event", "time")


def when(value: str) -> datetime:
    """ISO 8601 date or date-time (a `Z` or offset is converted), as naive UTC."""
    text = value.strip().replace("Z", "+00:00")
    if not text:
        raise ValueError("empty")
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def contact_of(session: Session, key: str) -> Contact | None:
    """A contact by Slack user id or email."""
    key = key.strip()
    return customers.find_contact(session=session, slack_user_id=key or None, email=key if "@" in key else None)


def _score(value: str) -> int:
    score = int(value.strip())
    if not 0 <= score <= 10:
        raise ValueError("out of 0-10")
    return score


def _score_row(session: Session, line: int, row: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """One CSV row as survey values, or the problems with it (line, column, reason)."""
    problems = []
    contact = customers.find_contact(session=session, slack_user_id=row.get("slack_user_id") or None,
                                     email=row.get("email") or None)  # fmt: skip
    if not (row.get("slack_user_id") or row.get("email")):
        problems.append(f"line {line}: needs email or slack_user_id")
    elif contact is None:
        who = row.get("email") or row.get("slack_user_id")
        problems.append(f"line {line}: no contact {who!r} (import contacts first: `feedbackbot contacts import`)")
    parsed: dict[str, Any] = {}
    for column, parse in (("score", _score), ("date", when)):
        try:
            parsed[column] = parse(row.get(column) or "")
        except ValueError as exc:
            problems.append(f"line {line}, column {column!r}: {row.get(column)!r} is {exc or 'not valid'}")
    if problems or contact is None:
        return None, problems
    key = f"import:{contact.id}:{parsed['date']:%Y-%m-%d}:{parsed['score']}"
    return {"contact_id": contact.id, "account_id": contact.account_id, "trigger": "import", "status": "answered",
            "score": parsed["score"], "reason": row.get("reason") or None, "answered_at": parsed["date"],
            "dedupe_key": key}, []  # fmt: skip


def import_scores(session: Session, settings: Settings, raw: bytes, mapping: dict[str, str], *,
                  skip_bad: bool) -> ImportResult:  # fmt: skip
    """All or nothing unless skip_bad; (contact, date, score) seen before is a duplicate, ignored (counted in
    `updated`). A reason becomes
    a feedback item (no card: these are history), so detractor themes include imported answers."""
    table = read_table(raw, SCORE_COLUMNS, mapping)
    result = ImportResult(errors=list(table.errors))
    good = []
    for line, row in table.rows:
        values, problems = _score_row(session, line, row)
        result.errors += problems
        if values is not None:
            good.append(values)
    if result.errors and not skip_bad:
        return result
    for values in good:
        made = surveys.add_survey(session=session, values=values)
        if made is None:  # (contact, date, score) already imported
            result.updated += 1
            continue
        result.created += 1
        if made.reason:
            reason_item(session, settings, made, None)
    result.written = True
    return result


@dataclass
class UsageResult:
    """What a batch of usage events did."""

    stored: int = 0
    duplicates: int = 0
    check_ins: int = 0
    errors: list[str] = field(default_factory=list)


def record_usage(session: Session, settings: Settings, events: list[tuple[str, dict[str, str]]]) -> UsageResult:
    """Each (where, {contact, event, time}) stored once; unknown contacts and bad times are reported, not fatal."""
    result = UsageResult()
    for where, row in events:
        contact = contact_of(session, row.get("contact") or "")
        name = (row.get("event") or "").strip()
        try:
            at = when(row.get("time") or "")
        except ValueError:
            result.errors.append(f"{where}: time {row.get('time')!r} is not ISO 8601")
            continue
        if contact is None or not name or len(name) > 128:
            what = "event name is empty or longer than 128" if contact else f"no contact {row.get('contact')!r}"
            result.errors.append(f"{where}: {what}")
            continue
        if surveys.add_usage(session=session, key=checkins.usage_key(contact.id, name, at), contact_id=contact.id,
                             event=name, at=at):  # fmt: skip
            result.stored += 1
            result.check_ins += checkins.on_usage(settings, session, contact, name)
        else:
            result.duplicates += 1
    return result


def usage_from_csv(raw: bytes) -> list[tuple[str, dict[str, str]]]:
    """`contact, event, time` rows, each with its line."""
    table = read_table(raw, EVENT_COLUMNS, {})
    if table.errors:
        raise UserFacingError("; ".join(table.errors))
    return [(f"line {line}", row) for line, row in table.rows]


def usage_from_json(body: Any) -> list[tuple[str, dict[str, str]]]:
    """`{"contact", "event", "time"}` or `{"events": [...]}` (at most 1000 a request)."""
    items = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    if not isinstance(items, list) or not items or len(items) > 1000:
        raise UserFacingError('send one event object or {"events": [...]} with 1 to 1000 events')
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UserFacingError(f"events[{i}] is not an object")
        out.append((f"events[{i}]", {k: str(item.get(k) or "") for k in EVENT_COLUMNS}))
    return out
