"""The import direction from DESIGN.md: app -> handlers -> bot -> storage, and nothing back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Top-level package names a module imports (absolute imports only; the project uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_storage_imports_nothing_of_ours() -> None:
    for path in modules("storage"):
        assert not {m for m in imports(path) if m.split(".")[0] in {"bot", "handlers", "app"}}, path


def test_bot_never_imports_bolt_or_handlers() -> None:
    for path in modules("bot"):
        bad = {m for m in imports(path) if m.split(".")[0] in {"slack_bolt", "handlers", "app"}}
        assert not bad, f"{path.name} imports {bad}"


def test_blocks_depends_only_on_domain() -> None:
    ours = {
        m for m in imports(ROOT / "bot" / "triage" / "blocks.py") if m.split(".")[0] in {"bot", "storage", "handlers"}
    }
    assert ours == {"bot.domain"}


def test_handlers_hold_no_sql_and_no_block_kit_literals() -> None:
    for path in modules("handlers"):
        text = path.read_text()
        assert not {m for m in imports(path) if m.split(".")[0] in {"storage", "sqlalchemy"}}, path
        assert '"type": "section"' not in text and '"type": "actions"' not in text, path
