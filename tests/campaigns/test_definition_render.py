"""parameters.render, the engine's per-contact call (no I/O): Meta's send components from the
spec and a contact, fallbacks, and the first variable left empty."""

from __future__ import annotations

from typing import Any

from aisoule.campaigns import parameters
from aisoule.models import MessageTemplate


def template(components: list[dict[str, Any]], fmt: str = "POSITIONAL") -> MessageTemplate:
    return MessageTemplate(name="t", language="en", parameter_format=fmt, components=components)


POSITIONAL = template(
    [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi {{1}}, use {{2}} in {{3}}."},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "Shop", "url": "https://x.example/{{1}}"},
                {"type": "URL", "text": "Help", "url": "https://x.example/help"},
                {"type": "COPY_CODE", "example": "SAVE"},
            ],
        },
    ]
)
SPEC = parameters.check(
    POSITIONAL,
    {
        "header": [{"value": "https://cdn.example/a.png"}],
        "body": [
            {"field": "first_name", "fallback": "there"},
            {"value": "DIWALI20"},
            {"field": "custom_fields.city"},
        ],
        "buttons": {"0": {"field": "custom_fields.order_id"}, "2": [{"value": "SAVE20"}]},
    },
)
PRIYA = {
    "first_name": "Priya",
    "last_name": "Sharma",
    "name": "Priya Sharma",
    "phone": "+919800000001",
    "email": None,
    "stage": "Lead",
    "custom_fields": {"city": "Pune\n  West", "order_id": 1042},
}


def test_positional_with_media_header_and_buttons() -> None:
    out = parameters.render(POSITIONAL, SPEC, PRIYA)
    assert out.missing is None
    assert out.components == [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://cdn.example/a.png"}}],
        },
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Priya"},
                {"type": "text", "text": "DIWALI20"},
                {"type": "text", "text": "Pune West"},  # Meta refuses new lines and runs of spaces
            ],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "1042"}],
        },
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": "2",
            "parameters": [{"type": "coupon_code", "coupon_code": "SAVE20"}],
        },
    ]
    assert (
        parameters.text(POSITIONAL, out.components)
        == "[image]\n\nHi Priya, use DIWALI20 in Pune West."
    )


def test_fallback_and_missing() -> None:
    nameless = {**PRIYA, "first_name": "  ", "custom_fields": {"order_id": 7, "city": "Goa"}}
    out = parameters.render(POSITIONAL, SPEC, nameless)
    assert out.components is not None
    assert out.components[1]["parameters"][0] == {"type": "text", "text": "there"}
    cityless = {**PRIYA, "custom_fields": {"order_id": 7}}
    assert parameters.render(POSITIONAL, SPEC, cityless) == parameters.Rendered(
        None, "body[2] (custom_fields.city)"
    )
    assert parameters.fields_without_fallback(SPEC) == {
        "custom_fields.city",
        "custom_fields.order_id",
    }


def test_a_template_changed_since_leaves_the_new_variable_missing() -> None:
    grown = template([{"type": "BODY", "text": "{{1}} {{2}}"}])
    spec = {"body": [{"value": "a"}]}
    assert parameters.render(grown, spec, PRIYA).missing == "body[1] (not set)"


def test_named_parameters_and_booleans() -> None:
    named = template([{"type": "BODY", "text": "Hi {{first_name}}: {{vip}}"}], fmt="NAMED")
    spec = {"body": {"first_name": {"field": "name"}, "vip": {"field": "custom_fields.vip"}}}
    out = parameters.render(named, spec, {**PRIYA, "custom_fields": {"vip": False}})
    assert out.components == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Priya Sharma"},
                {"type": "text", "parameter_name": "vip", "text": "false"},
            ],
        }
    ]
