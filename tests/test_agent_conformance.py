"""ftagent protocol corners an audit of the Agent API against the agent's behaviour turned up
(docs/agent-api.md describes how each is handled): the ``--test`` heartbeat, replays from the
agent's retry queue (late updates, opens replayed after the agent reported the attack under a
UUID of its own), resolves that set the start of an incident built from updates, config keys the
agent's local file owns, ``l7.action``, the self-update error, and heartbeats too big to store
whole."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from .conftest import Server, start_server
from .telemetry import wait_for
from .test_agent_api import (
    FAST_FLUSH,
    HOST_HEARTBEAT,
    OPEN,
    RESOLVE,
    SPARSE_UPDATE,
    TEST_HEARTBEAT,
    UPDATE_ERROR_HEARTBEAT,
    _incident,
    _ok,
    _setup,
)


@pytest.fixture(scope="module")
def cserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("conformance") / "data", env=FAST_FLUSH)
    yield srv
    srv.stop()


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_connectivity_test_heartbeat_does_not_stop_a_flow_collector(cserver: Server) -> None:
    client, agent = _setup(cserver)
    node_url = f"/api/v1/nodes/{agent.node['uuid']}"
    flowing = {**copy.deepcopy(HOST_HEARTBEAT), "flow_active": True}
    _ok(agent.post("/heartbeat", flowing))
    assert _ok(agent.get("/config"))["flow"]["enabled"] is True
    _ok(agent.post("/heartbeat", TEST_HEARTBEAT))  # ftagent --test, run by hand on the node
    assert _ok(agent.get("/config"))["flow"]["enabled"] is True  # §4.4
    node = client.get(node_url).json()["node"]
    assert node["agent_status"] == flowing and node["status"] == "online"
    # a sparse heartbeat is still a heartbeat: anything beyond the six test fields counts
    _ok(agent.post("/heartbeat", {"version": "1.9.65", "flow_active": False}))
    assert _ok(agent.get("/config"))["flow"]["enabled"] is False


def test_an_update_replayed_after_the_resolve_keeps_the_final_analysis(cserver: Server) -> None:
    client, agent = _setup(cserver)
    inc = _ok(agent.post("/incidents", OPEN))["uuid"]
    _ok(agent.post(f"/incidents/{inc}", SPARSE_UPDATE))
    _ok(agent.post(f"/incidents/{inc}/resolve", RESOLVE))
    stale = {
        "attack_family": "syn_flood",
        "source_ip_count": 2,
        "top_src_ips": [],
        "protocol_breakdown": {"tcp": 99},
        "peak_pps": 7_000_000.5,
    }
    _ok(agent.post(f"/incidents/{inc}", stale))  # from the retry queue, after the resolve
    row = _incident(client, inc)
    assert row["status"] == "resolved"
    assert row["attack_family"] == "udp_flood" and row["attack_subtype"] == "ssdp_amplification"
    assert row["source_ip_count"] == 1858
    assert row["top_sources"] == RESOLVE["top_src_ips"]
    assert row["protocol_breakdown"] == RESOLVE["protocol_breakdown"]
    assert row["peak_pps"] == 7_000_000.5  # a peak is a peak, whenever it is reported
    assert row["detail"]["updates"] == 1 and row["detail"]["last_update"] == SPARSE_UPDATE
    assert row["detail"]["late_updates"] == 1 and row["detail"]["late_update"] == stale


def test_a_replayed_open_merges_into_the_incident_its_updates_built(cserver: Server) -> None:
    """The open failed, the agent reported the attack under a UUID of its own, and its retry
    queue sent the open later (§1.4, §8.6): one incident, not an orphan left active."""
    client, agent = _setup(cserver)
    local = str(uuid.uuid4())
    _ok(agent.post(f"/incidents/{local}", SPARSE_UPDATE))
    _ok(agent.post(f"/incidents/{local}/resolve", {**RESOLVE, "duration_seconds": 246.2}))
    row = _incident(client, local)
    began, ended = _time(row["started_at"]), _time(row["resolved_at"])
    # the start comes from the resolve's duration, not from the first update's arrival
    assert abs((ended - began).total_seconds() - 246.2) < 1.0
    replayed_open = {**OPEN, "started_at": (began + timedelta(seconds=3)).isoformat()}
    answer = _ok(agent.post("/incidents", replayed_open))
    assert answer["uuid"] == local and answer["merged"] is True
    row = _incident(client, local)
    assert row["status"] == "resolved" and row["detail"]["open"] == replayed_open
    assert _time(row["started_at"]) == began  # the earlier of the two
    listed = client.get(f"/api/v1/incidents?node={agent.node['uuid']}").json()
    assert [i["uuid"] for i in listed["incidents"]] == [local]
    node = client.get(f"/api/v1/nodes/{agent.node['uuid']}").json()["node"]
    assert node["status"] != "attack"
    # an open long after is another attack
    later = {**OPEN, "started_at": (ended + timedelta(minutes=10)).isoformat()}
    assert _ok(agent.post("/incidents", later))["uuid"] != local


def test_an_absurd_resolve_duration_is_capped_not_a_server_error(cserver: Server) -> None:
    client, agent = _setup(cserver)
    local = str(uuid.uuid4())
    _ok(agent.post(f"/incidents/{local}/resolve", {**RESOLVE, "duration_seconds": 1e12}))
    row = _incident(client, local)
    assert row["status"] == "resolved"
    assert _time(row["resolved_at"]) - _time(row["started_at"]) <= timedelta(days=3651)


def test_local_file_keys_go_out_only_once_an_operator_sets_them(cserver: Server) -> None:
    client, agent = _setup(cserver)
    cfg = _ok(agent.get("/config"))
    assert "pcap_enabled" not in cfg and "velocity_detection" not in cfg
    url = f"/api/v1/nodes/{agent.node['uuid']}/agent-config"
    r = client.patch(url, json={"pcap_enabled": False, "velocity_detection": True})
    assert r.status_code == 200, r.text
    cfg = _ok(agent.get("/config"))
    assert cfg["pcap_enabled"] is False and cfg["velocity_detection"] is True


def test_l7_action_is_cleared_by_the_detect_report_or_by_null(cserver: Server) -> None:
    client, agent = _setup(cserver)
    url = f"/api/v1/nodes/{agent.node['uuid']}/agent-config"

    def l7() -> dict[str, Any]:
        out: dict[str, Any] = _ok(agent.get("/config"))["l7"]
        return out

    r = client.patch(url, json={"l7": {"action": "auto_detect", "sensitivity": "high"}})
    assert r.status_code == 200, r.text
    assert l7()["action"] == "auto_detect"
    # the agent looked for a web server and said what it found: discovery is done
    _ok(agent.post("/l7/detect", {"web_server": "nginx", "server_version": "1.24.0"}))
    assert "action" not in l7() and l7()["sensitivity"] == "high"
    # an operator can also take it back with null, keeping the rest of the l7 override
    assert client.patch(url, json={"l7": {"action": "auto_detect"}}).status_code == 200
    assert l7()["action"] == "auto_detect"
    r = client.patch(url, json={"l7": {"action": None}})
    assert r.status_code == 200, r.text
    assert "action" not in l7() and l7()["sensitivity"] == "high"
    # null still means "automatic" for the one l7 key that takes it
    assert client.patch(url, json={"l7": {"rps_threshold": None}}).status_code == 200
    assert l7()["rps_threshold"] is None


def test_a_new_agent_version_clears_the_self_update_error(cserver: Server) -> None:
    client, agent = _setup(cserver)
    node_url = f"/api/v1/nodes/{agent.node['uuid']}"

    def node() -> dict[str, Any]:
        out: dict[str, Any] = client.get(node_url).json()["node"]
        return out

    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))
    _ok(agent.post("/heartbeat", UPDATE_ERROR_HEARTBEAT))
    assert node()["agent_update_error"] == UPDATE_ERROR_HEARTBEAT["update_error"]
    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))  # same version: the error still stands
    assert node()["agent_update_error"] == UPDATE_ERROR_HEARTBEAT["update_error"]
    _ok(agent.post("/heartbeat", {**HOST_HEARTBEAT, "version": "1.9.70"}))
    after = node()
    assert after["agent_update_error"] is None and after["agent_version"] == "1.9.70"


def test_a_huge_heartbeat_costs_no_other_node_its_liveness(cserver: Server) -> None:
    client, big = _setup(cserver)
    _, small = _setup(cserver)
    huge = {**HOST_HEARTBEAT, **{f"extra_{i}": "x" * 200 for i in range(400)}}
    _ok(big.post("/heartbeat", huge))
    _ok(small.post("/heartbeat", HOST_HEARTBEAT))
    # both are written by the same batched statement: a bad text would fail it for both
    assert wait_for(
        lambda: (
            client.get(f"/api/v1/nodes/{big.node['uuid']}").json()["node"]["last_seen"] is not None
        ),
        timeout=10,
    )
    stored = client.get(f"/api/v1/nodes/{big.node['uuid']}").json()["node"]["agent_status"]
    assert stored["truncated"] is True and stored["version"] == HOST_HEARTBEAT["version"]
    assert "stored heartbeat" not in cserver.stderr() and "failed" not in cserver.stderr()
