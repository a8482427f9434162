"""Suggest type, theme, impact and similar items for a piece of feedback; learn from staff corrections.

Pure logic over embeddings (see bot/embedder.py); storage and Slack are wired by the caller.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from bot.suggest.embedder import Embedder, ModelUnavailable
from bot.suggest.labels import Encode, LabelModel
from bot.suggest.similar import SimilarIndex, duplicates
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
    "duplicates",
    "feedback_score",
    "suggest_impact",
]

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


def feedback_score(model: LabelModel, text: str, emb: np.ndarray, part: np.ndarray | None = None) -> float:
    """Probability in [0, 1] that a message is product feedback rather than chatter."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text))
    if not words:
        return 0.0
    _, _, probs = model.predict(text, emb, part)
    p = float(probs.get("feedback", 0.0))
    if len(words) <= 2:
        p *= 0.3
    elif len(words) <= 4:
        p *= 0.8
    return float(min(1.0, max(0.0, p)))


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
    type_unsure: bool = False  # the top two types are too close to call
    examples: list[tuple[int, float]] = field(default_factory=list)  # nearest labelled items of the type


UNSURE_MARGIN = 0.15  # top-two gap below which a card says "not sure" instead of a percentage


def unsure(probs: dict[str, float], margin: float = UNSURE_MARGIN) -> bool:
    """Whether the two most probable labels are within `margin` of each other."""
    top = sorted(probs.values(), reverse=True)
    return len(top) > 1 and top[0] - top[1] < margin


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
        models = (self.types, self.themes, self.chatter)
        part = self.types.parts_of([text], vec[None])[0] if any(m.needs_parts for m in models) else None
        type_name, type_conf, type_probs = self.types.predict(text, vec, part)
        theme, theme_conf, _ = self.themes.predict(text, vec, part)
        exclude = {exclude_id} if exclude_id is not None else set()
        hits = self.index.search(vec, self.similar_k, exclude)
        near = self.types.nearest(vec, type_name, 3)
        examples = [(k, s) for k, s in near if isinstance(k, int) and k != exclude_id][:2]
        for model in (self.types, self.themes):
            model.observe(vec)
        return Suggestion(
            type=type_name,
            type_confidence=type_conf,
            theme=theme if theme_conf >= self.theme_min_confidence else None,
            theme_confidence=theme_conf,
            impact=suggest_impact(type_name, text, tier),
            feedback_score=feedback_score(self.chatter, text, vec, part),
            similar=[SimilarHit(i, s, s >= self.duplicate_threshold) for i, s in hits],
            embedding=vec,
            type_unsure=unsure(type_probs),
            examples=examples,
        )
