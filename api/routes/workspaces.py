"""The caller's workspace, its sub-workspaces (MSPs, resellers), analytics and status overview."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from store import analytics
from store import nodes as nodes_repo
from store import workspaces as repo
from store.errors import Forbidden
from store.plans import PLANS
from store.validate import check_bool, check_choice, check_optional_text, check_text

from ..errors import ApiError, json_response
from ..http import authenticate, choice_param, int_param, path_uuid, read_json, state

routes = web.RouteTableDef()

_SUB_FIELDS = frozenset({"name", "email", "send_welcome_email", "password", "plan", "node_limit"})
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


def public_workspace(ws: dict[str, Any]) -> dict[str, Any]:
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
async def workspace_info(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    ws = await state(request).store.run(repo.get_workspace, caller.ws_uuid)
    return json_response({"ok": True, "workspace": public_workspace(ws)})


def _require_parent(caller: Any) -> None:
    if caller.workspace["parent_uuid"] is not None:
        raise Forbidden("only a top-level workspace's token can manage sub-workspaces")


@routes.post("/api/v1/workspaces")
async def create_sub_workspace(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    _require_parent(caller)
    body = await read_json(request)
    unknown = set(body) - _SUB_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise ApiError(400, "invalid_parameter", f"unknown field {field}", field=field)
    name = check_text(body.get("name"), "name")
    email = check_optional_text(body.get("email"), "email", 254)
    if email is not None and not _EMAIL.match(email):
        raise ApiError(400, "invalid_parameter", "email is not an e-mail address", field="email")
    if "send_welcome_email" in body:
        check_bool(body["send_welcome_email"], "send_welcome_email")
    cfg = state(request).config
    plan = check_choice(body.get("plan", cfg.api.default_plan), "plan", tuple(PLANS))
    kwargs: dict[str, Any] = {}
    if "node_limit" in body:
        limit = body["node_limit"]
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise ApiError(
                400,
                "invalid_parameter",
                "node_limit must be an integer or null",
                field="node_limit",
            )
        kwargs["node_limit"] = limit
    ws, token = await state(request).store.run(
        repo.create_workspace,
        name,
        plan,
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
async def list_sub_workspaces(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    _require_parent(caller)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
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


async def _child(request: web.Request, caller: Any) -> dict[str, Any]:
    ws_uuid = path_uuid(request, "uuid", "workspace")
    ws = await state(request).store.run(repo.get_workspace, ws_uuid)
    if ws["parent_uuid"] != caller.ws_uuid:
        raise ApiError(404, "not_found", "workspace not found")
    return ws


@routes.get("/api/v1/workspaces/{uuid}")
async def get_sub_workspace(request: web.Request) -> web.Response:
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
async def delete_sub_workspace(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    _require_parent(caller)
    ws = await _child(request, caller)
    await state(request).store.run(repo.delete_workspace, ws["uuid"], caller.ws_uuid)
    state(request).credentials.clear()
    return json_response({"ok": True, "deleted": True, "uuid": ws["uuid"]})


@routes.get("/api/v1/analytics/summary")
async def analytics_summary(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    range_key = choice_param(request, "range", tuple(analytics.RANGES)) or "30d"
    summary = await state(request).store.query(
        analytics.analytics_summary, caller.ws_uuid, range_key
    )
    return json_response({"ok": True, **summary})


@routes.get("/api/v1/status")
async def status_overview(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    overview = await state(request).store.run(
        analytics.status_overview,
        caller.ws_uuid,
        offline_after_secs=state(request).config.api.offline_after_secs,
    )
    return json_response({"ok": True, **overview})
