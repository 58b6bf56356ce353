"""What operators tell ftagent agents: config overrides (per workspace, per node) and remote
mitigation commands.

Overrides are the keys of the agent's ``GET /agent/config`` answer that an operator may set
(docs/agent-api.md §4.3). Each is checked here, so an agent never receives a value of the wrong
type (a wrong type aborts the agent's config handling). A node's effective config is the built-in
defaults, overlaid by its workspace's overrides, overlaid by its own; objects (``flow``, ``l7``)
merge key by key. In a PATCH, ``null`` removes an override, and ``null`` for a key inside an
object removes that key (unless the key takes ``null`` as a value, as ``l7.rps_threshold``).

Commands get a unique non-zero integer id, stay pending until the node acknowledges them, and
record the ack (applied or failed, with the agent's error text).

The node columns a config answer is built from (service ports, the stored heartbeat) are read
here too (``node_config_row``, ``all_node_config_rows``). Described for readers in
docs/agent-api.md §4 and §5.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from store.db import Connection, rows_as_dicts, utcnow
from store.errors import Conflict, InvalidValue, NotFound

__all__ = [
    "COMMAND_TYPES",
    "all_node_config_rows",
    "all_overrides",
    "all_pending_commands",
    "clear_l7_action",
    "create_command",
    "derive_undo",
    "effective_settings",
    "end_mitigations",
    "get_overrides",
    "list_commands",
    "node_config_row",
    "overlay",
    "pending_commands",
    "record_ack",
    "set_overrides",
]

COMMAND_TYPES = ("iptables", "ip6tables", "nft", "sysctl", "shell", "xdp", "tc", "ipset")
MAX_COMMAND_TEXT = 16_384

Check = Callable[[str, Any], Any]


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise InvalidValue(f"{key} must be true or false", key)
    return v


def _int(lo: int, hi: int) -> Check:
    def check(key: str, v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise InvalidValue(f"{key} must be an integer from {lo} to {hi}", key)
        return v

    return check


def _num(lo: float, hi: float, nullable: bool = False) -> Check:
    def check(key: str, v: Any) -> float | int | None:
        if v is None and nullable:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            raise InvalidValue(f"{key} must be a number from {lo:g} to {hi:g}", key)
        return v

    return check


def _choice(*choices: str) -> Check:
    def check(key: str, v: Any) -> str:
        if v not in choices:
            raise InvalidValue(f"{key} must be one of {', '.join(choices)}", key)
        return str(v)

    return check


def _text(max_len: int) -> Check:
    def check(key: str, v: Any) -> str:
        if not isinstance(v, str) or len(v) > max_len or any(ord(c) < 32 for c in v):
            raise InvalidValue(f"{key} must be a string of at most {max_len} characters", key)
        return v

    return check


def _ip_list(key: str, v: Any) -> list[str]:
    if not isinstance(v, list) or len(v) > 1000:
        raise InvalidValue(f"{key} must be a list of at most 1000 IP addresses", key)
    out = []
    for item in v:
        try:
            out.append(ipaddress.ip_address(str(item)).compressed)
        except ValueError:
            raise InvalidValue(f"{key} holds {item!r}, which is not an IP address", key) from None
    return out


def _cidr_list(key: str, v: Any) -> list[str]:
    if not isinstance(v, list) or len(v) > 1000:
        raise InvalidValue(f"{key} must be a list of at most 1000 networks (CIDR)", key)
    out = []
    for item in v:
        try:
            out.append(ipaddress.ip_network(str(item), strict=False).compressed)
        except ValueError:
            raise InvalidValue(f"{key} holds {item!r}, which is not a network", key) from None
    return out


def _ioc_patterns(key: str, v: Any) -> list[dict[str, str]]:
    if not isinstance(v, list) or len(v) > 1000:
        raise InvalidValue(f"{key} must be a list of at most 1000 patterns", key)
    out = []
    for item in v:
        if not isinstance(item, dict) or not isinstance(item.get("pattern"), str):
            raise InvalidValue(f"{key} entries must be objects with a string pattern", key)
        out.append(
            {
                "pattern": _text(256)(key, item["pattern"]),
                "attack_name": _text(100)(key, item.get("attack_name", "ioc")),
                "attack_family": _text(100)(key, item.get("attack_family", "unknown")),
            }
        )
    return out


def _blocklist(key: str, v: Any) -> list[dict[str, str]]:
    if not isinstance(v, list):
        raise InvalidValue(f"{key} must be a list of {{indicator: ip}} objects or IPs", key)
    ips = _ip_list(key, [i.get("indicator") if isinstance(i, dict) else i for i in v])
    return [{"indicator": ip} for ip in ips]


def _labels(key: str, v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or len(v) > 10_000:
        raise InvalidValue(f"{key} must be an object of address -> label", key)
    return {str(k): _text(100)(key, label) for k, label in v.items()}


_UNSET = "\x00unset"
"""What a ``null`` inside an object override becomes when the key takes no ``null`` of its own:
the removal of that key from the stored override (``{"l7": {"action": null}}``)."""


def _object(spec: dict[str, Check]) -> Check:
    def check(key: str, v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise InvalidValue(f"{key} must be an object", key)
        out: dict[str, Any] = {}
        for k, value in v.items():
            if k not in spec:
                raise InvalidValue(f"{key}.{k} is not a setting of {key}", key)
            try:
                out[k] = spec[k](f"{key}.{k}", value)
            except InvalidValue:
                if value is not None:
                    raise
                out[k] = _UNSET
        return out

    return check


_NODE_IP = _text(45)

SETTINGS: dict[str, Check] = {
    "pps_threshold": _num(0, 1e12),
    "dynamic_threshold": _bool,
    "pcap_enabled": _bool,
    "velocity_detection": _bool,
    "attack_holddown": _int(3, 3600),
    "attack_cooldown": _num(10, 86_400),
    "confirm_ticks": _int(2, 30),
    "gre_mode": _choice("enabled", "disabled", "auto"),
    "gre_max_depth": _int(1, 8),
    "hypervisor_mode": _bool,
    "vm_labels": _labels,
    "ioc_patterns": _ioc_patterns,
    "ip_blocklist": _blocklist,
    "preferred_firewall": _choice("iptables", "nftables", "ufw", "firewalld"),
    "suspended": _bool,
    "mirror_subnets": _cidr_list,
    "mirror_ip_labels": _labels,
    "mirror_ip_limit": _int(1, 100_000),
    "mirror_blocked": _bool,
    "mirror_message": _text(500),
    "flow": _object(
        {
            "enabled": _bool,
            "protocol": _choice("auto", "sflow", "netflow_v5", "netflow_v9", "ipfix"),
            "port": _int(0, 65535),
            "sample_rate": _int(0, 1_000_000),
            "source_ips": _ip_list,
            "node_ip": _NODE_IP,
        }
    ),
    "l7": _object(
        {
            "enabled": _bool,
            "action": _choice("auto_detect"),
            "log_path": _text(1024),
            "rps_threshold": _num(1, 1e9, nullable=True),
            "error_rate_threshold": _num(1, 100),
            "sensitivity": _choice("low", "medium", "high"),
        }
    ),
}


def _scope(node_uuid: uuid.UUID | None) -> tuple[str, list[Any]]:
    if node_uuid is None:
        return "node_uuid IS NULL", []
    return "node_uuid = ?", [str(node_uuid)]


def get_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None
) -> dict[str, Any]:
    cond, params = _scope(node_uuid)
    row = con.execute(
        f"SELECT settings FROM agent_settings WHERE workspace_uuid = ? AND {cond}",
        [str(ws_uuid), *params],
    ).fetchone()
    if row is None:
        return {}
    value: dict[str, Any] = orjson.loads(row[0])
    return value


def set_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None, patch: dict[str, Any]
) -> dict[str, Any]:
    """Apply a partial change (``null`` removes a key) and return the stored overrides."""
    current = get_overrides(con, ws_uuid, node_uuid)
    for key, value in patch.items():
        if key not in SETTINGS:
            raise InvalidValue(f"{key} is not an agent setting", key)
        if value is None:
            current.pop(key, None)
            continue
        checked = SETTINGS[key](key, value)
        if isinstance(checked, dict):
            stored = current.get(key)
            base: dict[str, Any] = stored if isinstance(stored, dict) else {}
            merged = {k: v for k, v in {**base, **checked}.items() if v != _UNSET}
            if merged or not checked:
                current[key] = merged
            else:  # every key of the object removed: no override left
                current.pop(key, None)
        else:
            current[key] = checked
    _store_overrides(con, ws_uuid, node_uuid, current)
    return current


def clear_l7_action(con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID) -> bool:
    """Drop ``l7.action`` from the node's own overrides (§4.5: the agent repeats web-server
    discovery on every config fetch while it is set, so it is cleared once the node's
    ``l7/detect`` report has arrived). Returns whether there was one. A workspace-wide
    ``auto_detect`` stays: other nodes may not have reported yet."""
    current = get_overrides(con, ws_uuid, node_uuid)
    l7 = current.get("l7")
    if not isinstance(l7, dict) or "action" not in l7:
        return False
    del l7["action"]
    if not l7:
        del current["l7"]
    _store_overrides(con, ws_uuid, node_uuid, current)
    return True


def _store_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None, current: dict[str, Any]
) -> None:
    cond, params = _scope(node_uuid)
    con.execute(
        f"DELETE FROM agent_settings WHERE workspace_uuid = ? AND {cond}",
        [str(ws_uuid), *params],
    )
    con.execute(
        "INSERT INTO agent_settings VALUES (?, ?, ?, ?)",
        [
            str(ws_uuid),
            str(node_uuid) if node_uuid else None,
            orjson.dumps(current).decode(),
            utcnow(),
        ],
    )


def effective_settings(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID, defaults: dict[str, Any]
) -> dict[str, Any]:
    """``defaults`` overlaid by the workspace's overrides, then the node's."""
    return overlay(
        defaults, (get_overrides(con, ws_uuid, None), get_overrides(con, ws_uuid, node_uuid))
    )


def overlay(defaults: dict[str, Any], layers: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """``defaults`` with each layer of overrides applied in turn; objects merge key by key."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


def all_overrides(con: Connection) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Every stored override layer: (workspace, node or None for the workspace's) -> settings."""
    rows = con.execute("SELECT workspace_uuid, node_uuid, settings FROM agent_settings").fetchall()
    return {
        (str(ws), None if node is None else str(node)): orjson.loads(settings)
        for ws, node, settings in rows
    }


def all_pending_commands(con: Connection) -> dict[str, list[dict[str, Any]]]:
    """``pending_commands`` of every node that has any: node -> commands."""
    rows = con.execute(
        f"SELECT c.node_uuid, c.id, c.command_type, c.command_text, c.title {_COMMAND_FROM} "
        "WHERE a.status IS NULL AND c.cancelled_at IS NULL ORDER BY c.id"
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for node, cid, ctype, text, title in rows:
        out.setdefault(str(node), []).append(
            {"id": int(cid), "command_type": ctype, "command_text": text, "title": title}
        )
    return out


_COMMAND_COLUMNS = """
    c.id, c.node_uuid, c.command_type, c.command_text, c.title, c.created_at,
    c.incident_uuid, c.undo_text AS undo_command_text, c.undo_of, c.cancelled_at,
    (SELECT min(u.id) FROM agent_commands u WHERE u.undo_of = c.id) AS undo_command_id,
    a.status AS ack_status, a.error AS ack_error, a.received_at AS acked_at
"""
_COMMAND_FROM = """
    FROM agent_commands c
    LEFT JOIN (
        SELECT command_id, node_uuid, arg_max(status, received_at) AS status,
               arg_max(error, received_at) AS error, max(received_at) AS received_at
        FROM agent_command_acks GROUP BY 1, 2
    ) a ON a.command_id = c.id AND a.node_uuid = c.node_uuid
"""


_IPTABLES_ADD = re.compile(r"^(ip6?tables)(\s.*?)?\s-(A|I)\s+(\S+)(\s+\d+)?(\s.*)$")


def derive_undo(command_type: str, command_text: str) -> str | None:
    """The lines that take an iptables/ip6tables mitigation back: every ``-A``/``-I CHAIN [n]``
    rule becomes ``-D CHAIN`` with the same match. None unless every line is such a rule (a
    partial undo would be worse than asking the operator for one)."""
    if command_type not in ("iptables", "ip6tables"):
        return None
    out = []
    for line in command_text.strip().splitlines():
        m = _IPTABLES_ADD.match(line.strip())
        if m is None:
            return None
        tool, before, _, chain, _, rule = m.groups()
        out.append(f"{tool}{before or ''} -D {chain}{rule}")
    return "\n".join(out) or None


def _check_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{field} must be a non-empty string", field)
    if len(value) > MAX_COMMAND_TEXT:
        raise InvalidValue(f"{field} is longer than {MAX_COMMAND_TEXT}", field)
    return value


def create_command(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    command_type: Any,
    command_text: Any,
    title: Any = None,
    incident_uuid: Any = None,
    undo_command_text: Any = None,
) -> dict[str, Any]:
    """Queue a command for the node. With ``incident_uuid`` (an active incident of this node)
    it is a mitigation of that incident: when the incident ends (the agent's resolve, or the
    server's expiry) its undo (``undo_command_text``, or for iptables/ip6tables rules one derived
    by ``derive_undo``) is queued, and the command itself is withdrawn if no ack came yet."""
    if command_type not in COMMAND_TYPES:
        raise InvalidValue(
            f"command_type must be one of {', '.join(COMMAND_TYPES)}", "command_type"
        )
    command_text = _check_text(command_text, "command_text")
    if command_type == "xdp":
        try:
            spec = orjson.loads(command_text)
        except orjson.JSONDecodeError:
            raise InvalidValue(
                "an xdp command_text must be a JSON object", "command_text"
            ) from None
        if not isinstance(spec, dict) or spec.get("type") not in (
            "xdp_filter",
            "xdp_filter_remove",
        ):
            raise InvalidValue(
                "an xdp spec needs type xdp_filter or xdp_filter_remove", "command_text"
            )
    if title is not None and (not isinstance(title, str) or len(title) > 200):
        raise InvalidValue("title must be a string of at most 200 characters", "title")
    undo = None
    if undo_command_text is not None:
        undo = _check_text(undo_command_text, "undo_command_text")
    incident = None
    if incident_uuid is not None:
        try:
            incident = uuid.UUID(str(incident_uuid))
        except ValueError:
            raise InvalidValue("incident_uuid must be an incident UUID", "incident_uuid") from None
        row = con.execute(
            "SELECT status FROM incidents WHERE uuid = ? AND workspace_uuid = ? AND node_uuid = ?",
            [str(incident), str(ws_uuid), str(node_uuid)],
        ).fetchone()
        if row is None:
            raise InvalidValue("incident_uuid is not an incident of this node", "incident_uuid")
        if row[0] != "active":
            raise Conflict("the incident has ended; a mitigation needs an active incident")
        if undo is None:
            undo = derive_undo(command_type, command_text)
    row = con.execute(
        "INSERT INTO agent_commands (workspace_uuid, node_uuid, command_type, command_text, "
        "title, created_at, incident_uuid, undo_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        [
            str(ws_uuid),
            str(node_uuid),
            command_type,
            command_text,
            title or "",
            utcnow(),
            None if incident is None else str(incident),
            undo,
        ],
    ).fetchone()
    assert row is not None
    return get_command(con, ws_uuid, node_uuid, int(row[0]))


def end_mitigations(con: Connection, incident_uuids: list[str], now: datetime) -> list[str]:
    """The incidents ended: queue the undo of each of their mitigations (once), and withdraw the
    mitigations the agent has not acknowledged yet. Returns the nodes whose config changed."""
    if not incident_uuids:
        return []
    marks = ", ".join("?" for _ in incident_uuids)
    nodes = con.execute(
        "INSERT INTO agent_commands (workspace_uuid, node_uuid, command_type, command_text, "
        "title, created_at, undo_of) "
        "SELECT c.workspace_uuid, c.node_uuid, c.command_type, c.undo_text, "
        "left('undo: ' || c.title, 200), ?, c.id FROM agent_commands c "
        f"WHERE c.incident_uuid IN ({marks}) AND c.undo_text IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM agent_commands u WHERE u.undo_of = c.id) "
        "ORDER BY c.id RETURNING node_uuid",
        [now, *incident_uuids],
    ).fetchall()
    withdrawn = con.execute(
        "UPDATE agent_commands c SET cancelled_at = ? "
        f"WHERE c.incident_uuid IN ({marks}) AND c.cancelled_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM agent_command_acks a "
        "WHERE a.command_id = c.id AND a.node_uuid = c.node_uuid) RETURNING node_uuid",
        [now, *incident_uuids],
    ).fetchall()
    return sorted({str(r[0]) for r in (*nodes, *withdrawn)})


def get_command(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID, command_id: int
) -> dict[str, Any]:
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COMMAND_COLUMNS} {_COMMAND_FROM} "
            "WHERE c.workspace_uuid = ? AND c.node_uuid = ? AND c.id = ?",
            [str(ws_uuid), str(node_uuid), command_id],
        )
    )
    if not rows:
        raise NotFound("command not found")
    return _status(rows[0])


def _status(row: dict[str, Any]) -> dict[str, Any]:
    ack = row.get("ack_status")
    if ack is not None:
        row["status"] = "applied" if ack == "applied" else "failed"
    else:
        row["status"] = "cancelled" if row.get("cancelled_at") is not None else "pending"
    return row


def list_commands(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    total = con.execute(
        "SELECT count(*) FROM agent_commands WHERE workspace_uuid = ? AND node_uuid = ?",
        [str(ws_uuid), str(node_uuid)],
    ).fetchone()
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COMMAND_COLUMNS} {_COMMAND_FROM} "
            "WHERE c.workspace_uuid = ? AND c.node_uuid = ? ORDER BY c.id DESC LIMIT ? OFFSET ?",
            [str(ws_uuid), str(node_uuid), limit, offset],
        )
    )
    return [_status(r) for r in rows], int(total[0]) if total else 0


def pending_commands(con: Connection, node_uuid: uuid.UUID) -> list[dict[str, Any]]:
    """Commands not yet acknowledged, in the agent's shape (§5.1)."""
    rows = con.execute(
        f"SELECT c.id, c.command_type, c.command_text, c.title {_COMMAND_FROM} "
        "WHERE c.node_uuid = ? AND a.status IS NULL AND c.cancelled_at IS NULL ORDER BY c.id",
        [str(node_uuid)],
    ).fetchall()
    return [
        {"id": int(r[0]), "command_type": r[1], "command_text": r[2], "title": r[3]} for r in rows
    ]


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
