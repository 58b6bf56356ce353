"""Notification channels of REST v1. Secrets in configs are masked in every answer."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from notify import mask_config, validate_channel_config
from store import channels as repo
from store import outbox
from store.validate import check_bool, check_text

from ..dispatcher import DISPATCHER
from ..errors import ApiError, json_response
from ..http import authenticate, int_param, parse_uuid, read_json, state

routes = web.RouteTableDef()

_INT_ID = re.compile(r"[0-9]{1,18}")
_FIELDS = frozenset({"name", "type", "config", "enabled"})
_CONFIG_FIELD = re.compile(r"config\.[A-Za-z0-9_]+")


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


def _merge_config(
    channel_type: str, stored: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """PATCH semantics for ``config``: a key given replaces the stored one, ``null`` removes it,
    and a secret sent back exactly as answers mask it keeps the stored secret."""
    masked = mask_config(channel_type, stored)
    out = dict(stored)
    for key, value in given.items():
        if value is None:
            out.pop(key, None)
        elif (
            key in stored and key in masked and masked[key] != stored[key] and value == masked[key]
        ):
            continue  # the masked form of the stored secret: unchanged
        else:
            out[key] = value
    return out


@routes.patch("/api/v1/channels/{id}")
async def update_channel(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    ref = _ref(request)
    body = await read_json(request)
    unknown = set(body) - _FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise ApiError(400, "invalid_parameter", f"unknown field {field}", field=field)
    store = state(request).store
    row = await store.run(repo.get_channel, caller.ws_uuid, ref)
    if "type" in body and body["type"] != row["type"]:
        raise ApiError(
            400, "invalid_parameter", "type cannot be changed; create a new channel", field="type"
        )
    name = check_text(body["name"], "name") if "name" in body else None
    enabled = check_bool(body["enabled"], "enabled") if "enabled" in body else None
    config = None
    if "config" in body:
        if not isinstance(body["config"], dict):
            raise ApiError(400, "invalid_parameter", "config must be an object", field="config")
        merged = _merge_config(row["type"], row["config"], body["config"])
        try:
            config = validate_channel_config(row["type"], merged)
        except ValueError as exc:
            found = _CONFIG_FIELD.match(str(exc))
            field = found.group(0) if found else "config"
            raise ApiError(400, "invalid_parameter", str(exc), field=field) from None
    updated = await store.run(
        repo.update_channel, caller.ws_uuid, row["id"], name=name, config=config, enabled=enabled
    )
    return json_response({"ok": True, "channel": _public(updated)})


@routes.get("/api/v1/channels/{id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    ref = _ref(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    store = state(request).store
    row = await store.run(repo.get_channel, caller.ws_uuid, ref)
    rows, total = await store.run(outbox.list_attempts, caller.ws_uuid, row["id"], limit, offset)
    return json_response(
        {
            "ok": True,
            "channel_id": row["id"],
            "deliveries": rows,
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@routes.post("/api/v1/channels/{id}/test")
async def test_channel(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    row = await state(request).store.run(repo.get_channel, caller.ws_uuid, _ref(request))
    result = await request.app[DISPATCHER].send_test(caller.ws_uuid, row)
    return json_response({"ok": True, "channel_id": row["id"], "test": result})
