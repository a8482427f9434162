"""`feedbackbot export`: every item with its triage history, routing and loop state, streamed as CSV or JSONL."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from sqlalchemy.orm import Session

from storage import reports
from storage.models import Feedback, FeedbackEvent, LinearLink, LoopMessage

COLUMNS = (
    "id", "created_at", "status", "type", "theme", "impact", "owner_id", "reason", "duplicate_of_id",
    "suggested_type", "type_confidence", "suggested_theme", "theme_confidence", "source", "capture_method",
    "channel_id", "message_ts", "thread_ts", "permalink", "author_user_id", "author_team_id", "author_name",
    "customer", "is_external", "text", "context", "tags", "triaged_by", "triaged_at", "deleted_at",
    "history", "linear", "loop",
)  # fmt: skip


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def record(fb: Feedback, related: list[Any]) -> dict[str, Any]:
    """One item as a flat dict; history, Linear links and loop messages as lists of small dicts."""
    row = {c: _iso(getattr(fb, c)) for c in COLUMNS[:-3]}
    row["history"] = [{"at": _iso(e.created_at), "kind": e.kind, "actor": e.actor, "detail": e.detail}
                      for e in related if isinstance(e, FeedbackEvent)]  # fmt: skip
    row["linear"] = [{"identifier": k.identifier, "url": k.url, "status": k.status, "state": k.state_name, "via": k.via}
                     for k in related if isinstance(k, LinearLink)]  # fmt: skip
    row["loop"] = [{"stage": m.stage, "status": m.status, "at": _iso(m.updated_at), "sent_ts": m.sent_ts}
                   for m in related if isinstance(m, LoopMessage)]  # fmt: skip
    return row


def records(session: Session, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every item in id order, read `batch` at a time (memory stays flat however many there are)."""
    for items, related in reports.export_batches(session=session, batch=batch):
        for fb in items:
            yield record(fb, related[fb.id])


def write(session: Session, fmt: str, out: IO[str]) -> int:
    """Writes every item as `csv` (nested fields as JSON) or `jsonl`; returns how many."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in records(session):
        if writer is not None:
            nested = {k: json.dumps(row[k], ensure_ascii=False) for k in ("tags", "history", "linear", "loop")}
            writer.writerow(row | nested)
        else:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count
