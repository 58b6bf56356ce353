"""Incidents of REST v1 (read-only here: agents and detection create them)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from store import incidents as repo

from ..errors import ApiError, json_response
from ..http import authenticate, choice_param, int_param, parse_uuid, state

routes = web.RouteTableDef()

_INT_ID = re.compile(r"[0-9]{1,18}")


def _compat(row: dict[str, Any]) -> dict[str, Any]:
    # hosting-panel modules read ``family`` (WHMCS) and ``ai_summary`` (webhooks): same values
    row["family"] = row["attack_family"]
    if "summary" in row:
        row["ai_summary"] = row["summary"]
    return row


@routes.get("/api/v1/incidents")
async def list_incidents(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    status = choice_param(request, "status", repo.INCIDENT_STATUSES)
    severity = choice_param(request, "severity", repo.SEVERITIES)
    node = request.query.get("node")
    node_uuid = None
    if node:
        node_uuid = parse_uuid(node)
        if node_uuid is None:
            raise ApiError(400, "invalid_parameter", "node must be a node UUID", field="node")
    rows, total = await state(request).store.run(
        repo.list_incidents,
        caller.ws_uuid,
        status=status,
        severity=severity,
        node_uuid=node_uuid,
        limit=limit,
        offset=offset,
    )
    return json_response(
        {
            "ok": True,
            "incidents": [_compat(r) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@routes.get("/api/v1/incidents/{ref}")
async def get_incident(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    raw = request.match_info["ref"]
    ref: Any = int(raw) if _INT_ID.fullmatch(raw) else parse_uuid(raw)
    if ref is None:
        raise ApiError(404, "not_found", "incident not found")
    row = await state(request).store.run(repo.get_incident, caller.ws_uuid, ref)
    return json_response({"ok": True, "incident": _compat(row)})
