"""`feedbackbot import slack-export`: customer messages from a standard Slack export, captured as if they had been
auto-captured (same dedupe keys, so a later live event is not a second item), without receipts or cards."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from bot.capture.service import ALLOWED_SUBTYPES, author_team, capture
from bot.domain import CaptureMethod, CaptureRequest, UserFacingError
from bot.settings import Settings
from storage import migrate
from storage.db import make_engine, make_sessionmaker, session_scope

Entry = Path | zipfile.Path  # an export folder or ZIP: both read the same way


@dataclass
class ImportReport:
    """What an import did: new items, messages already stored, messages skipped (staff, bots), errors by row."""

    imported: int = 0
    already: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _root(path: str) -> Entry:
    """The export's top folder (a ZIP may wrap it in one more folder, as zipping a folder does)."""
    source = Path(path)
    root: Entry
    if source.is_dir():
        root = source
    elif zipfile.is_zipfile(source):
        root = zipfile.Path(zipfile.ZipFile(source))
    else:
        raise UserFacingError(f"{path} is neither a Slack export folder nor a ZIP file")
    inner = [e for e in root.iterdir() if e.is_dir()]
    if not (root / "channels.json").is_file() and len(inner) == 1 and (inner[0] / "channels.json").is_file():
        return inner[0]
    return root


def _json(entry: Entry) -> Any:
    return json.loads(entry.read_text(encoding="utf-8"))


def _channels(root: Entry) -> dict[str, str]:
    """name -> id over public, private and shared channels listed in the export."""
    found: dict[str, str] = {}
    for listing in ("channels.json", "groups.json"):
        entry = root / listing
        if entry.is_file():
            found.update({c["name"]: c["id"] for c in _json(entry) if isinstance(c, dict) and "name" in c})
    return found


def _our_team(root: Entry, given: str | None) -> str:
    """The exporting workspace: given, else the team most of the export's users belong to."""
    if given:
        return given
    users = _json(root / "users.json") if (root / "users.json").is_file() else []
    teams = Counter(u.get("team_id") for u in users if isinstance(u, dict) and u.get("team_id"))
    if not teams:
        raise UserFacingError("cannot tell which workspace is ours: pass --team T0123456")
    return str(teams.most_common(1)[0][0])


def request(msg: Any, channel_id: str, team: str) -> CaptureRequest | None:
    """The capture a customer's message would have made live; None for staff, bots and system messages."""
    if not isinstance(msg, dict) or msg.get("type") != "message":
        raise ValueError("not a message object")
    if msg.get("subtype") not in ALLOWED_SUBTYPES or msg.get("bot_id"):
        return None
    user, ts, author = msg.get("user"), msg.get("ts"), author_team(msg)
    if not isinstance(user, str) or not isinstance(ts, str) or not re.fullmatch(r"\d{9,11}\.\d{1,6}", ts):
        raise ValueError("message without a user or a Slack ts")
    if author is None or author == team or not str(msg.get("text") or "").strip():
        return None  # our own people, or nothing to capture
    profile = msg.get("user_profile") or {}
    return CaptureRequest(
        method=CaptureMethod.AUTO, text=str(msg.get("text")), team_id=team, channel_id=channel_id, message_ts=ts,
        thread_ts=msg.get("thread_ts"), author_user_id=user, author_team_id=author,
        author_name=profile.get("real_name") or profile.get("display_name") or profile.get("name"), is_external=True,
    )  # fmt: skip


def import_export(
    sessions: sessionmaker[Session], settings: Settings, path: str, names: list[str], team: str | None = None
) -> ImportReport:
    """Captures the customer messages of the named channels, one day file per transaction, with a progress bar."""
    root, report = _root(path), ImportReport()
    channels, ours = _channels(root), _our_team(root, team)
    missing = [n for n in names if n.lstrip("#") not in channels]
    if missing:
        raise UserFacingError(f"not in this export: {', '.join(missing)} (channels: {', '.join(sorted(channels))})")
    days: list[tuple[str, Entry]] = []
    for n in names:
        folder: Entry = root / n.lstrip("#")
        files: list[Entry] = [f for f in folder.iterdir() if f.name.endswith(".json")]
        days += [(channels[n.lstrip("#")], f) for f in sorted(files, key=lambda e: e.name)]
    for channel_id, day in tqdm(days, desc="importing", unit="day", disable=None):
        _import_day(sessions, settings, channel_id, day, ours, report)
    return report


def _import_day(
    sessions: sessionmaker[Session], settings: Settings, channel_id: str, day: Entry, ours: str, report: ImportReport
) -> None:
    try:
        messages = _json(day)
    except ValueError as exc:
        report.errors.append(f"{day.name}: not JSON ({exc})")
        return
    with session_scope(sessions) as session:
        for n, msg in enumerate(messages if isinstance(messages, list) else []):
            try:
                req = request(msg, channel_id, ours)
            except (ValueError, TypeError, AttributeError) as exc:  # a message of another shape: reported, skipped
                report.errors.append(f"{day.name} message {n + 1}: {exc or type(exc).__name__}")
                continue
            if req is None:
                report.skipped += 1
                continue
            result = capture(session=session, settings=settings, req=req, followups=False)
            if result.created:  # dated when it was said, so reports and reminders place it right
                result.feedback.tags = [*result.feedback.tags, "import"]
                result.feedback.created_at = datetime.fromtimestamp(float(str(req.message_ts)), UTC).replace(
                    tzinfo=None
                )
            report.imported += result.created
            report.already += not result.created


def run_cli(settings: Settings, path: str, channels: list[str], team: str | None) -> int:
    """A Slack export's customer messages as items; errors are listed by file and message number."""
    try:
        engine = make_engine(settings.database_url)
        migrate.upgrade(engine)
        result = import_export(make_sessionmaker(engine), settings, path, channels, team)
    except UserFacingError as exc:
        print(f"feedbackbot import: {exc}", file=sys.stderr)
        return 2
    print(f"imported {result.imported} new items; {result.already} were already stored; "
          f"{result.skipped} messages were not customer feedback (staff, bots, empty)")  # fmt: skip
    for error in result.errors:
        print(f"  error: {error}", file=sys.stderr)
    if result.imported:
        print("run `feedbackbot backfill-embeddings` to give them suggestions and similar items")
    return 1 if result.errors else 0
