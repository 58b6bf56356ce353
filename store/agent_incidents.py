"""Incidents, liveness and command acks as reported by the ftagent Agent API.

The rules below are described for readers in docs/agent-api.md §8.

An agent names an incident by a string (``agent_ref``): the uuid the server issued at open, or a
UUID the agent made up when the open failed. Lookups are always scoped to the reporting node, so
an agent can never touch another node's incident.

Merge rule (opens, updates and resolves all fold into one row):

* a duplicate open (same node, ``started_at``, ``attack_family`` and ``inner_ip``) answers the
  existing incident's uuid instead of creating a second one;
* an update or resolve for an unknown reference creates the incident (upsert), keyed by that
  reference; the reference becomes the incident's uuid when it is a free canonical UUID; its
  start is corrected by the resolve's ``duration_seconds`` (it began before its first update);
* a replayed open (§8.6: the agent's open failed, it reported the attack under a UUID of its
  own, then its retry queue sent the open again) merges into the incident those reports built:
  same node and ``inner_ip``, no open yet, L7 with L7 and L3/L4 with L3/L4, started within
  ``REPLAYED_OPEN_WINDOW`` of the open's ``started_at``;
* ``peak_pps``/``peak_bps`` keep the maximum ever reported; the family, subtype, source count,
  protocol breakdown, top sources and top ports take the latest value sent while the incident
  is active; ``confidence`` comes from the resolve; an update that arrives after the resolve
  (a replay) neither re-opens the incident nor changes its final analysis, only its peaks;
* ``detail`` keeps everything the agent sent: the open body, the latest update body, the resolve
  body, the latest late update, and counters of updates, late updates and replayed opens.

Severity rule (the agent sends none; it only ever goes up while the incident lives):

* L3/L4: ``critical`` from 1 Mpps or 10 Gbit/s peak, ``high`` from 100 kpps or 1 Gbit/s,
  ``medium`` from 10 kpps or 100 Mbit/s, else ``low``;
* L7 (``http_flood``, whose pps are always 0): by the highest request rate reported,
  ``critical`` from 10 000 rps, ``high`` from 1 000, ``medium`` from 100, else ``low``.

Expiry rule (§8.10): an active agent incident with no open, update or resolve for ``idle_secs``
(setting ``api.agent_incident_expiry_secs``, default ``INCIDENT_IDLE_EXPIRY_SECS``) is resolved by
the server (``expire_stale_incidents``): ``resolved_at`` becomes the time of its last report and
``detail.expired`` records when and why. It runs for the reporting node on every open (so a new
open never merges into a stale incident), for the one incident an update or resolve names before
that report is folded in (so a report after the silence lands on a resolved incident), and for
every node from the server's agent housekeeping task every few seconds (heartbeats stay off the
database).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson

from . import agent_settings, outbox
from .db import Connection, rows_as_dicts, transaction
from .incidents import SEVERITIES

__all__ = [
    "INCIDENT_IDLE_EXPIRY_SECS",
    "all_node_config_rows",
    "derive_severity",
    "expire_idle_incidents",
    "expire_stale_incidents",
    "node_config_row",
    "open_incident",
    "record_ack",
    "report_incident",
]

MAX_DURATION_SECS = 10 * 365 * 86400.0
"""The longest ``duration_seconds`` taken from a resolve (beyond it a date would overflow)."""

REPLAYED_OPEN_WINDOW = (timedelta(seconds=-60), timedelta(seconds=180))
"""Where a replayed open's ``started_at`` may lie around the start of an incident built from
updates alone (the open failed: up to 51 s of retries, then an update every ~5 s) for the two
to be taken as one attack."""

# an agent open this close to the start of an active incident of Floodwatch's detector (before
# the agent's started_at, after it) joins that incident
DETECTED_OPEN_WINDOW = (timedelta(seconds=-180), timedelta(seconds=60))
INCIDENT_IDLE_EXPIRY_SECS = 600
"""Seconds without any open, update or resolve after which an active agent incident expires.

The agent updates a live incident every 1-5 s (§1.3), so ten minutes of silence means a crashed
agent, a lost resolve, an L7 log that went quiet or an orphaned replayed open (§8.10)."""

_MAX_TEXT = 200
_STATE_COLUMNS = (
    "uuid, status, severity, attack_family, attack_subtype, title, started_at, resolved_at, "
    "peak_pps, peak_bps, source_ip_count, confidence, protocol_breakdown, top_sources, "
    "top_dst_ports, detail, agent_ref, updated_at, source"
)
_JSON_COLUMNS = ("protocol_breakdown", "top_sources", "top_dst_ports", "detail")


def num(value: Any) -> float | None:
    """A finite non-negative number (ints and floats alike), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) and out >= 0 else None


def _int(value: Any) -> int | None:
    v = num(value)
    return int(min(v, 2**31 - 1)) if v is not None else None


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:_MAX_TEXT]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def derive_severity(peak_pps: float, peak_bps: float, max_rps: float, family: str) -> str:
    if family == "http_flood" or (peak_pps == 0 and peak_bps == 0 and max_rps > 0):
        steps = ((10_000, "critical"), (1_000, "high"), (100, "medium"))
        return next((sev for lim, sev in steps if max_rps >= lim), "low")
    if peak_pps >= 1_000_000 or peak_bps >= 10e9:
        return "critical"
    if peak_pps >= 100_000 or peak_bps >= 1e9:
        return "high"
    if peak_pps >= 10_000 or peak_bps >= 100e6:
        return "medium"
    return "low"


def _higher(a: str, b: str) -> str:
    return a if SEVERITIES.index(a) <= SEVERITIES.index(b) else b


def _ports(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # L7: {path: count}
        return [{"path": str(k), "count": v} for k, v in value.items()]
    return None


def _blank(ref: str, started_at: datetime) -> dict[str, Any]:
    return {
        "uuid": None,
        "status": "active",
        "severity": "low",
        "attack_family": "unknown",
        "attack_subtype": None,
        "title": None,
        "started_at": started_at,
        "resolved_at": None,
        "peak_pps": 0.0,
        "peak_bps": 0.0,
        "source_ip_count": 0,
        "confidence": None,
        "protocol_breakdown": None,
        "top_sources": None,
        "top_dst_ports": None,
        "detail": {
            "source": "ftagent",
            "agent_ref": ref,
            "open": None,
            "open_replays": 0,
            "last_update": None,
            "updates": 0,
            "resolve": None,
            "max_rps": 0.0,
        },
        "agent_ref": ref,
    }


def _apply(state: dict[str, Any], kind: str, body: dict[str, Any], now: datetime) -> None:
    """Fold one agent body (``open``, ``update`` or ``resolve``) into the incident state."""
    detail = state["detail"]
    if kind == "update" and state["status"] != "active":
        _apply_late_update(state, body)
        return
    if kind == "open":
        if detail.get("open") is not None:
            detail["open_replays"] = int(detail.get("open_replays") or 0) + 1
        detail["open"] = body
    elif kind == "update":
        detail["last_update"] = body
        detail["updates"] = int(detail.get("updates") or 0) + 1
    else:
        detail["resolve"] = body
    family = _text(body.get("attack_family"))
    if family is not None and (kind != "open" or state["attack_family"] == "unknown"):
        state["attack_family"] = family
    subtype = _text(body.get("attack_subtype"))
    if subtype is not None:
        state["attack_subtype"] = subtype
    for col in ("peak_pps", "peak_bps"):
        value = num(body.get(col))
        if value is not None:
            state[col] = max(float(state[col] or 0.0), value)
    rps = max(num(body.get("rps")) or 0.0, num(body.get("peak_rps")) or 0.0)
    detail["max_rps"] = max(float(detail.get("max_rps") or 0.0), rps)
    count = _int(body.get("source_ip_count"))
    if count is not None:
        state["source_ip_count"] = count
    if isinstance(body.get("protocol_breakdown"), dict):
        state["protocol_breakdown"] = body["protocol_breakdown"]
    if isinstance(body.get("top_src_ips"), list):
        state["top_sources"] = body["top_src_ips"]
    ports = _ports(body.get("top_dst_ports"))
    if ports is not None:
        state["top_dst_ports"] = ports
    if kind == "resolve":
        confidence = _int(body.get("confidence"))
        if confidence is not None:
            state["confidence"] = min(confidence, 100)
        if state["status"] == "active":
            state["status"] = "resolved"
        if state["resolved_at"] is None:
            duration = min(num(body.get("duration_seconds")) or 0.0, MAX_DURATION_SECS)
            if duration > 0 and detail.get("open") is None:
                # no open seen (it failed and the agent used a UUID of its own): the incident
                # began when the resolve says, not when its first update arrived
                began = now - timedelta(seconds=duration)
                state["started_at"] = min(state["started_at"], began)
            end = now
            if duration > 0:
                end = min(now, state["started_at"] + timedelta(seconds=duration))
            state["resolved_at"] = max(end, state["started_at"])
    inner_ip = _text(body.get("inner_ip"))
    if inner_ip is not None:
        detail["inner_ip"] = inner_ip
    _title_and_severity(state)


def _title_and_severity(state: dict[str, Any]) -> None:
    detail = state["detail"]
    where = detail.get("inner_ip")
    state["title"] = state["attack_family"] + (f" on {where}" if where else "")
    severity = derive_severity(
        float(state["peak_pps"]),
        float(state["peak_bps"]),
        float(detail.get("max_rps") or 0.0),
        state["attack_family"],
    )
    state["severity"] = _higher(state["severity"], severity)


def _apply_late_update(state: dict[str, Any], body: dict[str, Any]) -> None:
    """An update for an incident already resolved (by the agent or by expiry): a replay from
    the agent's retry queue, older than the resolve (§8.6). It is kept (``detail.late_update``,
    counted in ``detail.late_updates``) and may raise the peaks, but the resolve's final
    analysis (family, sources, breakdowns, top lists) stands."""
    detail = state["detail"]
    detail["late_update"] = body
    detail["late_updates"] = int(detail.get("late_updates") or 0) + 1
    for col in ("peak_pps", "peak_bps"):
        value = num(body.get(col))
        if value is not None:
            state[col] = max(float(state[col] or 0.0), value)
    _title_and_severity(state)


def _js(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _load(
    con: Connection,
    where: str,
    params: list[Any],
    *,
    unique: bool = False,
    rule: tuple[str, list[Any]] | None = None,
) -> dict[str, Any] | None:
    """The earliest incident matching ``where``; ``unique`` when at most one can (half the
    cost of a query that has to order). With ``rule`` (a SQL expression ranking the rows, and
    its parameters), ``where`` may name it as ``rule``: the row of the lowest rank wins, then
    the earliest, and it carries its rank as ``rule``."""
    if rule is None:
        order = "" if unique else " ORDER BY started_at LIMIT 1"
        sql = f"SELECT {_STATE_COLUMNS} FROM incidents WHERE {where}{order}"
    else:
        sql = (
            f"SELECT {_STATE_COLUMNS}, rule FROM (SELECT *, {rule[0]} AS rule FROM incidents) "
            f"WHERE {where} ORDER BY rule, started_at LIMIT 1"
        )
        params = [*rule[1], *params]
    rows = rows_as_dicts(con.execute(sql, params))
    if not rows:
        return None
    row = rows[0]
    for col in _JSON_COLUMNS:
        if isinstance(row.get(col), str):
            row[col] = orjson.loads(row[col])
    if not isinstance(row.get("detail"), dict):
        row["detail"] = _blank(row["agent_ref"] or str(row["uuid"]), row["started_at"])["detail"]
    return row


def _save(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    state: dict[str, Any],
    now: datetime,
    fresh: uuid.UUID | None = None,
) -> uuid.UUID:
    values = [
        state["status"],
        state["severity"],
        state["attack_family"],
        state["attack_subtype"],
        state["title"],
        state["started_at"],
        now,
        state["resolved_at"],
        state["peak_pps"],
        state["peak_bps"],
        state["source_ip_count"],
        state["confidence"],
        _js(state["protocol_breakdown"]),
        _js(state["top_sources"]),
        _js(state["top_dst_ports"]),
        _js(state["detail"]),
        state["agent_ref"],
    ]
    if state["uuid"] is not None:
        con.execute(
            "UPDATE incidents SET status = ?, severity = ?, attack_family = ?, "
            "attack_subtype = ?, title = ?, started_at = ?, updated_at = ?, resolved_at = ?, "
            "peak_pps = ?, peak_bps = ?, source_ip_count = ?, confidence = ?, "
            "protocol_breakdown = ?, top_sources = ?, top_dst_ports = ?, detail = ?, "
            "agent_ref = ? WHERE uuid = ?",
            [*values, str(state["uuid"])],
        )
        return uuid.UUID(str(state["uuid"]))
    inc_uuid = fresh or _fresh_uuid(con, state["agent_ref"])
    con.execute(
        "INSERT INTO incidents (status, severity, attack_family, attack_subtype, title, "
        "started_at, updated_at, resolved_at, peak_pps, peak_bps, source_ip_count, confidence, "
        "protocol_breakdown, top_sources, top_dst_ports, detail, agent_ref, uuid, "
        "workspace_uuid, node_uuid, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ftagent')",
        [*values, str(inc_uuid), str(ws_uuid), str(node_uuid)],
    )
    return inc_uuid


def _fresh_uuid(con: Connection, ref: str | None) -> uuid.UUID:
    """The agent's own reference when it is a canonical UUID no incident holds yet."""
    if ref is not None:
        try:
            candidate = uuid.UUID(ref)
        except ValueError:
            candidate = None
        if candidate is not None and str(candidate) == ref.lower():
            taken = con.execute(
                "SELECT 1 FROM incidents WHERE uuid = ?", [str(candidate)]
            ).fetchone()
            if taken is None:
                return candidate
    return uuid.uuid4()


def _expiry_marker(now: datetime, idle_secs: float) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "by": "server",
        "reason": f"no update from the agent for {int(idle_secs)} s",
        "idle_secs": idle_secs,
    }


def _expire_loaded(con: Connection, state: dict[str, Any], now: datetime, idle_secs: float) -> None:
    """The expiry rule applied to the one incident a report is about, in memory, before the
    report is folded in (so a report after ``idle_secs`` of silence lands on a resolved
    incident, exactly as if the sweep had run first)."""
    updated = state.get("updated_at")
    agent_owned = state.get("source") == "ftagent" or state.get("agent_ref") is not None
    if not agent_owned or state["status"] != "active" or updated is None:
        return
    if updated >= now - timedelta(seconds=idle_secs):
        return
    state["status"] = "resolved"
    state["resolved_at"] = max(updated, state["started_at"])
    state["detail"]["expired"] = _expiry_marker(now, idle_secs)
    agent_settings.end_mitigations(con, [str(state["uuid"])], now)


def _load_ref(con: Connection, node_uuid: uuid.UUID, ref: str) -> dict[str, Any] | None:
    """The node's incident named ``ref``: by primary key when ``ref`` is a canonical UUID (an
    index lookup, the common case: the uuid the server issued at open), else by ``agent_ref``."""
    try:
        as_uuid: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        as_uuid = None
    if as_uuid is not None and str(as_uuid) == ref.lower():
        state = _load(
            con, "uuid = ? AND node_uuid = ?", [str(as_uuid), str(node_uuid)], unique=True
        )
        if state is not None:
            return state
    return _load(con, "node_uuid = ? AND agent_ref = ?", [str(node_uuid), ref])


def expire_stale_incidents(
    con: Connection,
    now: datetime,
    *,
    node_uuid: uuid.UUID | None = None,
    idle_secs: float = INCIDENT_IDLE_EXPIRY_SECS,
) -> int:
    """Resolve active agent incidents (of ``node_uuid``, or of every node) that got no report
    for ``idle_secs``. Returns how many were expired."""
    cutoff = now - timedelta(seconds=idle_secs)
    marker = orjson.dumps({"expired": _expiry_marker(now, idle_secs)}).decode()
    # the agent's own incidents, and the detector's ones an agent has joined
    where = "(source = 'ftagent' OR agent_ref IS NOT NULL) AND status = 'active' AND updated_at < ?"
    params: list[Any] = [cutoff]
    if node_uuid is not None:
        where += " AND node_uuid = ?"
        params.append(str(node_uuid))
    rows = con.execute(
        "UPDATE incidents SET status = 'resolved', resolved_at = greatest(updated_at, "
        "started_at), updated_at = ?, detail = json_merge_patch(coalesce(detail, '{}'), ?) "
        f"WHERE {where} RETURNING uuid",
        [now, marker, *params],
    ).fetchall()
    agent_settings.end_mitigations(con, [str(r[0]) for r in rows], now)
    for r in rows:
        outbox.incident_changed(con, str(r[0]), now)
    return len(rows)


def expire_idle_incidents(con: Connection, now: datetime, idle_secs: float) -> int:
    """``expire_stale_incidents`` for every node, in one transaction with the mitigations'
    undo commands it queues (the server's periodic sweep)."""
    with transaction(con):
        count = expire_stale_incidents(con, now, idle_secs=idle_secs)
    outbox.notify_listeners()
    return count


def open_incident(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    body: dict[str, Any],
    now: datetime,
    idle_secs: float = INCIDENT_IDLE_EXPIRY_SECS,
) -> tuple[uuid.UUID, bool]:
    """Open (or, for a replayed open, merge into) an incident. Returns (uuid, merged)."""
    started = _parse_time(body.get("started_at")) or now
    family = _text(body.get("attack_family")) or "unknown"
    inner_ip = _text(body.get("inner_ip")) or ""
    with transaction(con):
        expire_stale_incidents(con, now, node_uuid=node_uuid, idle_secs=idle_secs)
        # the three merge rules below in one scan of the node's incidents: the first rule
        # that matches wins, the earliest incident within it (a query each cost three)
        r_lo, r_hi = REPLAYED_OPEN_WINDOW
        d_lo, d_hi = DETECTED_OPEN_WINDOW
        state = _load(
            con,
            "node_uuid = ? AND coalesce(rule, 0) > 0",
            [str(node_uuid)],
            rule=(
                "CASE WHEN source = 'ftagent' AND started_at = ? AND attack_family = ? "
                "AND coalesce(json_extract_string(detail, '$.inner_ip'), '') = ? "
                "AND json_extract_string(detail, '$.open') IS NOT NULL THEN 1 "
                # a replayed open (§8.6) of an attack the agent went on reporting under a
                # UUID of its own: fold it into the incident those updates built
                "WHEN source = 'ftagent' AND json_extract_string(detail, '$.open') IS NULL "
                "AND coalesce(json_extract_string(detail, '$.inner_ip'), '') = ? "
                "AND (attack_family = 'http_flood') = ? AND started_at BETWEEN ? AND ? THEN 2 "
                # Floodwatch's own detector saw this attack first: one attack, one incident
                # (merge rule in store/detections.py)
                "WHEN source = 'floodwatch' AND status = 'active' AND agent_ref IS NULL "
                "AND started_at BETWEEN ? AND ? THEN 3 END",
                [
                    started,
                    family,
                    inner_ip,
                    inner_ip,
                    family == "http_flood",
                    started + r_lo,
                    started + r_hi,
                    started + d_lo,
                    started + d_hi,
                ],
            ),
        )
        rank = state.pop("rule") if state is not None else None
        if state is not None and rank == 2:
            state["started_at"] = min(state["started_at"], started)
        elif state is not None and rank == 3:
            own = str(state["uuid"])
            state["detail"] = {**_blank(own, state["started_at"])["detail"], **state["detail"]}
            state["agent_ref"] = own
            state["started_at"] = min(state["started_at"], started)
        merged = state is not None
        fresh: uuid.UUID | None = None
        if state is None:
            state = _blank("", started)
            state["attack_family"] = family
            fresh = uuid.uuid4()
            state["agent_ref"] = str(fresh)
            state["detail"]["agent_ref"] = str(fresh)
        _apply(state, "open", body, now)
        # a uuid of our own making needs no check that it is free (the key refuses a clash)
        inc_uuid = _save(con, ws_uuid, node_uuid, state, now, fresh=fresh)
        outbox.incident_changed(con, inc_uuid, now)
    outbox.notify_listeners()
    return inc_uuid, merged


def report_incident(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    ref: str,
    kind: str,
    body: dict[str, Any],
    now: datetime,
    idle_secs: float = INCIDENT_IDLE_EXPIRY_SECS,
) -> tuple[uuid.UUID, bool]:
    """Fold an update or resolve (``kind``) into the node's incident ``ref``, creating it when
    the server never saw it. Returns (uuid, created)."""
    assert kind in ("update", "resolve")
    with transaction(con):
        state = _load_ref(con, node_uuid, ref)
        created = state is None
        if state is not None:
            _expire_loaded(con, state, now, idle_secs)
        else:
            started = now
            duration = num(body.get("duration_seconds")) if kind == "resolve" else None
            if duration:
                started = now - timedelta(seconds=min(duration, MAX_DURATION_SECS))
            state = _blank(ref, started)
        _apply(state, kind, body, now)
        inc_uuid = _save(con, ws_uuid, node_uuid, state, now)
        if kind == "resolve":
            agent_settings.end_mitigations(con, [str(inc_uuid)], now)
        outbox.incident_changed(con, inc_uuid, now)
    outbox.notify_listeners()
    return inc_uuid, created


def record_ack(
    con: Connection,
    node_uuid: uuid.UUID,
    command_id: int,
    status: str,
    error: str | None,
    now: datetime,
) -> None:
    con.execute(
        "INSERT INTO agent_command_acks VALUES (?, ?, ?, ?, ?)",
        [str(node_uuid), command_id, status, error, now],
    )


_CONFIG_COLUMNS = (
    "sp_enabled, sp_sensitivity, sp_response_mode, service_ports, "
    "CAST(agent_status AS VARCHAR) AS agent_status"
)


def _config_row(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row["service_ports"], str):
        row["service_ports"] = orjson.loads(row["service_ports"])
    return row


def node_config_row(con: Connection, node_uuid: uuid.UUID) -> dict[str, Any] | None:
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_CONFIG_COLUMNS} FROM nodes WHERE uuid = ? AND deleted_at IS NULL",
            [str(node_uuid)],
        )
    )
    return _config_row(rows[0]) if rows else None


def all_node_config_rows(con: Connection, limit: int) -> list[dict[str, Any]]:
    """``node_config_row`` of up to ``limit`` live nodes (most recently seen first), with their
    ``uuid`` and ``workspace_uuid`` as strings."""
    rows = rows_as_dicts(
        con.execute(
            "SELECT CAST(n.uuid AS VARCHAR) AS uuid, "
            "CAST(n.workspace_uuid AS VARCHAR) AS workspace_uuid, "
            "n.sp_enabled, n.sp_sensitivity, n.sp_response_mode, n.service_ports, "
            "CAST(n.agent_status AS VARCHAR) AS agent_status "
            "FROM nodes n JOIN workspaces w ON w.uuid = n.workspace_uuid "
            "WHERE n.deleted_at IS NULL AND w.deleted_at IS NULL "
            "ORDER BY n.last_seen DESC NULLS LAST LIMIT ?",
            [limit],
        )
    )
    return [_config_row(r) for r in rows]
