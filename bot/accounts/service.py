"""Who counts as staff (the one check, one refusal wording), and which customer account an item belongs to, with
the demand an issue has by account."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from bot.accounts.csvfile import Table, parse_map
from bot.accounts.csvfile import read as read_table
from bot.accounts.importer import ImportResult, import_accounts, import_contacts, report
from bot.deps import Deps
from bot.domain import Kind, UserFacingError
from bot.settings import Settings
from bot.slack import kit
from bot.slack.gateway import SlackGateway
from storage import customers, loops, queries
from storage.models import Account, Feedback

__all__ = [
    "ImportResult",
    "Table",
    "import_accounts",
    "import_contacts",
    "parse_map",
    "read_table",
    "report",
]  # CSV imports
NOT_STAFF = "Only members of the team that installed Feedback Loop can log or triage feedback."


def is_staff(slack: SlackGateway, settings: Settings, user_id: str, team_id: str | None = None) -> bool:
    """Full members of the installing workspace (not guests, not Slack Connect users), and of
    FEEDBACK_STAFF_USERGROUP when it is set; may ask Slack (users.info, usergroups.users.list)."""
    if (team_id and team_id != slack.team_id) or not slack.is_member(user_id, team_id):
        return False
    group = settings.feedback_staff_usergroup
    return not group or user_id in slack.usergroup_members(group)


def require_staff(slack: SlackGateway, settings: Settings, user_id: str, team_id: str | None = None) -> None:
    """is_staff or a UserFacingError with the one refusal wording."""
    if not is_staff(slack, settings, user_id, team_id):
        raise UserFacingError(NOT_STAFF)


def staff_cached(slack: SlackGateway, settings: Settings, user_id: str, team_id: str | None) -> bool | None:
    """is_staff from the caches alone (safe before an ack); None when the answer needs Slack."""
    return slack.member_cached(user_id, team_id, settings.feedback_staff_usergroup)


@dataclass(frozen=True)
class Demand:
    """Who asks for one Linear issue: each account once (however many of its people asked), with ARR and tier."""

    items: int
    accounts: list[tuple[str, Decimal | None, str | None, str | None]]  # name, ARR, currency, tier
    unknown: int = 0  # items from no known account

    def arr(self) -> str | None:
        """The ARR asking, one total per currency ("$200k"), or None when no asking account has one."""
        totals: dict[str, Decimal] = {}
        for _, arr, currency, _ in self.accounts:
            if arr is not None:
                totals[currency or "USD"] = totals.get(currency or "USD", Decimal(0)) + arr
        return " + ".join(money(v, c) for c, v in sorted(totals.items())) or None

    def label(self) -> str:
        """The reach as cards, App Home and reports show it: "2 accounts · $200k ARR"."""
        count = len(self.accounts) + (1 if self.unknown else 0)
        text = f"{count} account{'s' if count != 1 else ''}"
        return f"{text} · {self.arr()} ARR" if self.arr() else text


SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(amount: Decimal, currency: str | None) -> str:
    """$200k, €1.2M, 1.5k CHF."""
    value = float(amount)
    short = f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.0f}k" if value >= 1e3 else f"{value:.0f}"
    short = short.replace(".0M", "M")
    symbol = SYMBOLS.get(currency or "USD")
    return f"{symbol}{short}" if symbol else f"{short} {currency}"


def demand(session: Session, issue_id: str) -> Demand:
    """An issue's demand by account (merged duplicates carry their own link, so their account counts)."""
    groups = customers.issue_accounts(session=session, issue_id=issue_id)
    known = sorted(((a.name, a.arr, a.currency, a.tier) for a, _ in groups if a is not None),
                   key=lambda x: -(x[1] or 0))  # fmt: skip
    unknown = sum(len(fbs) for a, fbs in groups if a is None)
    return Demand(sum(len(fbs) for _, fbs in groups), known, unknown)


def link_account(deps: Deps, fb: Feedback) -> tuple[int | None, int | None]:
    """The (account, contact) a Slack item belongs to (kept when the author is one of ours)."""
    team, user = fb.author_team_id, fb.author_user_id
    if not user or not team or team == deps.slack.team_id:
        return fb.account_id, fb.contact_id
    return account_of_user(deps, user, team, fb.author_name, fb.created_at)


def account_of_user(deps: Deps, user: str, team: str, name: str | None, seen: datetime) -> tuple[int, int]:
    """A customer's (account, contact): their imported contact's account wins, else the account of their Slack
    Connect organisation (named by team.info, asked before any write, then one short transaction)."""
    team_name = deps.slack.team_name(team) or team
    with deps.transaction() as session:
        account = customers.account_for_team(session=session, team_id=team, name=team_name)
        contact = customers.contact_for(session=session, slack_user_id=user, name=name, account_id=account.id,
                                        seen=seen)  # fmt: skip
        return contact.account_id or account.id, contact.id


def enqueue_demand(session: Session, issue_id: str) -> None:
    """Refreshes the issue's one demand comment when its text changed since the last refresh (A -> B -> A is two
    changes); an unchanged list sends nothing."""
    digest = hashlib.sha256(demand_markdown(session, issue_id).encode()).hexdigest()[:16]
    issue = loops.ensure_linear_issue(session=session, issue_id=issue_id)
    if issue.demand_hash == digest:
        return
    issue.demand_comment_id = issue.demand_comment_id or str(uuid.uuid4())  # chosen before the first call
    issue.demand_hash, issue.demand_rev = digest, (issue.demand_rev or 0) + 1
    key = f"linear.demand:{issue_id}:{issue.demand_rev}"
    payload = {"issue_id": issue_id, "lane": f"issue:{issue_id}"}
    queries.enqueue(session=session, key=key, kind=Kind.LINEAR_DEMAND, payload=payload)


def refresh_demand(session: Session, issue_ids: set[str]) -> None:
    """enqueue_demand for each of these issues."""
    for issue_id in sorted(issue_ids):
        enqueue_demand(session, issue_id)


def organisation(session: Session, fb: Feedback) -> str:
    """The customer's account as staff know it (imported name, plan, tier, ARR), else their Slack organisation."""
    account = session.get(Account, fb.account_id) if fb.account_id else None
    if account is None:
        return ("external" if fb.is_external else "internal") + (f" · {fb.author_team_id}" if fb.author_team_id else "")
    facts = [f for f in (account.plan, account.tier) if f]
    if account.arr is not None:
        facts.append(f"{money(account.arr, account.currency)} ARR")
    return kit.name(account.name) + (f" ({', '.join(kit.name(f) for f in facts)})" if facts else "")


def demand_markdown(session: Session, issue_id: str) -> str:
    """The body of the one comment on a Linear issue listing who asks for it (plain Markdown, names only)."""
    d = demand(session, issue_id)
    groups = customers.issue_accounts(session=session, issue_id=issue_id)
    counts = {a.name: len(fbs) for a, fbs in groups if a is not None}
    lines = [f"**Customer demand** (kept up to date by Feedback Loop): {d.items} request{'s' if d.items != 1 else ''} "
             f"from {d.label()}", ""]  # fmt: skip
    for account_name, arr, currency, tier in d.accounts:
        facts = ", ".join(f for f in (tier, f"{money(arr, currency)} ARR" if arr is not None else None) if f)
        asked = f"{counts[account_name]} request(s)" if counts.get(account_name) else "+1 on a request"
        lines.append(f"- {kit.markdown_name(account_name)}{f' ({kit.markdown_name(facts)})' if facts else ''}: {asked}")
    if d.unknown:
        lines.append(f"- {d.unknown} request(s) from no known account")
    return "\n".join(lines)


def champion_left(deps: Deps, user: str, how: str) -> dict[str, str] | None:
    """When an account's main contact leaves a shared channel or is deactivated: recorded for the ledger, and the
    account owner (else the triage channel) is told once per contact and reason."""
    with deps.transaction() as session:
        contact = customers.find_contact(session=session, slack_user_id=user)
        if contact is None or contact.account_id is None:
            return None
        main = customers.main_contact(session=session, account_id=contact.account_id)
        account = session.get(Account, contact.account_id)
        if main is None or main.id != contact.id or account is None:
            return None
        contact.left_at, contact.left_how = contact.left_at or deps.now(), how
        to = account.owner_id or deps.settings.feedback_triage_channel or ""
        who = f"{kit.name(contact.name or user)} ({kit.name(contact.role or 'main contact')})"
        text = f"Champion change at {kit.name(account.name)}: {who} {how}. Time to find a new champion."
        payload = {"to": to, "text": text}
        if to:
            queries.enqueue(session=session, key=f"champion:{contact.id}:{how}", kind=Kind.REMINDER, payload=payload)
        return payload


NEW = "new:"


def account_options(deps: Deps) -> list[tuple[str, str]]:
    """(value, label) of the accounts a modal offers, largest ARR first (Slack shows up to 100)."""
    with deps.transaction() as session:
        rows = customers.all_accounts(session=session, limit=100)
        return [(str(a.id), a.name + (f" · {a.domain}" if a.domain else "")) for a in rows]


def assign(session: Session, fb: Feedback, value: str | None) -> str:
    """Sets the item's account by hand: an existing one (its id) or a new one (`new:<name or domain>`); the
    demand of its Linear issues follows."""
    raw = (value or "").strip()
    if raw.startswith(NEW):
        account = customers.manual_account(session=session, text=raw.removeprefix(NEW).strip())
    else:
        account = session.get(Account, int(raw)) if raw.isdigit() else None
    if account is None:
        raise UserFacingError("Pick an account, or type a new account's name.")
    fb.account_id = account.id
    for issue_id in customers.issues_of_item(session=session, feedback_id=fb.id):
        enqueue_demand(session, issue_id)
    return f"Account set to {account.name}"


def account_names(session: Session) -> list[str]:
    """Account names for App Home's ledger picker (largest ARR first)."""
    names = [a.name for a in customers.all_accounts(session=session, limit=99)]
    return list(dict.fromkeys(names))  # Slack refuses a select with two equal options


def item_arr(session: Session, fb: Feedback) -> float:
    """The ARR asking for an item: its account and its merged duplicates' accounts, each counted once."""
    ids = {fb.account_id, *(d.account_id for d in queries.duplicates_of(session=session, feedback_id=fb.id))}
    rows = customers.accounts_of(session=session, ids=[i for i in ids if i])
    return float(sum(a.arr or 0 for a in rows.values()))
