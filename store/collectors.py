"""Collector keys: workspace-scoped credentials that may push binary telemetry for any node of
their workspace (routers, taps, Floodwatch collectors). Shown once, stored hashed."""

from __future__ import annotations

import uuid
from typing import Any

from .db import Connection, one_by_id_prefix, rows_as_dicts, utcnow
from .secrets import hash_secret, new_secret, secret_prefix, secrets_equal
from .types import CollectorKey, typed_row, typed_rows
from .validate import check_text

__all__ = [
    "authenticate_collector",
    "authenticate_node_key",
    "create_collector",
    "list_collectors",
    "revoke_collector",
    "workspace_node_index",
]

_COLUMNS = "id, name, prefix, created_at, revoked_at"


def create_collector(con: Connection, ws_uuid: uuid.UUID, name: Any) -> tuple[CollectorKey, str]:
    name = check_text(name, "name")
    key = new_secret()
    key_id = uuid.uuid4()
    con.execute(
        "INSERT INTO collector_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
        [str(key_id), str(ws_uuid), name, secret_prefix(key), hash_secret(key), utcnow()],
    )
    row = rows_as_dicts(
        con.execute(f"SELECT {_COLUMNS} FROM collector_keys WHERE id = ?", [str(key_id)])
    )[0]
    return typed_row(row, CollectorKey), key


def list_collectors(con: Connection, ws_uuid: uuid.UUID) -> list[CollectorKey]:
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COLUMNS} FROM collector_keys WHERE workspace_uuid = ? "
            "ORDER BY created_at, id",
            [str(ws_uuid)],
        )
    )
    return typed_rows(rows, CollectorKey)


def revoke_collector(con: Connection, ws_uuid: uuid.UUID, key_ref: str) -> CollectorKey:
    """Revoke a collector key of the workspace named by its id or a unique prefix of it (4+
    characters, like ``token revoke``)."""
    row = one_by_id_prefix(
        con,
        "collector_keys",
        _COLUMNS,
        key_ref,
        what="collector key",
        field="key_id",
        scope="AND workspace_uuid = ?",
        scope_params=(str(ws_uuid),),
    )
    if row["revoked_at"] is None:
        row["revoked_at"] = utcnow()
        con.execute(
            "UPDATE collector_keys SET revoked_at = ? WHERE id = ?",
            [row["revoked_at"], str(row["id"])],
        )
    return typed_row(row, CollectorKey)


def authenticate_collector(con: Connection, key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(workspace, collector key id) of a live collector key, or None. The id scopes what the
    key sends (a batch id is unique per key, not per workspace)."""
    row = con.execute(
        "SELECT c.key_hash, c.workspace_uuid, c.id FROM collector_keys c "
        "JOIN workspaces w ON w.uuid = c.workspace_uuid "
        "WHERE c.key_hash = ? AND c.revoked_at IS NULL AND w.deleted_at IS NULL",
        [hash_secret(key)],
    ).fetchone()
    if row is None or not secrets_equal(row[0], key):
        return None
    return uuid.UUID(str(row[1])), uuid.UUID(str(row[2]))


def authenticate_node_key(con: Connection, key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(workspace, node) of a live node API key, or None."""
    row = con.execute(
        "SELECT n.api_key_hash, n.workspace_uuid, n.uuid FROM nodes n "
        "JOIN workspaces w ON w.uuid = n.workspace_uuid "
        "WHERE n.api_key_hash = ? AND n.deleted_at IS NULL AND w.deleted_at IS NULL",
        [hash_secret(key)],
    ).fetchone()
    if row is None or not secrets_equal(row[0], key):
        return None
    return uuid.UUID(str(row[1])), uuid.UUID(str(row[2]))


def live_node_key_hashes(con: Connection, limit: int) -> list[tuple[str, uuid.UUID, uuid.UUID]]:
    """(key hash, workspace, node) of up to ``limit`` live nodes, the most recently seen first:
    what the server preloads so that a fleet's first calls after a start need no lookups."""
    rows = con.execute(
        "SELECT n.api_key_hash, n.workspace_uuid, n.uuid FROM nodes n "
        "JOIN workspaces w ON w.uuid = n.workspace_uuid "
        "WHERE n.deleted_at IS NULL AND w.deleted_at IS NULL "
        "ORDER BY n.last_seen DESC NULLS LAST LIMIT ?",
        [limit],
    ).fetchall()
    return [(str(h), uuid.UUID(str(ws)), uuid.UUID(str(node))) for h, ws, node in rows]


def workspace_node_index(con: Connection, ws_uuid: uuid.UUID) -> dict[str, str]:
    """Live nodes of a workspace: both ``uuid -> uuid`` and ``ip -> uuid`` entries, for routing
    collector rows (an IP shared by two nodes routes to the older one)."""
    rows = con.execute(
        "SELECT CAST(uuid AS VARCHAR), ip FROM nodes WHERE workspace_uuid = ? "
        "AND deleted_at IS NULL ORDER BY created_at DESC",
        [str(ws_uuid)],
    ).fetchall()
    index: dict[str, str] = {}
    for node, ip in rows:
        index[node] = node
        index["ip:" + ip] = node
    return index
