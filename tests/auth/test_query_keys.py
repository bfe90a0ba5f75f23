"""A key in the query string is refused on both surfaces, whatever the parameter is called:
a parameter named like a key (case-insensitively), or any value that looks like an aisoule key.
Refused even beside valid credentials, so a key put in a URL is noticed (and rotated). That the
key then never reaches the logs in full is tests/test_key_hygiene.py."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Workspace

MESSAGE = "API keys are not accepted in the query string; send the X-API-Key header"
NAMES = [
    "key", "token", "Key", "TOKEN", "api_key", "API_KEY", "apikey", "ApiKey", "api-key",
    "x-api-key", "X-API-Key", "x_api_key", "access_token", "Access_Token", "auth_token", "bearer",
]  # fmt: skip


def _refused(r: httpx.Response, path: str) -> None:
    assert r.status_code == 401, (r.request.url, r.text)
    body = r.json()
    if path.startswith("/v1"):
        assert body["success"] is False
        assert body["error"]["code"] == "api_key_in_query", body
        assert body["error"]["message"].startswith(MESSAGE), body
    else:
        assert body["status"] == "error"
        assert body["code"] == "api_key_in_query", body
        assert body["message"].startswith(MESSAGE), body


@pytest.mark.parametrize("path", ["/api/contacts", "/v1/contacts"])
def test_a_parameter_named_like_a_key_is_refused(ws: Workspace, path: str) -> None:
    with ws.client() as authed, httpx.Client(base_url=ws.server.url, timeout=30) as anon:
        for name in NAMES:
            _refused(anon.get(path, params={name: ws.key}), path)
            # Beside valid credentials too, and whatever the value is.
            _refused(authed.get(path, params={name: ws.key}), path)
            _refused(authed.get(path, params={name: "anything"}), path)
        # Unsafe methods as well: nothing is created.
        r = authed.post(path, params={"token": ws.key}, json={"phone": "918856879188"})
        _refused(r, path)
        assert authed.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/api/contacts", "/v1/contacts"])
def test_a_value_that_looks_like_a_key_is_refused_whatever_its_name(
    ws: Workspace, path: str
) -> None:
    with ws.client() as authed, httpx.Client(base_url=ws.server.url, timeout=30) as anon:
        for name in ("q", "tag", "secret", "x", "auth"):
            _refused(anon.get(path, params={name: ws.key}), path)
            _refused(authed.get(path, params={name: ws.key}), path)
        _refused(authed.get(f"{path}?{ws.key}"), path)  # a bare key as the whole query
        _refused(authed.get(path, params={"tag": "Bearer " + ws.key.upper()}), path)
        # Ordinary parameters still work.
        r = authed.get(path, params={"tag": "vip"})
        assert r.status_code == 200, r.text
