"""NPS with its uncertainty: %promoters - %detractors, n, and the adjusted-Wald 95% interval (Sauro & Lewis)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

Z95 = 1.959963984540054
MIN_N = 50  # below this, a score is shown as a range with a warning, never bare


def segment(score: int) -> str:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


@dataclass(frozen=True)
class Nps:
    """One group's NPS: counts, the point score and its 95% interval, all on the -100..100 scale."""

    n: int
    promoters: int
    passives: int
    detractors: int

    @property
    def score(self) -> float | None:
        """%promoters - %detractors; None for no answers."""
        return 100.0 * (self.promoters - self.detractors) / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        """Adjusted Wald: add 3/4 of a promoter and of a detractor (3 answers in all), then a normal interval."""
        n = self.n + 3
        p, d = (self.promoters + 0.75) / n, (self.detractors + 0.75) / n
        half = Z95 * math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
        return max(-100.0, 100.0 * (p - d - half)), min(100.0, 100.0 * (p - d + half))

    @property
    def enough(self) -> bool:
        """At least MIN_N answers: the point score may be shown."""
        return self.n >= MIN_N

    def describe(self) -> str:
        """`NPS +23 (95% CI +8 to +37), n=120`, or a range with a warning below 50 answers."""
        if not self.n:
            return "no answers, n=0"
        low, high = self.interval
        if not self.enough:
            return f"only {self.n} answers (<{MIN_N}): somewhere between {low:+.0f} and {high:+.0f}, n={self.n}"
        return f"NPS {self.score:+.0f} (95% CI {low:+.0f} to {high:+.0f}), n={self.n}"


def compute(scores: Iterable[int]) -> Nps:
    """Counts 0-10 scores into an Nps."""
    counts = {"promoter": 0, "passive": 0, "detractor": 0}
    n = 0
    for score in scores:
        counts[segment(score)] += 1
        n += 1
    return Nps(n, counts["promoter"], counts["passive"], counts["detractor"])


def by_group(rows: Iterable[T], key: Callable[[T], str | None], score: Callable[[T], int]) -> dict[str, Nps]:
    """NPS per group value (rows whose key is None go to "unknown"), sorted by group."""
    groups: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        groups[key(row) or "unknown"].append(score(row))
    return {name: compute(groups[name]) for name in sorted(groups)}


def below(nps: Nps, threshold: float) -> bool:
    """True only when the whole 95% interval lies below the threshold: a real drop, not noise."""
    return nps.n > 0 and nps.interval[1] < threshold
