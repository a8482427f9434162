"""The learned half: lexical and embedding features in one linear model, calibrated by a stacker.

Measured on issue reports (issue 14): one linear model over TF-IDF (word, char, title) and the title and
body embeddings beats averaging a lexical and an embedding model's outputs, and a logistic regression on
the base models' out-of-fold log-probabilities (plus the zero-shot prior) gives honest confidences where an
average flattens them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.suggest.textprep import clean, split_title

EPS = 1e-4


@dataclass(frozen=True)
class Batch:
    """What the learned models see for n items: the raw texts, full-text embeddings and title+body ones."""

    texts: list[str]
    emb: np.ndarray  # (n, d)
    parts: np.ndarray  # (n, 2d): title embedding, body embedding

    def take(self, idx: np.ndarray) -> Batch:
        return Batch([self.texts[i] for i in idx], self.emb[idx], self.parts[idx])


class FusedFeatures:
    """Word 1-2grams and char 2-5grams of the cleaned text, word n-grams of the title, and the embeddings."""

    def __init__(self, dense_weight: float = 1.0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
        self.title = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        self.dense_weight = dense_weight

    def fit_transform(self, batch: Batch) -> Any:
        cleaned, titles = _prep(batch.texts)
        self.char.set_params(min_df=2 if len(cleaned) >= 50 else 1)
        blocks = [self.word.fit_transform(cleaned), self.char.fit_transform(cleaned), self.title.fit_transform(titles)]
        return self._stack(blocks, batch)

    def transform(self, batch: Batch) -> Any:
        cleaned, titles = _prep(batch.texts)
        blocks = [tfidf(self.word, cleaned), tfidf(self.char, cleaned), tfidf(self.title, titles)]
        return self._stack(blocks, batch)

    def _stack(self, blocks: list[Any], batch: Batch) -> Any:
        from scipy.sparse import csr_matrix, hstack

        dense = csr_matrix(np.hstack([batch.emb, batch.parts]) * self.dense_weight)
        return hstack([*blocks, dense], format="csr")


def tfidf(vectorizer: Any, docs: list[str]) -> Any:
    """A fitted TfidfVectorizer's transform without sklearn's per-call validation (most of its cost for the one
    text a suggestion scores): counts over the vocabulary, 1 + log(tf), times idf, l2-normalised per row."""
    from scipy.sparse import csr_matrix

    analyze, vocab, idf = vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_
    indptr, indices, data = [0], [], []
    for doc in docs:
        counts = Counter(j for j in map(vocab.get, analyze(doc)) if j is not None)
        cols = np.array(sorted(counts), dtype=np.int64)
        weights = (np.log(np.array([counts[c] for c in cols], dtype=np.float64)) + 1.0) * idf[cols]
        norm = float(np.sqrt((weights * weights).sum())) or 1.0
        indices.extend(cols.tolist())
        data.extend((weights / norm).tolist())
        indptr.append(len(indices))
    return csr_matrix((data, indices, indptr), shape=(len(docs), len(idf)))


def _prep(texts: list[str]) -> tuple[list[str], list[str]]:
    cleaned = [clean(t) for t in texts]
    return cleaned, [split_title(c)[0] for c in cleaned]


class FusedModel:
    """One logistic regression over the fused features."""

    def __init__(self, c: float = 10.0) -> None:
        from sklearn.linear_model import LogisticRegression

        self.features = FusedFeatures()
        self.clf = LogisticRegression(C=c, max_iter=300, tol=1e-3)

    def fit(self, batch: Batch, ys: list[str]) -> FusedModel:
        self.clf.fit(self.features.fit_transform(batch), ys)
        return self

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.clf.classes_]

    def predict_proba(self, batch: Batch) -> np.ndarray:
        return _proba(self.clf, self.features.transform(batch))


class EmbeddingModel:
    """Logistic regression on the full, title and body embeddings: a second view for the stacker."""

    def __init__(self, c: float = 4.0) -> None:
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression(C=c, max_iter=300, tol=1e-3)

    def fit(self, batch: Batch, ys: list[str]) -> EmbeddingModel:
        self.clf.fit(np.hstack([batch.emb, batch.parts]), ys)
        return self

    def predict_proba(self, batch: Batch) -> np.ndarray:
        return _proba(self.clf, np.hstack([batch.emb, batch.parts]))


def _proba(clf: Any, x: Any) -> np.ndarray:
    """A fitted logistic regression's probabilities without sklearn's per-call input checks (a third of a
    single suggestion's time); the same numbers as `predict_proba`."""
    z = np.asarray(x @ clf.coef_.T) + clf.intercept_
    if z.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-z))
        return np.hstack([1.0 - p, p])
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class Learned:
    """A fitted fused model and, when there were enough labels to cross-validate, its stacker."""

    labels: list[str]
    fused: FusedModel
    emb: EmbeddingModel | None = None
    stacker: Pool | None = None

    @property
    def calibrated(self) -> bool:
        """A stacked model's probabilities already weigh the prior; an unstacked one needs blending."""
        return self.stacker is not None

    def predict_proba(self, batch: Batch, prior: np.ndarray) -> np.ndarray:
        """(n, k) probabilities over `labels`; `prior` is (n, k) zero-shot probabilities in the same order."""
        p_fused = self.fused.predict_proba(batch)
        if self.stacker is None or self.emb is None:
            return p_fused
        z = _stack_inputs(p_fused, self.emb.predict_proba(batch), prior)
        return np.asarray(self.stacker.predict_proba(z))


def _stack_inputs(p_fused: np.ndarray, p_emb: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """(models, n, k) log-probabilities."""
    return np.stack([np.log(np.clip(p, EPS, 1.0)) for p in (p_fused, p_emb, prior)])


class Pool:
    """The stacker: a logistic regression on the base models' log-probabilities with one weight per model
    and one bias per class (log-linear pooling). A full stacker (a weight per model, class and input
    class) overfit at a few hundred labels; this one has few parameters and still calibrates."""

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = l2
        self.w = np.zeros(0)
        self.b = np.zeros(0)

    def fit(self, logp: np.ndarray, y: np.ndarray) -> Pool:
        """`logp` is (models, n, k); `y` the class index of each row."""
        from scipy.optimize import minimize

        m, n, k = logp.shape

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:m], theta[m:]
            z = np.tensordot(w, logp, 1) + b
            z -= z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=1))
            p = np.exp(z - lse[:, None])
            g = p.copy()
            g[np.arange(n), y] -= 1.0
            g /= n
            nll = float((lse - z[np.arange(n), y]).mean() + self.l2 * b @ b)
            return nll, np.concatenate([np.einsum("mnk,nk->m", logp, g), g.sum(axis=0) + 2 * self.l2 * b])

        start = np.concatenate([np.full(m, 1.0 / m), np.zeros(k)])
        theta = minimize(loss, start, jac=True, method="L-BFGS-B").x
        self.w, self.b = theta[:m], theta[m:]
        return self

    def predict_proba(self, logp: np.ndarray) -> np.ndarray:
        z = np.tensordot(self.w, logp, 1) + self.b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def fit_learned(batch: Batch, ys: list[str], prior: np.ndarray, *, folds: int = 3) -> Learned:
    """Fit the fused model on every label; with at least `folds` labels a class, also the embedding model
    and a stacker trained on out-of-fold probabilities (so it sees the base models' honest mistakes)."""
    fused = FusedModel().fit(batch, ys)
    labels = fused.classes
    counts = Counter(ys)
    if len(labels) < 2 or min(counts.values()) < 3 or len(ys) < 30:
        return Learned(labels, fused)
    oof = _out_of_fold(batch, ys, labels, min(folds, min(counts.values())))
    stacker = Pool().fit(_stack_inputs(*oof, prior), np.array([labels.index(y) for y in ys]))
    return Learned(labels, fused, EmbeddingModel().fit(batch, ys), stacker)


def _out_of_fold(batch: Batch, ys: list[str], labels: list[str], folds: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    p_fused = np.zeros((len(ys), len(labels)))
    p_emb = np.zeros((len(ys), len(labels)))
    y = np.array(ys)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(np.zeros(len(ys)), y):
        part_tr, part_te = batch.take(tr), batch.take(te)
        p_fused[te] = FusedModel().fit(part_tr, list(y[tr])).predict_proba(part_te)
        p_emb[te] = EmbeddingModel().fit(part_tr, list(y[tr])).predict_proba(part_te)
    return p_fused, p_emb


def ece(confidences: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Top-label expected calibration error: the confidence-weighted gap between how sure and how right."""
    confidences, correct = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    if len(confidences) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidences, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(confidences[mask].mean() - correct[mask].mean())
    return float(total)
