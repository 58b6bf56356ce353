"""REST endpoints (deploy token) through which operators steer ftagent agents and read what they
reported (docs/agent-api.md §4.3, §5.2, §10.7): config overrides (workspace defaults and per
node) and remote mitigation commands, which reach the agents through ``GET /api/v1/agent/config``;
the reports, ``GET /api/v1/reports`` (paged, filters ``node`` and ``kind``) and
``GET /api/v1/nodes/{uuid}/reports`` (the newest of each kind)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from store import nodes as nodes_repo

from ..errors import ApiError, json_response
from ..http import (
    Caller,
    authenticate,
    choice_param,
    int_param,
    parse_uuid,
    path_uuid,
    read_json,
    state,
)
from . import report_repo
from . import settings_repo as repo

routes = web.RouteTableDef()

COMMANDS_SHOWN = 100  # the newest ones; ``total`` counts all


async def _node(request: web.Request, caller: Caller) -> uuid.UUID:
    node_uuid = path_uuid(request, "uuid", "node")
    await state(request).store.run(nodes_repo.get_node, caller.ws_uuid, node_uuid)
    return node_uuid


@routes.get("/api/v1/workspace/agent-config")
async def get_workspace_agent_config(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    overrides = await state(request).store.run(repo.get_overrides, caller.ws_uuid, None)
    return json_response({"ok": True, "agent_config": overrides})


@routes.patch("/api/v1/workspace/agent-config")
async def patch_workspace_agent_config(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_json(request)
    overrides = await state(request).store.run(repo.set_overrides, caller.ws_uuid, None, body)
    return json_response({"ok": True, "agent_config": overrides})


@routes.get("/api/v1/nodes/{uuid}/agent-config")
async def get_node_agent_config(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    overrides = await state(request).store.run(repo.get_overrides, caller.ws_uuid, node_uuid)
    return json_response({"ok": True, "agent_config": overrides})


@routes.patch("/api/v1/nodes/{uuid}/agent-config")
async def patch_node_agent_config(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    body = await read_json(request)
    overrides = await state(request).store.run(repo.set_overrides, caller.ws_uuid, node_uuid, body)
    return json_response({"ok": True, "agent_config": overrides})


@routes.get("/api/v1/nodes/{uuid}/commands")
async def list_commands(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    rows, total = await state(request).store.run(
        repo.list_commands, caller.ws_uuid, node_uuid, COMMANDS_SHOWN
    )
    return json_response({"ok": True, "commands": rows, "total": total})


_COMMAND_FIELDS = frozenset(
    {"command_type", "command_text", "title", "incident_uuid", "undo_command_text"}
)


@routes.post("/api/v1/nodes/{uuid}/commands")
async def create_command(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    body: dict[str, Any] = await read_json(request)
    unknown = set(body) - _COMMAND_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise ApiError(400, "invalid_parameter", f"unknown field {field}", field=field)
    row = await state(request).store.run(
        repo.create_command,
        caller.ws_uuid,
        node_uuid,
        body.get("command_type", "iptables"),
        body.get("command_text"),
        body.get("title"),
        body.get("incident_uuid"),
        body.get("undo_command_text"),
    )
    return json_response({"ok": True, "command": row}, status=201)


@routes.get("/api/v1/reports")
async def list_reports(request: web.Request) -> web.Response:
    """REST: reports of the caller's nodes, newest first, optionally of one node and kind."""
    caller = await authenticate(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    kind = choice_param(request, "kind", report_repo.REPORT_KINDS)
    node = request.query.get("node")
    node_uuid = None
    if node:
        node_uuid = parse_uuid(node)
        if node_uuid is None:
            raise ApiError(400, "invalid_parameter", "node must be a node UUID", field="node")
    rows, total = await state(request).store.run(
        report_repo.list_reports, caller.ws_uuid, node_uuid, kind, limit, offset
    )
    return json_response(
        {"ok": True, "reports": rows, "total": total, "limit": limit, "offset": offset}
    )


@routes.get("/api/v1/nodes/{uuid}/reports")
async def latest_node_reports(request: web.Request) -> web.Response:
    """REST: the newest report of each kind of one of the caller's nodes (404 otherwise)."""
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    latest = await state(request).store.run(report_repo.latest_reports, caller.ws_uuid, node_uuid)
    return json_response({"ok": True, "node_uuid": node_uuid, "reports": latest})
