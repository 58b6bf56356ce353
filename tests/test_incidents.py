"""REST v1 incidents (read-only) against a server started on a seeded data directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Client, Server
from .helpers_seed import (
    I1_DETAIL,
    Seed,
    SeededIncident,
    assert_envelope,
    assert_invalid,
    parse_ts,
    seed_client,
    seeded_server,
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    with seeded_server(tmp_path_factory) as pair:
        yield pair


@pytest.fixture(scope="module")
def seed(seeded: tuple[Server, Seed]) -> Seed:
    return seeded[1]


@pytest.fixture(scope="module")
def alpha(seeded: tuple[Server, Seed]) -> Client:
    return seed_client(*seeded, "alpha")


@pytest.fixture(scope="module")
def bravo(seeded: tuple[Server, Seed]) -> Client:
    return seed_client(*seeded, "bravo")


def newest_first(incidents: list[SeededIncident]) -> list[str]:
    return [i.uuid for i in sorted(incidents, key=lambda i: i.started_at, reverse=True)]


def listed(client: Client, query: str = "") -> dict[str, Any]:
    r = client.get(f"/api/v1/incidents{query}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["ok"] is True
    return body


# --- list --------------------------------------------------------------------------------------


def test_list_all_newest_first(alpha: Client, seed: Seed) -> None:
    body = listed(alpha)
    mine = list(seed.ws("alpha").incidents.values())
    assert (body["total"], body["limit"], body["offset"]) == (len(mine), 50, 0)
    assert [i["uuid"] for i in body["incidents"]] == newest_first(mine)


def test_list_items_carry_documented_fields(alpha: Client, seed: Seed) -> None:
    by_uuid = {i["uuid"]: i for i in listed(alpha)["incidents"]}
    for inc in seed.ws("alpha").incidents.values():
        item = by_uuid[inc.uuid]
        spec = inc.spec
        assert item["id"] == inc.id
        assert item["node_uuid"] == inc.node_uuid
        assert item["node_name"] == inc.node_name
        assert item["status"] == spec.status
        assert item["severity"] == spec.severity
        assert item["attack_family"] == spec.family
        assert item["family"] == spec.family  # the WHMCS spelling
        assert item["peak_pps"] == spec.peak_pps
        assert item["peak_bps"] == spec.peak_bps
        assert item["source_ip_count"] == spec.sources
        assert parse_ts(item["started_at"]) == inc.started_at
        if inc.resolved_at is None:
            assert item["resolved_at"] is None
        else:
            assert parse_ts(item["resolved_at"]) == inc.resolved_at
            assert item["duration_seconds"] == spec.duration_secs


@pytest.mark.parametrize("status", ["active", "resolved", "false_positive"])
def test_filter_by_status(alpha: Client, seed: Seed, status: str) -> None:
    want = [i for i in seed.ws("alpha").incidents.values() if i.spec.status == status]
    body = listed(alpha, f"?status={status}")
    assert body["total"] == len(want) > 0
    assert [i["uuid"] for i in body["incidents"]] == newest_first(want)
    assert {i["status"] for i in body["incidents"]} == {status}


@pytest.mark.parametrize("severity", ["critical", "high", "medium", "low"])
def test_filter_by_severity(alpha: Client, seed: Seed, severity: str) -> None:
    want = [i for i in seed.ws("alpha").incidents.values() if i.spec.severity == severity]
    body = listed(alpha, f"?severity={severity}")
    assert body["total"] == len(want) > 0
    assert [i["uuid"] for i in body["incidents"]] == newest_first(want)


@pytest.mark.parametrize("node_key", ["a1", "a2", "a3", "a4"])
def test_filter_by_node(alpha: Client, seed: Seed, node_key: str) -> None:
    node_uuid = seed.ws("alpha").nodes[node_key].uuid
    want = [i for i in seed.ws("alpha").incidents.values() if i.spec.node == node_key]
    body = listed(alpha, f"?node={node_uuid}")
    assert body["total"] == len(want) > 0
    assert [i["uuid"] for i in body["incidents"]] == newest_first(want)
    # an upper-case UUID names the same node
    assert listed(alpha, f"?node={node_uuid.upper()}")["total"] == len(want)


def test_filters_combine(alpha: Client, seed: Seed) -> None:
    a2 = seed.ws("alpha").nodes["a2"].uuid
    want = [
        i
        for i in seed.ws("alpha").incidents.values()
        if i.spec.node == "a2" and i.spec.status == "resolved" and i.spec.severity == "high"
    ]
    body = listed(alpha, f"?node={a2}&status=resolved&severity=high")
    assert [i["uuid"] for i in body["incidents"]] == newest_first(want)
    assert body["total"] == 1
    empty = listed(alpha, f"?node={a2}&status=active")
    assert (empty["incidents"], empty["total"]) == ([], 0)


def test_filter_by_unknown_node_is_empty(alpha: Client) -> None:
    body = listed(alpha, "?node=00000000-0000-0000-0000-000000000000")
    assert (body["incidents"], body["total"]) == ([], 0)


def test_pagination(alpha: Client, seed: Seed) -> None:
    everything = newest_first(list(seed.ws("alpha").incidents.values()))
    seen: list[str] = []
    for offset in range(0, len(everything), 3):
        page = listed(alpha, f"?limit=3&offset={offset}")
        assert (page["total"], page["limit"], page["offset"]) == (len(everything), 3, offset)
        seen += [i["uuid"] for i in page["incidents"]]
    assert seen == everything
    beyond = listed(alpha, f"?offset={len(everything)}")
    assert (beyond["incidents"], beyond["total"]) == ([], len(everything))
    one = listed(alpha, "?status=resolved&limit=1&offset=1")
    resolved = [i for i in seed.ws("alpha").incidents.values() if i.spec.status == "resolved"]
    assert [i["uuid"] for i in one["incidents"]] == newest_first(resolved)[1:2]
    assert one["total"] == len(resolved)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=open", "status"),
        ("status=ACTIVE", "status"),
        ("status=false-positive", "status"),
        ("severity=urgent", "severity"),
        ("severity=High", "severity"),
        ("node=not-a-uuid", "node"),
        ("node=42", "node"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-3", "offset"),
        ("offset=x", "offset"),
    ],
)
def test_list_rejects_bad_filters(alpha: Client, query: str, field: str) -> None:
    assert_invalid(alpha.get(f"/api/v1/incidents?{query}"), field)


# --- get ---------------------------------------------------------------------------------------


def test_get_by_uuid_and_by_integer_id(alpha: Client, seed: Seed) -> None:
    for inc in seed.ws("alpha").incidents.values():
        by_uuid = alpha.get(f"/api/v1/incidents/{inc.uuid}")
        by_id = alpha.get(f"/api/v1/incidents/{inc.id}")
        assert by_uuid.status_code == by_id.status_code == 200, (by_uuid.text, by_id.text)
        a, b = by_uuid.json()["incident"], by_id.json()["incident"]
        assert a["uuid"] == b["uuid"] == inc.uuid
        assert a["id"] == b["id"] == inc.id
        assert a["node_uuid"] == inc.node_uuid
        assert a["severity"] == inc.spec.severity
        assert a["status"] == inc.spec.status
        if inc.resolved_at is not None:
            assert a == b  # nothing time-dependent in a resolved incident


def test_get_detail_fields(alpha: Client, seed: Seed) -> None:
    i1 = seed.ws("alpha").incidents["i1"]
    r = alpha.get(f"/api/v1/incidents/{i1.uuid}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    inc = body["incident"]
    assert inc["protocol_breakdown"] == I1_DETAIL["protocol_breakdown"]
    assert inc["geo_origin"] == I1_DETAIL["geo_origin"]
    assert inc["top_sources"] == I1_DETAIL["top_sources"]
    assert inc["top_dst_ports"] == I1_DETAIL["top_dst_ports"]
    assert inc["summary"] == I1_DETAIL["summary"]
    assert inc["ai_summary"] == I1_DETAIL["summary"]
    assert inc["title"] == I1_DETAIL["title"]
    assert inc["attack_subtype"] == I1_DETAIL["attack_subtype"]
    assert inc["confidence"] == I1_DETAIL["confidence"]
    assert inc["attack_family"] == inc["family"] == "udp_flood"
    assert inc["status"] == "active" and inc["resolved_at"] is None
    assert inc["node_name"] == i1.node_name
    assert inc["node_ip"] == "198.51.100.1"
    assert parse_ts(inc["started_at"]) == i1.started_at
    assert inc["duration_seconds"] >= 2 * 3600  # active since two hours before seeding


def test_get_detail_without_forensics(alpha: Client, seed: Seed) -> None:
    i3 = seed.ws("alpha").incidents["i3"]
    inc = alpha.get(f"/api/v1/incidents/{i3.uuid}").json()["incident"]
    for key in ("protocol_breakdown", "geo_origin", "top_sources", "summary", "ai_summary"):
        assert key in inc and inc[key] is None, key
    assert inc["duration_seconds"] == 600


@pytest.mark.parametrize(
    "ref",
    [
        "00000000-0000-0000-0000-000000000000",
        "7f1d7e4b-6a9c-4d1e-9c7a-2f3e4d5c6b7a",
        "0",
        "999999999",
        "999999999999999999",
        "9999999999999999999999",
        "-1",
        "1.0",
        "abc",
    ],
)
def test_get_unknown_incident_is_404(alpha: Client, ref: str) -> None:
    assert_envelope(alpha.get(f"/api/v1/incidents/{ref}"), 404, "not_found")


def test_other_workspaces_incidents_are_404(alpha: Client, bravo: Client, seed: Seed) -> None:
    for inc in seed.ws("bravo").incidents.values():
        assert_envelope(alpha.get(f"/api/v1/incidents/{inc.uuid}"), 404, "not_found")
        assert_envelope(alpha.get(f"/api/v1/incidents/{inc.id}"), 404, "not_found")
        assert bravo.get(f"/api/v1/incidents/{inc.id}").status_code == 200
    bravo_uuids = {i.uuid for i in seed.ws("bravo").incidents.values()}
    assert not bravo_uuids & {i["uuid"] for i in listed(alpha)["incidents"]}
    assert {i["uuid"] for i in listed(bravo)["incidents"]} == bravo_uuids


def test_incidents_need_a_token(seeded: tuple[Server, Seed]) -> None:
    import requests

    srv, seed = seeded
    i1 = seed.ws("alpha").incidents["i1"]
    for path in ("/api/v1/incidents", f"/api/v1/incidents/{i1.uuid}"):
        assert_envelope(requests.get(srv.url(path), timeout=30), 401, "unauthorized")


LIST_KEYS = {
    "uuid",
    "id",
    "node_uuid",
    "node_name",
    "node_ip",
    "status",
    "severity",
    "attack_family",
    "attack_subtype",
    "title",
    "started_at",
    "updated_at",
    "resolved_at",
    "peak_pps",
    "peak_bps",
    "source_ip_count",
    "confidence",
    "duration_seconds",
    "family",
    "source",
    "detection",
    "campaign_id",
}
DETAIL_KEYS = LIST_KEYS | {
    "protocol_breakdown",
    "geo_origin",
    "top_sources",
    "top_dst_ports",
    "summary",
    "detail",
    "ai_summary",
}


def test_incident_objects_have_the_documented_keys(alpha: Client, seed: Seed) -> None:
    for item in listed(alpha)["incidents"]:
        assert set(item) == LIST_KEYS, set(item) ^ LIST_KEYS
    for inc in seed.ws("alpha").incidents.values():
        detail = alpha.get(f"/api/v1/incidents/{inc.uuid}").json()["incident"]
        assert set(detail) == DETAIL_KEYS, set(detail) ^ DETAIL_KEYS


def test_empty_filters_mean_no_filter(alpha: Client, seed: Seed) -> None:
    body = listed(alpha, "?status=&severity=&node=")
    assert body["total"] == len(seed.ws("alpha").incidents)


def test_incidents_stay_readable_after_their_node_is_deleted(
    seeded: tuple[Server, Seed],
) -> None:
    """docs/ARCHITECTURE.md: "Incidents stay readable after their node is deleted"."""
    srv, seed = seeded
    charlie = seed_client(srv, seed, "charlie")
    c1 = seed.ws("charlie").nodes["c1"]
    incs = [i for i in seed.ws("charlie").incidents.values() if i.spec.node == "c1"]
    before = {i.uuid: charlie.get(f"/api/v1/incidents/{i.uuid}").json()["incident"] for i in incs}

    r = charlie.delete(f"/api/v1/nodes/{c1.uuid}")
    assert r.status_code == 200, r.text
    assert_envelope(charlie.get(f"/api/v1/nodes/{c1.uuid}"), 404, "not_found")

    body = listed(charlie)
    assert [i["uuid"] for i in body["incidents"]] == newest_first(incs)
    assert {i["node_name"] for i in body["incidents"]} == {c1.name}
    assert listed(charlie, f"?node={c1.uuid}")["total"] == len(incs)
    for inc in incs:
        for ref in (inc.uuid, inc.id):
            r = charlie.get(f"/api/v1/incidents/{ref}")
            assert r.status_code == 200, r.text
            got = r.json()["incident"]
            assert (got["node_uuid"], got["node_name"]) == (c1.uuid, c1.name)
            if inc.resolved_at is not None:
                assert got == before[inc.uuid]
            else:  # an attack on a deleted node ends with it
                assert before[inc.uuid]["status"] == "active"
                assert got["status"] == "resolved" and got["resolved_at"] is not None
                assert got["detail"]["ended_by"]["reason"] == "node deleted"
    # the deleted node no longer counts among the nodes, nor do its incidents among the active
    status = charlie.get("/api/v1/status").json()
    assert [n["uuid"] for n in status["nodes"]] == [seed.ws("charlie").nodes["c2"].uuid]
    assert status["counts"]["total"] == 1 and status["counts"]["attack"] == 0
    still_active = [
        i
        for i in seed.ws("charlie").incidents.values()
        if i.spec.node != "c1" and not i.resolved_at
    ]
    assert status["incidents"]["active"] == len(still_active)
