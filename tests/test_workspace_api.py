"""REST v1 workspace info, white-label sub-workspaces, analytics summary and status overview."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from store import Store

from .conftest import Client, Server, Workspace, new_workspace, start_server
from .helpers_seed import (
    HEX64,
    NODES,
    Seed,
    SeededIncident,
    assert_envelope,
    assert_invalid,
    assert_uuid,
    parse_ts,
    seed_client,
    seeded_server,
)

RANGES = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    with seeded_server(tmp_path_factory) as pair:
        yield pair


@pytest.fixture(scope="module")
def quiet_ws(server: Server) -> Workspace:
    """A workspace that only reads or gets refused: it never holds a node or sub-workspace."""
    return new_workspace(server)


def unique_email() -> str:
    return f"owner-{uuid.uuid4().hex[:10]}@example.com"


def create_sub(client: Client, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"customer-{uuid.uuid4().hex[:8]}")
    r = client.post("/api/v1/workspaces", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


# --- workspace info ----------------------------------------------------------------------------


def test_workspace_info(ws: Workspace) -> None:
    r = ws.client.get("/api/v1/workspace")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    info = body["workspace"]
    assert info["uuid"] == ws.id
    assert info["name"].startswith("ws-")
    assert info["plan"] == "self-hosted"
    assert info["node_count"] == 0
    assert info["node_limit"] is None
    assert info["subscription_status"] == "active"
    assert info["parent_uuid"] is None
    assert info["sub_workspace_count"] == 0
    parse_ts(info["created_at"])
    assert ws.token not in r.text

    for i in range(2):
        r = ws.client.post("/api/deploy", json={"name": f"edge-{i}", "ip": "192.0.2.1"})
        assert r.status_code == 200, r.text
    assert ws.client.get("/api/v1/workspace").json()["workspace"]["node_count"] == 2


def test_workspace_info_reflects_plan_and_subscription(server: Server) -> None:
    w = new_workspace(server, "--plan", "starter")
    info = w.client.get("/api/v1/workspace").json()["workspace"]
    assert (info["plan"], info["node_limit"], info["subscription_status"]) == (
        "starter",
        5,
        "active",
    )
    server.cli("workspace", "update", w.id, "--subscription-status", "past_due")
    info = w.client.get("/api/v1/workspace").json()["workspace"]
    assert info["subscription_status"] == "past_due"
    # past_due is not active: writes are refused with 402
    r = w.client.post("/api/v1/nodes", json={"name": "edge", "ip": "192.0.2.1"})
    assert_envelope(r, 402, "payment_required")
    r = w.client.post("/api/v1/workspaces", json={"name": "sub"})
    assert_envelope(r, 402, "payment_required")


def test_workspace_info_needs_a_token(server: Server) -> None:
    assert_envelope(requests.get(server.url("/api/v1/workspace"), timeout=30), 401, "unauthorized")


# --- sub-workspaces ----------------------------------------------------------------------------


def test_create_sub_workspace(ws: Workspace) -> None:
    email = unique_email()
    out = create_sub(ws.client, name="Customer One", email=email, send_welcome_email=False)
    assert out["ok"] is True
    sub = out["workspace"]
    assert_uuid(sub["uuid"])
    assert HEX64.match(sub["deploy_token"])
    assert sub["name"] == "Customer One"
    assert sub["parent_uuid"] == ws.id
    assert sub["email"] == email
    assert sub["node_count"] == 0
    assert sub["subscription_status"] == "active"
    assert out["user"]["email"] == email

    parent = ws.client.get("/api/v1/workspace").json()["workspace"]
    assert parent["sub_workspace_count"] == 1

    # the new token names the sub-workspace
    sub_client = Client(ws.client.server, sub["deploy_token"])
    info = sub_client.get("/api/v1/workspace").json()["workspace"]
    assert (info["uuid"], info["parent_uuid"]) == (sub["uuid"], ws.id)


def test_sub_workspace_token_manages_its_own_nodes_only(ws: Workspace) -> None:
    sub = create_sub(ws.client)["workspace"]
    sub_client = Client(ws.client.server, sub["deploy_token"])
    mine = ws.client.post("/api/v1/nodes", json={"name": "parent-node", "ip": "192.0.2.1"})
    assert mine.status_code == 201, mine.text
    parent_node = mine.json()["node"]

    r = sub_client.post("/api/v1/nodes", json={"name": "sub-node", "ip": "192.0.2.2"})
    assert r.status_code == 201, r.text
    sub_node = r.json()["node"]
    r = sub_client.post("/api/deploy", json={"name": "parent-node", "ip": "192.0.2.3"})
    assert r.status_code == 200, r.text  # names are per workspace
    deployed = r.json()["node_uuid"]

    sub_list = sub_client.get("/api/v1/nodes").json()
    assert [n["uuid"] for n in sub_list["nodes"]] == [sub_node["uuid"], deployed]
    parent_list = ws.client.get("/api/v1/nodes").json()
    assert [n["uuid"] for n in parent_list["nodes"]] == [parent_node["uuid"]]

    assert_envelope(ws.client.get(f"/api/v1/nodes/{sub_node['uuid']}"), 404, "not_found")
    assert_envelope(sub_client.get(f"/api/v1/nodes/{parent_node['uuid']}"), 404, "not_found")
    assert_envelope(ws.client.delete(f"/api/v1/nodes/{sub_node['uuid']}"), 404, "not_found")
    assert sub_client.get(f"/api/v1/nodes/{sub_node['uuid']}").status_code == 200

    # the parent sees the sub-workspace's nodes through the workspaces endpoint
    one = ws.client.get(f"/api/v1/workspaces/{sub['uuid']}").json()["workspace"]
    assert [n["uuid"] for n in one["nodes"]] == [sub_node["uuid"], deployed]
    assert one["node_count"] == one["nodes_total"] == 2


def test_sub_workspace_token_cannot_manage_workspaces(ws: Workspace) -> None:
    sub = create_sub(ws.client)["workspace"]
    sub_client = Client(ws.client.server, sub["deploy_token"])
    assert_envelope(sub_client.get("/api/v1/workspaces"), 403, "forbidden")
    assert_envelope(
        sub_client.post("/api/v1/workspaces", json={"name": "nested"}), 403, "forbidden"
    )
    assert_envelope(sub_client.get(f"/api/v1/workspaces/{sub['uuid']}"), 403, "forbidden")
    assert_envelope(sub_client.delete(f"/api/v1/workspaces/{sub['uuid']}"), 403, "forbidden")
    # nothing was created or deleted
    listing = ws.client.get("/api/v1/workspaces").json()
    assert [w["uuid"] for w in listing["workspaces"]] == [sub["uuid"]]


def test_list_and_get_sub_workspaces(ws: Workspace) -> None:
    created = [create_sub(ws.client, name=f"c{i}")["workspace"] for i in range(3)]
    r = ws.client.get("/api/v1/workspaces")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    assert [w["uuid"] for w in body["workspaces"]] == [c["uuid"] for c in created]
    assert [w["name"] for w in body["workspaces"]] == ["c0", "c1", "c2"]
    for c in created:  # the deploy token is shown once, at creation
        assert c["deploy_token"] not in r.text
    page = ws.client.get("/api/v1/workspaces?limit=2&offset=2").json()
    assert [w["uuid"] for w in page["workspaces"]] == [created[2]["uuid"]]
    assert page["total"] == 3

    one = ws.client.get(f"/api/v1/workspaces/{created[1]['uuid']}")
    assert one.status_code == 200, one.text
    got = one.json()["workspace"]
    assert (got["uuid"], got["name"], got["parent_uuid"]) == (created[1]["uuid"], "c1", ws.id)
    assert (got["nodes"], got["nodes_total"]) == ([], 0)
    assert created[1]["deploy_token"] not in one.text

    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("offset=-1", "offset")):
        assert_invalid(ws.client.get(f"/api/v1/workspaces?{query}"), field)


def test_duplicate_email_is_409(ws: Workspace, other_ws: Workspace) -> None:
    email = unique_email()
    first = create_sub(ws.client, email=email)["workspace"]
    for again in (email, email.upper()):
        r = ws.client.post("/api/v1/workspaces", json={"name": "dup", "email": again})
        body = assert_envelope(r, 409, "conflict")
        assert "already exists" in body["error"]["message"]
    assert ws.client.get("/api/v1/workspaces").json()["total"] == 1
    # another reseller may have a customer with the same address
    create_sub(other_ws.client, email=email)
    # and once deleted, the address is free again
    assert ws.client.delete(f"/api/v1/workspaces/{first['uuid']}").status_code == 200
    create_sub(ws.client, email=email)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "c", "email": "not-an-email"}, "email"),
        ({"name": "c", "email": "a@b"}, "email"),
        ({"name": "c", "email": 7}, "email"),
        ({"name": "c", "send_welcome_email": "yes"}, "send_welcome_email"),
        ({"name": "c", "plan": "platinum"}, "plan"),
        ({"name": "c", "node_limit": "ten"}, "node_limit"),
        ({"name": "c", "node_limit": -1}, "node_limit"),
        ({"name": "c", "node_limit": True}, "node_limit"),
        ({"name": "c", "deploy_token": "x"}, "deploy_token"),
        ({"name": "c", "parent_uuid": "x"}, "parent_uuid"),
    ],
)
def test_create_sub_workspace_rejects_bad_fields(
    quiet_ws: Workspace, body: dict[str, Any], field: str
) -> None:
    assert_invalid(quiet_ws.client.post("/api/v1/workspaces", json=body), field)
    assert quiet_ws.client.get("/api/v1/workspaces").json()["total"] == 0


def test_sub_workspace_plan_and_limit(ws: Workspace) -> None:
    sub = create_sub(ws.client, plan="free")["workspace"]
    assert (sub["plan"], sub["node_limit"]) == ("free", 1)
    sub_client = Client(ws.client.server, sub["deploy_token"])
    assert sub_client.post("/api/deploy", json={"name": "a", "ip": "192.0.2.1"}).status_code == 200
    r = sub_client.post("/api/deploy", json={"name": "b", "ip": "192.0.2.2"})
    assert_envelope(r, 402, "payment_required")
    big = create_sub(ws.client, plan="starter", node_limit=7)["workspace"]
    assert (big["plan"], big["node_limit"]) == ("starter", 7)


@pytest.mark.parametrize(
    "ref", ["00000000-0000-0000-0000-000000000000", "nope", "12"], ids=["zero", "text", "int"]
)
def test_unknown_sub_workspace_is_404(quiet_ws: Workspace, ref: str) -> None:
    assert_envelope(quiet_ws.client.get(f"/api/v1/workspaces/{ref}"), 404, "not_found")
    assert_envelope(quiet_ws.client.delete(f"/api/v1/workspaces/{ref}"), 404, "not_found")


def test_own_workspace_is_not_a_sub_workspace(quiet_ws: Workspace) -> None:
    assert_envelope(quiet_ws.client.get(f"/api/v1/workspaces/{quiet_ws.id}"), 404, "not_found")
    assert_envelope(quiet_ws.client.delete(f"/api/v1/workspaces/{quiet_ws.id}"), 404, "not_found")
    assert quiet_ws.client.get("/api/v1/workspace").status_code == 200


def test_delete_sub_workspace(ws: Workspace) -> None:
    keep = create_sub(ws.client)["workspace"]
    sub = create_sub(ws.client)["workspace"]
    sub_client = Client(ws.client.server, sub["deploy_token"])
    assert sub_client.post("/api/deploy", json={"name": "a", "ip": "192.0.2.1"}).status_code == 200

    r = ws.client.delete(f"/api/v1/workspaces/{sub['uuid']}")
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True

    assert_envelope(sub_client.get("/api/v1/nodes"), 401, "unauthorized")
    assert_envelope(sub_client.get("/api/v1/workspace"), 401, "unauthorized")
    assert_envelope(ws.client.get(f"/api/v1/workspaces/{sub['uuid']}"), 404, "not_found")
    assert_envelope(ws.client.delete(f"/api/v1/workspaces/{sub['uuid']}"), 404, "not_found")
    listing = ws.client.get("/api/v1/workspaces").json()
    assert ([w["uuid"] for w in listing["workspaces"]], listing["total"]) == ([keep["uuid"]], 1)
    assert ws.client.get("/api/v1/workspace").json()["workspace"]["sub_workspace_count"] == 1
    # the other sub-workspace is untouched
    keep_client = Client(ws.client.server, keep["deploy_token"])
    assert keep_client.get("/api/v1/workspace").status_code == 200


def test_delete_sub_workspace_deactivates_its_nodes(tmp_path: Path) -> None:
    """Checked in the database itself, on a server of its own that the test stops."""
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        parent = new_workspace(srv)
        own = parent.client.post("/api/deploy", json={"name": "p", "ip": "192.0.2.1"})
        assert own.status_code == 200, own.text
        sub = create_sub(parent.client)["workspace"]
        sub_client = Client(srv, sub["deploy_token"])
        sub_nodes = []
        for name in ("a", "b"):
            r = sub_client.post("/api/deploy", json={"name": name, "ip": "192.0.2.2"})
            assert r.status_code == 200, r.text
            sub_nodes.append(r.json()["node_uuid"])
        assert parent.client.delete(f"/api/v1/workspaces/{sub['uuid']}").status_code == 200
        assert parent.client.get("/api/v1/nodes").json()["total"] == 1
    finally:
        srv.stop()
    store = Store(data / "floodwatch.duckdb")
    store.open()
    try:
        rows = store.con.execute(
            "SELECT CAST(uuid AS VARCHAR), deleted_at IS NOT NULL FROM nodes"
        ).fetchall()
        deleted = dict(rows)
        tokens = store.con.execute(
            "SELECT count(*), count(revoked_at) FROM deploy_tokens WHERE workspace_uuid = ?",
            [sub["uuid"]],
        ).fetchone()
    finally:
        store.close()
    assert all(deleted[u] for u in sub_nodes), deleted
    assert deleted[own.json()["node_uuid"]] is False
    assert tokens is not None and tokens[0] == tokens[1] == 1


# --- analytics summary -------------------------------------------------------------------------


def test_analytics_empty_workspace(quiet_ws: Workspace) -> None:
    r = quiet_ws.client.get("/api/v1/analytics/summary")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert body["range"] == "30d"  # the default
    since, until = parse_ts(body["since"]), parse_ts(body["until"])
    assert until - since == timedelta(days=30)
    assert body["incidents"] == {
        "total": 0,
        "by_severity": {"critical": 0, "high": 0, "medium": 0, "low": 0},
        "by_family": {},
        "by_status": {"active": 0, "resolved": 0, "false_positive": 0},
    }
    assert len(body["series"]) == (until.date() - since.date()).days + 1
    assert all(d["total"] == 0 for d in body["series"])
    assert body["top_nodes"] == []
    assert body["peak_pps"] == 0 and body["peak_bps"] == 0
    assert body["total_attack_seconds"] == 0
    assert body["mttr_seconds"] is None


@pytest.mark.parametrize("range_key", sorted(RANGES))
def test_analytics_ranges(quiet_ws: Workspace, range_key: str) -> None:
    body = quiet_ws.client.get(f"/api/v1/analytics/summary?range={range_key}").json()
    assert body["range"] == range_key
    since, until = parse_ts(body["since"]), parse_ts(body["until"])
    assert until - since == timedelta(days=RANGES[range_key])
    dates = [d["date"] for d in body["series"]]
    want = [
        (since.date() + timedelta(days=k)).isoformat()
        for k in range((until.date() - since.date()).days + 1)
    ]
    assert dates == want


@pytest.mark.parametrize("value", ["1d", "30", "30D", "7d ", "all", "14d", "-7d", "0d"])
def test_analytics_rejects_bad_range(quiet_ws: Workspace, value: str) -> None:
    assert_invalid(
        quiet_ws.client.get("/api/v1/analytics/summary", params={"range": value}), "range"
    )


def _expected_summary(
    incidents: list[SeededIncident], since: datetime, until: datetime
) -> dict[str, Any]:
    inside = [i for i in incidents if i.started_at >= since]
    by_severity = {s: 0 for s in ("critical", "high", "medium", "low")}
    by_status = {s: 0 for s in ("active", "resolved", "false_positive")}
    by_family: dict[str, int] = {}
    for i in inside:
        by_severity[i.spec.severity] += 1
        by_status[i.spec.status] += 1
        by_family[i.spec.family] = by_family.get(i.spec.family, 0) + 1
    attack_seconds = 0
    repair: list[int] = []
    for i in inside:
        end = i.resolved_at or until  # ``until`` is the server's "now", to the second
        if i.spec.status != "false_positive":
            attack_seconds += int((end - i.started_at).total_seconds())
        if i.spec.status == "resolved":
            repair.append(int((end - i.started_at).total_seconds()))
    days = (until.date() - since.date()).days + 1
    series = []
    for k in range(days):
        day = since.date() + timedelta(days=k)
        todays = [i for i in inside if i.started_at.date() == day]
        row = {"date": day.isoformat(), "total": len(todays)}
        for sev in ("critical", "high", "medium", "low"):
            row[sev] = sum(1 for i in todays if i.spec.severity == sev)
        row["peak_pps"] = max((i.spec.peak_pps for i in todays), default=0)
        series.append(row)
    per_node: dict[str, dict[str, Any]] = {}
    for i in inside:
        n = per_node.setdefault(
            i.node_uuid,
            {"node_uuid": i.node_uuid, "name": i.node_name, "incidents": 0, "peak_pps": 0.0},
        )
        n["incidents"] += 1
        n["peak_pps"] = max(n["peak_pps"], i.spec.peak_pps)
        n["peak_bps"] = max(n.get("peak_bps", 0.0), i.spec.peak_bps)
    top = sorted(per_node.values(), key=lambda n: (-n["incidents"], -n["peak_pps"], n["name"]))
    return {
        "incidents": {
            "total": len(inside),
            "by_severity": by_severity,
            "by_family": dict(sorted(by_family.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_status": by_status,
        },
        "series": series,
        "top_nodes": top[:10],
        "peak_pps": max((i.spec.peak_pps for i in inside), default=0.0),
        "peak_bps": max((i.spec.peak_bps for i in inside), default=0.0),
        "total_attack_seconds": attack_seconds,
        "mttr_seconds": round(sum(repair) / len(repair), 1) if repair else None,
    }


@pytest.mark.parametrize("range_key", sorted(RANGES))
def test_analytics_against_seed(seeded: tuple[Server, Seed], range_key: str) -> None:
    srv, seed = seeded
    body = seed_client(srv, seed, "alpha").get(f"/api/v1/analytics/summary?range={range_key}")
    assert body.status_code == 200, body.text
    got = body.json()
    since, until = parse_ts(got["since"]), parse_ts(got["until"])
    assert until - since == timedelta(days=RANGES[range_key])
    want = _expected_summary(list(seed.ws("alpha").incidents.values()), since, until)

    assert got["incidents"] == want["incidents"]
    assert list(got["incidents"]["by_family"]) == list(want["incidents"]["by_family"])
    assert got["series"] == want["series"]
    assert sum(d["total"] for d in got["series"]) == got["incidents"]["total"]
    assert got["top_nodes"] == want["top_nodes"]
    assert got["peak_pps"] == want["peak_pps"]
    assert got["peak_bps"] == want["peak_bps"]
    assert got["total_attack_seconds"] == want["total_attack_seconds"]
    assert got["mttr_seconds"] == want["mttr_seconds"]


def test_analytics_seed_sanity(seeded: tuple[Server, Seed]) -> None:
    """Hand-computed figures for 7d, so a mistake shared by the server and the helper shows."""
    srv, seed = seeded
    got = seed_client(srv, seed, "alpha").get("/api/v1/analytics/summary?range=7d").json()
    assert got["incidents"]["total"] == 4  # i1..i4
    assert got["incidents"]["by_severity"] == {"critical": 1, "high": 1, "medium": 1, "low": 1}
    assert got["incidents"]["by_family"] == {
        "udp_flood": 2,
        "dns_amplification": 1,
        "syn_flood": 1,
    }
    assert got["incidents"]["by_status"] == {"active": 1, "resolved": 2, "false_positive": 1}
    assert got["mttr_seconds"] == 485.0  # (370 + 600) / 2
    assert got["peak_pps"] == 480_000.0
    a = seed.ws("alpha")
    assert [(n["node_uuid"], n["incidents"]) for n in got["top_nodes"]] == [
        (a.nodes["a1"].uuid, 2),
        (a.nodes["a2"].uuid, 2),
    ]
    # 370 + 600 resolved, the false positive excluded, i1 still running since seed - 2h
    assert got["total_attack_seconds"] >= 970 + 7200
    # over 90 days a2 has the most incidents (i3, i4, i6)
    got90 = seed_client(srv, seed, "alpha").get("/api/v1/analytics/summary?range=90d").json()
    assert got90["top_nodes"][0]["node_uuid"] == a.nodes["a2"].uuid
    assert got90["top_nodes"][0]["incidents"] == 3


def test_analytics_is_per_workspace(seeded: tuple[Server, Seed]) -> None:
    srv, seed = seeded
    got = seed_client(srv, seed, "bravo").get("/api/v1/analytics/summary?range=7d").json()
    assert got["incidents"]["total"] == 2
    assert [n["node_uuid"] for n in got["top_nodes"]] == [seed.ws("bravo").nodes["b1"].uuid]


# --- status overview ---------------------------------------------------------------------------


def test_status_overview_empty_and_offline(ws: Workspace) -> None:
    r = ws.client.get("/api/v1/status")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert body["status"] == "operational"
    assert body["counts"] == {"total": 0, "online": 0, "offline": 0, "attack": 0, "elevated": 0}
    assert body["incidents"] == {"active": 0, "last_24h": 0}
    assert body["nodes"] == []
    parse_ts(body["generated_at"])

    made = []
    for i in range(2):
        r = ws.client.post(
            "/api/v1/nodes", json={"name": f"edge-{i}", "ip": f"192.0.2.{i + 1}", "location": "x"}
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["node"])
    body = ws.client.get("/api/v1/status").json()
    assert body["status"] == "degraded"
    assert body["counts"] == {"total": 2, "online": 0, "offline": 2, "attack": 0, "elevated": 0}
    assert body["truncated"] is False
    assert [n["uuid"] for n in body["nodes"]] == [m["uuid"] for m in made]
    for n, m in zip(body["nodes"], made, strict=True):
        assert (n["name"], n["ip"], n["location"], n["status"]) == (
            m["name"],
            m["ip"],
            "x",
            "offline",
        )
        assert n["last_seen"] is None and n["active_incidents"] == 0
        assert "api_key" not in n


def test_status_overview_seeded(seeded: tuple[Server, Seed]) -> None:
    srv, seed = seeded
    body = seed_client(srv, seed, "alpha").get("/api/v1/status").json()
    specs = [s for s in NODES if s.ws == "alpha"]
    counts = {"total": len(specs), "online": 0, "offline": 0, "attack": 0, "elevated": 0}
    for s in specs:
        counts[s.status] += 1
    assert body["counts"] == counts
    assert body["status"] == "under_attack"
    # i1 is active; i1 (2 h) and i2 (20 h) started within 24 hours
    assert body["incidents"] == {"active": 1, "last_24h": 2}
    by_uuid = {n["uuid"]: n for n in body["nodes"]}
    assert set(by_uuid) == {seed.ws("alpha").nodes[s.key].uuid for s in specs}
    for s in specs:
        n = by_uuid[seed.ws("alpha").nodes[s.key].uuid]
        assert n["status"] == s.status, s
        assert (n["ip"], n["location"], n["priority"]) == (s.ip, s.location, s.priority)
        assert (n["last_pps"], n["last_bps"]) == (s.last_pps, s.last_bps)
        assert n["active_incidents"] == (1 if s.key == "a1" else 0)
        if s.seen:
            assert parse_ts(n["last_seen"]) == seed.now
        else:
            assert n["last_seen"] is None


def test_status_overview_of_other_workspace(seeded: tuple[Server, Seed]) -> None:
    srv, seed = seeded
    body = seed_client(srv, seed, "bravo").get("/api/v1/status").json()
    assert body["counts"] == {"total": 1, "online": 0, "offline": 0, "attack": 1, "elevated": 0}
    assert body["incidents"] == {"active": 1, "last_24h": 1}
    assert [n["uuid"] for n in body["nodes"]] == [seed.ws("bravo").nodes["b1"].uuid]


# --- contract details --------------------------------------------------------------------------

WORKSPACE_KEYS = {
    "uuid",
    "name",
    "plan",
    "node_count",
    "node_limit",
    "subscription_status",
    "parent_uuid",
    "white_label",
    "sub_workspace_count",
    "email",
    "created_at",
    "updated_at",
}


def test_workspace_objects_have_the_documented_keys(ws: Workspace) -> None:
    top = ws.client.get("/api/v1/workspace").json()["workspace"]
    assert set(top) == WORKSPACE_KEYS, set(top) ^ WORKSPACE_KEYS
    assert top["white_label"] is True  # a top-level workspace may have sub-workspaces
    password = "Sup3r-Secret-Pass-" + uuid.uuid4().hex
    r = ws.client.post(
        "/api/v1/workspaces",
        json={
            "name": "c",
            "email": unique_email(),
            "password": password,
            "send_welcome_email": True,
        },
    )
    assert r.status_code == 201, r.text
    assert password not in r.text  # accepted and discarded, never echoed
    sub = r.json()["workspace"]
    assert set(sub) == WORKSPACE_KEYS | {"deploy_token"}
    assert sub["white_label"] is False
    assert r.json()["user"]["welcome_email_sent"] is False
    listed = ws.client.get("/api/v1/workspaces").json()["workspaces"]
    assert [set(w) for w in listed] == [WORKSPACE_KEYS]
    one = ws.client.get(f"/api/v1/workspaces/{sub['uuid']}").json()["workspace"]
    assert set(one) == WORKSPACE_KEYS | {"nodes", "nodes_total"}
    sub_view = Client(ws.client.server, sub["deploy_token"]).get("/api/v1/workspace")
    assert set(sub_view.json()["workspace"]) == WORKSPACE_KEYS
    assert sub["deploy_token"] not in sub_view.text


def test_sub_workspace_limit_is_capped_by_the_parent(server: Server) -> None:
    parent = new_workspace(server, "--node-limit", "3")
    for body in (
        {"name": "too-big", "node_limit": 4},
        {"name": "unlimited", "node_limit": None},
        {"name": "unlimited-plan", "plan": "enterprise"},
    ):
        assert_invalid(parent.client.post("/api/v1/workspaces", json=body), "node_limit")
    assert parent.client.get("/api/v1/workspaces").json()["total"] == 0
    ok = create_sub(parent.client, node_limit=3)["workspace"]
    assert ok["node_limit"] == 3
    free = create_sub(parent.client, plan="free")["workspace"]
    assert free["node_limit"] == 1


def test_series_has_one_entry_per_day_plus_today(quiet_ws: Workspace) -> None:
    for range_key, days in RANGES.items():
        body = quiet_ws.client.get(f"/api/v1/analytics/summary?range={range_key}").json()
        assert len(body["series"]) == days + 1, range_key
        assert body["series"][-1]["date"] == parse_ts(body["until"]).date().isoformat()
    empty = quiet_ws.client.get("/api/v1/analytics/summary?range=").json()
    assert empty["range"] == "30d"  # an empty enum parameter means the default
