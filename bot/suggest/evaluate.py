"""`feedbackbot eval`: how well the type suggestions match a labelled CSV (zero-shot or after training)."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.suggest.classify import DEFAULT_TYPES, LabelModel, LabelSpec, make_text_classifier
from bot.suggest.embedder import Embedder

log = logging.getLogger(__name__)


class EvaluationError(ValueError):
    """A user-facing problem with the evaluation input (missing file, column, or rows)."""


@dataclass
class _Rows:
    texts: list[str]
    labels: list[str]


def read_rows(path: str | Path, text_column: str = "text", label_column: str = "label") -> _Rows:
    """Read non-empty (text, label) rows, with clear errors for a missing file, column or data."""
    p = Path(path)
    if not p.is_file():
        raise EvaluationError(f"File not found: {p}")
    csv.field_size_limit(2**31 - 1)  # issue bodies can be long
    raw = p.read_bytes()
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    content = raw.decode(encoding, errors="replace")
    wanted = [text_column.strip().casefold(), label_column.strip().casefold()]
    first: list[str] = []
    for delimiter in (",", ";", "\t", "|"):  # comma first; Excel exports in some locales use ; or tabs
        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
        header = list(reader.fieldnames or [])
        first = first or header
        by_name = {c.strip().casefold(): c for c in header}
        if all(w in by_name for w in wanted):
            break
    else:
        if not first:
            raise EvaluationError(f"{p} is empty: expected a header row with {text_column!r} and {label_column!r}")
        known = {c.strip().casefold() for c in first}
        missing = [c for c, w in zip((text_column, label_column), wanted, strict=True) if w not in known]
        raise EvaluationError(f"{p} has no column {missing[0]!r} (columns: {', '.join(first)})")
    picked = [by_name[w] for w in wanted]
    rows = [((r.get(picked[0]) or "").strip(), (r.get(picked[1]) or "").strip()) for r in reader]
    rows = [(t, y) for t, y in rows if t and y]
    if not rows:
        raise EvaluationError(f"{p} has no rows with both {text_column!r} and {label_column!r} filled in")
    return _Rows([t for t, _ in rows], [y for _, y in rows])


def evaluate(
    path: str | Path,
    *,
    train_path: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    embedder: Embedder | None = None,
    types: list[LabelSpec] | None = None,
) -> str:
    """Score the shipped type model on a CSV; the last line is exactly `macro-F1 0.XXX`."""
    test = read_rows(path, text_column, label_column)
    train = read_rows(train_path, text_column, label_column) if train_path is not None else None
    emb = embedder or Embedder()
    specs = types or DEFAULT_TYPES
    lines: list[str] = []
    if train is None:
        model = LabelModel(specs, emb.encode)
        keep, y_true = _map(test.labels, model.canonical, lines, "match no configured type or alias")
    else:
        uses_types = all(LabelModel(specs).canonical(y) for y in train.labels)
        model = LabelModel(specs if uses_types else None, emb.encode)
        train_y = [model.canonical(y) or y for y in train.labels]
        by_key = {k.casefold(): k for k in set(train_y)}
        keep, y_true = _map(
            test.labels,
            lambda y: by_key.get((model.canonical(y) or y).casefold()),
            lines,
            "never appear in the training data",
        )
    texts = [test.texts[i] for i in keep]
    if not texts:
        raise EvaluationError("No evaluation rows have a label the model knows")
    x = emb.encode(texts)
    for v in x:
        model.observe(v)
    lines.insert(0, f"Evaluating {len(texts)} rows from {path}" + (f", trained on {train_path}" if train else ""))
    if train is not None:
        x_train = emb.encode(train.texts)
        for t, v, y in zip(train.texts, x_train, train_y, strict=True):
            model.add_example(t, v, y)
        model.refit()
        lines += _baselines(train.texts, x_train, train_y, texts, x, y_true)
    allowed = set(y_true) if train is None else set(train_y)
    if len(allowed) < 2:  # one class left: restricting would make every prediction trivially right
        allowed = set(model.labels)
        lines.append("Only one label in the task: predictions range over every configured type")
    else:
        lines.append(f"Predictions are restricted to the task's {len(allowed)} labels: {', '.join(sorted(allowed))}")
    y_pred = [_best(model.predict(t, v)[2], allowed) for t, v in zip(texts, x, strict=True)]
    title = "shipped model (" + ("zero-shot prior + learned classifier" if train else "zero-shot") + ")"
    table, macro = _report(y_true, y_pred)
    lines += [f"== {title} ==", table, f"macro-F1 {macro:.3f}"]
    return "\n".join(lines)


def _best(probs: dict[str, float], allowed: set[str]) -> str:
    """The most probable label among those the task uses (a bug/feature/question set has no Praise)."""
    return max((y for y in probs if y in allowed), key=lambda y: probs[y], default=max(probs, key=lambda y: probs[y]))


def _map(
    labels: list[str], resolve: Callable[[str], str | None], lines: list[str], why: str
) -> tuple[list[int], list[str]]:
    """Indices of the rows whose label resolves, and the resolved labels; the rest are reported."""
    keep, mapped, unknown = [], [], []
    for i, y in enumerate(labels):
        name = resolve(y)
        if name is None:
            unknown.append(y)
        else:
            keep.append(i)
            mapped.append(name)
    _note_skipped(unknown, lines, why)
    return keep, mapped


def _note_skipped(unknown: list[str], lines: list[str], why: str) -> None:
    if unknown:
        distinct = sorted(set(unknown))
        lines.append(f"Skipped {len(unknown)} rows whose labels {why}: {', '.join(distinct[:10])}")


def _baselines(
    train_texts: list[str],
    x_train: np.ndarray,
    train_y: list[str],
    texts: list[str],
    x: np.ndarray,
    y_true: list[str],
) -> list[str]:
    """TF-IDF-only and embedding-only classifiers trained on the same rows, for comparison."""
    from sklearn.linear_model import LogisticRegression

    if len(set(train_y)) < 2:
        return ["(baselines skipped: the training data has a single label)"]
    out: list[str] = []
    text_clf = make_text_classifier().fit(train_texts, train_y)
    emb_clf = LogisticRegression(C=4.0, max_iter=300).fit(x_train, train_y)
    for name, pred in (("TF-IDF baseline", text_clf.predict(texts)), ("embedding baseline", emb_clf.predict(x))):
        table, macro = _report(y_true, [str(p) for p in pred])
        out += [f"== {name} ==", table, f"{name} macro-F1 {macro:.3f}", ""]
    return out


def _report(y_true: list[str], y_pred: list[str]) -> tuple[str, float]:
    from sklearn.metrics import classification_report, f1_score

    labels = sorted(set(y_true))
    table = classification_report(y_true, y_pred, labels=labels, digits=3, zero_division=0)
    macro = float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    return str(table).rstrip(), macro
