"""/v1/contacts (seed 003): upsert by phone, merge semantics, cnt_ ids, paging, error shape."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from aisoule.config import normalize_database_url
from aisoule.db.base import UTCDateTime
from aisoule.migrations.runner import alembic_config
from tests.conftest import Workspace
from tests.messages.test_end_to_end import customer_writes, sandbox, wait_for
from tests.servers import Server, make_server, pg_url, sibling_postgres


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


# --- /v1 ids are numbered per workspace -------------------------------------------------------


def _number(contact_id: str) -> int:
    match = re.fullmatch(r"cnt_([0-9]+)", contact_id)
    assert match, contact_id
    return int(match.group(1))


def test_ids_count_per_workspace_and_reveal_nothing_of_another(make_workspace: Any) -> None:
    a, b = make_workspace(), make_workspace()
    with a.client(bearer=True) as va, b.client(bearer=True) as vb, a.client() as api_a:
        ids_a: list[str] = []
        ids_b: list[str] = []
        for i in range(4):  # interleaved: every create of A is followed by one of B
            ids_a.append(upsert(va, 201, phone=f"91885687{i:04d}")["contact"]["id"])
            ids_b.append(upsert(vb, 201, phone=f"91885687{i:04d}")["contact"]["id"])
            # An upsert that turns out to be an update takes no number ...
            assert upsert(va, 200, phone=f"91885687{i:04d}", first_name="Again")["created"] is False
            # ... nor does a create refused because the phone exists.
            r = api_a.post("/api/contacts", json={"phone_number": f"+91885687{i:04d}"})
            assert r.status_code == 409, r.text
        # A contact made on /api takes A's next number too.
        r = api_a.post("/api/contacts", json={"phone_number": "+919000000001"})
        assert r.status_code == 201, r.text
        ids_a.append(va.get("/v1/contacts", params={"limit": 100}).json()["contacts"][-1]["id"])
    assert ids_a == ["cnt_1", "cnt_2", "cnt_3", "cnt_4", "cnt_5"]
    assert ids_b == ["cnt_1", "cnt_2", "cnt_3", "cnt_4"]


def test_an_id_of_another_workspace_names_nothing_there(make_workspace: Any) -> None:
    a, b = make_workspace(), make_workspace()
    with a.client(bearer=True) as va, b.client(bearer=True) as vb:
        mine = [upsert(va, 201, phone=f"1415555{i:04d}")["contact"] for i in range(3)]
        theirs = upsert(vb, 201, phone="919876543210", first_name="B's own")["contact"]
        assert theirs["id"] == mine[0]["id"] == "cnt_1"  # the same id, each its own contact
        assert vb.get("/v1/contacts/cnt_1").json()["contact"] == theirs
        for c in mine[1:]:
            assert vb.get(f"/v1/contacts/{c['id']}").status_code == 404
            assert vb.delete(f"/v1/contacts/{c['id']}").status_code == 404
            r = vb.get("/v1/messages", params={"contact": c["id"]})
            assert r.status_code == 200 and r.json()["pagination"]["total"] == 0
        with b.client() as api_b:
            r = api_b.post("/api/messages/send", json={"to": mine[2]["id"], "text": {"body": "hi"}})
            assert r.status_code == 422 and "no such contact" in r.json()["message"], r.text
        for c in mine:  # untouched
            assert va.get(f"/v1/contacts/{c['id']}").json()["contact"] == c


def test_concurrent_creates_in_one_workspace_get_distinct_ids(ws: Workspace) -> None:
    def create(i: int) -> httpx.Response:
        with ws.client(bearer=True) as c:
            return c.post("/v1/contacts", json={"phone": f"1415558{i:04d}"})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(create, range(20)))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    ids = [r.json()["contact"]["id"] for r in responses]
    assert sorted(map(_number, ids)) == list(range(1, 21))  # distinct, and none skipped
    with ws.client(bearer=True) as c:
        for r in responses:
            contact = r.json()["contact"]
            assert c.get(f"/v1/contacts/{contact['id']}").json()["contact"] == contact


def test_messages_name_their_contact_by_its_v1_id(make_workspace: Any, server: Server) -> None:
    a, b = make_workspace(), make_workspace()
    with a.client(bearer=True) as va:
        for i in range(3):
            upsert(va, 201, phone=f"1415555{i:04d}")
    for w, expected in ((a, "cnt_4"), (b, "cnt_1")):
        with w.client() as api, w.client(bearer=True) as v1:
            customer_writes(server, sandbox(api)["phone_number_id"], "Hello?")

            def listed(api: httpx.Client = api) -> list[dict[str, Any]]:
                return list(api.get("/api/messages").json()["data"]["messages"])

            inbound = wait_for(listed, "the inbound message")
            contact = v1.get(f"/v1/contacts/{expected}").json()["contact"]
            assert contact["phone"] == "919812345678"
            mine = api.get(f"/api/contacts/{inbound[0]['contact_id']}")  # /api: by uuid
            assert mine.json()["data"]["contact"]["phone_number"] == "+919812345678", mine.text
            one = v1.get(f"/v1/messages/{inbound[0]['id']}").json()["data"]
            assert one["contact_id"] == expected
            filtered = v1.get("/v1/messages", params={"contact": expected}).json()
            assert [m["id"] for m in filtered["data"]] == [inbound[0]["id"]]


# --- the upgrade keeps every existing id ------------------------------------------------------


def _sql(url: str, work: Callable[[sa.Connection], Any]) -> Any:
    async def run() -> Any:
        engine = create_async_engine(normalize_database_url(url))
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _workspace_with_key(srv: Server, name: str) -> tuple[str, str]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    out = srv.cli(
        "user", "create", "--email", email, "--password", "a long password", "--name", name,
        "--workspace", name,
    ).stdout  # fmt: skip
    workspace_id = out.strip().rsplit(" ", 1)[-1]
    scopes = ["--scope", "contacts:read", "--scope", "contacts:write"]
    key = srv.cli("apikey", "create", "--email", email, "--name", "k", *scopes).stdout.strip()
    return workspace_id, key


def test_contacts_from_before_the_upgrade_keep_their_ids(server: Server, tmp_path: Path) -> None:
    url = sibling_postgres(pg_url(), "numbers") if server.backend == "postgresql" else None
    srv = make_server(server.backend, tmp_path, database_url=url)
    command.upgrade(alembic_config(srv.database_url), "0004")  # before per-workspace numbers
    (ws_a, key_a), (ws_b, key_b) = (_workspace_with_key(srv, n) for n in ("Alpha", "Beta"))
    _, key_c = _workspace_with_key(srv, "Gamma")  # no contacts yet

    def old_rows(conn: sa.Connection) -> dict[str, list[int]]:
        # The table as it was at 0003 (read from the database), with the app's own column types.
        contacts = sa.Table(
            "contacts",
            sa.MetaData(),
            *(sa.Column(c, sa.Uuid()) for c in ("uuid", "workspace_id")),
            *(sa.Column(c, UTCDateTime()) for c in ("created_at", "updated_at")),
            autoload_with=conn,
        )
        now = datetime.now(UTC)
        made: dict[str, list[int]] = {ws_a: [], ws_b: []}
        # One platform-wide sequence: A and B interleave; B's last one is deleted again.
        for i, ws in enumerate([ws_a, ws_b, ws_a, ws_b, ws_b]):
            row = conn.execute(
                contacts.insert().returning(contacts.c.id),
                {
                    "uuid": uuid.uuid4(), "workspace_id": uuid.UUID(ws), "phone": f"+1415555{i:04d}",
                    "first_name": f"Old {i}", "stage": "Lead", "tags": [], "custom_fields": {},
                    "created_at": now, "updated_at": now,
                },
            ).scalar_one()  # fmt: skip
            made[ws].append(row)
        conn.execute(contacts.delete().where(contacts.c.id == made[ws_b].pop()))
        return made

    made = _sql(srv.database_url, old_rows)
    assert made == {ws_a: [1, 3], ws_b: [2, 4]}
    srv.cli("migrate")
    srv.start()
    try:
        clients = {
            k: httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {k}"}, timeout=30)
            for k in (key_a, key_b, key_c)
        }
        va, vb, vc = clients[key_a], clients[key_b], clients[key_c]
        for v, own, other in ((va, [1, 3], [2, 4, 5]), (vb, [2, 4], [1, 3, 5])):
            listed = v.get("/v1/contacts").json()["contacts"]
            assert [c["id"] for c in listed] == [f"cnt_{n}" for n in own]
            for n, c in zip(own, listed, strict=True):
                assert v.get(f"/v1/contacts/cnt_{n}").json()["contact"] == c
                assert c["first_name"] == f"Old {n - 1}"
            for n in other:
                assert v.get(f"/v1/contacts/cnt_{n}").status_code == 404
        # New contacts continue above every id issued before (5, deleted, included), each
        # workspace on its own; a workspace without contacts continues there too.
        assert upsert(va, 201, phone="919000000001")["contact"]["id"] == "cnt_6"
        assert upsert(vb, 201, phone="919000000001")["contact"]["id"] == "cnt_6"
        assert upsert(va, 201, phone="919000000002")["contact"]["id"] == "cnt_7"
        assert upsert(vc, 201, phone="919000000001")["contact"]["id"] == "cnt_6"
        # An old contact is still updated in place, by phone, at its old id.
        again = upsert(va, 200, phone="14155550002", first_name="Renamed")["contact"]
        assert again["id"] == "cnt_3" and again["first_name"] == "Renamed"
        _, key_d = _workspace_with_key(srv, "Delta")  # created after the upgrade: starts at 1
        with httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {key_d}"}, timeout=30
        ) as vd:
            assert upsert(vd, 201, phone="919000000001")["contact"]["id"] == "cnt_1"
        for v in clients.values():
            v.close()
    finally:
        srv.stop()
    if srv.backend == "sqlite":  # the rebuilt table kept AUTOINCREMENT: internal ids never repeat

        def table_sql(conn: sa.Connection) -> tuple[str, int]:
            sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'contacts'"))
            seq = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'contacts'"))
            return sql.scalar_one(), seq.scalar_one()

        sql, seq = _sql(srv.database_url, table_sql)
        assert "AUTOINCREMENT" in sql and seq == 5 + 5  # 5 before, 5 created since
