"""POST /api/deploy: the flat answer, and every documented error (401, 400, 402, 409)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
import requests

from .conftest import Client, Server, Workspace, new_workspace
from .helpers_seed import HEX64, assert_envelope, assert_invalid, assert_uuid


@pytest.fixture(scope="module")
def shared_ws(server: Server) -> Workspace:
    """A workspace for tests that must leave it without nodes (every request is refused)."""
    return new_workspace(server)


@pytest.fixture(scope="module")
def scratch_ws(server: Server) -> Workspace:
    """A workspace that tests only add uniquely named nodes to (no totals asserted on it)."""
    return new_workspace(server)


def unique(prefix: str = "edge") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def names_in(client: Client) -> list[str]:
    out: list[str] = []
    total = client.get("/api/v1/nodes").json()["total"]
    for offset in range(0, total, 100):
        page = client.get(f"/api/v1/nodes?limit=100&offset={offset}").json()
        out += [n["name"] for n in page["nodes"]]
    return out


def deploy(client: Client, body: Any) -> requests.Response:
    return client.post("/api/deploy", json=body)


def node_total(client: Client) -> int:
    r = client.get("/api/v1/nodes")
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def test_deploy_answers_flat_object(scratch_ws: Workspace) -> None:
    name = unique()
    r = deploy(
        scratch_ws.client,
        {"name": name, "ip": "198.51.100.7", "location": "fra1", "os": "debian-12"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"ok", "node_uuid", "api_key", "name", "ip"}, body
    assert body["ok"] is True
    assert_uuid(body["node_uuid"])
    assert HEX64.match(body["api_key"]), body["api_key"]
    assert body["name"] == name
    assert body["ip"] == "198.51.100.7"

    node = scratch_ws.client.get(f"/api/v1/nodes/{body['node_uuid']}").json()["node"]
    assert node["uuid"] == body["node_uuid"]
    assert node["name"] == name
    assert node["ip"] == "198.51.100.7"
    assert node["location"] == "fra1"
    assert node["os"] == "debian-12"
    assert node["interface"] == "eth0"  # the documented default
    assert node["status"] == "offline"  # never heard from
    assert node["last_seen"] is None


def test_deploy_keeps_given_interface_and_normalises(scratch_ws: Workspace) -> None:
    name = unique()
    r = deploy(
        scratch_ws.client,
        {"name": f"  {name}  ", "ip": " 2001:0DB8:0:0::0:1 ", "interface": "ens3"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == name
    assert body["ip"] == "2001:db8::1"
    node = scratch_ws.client.get(f"/api/v1/nodes/{body['node_uuid']}").json()["node"]
    assert (node["name"], node["ip"], node["interface"]) == (name, "2001:db8::1", "ens3")
    assert node["location"] is None and node["os"] is None


def test_each_deploy_gets_its_own_uuid_and_key(scratch_ws: Workspace) -> None:
    c = scratch_ws.client
    a = deploy(c, {"name": unique(), "ip": "192.0.2.1"}).json()
    b = deploy(c, {"name": unique(), "ip": "192.0.2.1"}).json()
    assert a["node_uuid"] != b["node_uuid"]
    assert a["api_key"] != b["api_key"]
    for body in (a, b):
        assert c.get(f"/api/v1/nodes/{body['node_uuid']}").json()["node"]["name"] == body["name"]


def test_api_key_never_appears_again(scratch_ws: Workspace) -> None:
    ws = scratch_ws
    body = deploy(ws.client, {"name": unique(), "ip": "198.51.100.7"}).json()
    key, node_uuid = body["api_key"], body["node_uuid"]
    for path in (
        f"/api/v1/nodes/{node_uuid}",
        "/api/v1/nodes",
        "/api/v1/nodes?status=offline",
        "/api/v1/status",
        "/api/v1/workspace",
        "/api/v1/incidents",
        "/api/v1/analytics/summary",
    ):
        r = ws.client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert key not in r.text, path
        assert key[:16] not in r.text, path
    node = ws.client.get(f"/api/v1/nodes/{node_uuid}").json()["node"]
    assert "api_key" not in node and "node_key" not in node
    # nor does an update answer carry it
    r = ws.client.patch(f"/api/v1/nodes/{node_uuid}", json={"location": "ams1"})
    assert r.status_code == 200, r.text
    assert key not in r.text and "api_key" not in r.json()["node"]


# --- 401 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + secrets.token_hex(32)},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer " + "a" * 5000},
    ],
    ids=["none", "empty", "scheme-only", "blank", "basic", "wrong", "garbage", "huge"],
)
def test_deploy_without_valid_token_is_401(
    server: Server, shared_ws: Workspace, headers: dict[str, str]
) -> None:
    r = requests.post(
        server.url("/api/deploy"),
        json={"name": "edge-1", "ip": "198.51.100.7"},
        headers=headers,
        timeout=30,
    )
    assert_envelope(r, 401, "unauthorized")
    assert node_total(shared_ws.client) == 0


def test_token_of_other_scheme_case_is_accepted(scratch_ws: Workspace, server: Server) -> None:
    # RFC 7235: the auth scheme is case-insensitive
    r = requests.post(
        server.url("/api/deploy"),
        json={"name": unique(), "ip": "198.51.100.7"},
        headers={"Authorization": f"bearer {scratch_ws.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_revoked_token_is_401(server: Server, ws: Workspace) -> None:
    spare = server.cli_json("token", "create", "--workspace", ws.id)
    spare_client = Client(server, spare["deploy_token"])
    assert deploy(ws.client, {"name": "before", "ip": "192.0.2.1"}).status_code == 200

    server.cli("token", "revoke", ws.token)
    assert_envelope(deploy(ws.client, {"name": "after", "ip": "192.0.2.2"}), 401, "unauthorized")
    assert_envelope(ws.client.get("/api/v1/nodes"), 401, "unauthorized")

    # the other token of the workspace still works, and the refused deploy created nothing
    names = [n["name"] for n in spare_client.get("/api/v1/nodes").json()["nodes"]]
    assert names == ["before"]
    # revoking by token id works too
    server.cli("token", "revoke", spare["token_id"])
    assert_envelope(spare_client.get("/api/v1/nodes"), 401, "unauthorized")


# --- 400 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ip": "198.51.100.7"}, "name"),
        ({"name": None, "ip": "198.51.100.7"}, "name"),
        ({"name": "", "ip": "198.51.100.7"}, "name"),
        ({"name": "   ", "ip": "198.51.100.7"}, "name"),
        ({"name": 42, "ip": "198.51.100.7"}, "name"),
        ({"name": "x" * 101, "ip": "198.51.100.7"}, "name"),
        ({"name": "bad\nname", "ip": "198.51.100.7"}, "name"),
        ({"name": "edge-1"}, "ip"),
        ({"name": "edge-1", "ip": ""}, "ip"),
        ({"name": "edge-1", "ip": None}, "ip"),
        ({"name": "edge-1", "ip": "999.1.1.1"}, "ip"),
        ({"name": "edge-1", "ip": "198.51.100"}, "ip"),
        ({"name": "edge-1", "ip": "198.51.100.7/32"}, "ip"),
        ({"name": "edge-1", "ip": "edge-1.example.com"}, "ip"),
        ({"name": "edge-1", "ip": "2001:db8:::1"}, "ip"),
        ({"name": "edge-1", "ip": "fe80::1%eth0"}, "ip"),
        ({"name": "edge-1", "ip": 3325256711}, "ip"),
        ({"name": "edge-1", "ip": "198.51.100.7", "interface": "eth 0"}, "interface"),
        ({"name": "edge-1", "ip": "198.51.100.7", "interface": "x" * 16}, "interface"),
        ({"name": "edge-1", "ip": "198.51.100.7", "location": "x" * 101}, "location"),
        ({"name": "edge-1", "ip": "198.51.100.7", "os": 7}, "os"),
    ],
)
def test_deploy_invalid_fields_are_400(
    shared_ws: Workspace, body: dict[str, Any], field: str
) -> None:
    assert_invalid(deploy(shared_ws.client, body), field)
    assert node_total(shared_ws.client) == 0


def test_missing_name_and_ip_is_400(shared_ws: Workspace) -> None:
    assert_envelope(deploy(shared_ws.client, {}), 400, "invalid_parameter")


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'["edge-1", "198.51.100.7"]', b'"edge-1"', b"42", b"null", b"true"],
    ids=["empty-list", "list", "string", "number", "null", "bool"],
)
def test_deploy_non_object_body_is_400(shared_ws: Workspace, raw: bytes) -> None:
    r = shared_ws.client.post("/api/deploy", data=raw, headers={"Content-Type": "application/json"})
    assert_envelope(r, 400, "invalid_json")
    assert node_total(shared_ws.client) == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "edge-1", "ip": ', b"{name: 'edge-1'}", b"", b"   ", b"\xff\xfe{}", b'{"a":1}x'],
    ids=["truncated", "js-object", "empty", "blank", "binary", "trailing"],
)
def test_deploy_malformed_json_is_400(shared_ws: Workspace, raw: bytes) -> None:
    r = shared_ws.client.post("/api/deploy", data=raw, headers={"Content-Type": "application/json"})
    assert_envelope(r, 400, "invalid_json")
    assert node_total(shared_ws.client) == 0


# --- 402 ---------------------------------------------------------------------------------------


def test_node_limit_reached_is_402(server: Server) -> None:
    limited = new_workspace(server, "--node-limit", "1")
    first = deploy(limited.client, {"name": "edge-1", "ip": "198.51.100.7"})
    assert first.status_code == 200, first.text
    assert_envelope(
        deploy(limited.client, {"name": "edge-2", "ip": "198.51.100.8"}), 402, "payment_required"
    )
    # the REST create refuses the same way
    assert_envelope(
        limited.client.post("/api/v1/nodes", json={"name": "edge-3", "ip": "198.51.100.9"}),
        402,
        "payment_required",
    )
    info = limited.client.get("/api/v1/workspace").json()["workspace"]
    assert (info["node_limit"], info["node_count"]) == (1, 1)

    # a soft-deleted node frees its slot
    r = limited.client.delete(f"/api/v1/nodes/{first.json()['node_uuid']}")
    assert r.status_code == 200, r.text
    again = deploy(limited.client, {"name": "edge-2", "ip": "198.51.100.8"})
    assert again.status_code == 200, again.text
    assert node_total(limited.client) == 1


def test_inactive_subscription_is_402(server: Server, ws: Workspace) -> None:
    server.cli("workspace", "update", ws.id, "--subscription-status", "canceled")
    assert_envelope(
        deploy(ws.client, {"name": "edge-1", "ip": "198.51.100.7"}), 402, "payment_required"
    )
    # reads still work while the subscription is inactive, and nothing was created
    r = ws.client.get("/api/v1/nodes")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0
    assert ws.client.get("/api/v1/workspace").json()["workspace"]["subscription_status"] == (
        "canceled"
    )

    server.cli("workspace", "update", ws.id, "--subscription-status", "active")
    r = deploy(ws.client, {"name": "edge-1", "ip": "198.51.100.7"})
    assert r.status_code == 200, r.text


# --- 409 ---------------------------------------------------------------------------------------


def test_duplicate_name_is_409(scratch_ws: Workspace) -> None:
    c = scratch_ws.client
    name = unique("dup")
    first = deploy(c, {"name": name, "ip": "198.51.100.7"})
    assert first.status_code == 200, first.text
    for again in (name, name.upper(), f" {name} "):
        body = assert_envelope(deploy(c, {"name": again, "ip": "192.0.2.1"}), 409, "conflict")
        assert "already exists" in body["error"]["message"], body
    # REST create and deploy share the namespace
    body = assert_envelope(
        c.post("/api/v1/nodes", json={"name": name, "ip": "192.0.2.1"}), 409, "conflict"
    )
    assert "already exists" in body["error"]["message"]
    assert [n for n in names_in(c) if n.lower() == name] == [name]


def test_same_name_in_another_workspace_is_fine(scratch_ws: Workspace, ws: Workspace) -> None:
    name = unique()
    assert deploy(scratch_ws.client, {"name": name, "ip": "198.51.100.7"}).status_code == 200
    assert deploy(ws.client, {"name": name, "ip": "198.51.100.7"}).status_code == 200


def test_deploy_ignores_unknown_fields_and_content_type(scratch_ws: Workspace) -> None:
    # installers in the wild send extras; the Deploy API ignores fields it does not know
    name = unique()
    r = scratch_ws.client.post(
        "/api/deploy",
        data=b'{"name": "%s", "ip": "198.51.100.7", "hostname": "h1", "agent": "1.2"}'
        % name.encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"ok", "node_uuid", "api_key", "name", "ip"}
    got = scratch_ws.client.get(f"/api/v1/nodes/{r.json()['node_uuid']}").json()["node"]
    assert got["name"] == name and "hostname" not in got


def test_inactive_subscription_is_checked_before_the_body(server: Server, ws: Workspace) -> None:
    server.cli("workspace", "update", ws.id, "--subscription-status", "suspended")
    for raw in (b"{}", b"{", b"[]", b'{"name": "edge-1", "ip": "bad"}'):
        r = ws.client.post("/api/deploy", data=raw, headers={"Content-Type": "application/json"})
        assert_envelope(r, 402, "payment_required")
        assert "X-RateLimit-Limit" in r.headers  # an authenticated answer, error or not
    # trialing counts as active
    server.cli("workspace", "update", ws.id, "--subscription-status", "trialing")
    assert deploy(ws.client, {"name": "edge-1", "ip": "198.51.100.7"}).status_code == 200


def test_lowering_the_limit_removes_nothing(server: Server, ws: Workspace) -> None:
    for i in range(2):
        assert deploy(ws.client, {"name": f"edge-{i}", "ip": "192.0.2.1"}).status_code == 200
    server.cli("workspace", "update", ws.id, "--node-limit", "1")
    assert node_total(ws.client) == 2
    assert_envelope(
        deploy(ws.client, {"name": "edge-9", "ip": "192.0.2.9"}), 402, "payment_required"
    )
    info = ws.client.get("/api/v1/workspace").json()["workspace"]
    assert (info["node_count"], info["node_limit"]) == (2, 1)
