"""`feedbackbot train` wired to storage: labels from the database (or a CSV), a model version row when the
tuned encoder wins, and the report the command prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.suggest.embedder import MODEL_SHA256, Embedder
from bot.suggest.evaluate import read_rows
from bot.suggest.train import Tuned, train
from storage import model_versions
from storage.db import session_scope


def labelled(
    sessions: sessionmaker[Session] | None, from_csv: str | None, text_column: str, label_column: str
) -> tuple[list[str], list[list[str | None]]]:
    """Texts and label sets (types, then themes) from the database, or the one label column of a CSV."""
    if from_csv is not None:
        rows = read_rows(from_csv, text_column, label_column)
        return rows.texts, [list(rows.labels)]
    if sessions is None:
        raise ValueError("no database and no --from-csv: nothing to train on")
    with session_scope(sessions) as session:
        found = model_versions.labelled_feedback(session=session)
    return [t for t, _, _ in found], [[y for _, y, _ in found], [th for _, _, th in found]]


def report(result: Tuned) -> list[str]:
    """What the command prints either way: both scores, and whether the tuned encoder is kept."""
    verdict = "kept: it beats" if result.better else "discarded: it does not measurably beat"
    return [
        f"fine-tuned {result.steps} steps in {result.seconds / 60:.1f} min",
        f"held-out macro-F1: current encoder {result.base_f1:.3f}, tuned {result.tuned_f1:.3f}",
        f"tuned encoder {verdict} the current one"
        + (f" ({result.path}, sha256 {result.sha256[:16]}…)" if result.better else ""),
    ]


def run(
    sessions: sessionmaker[Session] | None,
    *,
    minutes: float,
    threads: int = 1,
    from_csv: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[Tuned, list[str]]:
    """Train, validate, and record the winner as the active model version (running bots swap it in)."""
    texts, tasks = labelled(sessions, from_csv, text_column, label_column)
    base = current_embedder(sessions)
    result = train(texts, tasks, minutes=minutes, base=base, threads=threads, progress=progress, cache_dir=cache_dir)
    if result.better and sessions is not None:
        with session_scope(sessions) as session:
            model_versions.add_version(
                session=session,
                path=str(result.path),
                sha256=result.sha256,
                base_sha256=MODEL_SHA256,
                labels=len(texts),
                metrics={"base_f1": result.base_f1, "tuned_f1": result.tuned_f1, "steps": result.steps},
            )
    return result, report(result)


def current_embedder(sessions: sessionmaker[Session] | None, **kwargs: object) -> Embedder:
    """The encoder the bot runs now: the active fine-tuned version, else the bundled base model."""
    if sessions is not None:
        with session_scope(sessions) as session:
            row = model_versions.active_version(session=session)
            if row is not None:
                return Embedder(onnx_file=row.path, onnx_sha256=row.sha256, **kwargs)  # type: ignore[arg-type]
    return Embedder(**kwargs)  # type: ignore[arg-type]


def finetuned(args: Mapping[str, Any]) -> Embedder | None:
    """`eval --finetune`: the same training on the --train file; the tuned encoder if it won."""
    result, lines = run(
        None, minutes=args["minutes"], threads=args["threads"], from_csv=args["train"],
        text_column=args["text_column"], label_column=args["label_column"],
    )  # fmt: skip
    print("\n".join(lines))
    return Embedder(onnx_file=result.path, onnx_sha256=result.sha256) if result.better else None


def command(database_url: str, args: Mapping[str, Any]) -> int:
    """`feedbackbot train`: exit status 2 with a message when there is too little to train on."""
    from storage import migrate
    from storage.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    migrate.upgrade(engine)
    try:
        _, lines = run(
            make_sessionmaker(engine), minutes=args["minutes"], threads=args["threads"], from_csv=args["from_csv"],
            text_column=args["text_column"], label_column=args["label_column"],
        )  # fmt: skip
    except ValueError as exc:
        print(f"feedbackbot train: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def add_commands(sub: Any, ev: argparse.ArgumentParser) -> None:
    """`feedbackbot train` and the fine-tuning flags `eval` shares with it."""
    ev.add_argument("--finetune", action="store_true", help="fine-tune the encoder on --train first")
    tr = sub.add_parser("train", help="fine-tune the encoder on the team's labels; kept only if it wins")
    tr.add_argument("--from-csv", help="train from this labelled CSV instead of the database")
    tr.add_argument("--text-column", default="text")
    tr.add_argument("--label-column", default="label")
    tr.set_defaults(fn=lambda settings, args: command(settings.database_url, vars(args)))
    for p in (ev, tr):
        p.add_argument("--minutes", type=float, default=15.0, help="time budget for fine-tuning")
        p.add_argument("--threads", type=int, default=1, help="torch threads (one on a shared host)")
