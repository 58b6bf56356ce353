"""Health check (no authentication) and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from store import utcnow

from .. import __version__
from ..errors import json_response
from ..http import state
from ..openapi import openapi_document

routes = web.RouteTableDef()


def _ping(con: object) -> int:
    row = con.execute("SELECT 1").fetchone()  # type: ignore[attr-defined]
    return int(row[0])


async def _health(request: web.Request) -> web.Response:
    try:
        await state(request).store.run(_ping)
        db = "ok"
    except Exception:
        db = "error"
    ok = db == "ok"
    return json_response(
        {
            "ok": ok,
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "time": utcnow(),
            "checks": {"database": db},
        },
        status=200 if ok else 503,
    )


for _path in ("/api/health", "/api/v1/health", "/health"):
    routes.get(_path)(_health)


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(state(request).config.server.public_url))
