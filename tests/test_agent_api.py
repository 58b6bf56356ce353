"""The ftagent Agent API against the real server, playing the agent with bodies shaped as
ftagent 1.9.65 sends them (heartbeats, metrics, config, commands and an incident's lifecycle:
docs/agent-api.md §4, §5, §6, §7 and §8)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .conftest import Client, Server, assert_error, new_workspace, start_server
from .telemetry import lake_query, wait_for

FAST_FLUSH = {"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2"}

HOST_HEARTBEAT: dict[str, Any] = {
    "version": "1.9.65",
    "baseline_ready": True,
    "baseline_quality": "high",
    "baseline_warmup_active": False,
    "baseline_total_samples": 86400,
    "baseline_avg_pps": 29128.3,
    "baseline_p99_pps": 50709.0,
    "baseline_hourly_ready": True,
    "baseline_current_hour_p99": 44391.0,
    "circuit_breaker": "closed",
    "retry_queue_size": 0,
    "gre_dedup_enabled": False,
    "hypervisor_mode": False,
    "pcap_active": True,
    "flow_active": False,
    "interface": "enp1s0f0",
    "available_interfaces": [
        {
            "name": "enp1s0f0",
            "rx_bytes": 2491836603606,
            "tx_bytes": 2383810137392,
            "has_traffic": True,
        }
    ],
    "zero_traffic_warning": False,
    "src_ip_overflow": False,
    "src_ip_count": 888,
    "pkt_samples_count": 230,
}
TEST_HEARTBEAT = {
    "version": "1.9.65",
    "baseline_ready": False,
    "baseline_avg_pps": 0,
    "baseline_p99_pps": 0,
    "baseline_hourly_ready": False,
    "baseline_current_hour_p99": 0,
}
UPDATE_ERROR_HEARTBEAT = {
    "update_error": "<urlopen error [Errno -3] Temporary failure in name resolution>",
    "current_version": "1.9.65",
}
FLOOD_METRICS = {
    "pps": 6886710.2,
    "bps": 18029718695.0,
    "tcp_pct": 2.9,
    "udp_pct": 96.4,
    "icmp_pct": 0.7,
    "conn_count": 1479,
    "threshold": 177563.9,
    "avg_pps": 6108426.8,
    "samples": 5,
}
OPEN = {
    "peak_pps": 6886710.2,
    "peak_bps": 18180914935.3,
    "started_at": "2026-03-14T18:10:41.874173+00:00",
    "attack_family": "udp_flood",
    "attack_subtype": None,
    "baseline_pps": 29128.3,
    "duration": 0,
    "gre_dedup_active": False,
    "top_src_ips": [
        {"ip": "192.0.2.73", "count": 92},
        {"ip": "198.18.142.215", "count": 61},
    ],
    "source_ip_count": 14,
}
SPARSE_UPDATE = {
    "peak_pps": 6886710.2,
    "peak_bps": 18180914935.3,
    "attack_family": "udp_flood",
    "attack_subtype": None,
    "protocol_breakdown": {"tcp": 2.9, "udp": 96.4, "icmp": 0.7, "other": 0},
    "source_ip_count": 37,
    "total_packets": 0,
    "top_src_ips": [{"ip": "203.0.113.63", "count": 150}],
    "top_dst_ports": [],
    "ioc_hits": [],
    "spoofing_detected": False,
    "botnet_detected": False,
    "fragment_count": 0,
    "fragment_pct": 0.0,
}
RESOLVE = {
    "duration_seconds": 54.8,
    "peak_pps": 6886710.2,
    "peak_bps": 18180914935.3,
    "attack_family": "udp_flood",
    "attack_subtype": "ssdp_amplification",
    "confidence": 75,
    "protocol_breakdown": {"tcp": 2.9, "udp": 96.4, "icmp": 0.7, "other": 0.0, "fragments": 0.0},
    "ioc_hits": [],
    "spoofing_detected": False,
    "botnet_detected": False,
    "total_packets": 991,
    "source_ip_count": 1858,
    "src_ip_entropy": 9.181,
    "tcp_flag_breakdown": {"SYN": 6, "ACK": 97, "RST": 0, "FIN": 0, "PSH": 0, "URG": 0},
    "dns_query_stats": {"total": 0, "unique": 0, "top": []},
    "ttl_distribution": {"53": 33, "57": 167},
    "velocity_curve": [{"t": 0, "pps": 2337783.1}, {"t": 5.1, "pps": 3949357.0}],
    "top_src_ips": [{"ip": "192.0.2.4", "count": 148, "confidence": 30, "pct": 14.93}],
    "top_dst_ports": [{"port": 28465, "count": 527}],
    "avg_pkt_length": 330.0,
    "fragment_count": 0,
    "fragment_pct": 0.0,
}


@pytest.fixture(scope="module")
def aserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("agent") / "data", env=FAST_FLUSH)
    yield srv
    srv.stop()


class Agent:
    """What ftagent 1.9.65 sends: bearer key, X-Node-UUID, JSON Content-Type on every call."""

    def __init__(self, server: Server, node: dict[str, Any]) -> None:
        self.server = server
        self.node = node
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {node['api_key']}",
                "X-Node-UUID": node["uuid"],
                "User-Agent": "ftagent/1.9.65",
                "Content-Type": "application/json",
            }
        )

    def get(self, path: str) -> requests.Response:
        return self.session.get(
            self.server.url("/api/v1/agent" + path), timeout=30, allow_redirects=False
        )

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(
            self.server.url("/api/v1/agent" + path), json=body, timeout=30, allow_redirects=False
        )


def _setup(srv: Server) -> tuple[Client, Agent]:
    ws = new_workspace(srv)
    r = ws.client.post(
        "/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:8]}", "ip": "203.0.113.10"}
    )
    assert r.status_code == 201, r.text
    return ws.client, Agent(srv, r.json()["node"])


def _ok(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict)
    return body


def _incident(client: Client, inc: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/incidents/{inc}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()["incident"]
    return out


def test_authentication(aserver: Server) -> None:
    _, agent = _setup(aserver)
    _, other = _setup(aserver)
    url = aserver.url("/api/v1/agent/heartbeat")
    no_key = requests.post(url, json=TEST_HEARTBEAT, timeout=30)
    assert_error(no_key, 401, "unauthorized")
    bad_key = requests.post(
        url,
        json=TEST_HEARTBEAT,
        headers={"Authorization": "Bearer nope", "X-Node-UUID": agent.node["uuid"]},
        timeout=30,
    )
    assert_error(bad_key, 401, "unauthorized")
    no_uuid = requests.post(
        url,
        json=TEST_HEARTBEAT,
        headers={"Authorization": f"Bearer {agent.node['api_key']}"},
        timeout=30,
    )
    assert_error(no_uuid, 401, "unauthorized")
    mismatch = requests.post(
        url,
        json=TEST_HEARTBEAT,
        headers={
            "Authorization": f"Bearer {agent.node['api_key']}",
            "X-Node-UUID": other.node["uuid"],
        },
        timeout=30,
    )
    assert_error(mismatch, 403, "forbidden")
    # upper-case UUID header is the same node
    agent.session.headers["X-Node-UUID"] = agent.node["uuid"].upper()
    _ok(agent.post("/heartbeat", TEST_HEARTBEAT))


def test_config_is_complete_and_typed(aserver: Server) -> None:
    client, agent = _setup(aserver)
    cfg = _ok(agent.get("/config"))
    assert "ok" not in cfg  # bare object
    for key in ("flow", "l7", "service_ports"):
        assert isinstance(cfg[key], dict), key
    for key in ("ioc_patterns", "ip_blocklist", "pending_commands"):
        assert isinstance(cfg[key], list), key
    assert cfg["pending_commands"] == []
    assert cfg["dynamic_threshold"] is True and not cfg["pps_threshold"]
    assert isinstance(cfg["attack_holddown"], int) and cfg["attack_holddown"] >= 3
    assert 2 <= cfg["confirm_ticks"] <= 30 and cfg["attack_cooldown"] >= 10
    assert cfg["service_ports"]["enabled"] is False and cfg["service_ports"]["ports"] == []
    assert not any(k.startswith("mirror_") for k in cfg)
    assert "suspended" not in cfg and "force_update" not in cfg
    # keys of the agent's local file where absent means "unchanged": only when an operator
    # sets them (sending the defaults would turn capture back on where it was turned off)
    assert "pcap_enabled" not in cfg and "velocity_detection" not in cfg

    r = client.patch(
        f"/api/v1/nodes/{agent.node['uuid']}",
        json={
            "sp_enabled": True,
            "sp_response_mode": "pipeline",
            "service_ports": [
                {"protocol": "tcp", "port_value": "22,80,443"},
                {"protocol": "udp", "port_value": "27015-27030"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    sp = _ok(agent.get("/config"))["service_ports"]
    assert sp["enabled"] is True and sp["response_mode"] == "pipeline"
    assert sp["ports"] == [
        {"protocol": "tcp", "port_value": "22,80,443"},
        {"protocol": "udp", "port_value": "27015-27030"},
    ]
    assert isinstance(sp["pps_threshold"], int) and isinstance(sp["ip_safelist"], list)


def test_heartbeat_variants_mark_node_online(aserver: Server) -> None:
    client, agent = _setup(aserver)
    node_url = f"/api/v1/nodes/{agent.node['uuid']}"
    before = client.get(node_url).json()["node"]
    assert before["status"] == "offline" and before["last_seen"] is None
    mirror = {**copy.deepcopy(HOST_HEARTBEAT), "mirror_mode": True, "mirror_engine": None}
    for body in (HOST_HEARTBEAT, mirror, TEST_HEARTBEAT):
        _ok(agent.post("/heartbeat", body))
    # liveness is batched in memory, but a REST read sees the heartbeat at once
    node = client.get(node_url).json()["node"]
    assert node["status"] == "online"
    assert node["last_seen"] is not None and node["last_heartbeat_at"] is not None
    assert node["agent_version"] == "1.9.65"
    # the newest heartbeat, as sent; ``ftagent --test`` (six fixed fields) proves the node
    # alive but says nothing of how its agent runs, so it does not replace it
    assert node["agent_status"] == mirror
    assert node["agent_update_error"] is None
    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))
    assert wait_for(
        lambda: client.get(node_url).json()["node"]["agent_status"] == HOST_HEARTBEAT, 10
    )
    # the self-update failure report has no version: it keeps the status and records the error
    _ok(agent.post("/heartbeat", UPDATE_ERROR_HEARTBEAT))
    assert wait_for(
        lambda: (
            client.get(node_url).json()["node"]["agent_update_error"]
            == UPDATE_ERROR_HEARTBEAT["update_error"]
        ),
        10,
    )
    node = client.get(node_url).json()["node"]
    assert node["agent_status"] == HOST_HEARTBEAT and node["agent_update_error_at"] is not None
    assert node["agent_version"] == "1.9.65"


def test_metrics_land_in_lake_and_mark_node_seen(aserver: Server) -> None:
    client, agent = _setup(aserver)
    full = _ok(agent.post("/metrics", FLOOD_METRICS))
    assert full == {"ok": True}
    # back to back, yet current metrics: no heartbeat announced a retry queue to flush
    # ints for floats, unknown fields, a sparse body
    _ok(agent.post("/metrics", {"pps": 1000, "bps": 8000000, "future_field": [1, 2]}))
    where = f"node_uuid = '{agent.node['uuid']}'"
    assert wait_for(
        lambda: (
            int(lake_query(aserver.data_dir, f"SELECT count(*) FROM metrics WHERE {where}")[0][0])
            == 2
        )
    )
    rows = lake_query(
        aserver.data_dir,
        f"SELECT pps, bps, udp_pps, conn_count, source FROM metrics WHERE {where} ORDER BY pps",
    )
    assert rows[0] == (1000.0, 8000000.0, None, None, "ftagent")
    assert rows[1][0] == 6886710.2 and rows[1][3] == 1479 and rows[1][4] == "ftagent"
    assert rows[1][2] == pytest.approx(6886710.2 * 0.964)
    assert wait_for(
        lambda: (
            client.get(f"/api/v1/nodes/{agent.node['uuid']}").json()["node"]["last_seen"]
            is not None
        )
    )


def test_bad_bodies_are_4xx(aserver: Server) -> None:
    _, agent = _setup(aserver)
    assert_error(agent.post("/metrics", {"bps": 1.0}), 400, "invalid_parameter")
    assert_error(agent.post("/metrics", {"pps": "fast", "bps": 1}), 400, "invalid_parameter")
    assert_error(agent.post("/heartbeat", [1, 2]), 400, "invalid_json")
    r = agent.session.post(aserver.url("/api/v1/agent/heartbeat"), data=b"<html>", timeout=30)
    assert_error(r, 400, "invalid_json")
    assert_error(agent.post("/commands/ack", {"status": "applied"}), 400, "invalid_parameter")


def test_incident_lifecycle_and_replays(aserver: Server) -> None:
    client, agent = _setup(aserver)
    opened = _ok(agent.post("/incidents", OPEN))
    inc = opened["uuid"]
    assert isinstance(inc, str) and str(uuid.UUID(inc)) == inc
    # the retry queue replays the open: same incident
    assert _ok(agent.post("/incidents", copy.deepcopy(OPEN)))["uuid"] == inc
    node = client.get(f"/api/v1/nodes/{agent.node['uuid']}").json()["node"]
    assert node["status"] == "attack"
    row = _incident(client, inc)
    assert row["status"] == "active" and row["attack_family"] == "udp_flood"
    assert row["severity"] == "critical"  # 6.9 Mpps
    assert row["detail"]["open"]["baseline_pps"] == 29128.3
    assert row["detail"]["open_replays"] == 1

    _ok(agent.post(f"/incidents/{inc}", SPARSE_UPDATE))
    _ok(agent.post(f"/incidents/{inc}", {**SPARSE_UPDATE, "peak_pps": 10, "source_ip_count": 40}))
    row = _incident(client, inc)
    assert row["peak_pps"] == 6886710.2  # the maximum is kept
    assert row["source_ip_count"] == 40
    assert row["detail"]["updates"] == 2
    assert row["protocol_breakdown"]["udp"] == 96.4

    _ok(agent.post(f"/incidents/{inc}/resolve", RESOLVE))
    _ok(agent.post(f"/incidents/{inc}/resolve", RESOLVE))  # replayed resolve
    row = _incident(client, inc)
    assert row["status"] == "resolved" and row["resolved_at"] is not None
    assert row["confidence"] == 75 and row["attack_subtype"] == "ssdp_amplification"
    assert row["detail"]["resolve"]["ttl_distribution"] == {"53": 33, "57": 167}
    assert row["detail"]["resolve"]["velocity_curve"][1]["pps"] == 3949357.0
    assert row["top_dst_ports"] == [{"port": 28465, "count": 527}]
    # the forensic fields at the top level too, from the newest report that has them
    for key in ("tcp_flag_breakdown", "ttl_distribution", "velocity_curve", "top_src_ips"):
        assert row[key] == RESOLVE[key], key
    assert "pkt_length_histogram" not in row  # nothing made up for what was never sent
    assert row["src_ip_entropy"] == 9.181 and row["spoofing_detected"] is False
    assert row["baseline_pps"] == 29128.3  # only the open had it
    listed = client.get(f"/api/v1/incidents?node_uuid={agent.node['uuid']}").json()
    assert listed["total"] == 1
    node = client.get(f"/api/v1/nodes/{agent.node['uuid']}").json()["node"]
    assert node["status"] != "attack"


def test_unknown_uuids_are_upserted(aserver: Server) -> None:
    client, agent = _setup(aserver)
    local = str(uuid.uuid4())
    r = _ok(agent.post(f"/incidents/{local}", SPARSE_UPDATE))
    assert r["uuid"] == local and r["created"] is True
    assert _ok(agent.post(f"/incidents/{local}/resolve", RESOLVE))["created"] is False
    row = _incident(client, local)
    assert row["status"] == "resolved" and row["detail"]["last_update"]["source_ip_count"] == 37

    # a resolve alone, L7 shape: paths for ports, rps velocity, ints for floats
    lone = str(uuid.uuid4())
    l7 = {
        "duration_seconds": 30,
        "peak_pps": 0,
        "peak_bps": 0,
        "peak_rps": 2400,
        "baseline_rps": 40,
        "attack_family": "http_flood",
        "attack_subtype": "volumetric_flood",
        "top_dst_ports": {"/login": 900, "/": 300},
        "velocity_curve": [{"t": 0, "rps": 1200}],
        "l7_status_codes": {"2xx": 100, "4xx": 900},
    }
    _ok(agent.post(f"/incidents/{lone}/resolve", l7))
    row = _incident(client, lone)
    assert row["status"] == "resolved" and row["severity"] == "high"
    assert row["top_dst_ports"] == [{"path": "/login", "count": 900}, {"path": "/", "count": 300}]
    assert row["detail"]["resolve"]["l7_status_codes"] == {"2xx": 100, "4xx": 900}
    assert row["l7_status_codes"] == {"2xx": 100, "4xx": 900} and row["peak_rps"] == 2400
    assert row["velocity_curve"] == [{"t": 0, "rps": 1200}]
    assert row["duration_seconds"] == 30

    # server-disabled L7 resolve (minimal body) for an id that is not even a UUID
    _ok(
        agent.post(
            "/incidents/local-7/resolve",
            {
                "duration_seconds": 0,
                "attack_family": "http_flood",
                "confidence": 50,
                "status": "resolved",
            },
        )
    )
    # another node cannot touch this node's incident: its report makes its own
    _, other = _setup(aserver)
    r = _ok(other.post(f"/incidents/{local}", SPARSE_UPDATE))
    assert r["uuid"] != local
    assert _incident(client, local)["detail"]["updates"] == 1


def test_mirror_opens_coexist(aserver: Server) -> None:
    client, agent = _setup(aserver)
    base = {**OPEN, "mirror_mode": True, "peak_pps": 50000, "peak_bps": 200_000_000}
    a = _ok(agent.post("/incidents", {**base, "inner_ip": "203.0.113.5"}))["uuid"]
    b = _ok(agent.post("/incidents", {**base, "inner_ip": "203.0.113.6"}))["uuid"]
    assert a != b
    listed = client.get(f"/api/v1/incidents?status=active&node_uuid={agent.node['uuid']}").json()
    assert listed["total"] == 2
    assert _incident(client, a)["severity"] == "medium"


def test_command_acks(aserver: Server) -> None:
    _, agent = _setup(aserver)
    ok = {"command_id": 680759, "status": "applied", "error": None}
    assert _ok(agent.post("/commands/ack", ok)) == {"ok": True}
    assert _ok(agent.post("/commands/ack", ok)) == {"ok": True}  # duplicate ack
    failed = {
        "command_id": 188380,
        "status": "failed",
        "error": "iptables -I INPUT -p tcp --syn -m limit --limit 200/s -j ACCEPT: exit code 4",
    }
    _ok(agent.post("/commands/ack", failed))
