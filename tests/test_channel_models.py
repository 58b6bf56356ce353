"""The notification channels' typed models (``api/models``, issue 12): the answers to a refused
body are the ones the hand-written checks gave (code, ``field``, message, which error wins), a
PATCH keeps its order (unknown field, then 404, then the rest), and the document's channel
schemas come from the models."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.errors import ApiError
from api.models import refuse_unknown, validate
from api.models.channels import ChannelCreate, ChannelUpdate, schemas
from api.openapi import openapi_document

from .conftest import Server, new_workspace
from .helpers_seed import assert_envelope, assert_invalid

EMAIL = {"email": "noc@example.com"}


def _refused(model: type[Any], body: dict[str, Any], **kw: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate(model, body, **kw)
    err = caught.value
    assert (err.status, err.code) == (400, "invalid_parameter")
    return err


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x", "type": "email", "config": EMAIL, "zeta": 1, "alpha": 2}, "alpha", None),
        ({"name": 3, "type": 5, "config": EMAIL, "colour": 1}, "colour", "unknown field colour"),
        ({"type": "email", "config": EMAIL}, "name", "name is required"),
        ({"name": None, "type": "email", "config": EMAIL}, "name", "name is required"),
        ({"name": "   ", "type": "email", "config": EMAIL}, "name", "name is required"),
        ({"name": 3, "type": "email", "config": EMAIL}, "name", "name must be a string"),
        ({"name": "n" * 101, "type": "email", "config": EMAIL}, "name", None),
        ({"name": "a\x9bb", "type": "email", "config": EMAIL}, "name", None),
        ({"name": "", "type": 5, "config": None}, "name", "name is required"),
        ({"name": "x", "config": EMAIL}, "type", "type is required"),
        ({"name": "x", "type": None, "config": EMAIL}, "type", "type is required"),
        ({"name": "x", "type": 5, "config": None}, "type", "type must be a string"),
        ({"name": "x", "type": "irc", "config": {}}, "type", None),
        ({"name": "x", "type": "email"}, "config", "config is required"),
        ({"name": "x", "type": "email", "config": None}, "config", "config is required"),
        ({"name": "x", "type": "email", "config": []}, "config", "config must be an object"),
        ({"name": "x", "type": "irc", "config": None}, "config", "config is required"),
        # a create names the config as a whole; the message names the key
        ({"name": "x", "type": "email", "config": {"email": "a@b"}}, "config", None),
        ({"name": "x", "type": "email", "config": {"email": "a@b"}, "enabled": 1}, "config", None),
        ({"name": "x", "type": "email", "config": EMAIL, "enabled": "no"}, "enabled", None),
        (
            {"name": "x", "type": "email", "config": EMAIL, "enabled": None},
            "enabled",
            "enabled must be true or false",
        ),
    ],
)
def test_create_refusals_keep_their_field_and_message(
    body: dict[str, Any], field: str, message: str | None
) -> None:
    err = _refused(ChannelCreate, body)
    assert err.field == field, (body, err.message)
    if message is not None:
        assert err.message == message
    if field == "type" and body.get("type") == "irc":
        assert err.message.startswith("type must be one of discord, slack, email")
    if body.get("config") == {"email": "a@b"}:
        assert err.message.startswith("config.email must be an e-mail address")


def test_create_normalises_as_before() -> None:
    new = validate(
        ChannelCreate, {"name": "  NOC  ", "type": "EMAIL", "config": {"to": " noc@example.com "}}
    )
    assert (new.name, new.type, new.config, new.enabled) == (
        "NOC",
        "email",
        {"email": "noc@example.com"},
        True,
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"type": "slack", "name": ""}, "type", "type cannot be changed; create a new channel"),
        ({"type": None}, "type", "type cannot be changed; create a new channel"),
        ({"type": 5, "enabled": "x"}, "type", None),
        ({"name": None}, "name", "name is required"),
        ({"name": "", "enabled": "yes"}, "name", "name is required"),
        ({"enabled": None}, "enabled", "enabled must be true or false"),
        ({"config": "x", "enabled": True}, "config", "config must be an object"),
        ({"config": None}, "config", "config must be an object"),
    ],
)
def test_patch_refusals_keep_their_field_and_message(
    body: dict[str, Any], field: str, message: str | None
) -> None:
    err = _refused(ChannelUpdate, body, context={"type": "email"})
    assert err.field == field, (body, err.message)
    if message is not None:
        assert err.message == message


def test_patch_keeps_only_what_was_sent() -> None:
    assert validate(ChannelUpdate, {}, context={"type": "email"}) == {}
    change = validate(ChannelUpdate, {"type": "email", "name": " n "}, context={"type": "email"})
    assert change == {"type": "email", "name": "n"}
    with pytest.raises(ApiError) as caught:
        refuse_unknown(ChannelUpdate, {"name": "x", "zz": 1, "colour": 2})
    assert (caught.value.field, caught.value.message) == ("colour", "unknown field colour")
    refuse_unknown(ChannelUpdate, {"name": "x", "type": "t", "config": {}, "enabled": True})


def test_patch_checks_in_the_order_it_did(server: Server) -> None:
    """Unknown fields are refused before the channel is looked up; a bad value of a known field
    on a channel that does not exist is 404."""
    ws = new_workspace(server)
    missing = "/api/v1/channels/999999999"
    assert_invalid(ws.client.patch(missing, json={"name": "x", "colour": "red"}), "colour")
    assert_envelope(ws.client.patch(missing, json={"name": ""}), 404, "not_found")
    r = ws.client.post("/api/v1/channels", json={"name": "m", "type": "email", "config": EMAIL})
    assert r.status_code == 201, r.text
    ref = f"/api/v1/channels/{r.json()['channel']['id']}"
    assert_invalid(ws.client.patch(ref, json={"type": None, "name": ""}), "type")
    assert_invalid(ws.client.patch(ref, json={"name": None}), "name")
    r = ws.client.patch(ref, json={"type": "email", "name": " renamed ", "enabled": False})
    assert r.status_code == 200, r.text
    assert (r.json()["channel"]["name"], r.json()["channel"]["enabled"]) == ("renamed", False)


def test_document_takes_the_channel_schemas_from_the_models() -> None:
    generated = schemas()
    doc = openapi_document()
    components = doc["components"]["schemas"]
    for name, schema in generated.items():
        assert components[name] == schema, name
    text = json.dumps(doc)
    assert "x-floodwatch-component" not in text  # every placeholder became a $ref
    channel = components["Channel"]
    assert "title" not in channel and all("title" not in p for p in channel["properties"].values())
    assert channel["required"] == [
        "id",
        "uuid",
        "name",
        "type",
        "config",
        "enabled",
        "created_at",
    ]
    assert channel["properties"]["uuid"] == {"$ref": "#/components/schemas/Uuid"}
    assert channel["additionalProperties"] is False
    update = components["ChannelUpdate"]
    assert "required" not in update and update["additionalProperties"] is False
    assert update["properties"]["name"] == {"$ref": "#/components/schemas/Name"}
    kinds = [v["properties"]["type"]["const"] for v in components["ChannelCreate"]["oneOf"]]
    assert kinds == channel["properties"]["type"]["enum"]
