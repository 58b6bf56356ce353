"""Aggregates computed in DuckDB: the analytics summary and the status overview."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from .db import Connection, bound, rows_as_dicts, utcnow
from .incidents import INCIDENT_STATUSES, SEVERITIES
from .nodes import NODE_STATUSES, list_nodes

__all__ = ["RANGES", "analytics_summary", "status_overview"]

RANGES = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
STATUS_PAGE_MAX_NODES = 5000


def analytics_summary(
    con: Connection, ws_uuid: uuid.UUID, range_key: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    days = RANGES[range_key]
    since = now - timedelta(days=days)
    params = {"ws": str(ws_uuid), "since": since, "now": now}
    base = "FROM incidents i WHERE i.workspace_uuid = $ws AND i.started_at >= $since"

    def q(sql: str) -> Any:
        return con.execute(sql, bound(sql, params))

    by_severity = dict.fromkeys(SEVERITIES, 0)
    by_status = dict.fromkeys(INCIDENT_STATUSES, 0)
    by_family: dict[str, int] = {}
    for sev, n in q(f"SELECT severity, count(*) {base} GROUP BY 1").fetchall():
        by_severity[sev] = int(n)
    for st, n in q(f"SELECT status, count(*) {base} GROUP BY 1").fetchall():
        by_status[st] = int(n)
    for fam, n in q(
        f"SELECT attack_family, count(*) {base} GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall():
        by_family[fam] = int(n)

    totals = q(
        f"""SELECT count(*),
                   max(peak_pps), max(peak_bps),
                   sum(CASE WHEN status <> 'false_positive' THEN
                       date_diff('second', started_at, coalesce(resolved_at, $now)) END),
                   avg(CASE WHEN status = 'resolved' AND resolved_at IS NOT NULL THEN
                       date_diff('second', started_at, resolved_at) END)
            {base}"""
    ).fetchone()
    assert totals is not None
    series = rows_as_dicts(
        q(
            f"""WITH days AS (
                    SELECT CAST(d AS DATE) AS day FROM generate_series(
                        date_trunc('day', $since), date_trunc('day', $now), INTERVAL 1 DAY) t(d)
                ), counts AS (
                    SELECT CAST(date_trunc('day', started_at) AS DATE) AS day,
                           count(*) AS total,
                           count(*) FILTER (WHERE severity = 'critical') AS critical,
                           count(*) FILTER (WHERE severity = 'high') AS high,
                           count(*) FILTER (WHERE severity = 'medium') AS medium,
                           count(*) FILTER (WHERE severity = 'low') AS low,
                           coalesce(max(peak_pps), 0) AS peak_pps
                    {base} GROUP BY 1
                )
                SELECT strftime(days.day, '%Y-%m-%d') AS date,
                       coalesce(total, 0) AS total, coalesce(critical, 0) AS critical,
                       coalesce(high, 0) AS high, coalesce(medium, 0) AS medium,
                       coalesce(low, 0) AS low, coalesce(peak_pps, 0) AS peak_pps
                FROM days LEFT JOIN counts USING (day) ORDER BY days.day"""
        )
    )
    top_nodes = rows_as_dicts(
        q(
            """SELECT i.node_uuid, n.name, count(*) AS incidents, max(i.peak_pps) AS peak_pps,
                       max(i.peak_bps) AS peak_bps
                FROM incidents i JOIN nodes n ON n.uuid = i.node_uuid
                WHERE i.workspace_uuid = $ws AND i.started_at >= $since
                GROUP BY 1, 2 ORDER BY incidents DESC, peak_pps DESC, 2 LIMIT 10"""
        )
    )
    total = int(totals[0])
    return {
        "range": range_key,
        "since": since,
        "until": now,
        "incidents": {
            "total": total,
            "by_severity": by_severity,
            "by_family": by_family,
            "by_status": by_status,
        },
        "series": series,
        "top_nodes": top_nodes,
        "peak_pps": float(totals[1] or 0),
        "peak_bps": float(totals[2] or 0),
        "total_attack_seconds": int(totals[3] or 0),
        "mttr_seconds": None if totals[4] is None else round(float(totals[4]), 1),
    }


def status_overview(
    con: Connection,
    ws_uuid: uuid.UUID,
    *,
    offline_after_secs: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    nodes, total = list_nodes(
        con, ws_uuid, limit=STATUS_PAGE_MAX_NODES, offline_after_secs=offline_after_secs, now=now
    )
    counts = dict.fromkeys(NODE_STATUSES, 0)
    for n in nodes:
        counts[n["status"]] += 1
    inc = con.execute(
        "SELECT count(*) FILTER (WHERE status = 'active'), "
        "count(*) FILTER (WHERE started_at >= $day) "
        "FROM incidents WHERE workspace_uuid = $ws",
        {"ws": str(ws_uuid), "day": now - timedelta(hours=24)},
    ).fetchone()
    assert inc is not None
    if counts["attack"]:
        overall = "under_attack"
    elif counts["offline"] or counts["elevated"]:
        overall = "degraded"
    else:
        overall = "operational"
    return {
        "status": overall,
        "generated_at": now,
        "counts": {"total": total, **counts},
        "incidents": {"active": int(inc[0]), "last_24h": int(inc[1])},
        "nodes": [
            {
                k: n[k]
                for k in (
                    "uuid",
                    "name",
                    "ip",
                    "location",
                    "priority",
                    "status",
                    "last_seen",
                    "last_pps",
                    "last_bps",
                    "active_incidents",
                )
            }
            for n in nodes
        ],
        "truncated": total > len(nodes),
    }
