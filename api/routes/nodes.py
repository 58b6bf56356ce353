"""Deploy API (``POST /api/deploy``) and the nodes of REST v1."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from store import nodes as repo
from store.types import Node, NodeTraffic, ProtocolShares, TrafficBaseline

from ..errors import json_response
from ..http import Caller, authenticate, choice_param, int_param, path_uuid, read_json, state
from ..models import validate
from ..models.envelopes import MAX_OFFSET, Deleted
from ..models.nodes import (
    Deployed,
    DeployRequest,
    NodeAnswer,
    NodeCreate,
    NodeCreatedAnswer,
    NodePage,
    NodeUpdate,
)
from ..openapi.build import param_ref, query_filter
from ..openapi.operations import answer, body, operation

routes = web.RouteTableDef()

_NODE = param_ref("NodeUuid")


class DetectorBaseline(TrafficBaseline):
    """The node's ``baseline`` in Get Node: the lake's figures and the detector's own."""

    expected_pps: float | None
    threshold_pps: float | None
    expected_bps: float | None
    threshold_bps: float | None
    detector: dict[str, Any] | None


class NodeDetail(Node):
    """A node as Get Node, Update Node and Create Node answer it (``api.models.NodeDetail``)."""

    baseline: DetectorBaseline
    protocol_breakdown: ProtocolShares
    conn_count: int | None


def _offline_after(request: web.Request) -> int:
    return state(request).config.api.offline_after_secs


@routes.post("/api/deploy")
@operation(
    "deployNode",
    tag="Deploy",
    request_body=body("The new node.", DeployRequest),
    answers={200: answer("The node was registered.", Deployed)},
    errors=(400, 402, 409, 413),
)
async def deploy(request: web.Request) -> web.Response:
    """Register a node (Deploy API)

    Registers a node with the workspace's deploy token and returns its agent API key. Answers
    200, not 201, as the hosted service does."""
    caller = await authenticate(request)
    fields = validate(DeployRequest, await read_json(request)).model_dump()
    node, api_key = await state(request).store.run(repo.create_node, caller.workspace, fields)
    state(request).credentials.clear()
    return json_response(
        {
            "ok": True,
            "node_uuid": node["uuid"],
            "api_key": api_key,
            "name": node["name"],
            "ip": node["ip"],
        }
    )


@routes.get("/api/v1/nodes")
@operation(
    "listNodes",
    tag="Nodes",
    parameters=(
        param_ref("Limit"),
        param_ref("Offset"),
        query_filter("status", repo.NODE_STATUSES, "Only nodes in this state."),
    ),
    answers={200: answer("A page of nodes.", NodePage)},
    errors=(400,),
)
async def list_nodes(request: web.Request) -> web.Response:
    """List nodes

    The workspace's nodes, oldest first."""
    caller = await authenticate(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
    status = choice_param(request, "status", repo.NODE_STATUSES)
    rows, total = await state(request).store.run(
        repo.list_nodes,
        caller.ws_uuid,
        status=status,
        limit=limit,
        offset=offset,
        offline_after_secs=_offline_after(request),
    )
    return json_response(
        {"ok": True, "nodes": rows, "total": total, "limit": limit, "offset": offset}
    )


@routes.post("/api/v1/nodes")
@operation(
    "createNode",
    tag="Nodes",
    request_body=body("The new node.", NodeCreate),
    answers={201: answer("The node was created.", NodeCreatedAnswer)},
    errors=(400, 402, 409, 413),
)
async def create_node(request: web.Request) -> web.Response:
    """Create a node

    Like the Deploy API, but answers with the full node."""
    caller = await authenticate(request)
    fields = validate(NodeCreate, await read_json(request)).model_dump()
    store = state(request).store
    node, api_key = await store.run(repo.create_node, caller.workspace, fields)
    state(request).credentials.clear()
    stats = await store.query(
        repo.node_traffic_stats, caller.ws_uuid, node["uuid"], state(request).pipeline.lake.root
    )
    return json_response(
        {"ok": True, "node": {**_detail(request, node, stats), "api_key": api_key}}, status=201
    )


async def _node_with_stats(
    request: web.Request, caller: Caller, node_uuid: uuid.UUID
) -> NodeDetail:
    store = state(request).store
    node = await store.run(
        repo.get_node, caller.ws_uuid, node_uuid, offline_after_secs=_offline_after(request)
    )
    stats = await store.query(
        repo.node_traffic_stats, caller.ws_uuid, node_uuid, state(request).pipeline.lake.root
    )
    return _detail(request, node, stats)


def _detail(request: web.Request, node: Node, stats: NodeTraffic) -> NodeDetail:
    """``node`` with its traffic figures and the detector's own baseline of it, as it stands now:
    per series the expected value and the incident threshold (null before the node's first
    telemetry or with detection off). ``expected_pps``/``threshold_pps`` and the bps pair repeat
    the two main series."""
    service = state(request).detection
    found = service.baseline_now(str(node["uuid"])) if service is not None else None
    series = found.get("series") if isinstance(found, dict) else None

    def figure(name: str, key: str) -> Any:
        entry = series.get(name) if isinstance(series, dict) else None
        return entry.get(key) if isinstance(entry, dict) else None

    baseline: DetectorBaseline = {
        **stats["baseline"],
        "expected_pps": figure("pps", "expected"),
        "threshold_pps": figure("pps", "threshold"),
        "expected_bps": figure("bps", "expected"),
        "threshold_bps": figure("bps", "threshold"),
        "detector": found or None,
    }
    return {
        **node,
        "baseline": baseline,
        "protocol_breakdown": stats["protocol_breakdown"],
        "conn_count": stats["conn_count"],
    }


@routes.get("/api/v1/nodes/{uuid}")
@operation(
    "getNode",
    tag="Nodes",
    parameters=(_NODE,),
    answers={200: answer("The node.", NodeAnswer)},
    errors=(404,),
)
async def get_node(request: web.Request) -> web.Response:
    """Get a node

    One node with its baseline traffic and protocol breakdown."""
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    return json_response({"ok": True, "node": await _node_with_stats(request, caller, node_uuid)})


@routes.patch("/api/v1/nodes/{uuid}")
@operation(
    "updateNode",
    tag="Nodes",
    parameters=(_NODE,),
    request_body=body("The fields to change.", NodeUpdate),
    answers={200: answer("The updated node.", NodeAnswer)},
    errors=(400, 402, 404, 409, 413),
)
async def update_node(request: web.Request) -> web.Response:
    """Update a node"""
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    changes = validate(NodeUpdate, await read_json(request)).changes()
    await state(request).store.run(repo.update_node, caller.ws_uuid, node_uuid, changes)
    state(request).credentials.clear()
    return json_response({"ok": True, "node": await _node_with_stats(request, caller, node_uuid)})


@routes.delete("/api/v1/nodes/{uuid}")
@operation(
    "deleteNode",
    tag="Nodes",
    parameters=(_NODE,),
    answers={200: answer("The node was deleted.", Deleted)},
    errors=(402, 404),
)
async def delete_node(request: web.Request) -> web.Response:
    """Delete a node

    Soft delete: the node disappears from listings and its API key stops working; its incidents
    stay readable. Cannot be undone through the API."""
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    await state(request).store.run(repo.delete_node, caller.ws_uuid, node_uuid)
    state(request).credentials.clear()
    return json_response({"ok": True, "deleted": True, "uuid": node_uuid})
