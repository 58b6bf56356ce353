"""Integer ids of incidents and channels: drawn at random, so that they reveal nothing about
other workspaces (a database-wide sequence would tell every tenant how many incidents and
channels all the others created)."""

from __future__ import annotations

import secrets
from typing import Literal

from .db import Connection
from .errors import StoreError

__all__ = ["MAX_PUBLIC_ID", "new_channel_id", "new_incident_id"]

MAX_PUBLIC_ID = 2**53 - 1
"""The largest id handed out: JavaScript numbers hold every integer up to it exactly."""

_ATTEMPTS = 16


def _new_id(con: Connection, table: Literal["incidents", "channels"]) -> int:
    # 53 random bits: a collision is astronomically unlikely, but the check is cheap and the
    # caller runs on the one writer thread, so nothing can take the id between check and insert
    for _ in range(_ATTEMPTS):
        candidate = secrets.randbelow(MAX_PUBLIC_ID) + 1
        if con.execute(f"SELECT 1 FROM {table} WHERE id = ?", [candidate]).fetchone() is None:
            return candidate
    raise StoreError(f"no free id found for {table}")


def new_incident_id(con: Connection) -> int:
    """A fresh incident id in 1..2^53-1 that no incident holds yet. Call it on the writer
    thread, in the transaction of the insert that uses it."""
    return _new_id(con, "incidents")


def new_channel_id(con: Connection) -> int:
    """A fresh channel id in 1..2^53-1 that no channel holds yet (same rules as incidents)."""
    return _new_id(con, "channels")
