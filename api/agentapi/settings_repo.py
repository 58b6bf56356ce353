"""What operators tell ftagent agents: config overrides (per workspace, per node) and remote
mitigation commands.

Overrides are the keys of the agent's ``GET /agent/config`` answer that an operator may set
(docs/agent-api.md §4.3). Each is checked before it is stored (``overrides.py`` declares the
keys, their checks and their types), so an agent never receives a value of the wrong type (a
wrong type aborts the agent's config handling). A node's effective config is the built-in
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

import re
import uuid
from datetime import datetime
from typing import Any

import orjson

from store.db import Connection, rows_as_dicts, settings_scope, stored_settings, utcnow
from store.errors import Conflict, InvalidValue, NotFound

from .overrides import UNSET

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


def get_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None
) -> dict[str, Any]:
    """The stored overrides of a workspace (``node_uuid`` None) or of one node; {} if none."""
    return stored_settings(con, "agent_settings", ws_uuid, node_uuid)


def set_overrides(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None, patch: dict[str, Any]
) -> dict[str, Any]:
    """Apply a partial change, checked by ``overrides.check_patch`` (``None`` removes a key,
    ``UNSET`` a key inside an object), and return the stored overrides."""
    current = get_overrides(con, ws_uuid, node_uuid)
    for key, checked in patch.items():
        if checked is None:
            current.pop(key, None)
            continue
        if isinstance(checked, dict):
            stored = current.get(key)
            base: dict[str, Any] = stored if isinstance(stored, dict) else {}
            merged = {k: v for k, v in {**base, **checked}.items() if v != UNSET}
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
    cond, params = settings_scope(node_uuid)
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
