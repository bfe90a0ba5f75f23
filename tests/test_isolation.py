"""Tenant isolation: another workspace's key sees none of this workspace's rows and gets 404 on its ids."""

from __future__ import annotations

from typing import Any

from tests.conftest import Workspace


def test_second_workspace_sees_nothing_and_gets_404(make_workspace: Any) -> None:
    a: Workspace = make_workspace()
    b: Workspace = make_workspace()
    with a.client() as ca, b.client() as cb:
        api_c = ca.post(
            "/api/contacts",
            json={"phone_number": "+919876543210", "name": "A's customer", "tags": ["shared"]},
        ).json()["data"]["contact"]
        v1_c = ca.post("/v1/contacts", json={"phone": "918856879188", "tags": ["shared"]}).json()[
            "contact"
        ]
        key_id = a.key_id

        assert cb.get("/api/contacts").json()["data"]["total"] == 0
        assert cb.get("/api/contacts", params={"tag": "shared"}).json()["data"]["contacts"] == []
        assert cb.get("/api/contacts", params={"q": "customer"}).json()["data"]["contacts"] == []
        assert cb.get("/v1/contacts").json()["pagination"]["total"] == 0
        assert cb.get("/v1/contacts", params={"tag": "shared"}).json()["contacts"] == []

        for method, path, body in [
            ("GET", f"/api/contacts/{api_c['id']}", None),
            ("PUT", f"/api/contacts/{api_c['id']}", {"name": "hijacked"}),
            ("DELETE", f"/api/contacts/{api_c['id']}", None),
            ("GET", f"/v1/contacts/{v1_c['id']}", None),
            ("DELETE", f"/v1/contacts/{v1_c['id']}", None),
            ("DELETE", f"/api/api-keys/{key_id}", None),
        ]:
            r = cb.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)

        # The same phone in another workspace is another contact, not a conflict or an update of A's.
        r = cb.post("/v1/contacts", json={"phone": "918856879188", "first_name": "B"})
        assert r.status_code == 201 and r.json()["contact"]["id"] != v1_c["id"]

        # Nothing of A changed.
        assert ca.get(f"/api/contacts/{api_c['id']}").json()["data"]["contact"] == api_c
        assert ca.get(f"/v1/contacts/{v1_c['id']}").json()["contact"]["first_name"] is None
        assert ca.get("/api/contacts").json()["data"]["total"] == 2
        assert ca.get("/v1/contacts").status_code == 200  # A's key was not revoked
        assert all(
            k["id"] != key_id for k in b.session.get("/api/api-keys").json()["data"]["api_keys"]
        )
