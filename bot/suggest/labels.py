"""One label set (types, themes or chatter): a zero-shot prior from label specs, and a learned model fitted
on every label staff confirm or correct, swapped in whole after each background refit."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bot.suggest.fused import Batch, Learned, fit_learned
from bot.suggest.taxonomy import LabelSpec
from bot.suggest.textprep import parts

Encode = Callable[[list[str]], np.ndarray]


def _softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = (x - x.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class _Prior:
    """Prototype embeddings per label for the zero-shot prior."""

    labels: list[str]
    protos: list[np.ndarray]  # per label: (k, d) unit rows (description first)


@dataclass(frozen=True)
class _Fitted:
    """An immutable trained model and the labelled examples it saw (for the nearest-example explanation)."""

    labels: list[str]
    n: int
    learned: Learned | None = None
    keys: list[object] = field(default_factory=list)
    ys: list[str] = field(default_factory=list)
    embs: np.ndarray | None = None


class LabelModel:
    """Zero-shot prior from label specs, combined with a classifier learned from labelled examples."""

    def __init__(
        self,
        specs: list[LabelSpec] | None,
        encode: Encode | None = None,
        *,
        temperature: float = 0.04,
        prior_weight: float = 10.0,
        recent: int = 500,
        min_centre: int = 20,
    ) -> None:
        self.specs = list(specs or [])
        self._encode = encode
        self._prior: _Prior | None = None
        self.temperature = temperature
        self.prior_weight = prior_weight
        self._recent: deque[np.ndarray] = deque(maxlen=recent)
        self._min_centre = min_centre
        self._lock = threading.Lock()
        self._texts: list[str] = []
        self._embs: list[np.ndarray] = []
        self._ys: list[str] = []
        self._keys: dict[object, int] = {}
        self._parts: dict[str, np.ndarray] = {}
        self._fitted = _Fitted([], 0)

    @property
    def labels(self) -> list[str]:
        seen = [s.name for s in self.specs]
        return seen + [y for y in self._fitted.labels if y not in seen]

    @property
    def n_labelled(self) -> int:
        return self._fitted.n

    @property
    def needs_parts(self) -> bool:
        """Whether predictions use the title and body embeddings (only a learned model does)."""
        return self._fitted.learned is not None

    def canonical(self, label: str) -> str | None:
        """Map a free-form label onto a spec name by name or alias (case-insensitive)."""
        return next((s.name for s in self.specs if s.matches(label)), None)

    def _get_prior(self) -> _Prior | None:
        if self._prior is None and self.specs and self._encode is not None:
            protos = [self._encode([spec.description, *spec.examples]) for spec in self.specs]
            self._prior = _Prior([s.name for s in self.specs], protos)
        return self._prior

    def observe(self, emb: np.ndarray) -> None:
        """Remember an unlabelled embedding; the prior is centred on the recent mean."""
        self._recent.append(np.asarray(emb, dtype=np.float32))

    def prior_matrix(self, embs: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Zero-shot probabilities (n, labels) by cosine to each label's centred prototype centroid."""
        prior = self._get_prior()
        if prior is None:
            return [], np.zeros((len(embs), 0))
        recent = list(self._recent)
        centre = np.mean(recent, axis=0) if len(recent) >= self._min_centre else np.zeros(embs.shape[-1])
        q = _unit(np.asarray(embs, dtype=np.float32) - centre)
        cents = np.vstack([_unit(_unit(p - centre).mean(axis=0)) for p in prior.protos])
        return prior.labels, _softmax(q @ cents.T, self.temperature)

    def prior_probs(self, emb: np.ndarray) -> dict[str, float]:
        labels, probs = self.prior_matrix(np.asarray(emb).reshape(1, -1))
        return dict(zip(labels, probs[0].tolist(), strict=True)) if labels else {}

    def add_example(self, text: str, emb: np.ndarray, label: str, *, key: object | None = None) -> None:
        """Record a labelled item (e.g. a staff correction); a repeated `key` replaces its earlier label."""
        with self._lock:
            y = self.canonical(label) or label
            if key is not None and key in self._keys:
                i = self._keys[key]
                self._texts[i], self._embs[i], self._ys[i] = text, np.asarray(emb, dtype=np.float32), y
                return
            if key is not None:
                self._keys[key] = len(self._ys)
            self._texts.append(text)
            self._embs.append(np.asarray(emb, dtype=np.float32))
            self._ys.append(y)

    def forget(self, key: object) -> None:
        """Drops a keyed example (an undone correction); indices of the other keys are kept in step."""
        with self._lock:
            i = self._keys.pop(key, None)
            if i is None:
                return
            for seq in (self._texts, self._embs, self._ys):
                del seq[i]
            self._keys = {k: (j - 1 if j > i else j) for k, j in self._keys.items()}

    def parts_of(self, texts: list[str], embs: np.ndarray, *, cache: bool = False) -> np.ndarray:
        """(n, 2d): the title's own embedding (only for texts with a title line: one short extra encode) and
        the full-text one, which stands for the body; a one-line message is both."""
        out = np.hstack([embs, embs]).astype(np.float32)
        titled = {t: title for t in dict.fromkeys(texts) if (title := parts(t)[0]) != parts(t)[1]}
        todo = [t for t in titled if t not in self._parts]
        fresh: dict[str, np.ndarray] = {}
        if self._encode is not None and todo:
            fresh = dict(zip(todo, self._encode([titled[t] for t in todo]), strict=True))
            if cache:
                self._parts.update(fresh)
        for i, t in enumerate(texts):
            vec = fresh.get(t) if t in fresh else self._parts.get(t)
            if t in titled and vec is not None:
                out[i, : embs.shape[1]] = vec
        return out

    def refit(self) -> None:
        """Train a fresh model on all examples, then swap it in; predict never waits on this."""
        with self._lock:
            texts, embs, ys = list(self._texts), list(self._embs), list(self._ys)
            keys: list[object] = [None] * len(ys)
            for k, i in self._keys.items():
                keys[i] = k
        labels = sorted(set(ys))
        matrix = np.vstack(embs).astype(np.float32) if embs else None
        if len(labels) < 2 or matrix is None:
            self._fitted = _Fitted(labels, len(ys), None, keys, ys, matrix)
            return
        batch = Batch(texts, matrix, self.parts_of(texts, matrix, cache=True))
        learned = fit_learned(batch, ys, self._prior_for(labels, matrix))
        self._fitted = _Fitted(learned.labels, len(ys), learned, keys, ys, matrix)

    def _prior_for(
        self, labels: list[str], embs: np.ndarray, known: tuple[list[str], np.ndarray] | None = None
    ) -> np.ndarray:
        """The prior over `labels` (uniform for labels without a spec), renormalised."""
        names, probs = known or self.prior_matrix(embs)
        col = {y: i for i, y in enumerate(names)}
        out = np.full((len(embs), len(labels)), 1.0 / max(1, len(labels)))
        for j, y in enumerate(labels):
            if y in col:
                out[:, j] = probs[:, col[y]]
        return out / out.sum(axis=1, keepdims=True)

    def predict(
        self, text: str, emb: np.ndarray, part: np.ndarray | None = None
    ) -> tuple[str, float, dict[str, float]]:
        """Return (label, confidence, probabilities over all known labels)."""
        vec = np.asarray(emb, dtype=np.float32).reshape(1, -1)
        probs = self.predict_many([text], vec, None if part is None else part.reshape(1, -1))[0]
        if not probs:
            raise ValueError("LabelModel has neither label specs nor training examples")
        best = max(probs, key=lambda y: probs[y])
        return best, probs[best], probs

    def predict_many(
        self, texts: list[str], embs: np.ndarray, part: np.ndarray | None = None
    ) -> list[dict[str, float]]:
        """Probabilities per item: the learned model (weighing the prior itself once stacked), else the prior
        blended with it by n/(n+prior_weight); labels never trained keep the prior's share of them."""
        fitted = self._fitted
        names, prior = self.prior_matrix(embs)
        labels = names + [y for y in fitted.labels if y not in names]
        out = np.zeros((len(texts), len(labels)))
        out[:, : len(names)] = prior
        if fitted.learned is not None:
            batch = Batch(texts, embs, part if part is not None else self.parts_of(texts, embs))
            learned = fitted.learned.predict_proba(batch, self._prior_for(fitted.labels, embs, (names, prior)))
            out = self._combine(out, learned, labels, fitted, bool(names))
        elif fitted.labels:  # one label so far: it is all the learned side can say
            out = self._combine(out, np.ones((len(texts), 1)), labels, fitted, bool(names))
        return [dict(zip(labels, row.tolist(), strict=True)) for row in out]

    def _combine(
        self, prior: np.ndarray, learned: np.ndarray, labels: list[str], fitted: _Fitted, has_prior: bool
    ) -> np.ndarray:
        cols = [labels.index(y) for y in fitted.labels]
        trained = np.zeros_like(prior)
        trained[:, cols] = learned
        if not has_prior:
            return trained
        shrink = self.prior_weight / (fitted.n + self.prior_weight)
        if fitted.learned is not None and fitted.learned.calibrated:
            unseen = prior.copy()
            unseen[:, cols] = 0.0
            return (1.0 - unseen.sum(axis=1, keepdims=True) * shrink) * trained + unseen * shrink
        return shrink * prior + (1.0 - shrink) * trained

    def nearest(self, emb: np.ndarray, label: str, k: int = 2) -> list[tuple[object, float]]:
        """The k labelled examples (by key) with `label` most similar to `emb`: why the model says so."""
        fitted = self._fitted
        if fitted.embs is None or k <= 0:
            return []
        rows = [
            i for i, (y, key) in enumerate(zip(fitted.ys, fitted.keys, strict=True)) if y == label and key is not None
        ]
        if not rows:
            return []
        scores = fitted.embs[rows] @ np.asarray(emb, dtype=np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(fitted.keys[rows[j]], float(scores[j])) for j in order]
