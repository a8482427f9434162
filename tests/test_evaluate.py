"""`feedbackbot eval` report: format of the last line, training mode, input errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bot.suggest.embedder import Embedder
from bot.suggest.evaluate import EvaluationError, evaluate

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feedback_sample.csv"
LAST = re.compile(r"^macro-F1 \d\.\d{3}$")


@pytest.fixture(scope="session")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    with SAMPLE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = tmp_path_factory.mktemp("eval")
    paths = out / "train.csv", out / "test.csv"
    for path, part in zip(paths, (rows[::2], rows[1::2]), strict=True):
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["text", "label", "theme"])
            writer.writeheader()
            writer.writerows(part)
    return paths


@pytest.mark.slow
def test_zero_shot_report(embedder: Embedder, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text(SAMPLE.read_text() + "Where is the door?,Nonsense,Reporting\n")
    report = evaluate(data, embedder=embedder)
    print(report)
    assert LAST.match(report.splitlines()[-1])
    assert "Skipped 1 rows" in report and "Nonsense" in report and "Feature request" in report


@pytest.mark.slow
def test_trained_report_with_baselines(embedder: Embedder, split: tuple[Path, Path]) -> None:
    train, test = split
    report = evaluate(test, train_path=train, embedder=embedder)
    print(report)
    assert LAST.match(report.splitlines()[-1])
    ece = re.fullmatch(r"ECE (0\.\d{3})", report.splitlines()[-2])
    assert ece is not None and float(ece.group(1)) < 0.2
    assert "TF-IDF baseline" in report and "embedding baseline" in report and "linear SVM" in report
    assert re.search(r"TF-IDF baseline macro-F1 0\.\d{3} · ECE 0\.\d{3} · [\d.]+ ms/item", report)
    assert "time per item" in report


@pytest.mark.slow
def test_trained_with_own_label_set(embedder: Embedder, split: tuple[Path, Path]) -> None:
    train, test = split
    report = evaluate(test, train_path=train, label_column="theme", embedder=embedder)
    assert LAST.match(report.splitlines()[-1]) and "Permissions" in report


def test_bad_column_missing_file_empty_csv(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="no column 'kind'"):
        evaluate(SAMPLE, label_column="kind")
    with pytest.raises(EvaluationError, match="File not found"):
        evaluate(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EvaluationError, match="empty"):
        evaluate(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    with pytest.raises(EvaluationError, match="no rows"):
        evaluate(header_only)


def test_zero_shot_predicts_only_the_labels_the_file_uses(tmp_path: Path, embedder: Embedder) -> None:
    """A bug/feature/question data set (GitHub-style labels, any case) is scored on those three labels only."""
    rows = [
        ("App crashes when clicking save", "bug"),
        ("Add support for dark mode", "enhancement"),
        ("How do I configure the proxy?", "question"),
        ("Null pointer exception on startup", "BUG"),
        ("Would be great to export to PDF", "Feature"),
        ("Where is the API key setting?", "Question"),
        ("Duplicate of an older ticket", "wontfix"),
    ]
    path = tmp_path / "gh.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["title", "labels"])
        writer.writerows(rows)
    report = evaluate(path, text_column="title", label_column="labels", embedder=embedder)
    assert "restricted to the task's 3 labels: Bug, Feature request, Question" in report
    assert "Skipped 1 rows" in report and "wontfix" in report
    assert "Praise" not in report.split("== shipped model")[1]
    assert LAST.match(report.splitlines()[-1])
