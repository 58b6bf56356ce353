"""Notification channels of a workspace. Configs are stored as validated by ``notify``."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from .db import Connection, rows_as_dicts, utcnow
from .errors import NotFound
from .ids import new_channel_id
from .types import Channel, typed_row

__all__ = ["create_channel", "delete_channel", "get_channel", "list_channels", "update_channel"]

_COLUMNS = "id, uuid, name, type, config, enabled, created_at"


def _decode(row: dict[str, Any]) -> Channel:
    if isinstance(row["config"], str):
        row["config"] = orjson.loads(row["config"])
    return typed_row(row, Channel)


def list_channels(
    con: Connection, ws_uuid: uuid.UUID, limit: int = 100, offset: int = 0
) -> tuple[list[Channel], int]:
    total = con.execute(
        "SELECT count(*) FROM channels WHERE workspace_uuid = ?", [str(ws_uuid)]
    ).fetchone()
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COLUMNS} FROM channels WHERE workspace_uuid = ? ORDER BY created_at, id "
            "LIMIT ? OFFSET ?",
            [str(ws_uuid), limit, offset],
        )
    )
    return [_decode(r) for r in rows], int(total[0]) if total else 0


def get_channel(con: Connection, ws_uuid: uuid.UUID, ref: int | uuid.UUID) -> Channel:
    column = "id" if isinstance(ref, int) else "uuid"
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COLUMNS} FROM channels WHERE workspace_uuid = ? AND {column} = ?",
            [str(ws_uuid), ref if isinstance(ref, int) else str(ref)],
        )
    )
    if not rows:
        raise NotFound("channel not found")
    return _decode(rows[0])


def create_channel(
    con: Connection,
    ws_uuid: uuid.UUID,
    name: str,
    channel_type: str,
    config: dict[str, Any],
    enabled: bool = True,
) -> Channel:
    ch_uuid = uuid.uuid4()
    con.execute(
        "INSERT INTO channels (id, uuid, workspace_uuid, name, type, config, enabled, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            new_channel_id(con),
            str(ch_uuid),
            str(ws_uuid),
            name,
            channel_type,
            orjson.dumps(config).decode(),
            enabled,
            utcnow(),
        ],
    )
    return get_channel(con, ws_uuid, ch_uuid)


def delete_channel(con: Connection, ws_uuid: uuid.UUID, ref: int | uuid.UUID) -> Channel:
    ch = get_channel(con, ws_uuid, ref)
    con.execute(
        "DELETE FROM channels WHERE id = ? AND workspace_uuid = ?", [ch["id"], str(ws_uuid)]
    )
    return ch


def update_channel(
    con: Connection,
    ws_uuid: uuid.UUID,
    ref: int | uuid.UUID,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    enabled: bool | None = None,
) -> Channel:
    """Change a channel's name, config (already validated by the caller) or enabled flag."""
    ch = get_channel(con, ws_uuid, ref)
    con.execute(
        "UPDATE channels SET name = ?, config = ?, enabled = ? WHERE id = ? AND workspace_uuid = ?",
        [
            ch["name"] if name is None else name,
            orjson.dumps(ch["config"] if config is None else config).decode(),
            ch["enabled"] if enabled is None else enabled,
            ch["id"],
            str(ws_uuid),
        ],
    )
    return get_channel(con, ws_uuid, ch["id"])
