"""`feedbackbot eval`: how well the type suggestions match a labelled CSV (zero-shot or after training)."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.suggest.baselines import Task, baselines, score
from bot.suggest.classify import DEFAULT_TYPES, LabelModel, LabelSpec
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
    """Score the shipped type model and its baselines on a CSV; the line before the last is `ECE 0.0XX`, the
    last is exactly `macro-F1 0.XXX`."""
    test = read_rows(path, text_column, label_column)
    train = read_rows(train_path, text_column, label_column) if train_path is not None else None
    emb = embedder or Embedder()
    lines: list[str] = []
    task = _task(test, train, types or DEFAULT_TYPES, emb, lines)
    lines.insert(0, f"Evaluating {len(task.texts)} rows from {path}" + (f", trained on {train_path}" if train else ""))
    emb.encode(["warm up"])  # time per item should not include loading the model
    started = time.perf_counter()
    x = emb.encode(task.texts)
    embed_ms = (time.perf_counter() - started) * 1000 / len(task.texts)
    for v in x:
        task.model.observe(v)
    if task.train_texts is not None and task.train_y is not None:
        x_train = emb.encode(task.train_texts)
        for t, v, y in zip(task.train_texts, x_train, task.train_y, strict=True):
            task.model.add_example(t, v, y)
        task.model.refit()
        lines += baselines(task, x_train, x, embed_ms)
    started = time.perf_counter()
    probs = task.model.predict_many(task.texts, x)
    ms = embed_ms + (time.perf_counter() - started) * 1000 / len(task.texts)
    title = "shipped model (" + ("fused features + stacked calibration" if train else "zero-shot prior") + ")"
    matrix = np.array([[p.get(y, 0.0) for y in task.allowed] for p in probs])
    table, macro, calibration = score(task.y_true, task.allowed, matrix)
    lines += [f"== {title} ==", table, f"time per item {ms:.2f} ms (embedding included)"]
    return "\n".join([*lines, f"ECE {calibration:.3f}", f"macro-F1 {macro:.3f}"])


def _task(test: _Rows, train: _Rows | None, specs: list[LabelSpec], emb: Embedder, lines: list[str]) -> Task:
    """Maps the file's labels onto the model's (type names and aliases, or the training file's own labels)."""
    if train is None:
        model = LabelModel(specs, emb.encode)
        keep, y_true = _map(test.labels, model.canonical, lines, "match no configured type or alias")
        train_y = None
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
    if not keep:
        raise EvaluationError("No evaluation rows have a label the model knows")
    allowed = sorted(set(y_true) if train_y is None else set(train_y))
    if len(allowed) < 2:  # one class left: restricting would make every prediction trivially right
        allowed = list(model.labels)
        lines.append("Only one label in the task: predictions range over every configured type")
    else:
        lines.append(f"Predictions are restricted to the task's {len(allowed)} labels: {', '.join(allowed)}")
    texts = [test.texts[i] for i in keep]
    return Task(model, texts, y_true, allowed, train.texts if train else None, train_y)


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
