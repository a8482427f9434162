"""Suggestions wired to storage: warm the model off the start-up path, remember embeddings, learn from triage."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import SimilarItem, Status, Suggested
from bot.settings import Settings, ThemeSetting
from bot.suggest.classify import DEFAULT_THEMES, DEFAULT_TYPES, LabelModel, LabelSpec, Suggester, Suggestion
from bot.suggest.embedder import Embedder
from storage import model_versions, queries
from storage.db import session_scope, utcnow
from storage.models import Feedback

log = logging.getLogger(__name__)


def to_blob(vec: np.ndarray) -> bytes:
    """Normalised float32, stored as raw bytes (384 x 4 = 1536 bytes a row)."""
    return np.asarray(vec, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """Inverse of to_blob."""
    return np.frombuffer(blob, dtype=np.float32)


def type_specs(settings: Settings) -> list[LabelSpec]:
    """Default types with any extra prototype sentences from configuration."""
    extra = {k.lower(): v for k, v in settings.feedback_type_examples.items()}
    return [replace(spec, examples=[*spec.examples, *extra.get(spec.name.lower(), [])]) for spec in DEFAULT_TYPES]


def seed_themes(session: Session, settings: Settings) -> list[LabelSpec]:
    """Configuration (or the defaults) seeds the theme table once; the table is the source of truth after."""
    configured = settings.feedback_themes or [
        ThemeSetting(name=t.name, description=t.description, examples=list(t.examples)) for t in DEFAULT_THEMES
    ]
    for theme in configured:
        queries.ensure_theme(
            session=session, name=theme.name, description=theme.description, examples=list(theme.examples)
        )
    return [LabelSpec(t.name, t.description, list(t.examples), []) for t in queries.themes(session=session)]


class SuggestionService:
    """Owns the Suggester; `state` is warming until the model and the stored items are loaded."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], embedder: Embedder | None = None):
        self.settings = settings
        self.sessions = sessions
        self._own_embedder = embedder is None  # a fine-tuned version replaces only an encoder we built
        self.version_id: int | None = None
        self.embedder = embedder or Embedder(
            backend=settings.feedback_embed_backend,
            num_threads=settings.feedback_embed_threads,
            spinning=settings.feedback_embed_spinning,
        )
        self.suggester: Suggester | None = None
        self.ready = threading.Event()
        self.settled = threading.Event()
        self.error: str | None = None
        self._refit_lock = threading.Lock()
        self._refit_pending = threading.Event()

    @property
    def state(self) -> str:
        """warming | ready | failed."""
        if self.error:
            return "failed"
        return "ready" if self.ready.is_set() else "warming"

    def start(self) -> threading.Thread:
        """Loads in a background thread so neither start-up nor the ack path waits for the model."""
        thread = threading.Thread(target=self._load, name="suggestions-warm", daemon=True)
        thread.start()
        threading.Thread(target=self._watch, name="suggestions-versions", daemon=True).start()
        return thread

    def _watch(self, every: float = 60.0) -> None:
        """Notices a version `feedbackbot train` recorded (possibly from another process) within a minute."""
        self.settled.wait()
        while not self.error:
            time.sleep(every)
            try:
                self.check_version()
            except Exception as exc:  # a closed or unreachable database: try again next time
                log.debug("model version check failed: %s", exc)

    def _load(self) -> None:
        try:
            with session_scope(self.sessions) as session:
                row = model_versions.active_version(session=session)
                if row is not None and self._own_embedder:
                    self.embedder, self.version_id = self._tuned(row.path, row.sha256), row.id
            self.suggester = self._build(self.embedder)
            self._load_history()
            self.ready.set()
            log.info(
                "suggestions ready (%s backend, %d items indexed)", self.embedder.backend, len(self._model().index)
            )
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("suggestions unavailable: %s", self.error)
        finally:
            self.settled.set()

    def _build(self, embedder: Embedder) -> Suggester:
        embedder.load()
        with session_scope(self.sessions) as session:
            themes = seed_themes(session, self.settings)
        suggester = Suggester(
            embedder,
            types=type_specs(self.settings),
            themes=themes,
            duplicate_threshold=self.settings.feedback_duplicate_threshold,
        )
        suggester.warm()
        return suggester

    def _tuned(self, path: str, sha256: str) -> Embedder:
        s = self.settings
        return Embedder(onnx_file=path, onnx_sha256=sha256, num_threads=s.feedback_embed_threads)

    def check_version(self) -> threading.Thread | None:
        """Swaps in a newly trained encoder on a background thread; suggestions and similar-item search keep
        using the current one until every stored item is re-embedded and the models are refitted."""
        if not self._own_embedder or self.state != "ready":
            return None
        with session_scope(self.sessions) as session:
            row = model_versions.active_version(session=session)
            if row is None or row.id == self.version_id:
                return None
            target = (row.id, row.path, row.sha256)
        thread = threading.Thread(target=self._swap, args=target, name="suggestions-swap", daemon=True)
        thread.start()
        return thread

    def _swap(self, version_id: int, path: str, sha256: str) -> None:
        try:
            suggester = self._build(self._tuned(path, sha256))
            with session_scope(self.sessions) as session:
                items = list(queries.embedded_feedback(session=session))
                vectors = suggester.embedder.encode([fb.text for fb in items])
                for fb, vec in zip(items, vectors, strict=True):
                    fb.embedding = to_blob(vec)
                    self._remember(fb, vec, refit=False, into=suggester)
                for model in (suggester.types, suggester.themes, suggester.chatter):
                    model.refit()
                self.embedder, self.suggester, self.version_id = suggester.embedder, suggester, version_id
            log.info("swapped in fine-tuned encoder version %d (%d items re-embedded)", version_id, len(items))
        except Exception:
            log.exception("could not swap in encoder version %d; keeping the current one", version_id)

    def _load_history(self) -> None:
        """Rebuilds the in-memory index and the learned labels from the database."""
        with session_scope(self.sessions) as session:
            for fb in queries.embedded_feedback(session=session):
                if fb.embedding:  # the query selects only rows with one
                    self._remember(fb, from_blob(fb.embedding), refit=False)
        self.refit()

    def _model(self) -> Suggester:
        """The loaded suggester; callers check `state` first, so None here is a bug worth a clear error."""
        if self.suggester is None:
            raise RuntimeError("the suggestion model is not loaded")
        return self.suggester

    def _remember(self, fb: Feedback, vec: np.ndarray, *, refit: bool, into: Suggester | None = None) -> None:
        target = into or self._model()
        if fb.deleted_at is None and fb.status != Status.NOT_FEEDBACK:
            target.index.add(fb.id, vec)
        for model, label in self._labels(fb, target):
            model.add_example(fb.text, vec, label, key=fb.id)
        if refit:
            self.schedule_refit()

    def _labels(self, fb: Feedback, into: Suggester | None = None) -> list[tuple[LabelModel, str]]:
        """Confirmed type/theme and the feedback-vs-chatter verdict are training labels."""
        s = into or self._model()
        labels: list[tuple[LabelModel, str]] = []
        confirmed_type, confirmed_theme = fb.type, fb.theme
        if confirmed_type:
            labels.append((s.types, confirmed_type))
        if confirmed_theme:
            labels.append((s.themes, confirmed_theme))
        if fb.status == Status.NOT_FEEDBACK:
            labels.append((s.chatter, "chatter"))
        elif confirmed_type or fb.status not in {Status.NEW, Status.MAYBE}:
            labels.append((s.chatter, "feedback"))
        return labels

    def embed(self, texts: list[str]) -> np.ndarray:
        """Batch embedding for backfills."""
        return self.embedder.encode(texts)

    def suggest_for(self, session: Session, fb: Feedback) -> Suggestion:
        """Embeds once (stored with the row), suggests, records the suggestion and indexes the item."""
        suggester = self._model()
        vec = from_blob(fb.embedding) if fb.embedding else self.embedder.encode([fb.text])[0]
        suggestion = suggester.suggest(fb.text, vec, exclude_id=fb.id)
        fb.embedding = to_blob(suggestion.embedding)
        fb.suggested_type, fb.type_confidence = suggestion.type, float(suggestion.type_confidence)
        fb.suggested_theme, fb.theme_confidence = suggestion.theme, float(suggestion.theme_confidence)
        fb.suggested_impact, fb.feedback_score = suggestion.impact, float(suggestion.feedback_score)
        fb.similar = [
            {"id": h.feedback_id, "score": round(float(h.score), 3), "duplicate": bool(h.duplicate)}
            for h in suggestion.similar
            if h.score >= self.settings.feedback_similar_min
        ]
        fb.suggestion_why = {
            "unsure": bool(suggestion.type_unsure),
            "examples": [{"id": i, "score": round(float(score), 3)} for i, score in suggestion.examples],
        }
        fb.suggested_at = utcnow()
        if fb.deleted_at is None:
            suggester.index.add(fb.id, suggestion.embedding)
        return suggestion

    def embed_missing(self, feedback_ids: list[int]) -> int:
        """One model call for many items (the worker batches due cards): read, embed outside any transaction,
        then store only where no embedding appeared meanwhile."""
        if self.state != "ready" or not feedback_ids:
            return 0
        with session_scope(self.sessions) as session:
            todo = {
                fb.id: fb.text
                for i in feedback_ids
                if (fb := queries.feedback_by_id(session=session, feedback_id=i)) and fb.embedding is None and fb.text
            }
        if len(todo) < 2:  # one text gains nothing from a batch; the card embeds it as before
            return 0
        vectors = self.embedder.encode(list(todo.values()))
        with session_scope(self.sessions) as session:
            for feedback_id, vec in zip(todo, vectors, strict=True):
                fb = queries.feedback_by_id(session=session, feedback_id=feedback_id)
                if fb is not None and fb.embedding is None:
                    fb.embedding = to_blob(vec)
        return len(todo)

    def distinct(self, earlier: str, later: str, *, confidence: float = 0.8, similarity: float = 0.5) -> bool:
        """Is `later` clearly a different request from `earlier`: its own type with high confidence, and
        unlike it? False while the model is not ready (a burst then stays one item)."""
        if self.suggester is None:
            return False
        a, b = self.embedder.encode([earlier, later])
        type_a, _conf_a, _ = self.suggester.types.predict(earlier, a)
        type_b, conf_b, _ = self.suggester.types.predict(later, b)
        return type_b != type_a and conf_b >= confidence and float(np.dot(a, b)) < similarity

    def learn(self, fb: Feedback) -> None:
        """Makes the models agree with the row's current decisions (after commit): corrections, undo, dismissals."""
        if self.suggester is None or not fb.embedding:
            return
        vec = from_blob(fb.embedding)
        if fb.status == Status.NOT_FEEDBACK or fb.deleted_at is not None:
            self.suggester.index.remove(fb.id)
        else:
            self.suggester.index.add(fb.id, vec)
        labels = dict((id(model), label) for model, label in self._labels(fb))
        for model in (self.suggester.types, self.suggester.themes, self.suggester.chatter):
            if id(model) in labels:
                model.add_example(fb.text, vec, labels[id(model)], key=fb.id)
            else:
                model.forget(fb.id)
        self.schedule_refit()

    def schedule_refit(self) -> None:
        """Coalesces bursts of corrections into one refit on a background thread."""
        if self._refit_pending.is_set():
            return
        self._refit_pending.set()
        threading.Thread(target=self.refit, name="suggestions-refit", daemon=True).start()

    def refit(self) -> None:
        """Refits every model; predictions keep using the old model until the new one is swapped in."""
        with self._refit_lock:
            self._refit_pending.clear()
            if self.suggester is None:
                return
            for model in (self.suggester.types, self.suggester.themes, self.suggester.chatter):
                model.refit()


def backfill(service: SuggestionService, *, batch: int = 64, progress: bool = True) -> int:
    """Embeds items stored before the model was present, in batches, with a progress bar."""
    from tqdm import tqdm

    with session_scope(service.sessions) as session:
        total = queries.count_unembedded(session=session)
    done = 0
    with tqdm(total=total, unit="item", disable=not progress) as bar:
        while True:
            with session_scope(service.sessions) as session:
                rows = list(queries.unembedded_feedback(session=session, limit=batch))
                if not rows:
                    return done
                for fb, vec in zip(rows, service.embed([r.text for r in rows]), strict=True):
                    fb.embedding = to_blob(vec)
                done += len(rows)
                bar.update(len(rows))


def suggested_view(fb: Feedback, session: Session | None = None) -> Suggested | None:
    """The stored suggestion as a card shows it (None before the model ran); with a session, the labelled
    examples behind the type too."""
    if fb.suggested_type is None:
        return None
    why = fb.suggestion_why or {}
    return Suggested(
        type=fb.suggested_type,
        type_confidence=fb.type_confidence or 0.0,
        theme=fb.suggested_theme,
        theme_confidence=fb.theme_confidence or 0.0,
        impact=fb.suggested_impact or "Low",
        feedback_score=fb.feedback_score if fb.feedback_score is not None else 1.0,
        unsure=bool(why.get("unsure")),
        examples=_resolve(session, why.get("examples") or []) if session is not None else [],
    )


def similar_items(session: Session, fb: Feedback) -> list[SimilarItem]:
    """The stored similar hits, resolved to text and the Linear issue each was routed to."""
    return _resolve(session, fb.similar or [])


def _resolve(session: Session, hits: list[dict[str, Any]]) -> list[SimilarItem]:
    items = []
    for hit in hits:
        other = queries.feedback_by_id(session=session, feedback_id=int(hit["id"]))
        if other is None:
            continue
        link = queries.first_link(session=session, feedback_id=other.id)
        items.append(
            SimilarItem(
                feedback_id=other.id,
                score=float(hit["score"]),
                duplicate=bool(hit.get("duplicate")),
                text=other.text,
                linear=link.identifier if link else None,
                linear_url=link.url if link else None,
                url=other.permalink,
            )
        )
    return items
