"""The replies that change consent: STOP and its synonyms opt a contact out, START opts it back
in. Anything else (``hello``, a question) changes nothing."""

from __future__ import annotations

import unicodedata

# Replies that mean "stop messaging me" / "you may again", compared trimmed and case-folded.
STOP_WORDS = frozenset(
    {
        "stop",
        "stop all",
        "stopall",
        "unsubscribe",
        "opt out",
        "opt-out",
        "optout",
        "cancel",
        "end",
        "quit",
        "parar",  # es, pt
        "arrêter",  # fr
        "arreter",
        "stopp",  # de, no, sv
        "रोकें",  # hi
        "रोको",
    }
)
START_WORDS = frozenset({"start", "unstop", "subscribe"})
MAX_LENGTH = 40  # longer text is a sentence, not a keyword


def normalise(text: str | None) -> str | None:
    """``text`` as keywords are compared: NFC, whitespace collapsed, trailing ``.!¡`` trimmed,
    case-folded; None when it is too long to be a keyword or empty."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return None
    words = " ".join(unicodedata.normalize("NFC", text).split()).strip(" .!¡").casefold()
    return words or None


def is_stop(text: str | None) -> bool:
    return normalise(text) in STOP_WORDS


def is_start(text: str | None) -> bool:
    return normalise(text) in START_WORDS
