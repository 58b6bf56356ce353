"""Operators steer agents through the REST API: config overrides and mitigation commands reach
the agent in GET /api/v1/agent/config, and its acks are visible afterwards."""

from __future__ import annotations

import orjson

from .conftest import Server, assert_error, new_workspace
from .test_agent_api import OPEN, RESOLVE, Agent, _ok, _setup


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


def test_iptables_undo_is_derived_only_when_every_line_can_be_taken_back() -> None:
    from api.agentapi.settings_repo import derive_undo

    assert (
        derive_undo("iptables", "iptables -I INPUT 1 -s 198.51.100.7 -j DROP")
        == "iptables -D INPUT -s 198.51.100.7 -j DROP"
    )
    two = "iptables -A INPUT -s 198.51.100.7 -j DROP\nip6tables -t raw -A PREROUTING -p udp -j DROP"
    assert derive_undo("iptables", two) == (
        "iptables -D INPUT -s 198.51.100.7 -j DROP\nip6tables -t raw -D PREROUTING -p udp -j DROP"
    )
    assert derive_undo("iptables", "iptables -N FT_BLOCK\niptables -A FT_BLOCK -j DROP") is None
    assert derive_undo("iptables", "iptables -P INPUT ACCEPT") is None
    assert derive_undo("nft", "nft add rule inet t c drop") is None  # the agent cleans nft up


def test_mitigations_are_taken_back_when_their_incident_ends(server: Server) -> None:
    client, agent = _setup(server)
    node = agent.node["uuid"]
    inc = _ok(agent.post("/incidents", OPEN))["uuid"]
    url = f"/api/v1/nodes/{node}/commands"
    block = "iptables -I INPUT 1 -s 198.51.100.7 -j DROP"
    applied = client.post(
        url, json={"command_text": block, "title": "drop", "incident_uuid": inc}
    ).json()["command"]
    assert applied["incident_uuid"] == inc
    assert applied["undo_command_text"] == "iptables -D INPUT -s 198.51.100.7 -j DROP"
    custom = client.post(
        url,
        json={
            "command_type": "shell",
            "command_text": "tc qdisc add dev eth0 root handle 1: htb",
            "undo_command_text": "tc qdisc del dev eth0 root",
            "incident_uuid": inc,
        },
    ).json()["command"]
    plain = client.post(url, json={"command_text": "sysctl -w net.ipv4.tcp_syncookies=1"})
    plain_id = plain.json()["command"]["id"]
    _ok(agent.post("/commands/ack", {"command_id": applied["id"], "status": "applied"}))
    pending = {c["id"] for c in _ok(agent.get("/config"))["pending_commands"]}
    assert pending == {custom["id"], plain_id}
    _ok(agent.post(f"/incidents/{inc}/resolve", RESOLVE))
    # the applied block gets its undo; the never-acked one is withdrawn, and undone too (the
    # agent may have run it and lost the ack); the unlinked command is untouched
    cmds = _ok(agent.get("/config"))["pending_commands"]
    texts = [c["command_text"] for c in cmds]
    assert texts == [
        "sysctl -w net.ipv4.tcp_syncookies=1",
        "iptables -D INPUT -s 198.51.100.7 -j DROP",
        "tc qdisc del dev eth0 root",
    ]
    assert all(c["id"] > 0 for c in cmds) and len({c["id"] for c in cmds}) == 3
    by_id = {c["id"]: c for c in client.get(url).json()["commands"]}
    assert by_id[applied["id"]]["status"] == "applied"
    assert by_id[custom["id"]]["status"] == "cancelled"
    undo_id = by_id[applied["id"]]["undo_command_id"]
    assert by_id[undo_id]["undo_of"] == applied["id"] and by_id[undo_id]["status"] == "pending"
    # a replayed resolve queues nothing twice
    _ok(agent.post(f"/incidents/{inc}/resolve", RESOLVE))
    assert len(_ok(agent.get("/config"))["pending_commands"]) == 3
    # a mitigation needs an active incident of this very node
    assert_error(
        client.post(url, json={"command_text": block, "incident_uuid": inc}), 409, "conflict"
    )
    _, stranger = _setup(server)
    other_inc = _ok(stranger.post("/incidents", OPEN))["uuid"]
    for ref in (other_inc, "not-a-uuid"):
        err = assert_error(
            client.post(url, json={"command_text": block, "incident_uuid": ref}),
            400,
            "invalid_parameter",
        )
        assert err["error"]["field"] == "incident_uuid"
