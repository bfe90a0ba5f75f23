"""Phone numbers through the ``phonenumbers`` library: E.164 in, E.164 out."""

from __future__ import annotations

import re

import phonenumbers

# The separators people write numbers with; the message below lists exactly these.
_SEPARATORS = " -.()"
_ALLOWED = re.compile(r"^\+?[0-9][0-9" + re.escape(_SEPARATORS) + r"]*$")
_MAX_LENGTH = 32
_ALLOWED_MESSAGE = (
    'may hold only digits, a leading + and the separators space, "-", ".", "(" and ")"; '
    "the first character after the optional + must be a digit"
)


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: str) -> str:
    """Return E.164 (``+919876543210``).

    Accepts a leading ``+``, then a digit, then digits and the separators in ``_SEPARATORS``. A number without ``+`` is read as country code
    followed by the number (``918856879188``), as the Contacts API documents.
    """
    if not isinstance(raw, str):
        raise InvalidPhone("must be a string")
    text = raw.strip()
    if not text:
        raise InvalidPhone("must not be empty")
    if not _ALLOWED.match(text):
        raise InvalidPhone(_ALLOWED_MESSAGE)
    if len(text) > _MAX_LENGTH:
        raise InvalidPhone(f"must be at most {_MAX_LENGTH} characters")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone("is not a phone number with a country code") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(
            f"{raw!r} is not a valid phone number (country code first, e.g. 918856879188)"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def digits_only(e164: str) -> str:
    return e164.lstrip("+")
