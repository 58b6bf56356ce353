"""REST v1 nodes: list (pagination, status filter), get, create, update (PATCH), soft delete."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Client, Server, Workspace, new_workspace
from .helpers_seed import (
    HEX64,
    NODES,
    Seed,
    assert_envelope,
    assert_invalid,
    assert_uuid,
    seed_client,
    seeded_server,
)

EMPTY_BASELINE = {
    "avg_pps": None,
    "p95_pps": None,
    "p99_pps": None,
    "avg_bps": None,
    "p95_bps": None,
    "p99_bps": None,
    "samples": 0,
    "window_secs": 86400,
    "expected_pps": None,
    "threshold_pps": None,
    "expected_bps": None,
    "threshold_bps": None,
    "detector": None,
}
EMPTY_PROTOCOLS = {"tcp": None, "udp": None, "icmp": None, "other": None}


@pytest.fixture(scope="module")
def shared_ws(server: Server) -> Workspace:
    """A workspace that holds exactly three nodes; tests on it only read or get refused."""
    w = new_workspace(server)
    for i in range(3):
        r = w.client.post("/api/v1/nodes", json={"name": f"node-{i}", "ip": f"192.0.2.{i + 1}"})
        assert r.status_code == 201, r.text
    return w


@pytest.fixture(scope="module")
def scratch_ws(server: Server) -> Workspace:
    """A workspace that tests only add uniquely named nodes to (no totals asserted on it)."""
    return new_workspace(server)


def unique(prefix: str = "edge") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    with seeded_server(tmp_path_factory) as pair:
        yield pair


def create(client: Client, **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/nodes", json=body)
    assert r.status_code == 201, r.text
    node: dict[str, Any] = r.json()["node"]
    return node


def get(client: Client, node_uuid: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/nodes/{node_uuid}")
    assert r.status_code == 200, r.text
    node: dict[str, Any] = r.json()["node"]
    return node


# --- list --------------------------------------------------------------------------------------


def test_list_defaults(shared_ws: Workspace) -> None:
    r = shared_ws.client.get("/api/v1/nodes")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    assert [n["name"] for n in body["nodes"]] == ["node-0", "node-1", "node-2"]
    for n in body["nodes"]:
        assert_uuid(n["uuid"])
        assert n["status"] == "offline"
        assert "api_key" not in n


def test_list_default_limit_is_50_and_max_is_100(ws: Workspace) -> None:
    uuids = [create(ws.client, name=f"n{i:03d}", ip="192.0.2.1")["uuid"] for i in range(51)]
    first = ws.client.get("/api/v1/nodes").json()
    assert (len(first["nodes"]), first["total"], first["limit"]) == (50, 51, 50)
    rest = ws.client.get("/api/v1/nodes?offset=50").json()
    assert (len(rest["nodes"]), rest["total"], rest["offset"]) == (1, 51, 50)
    assert [n["uuid"] for n in first["nodes"] + rest["nodes"]] == uuids
    everything = ws.client.get("/api/v1/nodes?limit=100").json()
    assert [n["uuid"] for n in everything["nodes"]] == uuids
    assert everything["limit"] == 100


def test_pagination_walks_every_node_once(ws: Workspace) -> None:
    uuids = [create(ws.client, name=f"p{i}", ip="192.0.2.1")["uuid"] for i in range(5)]
    seen: list[str] = []
    for offset in (0, 2, 4):
        page = ws.client.get(f"/api/v1/nodes?limit=2&offset={offset}").json()
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        assert len(page["nodes"]) == (1 if offset == 4 else 2)
        seen += [n["uuid"] for n in page["nodes"]]
    assert seen == uuids
    beyond = ws.client.get("/api/v1/nodes?limit=2&offset=10").json()
    assert (beyond["nodes"], beyond["total"]) == ([], 5)


@pytest.mark.parametrize("query", ["limit=1", "limit=100", "offset=0", "limit=1&offset=2"])
def test_list_accepts_bounds(shared_ws: Workspace, query: str) -> None:
    r = shared_ws.client.get(f"/api/v1/nodes?{query}")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=1e2", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("offset=2.0", "offset"),
        ("status=bogus", "status"),
        ("status=ONLINE", "status"),
        ("status=online,offline", "status"),
        ("status=under_attack", "status"),
    ],
)
def test_list_rejects_bad_parameters(shared_ws: Workspace, query: str, field: str) -> None:
    assert_invalid(shared_ws.client.get(f"/api/v1/nodes?{query}"), field)


def test_status_filter_on_never_seen_nodes(shared_ws: Workspace) -> None:
    offline = shared_ws.client.get("/api/v1/nodes?status=offline").json()
    assert [n["name"] for n in offline["nodes"]] == ["node-0", "node-1", "node-2"]
    assert offline["total"] == 3
    for status in ("online", "attack", "elevated"):
        body = shared_ws.client.get(f"/api/v1/nodes?status={status}").json()
        assert (body["nodes"], body["total"]) == ([], 0), status


@pytest.mark.parametrize("status", ["online", "offline", "attack", "elevated"])
def test_status_filter_on_seeded_nodes(seeded: tuple[Server, Seed], status: str) -> None:
    srv, seed = seeded
    client = seed_client(srv, seed, "alpha")
    body = client.get(f"/api/v1/nodes?status={status}").json()
    want = {
        seed.ws("alpha").nodes[s.key].uuid for s in NODES if s.ws == "alpha" and s.status == status
    }
    assert {n["uuid"] for n in body["nodes"]} == want
    assert body["total"] == len(want) == 1
    assert all(n["status"] == status for n in body["nodes"])
    # paging a filtered list keeps the filtered total
    paged = client.get(f"/api/v1/nodes?status={status}&limit=1&offset=1").json()
    assert (paged["nodes"], paged["total"]) == ([], 1)


def test_seeded_list_reports_derived_status_and_traffic(seeded: tuple[Server, Seed]) -> None:
    srv, seed = seeded
    body = seed_client(srv, seed, "alpha").get("/api/v1/nodes").json()
    by_uuid = {n["uuid"]: n for n in body["nodes"]}
    specs = [s for s in NODES if s.ws == "alpha"]
    assert body["total"] == len(specs)
    for spec in specs:
        n = by_uuid[seed.ws("alpha").nodes[spec.key].uuid]
        assert n["status"] == spec.status, spec
        assert n["ip"] == spec.ip and n["location"] == spec.location
        assert n["priority"] == spec.priority
        assert n["last_pps"] == spec.last_pps and n["last_bps"] == spec.last_bps
        assert (n["last_seen"] is None) == (not spec.seen)


# --- get ---------------------------------------------------------------------------------------


def test_get_node_has_baseline_and_protocol_breakdown(scratch_ws: Workspace) -> None:
    created = create(scratch_ws.client, name=unique(), ip="198.51.100.7")
    node = get(scratch_ws.client, created["uuid"])
    assert node["baseline"] == EMPTY_BASELINE
    assert node["protocol_breakdown"] == EMPTY_PROTOCOLS
    for key in ("uuid", "name", "ip", "status", "last_seen", "last_pps", "last_bps", "created_at"):
        assert key in node, key
    assert "api_key" not in node


def test_get_seeded_node_under_attack(seeded: tuple[Server, Seed]) -> None:
    srv, seed = seeded
    a1 = seed.ws("alpha").nodes["a1"]
    node = get(seed_client(srv, seed, "alpha"), a1.uuid)
    assert (node["name"], node["status"], node["active_incidents"]) == (a1.name, "attack", 1)
    assert node["last_pps"] == 1500.0
    assert node["baseline"] == EMPTY_BASELINE
    assert node["protocol_breakdown"] == EMPTY_PROTOCOLS


@pytest.mark.parametrize(
    "ref",
    ["00000000-0000-0000-0000-000000000000", "9b0d3a52-2b3c-4f43-9d8a-1b2c3d4e5f60", "nope", "1"],
)
def test_get_unknown_node_is_404(shared_ws: Workspace, ref: str) -> None:
    assert_envelope(shared_ws.client.get(f"/api/v1/nodes/{ref}"), 404, "not_found")


# --- create ------------------------------------------------------------------------------------


def test_create_returns_full_node_with_api_key(scratch_ws: Workspace) -> None:
    name = unique()
    r = scratch_ws.client.post(
        "/api/v1/nodes",
        json={
            "name": name,
            "ip": "198.51.100.7",
            "location": "fra1",
            "os": "ubuntu-24.04",
            "priority": "staging",
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ok"] is True
    node = body["node"]
    assert HEX64.match(node["api_key"])
    assert_uuid(node["uuid"])
    assert node["name"] == name
    assert node["ip"] == "198.51.100.7"
    assert node["location"] == "fra1"
    assert node["os"] == "ubuntu-24.04"
    assert node["interface"] == "eth0"
    assert node["priority"] == "staging"
    assert node["status"] == "offline"
    assert node["last_seen"] is None
    assert node["service_ports"] == []
    assert node["sp_enabled"] is False
    assert node["baseline"] == EMPTY_BASELINE
    assert node["protocol_breakdown"] == EMPTY_PROTOCOLS
    # the same node, minus its key, is what GET returns afterwards
    fetched = get(scratch_ws.client, node["uuid"])
    assert fetched == {k: v for k, v in node.items() if k not in ("api_key", "node_key")}
    assert node["api_key"] not in scratch_ws.client.get("/api/v1/nodes").text


def test_create_defaults(scratch_ws: Workspace) -> None:
    c = scratch_ws.client
    node = create(c, name=unique(), ip="198.51.100.7")
    assert node["interface"] == "eth0"
    assert node["priority"] == "production"
    assert node["location"] is None and node["os"] is None
    assert create(c, name=unique(), ip="198.51.100.8", priority=None)["priority"] == "production"
    assert create(c, name=unique(), ip="198.51.100.9", interface="")["interface"] == "eth0"
    assert create(c, name=unique(), ip="198.51.100.9", interface="bond0.100")["interface"] == (
        "bond0.100"
    )


def test_create_name_length(scratch_ws: Workspace) -> None:
    c = scratch_ws.client
    name = unique().ljust(100, "n")
    assert len(name) == 100
    assert create(c, name=name, ip="198.51.100.7")["name"] == name
    too_long = unique().ljust(101, "m")
    assert_invalid(c.post("/api/v1/nodes", json={"name": too_long, "ip": "1.2.3.4"}), "name")
    # surrounding blanks are trimmed before the length is checked
    padded = "  " + unique().ljust(100, "p") + "  "
    assert create(c, name=padded, ip="198.51.100.7")["name"] == padded.strip()


@pytest.mark.parametrize(
    ("ip", "stored"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::1", "::1"),
        # RFC 5952 section 5: an IPv4-mapped address keeps its IPv4 part in dotted form. Python
        # 3.13's ipaddress writes it that way, 3.11 and 3.12 write "::ffff:c000:201": the stored
        # form must not depend on the interpreter the server runs on.
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("::FFFF:C000:0201", "::ffff:192.0.2.1"),
    ],
)
def test_create_normalises_ip(scratch_ws: Workspace, ip: str, stored: str) -> None:
    node = create(scratch_ws.client, name=unique(), ip=ip)
    assert node["ip"] == stored
    assert get(scratch_ws.client, node["uuid"])["ip"] == stored


@pytest.mark.parametrize(
    "ip",
    [
        "256.1.1.1",
        "192.0.2",
        "192.0.2.1.5",
        "01.2.3.4",
        "192.0.2.1/24",
        "2001:db8:::1",
        "2001:db8::g",
        "fe80::1%eth0",
        "example.com",
        "",
        None,
        12345,
        ["192.0.2.1"],
    ],
)
def test_create_rejects_bad_ip(shared_ws: Workspace, ip: Any) -> None:
    assert_invalid(shared_ws.client.post("/api/v1/nodes", json={"name": "bad", "ip": ip}), "ip")
    assert shared_ws.client.get("/api/v1/nodes").json()["total"] == 3


@pytest.mark.parametrize("priority", ["production", "staging", "development"])
def test_create_priority_enum(scratch_ws: Workspace, priority: str) -> None:
    node = create(scratch_ws.client, name=unique(), ip="192.0.2.1", priority=priority)
    assert node["priority"] == priority
    assert get(scratch_ws.client, node["uuid"])["priority"] == priority


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "ip": "192.0.2.1", "priority": "prod"}, "priority"),
        ({"name": "x", "ip": "192.0.2.1", "priority": "Production"}, "priority"),
        ({"name": "x", "ip": "192.0.2.1", "priority": ""}, "priority"),
        ({"name": "x", "ip": "192.0.2.1", "priority": 1}, "priority"),
        ({"name": "x", "ip": "192.0.2.1", "interface": "eth0;rm"}, "interface"),
        ({"ip": "192.0.2.1"}, "name"),
        ({"name": "x"}, "ip"),
        ({"name": ["x"], "ip": "192.0.2.1"}, "name"),
    ],
)
def test_create_rejects_bad_fields(shared_ws: Workspace, body: dict[str, Any], field: str) -> None:
    assert_invalid(shared_ws.client.post("/api/v1/nodes", json=body), field)
    assert shared_ws.client.get("/api/v1/nodes").json()["total"] == 3


@pytest.mark.parametrize("raw", [b"[]", b"{", b"", b"null"])
def test_create_rejects_non_object_json(shared_ws: Workspace, raw: bytes) -> None:
    r = shared_ws.client.post(
        "/api/v1/nodes", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 400, "invalid_json")


def test_create_duplicate_name_is_409(shared_ws: Workspace) -> None:
    body = assert_envelope(
        shared_ws.client.post("/api/v1/nodes", json={"name": "Node-1", "ip": "192.0.2.9"}),
        409,
        "conflict",
    )
    assert "already exists" in body["error"]["message"]
    assert shared_ws.client.get("/api/v1/nodes").json()["total"] == 3


# --- update ------------------------------------------------------------------------------------


def _without(node: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in keys}


def test_patch_changes_only_sent_fields(scratch_ws: Workspace) -> None:
    ws = scratch_ws
    node = create(ws.client, name=unique(), ip="198.51.100.7", location="fra1", os="debian")
    other = create(ws.client, name=unique(), ip="198.51.100.8")
    r = ws.client.patch(f"/api/v1/nodes/{node['uuid']}", json={"location": "ams1"})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    after = r.json()["node"]
    assert after["location"] == "ams1"
    before = _without(node, "api_key", "node_key")
    assert _without(after, "location", "updated_at") == _without(before, "location", "updated_at")
    assert after["updated_at"] >= before["updated_at"]
    assert get(ws.client, node["uuid"]) == after
    # the other node is untouched
    assert get(ws.client, other["uuid"]) == _without(other, "api_key", "node_key")


def test_patch_every_writable_field(scratch_ws: Workspace) -> None:
    renamed = unique("renamed")
    node = create(scratch_ws.client, name=unique(), ip="198.51.100.7")
    changes = {
        "name": renamed,
        "ip": "2001:DB8::0:7",
        "location": "nyc1",
        "os": "rocky-9",
        "interface": "bond0.100",
        "priority": "development",
        "sp_enabled": True,
        "sp_sensitivity": "aggressive",
        "sp_response_mode": "pipeline",
        "service_ports": [
            {"protocol": "udp", "port_value": "27015-27017,27020", "label": "game"},
            {"protocol": "both", "port_value": 53, "label": "dns"},
            {"port_value": "80, 443"},
        ],
    }
    r = scratch_ws.client.patch(f"/api/v1/nodes/{node['uuid']}", json=changes)
    assert r.status_code == 200, r.text
    got = get(scratch_ws.client, node["uuid"])
    assert got == r.json()["node"]
    assert got["name"] == renamed
    assert got["ip"] == "2001:db8::7"
    assert (got["location"], got["os"], got["interface"]) == ("nyc1", "rocky-9", "bond0.100")
    assert got["priority"] == "development"
    assert got["sp_enabled"] is True
    assert got["sp_sensitivity"] == "aggressive"
    assert got["sp_response_mode"] == "pipeline"
    assert got["service_ports"] == [
        {"protocol": "udp", "port_value": "27015-27017,27020", "label": "game"},
        {"protocol": "both", "port_value": "53", "label": "dns"},
        {"protocol": "tcp", "port_value": "80,443", "label": ""},
    ]
    # clearing optional text, and the empty port list
    r = scratch_ws.client.patch(
        f"/api/v1/nodes/{node['uuid']}", json={"location": None, "os": "", "service_ports": []}
    )
    assert r.status_code == 200, r.text
    got = get(scratch_ws.client, node["uuid"])
    assert (got["location"], got["os"], got["service_ports"]) == (None, None, [])
    assert got["name"] == renamed


def test_empty_patch_changes_nothing(scratch_ws: Workspace) -> None:
    node = create(scratch_ws.client, name=unique(), ip="198.51.100.7")
    r = scratch_ws.client.patch(f"/api/v1/nodes/{node['uuid']}", json={})
    assert r.status_code == 200, r.text
    assert get(scratch_ws.client, node["uuid"]) == _without(node, "api_key", "node_key")


@pytest.mark.parametrize(
    "field",
    [
        "uuid",
        "status",
        "api_key",
        "created_at",
        "updated_at",
        "last_seen",
        "last_pps",
        "last_bps",
        "foo",
        "workspace_uuid",
        "active_incidents",
        "baseline",
    ],
)
def test_patch_rejects_unknown_and_read_only_fields(shared_ws: Workspace, field: str) -> None:
    node = shared_ws.client.get("/api/v1/nodes?limit=1").json()["nodes"][0]
    r = shared_ws.client.patch(
        f"/api/v1/nodes/{node['uuid']}", json={"location": "changed", field: "x"}
    )
    assert_invalid(r, field)
    # nothing of the refused update was applied
    assert get(shared_ws.client, node["uuid"]) == node | {
        "baseline": EMPTY_BASELINE,
        "protocol_breakdown": EMPTY_PROTOCOLS,
        "conn_count": None,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"ip": "300.1.1.1"}, "ip"),
        ({"ip": None}, "ip"),
        ({"priority": "urgent"}, "priority"),
        ({"priority": None}, "priority"),
        ({"interface": "has space"}, "interface"),
        ({"sp_enabled": "yes"}, "sp_enabled"),
        ({"sp_enabled": 1}, "sp_enabled"),
        ({"sp_sensitivity": "paranoid"}, "sp_sensitivity"),
        ({"sp_response_mode": "cloud"}, "sp_response_mode"),
        ({"service_ports": "80"}, "service_ports"),
        ({"service_ports": {"port_value": "80"}}, "service_ports"),
        ({"service_ports": [80]}, "service_ports"),
        ({"service_ports": [{"port_value": "0"}]}, "service_ports"),
        ({"service_ports": [{"port_value": "65536"}]}, "service_ports"),
        ({"service_ports": [{"port_value": "100-90"}]}, "service_ports"),
        ({"service_ports": [{"port_value": "80,"}]}, "service_ports"),
        ({"service_ports": [{"port_value": "http"}]}, "service_ports"),
        ({"service_ports": [{"port_value": ""}]}, "service_ports"),
        ({"service_ports": [{"port_value": True}]}, "service_ports"),
        ({"service_ports": [{"protocol": "tcp"}]}, "service_ports"),
        ({"service_ports": [{"protocol": "icmp", "port_value": "80"}]}, "service_ports"),
        ({"service_ports": [{"port_value": "80", "extra": 1}]}, "service_ports"),
        ({"service_ports": [{"port_value": "80", "label": 5}]}, "service_ports"),
        ({"service_ports": [{"port_value": str(p)} for p in range(1, 258)]}, "service_ports"),
    ],
)
def test_patch_rejects_bad_values(shared_ws: Workspace, body: dict[str, Any], field: str) -> None:
    node = shared_ws.client.get("/api/v1/nodes?limit=1").json()["nodes"][0]
    assert_invalid(shared_ws.client.patch(f"/api/v1/nodes/{node['uuid']}", json=body), field)
    after = shared_ws.client.get("/api/v1/nodes?limit=1").json()["nodes"][0]
    assert after == node


def test_patch_service_ports_limits(scratch_ws: Workspace) -> None:
    node = create(scratch_ws.client, name=unique(), ip="198.51.100.7")
    ports = [{"port_value": str(p)} for p in range(1, 257)]
    r = scratch_ws.client.patch(f"/api/v1/nodes/{node['uuid']}", json={"service_ports": ports})
    assert r.status_code == 200, r.text
    assert len(get(scratch_ws.client, node["uuid"])["service_ports"]) == 256
    edge = [{"port_value": "1"}, {"port_value": "65535"}, {"port_value": "8080-8080"}]
    r = scratch_ws.client.patch(f"/api/v1/nodes/{node['uuid']}", json={"service_ports": edge})
    assert r.status_code == 200, r.text
    assert [p["port_value"] for p in get(scratch_ws.client, node["uuid"])["service_ports"]] == [
        "1",
        "65535",
        "8080-8080",
    ]


def test_patch_name_conflict_is_409(scratch_ws: Workspace) -> None:
    c = scratch_ws.client
    a_name, b_name = unique("a"), unique("b")
    a = create(c, name=a_name, ip="192.0.2.1")
    create(c, name=b_name, ip="192.0.2.2")
    for name in (b_name, b_name.upper()):
        body = assert_envelope(
            c.patch(f"/api/v1/nodes/{a['uuid']}", json={"name": name}), 409, "conflict"
        )
        assert "already exists" in body["error"]["message"]
    assert get(c, a["uuid"])["name"] == a_name
    # renaming a node to its own name (another case) is not a conflict
    r = c.patch(f"/api/v1/nodes/{a['uuid']}", json={"name": a_name.upper()})
    assert r.status_code == 200, r.text
    assert get(c, a["uuid"])["name"] == a_name.upper()


def test_patch_unknown_node_is_404(shared_ws: Workspace) -> None:
    for ref in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        r = shared_ws.client.patch(f"/api/v1/nodes/{ref}", json={"location": "x"})
        assert_envelope(r, 404, "not_found")


@pytest.mark.parametrize("raw", [b"[]", b"{", b"", b'"location"'])
def test_patch_rejects_non_object_json(shared_ws: Workspace, raw: bytes) -> None:
    node = shared_ws.client.get("/api/v1/nodes?limit=1").json()["nodes"][0]
    r = shared_ws.client.patch(
        f"/api/v1/nodes/{node['uuid']}", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 400, "invalid_json")


# --- delete ------------------------------------------------------------------------------------


def test_delete_is_soft_and_final(ws: Workspace) -> None:
    keep = create(ws.client, name="keep", ip="192.0.2.1")
    gone = create(ws.client, name="edge-1", ip="192.0.2.2")
    assert ws.client.get("/api/v1/workspace").json()["workspace"]["node_count"] == 2

    r = ws.client.delete(f"/api/v1/nodes/{gone['uuid']}")
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True

    assert_envelope(ws.client.get(f"/api/v1/nodes/{gone['uuid']}"), 404, "not_found")
    listed = ws.client.get("/api/v1/nodes").json()
    assert ([n["uuid"] for n in listed["nodes"]], listed["total"]) == ([keep["uuid"]], 1)
    assert ws.client.get("/api/v1/nodes?status=offline").json()["total"] == 1
    assert ws.client.get("/api/v1/workspace").json()["workspace"]["node_count"] == 1
    status = ws.client.get("/api/v1/status").json()
    assert [n["uuid"] for n in status["nodes"]] == [keep["uuid"]]
    assert status["counts"]["total"] == 1

    assert_envelope(ws.client.delete(f"/api/v1/nodes/{gone['uuid']}"), 404, "not_found")
    r = ws.client.patch(f"/api/v1/nodes/{gone['uuid']}", json={"location": "x"})
    assert_envelope(r, 404, "not_found")

    # the name can be used again, by a new node
    again = create(ws.client, name="edge-1", ip="192.0.2.3")
    assert again["uuid"] != gone["uuid"]
    assert ws.client.get("/api/v1/workspace").json()["workspace"]["node_count"] == 2
    # and an existing node may be renamed to it as well
    create(ws.client, name="edge-x", ip="192.0.2.4")
    r = ws.client.delete(f"/api/v1/nodes/{again['uuid']}")
    assert r.status_code == 200
    assert (
        ws.client.patch(f"/api/v1/nodes/{keep['uuid']}", json={"name": "edge-1"}).status_code == 200
    )


def test_delete_unknown_node_is_404(shared_ws: Workspace) -> None:
    for ref in ("00000000-0000-0000-0000-000000000000", "x"):
        assert_envelope(shared_ws.client.delete(f"/api/v1/nodes/{ref}"), 404, "not_found")
    assert shared_ws.client.get("/api/v1/nodes").json()["total"] == 3


# --- contract details --------------------------------------------------------------------------

LIST_KEYS = {
    "uuid",
    "name",
    "ip",
    "location",
    "os",
    "interface",
    "priority",
    "status",
    "last_seen",
    "last_pps",
    "last_bps",
    "agent_version",
    "last_heartbeat_at",
    "agent_status",
    "agent_update_error",
    "agent_update_error_at",
    "sp_enabled",
    "sp_sensitivity",
    "sp_response_mode",
    "service_ports",
    "active_incidents",
    "created_at",
    "updated_at",
}
DETAIL_KEYS = LIST_KEYS | {"baseline", "protocol_breakdown", "conn_count"}


def test_node_objects_have_the_documented_keys(shared_ws: Workspace) -> None:
    listed = shared_ws.client.get("/api/v1/nodes").json()["nodes"]
    for n in listed:
        assert set(n) == LIST_KEYS, set(n) ^ LIST_KEYS
    one = get(shared_ws.client, listed[0]["uuid"])
    assert set(one) == DETAIL_KEYS, set(one) ^ DETAIL_KEYS


def test_empty_status_filter_means_no_filter(shared_ws: Workspace) -> None:
    body = shared_ws.client.get("/api/v1/nodes?status=").json()
    assert body["total"] == 3 and len(body["nodes"]) == 3


def test_offset_bounds(shared_ws: Workspace) -> None:
    r = shared_ws.client.get("/api/v1/nodes?offset=1000000000")
    assert r.status_code == 200, r.text
    assert (r.json()["nodes"], r.json()["total"]) == ([], 3)
    assert_invalid(shared_ws.client.get("/api/v1/nodes?offset=1000000001"), "offset")


@pytest.mark.parametrize("field", ["foo", "uuid", "api_key", "status", "sp_enabled"])
def test_create_refuses_unknown_fields(shared_ws: Workspace, field: str) -> None:
    body = {"name": unique(), "ip": "192.0.2.1", field: "x"}
    assert_invalid(shared_ws.client.post("/api/v1/nodes", json=body), field)
    assert shared_ws.client.get("/api/v1/nodes").json()["total"] == 3


@pytest.mark.parametrize(
    "name",
    ["bad\x00name", "bad\tname", "bad\x1bname", "bad\x7fname", "bad\x85name", "bad\x9b31mname"],
    ids=["nul", "tab", "esc", "del", "c1-nel", "c1-csi"],
)
def test_names_with_control_characters_are_400(scratch_ws: Workspace, name: str) -> None:
    """docs/ARCHITECTURE.md: text fields "may not contain control characters". The C1 controls
    U+0080-U+009F are control characters (Unicode category Cc); U+009B is the 8-bit CSI that
    starts a terminal escape sequence, and names are printed by the CLI."""
    c = scratch_ws.client
    assert_invalid(c.post("/api/v1/nodes", json={"name": name, "ip": "192.0.2.1"}), "name")
    node = create(c, name=unique(), ip="192.0.2.1")
    assert_invalid(c.patch(f"/api/v1/nodes/{node['uuid']}", json={"name": name}), "name")
    assert get(c, node["uuid"])["name"] == node["name"]
    names: list[str] = []
    total = c.get("/api/v1/nodes").json()["total"]
    for offset in range(0, total, 100):
        names += [
            n["name"] for n in c.get(f"/api/v1/nodes?limit=100&offset={offset}").json()["nodes"]
        ]
    assert name not in names and name.strip() not in names


def test_delete_answer(scratch_ws: Workspace) -> None:
    node = create(scratch_ws.client, name=unique(), ip="192.0.2.1")
    r = scratch_ws.client.delete(f"/api/v1/nodes/{node['uuid']}")
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "deleted": True, "uuid": node["uuid"]}
