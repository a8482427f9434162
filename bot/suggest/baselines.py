"""What `feedbackbot eval` compares the shipped model with, and how every model is scored."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.suggest.fused import Batch, FusedModel, ece
from bot.suggest.labels import LabelModel


@dataclass
class Task:
    """The rows being scored, the label set they use, and the model that will be scored on them."""

    model: LabelModel
    texts: list[str]
    y_true: list[str]
    allowed: list[str]
    train_texts: list[str] | None = None
    train_y: list[str] | None = None


def make_text_classifier() -> Any:
    """The old lexical half: TF-IDF over word 1-2grams and char 2-5grams, then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
    return make_pipeline(make_union(words, chars), LogisticRegression(C=10.0, max_iter=1000))


def make_svm() -> Any:
    """TF-IDF + linear SVM, the strong plain baseline on issue reports."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
    return make_pipeline(make_union(words, chars), LinearSVC(C=0.5))


def score(y_true: list[str], allowed: list[str], probs: np.ndarray) -> tuple[str, float, float]:
    """Per-class report, macro-F1 and top-label ECE (10 bins) of probabilities over `allowed` (renormalised)."""
    from sklearn.metrics import classification_report, f1_score

    p = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    pred = [allowed[i] for i in p.argmax(axis=1)]
    labels = sorted(set(y_true))
    table = classification_report(y_true, pred, labels=labels, digits=3, zero_division=0)
    macro = float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0))
    calibration = ece(p.max(axis=1), np.array(pred) == np.array(y_true))
    return str(table).rstrip(), macro, calibration


def _columns(classes: list[str], allowed: list[str], probs: np.ndarray) -> np.ndarray:
    out = np.zeros((len(probs), len(allowed)))
    for j, y in enumerate(classes):
        if y in allowed:
            out[:, allowed.index(y)] = probs[:, j]
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def baselines(task: Task, x_train: np.ndarray, x: np.ndarray, embed_ms: float) -> list[str]:
    """Zero-shot, TF-IDF (logistic regression and linear SVM), embedding-only and unstacked fused models,
    trained on the same rows; each with its report, macro-F1, ECE and time per item."""
    from sklearn.linear_model import LogisticRegression

    ys = task.train_y or []
    texts, train_texts = task.texts, task.train_texts or []
    if len(set(ys)) < 2:
        return ["(baselines skipped: the training data has a single label)"]
    part_train = task.model.parts_of(train_texts, x_train, cache=True)
    started = time.perf_counter()
    part = task.model.parts_of(texts, x)
    part_ms = (time.perf_counter() - started) * 1000 / len(texts)
    runs: list[tuple[str, Callable[[], np.ndarray], float]] = []
    if task.model.specs:
        runs.append(("zero-shot prior", lambda: _prior(task, x), embed_ms))
    lex = make_text_classifier().fit(train_texts, ys)
    svm = make_svm().fit(train_texts, ys)
    emb = LogisticRegression(C=4.0, max_iter=1000).fit(x_train, ys)
    fused = FusedModel().fit(Batch(train_texts, x_train, part_train), ys)
    runs += [
        ("TF-IDF baseline", lambda: _columns(list(lex.classes_), task.allowed, lex.predict_proba(texts)), 0.0),
        (
            "TF-IDF + linear SVM",
            lambda: _columns(list(svm.classes_), task.allowed, _softmax(svm.decision_function(texts))),
            0.0,
        ),
        ("embedding baseline", lambda: _columns(list(emb.classes_), task.allowed, emb.predict_proba(x)), embed_ms),
        (
            "fused features, unstacked",
            lambda: _columns(fused.classes, task.allowed, fused.predict_proba(Batch(texts, x, part))),
            embed_ms + part_ms,
        ),
    ]
    return [line for name, run, extra in runs for line in _one(name, run, extra, task)]


def _prior(task: Task, x: np.ndarray) -> np.ndarray:
    names, probs = task.model.prior_matrix(x)
    return _columns(names, task.allowed, probs)


def _one(name: str, run: Callable[[], np.ndarray], extra_ms: float, task: Task) -> list[str]:
    started = time.perf_counter()
    probs = run()
    ms = extra_ms + (time.perf_counter() - started) * 1000 / len(task.texts)
    table, macro, calibration = score(task.y_true, task.allowed, probs)
    return [f"== {name} ==", table, f"{name} macro-F1 {macro:.3f} · ECE {calibration:.3f} · {ms:.2f} ms/item", ""]
