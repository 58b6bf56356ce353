"""The ftagent report endpoints (gre-tunnels, vm-stats, sp/metrics, sp/blocks, l7/detect,
l7/metrics, mirror-metrics) against the real server, playing the agent with bodies shaped as
ftagent 1.9.65 sends them (docs/agent-api.md §10), and what the REST API shows after; plus the
server-side expiry of incidents that stopped getting updates (§8.10)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from api.agentapi import incident_repo
from api.agentapi.report_repo import REPORT_KINDS as KINDS
from api.config import Config
from store.db import Store

from .conftest import Client, Server, assert_error, new_workspace, start_server
from .test_agent_api import OPEN, SPARSE_UPDATE, Agent, _incident, _ok, _setup

GRE_TUNNELS: dict[str, Any] = {
    "tunnels": [
        {"name": "gre0", "type": "ip/ip", "remote_ip": "198.51.100.190", "local_ip": "203.0.113.50"}
    ],
    "gre_dedup_active": False,
}
VM_STATS: dict[str, Any] = {
    "vms": [
        {
            "inner_ip": "10.20.6.217",
            "pps": 3831,
            "bps": 2091726,
            "tcp_pct": 78.9,
            "udp_pct": 20.3,
            "icmp_pct": 0.8,
            "src_ip_count": 500,
            "label": "Customer B",
        },
        {
            "inner_ip": "10.20.3.87",
            "pps": 1556,
            "bps": 1789400,
            "tcp_pct": 76.1,
            "udp_pct": 19.7,
            "icmp_pct": 4.2,
            "src_ip_count": 124,
            "label": "Customer B",
        },
        {
            "inner_ip": "10.20.3.86",
            "pps": 918,
            "bps": 1074060,
            "tcp_pct": 48.1,
            "udp_pct": 49.3,
            "icmp_pct": 2.6,
            "src_ip_count": 468,
            "label": "shared-lb",
        },
    ],
    "gre_dedup_active": True,
}
SP_METRICS: dict[str, Any] = {
    "service_pps": 26579,
    "service_bps": 180759339,
    "non_service_pps": 2558978,
    "non_service_bps": 11054784960,
    "blocked_pps": 1835926,
    "active_blocks": 43,
}
SP_BLOCKS: dict[str, Any] = {
    "incident_uuid": "3f6c1a2e-9b7d-4e15-8c0a-5d2e7f9b1c44",
    "blocks": [
        {
            "source_ip": "192.0.2.91",
            "block_scope": "non_service",
            "src_pps": 1510,
            "dst_ports": [4872, 19498, 32044],
            "cooldown": 300,
        },
        {
            "source_ip": "192.0.2.202",
            "block_scope": "non_service",
            "src_pps": 755,
            "dst_ports": [3287, 13864, 27080],
            "cooldown": 60,
        },
        {
            "source_ip": "203.0.113.2",
            "block_scope": "non_service",
            "src_pps": 503,
            "dst_ports": [50363],
            "cooldown": 300,
        },
    ],
}
L7_DISCOVERY = {
    "web_server": "caddy",
    "server_version": "v2.7.6",
    "detected_paths": ["/var/log/caddy/access.log"],
}
L7_TAILING = {
    "web_server": "detected",
    "detected_paths": ["/var/log/apache2/access.log"],
    "active_log_path": "/var/log/apache2/access.log",
}
L7_METRICS: dict[str, Any] = {
    "rps": 2709.6,
    "error_rate": 49.2,
    "unique_ips": 13,
    "total_requests": 23844,
    "top_paths": {"/graphql": 15987, "/index.html": 3996, "/api/v2/items": 1776},
    "top_ips": {"192.0.2.79": 7497, "192.0.2.218": 3748, "198.18.132.228": 1874},
    "status_codes": {"2xx": 12122, "4xx": 8205, "5xx": 3517},
    "window_seconds": 8.8,
    "top_user_agents": {"python-requests/2.31.0": 3815, "Go-http-client/1.1": 2861},
    "threat_patterns": {"sqli": 60, "scanner_probe": 79},
    "bot_request_pct": 28.0,
    "avg_response_ms": None,
    "status_5xx": 3517,
    "status_4xx": 8205,
    "status_499": 5198,
    "protocol_versions": {"1.1": 43.3, "2": 56.7},
    "rps_per_ip": 208.4,
    "h2_pct": 56.7,
    "h3_pct": 0.0,
}
MIRROR_METRICS: dict[str, Any] = {
    "ips": [
        {
            "ip": "203.0.113.2",
            "label": "",
            "pps": 1680899.2,
            "bps": 5690154516.8,
            "tcp_pct": 68.9,
            "udp_pct": 30.2,
            "icmp_pct": 0.9,
            "baseline_pps": 19868.7,
            "threshold_pps": 148393.9,
            "status": "attack",
            "src_ip_count": 1029,
        },
        {
            "ip": "203.0.113.5",
            "label": "db-02",
            "pps": 93311.4,
            "bps": 214889134.3,
            "tcp_pct": 55.9,
            "udp_pct": 42.0,
            "icmp_pct": 2.1,
            "baseline_pps": 70261.4,
            "threshold_pps": 431948.7,
            "status": "normal",
            "src_ip_count": 123,
        },
    ],
    "total_pps": 3165485.1,
    "total_bps": 12841520866.7,
    "tracked_ip_count": 51,
    "active_attacks": 1,
    "mirror_engine": {
        "mode": "af_packet",
        "interface": "ens5f1",
        "running": True,
        "packets_captured": 4288285763,
        "packets_errors": 27,
        "tracked_ips": 1524,
        "uptime_seconds": 48496.9,
        "workers": 4,
        "subnets": ["203.0.113.0/24"],
    },
}


@pytest.fixture(scope="module")
def rserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("reports") / "data")
    yield srv
    srv.stop()


def _reports(client: Client, node: str, query: str = "") -> dict[str, Any]:
    sep = "&" if query else "?"
    r = client.get(f"/api/v1/reports{query}{sep}node={node}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    assert out["ok"] is True
    return out


def _only(client: Client, node: str, kind: str) -> dict[str, Any]:
    page = _reports(client, node, f"?kind={kind}")
    assert page["total"] == 1, page
    report: dict[str, Any] = page["reports"][0]
    assert report["kind"] == kind and report["node_uuid"] == node
    return report


def test_gre_tunnels_answer_whitelisted(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    assert _ok(agent.post("/gre-tunnels", GRE_TUNNELS)) == {
        "ok": True,
        "whitelisted": ["198.51.100.190"],
    }
    report = _only(client, node, "gre-tunnels")
    assert report["body"] == GRE_TUNNELS
    assert report["item_count"] == 1 and report["repeats"] == 1
    assert report["summary"] == {
        "tunnels": 1,
        "whitelisted": ["198.51.100.190"],
        "gre_dedup_active": False,
    }
    # a GRE host whose ordinary gre/ip tunnels the agent cannot parse reports an empty list
    empty = {"tunnels": [], "gre_dedup_active": True}
    assert _ok(agent.post("/gre-tunnels", empty)) == {"ok": True, "whitelisted": []}
    # a bad remote address is not whitelisted; the tunnel is still stored
    odd = {"tunnels": [{"name": "t1", "type": "ip/ip", "remote_ip": "any"}], "extra": 1}
    assert _ok(agent.post("/gre-tunnels", odd))["whitelisted"] == []
    page = _reports(client, node, "?kind=gre-tunnels")
    assert page["total"] == 3
    assert [r["body"] for r in page["reports"]] == [odd, empty, GRE_TUNNELS]  # newest first


def test_vm_stats_repeats_collapse(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    # the agent repeats frozen totals every 5 s, and the retry queue replays: one row, counted
    for _ in range(3):
        assert _ok(agent.post("/vm-stats", copy.deepcopy(VM_STATS))) == {"ok": True}
    report = _only(client, node, "vm-stats")
    assert report["repeats"] == 3 and report["item_count"] == 3
    assert report["last_received_at"] >= report["received_at"]
    assert report["body"]["vms"][0]["label"] == "Customer B"
    assert report["summary"]["inner_ips"] == ["10.20.6.217", "10.20.3.87", "10.20.3.86"]
    assert report["summary"]["gre_dedup_active"] is True
    # new totals make a new row
    changed = copy.deepcopy(VM_STATS)
    changed["vms"][0]["pps"] = 4000
    _ok(agent.post("/vm-stats", changed))
    page = _reports(client, node, "?kind=vm-stats")
    assert page["total"] == 2 and page["reports"][0]["repeats"] == 1


def test_service_port_reports(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    assert _ok(agent.post("/sp/metrics", SP_METRICS)) == {"ok": True}
    report = _only(client, node, "sp-metrics")
    assert report["summary"]["non_service_bps"] == 11054784960
    assert report["summary"]["active_blocks"] == 43
    assert report["item_count"] is None and report["incident_ref"] is None
    # floats for ints, a sparse body, an unknown field
    _ok(agent.post("/sp/metrics", {"service_pps": 12.5, "blocked_pps": 0, "new_counter": "x"}))
    latest = _reports(client, node, "?kind=sp-metrics&limit=1")["reports"][0]
    assert latest["summary"]["service_pps"] == 12.5
    assert latest["summary"]["active_blocks"] is None
    assert latest["body"]["new_counter"] == "x"

    assert _ok(agent.post("/sp/blocks", SP_BLOCKS)) == {"ok": True}
    blocks = _only(client, node, "sp-blocks")
    assert blocks["incident_ref"] == SP_BLOCKS["incident_uuid"]
    assert blocks["item_count"] == 3
    assert blocks["summary"]["sources"] == ["192.0.2.91", "192.0.2.202", "203.0.113.2"]
    assert blocks["body"]["blocks"][1]["cooldown"] == 60
    # onnode mode: no incident
    _ok(agent.post("/sp/blocks", {**SP_BLOCKS, "incident_uuid": None}))
    assert _reports(client, node, "?kind=sp-blocks")["reports"][0]["incident_ref"] is None


def test_l7_reports_open_no_incident(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    for body in (L7_DISCOVERY, L7_TAILING, {"web_server": None, "server_version": None}):
        assert _ok(agent.post("/l7/detect", body)) == {"ok": True}
    page = _reports(client, node, "?kind=l7-detect")
    assert page["total"] == 3
    tailing = page["reports"][1]["summary"]
    assert tailing["web_server"] == "detected"
    assert tailing["active_log_path"] == "/var/log/apache2/access.log"
    nothing = page["reports"][0]["summary"]
    assert nothing["web_server"] is None and nothing["detected_paths"] == []
    assert page["reports"][2]["summary"]["server_version"] == "v2.7.6"

    assert _ok(agent.post("/l7/metrics", L7_METRICS)) == {"ok": True}
    # ints for floats, unknown fields
    _ok(agent.post("/l7/metrics", {"rps": 3, "error_rate": 0, "total_requests": 30, "h4": 1}))
    page = _reports(client, node, "?kind=l7-metrics")
    assert page["total"] == 2
    assert page["reports"][0]["summary"]["rps"] == 3.0
    flood = page["reports"][1]
    assert flood["summary"]["rps"] == 2709.6 and flood["summary"]["avg_response_ms"] is None
    assert flood["body"]["protocol_versions"] == {"1.1": 43.3, "2": 56.7}
    listed = client.get(f"/api/v1/incidents?node={node}").json()
    assert listed["total"] == 0


def test_mirror_metrics(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    assert _ok(agent.post("/mirror-metrics", MIRROR_METRICS)) == {"ok": True}
    # flow-only capture: no mirror_engine
    flow_only = {k: v for k, v in MIRROR_METRICS.items() if k != "mirror_engine"}
    flow_only["ips"] = []
    flow_only["active_attacks"] = 0
    _ok(agent.post("/mirror-metrics", flow_only))
    page = _reports(client, node, "?kind=mirror-metrics")
    assert page["total"] == 2
    snap = page["reports"][1]
    assert snap["summary"]["attacked_ips"] == ["203.0.113.2"]
    assert snap["summary"]["tracked_ip_count"] == 51 and snap["item_count"] == 2
    assert snap["body"]["mirror_engine"]["subnets"] == ["203.0.113.0/24"]
    assert page["reports"][0]["summary"]["attacked_ips"] == []


def test_reports_listing_paging_and_filters(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    _ok(agent.post("/sp/metrics", SP_METRICS))
    _ok(agent.post("/gre-tunnels", GRE_TUNNELS))
    _ok(agent.post("/l7/detect", L7_DISCOVERY))
    page = _reports(client, node)
    assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
    assert [r["kind"] for r in page["reports"]] == ["l7-detect", "gre-tunnels", "sp-metrics"]
    ids = [r["id"] for r in page["reports"]]
    assert ids == sorted(ids, reverse=True)
    second = _reports(client, node, "?limit=1&offset=1")
    assert second["total"] == 3 and [r["kind"] for r in second["reports"]] == ["gre-tunnels"]
    assert _reports(client, node, "?kind=")["total"] == 3
    assert _reports(client, node, "?kind=vm-stats") == {
        "ok": True,
        "reports": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    # a second node of the workspace: the unfiltered listing shows both nodes' reports
    r = client.post("/api/v1/nodes", json={"name": "second", "ip": "203.0.113.11"})
    assert r.status_code == 201, r.text
    second_agent = Agent(rserver, r.json()["node"])
    _ok(second_agent.post("/vm-stats", VM_STATS))
    assert _reports(client, node)["total"] == 3
    everything = client.get("/api/v1/reports").json()
    assert everything["total"] == 4
    assert everything["reports"][0]["node_uuid"] == second_agent.node["uuid"]
    assert_error(client.get("/api/v1/reports?kind=bogus"), 400, "invalid_parameter")
    assert_error(client.get("/api/v1/reports?limit=0"), 400, "invalid_parameter")
    assert_error(client.get("/api/v1/reports?node=nope"), 400, "invalid_parameter")


def test_latest_report_of_each_kind(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    r = client.get(f"/api/v1/nodes/{node}/reports")
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "node_uuid": node, "reports": dict.fromkeys(KINDS)}
    _ok(agent.post("/sp/metrics", SP_METRICS))
    _ok(agent.post("/sp/metrics", {**SP_METRICS, "active_blocks": 44}))
    _ok(agent.post("/l7/detect", L7_TAILING))
    latest = client.get(f"/api/v1/nodes/{node}/reports").json()["reports"]
    assert set(latest) == set(KINDS)
    assert latest["sp-metrics"]["body"]["active_blocks"] == 44
    assert latest["l7-detect"]["summary"]["active_log_path"] == "/var/log/apache2/access.log"
    assert latest["gre-tunnels"] is None and latest["mirror-metrics"] is None


def test_reports_are_workspace_scoped(rserver: Server) -> None:
    client, agent = _setup(rserver)
    node = agent.node["uuid"]
    _ok(agent.post("/gre-tunnels", GRE_TUNNELS))
    other = new_workspace(rserver)
    # another workspace's node: 404 for its latest reports, nothing in a listing
    assert_error(other.client.get(f"/api/v1/nodes/{node}/reports"), 404, "not_found")
    foreign = other.client.get(f"/api/v1/reports?node={node}").json()
    assert foreign["total"] == 0 and foreign["reports"] == []
    assert other.client.get("/api/v1/reports").json()["total"] == 0
    missing = uuid.uuid4()
    assert_error(client.get(f"/api/v1/nodes/{missing}/reports"), 404, "not_found")
    assert_error(client.get("/api/v1/nodes/not-a-uuid/reports"), 404, "not_found")
    # no deploy token, or a node key in its place
    url = rserver.url(f"/api/v1/nodes/{node}/reports")
    assert_error(requests.get(url, timeout=30), 401, "unauthorized")
    node_key = {"Authorization": f"Bearer {agent.node['api_key']}"}
    assert_error(requests.get(url, headers=node_key, timeout=30), 401, "unauthorized")
    listing = rserver.url("/api/v1/reports")
    assert_error(requests.get(listing, headers=node_key, timeout=30), 401, "unauthorized")
    # a deleted node's reports are gone from view
    assert client.delete(f"/api/v1/nodes/{node}").status_code == 200
    assert_error(client.get(f"/api/v1/nodes/{node}/reports"), 404, "not_found")
    assert client.get("/api/v1/reports").json()["total"] == 0


def test_report_auth_and_bad_bodies_are_4xx(rserver: Server) -> None:
    client, agent = _setup(rserver)
    _, other = _setup(rserver)
    intruder = Agent(rserver, {**agent.node, "uuid": other.node["uuid"]})
    assert_error(intruder.post("/vm-stats", VM_STATS), 403, "forbidden")
    stranger = Agent(rserver, {**agent.node, "api_key": "nope"})
    assert_error(stranger.post("/sp/metrics", SP_METRICS), 401, "unauthorized")
    assert_error(agent.post("/l7/metrics", [L7_METRICS]), 400, "invalid_json")
    bad = [
        ("/gre-tunnels", {"tunnels": "gre0"}, "tunnels"),
        ("/vm-stats", {"vms": {"inner_ip": "10.0.0.1"}}, "vms"),
        ("/sp/metrics", {**SP_METRICS, "service_pps": "fast"}, "service_pps"),
        ("/sp/metrics", {"blocked_pps": True}, "blocked_pps"),
        ("/sp/blocks", {"incident_uuid": 7, "blocks": []}, "incident_uuid"),
        ("/l7/detect", {"detected_paths": "/var/log/x"}, "detected_paths"),
        ("/l7/metrics", {"rps": 1, "top_paths": ["/"]}, "top_paths"),
        ("/mirror-metrics", {"ips": [], "mirror_engine": "af_packet"}, "mirror_engine"),
    ]
    for path, body, field in bad:
        err = assert_error(agent.post(path, body), 400, "invalid_parameter")
        assert err["error"]["field"] == field, (path, err)
    # nothing of it was stored; empty objects (the sparsest bodies) are accepted
    assert _reports(client, agent.node["uuid"])["total"] == 0
    for path in ("/gre-tunnels", "/vm-stats", "/sp/metrics", "/sp/blocks", "/mirror-metrics"):
        _ok(agent.post(path, {}))
    _ok(agent.post("/l7/detect", {}))
    _ok(agent.post("/l7/metrics", {}))
    assert _reports(client, agent.node["uuid"])["total"] == 7


def _db(srv: Server) -> Path:
    return srv.data_dir / Config().store.database_file


def test_stale_incidents_expire(tmp_path: Path) -> None:
    """Incidents that stop getting updates are resolved by the server, with a marker."""
    srv = start_server(tmp_path / "data")
    try:
        client, agent = _setup(srv)
        other_client, bystander = _setup(srv)
        stale = _ok(agent.post("/incidents", OPEN))["uuid"]
        done = _ok(agent.post("/incidents", {**OPEN, "started_at": "2026-03-14T19:00:00+00:00"}))
        _ok(agent.post(f"/incidents/{done['uuid']}/resolve", {"duration_seconds": 10}))
        other = _ok(bystander.post("/incidents", OPEN))["uuid"]
    finally:
        srv.stop()

    store = Store(_db(srv))
    store.open()
    try:
        con = store.con
        later = datetime.now(UTC) + timedelta(seconds=incident_repo.INCIDENT_IDLE_EXPIRY_SECS)
        # not yet idle long enough: nothing happens
        assert incident_repo.expire_stale_incidents(con, later - timedelta(seconds=60)) == 0
        # scoped to one node: only that node's active incident
        node = uuid.UUID(agent.node["uuid"])
        assert incident_repo.expire_stale_incidents(con, later, node_uuid=node) == 1
        assert incident_repo.expire_stale_incidents(con, later, node_uuid=node) == 0
        # the periodic sweep takes every node's
        assert incident_repo.expire_stale_incidents(con, later) == 1
    finally:
        store.close()

    srv = start_server(tmp_path / "data")
    client, other_client = Client(srv, client.token), Client(srv, other_client.token)
    agent = Agent(srv, agent.node)
    try:
        row = _incident(client, stale)
        assert row["status"] == "resolved" and row["resolved_at"] is not None
        assert row["detail"]["expired"]["by"] == "server"
        assert row["detail"]["open"]["baseline_pps"] == 29128.3  # the agent's data is kept
        assert "expired" not in _incident(client, done["uuid"])["detail"]
        assert _incident(other_client, other)["detail"]["expired"]["idle_secs"] > 0
        node_row = client.get(f"/api/v1/nodes/{agent.node['uuid']}").json()["node"]
        assert node_row["status"] != "attack"
        # a late update does not re-open it (it is kept apart); a late resolve still adds its
        # data
        _ok(agent.post(f"/incidents/{stale}", SPARSE_UPDATE))
        _ok(agent.post(f"/incidents/{stale}/resolve", {"confidence": 80}))
        row = _incident(client, stale)
        assert row["status"] == "resolved" and row["confidence"] == 80
        assert row["detail"]["updates"] == 0 and row["detail"]["late_updates"] == 1
        assert row["detail"]["late_update"] == SPARSE_UPDATE
    finally:
        srv.stop()


def test_expiry_runs_lazily_on_the_nodes_next_report(tmp_path: Path) -> None:
    """Store level: a node's open first expires its idle incidents, and an update or resolve
    first expires the incident it names when that one is idle (the server cannot be made to
    wait ten minutes in a test)."""
    store = Store(tmp_path / "x.duckdb")
    store.open()
    try:
        con = store.con
        ws, node, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        t0 = datetime.now(UTC)
        idle = timedelta(seconds=incident_repo.INCIDENT_IDLE_EXPIRY_SECS + 1)
        host, _ = incident_repo.open_incident(con, ws, node, OPEN, t0)
        l7, _ = incident_repo.open_incident(
            con, ws, node, {"attack_family": "http_flood", "rps": 2710}, t0
        )
        foreign, _ = incident_repo.open_incident(con, ws, other, OPEN, t0)

        def status(inc: uuid.UUID) -> str:
            row = con.execute("SELECT status FROM incidents WHERE uuid = ?", [str(inc)]).fetchone()
            assert row is not None
            return str(row[0])

        # the host incident keeps getting updates; the L7 one went quiet
        incident_repo.report_incident(
            con, ws, node, str(host), "update", SPARSE_UPDATE, t0 + idle / 2
        )
        incident_repo.expire_stale_incidents(con, t0 + idle, node_uuid=node)
        assert status(l7) == "resolved" and status(host) == "active"
        assert status(foreign) == "active"  # another node's is left to its own reports
        incident_repo.open_incident(con, ws, other, {**OPEN, "inner_ip": "x"}, t0 + idle)
        assert status(foreign) == "resolved"
        # an update after the silence lands on a resolved incident and does not revive it
        late = t0 + idle / 2 + idle
        incident_repo.report_incident(con, ws, node, str(host), "update", SPARSE_UPDATE, late)
        assert status(host) == "resolved"
        row = con.execute(
            "SELECT resolved_at, detail FROM incidents WHERE uuid = ?", [str(host)]
        ).fetchone()
        assert row is not None and row[0] == t0 + idle / 2
        detail = orjson.loads(row[1])
        assert detail["expired"]["by"] == "server"
        assert detail["updates"] == 1 and detail["late_updates"] == 1
        # one that is not idle is left active by an update
        fresh, _ = incident_repo.open_incident(con, ws, node, {**OPEN, "inner_ip": "y"}, late)
        incident_repo.report_incident(con, ws, node, str(fresh), "update", SPARSE_UPDATE, late)
        assert status(fresh) == "active"
    finally:
        store.close()
