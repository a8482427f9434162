"""App Home for staff: the triage queue (filtered), assigned to me, roadmap backlog and the maybe list."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.accounts.service import account_names, is_staff, item_arr
from bot.deps import Deps
from bot.domain import HomeItem, Status
from bot.home import blocks
from bot.home.blocks import SORTS
from bot.loop import service as loop
from bot.nps import service as nps
from bot.reports import service as reports
from bot.slack.kit import mentioned_users
from bot.triage.service import triage_view, who
from storage import customers, queries

HOME_LISTS = (
    ("Triage queue", [Status.NEW], False),
    ("Assigned to me", [Status.NEW, Status.TRIAGED, Status.LINEAR, Status.ROADMAP, Status.QUICK_WIN], True),
    ("Roadmap backlog", [Status.ROADMAP], False),
    ("Maybe feedback", [Status.MAYBE], False),
)
ANY = {"", "any type", "any theme"}


def home_view(deps: Deps, user_id: str, filters: dict[str, str] | None = None) -> dict[str, Any]:
    """The Home tab for one user; anyone but staff sees nothing internal."""
    filters = filters or {}
    if not is_staff(deps.slack, deps.settings, user_id):
        return blocks.home([], filters={}, themes=[], staff=False)
    type_ = filters.get("type") if filters.get("type", "").lower() not in ANY else None
    theme = filters.get("theme") if filters.get("theme", "").lower() not in ANY else None
    secret, sla = deps.settings.ref_secret(), deps.settings.feedback_loop_sla_days
    with deps.transaction() as session:
        sections: list[tuple[str, list[HomeItem]]] = []
        shown: set[int] = set()
        for title, statuses, mine in HOME_LISTS:
            by_arr = title == "Roadmap backlog" and filters.get("sort") == SORTS[1]
            rows = queries.feedback_list(
                session=session,
                statuses=list(statuses),
                owner_id=user_id if mine else None,
                type_=type_,
                theme=theme,
                limit=100 if by_arr else 8 if title == "Triage queue" else 5,
            )
            if by_arr:  # ARR-weighted demand: the item's account and its merged duplicates' accounts
                rows = sorted(rows, key=lambda fb: -item_arr(session, fb))[:5]
            rows = [fb for fb in rows if fb.id not in shown]  # block_ids must be unique within a view
            shown.update(fb.id for fb in rows)
            items = [
                HomeItem(fb.id, fb.status, who(fb), fb.text, triage_view(session, fb, secret, loop_sla_days=sla),
                         fb.suggested_type, fb.suggested_theme)
                for fb in rows
            ]  # fmt: skip
            sections.append((title, items))
        themes = [t.name for t in queries.themes(session=session)]
        loop_rows = nps.home_rows(session, deps.settings, deps.now()) + loop.home_rows(deps, session)
        accounts = account_names(session)
        picked = customers.account_lookup(session=session, text=filters.get("account", "")) if filters.get(
            "account") else None  # fmt: skip
        ledger = reports.ledger(session, picked, deps.now()) if picked is not None else None
    names = deps.slack.display_names(set().union(*(mentioned_users(i.text) for _, items in sections for i in items)))
    sections = [(title, [_named(i, names) for i in items]) for title, items in sections]
    return blocks.home(sections, filters=filters, themes=themes, first=loop_rows, accounts=accounts, ledger=ledger)


def _named(item: HomeItem, names: dict[str, str]) -> HomeItem:
    return replace(item, names=names)
