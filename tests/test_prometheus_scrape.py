"""GET /api/metrics: the per-workspace Prometheus scrape, against a real server and real lake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Server, Workspace, assert_error, new_workspace, start_server
from .telemetry import ipc_bytes, post_batch, wait_for


@pytest.fixture(scope="module")
def pserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("scrape") / "data",
        env={"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.5"},
    )
    yield srv
    srv.stop()


def _scrape(srv: Server, token: str, via_query: bool = False) -> requests.Response:
    if via_query:
        return requests.get(srv.url("/api/metrics"), params={"token": token}, timeout=30)
    return requests.get(
        srv.url("/api/metrics"), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def _node_value(samples: dict[Any, float], name: str, node: dict[str, Any]) -> float | None:
    labels = tuple(
        sorted({"node": node["name"], "ip": node["ip"], "node_uuid": node["uuid"]}.items())
    )
    return samples.get((name, labels))


def _node(ws: Workspace, ip: str) -> dict[str, Any]:
    r = ws.client.post("/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:6]}", "ip": ip})
    assert r.status_code == 201, r.text
    node: dict[str, Any] = r.json()["node"]
    return node


def _seconds(ip: str, start: datetime, secs: int, pps: float) -> pa.Table:
    return pa.table(
        {
            "time": pa.array(
                [start + timedelta(seconds=i) for i in range(secs)], pa.timestamp("us", tz="UTC")
            ),
            "node_ip": [ip] * secs,
            "pps": [pps] * secs,
            "bps": [pps * 8 * 500] * secs,
            "tcp_pps": [pps * 0.7] * secs,
            "udp_pps": [pps * 0.2] * secs,
            "icmp_pps": [pps * 0.1] * secs,
            "conn_count": pa.array([321] * secs, pa.int64()),
        }
    )


def test_auth_by_header_or_query_and_errors(pserver: Server) -> None:
    ws = new_workspace(pserver)
    assert_error(requests.get(pserver.url("/api/metrics"), timeout=30), 401, "unauthorized")
    assert_error(_scrape(pserver, "f" * 64), 401, "unauthorized")
    assert_error(_scrape(pserver, "f" * 64, via_query=True), 401, "unauthorized")
    for via_query in (False, True):
        r = _scrape(pserver, ws.token, via_query=via_query)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/plain")
        samples = _samples(r.text)
        assert samples[("flowtriq_nodes_total", ())] == 0
        assert samples[("flowtriq_incidents_active", ())] == 0


@pytest.mark.slow
def test_live_values_baselines_and_workspace_scope(pserver: Server) -> None:
    ws = new_workspace(pserver)
    other = new_workspace(pserver)
    busy = _node(ws, "203.0.113.61")
    silent = _node(ws, "203.0.113.62")
    foreign = _node(other, "203.0.113.63")
    r = ws.client.post("/api/v1/collectors", json={"name": "history"})
    assert r.status_code == 201, r.text
    key = r.json()["collector"]["key"]
    now = datetime.now(UTC).replace(microsecond=0)
    # an hour and a half of steady history at 2,000 pps, then the last seconds at 3,000
    history = _seconds(busy["ip"], now - timedelta(minutes=95), 90 * 60, 2000.0)
    for off in range(0, history.num_rows, 20_000):
        r = post_batch(pserver.base_url, key, ipc_bytes(history.slice(off, 20_000), "lz4"))
        assert r.status_code == 202, r.text
    rollups = Path(pserver.data_dir) / "lake" / "metrics_1m" / f"workspace={ws.id}"

    def rolled_up() -> bool:
        return any(rollups.glob("date=*/hour=*/rollup.parquet"))

    assert wait_for(rolled_up, timeout=60)
    r = post_batch(
        pserver.base_url, key, ipc_bytes(_seconds(busy["ip"], now - timedelta(seconds=5), 3, 3000))
    )
    assert r.status_code == 202, r.text

    def live() -> bool:
        got = _samples(_scrape(pserver, ws.token).text)
        return _node_value(got, "flowtriq_node_pps", busy) == 3000.0

    assert wait_for(live, timeout=30)
    samples = _samples(_scrape(pserver, ws.token).text)
    assert samples[("flowtriq_nodes_total", ())] == 2
    assert samples[("flowtriq_nodes_online", ())] == 1
    assert samples[("flowtriq_nodes_offline", ())] == 1
    assert samples[("flowtriq_nodes_under_attack", ())] == 0
    assert _node_value(samples, "flowtriq_node_bps", busy) == 3000.0 * 8 * 500
    assert _node_value(samples, "flowtriq_node_tcp_pct", busy) == pytest.approx(70.0)
    assert _node_value(samples, "flowtriq_node_udp_pct", busy) == pytest.approx(20.0)
    assert _node_value(samples, "flowtriq_node_icmp_pct", busy) == pytest.approx(10.0)
    assert _node_value(samples, "flowtriq_node_connections", busy) == 321
    for name in (
        "flowtriq_node_baseline_avg_pps",
        "flowtriq_node_baseline_p95_pps",
        "flowtriq_node_baseline_p99_pps",
    ):
        assert _node_value(samples, name, busy) == pytest.approx(2000.0, rel=0.01), name
    # the silent node is listed without traffic figures; the other workspace's node not at all
    assert _node_value(samples, "flowtriq_node_pps", silent) is None
    assert all(foreign["uuid"] not in dict(labels).get("node_uuid", "") for _, labels in samples)
    theirs = _samples(_scrape(pserver, other.token).text)
    assert theirs[("flowtriq_nodes_total", ())] == 1
    assert all(busy["uuid"] != dict(labels).get("node_uuid") for _, labels in theirs)
