"""Incidents of REST v1 (read-only here: agents and detection create them)."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from store import incidents as repo

from ..errors import ApiError, json_response
from ..http import (
    authenticate,
    choice_param,
    int_param,
    node_filter,
    node_param,
    parse_uuid,
    state,
)
from ..models.envelopes import MAX_OFFSET
from ..models.incidents import IncidentAnswer, IncidentPage
from ..openapi.build import param_ref, query_filter
from ..openapi.operations import answer, operation

routes = web.RouteTableDef()

_INT_ID = re.compile(r"[0-9]{1,18}")


@routes.get("/api/v1/incidents")
@operation(
    "listIncidents",
    tag="Incidents",
    parameters=(
        param_ref("Limit"),
        param_ref("Offset"),
        query_filter("status", repo.INCIDENT_STATUSES, "Only incidents in this state."),
        query_filter("severity", repo.SEVERITIES, "Only incidents of this severity."),
        node_filter("incidents"),
    ),
    answers={200: answer("A page of incidents.", IncidentPage)},
    errors=(400,),
)
async def list_incidents(request: web.Request) -> web.Response:
    """List incidents

    Incidents of every node, newest first."""
    caller = await authenticate(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
    status = choice_param(request, "status", repo.INCIDENT_STATUSES)
    severity = choice_param(request, "severity", repo.SEVERITIES)
    node_uuid = node_param(request)
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
            "incidents": [repo.listed(r) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@routes.get("/api/v1/incidents/{ref}")
@operation(
    "getIncident",
    tag="Incidents",
    parameters=(param_ref("IncidentRef"),),
    answers={200: answer("The incident.", IncidentAnswer)},
    errors=(404,),
)
async def get_incident(request: web.Request) -> web.Response:
    """Get an incident

    Full detail: protocol breakdown, origin, top sources and ports, summary."""
    caller = await authenticate(request)
    raw = request.match_info["ref"]
    ref: int | uuid.UUID | None = int(raw) if _INT_ID.fullmatch(raw) else parse_uuid(raw)
    if ref is None:
        raise ApiError(404, "not_found", "incident not found")
    row = await state(request).store.run(repo.get_incident, caller.ws_uuid, ref)
    # hosting-panel modules read ``family`` (WHMCS) and ``ai_summary`` (webhooks): same values
    return json_response({"ok": True, "incident": repo.rendered(row)})
