"""Notification channels (``/api/v1/channels``): the bodies a client sends and the answers it
gets back, declared once; ``api/routes/channels.py`` validates with them and declares its
operations with them.

What a ``config`` holds per channel type is declared once too, by the type's model in
``notify.channels`` (:class:`notify.channels.ChannelConfig` and its subclasses, which the
dispatcher's code reads as well): ``config`` is validated through it, and its schema is the
document's ``<Type>Config`` component, which each variant of ``ChannelCreate`` refers to (and
brings into the document, :data:`api.models.EXTRA_COMPONENTS`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic's TypedDict support needs it on Python 3.11

from notify import CHANNEL_TYPES, ChannelConfigError, validate_channel_config
from notify.checks import EVENT_KINDS

from . import (
    REQUEST_CONFIG,
    RequestModel,
    ResponseModel,
    component,
    component_schemas,
    invalid,
)
from .envelopes import envelope, page
from .types import Name, Timestamp, Uuid, one_of

__all__ = [
    "Channel",
    "ChannelAnswer",
    "ChannelCreate",
    "ChannelDeleted",
    "ChannelPage",
    "ChannelTestAnswer",
    "ChannelTestResult",
    "ChannelUpdate",
    "Delivery",
    "DeliveryPage",
    "config_schemas",
]

Schema = dict[str, Any]

# --------------------------------------------------------------------------- shared types

Id = Annotated[int, Field(ge=1)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]


# --------------------------------------------------------------------------- answers


class Channel(ResponseModel):
    """A notification channel."""

    id: Id
    uuid: Uuid
    name: Annotated[str, Field(max_length=100)]
    type: Annotated[str, one_of(*CHANNEL_TYPES)]
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
    event: Annotated[str, one_of(*EVENT_KINDS)]
    incident_uuid: Uuid | None
    incident_id: Id | None
    attempt: Annotated[int, Field(ge=1, description="1 for the first attempt of the delivery.")]
    at: Timestamp
    status: Annotated[
        str,
        one_of(
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
        one_of(
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
    status: Annotated[str, one_of("sent", "failed")]
    http_status: HttpStatus | None
    smtp_reply: str | None
    error: str | None
    latency_ms: float
    retryable: Annotated[
        bool,
        Field(description="Whether the failure looks temporary (a test is never retried)."),
    ]
    at: Timestamp


# --------------------------------------------------------------------------- config components


def config_component(kind: str) -> str:
    """The name of the component documenting a ``kind`` channel's ``config``."""
    return f"{kind.capitalize()}Config"


def config_schemas() -> dict[str, Schema]:
    """Per channel type, its model's schema: the type's own settings first (required ones
    first), then the filters; what else is accepted for a key, and which keys are secrets, in
    the description."""
    models = {config_component(k): (t.model, "validation") for k, t in CHANNEL_TYPES.items()}
    generated = component_schemas(models)  # type: ignore[arg-type]
    out: dict[str, Schema] = {}
    for kind, spec in CHANNEL_TYPES.items():
        schema = generated[config_component(kind)]
        properties = schema["properties"]
        schema["properties"] = {key: properties[key] for key in spec.order}
        description = f"`config` of a `{kind}` channel."
        also: dict[str, list[str]] = {}
        for name, key in spec.aliases.items():
            also.setdefault(key, []).append(f"`{name}`")
        if also:
            names = "; ".join(f"{', '.join(v)} for `{k}`" for k, v in also.items())
            description += f" Also accepted: {names}."
        if spec.secrets:
            secrets = ", ".join(f"`{k}`" for k in spec.order if k in spec.secrets)
            description += f" Secrets (`x-secret`), masked in answers: {secrets}."
        out[config_component(kind)] = {"description": description, **schema}
    return out


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
    __extra_components__ = staticmethod(config_schemas)

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


# --------------------------------------------------------------------------- envelopes

ChannelPage = page("ChannelPage", "channels", Channel, "Channels, oldest first.")
ChannelAnswer = envelope("ChannelAnswer", channel=Channel)
ChannelDeleted = envelope("ChannelDeleted", deleted=Literal[True], id=Id, uuid=Uuid)
DeliveryPage = page(
    "DeliveryPage", "deliveries", Delivery, "Attempts, newest first.", channel_id=Id
)
ChannelTestAnswer = envelope("ChannelTestAnswer", channel_id=Id, test=ChannelTestResult)


# --------------------------------------------------------------------------- the document


def _channel_create() -> Schema:
    variants = [
        {
            "type": "object",
            "title": f"{kind} channel",
            "required": ["name", "type", "config"],
            "properties": {
                "name": component("Name"),
                "type": {"const": kind},
                "config": component(config_component(kind)),
                "enabled": {"type": "boolean", "default": True},
            },
            "additionalProperties": False,
        }
        for kind in CHANNEL_TYPES
    ]
    return {
        "oneOf": variants,
        "description": "`type` is matched without regard to case. Unknown fields are refused, in "
        "the body and in `config`; a setting given as `null` is not set.",
    }
