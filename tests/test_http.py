"""The HTTP edge: malformed JSON, body limits, content types, unknown routes, health. Never a 500."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Workspace


@pytest.mark.parametrize("path", ["/api/contacts", "/v1/contacts"])
def test_malformed_json_is_400(ws: Workspace, path: str) -> None:
    with ws.client() as c:
        r = c.post(path, content=b'{"phone": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in r.text


@pytest.mark.parametrize("path", ["/api/contacts", "/v1/contacts"])
def test_wrong_content_type_is_415(ws: Workspace, path: str) -> None:
    with ws.client() as c:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", ""):
            r = c.post(path, content=b'{"phone": "918856879188"}', headers={"Content-Type": ctype})
            assert r.status_code == 415, (ctype, r.text)
        assert (
            c.get("/v1/contacts").json()["pagination"]["total"] == 0
            if path == "/v1/contacts"
            else True
        )


@pytest.mark.parametrize("path", ["/api/contacts", "/v1/contacts"])
def test_body_over_one_mib_is_413(ws: Workspace, path: str) -> None:
    big = b'{"phone": "918856879188", "first_name": "' + b"x" * (1024 * 1024) + b'"}'
    with ws.client() as c:
        r = c.post(path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413

        def chunks():  # type: ignore[no-untyped-def]
            yield b'{"phone": "918856879188", "first_name": "'
            for _ in range(40):
                yield b"y" * 32768
            yield b'"}'

        r = c.post(path, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_non_object_bodies_are_422(ws: Workspace) -> None:
    with ws.client() as c:
        for body in (b"[]", b'"x"', b"1", b"null"):
            r = c.post("/v1/contacts", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (body, r.text)
        r = c.post("/v1/contacts", headers={"Content-Type": "application/json"})
        assert r.status_code == 422


def test_unknown_routes_and_methods_use_the_surface_shape(ws: Workspace) -> None:
    with ws.client() as c:
        r = c.get("/api/nope")
        assert r.status_code == 404 and r.json()["status"] == "error"
        r = c.get("/v1/nope")
        assert r.status_code == 404 and r.json()["success"] is False
        r = c.patch("/v1/contacts")
        assert r.status_code == 405 and r.json()["success"] is False


def test_healthz_checks_the_database(anon: httpx.Client) -> None:
    r = anon.get("/healthz")
    assert r.status_code == 200 and r.json()["database"] == "ok"


def test_unicode_and_odd_input_never_500(ws: Workspace) -> None:
    with ws.client() as c:
        samples = [
            {
                "phone": "918856879188",
                "first_name": "प्रिया",
                "last_name": "शर्मा 🙂",
                "tags": ["ग्राहक"],
            },
            {"phone": "918856879188", "custom_fields": {"n": 1e308, "b": False, "s": ""}},
            {"phone": "918856879188", "custom_fields": {"n": 10**30, "m": -1e-300}},
            {"phone": "918856879188", "custom_fields": {"n": 9007199254740991, "m": 1.5e-300}},
            {"phone": "\u0000918856879188"},
            {"phone": "9" * 5000},
            {"phone": "918856879188", "tags": ["a\u0000b"]},
        ]
        for body in samples:
            r = c.post("/v1/contacts", json=body)
            assert r.status_code < 500, (body, r.text)
        for q in ("%", "_", "\\", "' OR 1=1 --", "🙂"):
            assert c.get("/api/contacts", params={"q": q}).status_code == 200
            assert c.get("/v1/contacts", params={"tag": q}).status_code == 200


def test_nul_and_huge_numbers_are_4xx_naming_the_field(ws: Workspace) -> None:
    with ws.client() as c:
        for body, field in [
            ({"phone": "918856879188", "tags": ["a\u0000b"]}, "tags.0"),
            ({"phone": "918856879188", "first_name": "a\u0000"}, "first_name"),
            ({"phone": "918856879188", "custom_fields": {"n": 10**30}}, "custom_fields.n"),
            ({"phone": "918856879188", "custom_fields": {"n": 1e308}}, "custom_fields.n"),
            ({"phone": "918856879188", "custom_fields": {"s": "\u0000"}}, "custom_fields.s"),
        ]:
            r = c.post("/v1/contacts", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["field"] == field
        r = c.get("/v1/contacts", params={"tag": "a\u0000"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "tag", r.text
        assert c.get("/v1/contacts").json()["pagination"]["total"] == 0


PROBES = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def test_405_allow_lists_every_method_the_openapi_document_lists(anon: httpx.Client) -> None:
    """For every path of the document, each method it does not serve answers 405 with Allow
    naming exactly the methods the document lists for that URL (every template matching it:
    /api/templates/sync is also /api/templates/{template_id}), in the surface's error shape."""
    spec = anon.get("/openapi.json").json()
    documented = {
        template: {m.upper() for m in operations if m.upper() in PROBES}
        for template, operations in spec["paths"].items()
    }
    checked = 0
    for template in documented:
        url = re.sub(r"\{[^}]+\}", "x1", template)
        allowed = set().union(
            *(methods for t, methods in documented.items() if _template_regex(t).match(url))
        )
        for method in sorted(set(PROBES) - allowed):
            r = anon.request(method, url)
            assert r.status_code == 405, (method, url, r.status_code, r.text)
            assert set(r.headers["allow"].split(", ")) == allowed, (method, url, r.headers)
            checked += 1
            if method == "HEAD":
                continue
            body = r.json()
            if url.startswith("/v1/"):
                assert body["success"] is False, body
                assert body["error"]["code"] == "method_not_allowed", body
            else:
                assert body["status"] == "error" and body["code"] == "method_not_allowed", body
    assert checked > 50, checked
