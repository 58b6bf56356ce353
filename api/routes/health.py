"""Health check (no authentication) and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from store import utcnow

from .. import __version__
from ..errors import json_response
from ..http import state
from ..models.health import Health
from ..openapi import openapi_document
from ..openapi.operations import Route, answer, operation

routes = web.RouteTableDef()

_PATHS = {"/api/health": "health", "/api/v1/health": "healthV1", "/health": "healthRoot"}


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


for _path in _PATHS:
    routes.get(_path)(_health)

OPERATIONS = [
    Route(
        "GET",
        path,
        operation(
            operation_id,
            tag="Health",
            summary="Health check",
            description="Needs no token. 503 when the database does not answer.",
            security=[],
            answers={200: answer("Healthy.", Health), 503: answer("Degraded.", Health)},
            standard_errors=False,
        ),
    )
    for path, operation_id in _PATHS.items()
]
"""One operation per path: the same handler serves the three."""


@routes.get("/api/v1/openapi.json")
@operation(
    "openapiDocument",
    tag="Health",
    security=[],
    answers={
        200: answer(
            "The OpenAPI 3.1 document.",
            {"type": "object", "required": ["openapi", "info", "paths"]},
        )
    },
    standard_errors=False,
)
async def openapi(request: web.Request) -> web.Response:
    """This document"""
    return json_response(openapi_document(state(request).config.server.public_url))
