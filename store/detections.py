"""What Floodwatch's own detector writes: its incidents, their campaigns, and its settings.

The detector (``detect/``) hands over transitions as plain dicts; ``apply_transitions`` folds
them into the ``incidents`` table in one transaction. An incident the detector opened is named by
its ``detector_ref`` (``"<node>:<onset epoch seconds>"``), so a transition replayed after a
restart lands on the same row.

Merge rule with ftagent (one attack, one incident, whoever saw it first):

* Floodwatch opens while the node has an ftagent incident that overlaps the attack (active, or
  resolved no earlier than 30 s before the onset, and started no later than 60 s after it): no
  new row. The agent's incident gets the detector's ``detection`` object, its ``detector_ref``
  and campaign, its peaks raised; the agent keeps its family, subtype and lifecycle (it sees
  packets, the server sees counters).
* ftagent opens while the node has an active Floodwatch incident that started at most 180 s
  before (or 60 s after) the agent's ``started_at``: the agent's reports fold into that row
  (``api.agentapi.incident_repo``), the agent's family and subtype replace the
  detector's, and from then on the row resolves when the agent resolves it (or when the agent
  falls silent, by the agent expiry rule); the detector's resolve is recorded in
  ``detail.floodwatch.resolved_at``.
* ``detection.source`` says who fired first: ``floodwatch`` or ``ftagent``.

Campaigns: when three or more nodes of one workspace get an incident of the same family whose
starts lie within 60 s of each other, those incidents share a ``campaign_id`` (``cmp_`` and 16
hex digits), the one already given to any of them, else a new one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson

from . import outbox
from .db import (
    Connection,
    iso_utc,
    rows_as_dicts,
    settings_scope,
    stored_settings,
    transaction,
    utcnow,
)
from .ids import new_incident_id
from .incidents import SEVERITIES

__all__ = [
    "CAMPAIGN_MIN_NODES",
    "CAMPAIGN_WINDOW",
    "all_detection_overrides",
    "apply_transitions",
    "get_detection_overrides",
    "open_detector_refs",
    "put_detection_overrides",
    "set_summary",
]

CAMPAIGN_WINDOW = timedelta(seconds=60)
CAMPAIGN_MIN_NODES = 3
# an agent incident overlapping a detection by this much is the same attack
_AGENT_BEFORE = timedelta(seconds=30)
_AGENT_AFTER = timedelta(seconds=60)
TIMELINE_MAX_POINTS = 3600
"""Per-second points kept per incident; older points are thinned to every other one."""

_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # low 0 .. critical 3


def _js(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v).decode()


# --------------------------------------------------------------------------------- settings


def get_detection_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None
) -> dict[str, Any]:
    """The stored overrides of a workspace (``node_uuid`` None) or of one node; {} if none."""
    return stored_settings(con, "detection_settings", ws_uuid, node_uuid)


def put_detection_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Replace the stored overrides (already validated by the caller)."""
    cond, params = settings_scope(node_uuid)
    with transaction(con):
        con.execute(
            f"DELETE FROM detection_settings WHERE workspace_uuid = ? AND {cond}",
            [str(ws_uuid), *params],
        )
        if overrides:
            con.execute(
                "INSERT INTO detection_settings VALUES (?, ?, ?, ?)",
                [str(ws_uuid), str(node_uuid) if node_uuid else None, _js(overrides), utcnow()],
            )
    return overrides


def all_detection_overrides(con: Connection) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(workspace, node or None, overrides) of every live workspace and node."""
    rows = con.execute(
        "SELECT CAST(s.workspace_uuid AS VARCHAR), CAST(s.node_uuid AS VARCHAR), s.settings "
        "FROM detection_settings s JOIN workspaces w ON w.uuid = s.workspace_uuid "
        "WHERE w.deleted_at IS NULL"
    ).fetchall()
    return [(str(ws), None if node is None else str(node), orjson.loads(s)) for ws, node, s in rows]


# -------------------------------------------------------------------------------- incidents


def open_detector_refs(con: Connection) -> dict[str, str]:
    """detector_ref -> incident uuid of every incident the detector still holds open (active
    and not yet resolved by the detector)."""
    rows = con.execute(
        "SELECT detector_ref, CAST(uuid AS VARCHAR) FROM incidents WHERE detector_ref IS NOT NULL "
        "AND status = 'active' "
        "AND json_extract_string(detail, '$.floodwatch.resolved_at') IS NULL"
    ).fetchall()
    return {str(ref): str(u) for ref, u in rows}


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _iso_detection(detection: dict[str, Any]) -> dict[str, Any]:
    out = dict(detection)
    for key in ("onset_at", "fired_at"):
        v = out.get(key)
        if isinstance(v, datetime):
            out[key] = iso_utc(v)
    return out


def _thin(points: list[Any]) -> list[Any]:
    """At most TIMELINE_MAX_POINTS: the newest half kept whole, the older half thinned."""
    while len(points) > TIMELINE_MAX_POINTS:
        half = len(points) // 2
        points = points[:half:2] + points[half:]
    return points


def _node_live(con: Connection, ws: str, node: str) -> bool:
    row = con.execute(
        "SELECT 1 FROM nodes WHERE uuid = ? AND workspace_uuid = ? AND deleted_at IS NULL",
        [node, ws],
    ).fetchone()
    return row is not None


def _title(t: dict[str, Any]) -> str:
    family = str(t.get("attack_family") or "unknown").replace("_", " ")
    sub = t.get("attack_subtype")
    what = f"{family} ({str(sub).replace('_', ' ')})" if sub else family
    mult = (t.get("detection") or {}).get("multiplier")
    size = f", {mult:.0f}x baseline" if isinstance(mult, int | float) and mult >= 1 else ""
    return f"{what[:1].upper()}{what[1:]}{size}"


def _breakdown_columns(t: dict[str, Any]) -> dict[str, Any]:
    b = t.get("breakdown") or {}
    return {
        "protocol_breakdown": b.get("protocol_breakdown"),
        "top_sources": b.get("top_sources"),
        "top_dst_ports": b.get("top_dst_ports"),
        "geo_origin": b.get("geo_origin"),
        "source_ip_count": int(b.get("source_ip_count") or 0),
    }


def _assign_campaign(con: Connection, inc_uuid: str, ws: str, family: str, onset: datetime) -> None:
    rows = rows_as_dicts(
        con.execute(
            "SELECT CAST(uuid AS VARCHAR) AS uuid, CAST(node_uuid AS VARCHAR) AS node, "
            "campaign_id FROM incidents WHERE workspace_uuid = ? AND attack_family = ? "
            "AND status <> 'false_positive' AND started_at BETWEEN ? AND ?",
            [ws, family, onset - CAMPAIGN_WINDOW, onset + CAMPAIGN_WINDOW],
        )
    )
    if len({r["node"] for r in rows}) < CAMPAIGN_MIN_NODES:
        return
    existing = sorted({r["campaign_id"] for r in rows if r["campaign_id"]})
    campaign = existing[0] if existing else f"cmp_{uuid.uuid4().hex[:16]}"
    ids = [r["uuid"] for r in rows if r["campaign_id"] is None or r["uuid"] == inc_uuid]
    if ids:
        con.execute(
            f"UPDATE incidents SET campaign_id = ? WHERE uuid IN ({', '.join('?' for _ in ids)})",
            [campaign, *ids],
        )


def _find_ref(con: Connection, ref: str) -> dict[str, Any] | None:
    rows = rows_as_dicts(
        con.execute(
            "SELECT CAST(uuid AS VARCHAR) AS uuid, source, status, severity, detail, agent_ref, "
            "started_at FROM incidents WHERE detector_ref = ? LIMIT 1",
            [ref],
        )
    )
    if not rows:
        return None
    row = rows[0]
    row["detail"] = orjson.loads(row["detail"]) if isinstance(row["detail"], str) else {}
    return row


def _open(con: Connection, t: dict[str, Any], now: datetime) -> tuple[str, str] | None:
    ws, node, ref = t["workspace"], t["node"], t["incident"]
    if _find_ref(con, ref) is not None:  # the same transition again (replay after a restart)
        return _update(con, t, now)
    if not _node_live(con, ws, node):
        return None
    detection = _iso_detection({**t["detection"], "source": "floodwatch"})
    onset = _when(t["detection"]["onset_at"])
    family = str(t.get("attack_family") or "unknown")
    fw = {"timeline": _thin(list(t.get("timeline") or [])), "breakdown": t.get("breakdown")}
    agent = rows_as_dicts(
        con.execute(
            "SELECT CAST(uuid AS VARCHAR) AS uuid, attack_family, started_at FROM incidents "
            "WHERE node_uuid = ? AND workspace_uuid = ? AND detector_ref IS NULL "
            "AND source = 'ftagent' AND status <> 'false_positive' "
            "AND started_at <= ? AND (resolved_at IS NULL OR resolved_at >= ?) "
            "ORDER BY started_at DESC LIMIT 1",
            [node, ws, onset + _AGENT_AFTER, onset - _AGENT_BEFORE],
        )
    )
    if agent:
        row = agent[0]
        # the agent saw it first: its incident stays the one, with the detector's view added
        detection["source"] = "ftagent"
        con.execute(
            "UPDATE incidents SET detector_ref = ?, detection = ?, "
            "peak_pps = greatest(peak_pps, ?), peak_bps = greatest(peak_bps, ?), "
            "detail = json_merge_patch(coalesce(detail, '{}'), ?) WHERE uuid = ?",
            [
                ref,
                _js(detection),
                float(t.get("peak_pps") or 0.0),
                float(t.get("peak_bps") or 0.0),
                _js({"floodwatch": fw}),
                row["uuid"],
            ],
        )
        _assign_campaign(con, row["uuid"], ws, str(row["attack_family"]), row["started_at"])
        return row["uuid"], "merged"
    inc = str(uuid.uuid4())
    cols = _breakdown_columns(t)
    severity = t.get("severity") if t.get("severity") in SEVERITIES else "low"
    con.execute(
        "INSERT INTO incidents (uuid, id, workspace_uuid, node_uuid, status, severity, "
        "attack_family, attack_subtype, title, started_at, updated_at, resolved_at, peak_pps, "
        "peak_bps, source_ip_count, confidence, protocol_breakdown, geo_origin, top_sources, "
        "top_dst_ports, summary, detail, source, detection, detector_ref) "
        "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "'floodwatch', ?, ?)",
        [
            inc,
            new_incident_id(con),
            ws,
            node,
            severity,
            family,
            t.get("attack_subtype"),
            _title(t),
            onset,
            now,
            float(t.get("peak_pps") or 0.0),
            float(t.get("peak_bps") or 0.0),
            cols["source_ip_count"],
            t.get("confidence"),
            _js(cols["protocol_breakdown"]),
            _js(cols["geo_origin"]),
            _js(cols["top_sources"]),
            _js(cols["top_dst_ports"]),
            t.get("summary"),
            _js({"floodwatch": fw}),
            _js(detection),
            ref,
        ],
    )
    _assign_campaign(con, inc, ws, family, onset)
    return inc, "open"


def _update(con: Connection, t: dict[str, Any], now: datetime) -> tuple[str, str] | None:
    row = _find_ref(con, t["incident"])
    if row is None:
        return None
    fw = dict(row["detail"].get("floodwatch") or {})
    fw["timeline"] = _thin(list(fw.get("timeline") or []) + list(t.get("timeline") or []))
    if t.get("breakdown"):
        fw["breakdown"] = t["breakdown"]
    resolving = t["kind"] == "resolve"
    if resolving:
        fw["resolved_at"] = iso_utc(_when(t["at"]))
        fw["ended_reason"] = t.get("ended_reason") or "normal"
    peak_pps, peak_bps = float(t.get("peak_pps") or 0.0), float(t.get("peak_bps") or 0.0)
    has_agent = row["agent_ref"] is not None or row["source"] == "ftagent"
    detail_patch = _js({"floodwatch": fw})
    if has_agent:
        # the agent owns this incident's analysis and lifecycle; the detector adds its view
        con.execute(
            "UPDATE incidents SET peak_pps = greatest(peak_pps, ?), "
            "peak_bps = greatest(peak_bps, ?), "
            "detail = json_merge_patch(coalesce(detail, '{}'), ?) WHERE uuid = ?",
            [peak_pps, peak_bps, detail_patch, row["uuid"]],
        )
        return row["uuid"], "merged"
    cols = _breakdown_columns(t)
    severity = t.get("severity") if t.get("severity") in SEVERITIES else row["severity"]
    if _RANK.get(str(severity), 0) < _RANK.get(str(row["severity"]), 0):
        severity = row["severity"]  # severity only goes up while the incident lives
    status = row["status"]
    resolved_at = None
    if resolving and status == "active":
        status, resolved_at = "resolved", _when(t["at"])
    con.execute(
        "UPDATE incidents SET status = ?, severity = ?, "
        "attack_family = coalesce(?, attack_family), "
        "attack_subtype = coalesce(?, attack_subtype), title = coalesce(?, title), "
        "updated_at = ?, resolved_at = coalesce(resolved_at, ?), "
        "peak_pps = greatest(peak_pps, ?), peak_bps = greatest(peak_bps, ?), "
        "source_ip_count = greatest(source_ip_count, ?), "
        "confidence = coalesce(?, confidence), "
        "protocol_breakdown = coalesce(?, protocol_breakdown), "
        "geo_origin = coalesce(?, geo_origin), top_sources = coalesce(?, top_sources), "
        "top_dst_ports = coalesce(?, top_dst_ports), summary = coalesce(?, summary), "
        "detail = json_merge_patch(coalesce(detail, '{}'), ?) WHERE uuid = ?",
        [
            status,
            severity,
            t.get("attack_family"),
            t.get("attack_subtype"),
            _title(t) if t.get("attack_family") else None,
            now,
            resolved_at,
            peak_pps,
            peak_bps,
            cols["source_ip_count"],
            t.get("confidence"),
            _js(cols["protocol_breakdown"]),
            _js(cols["geo_origin"]),
            _js(cols["top_sources"]),
            _js(cols["top_dst_ports"]),
            t.get("summary"),
            detail_patch,
            row["uuid"],
        ],
    )
    return row["uuid"], t["kind"]


def apply_transitions(
    con: Connection, transitions: list[dict[str, Any]], now: datetime | None = None
) -> list[tuple[str, str]]:
    """Fold the detector's open/update/resolve transitions into incidents, in one transaction.
    Returns (incident uuid, what happened: open, update, resolve or merged) per transition
    applied; transitions of deleted nodes or unknown incidents are skipped."""
    now = now or utcnow()
    done: list[tuple[str, str]] = []
    with transaction(con):
        for t in transitions:
            if t["kind"] == "open":
                result = _open(con, t, now)
            elif t["kind"] in ("update", "resolve"):
                result = _update(con, t, now)
            else:
                continue
            if result is not None:
                done.append(result)
        for inc in dict.fromkeys(u for u, _ in done):
            outbox.incident_changed(con, inc, now)
    outbox.notify_listeners()
    return done


def set_summary(con: Connection, inc_uuid: str, text: str) -> None:
    """Replace an incident's written summary (the model-written one, when configured)."""
    con.execute("UPDATE incidents SET summary = ? WHERE uuid = ?", [text[:4000], inc_uuid])
