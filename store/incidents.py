"""Incidents: one attack on one node, from its start to its resolution."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

import orjson

from .db import Connection, iso_utc, rows_as_dicts, utcnow
from .errors import InvalidValue, NotFound
from .ids import new_incident_id
from .types import (
    Incident,
    IncidentDetail,
    IncidentDetection,
    IncidentForensics,
    ListedIncident,
    RenderedIncident,
    typed_row,
)

__all__ = [
    "INCIDENT_STATUSES",
    "SEVERITIES",
    "get_incident",
    "insert_incident",
    "list_incidents",
    "listed",
    "rendered",
]

INCIDENT_STATUSES = ("active", "resolved", "false_positive")
SEVERITIES = ("critical", "high", "medium", "low")
_JSON_COLUMNS = ("protocol_breakdown", "geo_origin", "top_sources", "top_dst_ports", "detail")

_LIST_COLUMNS = """
    i.uuid, i.id, i.node_uuid, n.name AS node_name, n.ip AS node_ip, i.status, i.severity,
    i.attack_family, i.attack_subtype, i.title, i.started_at, i.updated_at, i.resolved_at,
    i.peak_pps, i.peak_bps, i.source_ip_count, i.confidence,
    CAST(date_diff('second', i.started_at, coalesce(i.resolved_at, $now)) AS BIGINT)
        AS duration_seconds,
    i.source, i.detection, i.campaign_id,
    json_extract(i.detail, '$.open.baseline_pps') AS _agent_baseline,
    json_extract(i.detail, '$.open.threshold') AS _agent_threshold,
    json_extract(i.detail, '$.open.peak_pps') AS _agent_observed
"""
_DETAIL_COLUMNS = (
    _LIST_COLUMNS
    + ", i.protocol_breakdown, i.geo_origin, i.top_sources, i.top_dst_ports, i.summary, i.detail"
)
_FROM = "FROM incidents i JOIN nodes n ON n.uuid = i.node_uuid WHERE i.workspace_uuid = $ws"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


def _number(raw: Any) -> float | None:
    try:
        value = float(orjson.loads(raw)) if isinstance(raw, str) else None
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _detection(row: dict[str, Any]) -> IncidentDetection:
    """The incident's ``detection`` object: the detector's own when Floodwatch fired (or joined
    an agent's incident), else what the agent's reports tell of why it fired."""
    raw = row.pop("detection", None)
    agent_baseline = _number(row.pop("_agent_baseline", None))
    agent_threshold = _number(row.pop("_agent_threshold", None))
    agent_observed = _number(row.pop("_agent_observed", None))
    if isinstance(raw, str):
        found: IncidentDetection = orjson.loads(raw)
        return found
    baseline = agent_baseline
    observed = agent_observed if agent_observed is not None else float(row.get("peak_pps") or 0)
    started = _iso(row.get("started_at"))
    return {
        "onset_at": started,
        "fired_at": started,
        "metric": "pps",
        "observed": observed,
        "baseline": baseline,
        "threshold": agent_threshold,
        "multiplier": round(observed / baseline, 2) if baseline else None,
        "samples_above": None,
        "source": "ftagent",
        "detector": "ftagent",
    }


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for col in _JSON_COLUMNS:
        if isinstance(row.get(col), str):
            row[col] = orjson.loads(row[col])
    row["detection"] = _detection(row)
    return row


FORENSIC_FIELDS: tuple[str, ...] = tuple(IncidentForensics.__annotations__)
"""What an agent's reports carry beyond the incident's own columns (declared, with their groups,
by ``store.types.IncidentForensics``); Get Incident shows each at the top level too, from the
newest report that has it (resolve, then latest update, then open). Everything stays in
``detail`` as sent."""


def _forensics(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.get("detail")
    if not isinstance(detail, dict):
        return row
    reports = [detail.get(k) for k in ("resolve", "last_update", "open")]
    for key in FORENSIC_FIELDS:
        if key in row:
            continue
        for body in reports:
            if isinstance(body, dict) and key in body:
                row[key] = body[key]
                break
    return row


def list_incidents(
    con: Connection,
    ws_uuid: uuid.UUID,
    *,
    status: str | None = None,
    severity: str | None = None,
    node_uuid: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[list[Incident], int]:
    params: dict[str, Any] = {"ws": str(ws_uuid)}
    where = ""
    if status is not None:
        where += " AND i.status = $status"
        params["status"] = status
    if severity is not None:
        where += " AND i.severity = $severity"
        params["severity"] = severity
    if node_uuid is not None:
        where += " AND i.node_uuid = $node"
        params["node"] = str(node_uuid)
    total = con.execute(f"SELECT count(*) {_FROM}{where}", params).fetchone()
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_LIST_COLUMNS} {_FROM}{where} "
            "ORDER BY i.started_at DESC, i.id DESC LIMIT $limit OFFSET $offset",
            {**params, "now": now or utcnow(), "limit": limit, "offset": offset},
        )
    )
    return [typed_row(_decode(r), Incident) for r in rows], int(total[0]) if total else 0


def get_incident(
    con: Connection, ws_uuid: uuid.UUID, ref: uuid.UUID | int, *, now: datetime | None = None
) -> IncidentDetail:
    """One incident by UUID or by its integer id, within the workspace."""
    column = "i.id" if isinstance(ref, int) else "i.uuid"
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_DETAIL_COLUMNS} {_FROM} AND {column} = $ref",
            {
                "ws": str(ws_uuid),
                "ref": ref if isinstance(ref, int) else str(ref),
                "now": now or utcnow(),
            },
        )
    )
    if not rows:
        raise NotFound("incident not found")
    return typed_row(_forensics(_decode(rows[0])), IncidentDetail)


def listed(row: Incident) -> ListedIncident:
    """``row`` with the compatibility name List Incidents adds: ``family`` (a copy of
    ``attack_family``; docs/ARCHITECTURE.md, "Compatibility choices")."""
    return {**row, "family": row["attack_family"]}


def rendered(row: IncidentDetail) -> RenderedIncident:
    """``row`` with the compatibility names Get Incident and the webhooks add: ``family`` and
    ``ai_summary`` (a copy of ``summary``)."""
    return {**row, "family": row["attack_family"], "ai_summary": row["summary"]}


def insert_incident(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    *,
    attack_family: str,
    severity: str,
    started_at: datetime,
    status: str = "active",
    resolved_at: datetime | None = None,
    peak_pps: float = 0.0,
    peak_bps: float = 0.0,
    source_ip_count: int = 0,
    attack_subtype: str | None = None,
    title: str | None = None,
    confidence: int | None = None,
    protocol_breakdown: dict[str, Any] | None = None,
    geo_origin: dict[str, Any] | list[Any] | None = None,
    top_sources: list[Any] | None = None,
    top_dst_ports: list[Any] | None = None,
    summary: str | None = None,
    detail: dict[str, Any] | None = None,
    source: str = "agent",
    incident_uuid: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record an incident (used by the agent API and detection)."""
    if status not in INCIDENT_STATUSES:
        raise InvalidValue(f"status must be one of {', '.join(INCIDENT_STATUSES)}", "status")
    if severity not in SEVERITIES:
        raise InvalidValue(f"severity must be one of {', '.join(SEVERITIES)}", "severity")
    inc_uuid = incident_uuid or uuid.uuid4()

    def js(v: Any) -> str | None:
        return None if v is None else orjson.dumps(v).decode()

    con.execute(
        "INSERT INTO incidents (uuid, id, workspace_uuid, node_uuid, status, severity, "
        "attack_family, attack_subtype, title, started_at, updated_at, resolved_at, peak_pps, "
        "peak_bps, source_ip_count, confidence, protocol_breakdown, geo_origin, top_sources, "
        "top_dst_ports, summary, detail, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            str(inc_uuid),
            new_incident_id(con),
            str(ws_uuid),
            str(node_uuid),
            status,
            severity,
            attack_family,
            attack_subtype,
            title,
            started_at,
            resolved_at or started_at,
            resolved_at,
            peak_pps,
            peak_bps,
            source_ip_count,
            confidence,
            js(protocol_breakdown),
            js(geo_origin),
            js(top_sources),
            js(top_dst_ports),
            summary,
            js(detail),
            source,
        ],
    )
    return inc_uuid
