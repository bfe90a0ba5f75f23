"""/api/contacts (seed 000): CRUD, partial updates, filters, exact totals, validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    r = api.post("/api/contacts", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json()["data"]["contact"])


def total(api: httpx.Client, **params: Any) -> int:
    r = api.get("/api/contacts", params=params)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["total"])


def test_create_get_update_delete(api: httpx.Client) -> None:
    c = create(
        api,
        phone_number="+91 98765-43210",
        name="John Ronald Doe",
        email="John@Example.com",
        tags=["customer", "vip", "customer"],
        stage="customer",
        custom_fields={"city": "Pune"},
    )
    assert c["phone_number"] == "+919876543210"
    assert (c["first_name"], c["last_name"], c["name"]) == ("John", "Ronald Doe", "John Ronald Doe")
    assert c["email"] == "John@example.com"  # domain normalised by email-validator
    assert c["tags"] == ["customer", "vip"]
    assert c["stage"] == "Customer"
    assert c["custom_fields"] == {"city": "Pune"}
    assert c["created_at"] == c["updated_at"]

    got = api.get(f"/api/contacts/{c['id']}")
    assert got.status_code == 200 and got.json()["data"]["contact"] == c

    # PUT changes only what it is sent.
    r = api.put(
        f"/api/contacts/{c['id']}", json={"stage": "Lost", "custom_fields": {"plan": "gold"}}
    )
    assert r.status_code == 200, r.text
    u = r.json()["data"]["contact"]
    assert u["stage"] == "Lost"
    assert u["custom_fields"] == {"city": "Pune", "plan": "gold"}
    assert (u["name"], u["email"], u["tags"], u["phone_number"]) == (
        c["name"],
        c["email"],
        c["tags"],
        c["phone_number"],
    )

    r = api.put(
        f"/api/contacts/{c['id']}",
        json={"name": "Jane", "tags": [], "email": None, "custom_fields": {"city": None}},
    )
    u = r.json()["data"]["contact"]
    assert (u["first_name"], u["last_name"], u["name"]) == ("Jane", None, "Jane")
    assert u["tags"] == [] and u["email"] is None and u["custom_fields"] == {"plan": "gold"}

    r = api.delete(f"/api/contacts/{c['id']}")
    assert r.status_code == 200
    assert r.json() == {"data": {"id": c["id"], "deleted": True}, "status": "success"}
    assert api.get(f"/api/contacts/{c['id']}").status_code == 404
    assert api.delete(f"/api/contacts/{c['id']}").status_code == 404


def test_empty_put_changes_nothing(api: httpx.Client) -> None:
    c = create(api, phone_number="+14155550100")
    r = api.put(f"/api/contacts/{c['id']}", json={})
    assert r.status_code == 200 and r.json()["data"]["contact"] == c


def test_duplicate_phone_is_409(api: httpx.Client) -> None:
    create(api, phone_number="+919876543210")
    r = api.post("/api/contacts", json={"phone_number": "919876543210"})
    assert r.status_code == 409
    assert r.json()["status"] == "error" and "phone_number" in r.json()["message"]
    other = create(api, phone_number="+14155550101")
    r = api.put(f"/api/contacts/{other['id']}", json={"phone_number": "+91 98765 43210"})
    assert r.status_code == 409
    assert (
        api.get(f"/api/contacts/{other['id']}").json()["data"]["contact"]["phone_number"]
        == "+14155550101"
    )
    assert total(api) == 2


def test_phone_change_keeps_identity(api: httpx.Client) -> None:
    c = create(api, phone_number="+14155550102")
    r = api.put(f"/api/contacts/{c['id']}", json={"phone_number": "+14155550103"})
    assert r.status_code == 200 and r.json()["data"]["contact"]["id"] == c["id"]
    assert r.json()["data"]["contact"]["phone_number"] == "+14155550103"


def test_pagination_and_filters_with_exact_totals(api: httpx.Client) -> None:
    made = []
    for i in range(25):
        tags = ["even"] if i % 2 == 0 else ["odd"]
        if i % 5 == 0:
            tags.append("five")
        made.append(
            create(
                api,
                phone_number=f"+1415555{i:04d}",
                name=f"Person {i}",
                email=f"p{i}@shop.example",
                tags=tags,
                stage="Customer" if i < 10 else "Lead",
            )
        )
    r = api.get("/api/contacts", params={"page": 2, "per_page": 10}).json()["data"]
    assert r["total"] == 25 and r["page"] == 2 and r["per_page"] == 10
    assert [c["id"] for c in r["contacts"]] == [c["id"] for c in made[10:20]]  # oldest first
    assert (
        len(api.get("/api/contacts", params={"page": 3, "per_page": 10}).json()["data"]["contacts"])
        == 5
    )
    assert api.get("/api/contacts", params={"page": 9}).json()["data"]["contacts"] == []

    assert total(api, tag="even") == 13
    assert total(api, tag="five") == 5
    assert total(api, tag="nope") == 0
    assert total(api, stage="Customer") == 10
    assert total(api, stage="customer") == 10  # stage names are matched case-insensitively
    assert total(api, tag="five", stage="Customer") == 2
    by_tag = api.get("/api/contacts", params={"tag": "five"}).json()["data"]["contacts"]
    assert {c["id"] for c in by_tag} == {made[i]["id"] for i in (0, 5, 10, 15, 20)}

    # q searches name, phone and email.
    assert total(api, q="Person 1") == 11  # 1, 10..19
    assert total(api, q="p7@shop") == 1
    assert total(api, q="55550024") == 1
    assert total(api, q="%") == 0  # LIKE wildcards are literal

    # Totals stay exact through updates and deletes (they come from counters, not COUNT).
    api.put(f"/api/contacts/{made[0]['id']}", json={"tags": ["odd"], "stage": "Lead"})
    api.delete(f"/api/contacts/{made[2]['id']}")
    assert total(api) == 24
    assert total(api, tag="even") == 11
    assert total(api, tag="odd") == 13
    assert total(api, tag="five") == 4
    assert total(api, stage="Customer") == 8
    assert total(api, stage="Lead") == 16


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": 101}, "per_page"),
        ({"page": 0}, "page"),
        ({"per_page": "x"}, "per_page"),
        ({"stage": "Nope"}, "stage"),
    ],
)
def test_bad_list_params_are_4xx(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    r = api.get("/api/contacts", params=params)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


BAD_CREATES = [
    ({}, "phone_number"),
    ({"phone_number": "12345"}, "phone_number"),
    ({"phone_number": "+999 123"}, "phone_number"),
    ({"phone_number": "abc"}, "phone_number"),
    ({"phone_number": 919876543210}, "phone_number"),
    ({"phone_number": "+919876543210", "email": "not-an-email"}, "email"),
    ({"phone_number": "+919876543210", "tags": "vip"}, "tags"),
    ({"phone_number": "+919876543210", "tags": [""]}, "tags"),
    ({"phone_number": "+919876543210", "tags": ["x" * 65]}, "tags"),
    ({"phone_number": "+919876543210", "tags": [f"t{i}" for i in range(51)]}, "tags"),
    ({"phone_number": "+919876543210", "tags": [1]}, "tags"),
    ({"phone_number": "+919876543210", "tags": None}, "tags"),
    ({"phone_number": "+919876543210", "custom_fields": {"Bad Key": 1}}, "custom_fields"),
    ({"phone_number": "+919876543210", "custom_fields": {"nested": {"a": 1}}}, "custom_fields"),
    ({"phone_number": "+919876543210", "custom_fields": {"list": [1]}}, "custom_fields"),
    ({"phone_number": "+919876543210", "custom_fields": ["a"]}, "custom_fields"),
    ({"phone_number": "+919876543210", "stage": "Unknown"}, "stage"),
    ({"phone_number": "+919876543210", "name": "A B", "first_name": "A"}, "name"),
    ({"phone_number": "+919876543210", "first_name": "x" * 201}, "first_name"),
    ({"phone_number": "+919876543210", "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES)
def test_bad_create_names_the_field_and_writes_nothing(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    r = api.post("/api/contacts", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["status"] == "error"
    assert field in err["message"]
    assert any(e["field"] and e["field"].startswith(field) for e in err["errors"])
    assert total(api) == 0


def test_bad_update_writes_nothing(api: httpx.Client) -> None:
    c = create(api, phone_number="+14155550110", tags=["a"])
    for body in (
        {"phone_number": None},
        {"stage": "Nope"},
        {"tags": ["ok", ""]},
        {"email": "bad"},
        {"unknown": 1},
        {"phone_number": "1"},
    ):
        r = api.put(f"/api/contacts/{c['id']}", json=body)
        assert r.status_code == 422, (body, r.text)
    assert api.get(f"/api/contacts/{c['id']}").json()["data"]["contact"] == c


def test_unknown_ids_are_404(api: httpx.Client) -> None:
    for cid in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "cnt_1"):
        assert api.get(f"/api/contacts/{cid}").status_code == 404
        assert api.put(f"/api/contacts/{cid}", json={"name": "x"}).status_code == 404
        assert api.delete(f"/api/contacts/{cid}").status_code == 404


def test_read_after_write_from_another_connection(ws: Any) -> None:
    """The transaction commits before the response is sent, so any reader sees the write at once."""
    with ws.client() as writer, ws.client() as reader:
        for i in range(20):
            c = create(writer, phone_number=f"+1415556{i:04d}")
            assert reader.get(f"/api/contacts/{c['id']}").status_code == 200
