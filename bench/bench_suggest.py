"""Print embedding / suggestion / similar-search numbers against their targets (2-core box).

Usage: python bench/bench_suggest.py [--backend auto|onnx|onnx-int8|torch] [--skip-cosine]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _line(name: str, value: str, target: str, ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  OK" if ok else "  MISS")
    print(f"{name:<44} {value:>14}   target {target}{mark}")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _texts() -> list[str]:
    with (ROOT / "examples" / "feedback_sample.csv").open(newline="") as fh:
        return [r["text"] for r in csv.DictReader(fh)]


def _import_cost() -> float:
    code = (
        "import sys, time; t=time.perf_counter(); import bot.suggest.classify, bot.suggest.evaluate; "
        "d=time.perf_counter()-t; "
        "heavy=[m for m in ('torch','onnxruntime','sklearn','sentence_transformers') if m in sys.modules]; "
        "assert not heavy, heavy; print(d)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def _cosine_to_fp32(backend: str, texts: list[str], vecs: np.ndarray) -> None:
    """Compare against torch fp32 in a child process so this process's RSS stays honest."""
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); from bot.embedder import Embedder; "
        "import csv; t=[r['text'] for r in csv.DictReader(open(sys.argv[2]))]; "
        "np.save(sys.argv[3], Embedder(backend='torch').encode(t))"
    )
    ref_path = Path("/tmp") / f"bench_fp32_{time.time_ns()}.npy"
    sample = ROOT / "examples" / "feedback_sample.csv"
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(sample), str(ref_path)], check=True)
    ref = np.load(ref_path)
    ref_path.unlink()
    cos = (ref * vecs).sum(axis=1)
    _line(
        f"mean cosine {backend} vs torch fp32 (min)",
        f"{cos.mean():.4f} ({cos.min():.3f})",
        ">= 0.99",
        bool(cos.mean() >= 0.99),
    )


def _suggest_ms(suggester: Any, texts: list[str]) -> tuple[float, float]:
    """p50 and p95 of one suggest() call, after 20 warm-up calls."""
    for t in texts[:20]:
        suggester.suggest(t)
    times = []
    for t in texts[20:220]:
        s0 = time.perf_counter()
        suggester.suggest(t)
        times.append((time.perf_counter() - s0) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    return float(p50), float(p95)


def _trained(suggester: Any, texts: list[str]) -> None:
    """The same after learning from bench/data/issues.csv (fused features + stacker, title/body embeddings)."""

    with (Path(__file__).parent / "data" / "issues.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    vecs = suggester.embedder.encode([r["text"] for r in rows])
    for i, (r, v) in enumerate(zip(rows, vecs, strict=True)):
        suggester.types.add_example(r["text"], v, r["label"], key=i)
    t0 = time.perf_counter()
    suggester.types.refit()
    _line(
        f"refit on {len(rows)} labels (background)", f"{time.perf_counter() - t0:.2f} s", "off the request path", None
    )
    p50, p95 = _suggest_ms(suggester, texts)
    _line("after training: suggest() p50 / p95", f"{p50:.1f} / {p95:.1f} ms", "p95 <= 10 ms", p95 <= 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--skip-cosine", action="store_true")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    _line("import bot.classify + bot.evaluate", f"{_import_cost() * 1e3:.0f} ms", "cheap: no torch/ort/sklearn", True)
    from bot.suggest.classify import SimilarIndex, Suggester
    from bot.suggest.embedder import Embedder

    emb = Embedder(backend=args.backend)
    t0 = time.perf_counter()
    emb.load()
    _line(f"model load (backend={emb.backend})", f"{time.perf_counter() - t0:.2f} s", "off the ack path", None)

    texts = _texts()
    base = texts * (1024 // len(texts) + 1)
    sents = base[:1024]
    emb.encode(sents[:64])
    t0 = time.perf_counter()
    emb.encode(sents)
    rate = len(sents) / (time.perf_counter() - t0)
    _line("batched sentences/s (1024 sample sentences)", f"{rate:.0f}", ">= 400", rate >= 400)

    suggester = Suggester(emb)
    suggester.warm()
    p50, p95 = _suggest_ms(suggester, texts)
    _line("single suggest() p50 / p95 (embed+classify)", f"{p50:.1f} / {p95:.1f} ms", "p95 <= 10 ms", p95 <= 10)
    _trained(suggester, texts)

    if emb.backend != "onnx" and not args.skip_cosine:
        _cosine_to_fp32(emb.backend or "?", texts, emb.encode(texts))
    elif emb.backend == "onnx":
        print(f"{'mean cosine to fp32':<44} {'n/a':>14}   (onnx backend is fp32; run --backend onnx-int8)")

    rng = np.random.default_rng(0)
    index = SimilarIndex(384)
    data = rng.normal(size=(100_000, 384)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    t0 = time.perf_counter()
    for i, v in enumerate(data):
        index.add(i, v)
    add_s = time.perf_counter() - t0
    _line("index 100,000 incremental adds", f"{add_s:.2f} s", "amortised O(1)", None)
    qs = rng.normal(size=(200, 384)).astype(np.float32)
    index.search(qs[0], 5)
    times = []
    for q in qs:
        s0 = time.perf_counter()
        index.search(q, 5, exclude={1, 2})
        times.append((time.perf_counter() - s0) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    _line("similar search over 100,000 p50 / p95", f"{p50:.1f} / {p95:.1f} ms", "p95 <= 10 ms", p95 <= 10)
    rss = _rss_mb()
    _line("process RSS after warm-up (incl. 150 MB index)", f"{rss:.0f} MB", "< 600 MB", rss < 600)


if __name__ == "__main__":
    main()
