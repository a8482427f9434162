"""`feedbackbot accounts import` and `contacts import`: all or nothing (unless --skip-bad-rows), idempotent on the
documented keys, imported values winning over what Slack says."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from tqdm import tqdm

from bot.accounts import csvfile
from storage import customers as store
from storage.models import Account, Contact


@dataclass
class ImportResult:
    """Rows created and updated, and every problem by line, column and reason."""

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)
    written: bool = False
    issues: set[str] = field(default_factory=set)  # Linear issues whose demand changed
    items: set[int] = field(default_factory=set)  # feedback whose card shows the account


def report(result: ImportResult, path: str, what: str, counts: str) -> int:
    """Prints every problem (stderr) and the counts; the exit code: 1 when nothing was written."""
    for error in result.errors:
        print(f"  {path}: {error}", file=sys.stderr)
    if not result.written:
        print(f"{len(result.errors)} problem(s); nothing was imported (fix the file, or pass --skip-bad-rows)",
              file=sys.stderr)  # fmt: skip
        return 1
    skipped = f"; rows with {len(result.errors)} problem(s) skipped" if result.errors else ""
    print(f"{what}: {counts}{skipped}")
    return 0


def _owner(value: str | None, staff_by_email: Callable[[str], str | None]) -> str | None:
    """A Slack user id as given, or a staff email resolved to one."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if "@" in value:
        found = staff_by_email(value.lower())
        if found is None:
            raise ValueError(f"no staff member with the email {value!r}")
        return found
    if value[:1] not in ("U", "W"):
        raise ValueError(f"{value!r} is neither a Slack user id nor an email")
    return value


def _apply_account(session: Session, values: dict[str, Any], owner: str | None) -> tuple[Account, bool]:
    row = store.find_account(session=session, external_id=values.get("external_id"), domain=values.get("domain"))
    created = row is None
    if row is None:
        row = Account(name=values.get("name") or values.get("domain") or values.get("external_id"), source="import")
        session.add(row)
    for column in ("name", "domain", "external_id", "plan", "tier", "industry", "region", "use_case",
                   "lifecycle", "signup_date", "arr", "currency"):  # fmt: skip
        if column in values:
            setattr(row, column, values[column])
    if owner:
        row.owner_id = owner
    row.source = "import"
    session.flush()
    if values.get("slack_team_ids"):
        store.map_teams(session=session, account=row, team_ids=values["slack_team_ids"])
    return row, created


def import_accounts(
    session: Session, raw: bytes, mapping: dict[str, str], *, skip_bad: bool,
    staff_by_email: Callable[[str], str | None],
) -> ImportResult:  # fmt: skip
    """Validates every row first; writes only when all are good (or bad ones are skipped)."""
    table = csvfile.read(raw, csvfile.ACCOUNT_COLUMNS, mapping)
    rows = csvfile.clean(table, ("external_id", "domain"), ("name",))
    result = ImportResult(errors=list(table.errors))
    owners: dict[int, str | None] = {}
    for line, values in rows:
        by_id = store.find_account(session=session, external_id=values.get("external_id"))
        by_domain = store.find_account(session=session, domain=values.get("domain"))
        if by_id is not None and by_domain is not None and by_id.id != by_domain.id:
            result.errors.append(f"line {line}, column 'domain': {values['domain']!r} belongs to another account "
                                 f"({by_domain.name})")  # fmt: skip
            continue
        try:
            owners[line] = _owner(values.get("owner"), staff_by_email)
        except ValueError as exc:
            result.errors.append(f"line {line}, column 'owner': {exc}")
    if result.errors and not skip_bad:
        return result
    for line, values in tqdm([r for r in rows if r[0] in owners], desc="accounts", unit="row", disable=None):
        account, created = _apply_account(session, values, owners[line])
        result.created += created
        result.updated += not created
        result.issues |= store.issues_of_account(session=session, account_id=account.id)
        result.items |= {fb.id for fb in store.account_items(session=session, account_id=account.id)}
    result.written = True
    return result


def import_contacts(session: Session, raw: bytes, mapping: dict[str, str], *, skip_bad: bool) -> ImportResult:
    """Contacts keyed by Slack user id, then email; `account` names an account by external id or domain."""
    table = csvfile.read(raw, csvfile.CONTACT_COLUMNS, mapping)
    rows = csvfile.clean(table, ("slack_user_id", "email"), ())
    result = ImportResult(errors=list(table.errors))
    accounts = _contact_accounts(session, rows, result)
    if result.errors and not skip_bad:
        return result
    for line, values in tqdm([r for r in rows if r[0] in accounts], desc="contacts", unit="row", disable=None):
        contact, created = _apply_contact(session, values, accounts[line])
        result.created += created
        result.updated += not created
        if contact.slack_user_id and contact.account_id:
            result.issues |= store.relink_contact_items(session=session, contact=contact)
            result.items |= {fb.id for fb in store.account_items(session=session, account_id=contact.account_id)}
    result.written = True
    return result


def _contact_accounts(
    session: Session, rows: list[tuple[int, dict[str, Any]]], result: ImportResult
) -> dict[int, Account | None]:
    """Each row's account (by external id or domain); a reference to no account is an error on that row."""
    accounts: dict[int, Account | None] = {}
    for line, values in rows:
        ref = values.get("account")
        account = store.find_account(session=session, external_id=ref, domain=ref.lower()) if ref else None
        if ref and account is None:
            result.errors.append(f"line {line}, column 'account': no account with external id or domain {ref!r}")
            continue
        accounts[line] = account
    return accounts


def _apply_contact(session: Session, values: dict[str, Any], account: Account | None) -> tuple[Contact, bool]:
    contact = store.find_contact(session=session, slack_user_id=values.get("slack_user_id"), email=values.get("email"))
    created = contact is None
    if contact is None:
        contact = Contact(slack_user_id=values.get("slack_user_id"), email=values.get("email"))
        session.add(contact)
    for column in ("slack_user_id", "email", "name", "role"):
        if values.get(column):
            setattr(contact, column, values[column])
    if values.get("first_seen"):
        contact.first_seen = store.midnight(values["first_seen"])
    if account is not None:
        contact.account_id = account.id
    session.flush()
    return contact, created
