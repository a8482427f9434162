"""The capture's fast noise check: lexical, instant, no model, so a receipt never waits for one.

- emoji-only messages and out-of-office notes never become items;
- short acknowledgements ("thanks!", "ok", "lol") are stored (the maybe list may show them) but get no receipt
  until the model calls them feedback (then the card job sends it);
- everything else gets its receipt at once; the model's chatter score later decides card or maybe list.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

_SHORTCODE = re.compile(r":[a-z0-9_+\-']+:", re.IGNORECASE)
_OOO = re.compile(
    r"\b(out of (the )?office|ooo\b|on (annual |parental |maternity |paternity |sick )?leave|on (vacation|holiday)"
    r"|away (until|till)|automatic reply|auto-?reply|limited access to (my )?e-?mail)",
    re.IGNORECASE,
)
_ACK = re.compile(
    r"^(thanks?( (a lot|so much|again))?|thank you( (so much|again))?|thx|ty|ok(ay)?|kk?|great|cool|nice|got it"
    r"|sounds good|lol|haha|perfect|awesome|sure|yes|yep|no|nope|noted|will do)[\s!.?]*$",
    re.IGNORECASE,
)


class Noise(StrEnum):
    """What the fast check says of a message."""

    EMOJI = "emoji only"
    OUT_OF_OFFICE = "out of office"
    ACK = "acknowledgement"


def _visible(text: str) -> str:
    """Text without emoji shortcodes, emoji, symbols, punctuation and spaces."""
    stripped = _SHORTCODE.sub("", text)
    return "".join(ch for ch in stripped if unicodedata.category(ch)[0] in {"L", "N"})


def noise(text: str) -> Noise | None:
    """None for words that may be feedback; otherwise which kind of noise (Slack-encoded text is fine)."""
    if not _visible(text):
        return Noise.EMOJI
    if len(text) < 600 and _OOO.search(text):
        return Noise.OUT_OF_OFFICE
    if _ACK.match(_SHORTCODE.sub("", text).strip()):
        return Noise.ACK
    return None
