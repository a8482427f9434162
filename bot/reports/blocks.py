"""A report as Block Kit: one message within Slack's limits (details go in the thread), with a text fallback."""

from __future__ import annotations

from typing import Any

from bot.domain import Report, ReportLine, ReportSection
from bot.slack.kit import escape, mrkdwn, plain, quote_line, truncate

MAX_BLOCKS = 48  # Slack allows 50 per message
SECTION_CHARS = 2900


def _line(line: ReportLine) -> str:
    text = escape(line.text)
    text = f"<{line.link}|{text}>" if line.link and line.link.startswith("https://") else text
    return f"• {text}" + (f"\n{quote_line(line.quote, 200)}" if line.quote else "")


def section(sec: ReportSection) -> list[dict[str, Any]]:
    """A titled section; lines that would not fit in its 3000 chars are counted, not dropped silently."""
    body, shown = f"*{escape(sec.title)}*", 0
    for line in sec.lines:
        entry = _line(line)
        if len(body) + len(entry) + 60 > SECTION_CHARS:
            break
        body, shown = f"{body}\n{entry}", shown + 1
    if not sec.lines:
        body += f"\n_{escape(sec.empty)}_"
    elif shown < len(sec.lines):
        body += f"\n_…and {len(sec.lines) - shown} more (see `feedbackbot report`)_"
    return [{"type": "section", "text": mrkdwn(body)}]


def message(report: Report) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for the report's main message."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f"{report.title}: {report.period}", 150)},
        {"type": "section", "text": mrkdwn("\n".join(f"• {escape(s)}" for s in report.summary))},
    ]
    for sec in report.sections:
        if len(blocks) + 2 > MAX_BLOCKS:
            break
        blocks += [{"type": "divider"}, *section(sec)]
    fallback = f"{report.title}: {report.period}. " + " ".join(report.summary)
    return truncate(fallback, 3000), blocks


def details(report: Report) -> list[tuple[str, list[dict[str, Any]]]]:
    """The thread under the message: one reply per detail section."""
    return [(truncate(f"{report.title}: {sec.title}", 3000), section(sec)) for sec in report.details]
