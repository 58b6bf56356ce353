"""Nodes: the monitored servers of a workspace.

A node's status is derived when it is read, never stored: ``attack`` while it has an active
incident, ``offline`` when nothing was heard from it for ``offline_after`` seconds (or ever),
``elevated`` when the newest traffic sample was above the node's baseline (the flag is set by
``api/activity.py`` with each liveness write, from ``node_baselines``), else ``online``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from . import outbox
from .db import Connection, rows_as_dicts, transaction, utcnow
from .errors import Conflict, InvalidValue, LimitReached, NotFound, SubscriptionInactive
from .plans import is_active
from .secrets import hash_secret, new_secret, secret_prefix
from .types import Node, NodeTraffic, ServicePort, Workspace, typed_row
from .validate import check_bool, check_choice, check_ip, check_optional_text, check_text

__all__ = [
    "NODE_STATUSES",
    "PRIORITIES",
    "check_create_keys",
    "check_interface",
    "check_priority",
    "check_service_ports",
    "check_update_keys",
    "create_node",
    "delete_node",
    "get_node",
    "list_nodes",
    "node_baselines",
    "node_traffic_stats",
    "update_node",
    "validate_node_changes",
    "validate_node_fields",
]

NODE_STATUSES = ("online", "offline", "attack", "elevated")
PRIORITIES = ("production", "staging", "development")
SP_SENSITIVITIES = ("standard", "aggressive", "relaxed", "custom")
SP_RESPONSE_MODES = ("full", "pipeline", "onnode")
SERVICE_PORT_PROTOCOLS = ("tcp", "udp", "both")
MAX_SERVICE_PORTS = 256

_IFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
_PORT_VALUE = re.compile(r"[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*")

_CREATE_FIELDS = ("name", "ip", "location", "os", "interface", "priority")
_UPDATE_FIELDS = (
    *_CREATE_FIELDS,
    "sp_enabled",
    "sp_sensitivity",
    "sp_response_mode",
    "service_ports",
)
READ_ONLY_FIELDS = frozenset(
    {
        "uuid",
        "status",
        "api_key",
        "created_at",
        "updated_at",
        "last_seen",
        "last_pps",
        "last_bps",
        "agent_version",
        "last_heartbeat_at",
        "agent_status",
        "agent_update_error",
        "agent_update_error_at",
    }
)


def check_interface(value: Any) -> str:
    """A network interface name; empty or null means ``eth0``."""
    if value is None or value == "":
        return "eth0"
    if not isinstance(value, str) or not _IFACE.fullmatch(value):
        raise InvalidValue(
            "interface must be a network interface name of 1-15 letters, digits or ._:@-",
            "interface",
        )
    return value


def _check_port_value(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidValue(f"{where}.port_value must be a string such as '80' or '27015-27017'")
    text: str = value.replace(" ", "")
    if not _PORT_VALUE.fullmatch(text):
        raise InvalidValue(f"{where}.port_value must be ports or ranges separated by commas")
    for part in text.split(","):
        bounds = [int(p) for p in part.split("-")]
        if any(not 1 <= p <= 65535 for p in bounds) or bounds != sorted(bounds):
            raise InvalidValue(f"{where}.port_value holds a port or range outside 1-65535")
    return text


def check_service_ports(value: Any) -> list[ServicePort]:
    """The service-port list, each entry normalised; every error names ``service_ports``."""
    if not isinstance(value, list):
        raise InvalidValue("service_ports must be an array", "service_ports")
    if len(value) > MAX_SERVICE_PORTS:
        raise InvalidValue(
            f"service_ports may hold at most {MAX_SERVICE_PORTS} entries", "service_ports"
        )
    out: list[ServicePort] = []
    for i, item in enumerate(value):
        where = f"service_ports[{i}]"
        if not isinstance(item, dict):
            raise InvalidValue(f"{where} must be an object", "service_ports")
        unknown = set(item) - {"protocol", "port_value", "label"}
        if unknown:
            raise InvalidValue(f"{where} has unknown field {sorted(unknown)[0]}", "service_ports")
        try:
            protocol = check_choice(
                item.get("protocol", "tcp"), f"{where}.protocol", SERVICE_PORT_PROTOCOLS
            )
            label = check_optional_text(item.get("label"), f"{where}.label") or ""
            port_value = _check_port_value(item.get("port_value"), where)
        except InvalidValue as exc:
            raise InvalidValue(str(exc), "service_ports") from None
        out.append({"protocol": protocol, "port_value": port_value, "label": label})
    return out


def validate_node_fields(body: dict[str, Any], strict: bool = False) -> dict[str, Any]:
    """Checked and normalised fields for a new node. ``strict`` (REST create) refuses unknown
    fields; the Deploy API ignores them, as installers in the wild send extras."""
    if strict:
        check_create_keys(body)
    return {
        "name": check_text(body.get("name"), "name"),
        "ip": check_ip(body.get("ip")),
        "location": check_optional_text(body.get("location"), "location"),
        "os": check_optional_text(body.get("os"), "os"),
        "interface": check_interface(body.get("interface")),
        "priority": check_priority(body.get("priority")),
    }


def check_create_keys(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` unchanged if it holds only fields of a new node; else the first other one, in
    the order sent, is refused."""
    for key in body:
        if key not in _CREATE_FIELDS:
            raise InvalidValue(f"unknown field {key} (known: {', '.join(_CREATE_FIELDS)})", key)
    return body


def check_priority(value: Any) -> str:
    """A new node's priority; null means ``production``."""
    return "production" if value is None else check_choice(value, "priority", PRIORITIES)


def validate_node_changes(body: dict[str, Any]) -> dict[str, Any]:
    """Checked and normalised fields of a partial update; only the keys sent are returned."""
    check_update_keys(body)
    out: dict[str, Any] = {}
    if "name" in body:
        out["name"] = check_text(body["name"], "name")
    if "ip" in body:
        out["ip"] = check_ip(body["ip"])
    if "location" in body:
        out["location"] = check_optional_text(body["location"], "location")
    if "os" in body:
        out["os"] = check_optional_text(body["os"], "os")
    if "interface" in body:
        out["interface"] = check_interface(body["interface"])
    if "priority" in body:
        out["priority"] = check_choice(body["priority"], "priority", PRIORITIES)
    if "sp_enabled" in body:
        out["sp_enabled"] = check_bool(body["sp_enabled"], "sp_enabled")
    if "sp_sensitivity" in body:
        out["sp_sensitivity"] = check_choice(
            body["sp_sensitivity"], "sp_sensitivity", SP_SENSITIVITIES
        )
    if "sp_response_mode" in body:
        out["sp_response_mode"] = check_choice(
            body["sp_response_mode"], "sp_response_mode", SP_RESPONSE_MODES
        )
    if "service_ports" in body:
        out["service_ports"] = orjson.dumps(check_service_ports(body["service_ports"])).decode()
    return out


def check_update_keys(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` unchanged if every field it holds may be changed; else the first other one, in
    the order sent, is refused (a read-only one as such)."""
    for key in body:
        if key in READ_ONLY_FIELDS:
            raise InvalidValue(f"{key} cannot be changed", key)
        if key not in _UPDATE_FIELDS:
            raise InvalidValue(f"unknown field {key}", key)
    return body


def _status_sql() -> str:
    return """
        CASE
            WHEN EXISTS (SELECT 1 FROM incidents i
                         WHERE i.node_uuid = n.uuid AND i.status = 'active') THEN 'attack'
            WHEN n.last_seen IS NULL OR n.last_seen < $cutoff THEN 'offline'
            WHEN n.elevated THEN 'elevated'
            ELSE 'online'
        END
    """


_NODE_SELECT = f"""
    SELECT n.uuid, n.name, n.ip, n.location, n.os, n.interface, n.priority,
           {_status_sql()} AS status,
           n.last_seen, n.last_pps, n.last_bps, n.agent_version,
           n.last_heartbeat_at, n.agent_status, n.agent_update_error, n.agent_update_error_at,
           n.sp_enabled, n.sp_sensitivity, n.sp_response_mode, n.service_ports,
           (SELECT count(*) FROM incidents i
             WHERE i.node_uuid = n.uuid AND i.status = 'active') AS active_incidents,
           n.created_at, n.updated_at
    FROM nodes n
    WHERE n.workspace_uuid = $ws AND n.deleted_at IS NULL
"""


def _decode(row: dict[str, Any]) -> Node:
    sp = row.get("service_ports")
    if isinstance(sp, str):
        row["service_ports"] = orjson.loads(sp)
    status = row.get("agent_status")
    if isinstance(status, str):
        row["agent_status"] = orjson.loads(status)
    return typed_row(row, Node)


def _cutoff(now: datetime, offline_after_secs: int) -> datetime:
    return now - timedelta(seconds=offline_after_secs)


def list_nodes(
    con: Connection,
    ws_uuid: uuid.UUID,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    offline_after_secs: int = 120,
    now: datetime | None = None,
) -> tuple[list[Node], int]:
    params: dict[str, Any] = {
        "ws": str(ws_uuid),
        "cutoff": _cutoff(now or utcnow(), offline_after_secs),
    }
    where = ""
    if status is not None:
        where = "WHERE status = $status"
        params["status"] = status
    total = con.execute(f"SELECT count(*) FROM ({_NODE_SELECT}) {where}", params).fetchone()
    rows = rows_as_dicts(
        con.execute(
            f"SELECT * FROM ({_NODE_SELECT}) {where} ORDER BY created_at, uuid "
            "LIMIT $limit OFFSET $offset",
            {**params, "limit": limit, "offset": offset},
        )
    )
    return [_decode(r) for r in rows], int(total[0]) if total else 0


def get_node(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    *,
    offline_after_secs: int = 120,
    now: datetime | None = None,
) -> Node:
    rows = rows_as_dicts(
        con.execute(
            f"{_NODE_SELECT} AND n.uuid = $node",
            {
                "ws": str(ws_uuid),
                "node": str(node_uuid),
                "cutoff": _cutoff(now or utcnow(), offline_after_secs),
            },
        )
    )
    if not rows:
        raise NotFound("node not found")
    return _decode(rows[0])


def _name_taken(con: Connection, ws_uuid: uuid.UUID, name: str, exclude: uuid.UUID | None) -> bool:
    row = con.execute(
        "SELECT 1 FROM nodes WHERE workspace_uuid = ? AND deleted_at IS NULL "
        "AND lower(name) = lower(?) AND uuid IS DISTINCT FROM ?",
        [str(ws_uuid), name, str(exclude) if exclude else None],
    ).fetchone()
    return row is not None


def create_node(con: Connection, workspace: Workspace, fields: dict[str, Any]) -> tuple[Node, str]:
    """Register a node from already validated ``fields``; returns (node, plaintext API key).

    Raises SubscriptionInactive or LimitReached (402) and Conflict (409, duplicate name)."""
    ws_uuid = workspace["uuid"]
    if not is_active(workspace["subscription_status"]):
        raise SubscriptionInactive(
            f"the workspace subscription is {workspace['subscription_status']}"
        )
    api_key = new_secret()
    node_uuid = uuid.uuid4()
    now = utcnow()
    with transaction(con):
        limit = con.execute(
            "SELECT node_limit FROM workspaces WHERE uuid = ?", [str(ws_uuid)]
        ).fetchone()
        if limit is not None and limit[0] is not None:
            count = con.execute(
                "SELECT count(*) FROM nodes WHERE workspace_uuid = ? AND deleted_at IS NULL",
                [str(ws_uuid)],
            ).fetchone()
            if count is not None and count[0] >= limit[0]:
                raise LimitReached(
                    f"the workspace plan allows {limit[0]} node(s) and all are in use"
                )
        if _name_taken(con, ws_uuid, fields["name"], None):
            raise Conflict(f"a node named {fields['name']} already exists")
        con.execute(
            "INSERT INTO nodes (uuid, workspace_uuid, name, ip, location, os, interface, "
            "priority, api_key_hash, api_key_prefix, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                str(node_uuid),
                str(ws_uuid),
                fields["name"],
                fields["ip"],
                fields["location"],
                fields["os"],
                fields["interface"],
                fields["priority"],
                hash_secret(api_key),
                secret_prefix(api_key),
                now,
                now,
            ],
        )
    return get_node(con, ws_uuid, node_uuid), api_key


def update_node(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    changes: dict[str, Any],
    *,
    offline_after_secs: int = 120,
) -> Node:
    get_node(con, ws_uuid, node_uuid)
    if changes:
        if "name" in changes and _name_taken(con, ws_uuid, changes["name"], node_uuid):
            raise Conflict(f"a node named {changes['name']} already exists")
        if isinstance(changes.get("service_ports"), list):  # as the typed model gives it
            changes = {**changes, "service_ports": orjson.dumps(changes["service_ports"]).decode()}
        cols = list(changes)
        con.execute(
            f"UPDATE nodes SET {', '.join(f'{c} = ?' for c in cols)}, updated_at = ? "
            "WHERE uuid = ? AND workspace_uuid = ?",
            [*(changes[c] for c in cols), utcnow(), str(node_uuid), str(ws_uuid)],
        )
    return get_node(con, ws_uuid, node_uuid, offline_after_secs=offline_after_secs)


def delete_node(con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID) -> None:
    """Soft-delete the node. Its active incidents end with it (no agent can report on them any
    more): resolved now, ``detail.ended_by`` saying why, so the workspace stops counting them."""
    get_node(con, ws_uuid, node_uuid)
    now = utcnow()
    marker = orjson.dumps({"ended_by": {"at": now.isoformat(), "reason": "node deleted"}})
    with transaction(con):
        con.execute(
            "UPDATE nodes SET deleted_at = ? WHERE uuid = ? AND workspace_uuid = ?",
            [now, str(node_uuid), str(ws_uuid)],
        )
        ended = con.execute(
            "UPDATE incidents SET status = 'resolved', resolved_at = ?, updated_at = ?, "
            "detail = json_merge_patch(coalesce(detail, '{}'), ?) "
            "WHERE node_uuid = ? AND workspace_uuid = ? AND status = 'active' RETURNING uuid",
            [now, now, marker.decode(), str(node_uuid), str(ws_uuid)],
        ).fetchall()
        for (inc,) in ended:
            outbox.incident_changed(con, str(inc), now)
    outbox.notify_listeners()


BASELINE_WINDOW_SECS = 86_400


def _empty_stats() -> NodeTraffic:
    return {
        "baseline": {
            "avg_pps": None,
            "p95_pps": None,
            "p99_pps": None,
            "avg_bps": None,
            "p95_bps": None,
            "p99_bps": None,
            "samples": 0,
            "window_secs": BASELINE_WINDOW_SECS,
        },
        "protocol_breakdown": {"tcp": None, "udp": None, "icmp": None, "other": None},
        "conn_count": None,
    }


def node_traffic_stats(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    lake_root: Path | None = None,
    now: datetime | None = None,
) -> NodeTraffic:
    """Baseline traffic and protocol mix of a node over the last 24 hours of its per-second
    metrics in the lake. With no telemetry, every figure is null and ``samples`` is 0: that empty
    form is part of the API contract. ``protocol_breakdown`` is in percent of packets."""
    out = _empty_stats()
    if lake_root is None:
        return out
    now = now or utcnow()
    since = now - timedelta(seconds=BASELINE_WINDOW_SECS)
    base = lake_root / "metrics" / f"workspace={ws_uuid}"
    days = {since.date().isoformat(), now.date().isoformat()}
    globs = [str(base / f"date={d}" / "*" / "*.parquet") for d in sorted(days)]
    globs = [g for g in globs if any(Path(g).parent.parent.glob("*/*.parquet"))]
    if not globs:
        return out
    files = "[" + ", ".join("'" + g.replace("'", "''") + "'" for g in globs) + "]"
    row = con.execute(
        f"""SELECT count(*), avg(pps), quantile_cont(pps, 0.95), quantile_cont(pps, 0.99),
                   avg(bps), quantile_cont(bps, 0.95), quantile_cont(bps, 0.99),
                   sum(tcp_pps), sum(udp_pps), sum(icmp_pps), sum(other_pps),
                   arg_max(conn_count, time)
            FROM read_parquet({files}, union_by_name = true)
            WHERE node_uuid = ? AND time >= ?""",
        [str(node_uuid), since],
    ).fetchone()
    if row is None or not row[0]:
        return out

    def num(v: Any) -> float | None:
        return None if v is None else round(float(v), 3)

    out["baseline"] = {
        "avg_pps": num(row[1]),
        "p95_pps": num(row[2]),
        "p99_pps": num(row[3]),
        "avg_bps": num(row[4]),
        "p95_bps": num(row[5]),
        "p99_bps": num(row[6]),
        "samples": int(row[0]),
        "window_secs": BASELINE_WINDOW_SECS,
    }
    protos = [row[7], row[8], row[9], row[10]]
    known = sum(v for v in protos if v is not None)
    if known > 0:
        tcp, udp, icmp, other = (
            None if v is None else round(100.0 * float(v) / known, 2) for v in protos
        )
        out["protocol_breakdown"] = {"tcp": tcp, "udp": udp, "icmp": icmp, "other": other}
    out["conn_count"] = None if row[11] is None else int(row[11])
    return out


def node_baselines(
    con: Connection, lake_root: Path, now: datetime | None = None, min_minutes: int = 60
) -> dict[str, float]:
    """node UUID -> the 99th percentile of its per-minute average pps over the last 24 hours of
    1-minute rollups, for every node with at least ``min_minutes`` of them (all workspaces)."""
    now = now or utcnow()
    since = now - timedelta(seconds=BASELINE_WINDOW_SECS)
    days = sorted({since.date().isoformat(), now.date().isoformat()})
    files = [
        str(p)
        for d in days
        for p in sorted(lake_root.glob(f"metrics_1m/workspace=*/date={d}/hour=*/rollup.parquet"))
    ]
    if not files:
        return {}
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    rows = con.execute(
        f"""SELECT node_uuid, quantile_cont(pps_avg, 0.99)
            FROM read_parquet({listed}, union_by_name = true, hive_partitioning = false)
            WHERE time >= ? AND pps_avg IS NOT NULL
            GROUP BY node_uuid
            HAVING count(*) >= ?""",
        [since, min_minutes],
    ).fetchall()
    return {str(node): float(p99) for node, p99 in rows if p99 is not None}
