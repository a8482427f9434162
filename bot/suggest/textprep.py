"""Text cleaning and the title/body split the learned models and the zero-shot prior share."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_URL = re.compile(r"<?https?://[^\s>|]+(?:\|[^>]*)?>?")
_QUOTED = re.compile(r"^\s*(?:>|&gt;).*$", re.MULTILINE)
_TRACE_LINE = re.compile(r"^\s+(?:at |File \").*$", re.MULTILINE)
_SPACE = re.compile(r"[ \t\r\f\v]+")
PART_CHARS = 320  # about 64 word pieces: the title and body embeddings look at the start only


def clean(text: str) -> str:
    """Drops what carries no type signal but drowns it: code blocks and stack frames (kept as a marker),
    URLs, and quoted replies (someone else's words)."""
    out = _FENCE.sub(" codeblock ", text)
    out = _TRACE_LINE.sub(" stackframe ", out)
    out = _URL.sub(" url ", out)
    out = _QUOTED.sub("", out)
    lines = [_SPACE.sub(" ", line).strip() for line in out.splitlines()]
    return "\n".join(line for line in lines if line).strip() or text.strip()


def split_title(text: str) -> tuple[str, str]:
    """(title, body) of a cleaned text: the first line is the title when more lines follow (an issue, or a
    message with a subject line); a one-line message is its own title and body."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        one = lines[0] if lines else text
        return one, one
    return lines[0], " ".join(lines[1:])


def parts(text: str) -> tuple[str, str]:
    """Cleaned title and body, each capped near 64 tokens for the part embeddings."""
    title, body = split_title(clean(text))
    return title[:PART_CHARS], body[:PART_CHARS]
