"""The notification channels' typed models (``api/models``, issue 12): the answers to a refused
body are the ones the hand-written checks gave (code, ``field``, message, which error wins), a
PATCH keeps its order (unknown field, then 404, then the rest), and the document's channel
schemas come from the models."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from api.errors import ApiError
from api.models import component_schemas, refuse_unknown, validate
from api.models.channels import (
    Channel,
    ChannelCreate,
    ChannelTestResult,
    ChannelUpdate,
    Delivery,
    config_component,
)
from api.openapi import openapi_document
from notify import CHANNEL_TYPES, mask_config
from notify.channels import FILTER_KEYS

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
    generated = component_schemas(
        {
            "Channel": (Channel, "serialization"),
            "ChannelCreate": (ChannelCreate, "validation"),
            "ChannelUpdate": (ChannelUpdate, "validation"),
            "Delivery": (Delivery, "serialization"),
            "ChannelTestResult": (ChannelTestResult, "serialization"),
        }
    )
    # the create body brings every channel type's config component along
    assert {config_component(kind) for kind in CHANNEL_TYPES} < set(generated)
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


# --------------------------------------------------------------------------- per-type configs


def _config_validator(kind: str) -> Any:
    doc = openapi_document()
    schema = {**doc["components"]["schemas"][f"{kind.capitalize()}Config"]}
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


@pytest.mark.parametrize("kind", sorted(CHANNEL_TYPES))
def test_every_accepted_key_is_documented_for_its_type(kind: str) -> None:
    """Each key the type's model accepts (settings and filters) is a property of the type's
    config in the document, with a description; required and secret keys are marked; every
    other accepted name appears in the description."""
    spec = CHANNEL_TYPES[kind]
    config = openapi_document()["components"]["schemas"][f"{kind.capitalize()}Config"]
    assert list(config["properties"]) == list(spec.order)
    assert set(spec.order) == {*spec.required, *spec.optional, *FILTER_KEYS}
    assert config.get("required", []) == list(spec.required)
    assert config["additionalProperties"] is False
    for key, schema in config["properties"].items():
        assert schema.get("description"), (kind, key)
        assert schema.get("x-secret", False) == (key in spec.secrets), (kind, key)
    for name, key in spec.aliases.items():
        assert f"`{name}`" in config["description"] and f"for `{key}`" in config["description"]


def test_keys_the_hand_written_fragments_left_out_are_documented() -> None:
    props = {
        kind: openapi_document()["components"]["schemas"][f"{kind.capitalize()}Config"][
            "properties"
        ]
        for kind in ("email", "sms", "webhook")
    }
    assert {"smtp_host", "smtp_port", "security", "from", "verify_tls", "ca_cert"} <= set(
        props["email"]
    )
    assert {"account_sid", "auth_token", "from", "messaging_service_sid"} <= set(props["sms"])
    assert props["sms"]["auth_token"]["x-secret"] is True
    mute = props["webhook"]["mute"]["anyOf"][0]
    assert mute["required"] == ["from", "to"] and mute["additionalProperties"] is False


# (type, config, accepted): the document's schema of the type's config and the server agree
AGREEMENT = [
    ("email", {"email": "noc@example.com", "smtp_port": 587, "security": "tls"}, True),
    ("email", {"email": "noc@example.com", "smtp_port": 0}, False),
    ("email", {"email": "noc@example.com", "smtp_port": "587"}, False),
    ("email", {"email": "noc@example.com", "security": "ssl"}, False),
    ("email", {"email": "a@example.com, b@example.org", "from": "fw@example.com"}, True),
    ("email", {"email": "not an address"}, False),
    ("email", {"email": "noc@example.com", "password": None}, True),
    ("email", {"email": "noc@example.com", "colour": "red"}, False),
    ("email", {"name": "NOC"}, False),
    ("sms", {"phone": "+1 555-123-4567", "account_sid": "AC" + "0f" * 16}, True),
    ("sms", {"phone": "+15551234567", "account_sid": "MG" + "0f" * 16}, False),
    ("sms", {"phone": "15551234567"}, False),
    ("sms", {"phone": "+15551234567", "api_url": "https://relay.example/twilio/"}, True),
    ("sms", {"phone": "+15551234567", "api_url": "https://relay.example/t?x=1"}, False),
    ("slack", {"webhook_url": "https://hooks.example/x", "min_severity": "high"}, True),
    ("slack", {"webhook_url": "https://hooks.example/x", "min_severity": "severe"}, False),
    ("slack", {"webhook_url": "http://hooks.example/x"}, False),
    ("slack", {"webhook_url": "http://localhost:8080/x"}, True),
    ("teams", {"webhook_url": "https://t.example/x", "events": ["attack_end", "test"]}, True),
    ("teams", {"webhook_url": "https://t.example/x", "events": ["attack"]}, False),
    (
        "teams",
        {"webhook_url": "https://t.example/x", "mute": {"from": "22:00", "to": "06:00"}},
        True,
    ),
    (
        "teams",
        {"webhook_url": "https://t.example/x", "mute": {"from": "24:00", "to": "06:00"}},
        False,
    ),
    ("teams", {"webhook_url": "https://t.example/x", "mute": {"from": "22:00"}}, False),
    ("teams", {"webhook_url": "https://t.example/x", "nodes": ["0" * 32]}, True),
    ("teams", {"webhook_url": "https://t.example/x", "nodes": ["node-1"]}, False),
    ("telegram", {"bot_token": "123456:" + "a" * 24, "chat_id": -100123}, True),
    ("telegram", {"bot_token": "123456:" + "a" * 24, "chat_id": "@x"}, False),
    ("telegram", {"bot_token": "123456:" + "a" * 24, "chat_id": 1, "silent": 1}, False),
    ("opsgenie", {"api_key": "k" * 16, "tags": ["ddos", "edge/fra"]}, True),
    ("opsgenie", {"api_key": "k" * 16, "tags": ["two words"]}, False),
    ("prometheus", {"url": "http://am.internal:9093", "firing_hours": 721}, False),
    ("pagerduty", {"routing_key": "r" * 20, "severity_map": "high=error, low=info"}, True),
    ("pagerduty", {"routing_key": "r" * 20, "severity_map": "high=fatal"}, False),
    ("pagerduty", {"routing_key": "   "}, False),
]


@pytest.mark.parametrize(("kind", "config", "accepted"), AGREEMENT)
def test_document_and_server_agree_on_configs(
    kind: str, config: dict[str, Any], accepted: bool
) -> None:
    assert _config_validator(kind).is_valid(config) is accepted
    body = {"name": "x", "type": kind, "config": config}
    if accepted:
        validate(ChannelCreate, body)
    else:
        _refused(ChannelCreate, body)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "https://a.example/x", "webhook_url": "https://b.example/x"}, "given twice"),
        ({"webhook_url": "https://a.example/x", "url": None}, "given twice"),
        ({"colour": 1, "webhook_url": "https://a.example/x", "url": "x"}, "not a setting"),
        ({"url": "https://a.example/x", "webhook_url": "x", "colour": 1}, "given twice"),
    ],
)
def test_another_name_for_a_key_counts_as_the_key(config: dict[str, Any], message: str) -> None:
    err = _refused(ChannelCreate, {"name": "x", "type": "slack", "config": config})
    assert (err.field, message in err.message) == ("config", True), err.message
    accepted = validate(
        ChannelCreate, {"name": "x", "type": "slack", "config": {"url": " https://a.example/x "}}
    )
    assert accepted.config == {"webhook_url": "https://a.example/x"}


def test_the_first_problem_in_check_order_wins() -> None:
    """Required settings first, then the type's optional ones, then the filters, whatever order
    they were sent in (as the hand-written checks found them)."""
    config = {"mute": 1, "smtp_port": 0, "email": "x"}
    cases = [
        (config, "config.email must be an e-mail address (or several, comma-separated)"),
        (
            {**config, "email": "noc@example.com"},
            "config.smtp_port must be a port number (1-65535)",
        ),
        ({"mute": 1, "email": "noc@example.com"}, "config.mute must be an object {from, to, tz}"),
        ({"mute": 1}, "config.email is required for a email channel"),
    ]
    for given, message in cases:
        err = _refused(ChannelCreate, {"name": "x", "type": "email", "config": given})
        assert err.message == message


def test_secrets_are_masked_as_their_fields_declare() -> None:
    spec = CHANNEL_TYPES["email"]
    assert spec.secrets == {"password"}
    masked = mask_config(
        "email", {"email": "noc@example.com", "username": "u", "password": "hunter2hunter2xyz"}
    )
    assert masked == {"email": "noc@example.com", "username": "u", "password": "****2xyz"}
    assert CHANNEL_TYPES["webhook"].secrets == {"url", "secret", "headers"}
