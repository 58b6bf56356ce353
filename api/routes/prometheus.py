"""``GET /api/metrics``: a workspace's nodes and incidents for a Prometheus scrape.

This is the per-workspace endpoint of the hosted service (its ``flowtriq_*`` metric names are
kept so existing dashboards and alert rules work unchanged), not the server's own ``/metrics``.
Authentication: the workspace's deploy token as ``Authorization: Bearer`` or, for scrapers that
cannot set headers, ``?token=`` (the access log never writes query strings).

Every figure comes from live state, so a scrape costs one indexed query of the nodes table:

- node counts and incidents from the database (statuses as the REST API computes them);
- ``flowtriq_node_pps``/``_bps`` and the protocol shares and connections from the newest
  second of telemetry the detection service has seen for the node (the node's stored
  ``last_pps``/``last_bps`` when detection is off or nothing arrived since the start);
- baselines (average, 95th and 99th percentile of the per-minute pps over the last 24 hours)
  from the 1-minute rollups, computed at most every ``BASELINE_REFRESH_SECS`` per workspace in
  the background and served from memory in between.

The text is produced by ``prometheus_client`` from a collector built per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from store import Connection, utcnow
from store import nodes as nodes_repo
from store.types import Node

from ..http import authenticate, state
from ..openapi.operations import answer, operation

__all__ = ["BASELINE_REFRESH_SECS", "routes"]

log = logging.getLogger("floodwatch.scrape")

routes = web.RouteTableDef()

BASELINE_REFRESH_SECS = 300.0
BASELINE_WINDOW = timedelta(hours=24)
MAX_NODES = 5000
"""Nodes listed per scrape (the status page's limit); the workspace counts cover all of them."""

_NODE_LABELS = ("node", "ip", "node_uuid")


@dataclass
class _Snapshot:
    counts: dict[str, int]
    incidents_active: int
    incidents_24h: int
    nodes: list[Node]


def _read_snapshot(
    con: Connection, ws_uuid: uuid.UUID, offline_after_secs: int, now: datetime
) -> _Snapshot:
    nodes, total = nodes_repo.list_nodes(
        con, ws_uuid, limit=MAX_NODES, offline_after_secs=offline_after_secs, now=now
    )
    counts = {"total": total, "online": 0, "attack": 0, "offline": 0, "elevated": 0}
    if total > len(nodes):  # count the statuses of every node, not only the listed ones
        cutoff = now - timedelta(seconds=offline_after_secs)
        row = con.execute(
            """SELECT count(*) FILTER (WHERE a), count(*) FILTER (WHERE NOT a AND off),
                      count(*) FILTER (WHERE NOT a AND NOT off AND elevated)
               FROM (SELECT EXISTS (SELECT 1 FROM incidents i WHERE i.node_uuid = n.uuid
                                    AND i.status = 'active') AS a,
                            (n.last_seen IS NULL OR n.last_seen < ?) AS off, n.elevated
                     FROM nodes n WHERE n.workspace_uuid = ? AND n.deleted_at IS NULL)""",
            [cutoff, str(ws_uuid)],
        ).fetchone()
        assert row is not None
        counts.update(attack=int(row[0]), offline=int(row[1]), elevated=int(row[2]))
        counts["online"] = total - counts["attack"] - counts["offline"] - counts["elevated"]
    else:
        for n in nodes:
            counts[n["status"]] += 1
    inc = con.execute(
        "SELECT count(*) FILTER (WHERE status = 'active'), "
        "count(*) FILTER (WHERE started_at >= ?) FROM incidents WHERE workspace_uuid = ?",
        [now - timedelta(hours=24), str(ws_uuid)],
    ).fetchone()
    assert inc is not None
    return _Snapshot(counts, int(inc[0]), int(inc[1]), nodes)


def _read_baselines(
    con: Connection, lake_root: Path, ws_uuid: uuid.UUID, now: datetime
) -> dict[str, tuple[float, float, float]]:
    """node UUID -> (average, p95, p99) of its per-minute average pps over the last 24 hours."""
    since = now - BASELINE_WINDOW
    days = sorted({since.date().isoformat(), now.date().isoformat()})
    base = lake_root / "metrics_1m" / f"workspace={ws_uuid}"
    files = [str(p) for d in days for p in sorted(base.glob(f"date={d}/hour=*/rollup.parquet"))]
    if not files:
        return {}
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    rows = con.execute(
        f"""SELECT node_uuid, avg(pps_avg), quantile_cont(pps_avg, 0.95),
                   quantile_cont(pps_avg, 0.99)
            FROM read_parquet({listed}, union_by_name = true, hive_partitioning = false)
            WHERE time >= ? AND pps_avg IS NOT NULL
            GROUP BY node_uuid""",
        [since],
    ).fetchall()
    return {str(r[0]): (float(r[1]), float(r[2]), float(r[3])) for r in rows if r[1] is not None}


@dataclass
class _BaselineCache:
    """Per workspace: the rollup baselines and when they were read; one refresh at a time."""

    values: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)
    read_at: dict[str, float] = field(default_factory=dict)
    refreshing: dict[str, asyncio.Task[None]] = field(default_factory=dict)


_CACHE = web.AppKey("floodwatch_scrape_baselines", _BaselineCache)


async def _baselines(request: web.Request, ws_uuid: uuid.UUID) -> dict[str, Any]:
    app = request.app
    cache = app.get(_CACHE)
    if cache is None:
        cache = _BaselineCache()
        app[_CACHE] = cache
    key = str(ws_uuid)
    st = state(request)
    fresh = time.monotonic() - cache.read_at.get(key, float("-inf")) < BASELINE_REFRESH_SECS
    if not fresh and key not in cache.refreshing:

        async def refresh() -> None:
            try:
                cache.values[key] = await st.store.query(
                    _read_baselines, st.pipeline.lake.root, ws_uuid, utcnow()
                )
            except Exception:
                log.exception("scrape baselines not read workspace=%s", key)
            finally:
                cache.read_at[key] = time.monotonic()
                cache.refreshing.pop(key, None)

        task = asyncio.create_task(refresh())
        cache.refreshing[key] = task
        if key not in cache.values:  # the first scrape waits once; later ones never
            await asyncio.shield(task)
    return cache.values.get(key, {})


class _WorkspaceCollector(Collector):
    def __init__(
        self,
        snap: _Snapshot,
        live: dict[str, dict[str, Any] | None],
        baselines: dict[str, tuple[float, float, float]],
    ) -> None:
        self.snap = snap
        self.live = live
        self.baselines = baselines

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        c = s.counts
        online = c["total"] - c["offline"]
        for name, doc, value in (
            ("flowtriq_nodes_total", "Nodes of the workspace", c["total"]),
            ("flowtriq_nodes_online", "Nodes heard from recently (any status but offline)", online),
            ("flowtriq_nodes_under_attack", "Nodes with an active incident", c["attack"]),
            ("flowtriq_nodes_offline", "Nodes not heard from recently", c["offline"]),
            ("flowtriq_nodes_elevated", "Nodes above baseline, below an incident", c["elevated"]),
            ("flowtriq_incidents_active", "Active incidents", s.incidents_active),
            ("flowtriq_incidents_last_24h", "Incidents started in the last 24h", s.incidents_24h),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        families = {
            "pps": GaugeMetricFamily(
                "flowtriq_node_pps", "Packets per second received", labels=_NODE_LABELS
            ),
            "bps": GaugeMetricFamily(
                "flowtriq_node_bps", "Bits per second received", labels=_NODE_LABELS
            ),
            "tcp": GaugeMetricFamily(
                "flowtriq_node_tcp_pct", "TCP share of packets (percent)", labels=_NODE_LABELS
            ),
            "udp": GaugeMetricFamily(
                "flowtriq_node_udp_pct", "UDP share of packets (percent)", labels=_NODE_LABELS
            ),
            "icmp": GaugeMetricFamily(
                "flowtriq_node_icmp_pct", "ICMP share of packets (percent)", labels=_NODE_LABELS
            ),
            "conn": GaugeMetricFamily(
                "flowtriq_node_connections", "Open connections", labels=_NODE_LABELS
            ),
            "avg": GaugeMetricFamily(
                "flowtriq_node_baseline_avg_pps",
                "Average of the per-minute pps over the last 24 hours",
                labels=_NODE_LABELS,
            ),
            "p95": GaugeMetricFamily(
                "flowtriq_node_baseline_p95_pps",
                "95th percentile of the per-minute pps over the last 24 hours",
                labels=_NODE_LABELS,
            ),
            "p99": GaugeMetricFamily(
                "flowtriq_node_baseline_p99_pps",
                "99th percentile of the per-minute pps over the last 24 hours",
                labels=_NODE_LABELS,
            ),
        }
        for n in s.nodes:
            node = str(n["uuid"])
            labels = [n["name"], n["ip"], node]
            sample = self.live.get(node)
            pps = _num(sample.get("pps")) if sample else None
            bps = _num(sample.get("bps")) if sample else None
            if pps is None:
                pps = _num(n["last_pps"])
            if bps is None:
                bps = _num(n["last_bps"])
            if pps is not None:
                families["pps"].add_metric(labels, pps)
            if bps is not None:
                families["bps"].add_metric(labels, bps)
            if sample:
                shares = _shares(sample)
                for key in ("tcp", "udp", "icmp"):
                    if key in shares:
                        families[key].add_metric(labels, shares[key])
                conns = _num(sample.get("conn_count"))
                if conns is not None:
                    families["conn"].add_metric(labels, conns)
            found = self.baselines.get(node)
            if found is not None:
                for key, figure in zip(("avg", "p95", "p99"), found, strict=True):
                    families[key].add_metric(labels, figure)
        yield from families.values()


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _shares(sample: dict[str, Any]) -> dict[str, float]:
    """Percent of packets per protocol, over the protocols the sample names (none if it names
    none, or no packets)."""
    parts = {
        k: _num(sample.get(f"{k}_pps"))
        for k in ("tcp", "udp", "icmp", "other")
        if _num(sample.get(f"{k}_pps")) is not None
    }
    total = sum(v for v in parts.values() if v is not None)
    if not parts or total <= 0:
        return {}
    return {k: round(100.0 * (v or 0.0) / total, 3) for k, v in parts.items()}


@routes.get("/api/metrics")
@operation(
    "workspaceMetrics",
    tag="Analytics",
    security=[{"deployToken": []}, {"tokenQuery": []}],
    answers={200: answer("The metrics.", {"type": "string"}, content_type="text/plain")},
)
async def workspace_metrics(request: web.Request) -> web.Response:
    """Prometheus scrape of a workspace

    The workspace's node counts, incidents and per-node gauges (`flowtriq_node_pps`, `_bps`,
    `_tcp_pct`, `_udp_pct`, `_icmp_pct`, `_connections`, `_baseline_avg_pps`,
    `_baseline_p95_pps`, `_baseline_p99_pps`, labels `node`, `ip`, `node_uuid`) in the
    Prometheus text format, from live state. The deploy token goes in the Authorization header
    or, for scrapers that cannot set one, in `?token=`."""
    token = request.query.get("token")
    auth_request = request
    if token and "Authorization" not in request.headers:
        headers = request.headers.copy()
        headers["Authorization"] = f"Bearer {token}"
        auth_request = request.clone(headers=headers)
    caller = await authenticate(auth_request)
    if auth_request is not request:  # the rate-limit headers the middleware adds
        for k, v in auth_request.items():
            request[k] = v
    st = state(request)
    snap = await st.store.run(
        _read_snapshot, caller.ws_uuid, st.config.api.offline_after_secs, utcnow()
    )
    service = st.detection
    live = {
        str(n["uuid"]): service.latest_sample(str(n["uuid"])) if service is not None else None
        for n in snap.nodes
    }
    baselines = await _baselines(request, caller.ws_uuid)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WorkspaceCollector(snap, live, baselines))
    body = generate_latest(registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    resp.headers["Cache-Control"] = "no-store"
    return resp
