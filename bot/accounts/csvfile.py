"""Reading account and contact CSV files as people export them: BOMs, UTF-16, `,` `;` or tab, other tools' column
names (`--map`), checked row by row with the file's own line numbers."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

ACCOUNT_COLUMNS = ("name", "domain", "external_id", "slack_team_ids", "plan", "tier", "industry", "region",
                   "use_case", "lifecycle", "signup_date", "owner", "arr", "currency")  # fmt: skip
CONTACT_COLUMNS = ("slack_user_id", "email", "name", "role", "account", "first_seen")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_TEAM_ID = re.compile(r"^[TE][A-Z0-9]{2,}$")


@dataclass
class Table:
    """Rows keyed by our column names, each with the line it starts on in the file; problems found so far."""

    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delimiter: str = ","


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (by its BOM), else Windows-1252, which every byte decodes."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def parse_map(spec: str | None) -> dict[str, str]:
    """`name=Company,arr=Annual Revenue` -> {our column: their header}."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ValueError(f"--map: {part.strip()!r} is not COLUMN=Header")
        out[ours.strip().lower()] = theirs.strip()
    return out


def read(raw: bytes, columns: tuple[str, ...], mapping: dict[str, str]) -> Table:
    """The file's rows under our column names (matched case-insensitively; unknown columns ignored)."""
    text = decode(raw)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    table = Table(delimiter=dialect.delimiter)
    header = next(reader, None)
    if header is None:
        table.errors.append("line 1: the file is empty")
        return table
    lookup = {h.strip().lower(): i for i, h in enumerate(header)}
    index = {}
    for column in columns:
        wanted = mapping.get(column, column).strip().lower()
        if wanted in lookup:
            index[column] = lookup[wanted]
        elif column in mapping:
            table.errors.append(f"line 1, column {mapping[column]!r}: not in the header (--map {column}=...)")
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        table.rows.append((line, {c: row[i].strip() if i < len(row) else "" for c, i in index.items()}))
    return table


Check = Callable[[str], Any]


def _date(value: str) -> date:
    return date.fromisoformat(value[:10])


def _money(value: str, decimal_comma: bool = False) -> Decimal:
    """150000, $150k, 1.2M; in a `;`-separated (European) file, 1,5M and 150.000,00 too."""
    value = value.replace(".", "").replace(",", ".") if decimal_comma else value
    cleaned = re.sub(r"[\s$€£,_]", "", value)
    scale = {"k": 1_000, "m": 1_000_000}.get(cleaned[-1:].lower(), 1)
    amount = Decimal(cleaned[:-1] if scale != 1 else cleaned) * scale
    if amount < 0:
        raise ValueError("negative")
    return amount


def _pattern(regex: re.Pattern[str], what: str, lower: bool = False) -> Check:
    def check(value: str) -> str:
        value = value.lower() if lower else value
        if not regex.match(value):
            raise ValueError(f"not {what}")
        return value

    return check


def _teams(value: str) -> list[str]:
    teams = [t for t in re.split(r"[\s,]+", value) if t]
    bad = [t for t in teams if not _TEAM_ID.match(t)]
    if bad:
        raise ValueError(f"not Slack team ids: {', '.join(bad)}")
    return teams


CHECKS: dict[str, Check] = {
    "domain": _pattern(_DOMAIN, "a domain like acme.com", lower=True),
    "email": _pattern(_EMAIL, "an email address", lower=True),
    "slack_user_id": _pattern(_SLACK_ID, "a Slack user id like U0123ABCD"),
    "slack_team_ids": _teams,
    "signup_date": _date,
    "first_seen": _date,
    "arr": _money,
    "currency": _pattern(re.compile(r"^[A-Z]{3}$"), "a 3-letter currency code"),
}


def _typed(line: int, row: dict[str, str], decimal_comma: bool) -> tuple[dict[str, Any], list[str]]:
    """Each non-empty cell through its column's check."""
    values: dict[str, Any] = {}
    problems = []
    for column, raw in row.items():
        if not raw:
            continue
        try:
            if column == "arr":
                values[column] = _money(raw, decimal_comma)
            else:
                values[column] = (
                    CHECKS[column](raw.upper() if column == "currency" else raw) if column in CHECKS else raw
                )
        except InvalidOperation:
            problems.append(f"line {line}, column {column!r}: {raw!r} is not an amount")
        except ValueError as exc:
            problems.append(f"line {line}, column {column!r}: {raw!r} is {exc or 'not valid'}")
    return values, problems


def clean(table: Table, keys: tuple[str, ...], required: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """Typed rows; each bad cell or missing field is an error naming line, column and reason, and a key seen on an
    earlier line of the same file is an error on the later one."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for line, row in table.rows:
        values, problems = _typed(line, row, table.delimiter == ";")
        missing = [c for c in required if not values.get(c)]
        if missing:
            problems.append(f"line {line}, column {missing[0]!r}: required")
        if not any(values.get(k) for k in keys):
            problems.append(f"line {line}: needs one of {', '.join(keys)} to identify the row")
        present = [(k, str(values[k]).lower()) for k in keys if values.get(k)]
        problems += [
            f"line {line}, column {k!r}: {v!r} repeats line {seen[(k, v)]}" for k, v in present if (k, v) in seen
        ]
        for pair in present:
            seen.setdefault(pair, line)
        table.errors.extend(problems)
        if not problems:
            out.append((line, values))
    return out
