"""Detection settings through REST: the workspace's defaults and each node's own overrides.

A node's effective settings are the built-in defaults, overlaid by its workspace's overrides,
overlaid by its own. A PATCH sets overrides (``null`` removes one, also inside ``series``); an
unknown key, a wrong type or a value out of bounds is 400 naming the field. A change reaches the
running detector at once, no restart."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from detect.settings import DetectionSettings, SettingsError
from store import detections as repo
from store import nodes as nodes_repo

from ..detection import effective_settings, patch_overrides
from ..errors import ApiError, json_response
from ..http import authenticate, path_uuid, read_json, state
from ..models.detection import DetectionAnswer, DetectionPatch
from ..openapi.build import param_ref
from ..openapi.operations import answer, body, operation

routes = web.RouteTableDef()

_SETTINGS = {200: answer("The settings.", DetectionAnswer)}
_PATCH = body("The settings to change.", DetectionPatch)


def _bad(exc: SettingsError) -> ApiError:
    return ApiError(400, "invalid_parameter", f"{exc.field}: {exc.message}", field=exc.field)


async def _load(
    request: web.Request, ws: uuid.UUID, node: uuid.UUID | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(workspace overrides, node overrides or {})."""
    store = state(request).store
    ws_over = await store.run(repo.get_detection_overrides, ws, None)
    node_over = {} if node is None else await store.run(repo.get_detection_overrides, ws, node)
    return ws_over, node_over


def _answer(
    effective: dict[str, Any], overrides: dict[str, Any], inherited: dict[str, Any]
) -> web.Response:
    return json_response(
        {"ok": True, "detection": effective, "overrides": overrides, "inherited": inherited}
    )


def _notify(
    request: web.Request, ws: uuid.UUID, node: uuid.UUID | None, new: dict[str, Any]
) -> None:
    service = state(request).detection
    if service is not None:
        service.overrides_changed(str(ws), None if node is None else str(node), new)


def _effective(*layers: dict[str, Any]) -> dict[str, Any]:
    try:
        return effective_settings(*layers)
    except SettingsError:  # stored by an older version with other bounds: defaults shown
        return DetectionSettings().to_dict()


@routes.get("/api/v1/workspace/detection")
@operation("getWorkspaceDetection", tag="Detection", answers=_SETTINGS)
async def get_workspace_detection(request: web.Request) -> web.Response:
    """Detection settings of the workspace"""
    caller = await authenticate(request)
    ws_over, _ = await _load(request, caller.ws_uuid, None)
    return _answer(_effective(ws_over), ws_over, DetectionSettings().to_dict())


@routes.patch("/api/v1/workspace/detection")
@operation(
    "patchWorkspaceDetection",
    tag="Detection",
    request_body=_PATCH,
    answers=_SETTINGS,
    errors=(400, 402, 413),
)
async def patch_workspace_detection(request: web.Request) -> web.Response:
    """Change the workspace's detection settings"""
    caller = await authenticate(request)
    body = await read_json(request)
    ws_over, _ = await _load(request, caller.ws_uuid, None)
    try:
        new, effective = patch_overrides(DetectionSettings().to_dict(), ws_over, body)
    except SettingsError as exc:
        raise _bad(exc) from None
    await state(request).store.run(repo.put_detection_overrides, caller.ws_uuid, None, new)
    _notify(request, caller.ws_uuid, None, new)
    return _answer(effective, new, DetectionSettings().to_dict())


async def _node(request: web.Request, ws: uuid.UUID) -> uuid.UUID:
    node_uuid = path_uuid(request, "uuid", "node")
    await state(request).store.run(nodes_repo.get_node, ws, node_uuid)
    return node_uuid


@routes.get("/api/v1/nodes/{uuid}/detection")
@operation(
    "getNodeDetection",
    tag="Detection",
    parameters=(param_ref("NodeUuid"),),
    answers=_SETTINGS,
    errors=(404,),
)
async def get_node_detection(request: web.Request) -> web.Response:
    """Detection settings of one node"""
    caller = await authenticate(request)
    node = await _node(request, caller.ws_uuid)
    ws_over, node_over = await _load(request, caller.ws_uuid, node)
    inherited = _effective(ws_over)
    return _answer(_effective(ws_over, node_over), node_over, inherited)


@routes.patch("/api/v1/nodes/{uuid}/detection")
@operation(
    "patchNodeDetection",
    tag="Detection",
    parameters=(param_ref("NodeUuid"),),
    request_body=_PATCH,
    answers=_SETTINGS,
    errors=(400, 402, 404, 413),
)
async def patch_node_detection(request: web.Request) -> web.Response:
    """Change one node's detection settings"""
    caller = await authenticate(request)
    node = await _node(request, caller.ws_uuid)
    body = await read_json(request)
    ws_over, node_over = await _load(request, caller.ws_uuid, node)
    inherited = _effective(ws_over)
    try:
        new, effective = patch_overrides(inherited, node_over, body)
    except SettingsError as exc:
        raise _bad(exc) from None
    await state(request).store.run(repo.put_detection_overrides, caller.ws_uuid, node, new)
    _notify(request, caller.ws_uuid, node, new)
    return _answer(effective, new, inherited)
