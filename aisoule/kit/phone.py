"""Phone numbers through the ``phonenumbers`` library: E.164 in, E.164 out."""

from __future__ import annotations

import re

import phonenumbers

_ALLOWED = re.compile(r"^\+?[0-9][0-9 \-().]{4,30}$")


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: str) -> str:
    """Return E.164 (``+919876543210``).

    Accepts ``+``, spaces, dashes, dots and brackets. A number without ``+`` is read as country code
    followed by the number (``918856879188``), as the Contacts API documents.
    """
    if not isinstance(raw, str):
        raise InvalidPhone("must be a string")
    text = raw.strip()
    if not text:
        raise InvalidPhone("must not be empty")
    if not _ALLOWED.match(text):
        raise InvalidPhone("may hold only digits, a leading +, spaces and dashes")
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
