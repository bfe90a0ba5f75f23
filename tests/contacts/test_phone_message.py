"""The phone refusal says exactly what is accepted: each character it lists is, one it does not
list is refused with it."""

from __future__ import annotations

import re

import httpx

NUMBER = ("+91", "98765", "43210")  # +919876543210 with a separator between the groups


def _refusal(v1: httpx.Client, phone: str) -> str:
    r = v1.post("/v1/contacts", json={"phone": phone})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "phone"
    return str(error["message"])


def test_each_separator_the_message_lists_is_accepted(v1: httpx.Client) -> None:
    message = _refusal(v1, "+91/98765/43210")
    assert "digits" in message and "leading +" in message
    listed = re.findall(r'"(.)"', message) + ([" "] if "space" in message else [])
    assert sorted(listed) == sorted(" -.()"), message
    for sep in listed:
        phone = sep.join(NUMBER)
        r = v1.post("/v1/contacts", json={"phone": phone})
        assert r.status_code in (200, 201), (phone, r.text)
        assert r.json()["contact"]["phone"] == "919876543210"
    # A digit first, after the optional +: without the +, or with 00.
    for phone in ("919876543210", "0091 98765 43210"):
        r = v1.post("/v1/contacts", json={"phone": phone})
        assert r.status_code in (200, 201), (phone, r.text)


def test_characters_the_message_does_not_list_are_refused_with_it(v1: httpx.Client) -> None:
    message = _refusal(v1, "+91/98765/43210")
    refused = ("+91_98765_43210", "(91) 98765 43210", "+(91) 98765 43210", "+91\u00a098765 43210")
    for phone in (*refused, "+91 98765 43210 ext 2"):
        assert _refusal(v1, phone) == message, phone
    assert v1.get("/v1/contacts").json()["pagination"]["total"] == 0
