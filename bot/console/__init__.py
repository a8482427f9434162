"""`feedbackbot console`: the real app and database against an in-process Slack, driven by typed commands."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from bot.console.commands import COMMANDS, HELP, USAGE, UsageError
from bot.console.harness import Console
from bot.console.world import CHANNELS, USERS
from bot.settings import Settings

__all__ = ["CHANNELS", "USERS", "Console", "run_console", "run_line"]


def run_line(console: Console, line: str, *, echo: bool = True) -> bool:
    """Runs one command (echoed in scripted transcripts); False means quit. A usage error names the syntax."""
    line = line.strip()
    if not line or line.startswith("#"):
        return True
    if echo:
        console.out.write(f"> {line}\n")
    word, _, rest = line.partition(" ")
    if word in {"quit", "exit"}:
        return False
    handler = COMMANDS.get(word)
    if handler is None or word == "help":
        console.out.write(HELP + "\n")
        return True
    try:
        handler(console, rest)
    except UsageError as exc:
        console.out.write(f"! {exc}\n! usage: {USAGE[word]}\n")
    except (KeyError, ValueError, IndexError) as exc:
        console.out.write(f"! {exc}\n")
    console.settle()
    return True


def _lines(script: str | None) -> Iterator[str]:
    if script:
        yield from Path(script).read_text(encoding="utf-8").splitlines()
        return
    while True:
        try:
            yield input("feedbackbot> ")
        except EOFError:
            return


def run_console(
    settings: Settings,
    create_app: Callable[..., Any],
    *,
    script: str | None,
    database_url: str | None,
    out: TextIO | None = None,
) -> int:
    """Runs a scripted or interactive session; the database defaults to a fresh temp SQLite file."""
    stream = out or sys.stdout
    if database_url is None:
        database_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='feedbackbot-')) / 'console.db'}"
    console = Console(settings.model_copy(update={"database_url": database_url}), create_app, stream)
    stream.write(f"Feedback Loop console (database {database_url}). Type `help`.\n")
    try:
        for line in _lines(script):
            if not run_line(console, line, echo=script is not None):
                break
    finally:
        console.close()
    return 0
