"""The error table: every documented code lands in the right class (no server needed)."""

from __future__ import annotations

import pytest

from aisoule.whatsapp.provider import ErrorClass, MetaAPIError, classify

R, P, A = ErrorClass.retryable, ErrorClass.permanent, ErrorClass.account


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (130429, R),
        (131056, R),
        (131047, P),
        (131026, P),
        (131050, P),
        (132000, P),
        (132001, P),
        (190, A),
        (131031, A),
        (368, A),
        (80007, R),
        (131000, R),
        (131001, R),
        (131002, R),
        (100, P),
    ],
)
def test_known_codes(code: int, expected: ErrorClass) -> None:
    assert classify(code, 400) is expected
    assert classify(code, 500) is expected  # the code wins over the HTTP status


def test_unknown_codes_follow_the_http_status() -> None:
    assert classify(999999, 500) is R
    assert classify(999999, 503) is R
    assert classify(999999, 400) is P
    assert classify(None, 502) is R
    assert classify(None, 404) is P


def test_from_meta_error_json() -> None:
    body = {
        "error": {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_subcode": 2494010,
            "error_data": {"messaging_product": "whatsapp", "details": "More than 24 hours"},
            "error_user_title": "Re-engagement",
            "error_user_msg": "…",
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
    }
    err = MetaAPIError.from_response(400, body)
    assert (err.code, err.error_subcode, err.http_status) == (131047, 2494010, 400)
    assert err.details == "More than 24 hours"
    assert err.title == "Re-engagement"
    assert err.fbtrace_id == "Az8or2yhqkZfEZ-_4Qn_Bam"
    assert err.type == "OAuthException"
    assert err.classification is P and not err.retryable


def test_non_meta_bodies() -> None:
    assert MetaAPIError.from_response(502, "<html>bad gateway</html>").classification is R
    assert MetaAPIError.from_response(404, {"detail": "x"}).code is None
