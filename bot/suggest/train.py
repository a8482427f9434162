"""`feedbackbot train`: fine-tune the bundled MiniLM on the team's labels within a time budget, keep it only
if it beats the current encoder on held-out labels, export it to ONNX beside the base model with a checksum."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.suggest.embedder import Embedder, default_cache_dir, default_model_dir, sha256_file
from bot.suggest.labels import LabelModel

log = logging.getLogger(__name__)
MAX_LEN = 64


@dataclass(frozen=True)
class Tuned:
    """An exported encoder and how it did against the one it would replace."""

    path: Path
    sha256: str
    base_f1: float
    tuned_f1: float
    steps: int
    seconds: float

    @property
    def better(self) -> bool:
        """Measurably better: at least half a point of macro-F1 on the held-out labels."""
        return self.tuned_f1 >= self.base_f1 + 0.005


def _model(n_classes: list[int]) -> Any:
    """The bundled MiniLM, mean-pooled, with one linear head per label set (types, themes)."""
    import torch
    from transformers import AutoModel

    class Tunable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = AutoModel.from_pretrained(str(default_model_dir()))
            self.heads = torch.nn.ModuleList([torch.nn.Linear(self.hf.config.hidden_size, n) for n in n_classes])

        def forward(self, ids: Any, mask: Any) -> list[Any]:
            hidden = self.hf(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
            return [head(pooled * 20.0) for head in self.heads]  # unit vectors: scale so logits can be sharp

    return Tunable()


def finetune(
    texts: list[str],
    tasks: Sequence[Sequence[str | None]],
    *,
    minutes: float,
    epochs: int = 3,
    threads: int = 1,
    progress: bool = True,
) -> tuple[Path, int, float]:
    """Plain cross-entropy on every label set at once, stopping at `epochs` or the time budget; returns the
    saved Hugging Face directory, steps taken and seconds spent."""
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer

    torch.set_num_threads(threads)  # a shared 2-core host: one thread unless told otherwise
    tok = AutoTokenizer.from_pretrained(str(default_model_dir()))
    tasks = [t for t in tasks if any(t)]  # e.g. no themes confirmed yet: no head for them
    names = [sorted({y for y in task if y}) for task in tasks]
    targets = torch.tensor([[n.index(y) if y else -100 for y in task] for task, n in zip(tasks, names, strict=True)])
    model = _model([len(n) for n in names]).train()
    opt = torch.optim.AdamW(
        [{"params": model.hf.parameters(), "lr": 3e-5}, {"params": model.heads.parameters(), "lr": 1e-3}]
    )
    rng = np.random.default_rng(0)
    started, steps, batch = time.perf_counter(), 0, 16
    with tqdm(total=epochs * -(-len(texts) // batch), unit="step", disable=not progress, desc="fine-tuning") as bar:
        for _ in range(epochs):
            order = rng.permutation(len(texts))
            for i in range(0, len(order), batch):
                if time.perf_counter() - started > minutes * 60:
                    break
                idx = order[i : i + batch]
                _step(model, opt, tok, [texts[j] for j in idx], targets[:, idx])
                steps += 1
                bar.update(1)
    out = Path(tempfile.mkdtemp(prefix="feedbackbot-tuned-"))
    model.hf.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out, steps, time.perf_counter() - started


def _step(model: Any, opt: Any, tok: Any, texts: list[str], targets: Any) -> None:
    """One optimiser step of summed cross-entropy over the label sets this batch has labels for."""
    import torch

    enc = tok(texts, truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
    outs = model(enc["input_ids"], enc["attention_mask"])
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    losses = [loss_fn(o, targets[t]) for t, o in enumerate(outs) if (targets[t] >= 0).any()]
    if not losses:
        return
    opt.zero_grad()
    torch.stack(losses).sum().backward()
    opt.step()


def export(tuned_dir: Path, cache_dir: Path | None = None) -> tuple[Path, str]:
    """ONNX export of the tuned encoder beside the base model's cache, named and checked by its hash."""
    from bot.suggest.embedder import _export

    folder = cache_dir or default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"tuned-{int(time.time())}.onnx"
    _export(tuned_dir, tmp, False)
    digest = sha256_file(tmp)
    path = folder / f"minilm-tuned-{digest[:16]}-fp32.onnx"
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps({"sha256": digest, "tuned": True}))
    return path, digest


def heldout_f1(embedder: Embedder, train: tuple[list[str], list[str]], test: tuple[list[str], list[str]]) -> float:
    """Macro-F1 of the shipped learned model on held-out labels, with `embedder` as the encoder."""
    from sklearn.metrics import f1_score

    model = LabelModel(None, embedder.encode)
    for text, vec, y in zip(train[0], embedder.encode(train[0]), train[1], strict=True):
        model.add_example(text, vec, y)
    model.refit()
    probs = model.predict_many(test[0], embedder.encode(test[0]))
    pred = [max(p, key=lambda y: p[y]) for p in probs]
    return float(f1_score(test[1], pred, average="macro", zero_division=0))


def split(texts: list[str], labels: list[str], share: float = 0.2) -> tuple[list[int], list[int]]:
    """Stratified train / held-out indices (fixed seed, so a rerun validates on the same items)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(texts))
    strat = labels if min(labels.count(y) for y in set(labels)) >= 2 else None
    tr, te = train_test_split(idx, test_size=share, random_state=0, stratify=strat)
    return [int(i) for i in tr], [int(i) for i in te]


def train(
    texts: list[str],
    tasks: Sequence[Sequence[str | None]],
    *,
    minutes: float,
    base: Embedder,
    threads: int = 1,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> Tuned:
    """Fine-tune on 80% of the items labelled in the first task, export, and score base vs tuned on the rest."""
    keep = [i for i, y in enumerate(tasks[0]) if y]
    if len({tasks[0][i] for i in keep}) < 2 or len(keep) < 10:
        raise ValueError("fine-tuning needs at least 10 labelled items in at least 2 classes")
    labels = [str(tasks[0][i]) for i in keep]
    tr, te = split([texts[i] for i in keep], labels)
    rows = [keep[i] for i in tr]
    tuned_dir, steps, seconds = finetune(
        [texts[i] for i in rows],
        [[task[i] for i in rows] for task in tasks],
        minutes=minutes,
        threads=threads,
        progress=progress,
    )
    path, digest = export(tuned_dir, cache_dir)
    tuned = Embedder(onnx_file=path, onnx_sha256=digest, num_threads=1)
    train_rows = ([texts[keep[i]] for i in tr], [labels[i] for i in tr])
    test_rows = ([texts[keep[i]] for i in te], [labels[i] for i in te])
    return Tuned(
        path, digest, heldout_f1(base, train_rows, test_rows), heldout_f1(tuned, train_rows, test_rows), steps, seconds
    )
