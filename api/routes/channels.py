"""Notification channels of REST v1. Secrets in configs are masked in every answer."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from notify import mask_config, validate_channel_config
from store import channels as repo
from store import outbox
from store.types import Channel

from ..dispatcher import DISPATCHER
from ..errors import ApiError, json_response
from ..http import authenticate, int_param, parse_uuid, read_json, state
from ..models import refuse_unknown, validate
from ..models.channels import (
    ChannelAnswer,
    ChannelCreate,
    ChannelDeleted,
    ChannelPage,
    ChannelTestAnswer,
    ChannelUpdate,
    DeliveryPage,
)
from ..models.envelopes import MAX_OFFSET
from ..openapi.build import param_ref
from ..openapi.operations import answer, body, operation

routes = web.RouteTableDef()

_TAG = "Channels"
_REF = param_ref("ChannelRef")

_INT_ID = re.compile(r"[0-9]{1,18}")
_CONFIG_FIELD = re.compile(r"config\.[A-Za-z0-9_]+")


def _public(row: Channel) -> dict[str, Any]:
    return {**row, "config": mask_config(row["type"], row["config"])}


def _ref(request: web.Request) -> int | Any:
    raw = request.match_info["id"]
    ref: Any = int(raw) if _INT_ID.fullmatch(raw) else parse_uuid(raw)
    if ref is None:
        raise ApiError(404, "not_found", "channel not found")
    return ref


@routes.get("/api/v1/channels")
@operation(
    "listChannels",
    tag=_TAG,
    parameters=(param_ref("ChannelLimit"), param_ref("Offset")),
    answers={200: answer("A page of channels.", ChannelPage)},
    errors=(400,),
)
async def list_channels(request: web.Request) -> web.Response:
    """List notification channels"""
    caller = await authenticate(request)
    limit = int_param(request, "limit", 100, 1, 100)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
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
@operation(
    "createChannel",
    tag=_TAG,
    request_body=body("The new channel.", ChannelCreate),
    answers={201: answer("The channel was created.", ChannelAnswer)},
    errors=(400, 402, 413),
)
async def create_channel(request: web.Request) -> web.Response:
    """Create a notification channel"""
    caller = await authenticate(request)
    new = validate(ChannelCreate, await read_json(request))
    row = await state(request).store.run(
        repo.create_channel, caller.ws_uuid, new.name, new.type, new.config, new.enabled
    )
    return json_response({"ok": True, "channel": _public(row)}, status=201)


@routes.get("/api/v1/channels/{id}")
@operation(
    "getChannel",
    tag=_TAG,
    parameters=(_REF,),
    answers={200: answer("The channel.", ChannelAnswer)},
    errors=(404,),
)
async def get_channel(request: web.Request) -> web.Response:
    """Get a notification channel"""
    caller = await authenticate(request)
    row = await state(request).store.run(repo.get_channel, caller.ws_uuid, _ref(request))
    return json_response({"ok": True, "channel": _public(row)})


@routes.delete("/api/v1/channels/{id}")
@operation(
    "deleteChannel",
    tag=_TAG,
    parameters=(_REF,),
    answers={200: answer("The channel was deleted.", ChannelDeleted)},
    errors=(402, 404),
)
async def delete_channel(request: web.Request) -> web.Response:
    """Delete a notification channel

    Permanent."""
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
@operation(
    "updateChannel",
    tag=_TAG,
    parameters=(_REF,),
    request_body=body("What to change.", ChannelUpdate),
    answers={200: answer("The channel as it is now.", ChannelAnswer)},
    errors=(400, 402, 404, 413),
)
async def update_channel(request: web.Request) -> web.Response:
    """Change a notification channel

    Enable or disable it, rename it, change its config or filters. Errors name the field
    (`config.url`, `name`, ...)."""
    caller = await authenticate(request)
    ref = _ref(request)
    body = await read_json(request)
    refuse_unknown(ChannelUpdate, body)  # before the lookup: an unknown field is 400, not 404
    store = state(request).store
    row = await store.run(repo.get_channel, caller.ws_uuid, ref)
    change = validate(ChannelUpdate, body, context={"type": row["type"]})
    config = None
    if "config" in change:
        merged = _merge_config(row["type"], row["config"], change["config"])
        try:
            config = validate_channel_config(row["type"], merged)
        except ValueError as exc:
            found = _CONFIG_FIELD.match(str(exc))
            field = found.group(0) if found else "config"
            raise ApiError(400, "invalid_parameter", str(exc), field=field) from None
    updated = await store.run(
        repo.update_channel,
        caller.ws_uuid,
        row["id"],
        name=change.get("name"),
        config=config,
        enabled=change.get("enabled"),
    )
    return json_response({"ok": True, "channel": _public(updated)})


@routes.get("/api/v1/channels/{id}/deliveries")
@operation(
    "listChannelDeliveries",
    tag=_TAG,
    parameters=(_REF, param_ref("Limit"), param_ref("Offset")),
    answers={200: answer("A page of the delivery log.", DeliveryPage)},
    errors=(400, 404),
)
async def list_deliveries(request: web.Request) -> web.Response:
    """The channel's delivery log

    Every attempt to deliver an alert to this channel, newest first: when, the outcome, the HTTP
    status or SMTP reply, the error and the latency."""
    caller = await authenticate(request)
    ref = _ref(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
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
@operation(
    "testChannel",
    tag=_TAG,
    parameters=(_REF,),
    answers={200: answer("What the attempt did.", ChannelTestAnswer)},
    errors=(402, 404),
)
async def test_channel(request: web.Request) -> web.Response:
    """Send a test alert now

    One `test` event, sent at once (enabled or not, whatever its filters), never retried, logged
    like any delivery. The answer is `200` whether the service accepted it or not:
    `test.delivered` says which."""
    caller = await authenticate(request)
    row = await state(request).store.run(repo.get_channel, caller.ws_uuid, _ref(request))
    result = await request.app[DISPATCHER].send_test(caller.ws_uuid, row)
    return json_response({"ok": True, "channel_id": row["id"], "test": result})
