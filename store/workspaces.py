"""Workspaces (tenants) and their deploy tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from .db import Connection, one_by_id_prefix, rows_as_dicts, transaction, utcnow
from .errors import Conflict, Forbidden, InvalidValue, NotFound
from .plans import PLANS, SUBSCRIPTION_STATUSES, default_node_limit
from .secrets import hash_secret, new_secret, secret_prefix, secrets_equal
from .types import DeployToken, Workspace, typed_row, typed_rows
from .validate import check_text

__all__ = [
    "authenticate_token",
    "create_token",
    "create_workspace",
    "delete_workspace",
    "get_workspace",
    "list_tokens",
    "list_workspaces",
    "revoke_token",
    "touch_token",
    "update_workspace",
]

_UNSET: Any = object()

_WS_COLUMNS = """
    w.uuid, w.name, w.plan, w.node_limit, w.subscription_status, w.parent_uuid, w.email,
    w.created_at, w.updated_at,
    (SELECT count(*) FROM nodes n WHERE n.workspace_uuid = w.uuid AND n.deleted_at IS NULL)
        AS node_count,
    (SELECT count(*) FROM workspaces c WHERE c.parent_uuid = w.uuid AND c.deleted_at IS NULL)
        AS sub_workspace_count
"""


def _check_name(name: Any, field: str = "name") -> str:
    return check_text(name, field)


def _name_taken(
    con: Connection, parent_uuid: uuid.UUID | str | None, name: str, but: uuid.UUID | str | None
) -> bool:
    """Whether a live workspace with the same parent (or, for ``None``, another top-level
    workspace) already has ``name``, compared case-insensitively; ``but`` is left out."""
    sql = "SELECT 1 FROM workspaces WHERE deleted_at IS NULL AND lower(name) = lower(?) AND "
    params: list[Any] = [name]
    if parent_uuid is None:
        sql += "parent_uuid IS NULL"
    else:
        sql += "parent_uuid = ?"
        params.append(str(parent_uuid))
    if but is not None:
        sql += " AND uuid <> ?"
        params.append(str(but))
    return con.execute(sql + " LIMIT 1", params).fetchone() is not None


def _check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise InvalidValue(f"plan must be one of {', '.join(PLANS)}", "plan")
    return plan


MAX_NODE_LIMIT = 1_000_000
"""The largest ``node_limit`` a workspace may have."""


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (not isinstance(limit, int) or limit < 0 or limit > MAX_NODE_LIMIT):
        raise InvalidValue(
            f"node_limit must be an integer between 0 and {MAX_NODE_LIMIT}", "node_limit"
        )
    return limit


def get_workspace(con: Connection, ws_uuid: uuid.UUID | str) -> Workspace:
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_WS_COLUMNS} FROM workspaces w WHERE w.uuid = ? AND w.deleted_at IS NULL",
            [str(ws_uuid)],
        )
    )
    if not rows:
        raise NotFound("workspace not found")
    return typed_row(rows[0], Workspace)


def create_workspace(
    con: Connection,
    name: Any,
    plan: str,
    node_limit: int | Any | None = _UNSET,
    parent_uuid: uuid.UUID | None = None,
    email: str | None = None,
    subscription_status: str = "active",
    token_name: str = "default",  # noqa: S107 (a label, not a secret)
) -> tuple[Workspace, str]:
    """Create a workspace and its first deploy token; returns (workspace, plaintext token).

    Raises Conflict when a live workspace of the same parent (or another top-level one) has the
    name, ignoring case."""
    name = _check_name(name)
    plan = _check_plan(plan)
    limit = default_node_limit(plan) if node_limit is _UNSET else _check_limit(node_limit)
    if subscription_status not in SUBSCRIPTION_STATUSES:
        raise InvalidValue("unknown subscription status", "subscription_status")
    now = utcnow()
    ws_uuid = uuid.uuid4()
    with transaction(con):
        if _name_taken(con, parent_uuid, name, None):
            raise Conflict(f"a workspace named {name} already exists")
        if parent_uuid is not None:
            parent = get_workspace(con, parent_uuid)
            if parent["parent_uuid"] is not None:
                raise Forbidden("a sub-workspace cannot have sub-workspaces of its own")
            cap = parent["node_limit"]
            if cap is not None and (limit is None or limit > cap):
                raise InvalidValue(
                    f"node_limit of a sub-workspace may not exceed its parent's ({cap})",
                    "node_limit",
                )
            if email is not None:
                dup = con.execute(
                    "SELECT 1 FROM workspaces WHERE parent_uuid = ? AND deleted_at IS NULL "
                    "AND lower(email) = lower(?)",
                    [str(parent_uuid), email],
                ).fetchone()
                if dup:
                    raise Conflict(f"a workspace with email {email} already exists")
        con.execute(
            "INSERT INTO workspaces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                str(ws_uuid),
                name,
                plan,
                limit,
                subscription_status,
                str(parent_uuid) if parent_uuid else None,
                email,
                now,
                now,
            ],
        )
        _, token = _insert_token(con, ws_uuid, token_name, now)
    return get_workspace(con, ws_uuid), token


def list_workspaces(
    con: Connection, parent_uuid: uuid.UUID | None, limit: int = 100, offset: int = 0
) -> tuple[list[Workspace], int]:
    """Top-level workspaces when ``parent_uuid`` is None, else that workspace's children."""
    cond = "w.parent_uuid IS NULL" if parent_uuid is None else "w.parent_uuid = ?"
    params: list[Any] = [] if parent_uuid is None else [str(parent_uuid)]
    total_row = con.execute(
        f"SELECT count(*) FROM workspaces w WHERE w.deleted_at IS NULL AND {cond}", params
    ).fetchone()
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_WS_COLUMNS} FROM workspaces w WHERE w.deleted_at IS NULL AND {cond} "
            "ORDER BY w.created_at, w.uuid LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
    )
    return typed_rows(rows, Workspace), int(total_row[0]) if total_row else 0


def update_workspace(
    con: Connection,
    ws_uuid: uuid.UUID | str,
    *,
    name: str | None = None,
    plan: str | None = None,
    node_limit: int | Any | None = _UNSET,
    subscription_status: str | None = None,
) -> Workspace:
    """Change what is given; a new name follows the rule of ``create_workspace`` (Conflict)."""
    ws = get_workspace(con, ws_uuid)
    sets: list[str] = []
    params: list[Any] = []
    if name is not None:
        name = _check_name(name)
        sets.append("name = ?")
        params.append(name)
    if plan is not None:
        sets.append("plan = ?")
        params.append(_check_plan(plan))
        if node_limit is _UNSET:
            sets.append("node_limit = ?")
            params.append(default_node_limit(plan))
    if node_limit is not _UNSET:
        sets.append("node_limit = ?")
        params.append(_check_limit(node_limit))
    if subscription_status is not None:
        if subscription_status not in SUBSCRIPTION_STATUSES:
            raise InvalidValue(
                f"subscription_status must be one of {', '.join(SUBSCRIPTION_STATUSES)}",
                "subscription_status",
            )
        sets.append("subscription_status = ?")
        params.append(subscription_status)
    if not sets:
        return ws
    sets.append("updated_at = ?")
    params.append(utcnow())
    with transaction(con):
        # a name kept as it is (up to case) is not checked, so that a workspace that shares its
        # name with another from before names were unique can still be changed
        if (
            name is not None
            and name.lower() != str(ws["name"]).lower()
            and _name_taken(con, ws["parent_uuid"], name, ws["uuid"])
        ):
            raise Conflict(f"a workspace named {name} already exists")
        con.execute(
            f"UPDATE workspaces SET {', '.join(sets)} WHERE uuid = ?", [*params, str(ws["uuid"])]
        )
    return get_workspace(con, ws_uuid)


def delete_workspace(
    con: Connection, ws_uuid: uuid.UUID | str, parent_uuid: uuid.UUID | None
) -> None:
    """Deactivate a workspace, its sub-workspaces, all their nodes, tokens and collector keys.
    With ``parent_uuid`` the workspace must be that parent's child (else: not found)."""
    ws = get_workspace(con, ws_uuid)
    if parent_uuid is not None and ws["parent_uuid"] != parent_uuid:
        raise NotFound("workspace not found")
    now = utcnow()
    children = [
        r[0]
        for r in con.execute(
            "SELECT uuid FROM workspaces WHERE parent_uuid = ? AND deleted_at IS NULL",
            [str(ws_uuid)],
        ).fetchall()
    ]
    with transaction(con):
        for target in [str(ws_uuid), *(str(c) for c in children)]:
            con.execute("UPDATE workspaces SET deleted_at = ? WHERE uuid = ?", [now, target])
            con.execute(
                "UPDATE nodes SET deleted_at = ? WHERE workspace_uuid = ? AND deleted_at IS NULL",
                [now, target],
            )
            con.execute(
                "UPDATE deploy_tokens SET revoked_at = ? WHERE workspace_uuid = ? "
                "AND revoked_at IS NULL",
                [now, target],
            )
            con.execute(
                "UPDATE collector_keys SET revoked_at = ? WHERE workspace_uuid = ? "
                "AND revoked_at IS NULL",
                [now, target],
            )


def _insert_token(
    con: Connection, ws_uuid: uuid.UUID, name: str, now: datetime
) -> tuple[uuid.UUID, str]:
    token = new_secret()
    token_id = uuid.uuid4()
    con.execute(
        "INSERT INTO deploy_tokens VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        [str(token_id), str(ws_uuid), name, secret_prefix(token), hash_secret(token), now],
    )
    return token_id, token


_TOKEN_COLUMNS = "id, workspace_uuid, name, prefix, created_at, revoked_at, last_used_at"  # noqa: S105 (column names)


def create_token(
    con: Connection, ws_uuid: uuid.UUID | str, name: str = "cli"
) -> tuple[DeployToken, str]:
    ws = get_workspace(con, ws_uuid)
    name = _check_name(name)
    token_id, token = _insert_token(con, ws["uuid"], name, utcnow())
    row = rows_as_dicts(
        con.execute(f"SELECT {_TOKEN_COLUMNS} FROM deploy_tokens WHERE id = ?", [str(token_id)])
    )[0]
    return typed_row(row, DeployToken), token


def list_tokens(con: Connection, ws_uuid: uuid.UUID | str) -> list[DeployToken]:
    get_workspace(con, ws_uuid)
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM deploy_tokens WHERE workspace_uuid = ? "
            "ORDER BY created_at, id",
            [str(ws_uuid)],
        )
    )
    return typed_rows(rows, DeployToken)


def revoke_token(con: Connection, token_ref: str) -> DeployToken:
    """Revoke a token named by its id (or a unique prefix of it, 4+ characters) or by the
    token itself."""
    ref = token_ref.strip()
    if len(ref) == 2 * 32:
        rows = rows_as_dicts(
            con.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM deploy_tokens WHERE token_hash = ?",
                [hash_secret(ref)],
            )
        )
        if not rows:
            raise NotFound("no such token")
        row = rows[0]
    else:
        row = one_by_id_prefix(
            con, "deploy_tokens", _TOKEN_COLUMNS, ref, what="token", field="token"
        )
    if row["revoked_at"] is None:
        now = utcnow()
        con.execute("UPDATE deploy_tokens SET revoked_at = ? WHERE id = ?", [now, str(row["id"])])
        row["revoked_at"] = now
    return typed_row(row, DeployToken)


def authenticate_token(con: Connection, token: str) -> tuple[Workspace, uuid.UUID] | None:
    """The live workspace and token id for a presented deploy token, or None."""
    row = con.execute(
        "SELECT t.id, t.token_hash, t.workspace_uuid FROM deploy_tokens t "
        "JOIN workspaces w ON w.uuid = t.workspace_uuid "
        "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND w.deleted_at IS NULL",
        [hash_secret(token)],
    ).fetchone()
    if row is None or not secrets_equal(row[1], token):
        return None
    return get_workspace(con, row[2]), row[0]


def touch_token(con: Connection, token_id: uuid.UUID, when: datetime) -> None:
    con.execute("UPDATE deploy_tokens SET last_used_at = ? WHERE id = ?", [when, str(token_id)])
