"""POST /api/messages/send and /v1/messages refuse, before Meta sees it, what Meta would refuse:
a clear 422 naming the field, and nothing written."""

from __future__ import annotations

from typing import Any

import httpx

CUSTOMER = "+919876543210"


def _nothing_written(api: httpx.Client) -> None:
    assert api.get("/api/messages").json()["data"]["total"] == 0
    assert api.get("/api/contacts").json()["data"]["total"] == 0


def test_free_form_outside_the_window_is_refused(api: httpx.Client) -> None:
    r = api.post(
        "/api/messages/send", json={"to": CUSTOMER, "type": "text", "text": {"body": "hi"}}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "outside_24h_window"
    assert body["errors"][0]["field"] == "type"
    assert "template" in body["message"] and "24 hours" in body["message"]
    _nothing_written(api)


def test_v1_surface_refuses_in_its_own_error_shape(v1: httpx.Client) -> None:
    r = v1.post("/v1/messages", json={"to": CUSTOMER, "text": "hi"})
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["success"] is False and err["error"]["code"] == "outside_24h_window"
    assert err["error"]["field"] == "type"


def test_bad_fields_name_the_field(api: httpx.Client) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"to": "12", "text": {"body": "x"}}, "to"),
        ({"to": "not a phone", "text": {"body": "x"}}, "to"),
        ({"to": CUSTOMER, "type": "text"}, "text"),
        ({"to": CUSTOMER, "type": "text", "text": {"body": ""}}, "body"),
        ({"to": CUSTOMER, "type": "fax", "text": {"body": "x"}}, "type"),
        (
            {"to": CUSTOMER, "text": {"body": "x"}, "image": {"link": "https://e.com/a.jpg"}},
            "image",
        ),
        ({"to": CUSTOMER, "type": "image", "image": {"caption": "no link"}}, "image"),
        ({"to": CUSTOMER, "type": "template", "template": {"language": "en_US"}}, "name"),
        ({"to": "cnt_999999", "text": {"body": "x"}}, "to"),
        ({"to": CUSTOMER, "text": {"body": "x"}, "account_id": "nope"}, "account_id"),
    ]
    for body, field in cases:
        r = api.post("/api/messages/send", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, (body, r.text)
    _nothing_written(api)


def test_unknown_template_is_refused(api: httpx.Client) -> None:
    r = api.post(
        "/api/messages/send",
        json={
            "to": CUSTOMER,
            "type": "template",
            "template": {"name": "nope", "language": "en_US"},
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "template_not_found"
    assert r.json()["errors"][0]["field"] == "template.name"
    _nothing_written(api)


def test_unknown_message_is_404(api: httpx.Client) -> None:
    assert api.get("/api/messages/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/messages/not-a-uuid").status_code == 404


def test_scope_is_needed(ws: Any) -> None:
    key = ws.new_key(scopes=["contacts:read"])
    with ws.client(key["key"]) as c:
        r = c.post("/api/messages/send", json={"to": CUSTOMER, "text": {"body": "x"}})
        assert r.status_code == 403 and "messages:send" in r.text


def test_interactive_shape_is_checked(api: httpx.Client) -> None:
    for interactive, words in (
        ({"type": "carousel"}, "type must be one of"),
        ({"type": "button", "action": {"buttons": []}}, "body.text"),
        ({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": []}}, "1 to 3"),
        ({"type": "list", "body": {"text": "Pick"}}, "action is required"),
    ):
        r = api.post(
            "/api/messages/send",
            json={"to": CUSTOMER, "type": "interactive", "interactive": interactive},
        )
        assert r.status_code == 422, r.text
        assert "interactive" in r.text and words in r.text, r.text
