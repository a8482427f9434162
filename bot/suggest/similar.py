"""Exact similar-item search over the stored embeddings, kept in memory and updated incrementally."""

from __future__ import annotations

import threading

import numpy as np


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


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
