"""Collector keys of a workspace (binary telemetry for many nodes); the key is shown once."""

from __future__ import annotations

from aiohttp import web

from store import collectors as repo

from ..errors import json_response
from ..http import authenticate, path_uuid, read_json, state
from ..models import validate
from ..models.collectors import CollectorCreate

routes = web.RouteTableDef()


@routes.get("/api/v1/collectors")
async def list_collectors(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    rows = await state(request).store.run(repo.list_collectors, caller.ws_uuid)
    return json_response({"ok": True, "collectors": rows, "total": len(rows)})


@routes.post("/api/v1/collectors")
async def create_collector(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    new = validate(CollectorCreate, await read_json(request))
    row, key = await state(request).store.run(repo.create_collector, caller.ws_uuid, new.name)
    return json_response({"ok": True, "collector": {**row, "key": key}}, status=201)


@routes.delete("/api/v1/collectors/{id}")
async def revoke_collector(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    key_id = path_uuid(request, "id", "collector key")
    st = state(request)
    row = await st.store.run(repo.revoke_collector, caller.ws_uuid, str(key_id))
    st.credentials.clear()
    return json_response({"ok": True, "collector": row})
