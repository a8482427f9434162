"""The module map and import rules of DESIGN.md, and the size limits, checked on the source (no imports run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("app.py", "handlers", "bot", "storage")
KERNEL = {"bot.domain", "bot.settings", "bot.deps", "bot.jobs"}
ADAPTERS = ("bot.slack", "bot.linear")
DOMAINS = ("accounts", "suggest", "capture", "routing", "triage", "loop", "nps", "reports", "home")
# Deliberate exceptions, each with its reason (README "Design notes" says more):
ALLOWED = {
    # App Home shows each item with the card's own controls; one builder serves both.
    ("bot.home.blocks", "bot.triage.blocks"),
    # App Home shows an account's ledger with the report's own section builder.
    ("bot.home.blocks", "bot.reports.blocks"),
}
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 40
SIZE_ALLOWED = {
    # A wire-level fake of ~25 Web API methods plus message history and Socket Mode wiring; splitting it by
    # method family would spread one fake's shared state over several files.
    "bot/console/fake_slack.py",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module of ours a file imports, also under TYPE_CHECKING (a cycle in types is still a cycle)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:  # `from bot.capture import service` imports the module bot.capture.service
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (ROOT / sub.replace(".", "/")).with_suffix(".py").exists() else node.module)
    return {m for m in found if m.split(".")[0] in {"app", "handlers", "bot", "storage"}}


def product_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for package in PRODUCT[1:]:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


MODULES = {module_name(p): p for p in product_files()}


def graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports (names that are not modules, like functions, dropped)."""
    return {name: {m for m in imports(path) if m in MODULES} for name, path in MODULES.items()}


def test_the_module_map_exists() -> None:
    for name in ("bot.slack.gateway", "bot.slack.ids", "bot.slack.kit", "bot.slack.payloads", "bot.linear.client",
                 "bot.linear.webhook", "bot.runtime.outbox", "bot.runtime.worker", "bot.jobs", "bot.deps",
                 "bot.accounts.service", "bot.capture.service", "bot.capture.inbound", "bot.capture.jobs",
                 "bot.routing.service", "bot.triage.service", "bot.triage.inbound", "bot.triage.blocks",
                 "bot.triage.jobs", "bot.home.service", "bot.home.blocks", "bot.console", "handlers.http"):  # fmt: skip
        assert name in MODULES, f"{name} is missing from the module map"


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def _bad(name: str, target: str) -> str | None:
    """Why `name` may not import `target`, or None when the rules allow it."""
    if (name, target) in ALLOWED:
        return None
    if name.startswith("storage") and not target.startswith("storage"):
        return "storage imports nothing of ours"
    if name in {"bot.domain", "bot.settings"}:
        return "the kernel's vocabulary imports nothing of ours"
    if target == "app" or (target.startswith("handlers") and not name.startswith("handlers")):
        return None if name == "app" else "only app.py imports handlers"
    if target.startswith("bot.console") and not name.startswith("bot.console") and name != "app":
        return "nothing outside app.py and tests imports the console"
    if (
        name.startswith(ADAPTERS)
        and target.startswith("bot.")
        and not target.startswith((*ADAPTERS, "bot.domain", "bot.settings"))
    ):
        return "adapters import only the kernel (domain, settings)"
    if name.startswith("bot.runtime") and any(target.startswith(f"bot.{d}") for d in DOMAINS):
        return "runtime never imports a domain (it gets its kinds from bot/jobs.py through app.py)"
    if target.endswith(".inbound") and not name.startswith("handlers"):
        return "inbound.py is imported only by handlers"
    if target.startswith("bot.") and target.split(".")[-1] == "jobs" and target != "bot.jobs":
        return None if name == "bot.jobs" else "a domain's jobs.py is imported only by bot/jobs.py"
    return _domain_rule(name, target)


def _domain_rule(name: str, target: str) -> str | None:
    parts, tparts = name.split("."), target.split(".")
    if name.endswith(".blocks") and target not in {"bot.domain", "bot.slack.kit", "bot.slack.ids"}:
        return "blocks.py imports only the kernel and slack/kit, slack/ids"
    if len(parts) < 3 or parts[1] not in DOMAINS or len(tparts) < 2 or tparts[1] not in DOMAINS:
        return None
    mine, theirs = DOMAINS.index(parts[1]), DOMAINS.index(tparts[1])
    if theirs == mine:
        return None
    if theirs > mine:
        return f"{parts[1]} comes before {tparts[1]} in the domain order"
    return None if tparts[2:] == ["service"] else "a domain imports only earlier domains' service.py"


def test_import_rules() -> None:
    problems = []
    for name, targets in graph().items():
        for target in sorted(targets):
            why = _bad(name, target)
            if why:
                problems.append(f"{name} imports {target}: {why}")
    assert not problems, "\n".join(problems)


def test_bot_never_imports_bolt_or_handlers() -> None:
    for path in sorted((ROOT / "bot").rglob("*.py")):
        bad = {m for m in imports(path) if m.split(".")[0] in {"handlers", "app"}}
        text = path.read_text()
        assert not bad and "slack_bolt" not in text, f"{path.relative_to(ROOT)} reaches into Bolt or handlers"


def test_handlers_hold_no_sql_and_no_block_kit_literals() -> None:
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        text = path.read_text()
        assert "storage" not in {m.split(".")[0] for m in imports(path)} and "sqlalchemy" not in text, path
        assert '"type": "section"' not in text and '"type": "actions"' not in text, path


def test_outbox_kinds_are_registered_only_in_bot_jobs() -> None:
    for path in product_files():
        text = path.read_text()
        if module_name(path) != "bot.jobs":
            registers = re.search(r"\.register\((?!app)|OUTBOX\[|handlers\[", text)
            assert not registers, f"{path.name} registers an outbox kind"


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_files_and_functions_stay_small() -> None:
    offenders = []
    for path in product_files():
        rel = str(path.relative_to(ROOT))
        source = path.read_text()
        if len(source.splitlines()) > MAX_FILE_LINES and rel not in SIZE_ALLOWED:
            offenders.append(f"{rel}: {len(source.splitlines())} lines (limit {MAX_FILE_LINES})")
        for fn in _functions(ast.parse(source)):
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES and f"{rel}:{fn.name}" not in SIZE_ALLOWED:
                offenders.append(f"{rel}:{fn.name}: {length} lines (limit {MAX_FUNCTION_LINES})")
    assert not offenders, "split these (or add them to SIZE_ALLOWED with a reason):\n" + "\n".join(offenders)


def test_the_size_allow_list_has_no_stale_entries() -> None:
    for entry in SIZE_ALLOWED:
        file, _, fn = entry.partition(":")
        source = (ROOT / file).read_text()
        if fn:
            [node] = [n for n in _functions(ast.parse(source)) if n.name == fn]
            assert (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES, f"{entry} is small now"
        else:
            assert len(source.splitlines()) > MAX_FILE_LINES, f"{entry} is small now: drop it from the list"


def test_no_assert_for_runtime_checks_in_product_code() -> None:
    for path in product_files():
        if module_name(path).startswith("bot.console"):
            continue  # the console is a development tool; its fakes assert their own invariants
        found = [n.lineno for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Assert)]
        assert not found, f"{path.relative_to(ROOT)} uses assert at lines {found}: raise a real error"


def test_the_rule_checker_catches_what_it_should() -> None:
    assert _bad("storage.queries", "bot.domain")
    assert _bad("bot.capture.service", "bot.triage.service")
    assert _bad("bot.triage.service", "bot.capture.events")
    assert _bad("bot.triage.jobs", "bot.capture.inbound")
    assert _bad("bot.runtime.worker", "bot.triage.jobs")
    assert _bad("bot.triage.blocks", "storage.models")
    assert _bad("bot.slack.gateway", "bot.deps")
    assert _bad("bot.capture.service", "bot.console.world")
    assert _bad("bot.triage.service", "bot.capture.service") is None
    assert _bad("bot.jobs", "bot.triage.jobs") is None
    assert _bad("handlers.actions", "bot.triage.inbound") is None
