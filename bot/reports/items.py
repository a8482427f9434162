"""One feedback item as the reports read it (plain values, so report functions stay pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Item:
    """One feedback item as reports need it."""

    id: int
    created_at: datetime
    type: str
    theme: str
    text: str
    link: str | None
    account: str
    who: str = ""
    similar: list[tuple[int, float]] = field(default_factory=list)
    segment: str = "unknown account"  # "plan / tier" of the account
