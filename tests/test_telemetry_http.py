"""Binary telemetry against the real server: answers, routing, de-duplication, the lake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import requests

from .conftest import Client, Server, assert_error, new_workspace, start_server
from .telemetry import flows_table, ipc_bytes, lake_query, metrics_table, post_batch, wait_for

FAST_FLUSH = {"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2"}


@pytest.fixture(scope="module")
def tserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("tele") / "data", env=FAST_FLUSH)
    yield srv
    srv.stop()


def _node(client: Client, ip: str = "203.0.113.10") -> dict[str, str]:
    r = client.post("/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:8]}", "ip": ip})
    assert r.status_code == 201, r.text
    node: dict[str, str] = r.json()["node"]
    return node


def _lake_count(srv: Server, where: str) -> int:
    return int(lake_query(srv.data_dir, f"SELECT count(*) FROM metrics WHERE {where}")[0][0])


def test_node_key_batch_lands_in_lake_once(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    body = ipc_bytes(
        metrics_table(range(1000), conn_count=pa.array([5] * 1000, pa.int32())), "zstd"
    )
    r = post_batch(tserver.base_url, node["api_key"], body, batch_id="b1")
    assert r.status_code == 202, r.text
    assert r.json() == {
        "ok": True,
        "accepted": 1000,
        "batch_id": "b1",
        "duplicate": False,
        "ignored_columns": [],
    }
    again = post_batch(tserver.base_url, node["api_key"], body, batch_id="b1")
    assert again.status_code == 202
    assert again.json()["duplicate"] is True and again.json()["accepted"] == 0
    where = f"node_uuid = '{node['uuid']}'"
    assert wait_for(lambda: _lake_count(tserver, where) == 1000)
    rows = lake_query(
        tserver.data_dir,
        f"SELECT count(DISTINCT pps), min(pps), max(pps), min(conn_count), any_value(source), "
        f"any_value(workspace) FROM metrics WHERE {where}",
    )[0]
    assert rows[:5] == (1000, 0.0, 999.0, 5, "arrow")
    assert rows[5] == ws.id


def test_lz4_and_uncompressed_bodies(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    for comp in (None, "lz4"):
        r = post_batch(tserver.base_url, node["api_key"], ipc_bytes(metrics_table(range(10)), comp))
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 10


def test_unknown_columns_are_ignored_and_listed(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    body = ipc_bytes(metrics_table(range(3), future_col=[1, 2, 3]))
    r = post_batch(tserver.base_url, node["api_key"], body)
    assert r.status_code == 202
    assert r.json()["ignored_columns"] == ["future_col"]


@pytest.mark.parametrize(
    ("table", "field"),
    [
        (pa.table({"pps": [1.0], "bps": [1.0]}), "time"),
        (metrics_table(range(2), pps=pa.array(["a", "b"])), "pps"),
        (metrics_table(range(2), bps=pa.array([1.0, -1.0])), "bps"),
        (metrics_table(range(2), bps=pa.array([1.0, float("nan")])), "bps"),
        (metrics_table(range(2), conn_count=pa.array([1.5, 2.0])), "conn_count"),
        (metrics_table(range(1), start=datetime.now(UTC) + timedelta(hours=2)), "time"),
        (metrics_table(range(1), start=datetime.now(UTC) - timedelta(days=40)), "time"),
        (metrics_table(range(2), pps=pa.array([1.0, None])), "pps"),
    ],
)
def test_bad_batches_are_400_naming_the_column(
    tserver: Server, table: pa.Table, field: str
) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    r = post_batch(tserver.base_url, node["api_key"], ipc_bytes(table))
    body = assert_error(r, 400, "invalid_batch")
    assert body["error"]["field"] == field


def test_auth_content_type_size_and_kind_errors(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    body = ipc_bytes(metrics_table(range(2)))
    assert_error(post_batch(tserver.base_url, "0" * 64, body), 401, "unauthorized")
    assert_error(post_batch(tserver.base_url, ws.token, body), 401, "unauthorized")
    r = post_batch(tserver.base_url, node["api_key"], body, headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    r = post_batch(tserver.base_url, node["api_key"], body, kind="nope")
    assert_error(r, 404, "not_found")
    r = post_batch(tserver.base_url, node["api_key"], body, batch_id="bad id!")
    assert_error(r, 400, "invalid_batch")
    r = post_batch(
        tserver.base_url, node["api_key"], body, headers={"X-Floodwatch-Wire-Version": "2"}
    )
    assert_error(r, 400, "invalid_batch")
    big = b"\0" * (64 * 1024 * 1024 + 1)
    assert_error(post_batch(tserver.base_url, node["api_key"], big), 413, "payload_too_large")


def test_node_key_cannot_write_for_another_node(tserver: Server) -> None:
    ws = new_workspace(tserver)
    a, b = _node(ws.client), _node(ws.client)
    body = ipc_bytes(metrics_table(range(2), node=[b["uuid"], b["uuid"]]))
    assert_error(post_batch(tserver.base_url, a["api_key"], body), 403, "forbidden")


def test_collector_routes_by_node_ip_and_dst_ip(tserver: Server) -> None:
    ws = new_workspace(tserver)
    a = _node(ws.client, "203.0.113.21")
    b = _node(ws.client, "2001:db8::21")
    r = ws.client.post("/api/v1/collectors", json={"name": "edge-router"})
    assert r.status_code == 201, r.text
    key = r.json()["collector"]["key"]
    listed = ws.client.get("/api/v1/collectors").json()["collectors"]
    assert key not in str(listed) and len(listed) == 1

    body = ipc_bytes(
        metrics_table(
            range(4),
            node_ip=["203.0.113.21", "2001:DB8::21", "203.0.113.21", None],
            node=[None, None, None, b["uuid"]],
        )
    )
    assert post_batch(tserver.base_url, key, body).status_code == 202
    flows = ipc_bytes(flows_table(7, "2001:db8::21"))
    r = post_batch(tserver.base_url, key, flows, kind="flows")
    assert r.status_code == 202, r.text

    assert wait_for(lambda: _lake_count(tserver, f"node_uuid = '{b['uuid']}'") == 2)
    assert _lake_count(tserver, f"node_uuid = '{a['uuid']}'") == 2

    def flows_in_lake() -> int:
        q = f"SELECT count(*) FROM flows WHERE node_uuid = '{b['uuid']}'"
        return int(lake_query(tserver.data_dir, q)[0][0])

    assert wait_for(lambda: flows_in_lake() == 7)

    unknown = ipc_bytes(metrics_table(range(1), node_ip=["192.0.2.99"]))
    assert_error(post_batch(tserver.base_url, key, unknown), 400, "invalid_batch")
    missing = ipc_bytes(metrics_table(range(1)))
    assert_error(post_batch(tserver.base_url, key, missing), 400, "invalid_batch")

    other = new_workspace(tserver)
    foreign = _node(other.client, "203.0.113.77")
    cross = ipc_bytes(metrics_table(range(1), node=[foreign["uuid"]]))
    assert_error(post_batch(tserver.base_url, key, cross), 400, "invalid_batch")

    key_id = listed[0]["id"]
    assert ws.client.delete(f"/api/v1/collectors/{key_id}").status_code == 200
    assert_error(post_batch(tserver.base_url, key, missing), 401, "unauthorized")


def test_deleted_node_key_stops_working(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    body = ipc_bytes(metrics_table(range(1)))
    assert post_batch(tserver.base_url, node["api_key"], body).status_code == 202
    assert ws.client.delete(f"/api/v1/nodes/{node['uuid']}").status_code == 200
    assert_error(post_batch(tserver.base_url, node["api_key"], body), 401, "unauthorized")


def test_prometheus_metrics_count_rows(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    before = requests.get(tserver.url("/metrics"), timeout=10).text

    def accepted(text: str) -> float:
        for line in text.splitlines():
            if line.startswith('floodwatch_ingest_rows_accepted_total{kind="metrics"}'):
                return float(line.split()[-1])
        return 0.0

    assert post_batch(tserver.base_url, node["api_key"], ipc_bytes(metrics_table(range(25)))).ok
    after = requests.get(tserver.url("/metrics"), timeout=10)
    assert after.headers["Content-Type"].startswith("text/plain")
    assert accepted(after.text) - accepted(before) == 25
    assert "# TYPE floodwatch_wal_fsync_seconds histogram" in after.text
    assert node["uuid"] not in after.text


def test_telemetry_drives_node_liveness_and_baseline(tserver: Server) -> None:
    ws = new_workspace(tserver)
    node = _node(ws.client)
    before = ws.client.get(f"/api/v1/nodes/{node['uuid']}").json()["node"]
    assert before["status"] == "offline" and before["baseline"]["samples"] == 0
    assert before["protocol_breakdown"] == {"tcp": None, "udp": None, "icmp": None, "other": None}
    n = 100
    table = metrics_table(
        range(n),
        tcp_pps=pa.array([30.0] * n),
        udp_pps=pa.array([60.0] * n),
        icmp_pps=pa.array([10.0] * n),
        other_pps=pa.array([0.0] * n),
        conn_count=pa.array(list(range(n)), pa.int64()),
    )
    assert post_batch(tserver.base_url, node["api_key"], ipc_bytes(table)).status_code == 202

    def seen() -> bool:
        got = ws.client.get(f"/api/v1/nodes/{node['uuid']}").json()["node"]
        return got["status"] == "online" and got["baseline"]["samples"] == n

    assert wait_for(seen)
    got = ws.client.get(f"/api/v1/nodes/{node['uuid']}").json()["node"]
    assert got["last_pps"] == float(n - 1)  # the newest row carries the highest id
    assert got["last_bps"] == float(n - 1) * 8
    assert got["baseline"]["avg_pps"] == sum(range(n)) / n
    assert got["baseline"]["p95_pps"] is not None and got["baseline"]["p99_pps"] >= 94
    assert got["protocol_breakdown"] == {"tcp": 30.0, "udp": 60.0, "icmp": 10.0, "other": 0.0}
    assert got["conn_count"] == n - 1
    listed = ws.client.get("/api/v1/nodes?status=online").json()["nodes"]
    assert [x["uuid"] for x in listed] == [node["uuid"]]
