"""A report as plain Markdown (the CLI, `--out`, the console); customer words as Markdown quotes."""

from __future__ import annotations

from bot.domain import Report, ReportLine
from bot.slack.kit import to_markdown, truncate

QUOTE_CHARS = 240


def _line(line: ReportLine) -> str:
    text = f"[{line.text}]({line.link})" if line.link else line.text
    if line.quote:
        words = " ".join(to_markdown(line.quote).split())
        text += f"\n  > {truncate(words, QUOTE_CHARS)}"
    return f"- {text}"


def markdown(report: Report, chart_file: str | None = None) -> str:
    """Title, summary, sections, then the details (the thread in Slack)."""
    out = [f"# {report.title}: {report.period}", "", *(f"- {s}" for s in report.summary), ""]
    if chart_file:
        out += [f"![Weekly feedback by type, last 12 weeks]({chart_file})", ""]
    for section in [*report.sections, *report.details]:
        out += [f"## {section.title}", ""]
        out += [_line(line) for line in section.lines] or [section.empty]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
