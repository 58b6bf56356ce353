"""Collector keys of a workspace (binary telemetry for many nodes); the key is shown once."""

from __future__ import annotations

from aiohttp import web

from store import collectors as repo

from ..errors import json_response
from ..http import authenticate, path_uuid, read_json, state
from ..models import validate
from ..models.collectors import (
    CollectorAnswer,
    CollectorCreate,
    CollectorCreatedAnswer,
    CollectorList,
)
from ..openapi.build import param_ref
from ..openapi.operations import answer, body, operation

routes = web.RouteTableDef()

_TAG = "Telemetry"


@routes.get("/api/v1/collectors")
@operation("listCollectors", tag=_TAG, answers={200: answer("The collector keys.", CollectorList)})
async def list_collectors(request: web.Request) -> web.Response:
    """List collector keys

    All of the workspace's collector keys, revoked ones too, oldest first. The keys themselves
    are never shown again."""
    caller = await authenticate(request)
    rows = await state(request).store.run(repo.list_collectors, caller.ws_uuid)
    return json_response({"ok": True, "collectors": rows, "total": len(rows)})


@routes.post("/api/v1/collectors")
@operation(
    "createCollector",
    tag=_TAG,
    request_body=body("The new key's label.", CollectorCreate),
    answers={201: answer("The key was created.", CollectorCreatedAnswer)},
    errors=(400, 402, 413),
)
async def create_collector(request: web.Request) -> web.Response:
    """Create a collector key"""
    caller = await authenticate(request)
    new = validate(CollectorCreate, await read_json(request))
    row, key = await state(request).store.run(repo.create_collector, caller.ws_uuid, new.name)
    return json_response({"ok": True, "collector": {**row, "key": key}}, status=201)


@routes.delete("/api/v1/collectors/{id}")
@operation(
    "revokeCollector",
    tag=_TAG,
    parameters=(param_ref("CollectorId"),),
    answers={200: answer("The revoked key.", CollectorAnswer)},
    errors=(402, 404),
)
async def revoke_collector(request: web.Request) -> web.Response:
    """Revoke a collector key

    The key stops working within `ingest.auth_cache_secs`. Revoking a revoked key changes
    nothing."""
    caller = await authenticate(request)
    key_id = path_uuid(request, "id", "collector key")
    st = state(request)
    row = await st.store.run(repo.revoke_collector, caller.ws_uuid, str(key_id))
    st.credentials.clear()
    return json_response({"ok": True, "collector": row})
