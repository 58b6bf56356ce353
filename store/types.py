"""The domain types the repositories hand to ``api/``: one ``TypedDict`` per stored entity,
with the columns its queries select (and the values computed with them), so that a caller's
``row["subscription_status"]`` is checked by mypy instead of being an ``Any``.

They are dicts because the answers are built from them field by field and encoded as JSON
(``api.errors.json_bytes``); a typed dict costs nothing at run time. The typing starts at the
SQL edge: a repository converts ``rows_as_dicts`` once (:func:`typed_rows`), and every function
after it is checked. Entities not typed here yet (nodes, incidents, agent rows) still travel as
``dict[str, Any]``; docs/ARCHITECTURE.md ("Domain types") lists them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, TypeVar, cast

__all__ = ["Channel", "CollectorKey", "DeployToken", "Workspace", "typed_row", "typed_rows"]

T = TypeVar("T")


class Workspace(TypedDict):
    uuid: uuid.UUID
    name: str
    plan: str
    node_limit: int | None
    """``None``: no limit."""
    subscription_status: str
    parent_uuid: uuid.UUID | None
    """``None`` for a top-level workspace."""
    email: str | None
    created_at: datetime
    updated_at: datetime
    node_count: int
    """Live nodes, counted by the query."""
    sub_workspace_count: int
    """Live sub-workspaces, counted by the query."""


class DeployToken(TypedDict):
    """A deploy token's row; the token itself is never stored (only its hash)."""

    id: uuid.UUID
    workspace_uuid: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CollectorKey(TypedDict):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class Channel(TypedDict):
    id: int
    uuid: uuid.UUID
    name: str
    type: str
    config: dict[str, Any]
    """Decoded from its stored JSON, as ``notify`` validated it (secrets in clear: mask it
    before it leaves the server)."""
    enabled: bool
    created_at: datetime


def typed_row(row: Mapping[str, Any], kind: type[T]) -> T:
    """``row`` as the domain type ``kind`` (a ``TypedDict``; no check at run time: the query's
    column list is what makes it one)."""
    return cast(T, row)


def typed_rows(rows: list[dict[str, Any]], kind: type[T]) -> list[T]:
    return cast(list[T], rows)
