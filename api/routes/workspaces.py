"""The caller's workspace, its sub-workspaces (MSPs, resellers), analytics and status overview."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from store import analytics
from store import nodes as nodes_repo
from store import workspaces as repo
from store.errors import Forbidden
from store.types import Workspace

from ..errors import ApiError, json_response
from ..http import Caller, authenticate, choice_param, int_param, path_uuid, read_json, state
from ..models import validate
from ..models.analytics import AnalyticsSummary, StatusOverview
from ..models.envelopes import MAX_OFFSET, Deleted
from ..models.workspaces import (
    WorkspaceAnswer,
    WorkspaceCreate,
    WorkspaceCreatedAnswer,
    WorkspaceDetailAnswer,
    WorkspacePage,
)
from ..openapi.build import param_ref
from ..openapi.operations import answer, body, operation

routes = web.RouteTableDef()

_TAG = "Workspaces"
_SUB = param_ref("WorkspaceUuid")


def public_workspace(ws: Workspace) -> dict[str, Any]:
    return {
        "uuid": ws["uuid"],
        "name": ws["name"],
        "plan": ws["plan"],
        "node_count": ws["node_count"],
        "node_limit": ws["node_limit"],
        "subscription_status": ws["subscription_status"],
        "parent_uuid": ws["parent_uuid"],
        "white_label": ws["parent_uuid"] is None,
        "sub_workspace_count": ws["sub_workspace_count"],
        "email": ws["email"],
        "created_at": ws["created_at"],
        "updated_at": ws["updated_at"],
    }


@routes.get("/api/v1/workspace")
@operation("getWorkspace", tag=_TAG, answers={200: answer("The workspace.", WorkspaceAnswer)})
async def workspace_info(request: web.Request) -> web.Response:
    """Workspace info

    The workspace the token belongs to."""
    caller = await authenticate(request)
    ws = await state(request).store.run(repo.get_workspace, caller.ws_uuid)
    return json_response({"ok": True, "workspace": public_workspace(ws)})


def _require_parent(caller: Any) -> None:
    if caller.workspace["parent_uuid"] is not None:
        raise Forbidden("only a top-level workspace's token can manage sub-workspaces")


@routes.post("/api/v1/workspaces")
@operation(
    "createSubWorkspace",
    tag=_TAG,
    request_body=body("The new sub-workspace.", WorkspaceCreate),
    answers={201: answer("The sub-workspace was created.", WorkspaceCreatedAnswer)},
    errors=(400, 402, 403, 409, 413),
)
async def create_sub_workspace(request: web.Request) -> web.Response:
    """Create a sub-workspace

    For MSPs and resellers (top-level tokens only). Manage the new workspace's nodes with its
    own `deploy_token`. A `name` or `email` that a live sub-workspace of the caller already has
    (ignoring case) is `409 conflict`."""
    caller = await authenticate(request)
    _require_parent(caller)
    new = validate(WorkspaceCreate, await read_json(request))
    email = new.get("email")
    kwargs: dict[str, Any] = {}
    if "node_limit" in new:
        kwargs["node_limit"] = new["node_limit"]
    ws, token = await state(request).store.run(
        repo.create_workspace,
        new["name"],
        new.get("plan", state(request).config.api.default_plan),
        parent_uuid=caller.ws_uuid,
        email=email,
        **kwargs,
    )
    payload: dict[str, Any] = {
        "ok": True,
        "workspace": {**public_workspace(ws), "deploy_token": token},
    }
    if email is not None:
        # dashboard users arrive with the dashboard; no welcome e-mail is sent yet
        payload["user"] = {"email": email, "welcome_email_sent": False}
    return json_response(payload, status=201)


@routes.get("/api/v1/workspaces")
@operation(
    "listSubWorkspaces",
    tag=_TAG,
    parameters=(param_ref("Limit"), param_ref("Offset")),
    answers={200: answer("A page of sub-workspaces.", WorkspacePage)},
    errors=(400, 403),
)
async def list_sub_workspaces(request: web.Request) -> web.Response:
    """List sub-workspaces

    The caller's sub-workspaces, oldest first (top-level tokens only)."""
    caller = await authenticate(request)
    _require_parent(caller)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
    rows, total = await state(request).store.run(
        repo.list_workspaces, caller.ws_uuid, limit, offset
    )
    return json_response(
        {
            "ok": True,
            "workspaces": [public_workspace(r) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


async def _child(request: web.Request, caller: Caller) -> Workspace:
    ws_uuid = path_uuid(request, "uuid", "workspace")
    ws = await state(request).store.run(repo.get_workspace, ws_uuid)
    if ws["parent_uuid"] != caller.ws_uuid:
        raise ApiError(404, "not_found", "workspace not found")
    return ws


@routes.get("/api/v1/workspaces/{uuid}")
@operation(
    "getSubWorkspace",
    tag=_TAG,
    parameters=(_SUB,),
    answers={200: answer("The sub-workspace.", WorkspaceDetailAnswer)},
    errors=(403, 404),
)
async def get_sub_workspace(request: web.Request) -> web.Response:
    """Get a sub-workspace

    A sub-workspace with its first 100 nodes."""
    caller = await authenticate(request)
    _require_parent(caller)
    ws = await _child(request, caller)
    nodes, total = await state(request).store.run(
        nodes_repo.list_nodes,
        ws["uuid"],
        limit=100,
        offline_after_secs=state(request).config.api.offline_after_secs,
    )
    return json_response(
        {"ok": True, "workspace": {**public_workspace(ws), "nodes": nodes, "nodes_total": total}}
    )


@routes.delete("/api/v1/workspaces/{uuid}")
@operation(
    "deleteSubWorkspace",
    tag=_TAG,
    parameters=(_SUB,),
    answers={200: answer("The sub-workspace was deleted.", Deleted)},
    errors=(402, 403, 404),
)
async def delete_sub_workspace(request: web.Request) -> web.Response:
    """Delete a sub-workspace

    Deactivates the sub-workspace with its nodes, deploy tokens and collector keys."""
    caller = await authenticate(request)
    _require_parent(caller)
    ws = await _child(request, caller)
    await state(request).store.run(repo.delete_workspace, ws["uuid"], caller.ws_uuid)
    state(request).credentials.clear()
    return json_response({"ok": True, "deleted": True, "uuid": ws["uuid"]})


@routes.get("/api/v1/analytics/summary")
@operation(
    "analyticsSummary",
    tag="Analytics",
    parameters=(
        {
            "name": "range",
            "in": "query",
            "required": False,
            "allowEmptyValue": True,
            "schema": {"type": "string", "enum": list(analytics.RANGES), "default": "30d"},
            "description": "Time range ending now. An empty value means `30d`.",
        },
    ),
    answers={200: answer("The summary.", AnalyticsSummary)},
    errors=(400,),
)
async def analytics_summary(request: web.Request) -> web.Response:
    """Analytics summary"""
    caller = await authenticate(request)
    range_key = choice_param(request, "range", tuple(analytics.RANGES)) or "30d"
    summary = await state(request).store.query(
        analytics.analytics_summary, caller.ws_uuid, range_key
    )
    return json_response({"ok": True, **summary})


@routes.get("/api/v1/status")
@operation(
    "statusOverview", tag="Analytics", answers={200: answer("The overview.", StatusOverview)}
)
async def status_overview(request: web.Request) -> web.Response:
    """Status overview"""
    caller = await authenticate(request)
    overview = await state(request).store.run(
        analytics.status_overview,
        caller.ws_uuid,
        offline_after_secs=state(request).config.api.offline_after_secs,
    )
    return json_response({"ok": True, **overview})
