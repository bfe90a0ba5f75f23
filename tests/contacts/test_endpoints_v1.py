"""/v1/contacts (seed 003): upsert by phone, merge semantics, cnt_ ids, paging, error shape."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest

from tests.conftest import Workspace


def upsert(v1: httpx.Client, expect: int | None = None, **body: Any) -> dict[str, Any]:
    r = v1.post("/v1/contacts", json=body)
    if expect is not None:
        assert r.status_code == expect, r.text
    return dict(r.json())


def test_upsert_overwrites_replaces_tags_merges_custom_fields(v1: httpx.Client) -> None:
    first = upsert(
        v1,
        201,
        phone="918856879188",
        first_name="Priya",
        last_name="Sharma",
        email="priya@example.com",
        tags=["Lead", "High-Priority"],
        custom_fields={"shopify_id": "cust_29813a", "acquisition_source": "AdWords"},
    )
    assert first["created"] is True and first["contact"]["stage"] == "Lead"
    # Same number written differently is the same contact.
    second = upsert(
        v1,
        200,
        phone="+91 88568-79188",
        first_name="Priyanka",
        tags=["Customer"],
        custom_fields={"acquisition_source": None, "orders": 3, "vip": True, "ltv": 12.5},
    )
    c = second["contact"]
    assert second["created"] is False and c["id"] == first["contact"]["id"]
    assert c["first_name"] == "Priyanka"
    assert c["last_name"] == "Sharma" and c["email"] == "priya@example.com"  # absent: untouched
    assert c["tags"] == ["Customer"]  # replaced
    assert c["custom_fields"] == {
        "shopify_id": "cust_29813a",
        "orders": 3,
        "vip": True,
        "ltv": 12.5,
    }
    third = upsert(v1, 200, phone="918856879188", last_name=None, email="")
    assert third["contact"]["last_name"] is None and third["contact"]["email"] is None
    assert third["contact"]["updated_at"] >= c["updated_at"]


def test_get_and_delete_by_cnt_id(v1: httpx.Client) -> None:
    c = upsert(v1, 201, phone="14155550120")["contact"]
    r = v1.get(f"/v1/contacts/{c['id']}")
    assert r.status_code == 200 and r.json() == {"success": True, "contact": c}
    r = v1.delete(f"/v1/contacts/{c['id']}")
    assert r.status_code == 200 and r.json() == {"success": True, "id": c["id"], "deleted": True}
    r = v1.get(f"/v1/contacts/{c['id']}")
    assert r.status_code == 404
    assert r.json() == {
        "success": False,
        "error": {"code": "contact_not_found", "message": "Contact not found"},
    }
    for bad in (
        "cnt_",
        "cnt_abc",
        "918856879188",
        "cnt_99999999999999999999",
        "00000000-0000-0000-0000-000000000000",
    ):
        assert v1.get(f"/v1/contacts/{bad}").status_code == 404
        assert v1.delete(f"/v1/contacts/{bad}").status_code == 404


def test_limit_offset_tag(v1: httpx.Client) -> None:
    ids = []
    for i in range(30):
        ids.append(
            upsert(v1, 201, phone=f"1415555{i:04d}", tags=["vip"] if i % 3 == 0 else ["std"])[
                "contact"
            ]["id"]
        )
    body = v1.get("/v1/contacts").json()
    assert body["pagination"] == {"total": 30, "limit": 20, "offset": 0}
    assert [c["id"] for c in body["contacts"]] == ids[:20]
    body = v1.get("/v1/contacts", params={"limit": 5, "offset": 27}).json()
    assert [c["id"] for c in body["contacts"]] == ids[27:]
    assert body["pagination"] == {"total": 30, "limit": 5, "offset": 27}
    body = v1.get("/v1/contacts", params={"tag": "vip", "limit": 100}).json()
    assert body["pagination"]["total"] == 10
    assert [c["id"] for c in body["contacts"]] == ids[::3]
    assert (
        v1.get("/v1/contacts", params={"tag": "VIP"}).json()["pagination"]["total"] == 0
    )  # exact match


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_query_is_422_naming_it(v1: httpx.Client, params: dict[str, Any], field: str) -> None:
    r = v1.get("/v1/contacts", params=params)
    assert r.status_code == 422
    err = r.json()
    assert err["success"] is False and err["error"]["code"] == "validation_error"
    assert err["error"]["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phone"),
        ({"phone": ""}, "phone"),
        ({"phone": "918856"}, "phone"),
        ({"phone": "+1 (415) 555-01x0"}, "phone"),
        ({"phone": "918856879188", "email": "priya@"}, "email"),
        ({"phone": "918856879188", "tags": ["ok", "  "]}, "tags"),
        ({"phone": "918856879188", "custom_fields": {"shopifyId": "x"}}, "custom_fields"),
        ({"phone": "918856879188", "custom_fields": {"a": {"b": 1}}}, "custom_fields"),
        ({"phone": "918856879188", "stage": "Gold"}, "stage"),
        ({"phone": "918856879188", "name": "Priya Sharma"}, "name"),
        ({"phone": "918856879188", "phone_number": "918856879188"}, "phone_number"),
    ],
)
def test_bad_upsert_names_field_and_writes_nothing(
    v1: httpx.Client, body: dict[str, Any], field: str
) -> None:
    r = v1.post("/v1/contacts", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"].startswith(field), err
    assert field in err["message"]
    assert v1.get("/v1/contacts").json()["pagination"]["total"] == 0


def test_bad_update_of_existing_contact_changes_nothing(v1: httpx.Client) -> None:
    c = upsert(v1, 201, phone="918856879188", first_name="Priya", tags=["Lead"])["contact"]
    r = v1.post("/v1/contacts", json={"phone": "918856879188", "first_name": "X", "tags": [""]})
    assert r.status_code == 422
    assert v1.get(f"/v1/contacts/{c['id']}").json()["contact"] == c


def test_concurrent_upserts_of_one_phone_make_one_contact(ws: Workspace) -> None:
    def call(i: int) -> tuple[int, bool]:
        with ws.client(bearer=True) as c:
            r = c.post(
                "/v1/contacts",
                json={"phone": "918856879188", "first_name": f"P{i}", "tags": [f"t{i % 3}"]},
            )
            return r.status_code, bool(r.json().get("created"))

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(32)))
    assert sorted(code for code, _ in results) == [200] * 31 + [201]
    assert sum(created for _, created in results) == 1
    with ws.client(bearer=True) as c:
        body = c.get("/v1/contacts").json()
        assert body["pagination"]["total"] == 1
        tag = body["contacts"][0]["tags"][0]
        assert c.get("/v1/contacts", params={"tag": tag}).json()["pagination"]["total"] == 1
        for other in {"t0", "t1", "t2"} - {tag}:
            assert c.get("/v1/contacts", params={"tag": other}).json()["pagination"]["total"] == 0


def test_concurrent_creates_keep_totals_exact(ws: Workspace) -> None:
    def call(i: int) -> int:
        with ws.client(bearer=True) as c:
            return c.post(
                "/v1/contacts", json={"phone": f"1415557{i:04d}", "tags": ["bulk", f"g{i % 4}"]}
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(call, range(80)))
    assert codes == [201] * 80
    with ws.client(bearer=True) as c:
        assert c.get("/v1/contacts").json()["pagination"]["total"] == 80
        assert c.get("/v1/contacts", params={"tag": "bulk"}).json()["pagination"]["total"] == 80
        assert c.get("/v1/contacts", params={"tag": "g1"}).json()["pagination"]["total"] == 20
        seen = []
        for offset in range(0, 80, 25):
            seen += [
                x["id"]
                for x in c.get("/v1/contacts", params={"limit": 25, "offset": offset}).json()[
                    "contacts"
                ]
            ]
        assert len(set(seen)) == 80


def test_ids_are_never_reused_after_a_delete(v1: httpx.Client) -> None:
    a = upsert(v1, 201, phone="14155550150")["contact"]
    b = upsert(v1, 201, phone="14155550151")["contact"]
    assert v1.delete(f"/v1/contacts/{b['id']}").status_code == 200
    c = upsert(v1, 201, phone="14155550152")["contact"]
    assert c["id"] not in (a["id"], b["id"])
    assert v1.get(f"/v1/contacts/{b['id']}").status_code == 404


def test_nested_custom_field_gets_one_clear_message(v1: httpx.Client) -> None:
    r = v1.post("/v1/contacts", json={"phone": "918856879188", "custom_fields": {"a": {"b": 1}}})
    err = r.json()["error"]
    assert r.status_code == 422 and err["field"] == "custom_fields"
    assert "string, number, boolean or null" in err["message"] and len(err["details"]) == 1


def test_service_errors_carry_details_like_schema_errors(v1: httpx.Client) -> None:
    r = v1.post("/v1/contacts", json={"phone": "918856879188", "stage": "Gold"})
    err = r.json()["error"]
    assert err["field"] == "stage" and err["details"][0]["field"] == "stage"
    assert not err["details"][0]["message"].startswith("stage:")
