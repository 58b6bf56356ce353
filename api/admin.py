"""Administration shared by the CLI and the server: one set of operations, two transports.

While a server runs it owns the DuckDB file, so the CLI sends each operation over the local
admin socket (``<data_dir>/admin.sock``, mode 0600, peers checked with SO_PEERCRED). When no
server runs, the CLI opens the database itself and calls the very same functions.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import struct
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from store import Connection, Store, collectors, iso_utc
from store import workspaces as repo
from store.errors import InvalidValue, NotFound, StoreError
from store.types import CollectorKey, DeployToken, Workspace

from .config import Config
from .errors import ApiError, error_middleware, json_response

__all__ = [
    "OPS",
    "AdminClient",
    "AdminUnavailable",
    "admin_socket_path",
    "create_admin_app",
    "run_op",
]

SOCKET_NAME = "admin.sock"


_MAX_SOCKET_PATH = 100  # sockaddr_un holds 108 bytes


def admin_socket_path(cfg: Config) -> Path:
    """``<data_dir>/admin.sock``; for a data directory whose path is too long for a Unix socket,
    a name in the temporary directory derived from the data directory's absolute path."""
    path = cfg.data_path / SOCKET_NAME
    if len(os.fsencode(path.absolute())) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(cfg.data_path.resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"floodwatch-{digest}.sock"


def _iso(when: Any) -> str | None:
    """UTC time as the HTTP API writes it: ISO 8601, seconds, Z."""
    if when is None:
        return None
    text: str = iso_utc(when)
    return text


def _ws_out(ws: Workspace) -> dict[str, Any]:
    return {
        "workspace_id": str(ws["uuid"]),
        "name": ws["name"],
        "plan": ws["plan"],
        "node_limit": ws["node_limit"],
        "node_count": ws["node_count"],
        "subscription_status": ws["subscription_status"],
        "parent_id": str(ws["parent_uuid"]) if ws["parent_uuid"] else None,
        "created_at": _iso(ws["created_at"]),
    }


def _token_out(t: DeployToken) -> dict[str, Any]:
    return {
        "token_id": str(t["id"]),
        "workspace_id": str(t["workspace_uuid"]),
        "name": t["name"],
        "prefix": t["prefix"],
        "created_at": _iso(t["created_at"]),
        "revoked_at": _iso(t["revoked_at"]),
        "last_used_at": _iso(t["last_used_at"]),
    }


def _all_workspaces(con: Connection) -> list[Workspace]:
    """Every live workspace, each top-level one followed by its sub-workspaces."""
    top, _ = repo.list_workspaces(con, None, limit=100_000)
    out = []
    for r in top:
        out.append(r)
        subs, _ = repo.list_workspaces(con, r["uuid"], limit=100_000)
        out.extend(subs)
    return out


def _ws_ref(con: Connection, ref: str | None) -> uuid.UUID:
    """A workspace named by id, unique id prefix or exact name; with no ref, the only one."""
    rows = _all_workspaces(con)
    if ref is None:
        rows = [r for r in rows if r["parent_uuid"] is None]
        if len(rows) == 1:
            return uuid.UUID(str(rows[0]["uuid"]))
        raise InvalidValue(f"{len(rows)} workspaces exist; name one with --workspace", "workspace")
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    matches = [r for r in rows if r["name"] == ref or str(r["uuid"]).startswith(ref.lower())]
    if len(matches) != 1:
        raise NotFound(f"no single workspace matches {ref}")
    return uuid.UUID(str(matches[0]["uuid"]))


_UNSET = object()


def _limit_arg(value: Any) -> Any:
    if value is None:
        return _UNSET
    if value == "unlimited":
        return None
    return int(value)


def op_workspace_create(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    limit = _limit_arg(a.get("node_limit"))
    kwargs = {} if limit is _UNSET else {"node_limit": limit}
    ws, token = repo.create_workspace(
        con, a.get("name"), a.get("plan") or cfg.api.default_plan, **kwargs
    )
    return {**_ws_out(ws), "deploy_token": token}


def op_workspace_list(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    return {"workspaces": [_ws_out(r) for r in _all_workspaces(con)]}


def op_workspace_update(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    limit = _limit_arg(a.get("node_limit"))
    kwargs: dict[str, Any] = {} if limit is _UNSET else {"node_limit": limit}
    ws = repo.update_workspace(
        con,
        ws_uuid,
        name=a.get("name"),
        plan=a.get("plan"),
        subscription_status=a.get("subscription_status"),
        **kwargs,
    )
    return _ws_out(ws)


def op_workspace_delete(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    repo.delete_workspace(con, ws_uuid, None)
    return {"workspace_id": str(ws_uuid), "deleted": True}


def op_token_create(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    row, token = repo.create_token(con, ws_uuid, a.get("name") or "cli")
    return {**_token_out(row), "deploy_token": token}


def op_token_list(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    return {"tokens": [_token_out(t) for t in repo.list_tokens(con, ws_uuid)]}


def op_token_revoke(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ref = a.get("token")
    if not isinstance(ref, str):
        raise InvalidValue("token is required", "token")
    return _token_out(repo.revoke_token(con, ref))


def _collector_out(c: CollectorKey, ws_uuid: uuid.UUID) -> dict[str, Any]:
    return {
        "key_id": str(c["id"]),
        "workspace_id": str(ws_uuid),
        "name": c["name"],
        "prefix": c["prefix"],
        "created_at": _iso(c["created_at"]),
        "revoked_at": _iso(c["revoked_at"]),
    }


def op_collector_create(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    row, key = collectors.create_collector(con, ws_uuid, a.get("name") or "collector")
    return {**_collector_out(row, ws_uuid), "key": key}


def op_collector_list(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    return {
        "collectors": [_collector_out(c, ws_uuid) for c in collectors.list_collectors(con, ws_uuid)]
    }


def op_collector_revoke(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    ws_uuid = _ws_ref(con, a.get("workspace"))
    ref = a.get("key_id")
    if not isinstance(ref, str):
        raise InvalidValue("key_id must be a string", "key_id")
    return _collector_out(collectors.revoke_collector(con, ws_uuid, ref), ws_uuid)


def op_backtest_context(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    """What ``floodwatch backtest`` needs from the database (read only)."""
    from .backtest import context_op

    return context_op(con, cfg, a)


OPS: dict[str, Callable[[Connection, Config, dict[str, Any]], dict[str, Any]]] = {
    "workspace.create": op_workspace_create,
    "workspace.list": op_workspace_list,
    "workspace.update": op_workspace_update,
    "workspace.delete": op_workspace_delete,
    "token.create": op_token_create,
    "token.list": op_token_list,
    "token.revoke": op_token_revoke,
    "collector.create": op_collector_create,
    "collector.list": op_collector_list,
    "collector.revoke": op_collector_revoke,
    "backtest.context": op_backtest_context,
}


# operations that change nothing, so the hot path's cached answers stay
READ_ONLY_OPS = frozenset({"workspace.list", "token.list", "collector.list", "backtest.context"})


def run_op(con: Connection, cfg: Config, op: str, args: dict[str, Any]) -> dict[str, Any]:
    fn = OPS.get(op)
    if fn is None:
        raise InvalidValue(f"unknown admin operation {op}", "op")
    return fn(con, cfg, args)


# --- server side -------------------------------------------------------------------------------


def _peer_allowed(request: web.Request) -> bool:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return False
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid in (0, os.getuid()))


async def _admin_call(request: web.Request) -> web.Response:
    if not _peer_allowed(request):
        raise ApiError(403, "forbidden", "admin socket peer is not the data directory's owner")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "admin request is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("args", {}), dict):
        raise ApiError(400, "invalid_json", "admin request must be {op, args}")
    from .state import STATE

    st = request.app[STATE]
    op = str(body.get("op"))
    result = await st.store.run(run_op, st.config, op, body.get("args", {}))
    if op not in READ_ONLY_OPS:
        st.control_changed()
    return json_response({"ok": True, "result": result})


def create_admin_app(main_app: web.Application) -> web.Application:
    from .state import STATE

    app = web.Application(middlewares=[error_middleware], client_max_size=65536)
    app[STATE] = main_app[STATE]
    app.router.add_post("/admin/call", _admin_call)
    return app


# --- client side -------------------------------------------------------------------------------


class AdminUnavailable(Exception):
    """No server answers on the admin socket."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class AdminClient:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run ``op`` in the server. Raises AdminUnavailable when no server listens, and
        StoreError-like ``ApiError`` for a refused operation."""
        if not self.path.exists():
            raise AdminUnavailable(str(self.path))
        conn = _UnixConnection(str(self.path), self.timeout)
        try:
            conn.request(
                "POST",
                "/admin/call",
                body=orjson.dumps({"op": op, "args": args}),
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            payload = orjson.loads(resp.read())
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise AdminUnavailable(str(self.path)) from exc
        finally:
            conn.close()
        if not payload.get("ok"):
            err = payload.get("error", {})
            raise ApiError(
                resp.status,
                err.get("code", "error"),
                err.get("message", "failed"),
                field=err.get("field"),
            )
        result: dict[str, Any] = payload["result"]
        return result


def call_admin(cfg: Config, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Through the running server if there is one, else directly on the database file."""
    try:
        return AdminClient(admin_socket_path(cfg)).call(op, args)
    except AdminUnavailable:
        pass
    store = Store(cfg.database_path, cfg.store.threads, cfg.store.memory_limit)
    store.open()
    try:
        return run_op(store.con, cfg, op, args)
    finally:
        store.close()


__all__ += ["StoreError", "call_admin"]
