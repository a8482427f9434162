"""Turns the hand-written issues.tsv and reviews.tsv (label, title, body with \\n escapes) into CSVs for
`feedbackbot eval`: issues.csv (all rows), issues_train.csv / issues_test.csv (alternate rows of each
label), issues_train32.csv (the first 32 training rows of each label) and reviews.csv.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _read(name: str) -> list[dict[str, str]]:
    """Title on the first line, a blank line, then the body: the shape of an issue or a Slack message."""
    rows = []
    for line in (HERE / name).read_text().splitlines():
        label, title, body = line.split("\t")
        text = f"{title.replace(chr(92) + 'n', chr(10))}\n\n{body.replace(chr(92) + 'n', chr(10))}"
        rows.append({"text": text, "label": label})
    return rows


def main() -> None:
    rows = _read("issues.tsv")
    seen: dict[str, int] = defaultdict(int)
    parts: dict[str, list[dict[str, str]]] = {"issues.csv": rows, "issues_train.csv": [], "issues_test.csv": []}
    for row in rows:
        parts["issues_train.csv" if seen[row["label"]] % 2 == 0 else "issues_test.csv"].append(row)
        seen[row["label"]] += 1
    taken: dict[str, int] = defaultdict(int)
    parts["issues_train32.csv"] = []
    for row in parts["issues_train.csv"]:
        if taken[row["label"]] < 32:
            parts["issues_train32.csv"].append(row)
            taken[row["label"]] += 1
    parts["reviews.csv"] = _read("reviews.tsv")
    for name, part in parts.items():
        with (HERE / name).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(part)


if __name__ == "__main__":
    main()
