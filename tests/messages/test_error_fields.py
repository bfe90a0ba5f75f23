"""A 422 names the field as the client wrote it: never a pydantic union member (``TextPayload``,
``str``, ``list[str]``), a validator's name or a class name, in the field or in the message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

LEAKS = ("TextPayload", "TemplatePayload", "MediaPayload", "MessageSend", "function-", "[str]")
TO = "+919876543210"


def _refused(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[str, str]:
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    for leak in LEAKS:
        assert leak not in r.text, r.text
    data = r.json()
    if path.startswith("/v1"):
        error = data["error"]
        first = error["details"][0]
        assert error["field"] == first["field"]
    else:
        error, first = data, data["errors"][0]
    assert error["message"] == f"{first['field']}: {first['message']}"
    return first["field"], first["message"]


@pytest.mark.parametrize("path", ["/api/messages/send", "/v1/messages"])
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"type": "text", "text": {"body": 5}}, "text.body", "must be a string"),
        ({"type": "text", "text": 5}, "text", "must be an object or a string"),
        ({"type": "text", "text": {}}, "text.body", "is required"),
        (
            {"type": "text", "text": {"body": "hi", "bold": True}},
            "text.bold",
            "is not a known field",
        ),
        ({"type": "template", "template": "order_update"}, "template", "must be an object"),
        ({"type": "template", "template": {"name": ["x"]}}, "template.name", "must be a string"),
        (
            {"type": "template", "template": {"name": "t", "parameters": ["a", 2]}},
            "template.parameters.1",
            "must be a string",
        ),
        (
            {"type": "template", "template": {"name": "t", "parameters": {"first": 2}}},
            "template.parameters.first",
            "must be a string",
        ),
        (
            {"type": "template", "template": {"name": "t", "parameters": 7}},
            "template.parameters",
            "must be a list or an object",
        ),
        (
            {"type": "image", "image": {"link": "https://x.test/a.png", "caption": 1}},
            "image.caption",
            "must be a string",
        ),
    ],
)
def test_wrong_types_name_the_field_not_the_union_member(
    api: httpx.Client, path: str, body: dict[str, Any], field: str, message: str
) -> None:
    assert _refused(api, path, {"to": TO, **body}) == (field, message)
