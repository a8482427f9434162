"""One customer's ledger for a business review (`feedbackbot report account`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.accounts.service import money
from bot.domain import CLOSED, Report, ReportLine, ReportSection
from storage import customers, queries
from storage.models import Account, LinearIssue


def ledger(session: Session, account: Account, now: datetime) -> Report:
    """One customer's ledger for a business review: who they are, what they asked, where it went, what shipped
    (with ask-to-ship time), and the promises still open."""
    fields = customers.values_of(account)
    shown = {k: money(v, account.currency) if k == "arr" else ", ".join(v) if isinstance(v, list) else v
             for k, v in fields.items() if v not in (None, "", []) and k not in ("name", "currency")}  # fmt: skip
    facts = [f"{k.replace('_', ' ')}: {v}" for k, v in shown.items()]
    fbs = list(customers.account_items(session=session, account_id=account.id))
    asked = [ReportLine(f"{fb.created_at:%Y-%m-%d} · {fb.type or fb.suggested_type or 'Unclassified'} · {fb.status}",
                        fb.permalink, fb.text) for fb in fbs]  # fmt: skip
    routed, shipped = [], []
    for fb in fbs:
        for link in queries.links_for(session=session, feedback_id=fb.id):
            if link.status != "linked":
                continue
            routed.append(ReportLine(f"#{fb.id} → {link.identifier} {link.title or ''} ({link.state_name or '?'})",
                                     link.url))  # fmt: skip
            issue = session.get(LinearIssue, link.issue_id)
            if issue is not None and issue.completed_at is not None:
                days = (issue.completed_at - fb.created_at).total_seconds() / 86400
                shipped.append(ReportLine(f"{link.identifier} shipped {issue.completed_at:%Y-%m-%d}, {days:.0f} days "
                                          f"after #{fb.id} was asked", link.url))  # fmt: skip
    waiting = [ReportLine(f"#{fb.id} · waiting {(now - fb.thread_last_at).days} days since they wrote", fb.permalink,
                          fb.text) for fb in fbs if fb.staff_replied_at and fb.thread_last_staff is False
               and fb.thread_last_at is not None and fb.status not in CLOSED]  # fmt: skip
    return Report(
        kind="account", key=f"ledger:{account.id}", title=f"Customer ledger: {account.name}",
        period=f"as of {now:%Y-%m-%d}", summary=facts or ["no account fields recorded"],
        sections=[ReportSection("Contacts", _contacts(session, account), empty="No contacts yet."),
                  ReportSection("Asked for", asked, empty="No feedback yet."), ReportSection("Routed", routed),
                  ReportSection("Shipped", shipped), ReportSection("Open promises (staff replied, customer waiting)",
                                                                   waiting, empty="None.")],
    )  # fmt: skip


def _contacts(session: Session, account: Account) -> list[ReportLine]:
    """The account's people, the champion first, with who left and when (a champion change)."""
    main = customers.main_contact(session=session, account_id=account.id)
    people = sorted(customers.contacts_of(session=session, account_id=account.id), key=lambda c: c is not main)
    lines = []
    for c in people:
        text = f"{c.name or c.email or c.slack_user_id} ({c.role or 'contact'}{', champion' if c is main else ''})"
        if c.left_at is not None:
            text += f": {c.left_how or 'left'} on {c.left_at:%Y-%m-%d}"
        lines.append(ReportLine(text))
    return lines
