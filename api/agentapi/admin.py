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

from ..errors import json_response
from ..http import (
    Caller,
    authenticate,
    choice_param,
    int_param,
    node_filter,
    node_param,
    path_uuid,
    read_json,
    state,
)
from ..models import refuse_unknown
from ..models.envelopes import MAX_OFFSET
from ..openapi.build import param_ref, query_filter
from ..openapi.operations import answer, body, operation
from . import report_repo
from . import settings_repo as repo
from .answers import AgentConfigAnswer, CommandAnswer, CommandList, LatestReports, ReportPage
from .models import CommandCreate
from .overrides import AgentConfigPatch, check_patch

routes = web.RouteTableDef()

_CONTROL = "Agent control"
_NODE = param_ref("NodeUuid")
_PATCH = body(
    "Overrides to set; null removes one; objects (flow, l7) merge by key, and null for a key "
    'inside one removes that key (`{"l7": {"action": null}}`).',
    AgentConfigPatch,
)

COMMANDS_SHOWN = 100  # the newest ones; ``total`` counts all


async def _node(request: web.Request, caller: Caller) -> uuid.UUID:
    node_uuid = path_uuid(request, "uuid", "node")
    await state(request).store.run(nodes_repo.get_node, caller.ws_uuid, node_uuid)
    return node_uuid


@routes.get("/api/v1/workspace/agent-config")
@operation(
    "getWorkspaceAgentConfig",
    tag=_CONTROL,
    answers={200: answer("The workspace's overrides.", AgentConfigAnswer)},
)
async def get_workspace_agent_config(request: web.Request) -> web.Response:
    """Agent config defaults of the workspace"""
    caller = await authenticate(request)
    overrides = await state(request).store.run(repo.get_overrides, caller.ws_uuid, None)
    return json_response({"ok": True, "agent_config": overrides})


@routes.patch("/api/v1/workspace/agent-config")
@operation(
    "patchWorkspaceAgentConfig",
    tag=_CONTROL,
    request_body=_PATCH,
    answers={200: answer("The stored overrides.", AgentConfigAnswer)},
    errors=(400, 402, 413),
)
async def patch_workspace_agent_config(request: web.Request) -> web.Response:
    """Change the workspace's agent config defaults"""
    caller = await authenticate(request)
    patch = check_patch(await read_json(request))
    overrides = await state(request).store.run(repo.set_overrides, caller.ws_uuid, None, patch)
    return json_response({"ok": True, "agent_config": overrides})


@routes.get("/api/v1/nodes/{uuid}/agent-config")
@operation(
    "getNodeAgentConfig",
    tag=_CONTROL,
    parameters=(_NODE,),
    answers={200: answer("The node's overrides.", AgentConfigAnswer)},
    errors=(404,),
)
async def get_node_agent_config(request: web.Request) -> web.Response:
    """Agent config overrides of one node"""
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    overrides = await state(request).store.run(repo.get_overrides, caller.ws_uuid, node_uuid)
    return json_response({"ok": True, "agent_config": overrides})


@routes.patch("/api/v1/nodes/{uuid}/agent-config")
@operation(
    "patchNodeAgentConfig",
    tag=_CONTROL,
    parameters=(_NODE,),
    request_body=_PATCH,
    answers={200: answer("The stored overrides.", AgentConfigAnswer)},
    errors=(400, 402, 404, 413),
)
async def patch_node_agent_config(request: web.Request) -> web.Response:
    """Change one node's agent config overrides"""
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    patch = check_patch(await read_json(request))
    overrides = await state(request).store.run(repo.set_overrides, caller.ws_uuid, node_uuid, patch)
    return json_response({"ok": True, "agent_config": overrides})


@routes.get("/api/v1/nodes/{uuid}/commands")
@operation(
    "listNodeCommands",
    tag=_CONTROL,
    parameters=(_NODE,),
    answers={200: answer("The commands.", CommandList)},
    errors=(404,),
)
async def list_commands(request: web.Request) -> web.Response:
    """The node's newest 100 remote commands, with their acks"""
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    rows, total = await state(request).store.run(
        repo.list_commands, caller.ws_uuid, node_uuid, COMMANDS_SHOWN
    )
    return json_response({"ok": True, "commands": rows, "total": total})


@routes.post("/api/v1/nodes/{uuid}/commands")
@operation(
    "createNodeCommand",
    tag=_CONTROL,
    parameters=(_NODE,),
    request_body=body("A remote command for the node's agent.", CommandCreate),
    answers={201: answer("The queued command.", CommandAnswer)},
    errors=(400, 402, 404, 409, 413),
)
async def create_command(request: web.Request) -> web.Response:
    """Queue a remote command for the node's agent

    Delivered in pending_commands of GET /api/v1/agent/config until the agent acknowledges
    it."""
    caller = await authenticate(request)
    node_uuid = await _node(request, caller)
    body: dict[str, Any] = await read_json(request)
    refuse_unknown(CommandCreate, body)  # the values: create_command, which needs the database
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
@operation(
    "listAgentReports",
    tag="Nodes",
    parameters=(
        param_ref("Limit"),
        param_ref("Offset"),
        query_filter("kind", report_repo.REPORT_KINDS, "Only reports of this kind."),
        node_filter("reports"),
    ),
    answers={200: answer("A page of reports.", ReportPage)},
    errors=(400,),
)
async def list_reports(request: web.Request) -> web.Response:
    """List agent reports

    The reports the workspace's ftagent agents sent (GRE tunnels, VM stats, service-port
    metrics and blocks, L7 detection and metrics, mirror metrics), newest first. Identical
    consecutive reports of a node are one item with `repeats` counted; only the newest 500 of
    each kind are kept per node."""
    caller = await authenticate(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
    kind = choice_param(request, "kind", report_repo.REPORT_KINDS)
    node_uuid = node_param(request)
    rows, total = await state(request).store.run(
        report_repo.list_reports, caller.ws_uuid, node_uuid, kind, limit, offset
    )
    return json_response(
        {"ok": True, "reports": rows, "total": total, "limit": limit, "offset": offset}
    )


@routes.get("/api/v1/nodes/{uuid}/reports")
@operation(
    "latestNodeReports",
    tag="Nodes",
    parameters=(_NODE,),
    answers={200: answer("The newest report of each kind.", LatestReports)},
    errors=(404,),
)
async def latest_node_reports(request: web.Request) -> web.Response:
    """A node's latest agent reports

    The newest report of each kind the node's ftagent sent, null for a kind it never sent. A
    node of another workspace is 404."""
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    latest = await state(request).store.run(report_repo.latest_reports, caller.ws_uuid, node_uuid)
    return json_response({"ok": True, "node_uuid": node_uuid, "reports": latest})
