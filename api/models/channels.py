"""Notification channels (``/api/v1/channels``): the bodies a client sends and the objects it
gets back, declared once; ``api/routes/channels.py`` validates with them and ``api/openapi.py``
takes their schemas from :func:`schemas`.

What a ``config`` holds per channel type is still declared by ``notify.channels.CHANNEL_TYPES``
(its checks) and, for the document, by :func:`_channel_configs` below: turning each type into a
model of its own is the next step of issue 12.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    with_config,
)
from pydantic.json_schema import JsonSchemaMode
from typing_extensions import TypedDict  # pydantic's TypedDict support needs it on Python 3.11

from notify import CHANNEL_TYPES, ChannelConfigError, validate_channel_config
from notify.channels import EVENT_KINDS, MAX_VALUE_LEN
from store.validate import check_text

from . import (
    REQUEST_CONFIG,
    RequestModel,
    ResponseModel,
    component,
    component_schemas,
    invalid,
    reuse_check,
)

__all__ = ["Channel", "ChannelCreate", "ChannelTestResult", "ChannelUpdate", "Delivery", "schemas"]

Schema = dict[str, Any]

# --------------------------------------------------------------------------- shared types

Name = Annotated[
    str,
    BeforeValidator(reuse_check(lambda v: check_text(v, "name"))),
    WithJsonSchema(component("Name")),
]
"""Trimmed, 1-100 characters, no control characters: ``store.validate.check_text``, which runs
first so that its messages (``name is required`` for null too) stay the answer's."""
Uuid = Annotated[str, WithJsonSchema(component("Uuid"))]
Timestamp = Annotated[datetime, WithJsonSchema(component("Timestamp"))]
Id = Annotated[int, Field(ge=1)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]


def _enum(*values: str, description: str | None = None) -> Any:
    """A string out of ``values`` (taken from the module that enforces them)."""
    return Field(json_schema_extra={"enum": list(values)}, description=description)


# --------------------------------------------------------------------------- answers


class Channel(ResponseModel):
    """A notification channel."""

    id: Id
    uuid: Uuid
    name: Annotated[str, Field(max_length=100)]
    type: Annotated[str, _enum(*CHANNEL_TYPES)]
    config: Annotated[
        dict[str, Any],
        Field(
            description="The type's settings in canonical form; secrets are masked (the last "
            "four characters stay visible, URLs keep their host)."
        ),
    ]
    enabled: bool
    created_at: Timestamp


class Delivery(ResponseModel):
    """One attempt to deliver one alert event to the channel."""

    id: Annotated[Id, Field(description="The attempt's id.")]
    delivery_id: Annotated[
        Uuid,
        Field(
            description="Same for every attempt of one event to this channel (the idempotency "
            "key the service receives)."
        ),
    ]
    event_id: Uuid
    event: Annotated[str, _enum(*EVENT_KINDS)]
    incident_uuid: Uuid | None
    incident_id: Id | None
    attempt: Annotated[int, Field(ge=1, description="1 for the first attempt of the delivery.")]
    at: Timestamp
    status: Annotated[
        str,
        _enum(
            "sent",
            "retry",
            "failed",
            "cancelled",
            description="This attempt's outcome: `retry` means another attempt was scheduled; "
            "`cancelled`, the channel was deleted or disabled first.",
        ),
    ]
    http_status: HttpStatus | None
    smtp_reply: str | None
    error: str | None
    latency_ms: float | None
    retry_after: float | None
    delivery_status: Annotated[
        str,
        _enum(
            "pending",
            "sent",
            "failed",
            "cancelled",
            description="Where the delivery stands now (after its latest attempt).",
        ),
    ]


class ChannelTestResult(ResponseModel):
    """The outcome of the one attempt a test makes."""

    delivered: bool
    delivery_id: Uuid
    event_id: Uuid
    status: Annotated[str, _enum("sent", "failed")]
    http_status: HttpStatus | None
    smtp_reply: str | None
    error: str | None
    latency_ms: float
    retryable: Annotated[
        bool,
        Field(description="Whether the failure looks temporary (a test is never retried)."),
    ]
    at: Timestamp


# --------------------------------------------------------------------------- requests


def _create_schema(schema: dict[str, Any]) -> None:
    """The document shows a create body as one variant per channel type, each with the config
    that type takes (what the model's validators enforce through ``notify.channels``)."""
    schema.clear()
    schema.update(_channel_create())


class ChannelCreate(RequestModel):
    """``POST /api/v1/channels``. ``type`` is matched without regard to case; ``config`` is
    checked and made canonical by the type's rules (``notify.validate_channel_config``)."""

    model_config = ConfigDict(json_schema_extra=_create_schema)

    name: Name
    type: str
    config: dict[str, Any]
    enabled: bool = True

    @field_validator("type")
    @classmethod
    def lower_type(cls, value: str) -> str:
        return value.lower()

    @field_validator("config")
    @classmethod
    def check_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("type")
        if kind is None:  # the type is missing or wrong: that error is reported instead
            return value
        try:
            return validate_channel_config(kind, value)
        except ChannelConfigError as exc:
            # "type must be one of ..." names the type; every other problem is the config's
            field = "type" if str(exc).startswith("type") else "config"
            raise invalid(str(exc), field) from None


def _unchanged_type(value: Any, info: ValidationInfo) -> Any:
    """A PATCH may repeat the channel's type (``context["type"]``), never change it: anything
    else, null or a number too, is refused as a change."""
    stored = (info.context or {}).get("type")
    if stored is not None and value != stored:
        raise invalid("type cannot be changed; create a new channel")
    return value


@with_config(REQUEST_CONFIG)
class ChannelUpdate(TypedDict, total=False):
    """What to change; fields left out keep their value."""

    type: Annotated[
        str,
        BeforeValidator(_unchanged_type),
        Field(
            description="Accepted only when it is the channel's own type (a type cannot be "
            "changed)."
        ),
    ]
    name: Name
    enabled: Annotated[bool, Field(description="false: nothing is sent.")]
    config: Annotated[
        dict[str, Any],
        Field(
            description="Keys to change in the channel's config, validated with the rest as on "
            "create: a key given replaces the stored one, `null` removes it, and a secret sent "
            "back exactly as answers mask it keeps the stored secret. The filter keys "
            "(`min_severity`, `nodes`, `events`, `mute`) live here too."
        ),
    ]


# --------------------------------------------------------------------------- the document

_MODELS: dict[str, tuple[type[Any], JsonSchemaMode]] = {
    "Channel": (Channel, "serialization"),
    "ChannelCreate": (ChannelCreate, "validation"),
    "ChannelUpdate": (ChannelUpdate, "validation"),
    "Delivery": (Delivery, "serialization"),
    "ChannelTestResult": (ChannelTestResult, "serialization"),
}


def schemas() -> dict[str, Schema]:
    """This resource's entries of ``#/components/schemas``."""
    return component_schemas(_MODELS)


# --------------------------------------------------------------------------- config schemas
# Hand-written for now, moved here from api/openapi.py: what each type's ``config`` takes.


def _ref(name: str) -> Schema:
    return component(name)


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null (an optional setting given as null means unset)."""
    if "type" not in schema or "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    out = {**schema, "type": [*([kind] if isinstance(kind, str) else kind), "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def _obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), **extra: Any) -> Schema:
    """A closed object whose properties are all required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _https_url(description: str) -> Schema:
    return {
        "type": "string",
        "maxLength": MAX_VALUE_LEN,
        "pattern": r"^https://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[!-~]*)?$",
        "description": description,
    }


def _http_url(description: str) -> Schema:
    return {
        "type": "string",
        "maxLength": MAX_VALUE_LEN,
        "pattern": r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[!-~]*)?$",
        "description": description,
    }


def _setting(description: str = "") -> Schema:
    schema: Schema = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_VALUE_LEN,
        "pattern": r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$",
    }
    if description:
        schema["description"] = description
    return schema


_BOOL: Schema = {"type": "boolean"}


def _channel_configs() -> dict[str, tuple[Schema, str]]:
    """Per channel type: the ``config`` object it takes, and the aliases it accepts."""
    webhook_url = _https_url("Incoming-webhook URL (secret, masked in answers).")
    return {
        "discord": (
            _obj(
                {
                    "webhook_url": webhook_url,
                    "username": _setting(),
                    "avatar_url": _https_url("Avatar image URL."),
                    "mention_everyone": _BOOL,
                },
                optional=("username", "avatar_url", "mention_everyone"),
            ),
            "`url` for `webhook_url`",
        ),
        "slack": (
            _obj(
                {
                    "webhook_url": webhook_url,
                    "username": _setting(),
                    "icon": _setting(),
                    "channel": _setting(),
                    "mention_everyone": _BOOL,
                },
                optional=("username", "icon", "channel", "mention_everyone"),
            ),
            "`url` for `webhook_url`",
        ),
        "email": (
            _obj(
                {"email": _ref("Email"), "name": _setting("Recipient name.")},
                optional=("name",),
            ),
            "`to`, `address` for `email`",
        ),
        "sms": (
            _obj(
                {
                    "phone": {
                        "type": "string",
                        "pattern": r"^\+[1-9][0-9]{6,14}$",
                        "description": "E.164 number; spaces and dashes are removed.",
                    }
                }
            ),
            "`phone_number`, `to` for `phone`",
        ),
        "pagerduty": (
            _obj(
                {
                    "routing_key": _setting("Events API v2 routing key (secret)."),
                    "severity_map": _setting(),
                },
                optional=("severity_map",),
            ),
            "`integration_key` for `routing_key`",
        ),
        "opsgenie": (
            _obj(
                {
                    "api_key": _setting("API key (secret)."),
                    "region": {"type": "string", "enum": ["us", "eu"]},
                    "responders": _setting(),
                },
                optional=("region", "responders"),
            ),
            "",
        ),
        "webhook": (
            _obj(
                {
                    "url": _http_url("Where events are POSTed (secret)."),
                    "secret": _setting("HMAC-SHA256 signing key (secret)."),
                    "headers": {
                        "type": "object",
                        "maxProperties": 20,
                        "propertyNames": {"pattern": "^[A-Za-z0-9-]{1,64}$"},
                        "additionalProperties": {
                            "type": "string",
                            "maxLength": 1024,
                            "pattern": r"^[^\x00-\x1f]*$",
                        },
                        "description": "Extra request headers (secret).",
                    },
                },
                optional=("secret", "headers"),
            ),
            "`webhook_url` for `url`",
        ),
        "teams": (_obj({"webhook_url": webhook_url}), "`url` for `webhook_url`"),
        "telegram": (
            _obj(
                {
                    "bot_token": {
                        "type": "string",
                        "pattern": "^[0-9]{3,15}:[A-Za-z0-9_-]{20,64}$",
                        "description": "Bot token (secret).",
                    },
                    "chat_id": {
                        "oneOf": [
                            {"type": "string", "pattern": "^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64})$"},
                            {"type": "integer"},
                        ],
                        "description": "Numeric chat id or `@channel` name.",
                    },
                }
            ),
            "",
        ),
        "grafana": (
            _obj(
                {
                    "url": _http_url("Grafana webhook URL (secret)."),
                    "api_key": _setting("API key (secret)."),
                },
                optional=("api_key",),
            ),
            "`webhook_url` for `url`",
        ),
        "datadog": (
            _obj(
                {
                    "api_key": _setting("API key (secret)."),
                    "site": {
                        "type": "string",
                        "enum": [
                            "datadoghq.com",
                            "us3.datadoghq.com",
                            "us5.datadoghq.com",
                            "datadoghq.eu",
                            "ap1.datadoghq.com",
                            "ddog-gov.com",
                        ],
                    },
                },
                optional=("site",),
            ),
            "",
        ),
        "prometheus": (
            _obj(
                {
                    "url": _http_url("Alertmanager URL (secret)."),
                    "username": _setting(),
                    "password": _setting("Basic-auth password (secret)."),
                },
                optional=("username", "password"),
            ),
            "`alertmanager_url` for `url`",
        ),
    }


def _channel_create() -> Schema:
    variants = []
    for kind, (config, aliases) in _channel_configs().items():
        config["properties"] = {  # an optional setting may be null, meaning unset
            key: value if key in config["required"] else _nullable(value)
            for key, value in config["properties"].items()
        }
        name = f"{kind.capitalize()}Config"
        description = f"`config` of a `{kind}` channel."
        if aliases:
            description += f" Also accepted: {aliases}."
        variants.append(
            _obj(
                {
                    "name": _ref("Name"),
                    "type": {"const": kind},
                    "config": {**config, "title": name, "description": description},
                    "enabled": {"type": "boolean", "default": True},
                },
                optional=("enabled",),
                title=f"{kind} channel",
            )
        )
    return {
        "oneOf": variants,
        "description": "`type` is matched without regard to case. Unknown fields are refused, in "
        "the body and in `config`.",
    }
