"""Teams over real HTTP: members set by an admin, and round robin within a conversation's team
(only the team's available members; nobody available: it stays unassigned)."""

from __future__ import annotations

from tests.conftest import Workspace
from tests.inbox.helpers import invite, start_conversation


def test_round_robin_stays_within_the_conversations_team(
    ws: Workspace, make_workspace: object
) -> None:
    a, b, c = invite(ws), invite(ws), invite(ws)
    # Conversations that arrive before automatic assignment is on stay unassigned.
    _, first = start_conversation(ws)
    _, second = start_conversation(ws)
    r = ws.session.post("/api/teams", json={"name": "Billing"})
    assert r.status_code == 201, r.text
    team = r.json()["data"]["team"]
    assert team["member_ids"] == []
    r = a.client.put(f"/api/teams/{team['id']}/members", json={"user_ids": [b.user_id]})
    assert r.status_code == 403, r.text  # an agent does not manage teams
    stranger = make_workspace()  # type: ignore[operator]
    r = stranger.session.put(f"/api/teams/{team['id']}/members", json={"user_ids": []})
    assert r.status_code == 404, r.text
    outsider = stranger.session.get("/api/auth/me").json()["data"]["user"]["id"]
    r = ws.session.put(f"/api/teams/{team['id']}/members", json={"user_ids": [b.user_id, outsider]})
    assert r.status_code == 422 and outsider in r.json()["message"], r.text
    r = ws.session.put(
        f"/api/teams/{team['id']}/members", json={"user_ids": [b.user_id, c.user_id]}
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["data"]["team"]["member_ids"]) == sorted([b.user_id, c.user_id])
    listed = ws.session.get("/api/teams").json()["data"]["teams"]
    assert sorted(listed[0]["member_ids"]) == sorted([b.user_id, c.user_id])

    assert ws.session.put("/api/inbox/settings", json={"auto_assign": True}).is_success
    # c is away: of the team only b is available; a (and the owner) are not in it.
    assert ws.session.put(f"/api/members/{c.user_id}", json={"available": False}).is_success
    r = a.client.put(f"/api/conversations/{first['id']}/team", json={"team_id": team["id"]})
    assert r.status_code == 200, r.text
    got = ws.session.get(f"/api/conversations/{first['id']}").json()["data"]["conversation"]
    assert got["team_id"] == team["id"] and got["assignee"]["id"] == b.user_id
    events = ws.session.get(f"/api/conversations/{first['id']}/events").json()["data"]["events"]
    assert events[0]["kind"] == "assigned" and events[0]["data"]["reason"] == "auto"

    # Nobody of the team available: it stays unassigned, though a is available.
    assert ws.session.put(f"/api/members/{b.user_id}", json={"available": False}).is_success
    r = ws.session.put(f"/api/conversations/{second['id']}/team", json={"team_id": team["id"]})
    assert r.status_code == 200, r.text
    got = ws.session.get(f"/api/conversations/{second['id']}").json()["data"]["conversation"]
    assert got["team_id"] == team["id"] and got["assignee"] is None

    # A member who leaves the workspace leaves its teams.
    assert ws.session.delete(f"/api/members/{c.user_id}").is_success
    listed = ws.session.get("/api/teams").json()["data"]["teams"]
    assert listed[0]["member_ids"] == [b.user_id]
