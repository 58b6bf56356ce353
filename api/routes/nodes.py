"""Deploy API (``POST /api/deploy``) and the nodes of REST v1."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from store import nodes as repo

from ..errors import json_response
from ..http import authenticate, choice_param, int_param, path_uuid, read_json, state

routes = web.RouteTableDef()


def _offline_after(request: web.Request) -> int:
    return state(request).config.api.offline_after_secs


@routes.post("/api/deploy")
async def deploy(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_json(request)
    fields = repo.validate_node_fields(body)
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
async def list_nodes(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
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
async def create_node(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_json(request)
    fields = repo.validate_node_fields(body, strict=True)
    store = state(request).store
    node, api_key = await store.run(repo.create_node, caller.workspace, fields)
    state(request).credentials.clear()
    stats = await store.query(
        repo.node_traffic_stats, caller.ws_uuid, node["uuid"], state(request).pipeline.lake.root
    )
    _add_detector_baseline(request, str(node["uuid"]), stats)
    return json_response({"ok": True, "node": {**node, **stats, "api_key": api_key}}, status=201)


async def _node_with_stats(request: web.Request, caller: Any, node_uuid: Any) -> dict[str, Any]:
    store = state(request).store
    node = await store.run(
        repo.get_node, caller.ws_uuid, node_uuid, offline_after_secs=_offline_after(request)
    )
    stats = await store.query(
        repo.node_traffic_stats, caller.ws_uuid, node_uuid, state(request).pipeline.lake.root
    )
    _add_detector_baseline(request, str(node_uuid), stats)
    return {**node, **stats}


def _add_detector_baseline(request: web.Request, node: str, stats: dict[str, Any]) -> None:
    """The detector's own baseline of the node, as it stands now: per series the expected value
    and the incident threshold (null before the node's first telemetry or with detection off).
    ``expected_pps``/``threshold_pps`` and the bps pair repeat the two main series."""
    service = state(request).detection
    found = service.baseline_now(node) if service is not None else None
    series = found.get("series") if isinstance(found, dict) else None
    baseline = stats["baseline"]
    for name in ("pps", "bps"):
        entry = series.get(name) if isinstance(series, dict) else None
        baseline[f"expected_{name}"] = entry.get("expected") if isinstance(entry, dict) else None
        baseline[f"threshold_{name}"] = entry.get("threshold") if isinstance(entry, dict) else None
    baseline["detector"] = found or None


@routes.get("/api/v1/nodes/{uuid}")
async def get_node(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    return json_response({"ok": True, "node": await _node_with_stats(request, caller, node_uuid)})


@routes.patch("/api/v1/nodes/{uuid}")
async def update_node(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    body = await read_json(request)
    changes = repo.validate_node_changes(body)
    await state(request).store.run(repo.update_node, caller.ws_uuid, node_uuid, changes)
    state(request).credentials.clear()
    return json_response({"ok": True, "node": await _node_with_stats(request, caller, node_uuid)})


@routes.delete("/api/v1/nodes/{uuid}")
async def delete_node(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    node_uuid = path_uuid(request, "uuid", "node")
    await state(request).store.run(repo.delete_node, caller.ws_uuid, node_uuid)
    state(request).credentials.clear()
    return json_response({"ok": True, "deleted": True, "uuid": node_uuid})
