"""Isolation probe: workspace B, holding only its own token, calls every id-taking endpoint with
workspace A's ids. Each call must be 404 not_found (an empty list for the ``node`` filter) and A's
data must be unchanged afterwards; B's lists never show any of A's items."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Client, Server
from .helpers_seed import Seed, assert_envelope, seed_client, seeded_server


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    with seeded_server(tmp_path_factory) as pair:
        yield pair


@pytest.fixture(scope="module")
def seed(seeded: tuple[Server, Seed]) -> Seed:
    return seeded[1]


@pytest.fixture(scope="module")
def a(seeded: tuple[Server, Seed]) -> Client:
    return seed_client(*seeded, "alpha")


@pytest.fixture(scope="module")
def b(seeded: tuple[Server, Seed]) -> Client:
    return seed_client(*seeded, "bravo")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(resp: Any, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["ok"] is True
    return body


def a_node_uuids(seed: Seed) -> set[str]:
    return {n.uuid for n in seed.ws("alpha").nodes.values()}


def a_incident_ids(seed: Seed) -> tuple[set[str], set[int]]:
    incs = seed.ws("alpha").incidents.values()
    return {i.uuid for i in incs}, {i.id for i in incs}


# --- nodes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("node_key", ["a1", "a2", "a3", "a4"])
def test_nodes_of_a_are_invisible_to_b(a: Client, b: Client, seed: Seed, node_key: str) -> None:
    node_uuid = seed.ws("alpha").nodes[node_key].uuid
    before = ok(a.get(f"/api/v1/nodes/{node_uuid}"))["node"]
    b_name = seed.ws("bravo").nodes["b1"].name

    assert_envelope(b.get(f"/api/v1/nodes/{node_uuid}"), 404, "not_found")
    assert_envelope(b.get(f"/api/v1/nodes/{node_uuid.upper()}"), 404, "not_found")
    for body in (
        {"location": "pwned"},
        {"name": b_name},  # a name B already uses: must not turn into a 409 that leaks
        {"name": unique("stolen"), "priority": "development", "sp_enabled": True},
        {},
    ):
        assert_envelope(b.patch(f"/api/v1/nodes/{node_uuid}", json=body), 404, "not_found")
    assert_envelope(b.delete(f"/api/v1/nodes/{node_uuid}"), 404, "not_found")

    after = ok(a.get(f"/api/v1/nodes/{node_uuid}"))["node"]
    assert after == before


def test_b_may_reuse_a_node_name(b: Client, seed: Seed) -> None:
    a_name = seed.ws("alpha").nodes["a2"].name
    created = ok(b.post("/api/v1/nodes", json={"name": a_name, "ip": "192.0.2.50"}), 201)["node"]
    try:
        assert created["uuid"] not in a_node_uuids(seed)
    finally:
        assert b.delete(f"/api/v1/nodes/{created['uuid']}").status_code == 200


def test_b_node_lists_hold_no_a_nodes(b: Client, seed: Seed) -> None:
    foreign = a_node_uuids(seed)
    for query in ("", "?limit=100", "?status=attack", "?status=online", "?status=offline"):
        body = ok(b.get(f"/api/v1/nodes{query}"))
        assert not foreign & {n["uuid"] for n in body["nodes"]}, query
    listed = ok(b.get("/api/v1/nodes?limit=100"))["nodes"]
    assert seed.ws("bravo").nodes["b1"].uuid in {n["uuid"] for n in listed}
    status = ok(b.get("/api/v1/status"))
    assert not foreign & {n["uuid"] for n in status["nodes"]}
    assert status["incidents"]["active"] == 1  # only B's own j1
    summary = ok(b.get("/api/v1/analytics/summary?range=365d"))
    assert not foreign & {n["node_uuid"] for n in summary["top_nodes"]}
    assert summary["incidents"]["total"] == len(seed.ws("bravo").incidents)


# --- incidents ---------------------------------------------------------------------------------


def test_incidents_of_a_are_invisible_to_b(a: Client, b: Client, seed: Seed) -> None:
    for inc in seed.ws("alpha").incidents.values():
        before = ok(a.get(f"/api/v1/incidents/{inc.uuid}"))["incident"]
        assert_envelope(b.get(f"/api/v1/incidents/{inc.uuid}"), 404, "not_found")
        assert_envelope(b.get(f"/api/v1/incidents/{inc.id}"), 404, "not_found")
        after = ok(a.get(f"/api/v1/incidents/{inc.uuid}"))["incident"]
        after.pop("duration_seconds")
        before.pop("duration_seconds")  # grows while an incident is active
        assert after == before


def test_incident_node_filter_with_a_node_is_empty_for_b(b: Client, seed: Seed) -> None:
    for node in seed.ws("alpha").nodes.values():
        body = ok(b.get(f"/api/v1/incidents?node={node.uuid}"))
        assert (body["incidents"], body["total"]) == ([], 0), node.name


def test_b_incident_lists_hold_no_a_incidents(b: Client, seed: Seed) -> None:
    foreign_uuids, foreign_ids = a_incident_ids(seed)
    mine = {i.uuid for i in seed.ws("bravo").incidents.values()}
    for query in ("", "?status=active", "?status=resolved", "?severity=critical", "?limit=100"):
        body = ok(b.get(f"/api/v1/incidents{query}"))
        uuids = {i["uuid"] for i in body["incidents"]}
        assert not foreign_uuids & uuids, query
        assert not foreign_ids & {i["id"] for i in body["incidents"]}, query
        assert uuids <= mine
    assert ok(b.get("/api/v1/incidents"))["total"] == len(mine)


# --- channels ----------------------------------------------------------------------------------


def test_channels_of_a_are_invisible_to_b(a: Client, b: Client) -> None:
    secret = "cross-workspace-secret-" + uuid.uuid4().hex
    ch = ok(
        a.post(
            "/api/v1/channels",
            json={
                "name": unique("a-channel"),
                "type": "webhook",
                "config": {"url": "https://example.com/a", "secret": secret},
            },
        ),
        201,
    )["channel"]
    for ref in (ch["id"], ch["uuid"]):
        assert_envelope(b.get(f"/api/v1/channels/{ref}"), 404, "not_found")
        assert_envelope(b.delete(f"/api/v1/channels/{ref}"), 404, "not_found")
    for page in (b.get("/api/v1/channels"), b.get("/api/v1/channels?limit=100")):
        body = ok(page)
        assert ch["id"] not in {c["id"] for c in body["channels"]}
        assert ch["uuid"] not in page.text and secret not in page.text
    assert ok(a.get(f"/api/v1/channels/{ch['id']}"))["channel"] == ch


def test_b_channel_ids_are_not_a_channel_ids(a: Client, b: Client) -> None:
    mine = ok(
        b.post(
            "/api/v1/channels",
            json={"name": unique("b"), "type": "email", "config": {"email": "b@example.com"}},
        ),
        201,
    )["channel"]
    assert_envelope(a.get(f"/api/v1/channels/{mine['id']}"), 404, "not_found")
    assert_envelope(a.delete(f"/api/v1/channels/{mine['uuid']}"), 404, "not_found")
    assert ok(b.get(f"/api/v1/channels/{mine['uuid']}"))["channel"] == mine


# --- workspaces --------------------------------------------------------------------------------


def test_sub_workspaces_of_a_are_invisible_to_b(
    seeded: tuple[Server, Seed], a: Client, b: Client, seed: Seed
) -> None:
    srv, _ = seeded
    sub = ok(a.post("/api/v1/workspaces", json={"name": unique("a-sub")}), 201)["workspace"]
    before = ok(a.get(f"/api/v1/workspaces/{sub['uuid']}"))["workspace"]
    for ws_uuid in (sub["uuid"], seed.ws("alpha").uuid):
        assert_envelope(b.get(f"/api/v1/workspaces/{ws_uuid}"), 404, "not_found")
        assert_envelope(b.delete(f"/api/v1/workspaces/{ws_uuid}"), 404, "not_found")
    listing = ok(b.get("/api/v1/workspaces?limit=100"))
    assert sub["uuid"] not in {w["uuid"] for w in listing["workspaces"]}
    assert ok(a.get(f"/api/v1/workspaces/{sub['uuid']}"))["workspace"] == before
    # the sub-workspace's token still works, and sees none of A's nodes
    sub_client = Client(srv, sub["deploy_token"])
    assert ok(sub_client.get("/api/v1/nodes"))["total"] == 0
    for node in seed.ws("alpha").nodes.values():
        assert_envelope(sub_client.get(f"/api/v1/nodes/{node.uuid}"), 404, "not_found")
    for inc in seed.ws("alpha").incidents.values():
        assert_envelope(sub_client.get(f"/api/v1/incidents/{inc.id}"), 404, "not_found")


def test_workspace_info_is_own(a: Client, b: Client, seed: Seed) -> None:
    assert ok(a.get("/api/v1/workspace"))["workspace"]["uuid"] == seed.ws("alpha").uuid
    info = ok(b.get("/api/v1/workspace"))["workspace"]
    assert info["uuid"] == seed.ws("bravo").uuid
    assert info["node_count"] == 1
