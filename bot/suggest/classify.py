"""Suggest type, theme, impact and similar items for a piece of feedback; learn from staff corrections.

Pure logic over embeddings (see bot/embedder.py); storage and Slack are wired by the caller.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.suggest.embedder import Embedder, ModelUnavailable
from bot.suggest.taxonomy import CHATTER_SPECS, DEFAULT_THEMES, DEFAULT_TYPES, LabelSpec

log = logging.getLogger(__name__)
__all__ = [
    "DEFAULT_THEMES",
    "DEFAULT_TYPES",
    "Embedder",
    "LabelModel",
    "LabelSpec",
    "ModelUnavailable",
    "SimilarHit",
    "SimilarIndex",
    "Suggester",
    "Suggestion",
    "chatter_model",
    "feedback_score",
    "suggest_impact",
]

Encode = Callable[[list[str]], np.ndarray]


def _softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = (x - x.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class _Prior:
    """Prototype embeddings per label for the zero-shot prior."""

    labels: list[str]
    protos: list[np.ndarray]  # per label: (k, d) unit rows (description first)


@dataclass(frozen=True)
class _Fitted:
    """An immutable trained classifier, swapped in whole by `refit`."""

    labels: list[str]
    n: int
    text_clf: Any
    emb_clf: Any
    text_weight: float = 0.4


class LabelModel:
    """Zero-shot prior from label specs, blended with a classifier learned from labelled examples."""

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
        self._fitted = _Fitted([], 0, None, None)

    @property
    def labels(self) -> list[str]:
        seen = [s.name for s in self.specs]
        return seen + [y for y in self._fitted.labels if y not in seen]

    def canonical(self, label: str) -> str | None:
        """Map a free-form label onto a spec name by name or alias (case-insensitive)."""
        return next((s.name for s in self.specs if s.matches(label)), None)

    def _get_prior(self) -> _Prior | None:
        if self._prior is None and self.specs and self._encode is not None:
            protos = []
            for spec in self.specs:
                protos.append(self._encode([spec.description, *spec.examples]))
            self._prior = _Prior([s.name for s in self.specs], protos)
        return self._prior

    def observe(self, emb: np.ndarray) -> None:
        """Remember an unlabelled embedding; the prior is centred on the recent mean."""
        self._recent.append(np.asarray(emb, dtype=np.float32))

    def prior_probs(self, emb: np.ndarray) -> dict[str, float]:
        prior = self._get_prior()
        if prior is None:
            return {}
        recent = list(self._recent)
        centre = np.mean(recent, axis=0) if len(recent) >= self._min_centre else None
        q = _unit(emb - centre) if centre is not None else emb
        scores = []
        for protos in prior.protos:
            p = _unit(protos - centre) if centre is not None else protos
            scores.append(float(_unit(p.mean(axis=0)) @ q))  # prototype centroid beat max-sim on the sample
        probs = _softmax(np.array(scores), self.temperature)
        return dict(zip(prior.labels, probs.tolist(), strict=True))

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

    def refit(self) -> None:
        """Train a fresh classifier on all examples, then swap it in; predict never waits on this."""
        with self._lock:
            texts, embs, ys = list(self._texts), list(self._embs), list(self._ys)
        matrix = np.vstack(embs).astype(np.float32) if embs else np.zeros((0, 0), dtype=np.float32)
        self._fitted = _fit(texts, matrix, ys)

    def predict(self, text: str, emb: np.ndarray) -> tuple[str, float, dict[str, float]]:
        """Return (label, confidence, probabilities over all known labels)."""
        fitted = self._fitted
        prior = self.prior_probs(emb)
        learned = _predict_fitted(fitted, text, emb)
        labels = list(prior) + [y for y in learned if y not in prior]
        if not labels:
            raise ValueError("LabelModel has neither label specs nor training examples")
        w = fitted.n / (fitted.n + self.prior_weight) if learned else 0.0
        if not prior:
            w = 1.0
        probs = {y: (1 - w) * prior.get(y, 0.0) + w * learned.get(y, 0.0) for y in labels}
        best = max(probs, key=lambda y: probs[y])
        return best, probs[best], probs


def _fit(texts: list[str], embs: np.ndarray, ys: list[str]) -> _Fitted:
    """TF-IDF word+char n-grams and embeddings, each -> logistic regression; their blend weight is validated."""
    labels = sorted(set(ys))
    if len(labels) < 2:
        return _Fitted(labels, len(ys), None, None)
    from sklearn.linear_model import LogisticRegression

    weight = _blend_weight(texts, embs, ys)
    text_clf = make_text_classifier().fit(texts, ys)
    emb_clf = LogisticRegression(C=4.0, max_iter=300).fit(embs, ys)
    return _Fitted(labels, len(ys), text_clf, emb_clf, weight)


def _blend_weight(texts: list[str], embs: np.ndarray, ys: list[str], default: float = 0.4) -> float:
    """Chooses the lexical share on a held-out quarter: TF-IDF helps on some label sets and hurts on others."""
    from collections import Counter

    if len(ys) < 40 or min(Counter(ys).values()) < 4:
        return default
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ys))
    tr, te = train_test_split(idx, test_size=0.25, random_state=0, stratify=ys)
    y_tr, y_te = [ys[i] for i in tr], [ys[i] for i in te]
    text_clf = make_text_classifier().fit([texts[i] for i in tr], y_tr)
    emb_clf = LogisticRegression(C=4.0, max_iter=300).fit(embs[tr], y_tr)
    p_text, p_emb = text_clf.predict_proba([texts[i] for i in te]), emb_clf.predict_proba(embs[te])
    classes = np.array(emb_clf.classes_)

    def score(w: float) -> float:
        pred = classes[np.argmax(w * p_text + (1 - w) * p_emb, axis=1)]
        return float(f1_score(y_te, pred, average="macro", zero_division=0))

    return max((0.0, 0.2, 0.4, 0.6, 0.8), key=lambda w: (score(w), -abs(w - default)))


def make_text_classifier() -> Any:
    """The lexical half: TF-IDF over word 1-2grams and char 2-5grams, then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
    return make_pipeline(make_union(words, chars), LogisticRegression(C=10.0, max_iter=300))


def _predict_fitted(fitted: _Fitted, text: str, emb: np.ndarray) -> dict[str, float]:
    if fitted.text_clf is None or fitted.emb_clf is None:
        return {fitted.labels[0]: 1.0} if fitted.labels else {}
    p_text = fitted.text_clf.predict_proba([text])[0]
    p_emb = fitted.emb_clf.predict_proba(emb.reshape(1, -1))[0]
    classes = list(fitted.emb_clf.classes_)
    avg = fitted.text_weight * p_text + (1 - fitted.text_weight) * p_emb
    return dict(zip(classes, avg.tolist(), strict=True))


# --- impact -------------------------------------------------------------------------------------------

_URGENT = re.compile(
    r"\b(blocked|blocker|blocking|can'?t|cannot|unable|urgent|asap|down|outage|losing|lost|critical|"
    r"broken|churn|cancel\w*|escalat\w*|deadline|all (?:our|of our) users|production|data loss)\b",
    re.IGNORECASE,
)
_HIGH_TIERS = {"enterprise", "strategic", "tier 1", "tier1", "key", "vip", "platinum"}
_LOW_TIERS = {"free", "trial", "starter", "self-serve", "self serve"}


def suggest_impact(type_name: str, text: str, tier: str | None) -> str:
    """High / Medium / Low from type, account tier and urgency words; a starting point for staff."""
    score = {"bug": 2, "content/data issue": 2, "ux issue": 1, "feature request": 1}.get(type_name.casefold(), 0)
    score += min(2, len(_URGENT.findall(text)))
    t = (tier or "").strip().casefold()
    score += 1 if t in _HIGH_TIERS else -1 if t in _LOW_TIERS else 0
    return "High" if score >= 4 else "Medium" if score >= 2 else "Low"


# --- feedback vs chatter ------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]{2,}")


def chatter_model(encode: Encode | None) -> LabelModel:
    """A LabelModel with labels feedback/chatter, seeded by prototypes for thanks, greetings, scheduling."""
    return LabelModel(CHATTER_SPECS, encode, temperature=0.05, prior_weight=40.0)


def feedback_score(model: LabelModel, text: str, emb: np.ndarray) -> float:
    """Probability in [0, 1] that a message is product feedback rather than chatter."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text))
    if not words:
        return 0.0
    _, _, probs = model.predict(text, emb)
    p = float(probs.get("feedback", 0.0))
    if len(words) <= 2:
        p *= 0.3
    elif len(words) <= 4:
        p *= 0.8
    return float(min(1.0, max(0.0, p)))


# --- similar items ------------------------------------------------------------------------------------


class SimilarIndex:
    """Exact cosine search over an in-memory matrix of unit vectors, grown by capacity doubling."""

    def __init__(self, dim: int = 384, capacity: int = 1024) -> None:
        self.dim = dim
        self._mat = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._ids = np.zeros(max(1, capacity), dtype=np.int64)
        self._row: dict[int, int] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def add(self, item_id: int, vec: np.ndarray) -> None:
        """Insert or replace one vector (normalised on the way in)."""
        v = _unit(np.asarray(vec, dtype=np.float32).reshape(self.dim))
        with self._lock:
            row = self._row.get(item_id)
            if row is None:
                row = len(self._row)
                if row == len(self._mat):
                    self._grow()
                self._row[item_id] = row
                self._ids[row] = item_id
            self._mat[row] = v

    def _grow(self) -> None:
        cap = len(self._mat) * 2
        mat = np.zeros((cap, self.dim), dtype=np.float32)
        mat[: len(self._mat)] = self._mat
        ids = np.zeros(cap, dtype=np.int64)
        ids[: len(self._ids)] = self._ids
        self._mat, self._ids = mat, ids

    def remove(self, item_id: int) -> bool:
        """Drop an item by moving the last row into its slot."""
        with self._lock:
            row = self._row.pop(item_id, None)
            if row is None:
                return False
            last = len(self._row)
            if row != last:
                moved = int(self._ids[last])
                self._mat[row] = self._mat[last]
                self._ids[row] = moved
                self._row[moved] = row
            return True

    def search(self, vec: np.ndarray, k: int = 5, exclude: set[int] | None = None) -> list[tuple[int, float]]:
        """Top-k (item_id, cosine) by descending score, skipping ids in `exclude`."""
        exclude = exclude or set()
        q = _unit(np.asarray(vec, dtype=np.float32).reshape(self.dim))
        with self._lock:
            n = len(self._row)
            if n == 0 or k <= 0:
                return []
            scores = self._mat[:n] @ q
            want = min(n, k + len(exclude))
            top = np.argpartition(scores, n - want)[n - want :] if want < n else np.arange(n)
            top = top[np.argsort(-scores[top], kind="stable")]
            ids = self._ids[top]
        hits = [(int(i), float(scores[j])) for i, j in zip(ids, top, strict=True) if int(i) not in exclude]
        return hits[:k]


def duplicates(hits: list[tuple[int, float]], threshold: float = 0.9) -> list[int]:
    """Ids whose similarity is at or above the duplicate threshold."""
    return [i for i, s in hits if s >= threshold]


# --- facade -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimilarHit:
    feedback_id: int
    score: float
    duplicate: bool


@dataclass(frozen=True)
class Suggestion:
    type: str
    type_confidence: float
    theme: str | None
    theme_confidence: float
    impact: str
    feedback_score: float
    similar: list[SimilarHit]
    embedding: np.ndarray


class Suggester:
    """Embedder + type, theme and chatter models + similar-item index behind one `suggest` call."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        types: list[LabelSpec] | None = None,
        themes: list[LabelSpec] | None = None,
        duplicate_threshold: float = 0.9,
        theme_min_confidence: float = 0.3,
        similar_k: int = 5,
    ) -> None:
        self.embedder = embedder or Embedder()
        enc = self.embedder.encode
        self.types = LabelModel(types or DEFAULT_TYPES, enc)
        self.themes = LabelModel(themes or DEFAULT_THEMES, enc)
        self.chatter = chatter_model(enc)
        self.index = SimilarIndex(self.embedder.dim)
        self.duplicate_threshold = duplicate_threshold
        self.theme_min_confidence = theme_min_confidence
        self.similar_k = similar_k

    def warm(self) -> None:
        """Load the model and embed every prototype, so the first suggestion is fast."""
        for model in (self.types, self.themes, self.chatter):
            model.prior_probs(self.embedder.encode(["warm up"])[0])

    def suggest(
        self, text: str, emb: np.ndarray | None = None, *, exclude_id: int | None = None, tier: str | None = None
    ) -> Suggestion:
        """Suggest type, theme, impact, feedback score and similar items for one message."""
        vec = self.embedder.encode([text])[0] if emb is None else np.asarray(emb, dtype=np.float32)
        type_name, type_conf, _ = self.types.predict(text, vec)
        theme, theme_conf, _ = self.themes.predict(text, vec)
        exclude = {exclude_id} if exclude_id is not None else set()
        hits = self.index.search(vec, self.similar_k, exclude)
        for model in (self.types, self.themes):
            model.observe(vec)
        return Suggestion(
            type=type_name,
            type_confidence=type_conf,
            theme=theme if theme_conf >= self.theme_min_confidence else None,
            theme_confidence=theme_conf,
            impact=suggest_impact(type_name, text, tier),
            feedback_score=feedback_score(self.chatter, text, vec),
            similar=[SimilarHit(i, s, s >= self.duplicate_threshold) for i, s in hits],
            embedding=vec,
        )
