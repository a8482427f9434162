"""The digest's chart: weekly feedback count by type over the last 12 weeks, a PNG drawn with matplotlib (Agg)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: drawn in a worker thread or a CLI without X
import matplotlib.pyplot as plt

from bot.domain import ChartData

WIDTH, HEIGHT, DPI = 10, 4.5, 100  # 1000 x 450 pixels


def png(data: ChartData, title: str = "New feedback by type, last 12 weeks") -> bytes:
    """Stacked bars per week, one colour per type; an empty chart still renders (all zeros)."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT), dpi=DPI)
    try:
        bottom = [0] * len(data.weeks)
        for name, counts in data.series.items():
            ax.bar(data.weeks, counts, bottom=bottom, label=name)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.set_title(title)
        ax.set_ylabel("items")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        if data.series:
            ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI)
        return out.getvalue()
    finally:
        plt.close(fig)
