"""Notification channels of REST v1. Secrets in configs are masked in every answer."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from notify import mask_config, validate_channel_config
from store import channels as repo
from store.validate import check_bool, check_text

from ..errors import ApiError, json_response
from ..http import authenticate, int_param, parse_uuid, read_json, state

routes = web.RouteTableDef()

_INT_ID = re.compile(r"[0-9]{1,18}")
_FIELDS = frozenset({"name", "type", "config", "enabled"})


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "config": mask_config(row["type"], row["config"])}


def _ref(request: web.Request) -> int | Any:
    raw = request.match_info["id"]
    ref: Any = int(raw) if _INT_ID.fullmatch(raw) else parse_uuid(raw)
    if ref is None:
        raise ApiError(404, "not_found", "channel not found")
    return ref


@routes.get("/api/v1/channels")
async def list_channels(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    limit = int_param(request, "limit", 100, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    rows, total = await state(request).store.run(repo.list_channels, caller.ws_uuid, limit, offset)
    return json_response(
        {
            "ok": True,
            "channels": [_public(r) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@routes.post("/api/v1/channels")
async def create_channel(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_json(request)
    unknown = set(body) - _FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise ApiError(400, "invalid_parameter", f"unknown field {field}", field=field)
    name = check_text(body.get("name"), "name")
    channel_type = body.get("type")
    if channel_type is None:
        raise ApiError(400, "invalid_parameter", "type is required", field="type")
    if not isinstance(channel_type, str):
        raise ApiError(400, "invalid_parameter", "type must be a string", field="type")
    if body.get("config") is None:
        raise ApiError(400, "invalid_parameter", "config is required", field="config")
    if not isinstance(body["config"], dict):
        raise ApiError(400, "invalid_parameter", "config must be an object", field="config")
    try:
        config = validate_channel_config(channel_type.lower(), body["config"])
    except ValueError as exc:
        field = "type" if str(exc).startswith("type") else "config"
        raise ApiError(400, "invalid_parameter", str(exc), field=field) from None
    enabled = check_bool(body.get("enabled", True), "enabled")
    row = await state(request).store.run(
        repo.create_channel, caller.ws_uuid, name, channel_type.lower(), config, enabled
    )
    return json_response({"ok": True, "channel": _public(row)}, status=201)


@routes.get("/api/v1/channels/{id}")
async def get_channel(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    row = await state(request).store.run(repo.get_channel, caller.ws_uuid, _ref(request))
    return json_response({"ok": True, "channel": _public(row)})


@routes.delete("/api/v1/channels/{id}")
async def delete_channel(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    ref = _ref(request)
    ch = await state(request).store.run(repo.delete_channel, caller.ws_uuid, ref)
    return json_response({"ok": True, "deleted": True, "id": ch["id"], "uuid": ch["uuid"]})
