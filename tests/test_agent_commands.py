"""Operators steer agents through the REST API: config overrides and mitigation commands reach
the agent in GET /api/v1/agent/config, and its acks are visible afterwards."""

from __future__ import annotations

import orjson

from .conftest import Server, assert_error, new_workspace
from .test_agent_api import Agent, _ok, _setup


def test_overrides_reach_the_agent_config(server: Server) -> None:
    client, agent = _setup(server)
    base = _ok(agent.get("/config"))
    assert base["pps_threshold"] == 0 and base["confirm_ticks"] == 5
    r = client.patch(
        "/api/v1/workspace/agent-config",
        json={"confirm_ticks": 8, "l7": {"enabled": True, "sensitivity": "high"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["agent_config"] == {
        "confirm_ticks": 8,
        "l7": {"enabled": True, "sensitivity": "high"},
    }
    node = agent.node["uuid"]
    r = client.patch(
        f"/api/v1/nodes/{node}/agent-config",
        json={"pps_threshold": 250000, "l7": {"sensitivity": "low"}},
    )
    assert r.status_code == 200, r.text
    cfg = _ok(agent.get("/config"))
    assert cfg["pps_threshold"] == 250000  # node override
    assert cfg["confirm_ticks"] == 8  # workspace default
    assert cfg["l7"]["enabled"] is True and cfg["l7"]["sensitivity"] == "low"  # merged objects
    assert isinstance(cfg["flow"], dict) and isinstance(cfg["service_ports"], dict)
    # null removes an override
    client.patch(f"/api/v1/nodes/{node}/agent-config", json={"pps_threshold": None})
    assert _ok(agent.get("/config"))["pps_threshold"] == 0
    got = client.get(f"/api/v1/nodes/{node}/agent-config").json()["agent_config"]
    assert got == {"l7": {"sensitivity": "low"}}


def test_override_validation(server: Server) -> None:
    client, agent = _setup(server)
    node = agent.node["uuid"]
    for body, field in (
        ({"confirm_ticks": 99}, "confirm_ticks"),
        ({"pcap_enabled": "yes"}, "pcap_enabled"),
        ({"flow": None, "nope": 1}, "nope"),
        ({"flow": {"enabled": True, "port": 70000}}, "flow.port"),
        ({"ip_blocklist": [{"indicator": "not-an-ip"}]}, "ip_blocklist"),
    ):
        r = client.patch(f"/api/v1/nodes/{node}/agent-config", json=body)
        err = assert_error(r, 400, "invalid_parameter")
        assert err["error"]["field"] == field
    assert client.get(f"/api/v1/nodes/{node}/agent-config").json()["agent_config"] == {}


def test_commands_are_delivered_until_acked_and_acks_are_visible(server: Server) -> None:
    client, agent = _setup(server)
    node = agent.node["uuid"]
    text = "iptables -I INPUT -s 198.51.100.23 -j DROP"
    r = client.post(
        f"/api/v1/nodes/{node}/commands",
        json={"command_type": "iptables", "command_text": text, "title": "drop one source"},
    )
    assert r.status_code == 201, r.text
    first = r.json()["command"]
    assert first["status"] == "pending" and first["id"] > 0
    xdp = orjson.dumps({"type": "xdp_filter", "target": "198.51.100.24", "proto": "udp"}).decode()
    second = client.post(
        f"/api/v1/nodes/{node}/commands", json={"command_type": "xdp", "command_text": xdp}
    ).json()["command"]
    assert second["id"] != first["id"]

    pending = _ok(agent.get("/config"))["pending_commands"]
    assert pending == [
        {
            "id": first["id"],
            "command_type": "iptables",
            "command_text": text,
            "title": "drop one source",
        },
        {"id": second["id"], "command_type": "xdp", "command_text": xdp, "title": ""},
    ]
    _ok(agent.post("/commands/ack", {"command_id": first["id"], "status": "applied"}))
    _ok(
        agent.post(
            "/commands/ack",
            {"command_id": second["id"], "status": "failed", "error": "nft: table busy"},
        )
    )
    assert _ok(agent.get("/config"))["pending_commands"] == []
    listed = client.get(f"/api/v1/nodes/{node}/commands").json()
    by_id = {c["id"]: c for c in listed["commands"]}
    assert listed["total"] == 2
    assert by_id[first["id"]]["status"] == "applied"
    assert by_id[second["id"]]["status"] == "failed"
    assert by_id[second["id"]]["ack_error"] == "nft: table busy"


def test_command_validation_and_isolation(server: Server) -> None:
    client, agent = _setup(server)
    node = agent.node["uuid"]
    bad = [
        ({"command_text": ""}, "command_text"),
        ({"command_type": "powershell", "command_text": "x"}, "command_type"),
        ({"command_type": "xdp", "command_text": "{not json"}, "command_text"),
        ({"command_text": "iptables -L", "extra": 1}, "extra"),
    ]
    for body, field in bad:
        err = assert_error(
            client.post(f"/api/v1/nodes/{node}/commands", json=body), 400, "invalid_parameter"
        )
        assert err["error"]["field"] == field
    other = new_workspace(server)
    for method, path in (
        ("GET", f"/api/v1/nodes/{node}/commands"),
        ("POST", f"/api/v1/nodes/{node}/commands"),
        ("GET", f"/api/v1/nodes/{node}/agent-config"),
        ("PATCH", f"/api/v1/nodes/{node}/agent-config"),
    ):
        r = other.client.request(method, path, json={"command_text": "iptables -L"})
        assert_error(r, 404, "not_found")
    other_agent = Agent(server, agent.node)
    assert _ok(other_agent.get("/config"))["pending_commands"] == []
