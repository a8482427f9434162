"""The learned half without the model: cleaning, the title split, calibration error and the stacker."""

from __future__ import annotations

import numpy as np

from bot.suggest.classify import unsure
from bot.suggest.fused import Batch, ece, fit_learned
from bot.suggest.textprep import clean, parts, split_title


def test_clean_drops_code_urls_and_quoted_replies() -> None:
    text = 'Crash on save\n```\nTraceback\n  File "x.py"\n```\nsee https://example.com/a?b=1\n> did you restart?\nyes'
    out = clean(text)
    assert "Traceback" not in out and "example.com" not in out and "restart" not in out
    assert out.splitlines()[0] == "Crash on save" and "codeblock" in out and "url" in out and "yes" in out
    assert split_title(out)[0] == "Crash on save" and "yes" in split_title(out)[1]
    assert split_title("just one line") == ("just one line", "just one line")
    assert len(parts("t\n" + "x" * 5000)[1]) <= 320
    assert clean("> only a quote") == "> only a quote"  # nothing left: keep the words rather than nothing


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not() -> None:
    conf = np.array([0.8] * 10)
    assert ece(conf, np.array([1] * 8 + [0] * 2)) < 1e-9
    assert abs(ece(np.array([0.99] * 10), np.array([0] * 10)) - 0.99) < 1e-9
    assert ece(np.array([]), np.array([])) == 0.0


def test_stacked_model_is_calibrated_on_noisy_labels() -> None:
    rng = np.random.default_rng(0)
    words = {"a": "crash error fails broken", "b": "please add option support", "c": "how do i where is"}
    texts, ys = [], []
    for i in range(600):
        y = "abc"[i % 3]
        noisy = "abc"[rng.integers(3)] if rng.random() < 0.3 else y  # 30% of the words lie
        texts.append(" ".join(rng.choice(words[noisy].split(), 3)) + f" item {i}")
        ys.append(y)
    emb = rng.normal(size=(600, 8)).astype(np.float32)
    batch = Batch(texts, emb, np.hstack([emb, emb]))
    prior = np.full((600, 3), 1 / 3)
    tr, te = np.arange(400), np.arange(400, 600)
    learned = fit_learned(batch.take(tr), ys[:400], prior[tr])
    assert learned.calibrated
    probs = learned.predict_proba(batch.take(te), prior[te])
    pred = np.array(learned.labels)[probs.argmax(axis=1)]
    correct = pred == np.array(ys[400:])
    assert 0.6 < correct.mean() < 0.95
    assert ece(probs.max(axis=1), correct) < 0.1


def test_unsure_when_the_top_two_are_close() -> None:
    assert unsure({"Bug": 0.45, "Question": 0.40, "Praise": 0.15})
    assert not unsure({"Bug": 0.7, "Question": 0.2, "Praise": 0.1})
    assert not unsure({"Bug": 1.0})


def test_fast_probabilities_equal_sklearns() -> None:
    from sklearn.linear_model import LogisticRegression

    from bot.suggest.fused import _proba

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5))
    for ys in (rng.integers(0, 2, 60), rng.integers(0, 3, 60)):
        clf = LogisticRegression().fit(x, ys)
        np.testing.assert_allclose(_proba(clf, x), clf.predict_proba(x), atol=1e-9)
