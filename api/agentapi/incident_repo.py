"""The Agent API's incidents in the database (docs/agent-api.md
§8): the queries that find, create and store the incidents ftagent reports. The rules they apply
(how reports fold into one incident, severity, the merge windows, expiry) are detection and live
in ``detect/agent_incidents.py``.

An agent names an incident by a string (``agent_ref``): the uuid the server issued at open, or a
UUID the agent made up when the open failed. Lookups are always scoped to the reporting node, so
an agent can never touch another node's incident.

Expiry (§8.10, setting ``api.agent_incident_expiry_secs``) runs for the reporting node on every
open (so a new open never merges into a stale incident), for the one incident an update or
resolve names before that report is folded in (so a report after the silence lands on a
resolved incident), and for every node from the server's agent housekeeping task every few
seconds (heartbeats stay off the database).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson

from detect import agent_incidents as rules
from detect.agent_incidents import INCIDENT_IDLE_EXPIRY_SECS
from store import outbox
from store.db import Connection, rows_as_dicts, transaction
from store.ids import new_incident_id

from . import settings_repo

__all__ = [
    "INCIDENT_IDLE_EXPIRY_SECS",
    "expire_idle_incidents",
    "expire_stale_incidents",
    "open_incident",
    "report_incident",
    "save",
]

_STATE_COLUMNS = (
    "uuid, status, severity, attack_family, attack_subtype, title, started_at, resolved_at, "
    "peak_pps, peak_bps, source_ip_count, confidence, protocol_breakdown, top_sources, "
    "top_dst_ports, detail, agent_ref, updated_at, source"
)
_JSON_COLUMNS = ("protocol_breakdown", "top_sources", "top_dst_ports", "detail")


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
        ref = row["agent_ref"] or str(row["uuid"])
        row["detail"] = rules.blank(ref, row["started_at"])["detail"]
    return row


def save(
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
        "workspace_uuid, node_uuid, id, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ftagent')",
        [*values, str(inc_uuid), str(ws_uuid), str(node_uuid), new_incident_id(con)],
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


def _expire_loaded(con: Connection, state: dict[str, Any], now: datetime, idle_secs: float) -> None:
    """The expiry rule applied to the one incident a report is about, in memory, before the
    report is folded in (so a report after ``idle_secs`` of silence lands on a resolved
    incident, exactly as if the sweep had run first)."""
    if rules.expire(state, now, idle_secs):
        settings_repo.end_mitigations(con, [str(state["uuid"])], now)


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
    marker = orjson.dumps({"expired": rules.expiry_marker(now, idle_secs)}).decode()
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
    settings_repo.end_mitigations(con, [str(r[0]) for r in rows], now)
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
    started = rules.parse_time(body.get("started_at")) or now
    family = rules.text(body.get("attack_family")) or "unknown"
    inner_ip = rules.text(body.get("inner_ip")) or ""
    with transaction(con):
        expire_stale_incidents(con, now, node_uuid=node_uuid, idle_secs=idle_secs)
        # the three merge rules below in one scan of the node's incidents: the first rule
        # that matches wins, the earliest incident within it (a query each cost three)
        r_lo, r_hi = rules.REPLAYED_OPEN_WINDOW
        d_lo, d_hi = rules.DETECTED_OPEN_WINDOW
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
        if state is not None:
            rules.join_open(state, state.pop("rule"), started)
        merged = state is not None
        fresh: uuid.UUID | None = None
        if state is None:
            state = rules.blank("", started)
            state["attack_family"] = family
            fresh = uuid.uuid4()
            state["agent_ref"] = str(fresh)
            state["detail"]["agent_ref"] = str(fresh)
        rules.apply(state, "open", body, now)
        # a uuid of our own making needs no check that it is free (the key refuses a clash)
        inc_uuid = save(con, ws_uuid, node_uuid, state, now, fresh=fresh)
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
            duration = rules.num(body.get("duration_seconds")) if kind == "resolve" else None
            if duration:
                started = now - timedelta(seconds=min(duration, rules.MAX_DURATION_SECS))
            state = rules.blank(ref, started)
        rules.apply(state, kind, body, now)
        inc_uuid = save(con, ws_uuid, node_uuid, state, now)
        if kind == "resolve":
            settings_repo.end_mitigations(con, [str(inc_uuid)], now)
        outbox.incident_changed(con, inc_uuid, now)
    outbox.notify_listeners()
    return inc_uuid, created
