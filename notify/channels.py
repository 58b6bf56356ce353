"""The twelve channel types of the hosted service and what each one's ``config`` must hold.

Each type's config is declared once, as a pydantic model (:class:`ChannelConfig` and one
subclass per type): its required and optional keys, the other names accepted for a key on input
(stored under the canonical key), which keys are secrets, and per key a check and the JSON
Schema documenting it. Unknown keys are refused (a typo would otherwise silently stop alerts).
Secrets are masked whenever a channel is shown: the last four characters stay visible so people
can tell two keys apart. ``api/models/channels.py`` documents the models in the OpenAPI document.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from . import checks
from .checks import EVENT_KINDS, MAX_VALUE_LEN, SEVERITIES, ChannelConfigError, Check

__all__ = [
    "CHANNEL_TYPES",
    "FILTER_KEYS",
    "SECRET",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelType",
    "channel_settings",
    "mask_config",
    "validate_channel_config",
]

# --------------------------------------------------------------------------- the declarations
# Each kind of value a setting takes is declared once: the check that validates it (in
# ``checks.py``) and the JSON Schema that documents it. Each channel type's config is declared
# once, as a model of such values below; the API validates with it and documents it
# (``api/models/channels.py``).

Schema = dict[str, Any]


class _Setting:
    """``Annotated`` metadata of a setting: ``check`` validates and canonicalises the value (its
    ``ChannelConfigError`` keeps its message), ``schema`` documents it."""

    def __init__(self, check: Check, schema: Schema) -> None:
        self.check = check
        self.schema = schema

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.with_info_plain_validator_function(self._run)

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Schema:
        return copy.deepcopy(self.schema)

    def _run(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        key = _key(str(info.field_name))
        try:
            return self.check(key, value)
        except ChannelConfigError as exc:
            raise PydanticCustomError(
                "channel_config", "{message}", {"message": str(exc)}
            ) from None


class _SecretMark:
    """``Annotated`` metadata of a secret setting: masked in answers (:func:`mask_config`) and
    redacted from error texts (``notify.http.secret_values``)."""

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Schema:
        out: Schema = handler(schema)
        out["x-secret"] = True
        return out


SECRET = _SecretMark()


def _key(field_name: str) -> str:
    """The config key of a model field (``from_`` holds ``from``, a Python keyword)."""
    return field_name.removesuffix("_")


_VISIBLE = r"[^\x00-\x1f\x7f-\x9f]"
_NOT_BLANK = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_HOST = r"[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?"
_ADDRESS = r"[^@\s,\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}"


def _string(pattern: str, description: str = "", **extra: Any) -> Schema:
    out: Schema = {"type": "string", "maxLength": MAX_VALUE_LEN, "pattern": pattern, **extra}
    if description:
        out["description"] = description
    return out


Text = Annotated[
    str,
    _Setting(checks.plain_text, _string(f"^{_VISIBLE}*{_NOT_BLANK}{_VISIBLE}*$", minLength=1)),
]
"""Text of 1-2048 characters, not blank, no control characters; stored trimmed."""
HttpsUrl = Annotated[str, _Setting(checks.HTTPS_URL, _string(f"^https://{_HOST}(/[!-~]*)?$"))]
HttpUrl = Annotated[str, _Setting(checks.HTTP_URL, _string(f"^https?://{_HOST}(/[!-~]*)?$"))]
ServiceUrl = Annotated[
    str,
    _Setting(
        checks.service_url,
        _string(
            rf"^(https://{_HOST}|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{{1,5}})?)"
            r"(/[!-~]*)?$",
            "An https:// URL (plain http:// only to this machine: localhost, 127.0.0.1, ::1).",
        ),
    ),
]
BaseUrl = Annotated[
    str,
    _Setting(
        checks.base_url,
        _string(
            f'^https?://{_HOST}(/[!-"$->@-~]*)?$',
            "The service's base URL, without ?query or #fragment (a trailing / is dropped); "
            "for a relay or a test double.",
        ),
    ),
]
Bool = Annotated[bool, _Setting(checks.boolean, {"type": "boolean"})]
Host = Annotated[
    str,
    _Setting(checks.host, _string(r"^([A-Za-z0-9.:_-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])$")),
]
Port = Annotated[int, _Setting(checks.port, {"type": "integer", "minimum": 1, "maximum": 65535})]
Hours = Annotated[int, _Setting(checks.hours, {"type": "integer", "minimum": 1, "maximum": 720})]
IntId = Annotated[
    int, _Setting(checks.int_id, {"type": "integer", "minimum": 0, "maximum": 2**31 - 1})
]
Email = Annotated[str, _Setting(checks.email, _string(f"^{_ADDRESS}$"))]
Emails = Annotated[
    str,
    _Setting(
        checks.emails,
        _string(
            f"^{_ADDRESS}(, ?{_ADDRESS}){{0,19}}$",
            "One e-mail address, or up to 20 separated by commas.",
        ),
    ),
]
Phone = Annotated[
    str,
    _Setting(
        checks.phone,
        _string(
            r"^\+[1-9]([ -]*[0-9]){6,14}$",
            "A phone number in E.164 form (+15551234567); spaces and dashes are removed.",
        ),
    ),
]
Tags = Annotated[
    list[str],
    _Setting(
        checks.tags,
        {
            "type": "array",
            "maxItems": 20,
            "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:/@-]{1,100}$"},
        },
    ),
]
Pem = Annotated[
    str,
    _Setting(
        checks.pem,
        {"type": "string", "maxLength": 65536, "pattern": "-----BEGIN CERTIFICATE-----"},
    ),
]
_HEADERS_SCHEMA: Schema = {
    "type": "object",
    "maxProperties": 20,
    "propertyNames": {"pattern": "^[A-Za-z0-9-]{1,64}$"},
    "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": f"^{_VISIBLE}*$"},
}
Headers = Annotated[dict[str, str], _Setting(checks.headers, _HEADERS_SCHEMA)]
_OURS = "(low|medium|high|critical)"
_THEIRS = "(critical|error|warning|info)"
_PAIR = f" *{_OURS} *= *{_THEIRS} *"
SeverityMap = Annotated[
    str,
    _Setting(
        checks.severity_map,
        _string(
            f"^(default|{_PAIR}(,{_PAIR})*)$",
            "Our severity to PagerDuty's, e.g. `high=error,critical=critical` (any subset), or "
            "`default`.",
        ),
    ),
]
TelegramToken = Annotated[
    str, _Setting(checks.telegram_token, _string("^[0-9]{3,15}:[A-Za-z0-9_-]{20,64}$"))
]
ChatId = Annotated[
    str,
    _Setting(
        checks.chat_id,
        {
            "oneOf": [
                {"type": "string", "pattern": "^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64})$"},
                {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1},
            ]
        },
    ),
]


def _choice_of(*choices: str) -> _Setting:
    return _Setting(checks.choice(*choices), {"type": "string", "enum": list(choices)})


_DATADOG_SITE = _choice_of(
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
)


def _sid_of(prefix: str) -> _Setting:
    return _Setting(checks.sid(prefix), _string(f"^{prefix}[0-9a-fA-F]{{32}}$"))


_CLOCK_SCHEMA: Schema = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
Severity = Annotated[str, _choice_of(*SEVERITIES)]
NodeList = Annotated[
    list[str],
    _Setting(
        checks.node_list,
        {
            "type": "array",
            "maxItems": 1000,
            "items": {"type": "string", "pattern": f"^{checks.UUID_PATTERN.pattern}$"},
        },
    ),
]
EventList = Annotated[
    list[str],
    _Setting(
        checks.event_list, {"type": "array", "items": {"type": "string", "enum": list(EVENT_KINDS)}}
    ),
]
MuteWindow = Annotated[
    dict[str, str],
    _Setting(
        checks.mute,
        {
            "type": "object",
            "required": ["from", "to"],
            "properties": {
                "from": _CLOCK_SCHEMA,
                "to": _CLOCK_SCHEMA,
                "tz": {"type": "string", "minLength": 1, "maxLength": 64},
            },
            "additionalProperties": False,
        },
    ),
]


def _also(*names: str) -> AliasChoices:
    """The field's key first, then the other names accepted for it on input."""
    return AliasChoices(*names)


class ChannelConfig(BaseModel):
    """What every channel type's ``config`` takes: the filters of
    :func:`notify.events.passes_filters`. A subclass per type adds the type's settings, required
    ones first; a field's ``validation_alias`` lists the other names accepted for it, and
    :data:`SECRET` marks a secret. ``null`` for a setting means it is not set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]

    min_severity: Annotated[
        Severity | None,
        Field(description="Only incidents of this severity or a higher one are sent."),
    ] = None
    nodes: Annotated[
        NodeList | None,
        Field(description="Only incidents of these nodes (at most 1000 node uuids) are sent."),
    ] = None
    events: Annotated[
        EventList | None, Field(description="Only these kinds of event are sent.")
    ] = None
    mute: Annotated[
        MuteWindow | None,
        Field(
            description="A daily window, `from` to `to` (HH:MM) in the time zone `tz` (an IANA "
            "name; UTC when left out), in which nothing is sent."
        ),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _canonical_keys(cls, config: Any) -> Any:
        """Every key to its canonical name (an unknown key, or one given twice under two names,
        is refused in the order the keys were sent); a ``null`` setting is left out."""
        if not isinstance(config, dict):
            raise _refused("config must be an object")
        names = _names(cls)
        canonical: dict[str, Any] = {}
        for key, value in config.items():
            target = names.get(key)
            if target is None:
                raise _refused(f"config.{key} is not a setting of a {cls.kind} channel")
            if target in canonical:
                raise _refused(f"config.{target} is given twice")
            canonical[target] = value
        return {key: value for key, value in canonical.items() if value is not None}


def _refused(message: str) -> PydanticCustomError:
    return PydanticCustomError("channel_config", "{message}", {"message": message})


def _names(model: type[ChannelConfig]) -> dict[str, str]:
    """Each name accepted on input, to the canonical key it stands for."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        key = _key(name)
        choices = info.validation_alias
        for alias in choices.choices if isinstance(choices, AliasChoices) else [key]:
            out[str(alias)] = key
    return out


FILTER_KEYS = tuple(ChannelConfig.model_fields)
"""The per-channel filters every type accepts (see :func:`notify.events.passes_filters`)."""


class DiscordConfig(ChannelConfig):
    kind: ClassVar[str] = "discord"
    webhook_url: Annotated[
        ServiceUrl,
        SECRET,
        Field(description="Incoming-webhook URL.", validation_alias=_also("webhook_url", "url")),
    ]
    username: Annotated[Text | None, Field(description="Name the messages are posted as.")] = None
    avatar_url: Annotated[HttpsUrl | None, Field(description="Avatar image URL.")] = None
    mention_everyone: Annotated[
        Bool | None, Field(description="Mention @everyone on a new attack.")
    ] = None


class SlackConfig(ChannelConfig):
    kind: ClassVar[str] = "slack"
    webhook_url: Annotated[
        ServiceUrl,
        SECRET,
        Field(description="Incoming-webhook URL.", validation_alias=_also("webhook_url", "url")),
    ]
    username: Annotated[Text | None, Field(description="Name the messages are posted as.")] = None
    icon: Annotated[Text | None, Field(description="Icon emoji (`:name:`) or image URL.")] = None
    channel: Annotated[Text | None, Field(description="Channel to post to (`#noc`).")] = None
    mention_everyone: Annotated[
        Bool | None, Field(description="Mention @channel on a new attack.")
    ] = None


class EmailConfig(ChannelConfig):
    kind: ClassVar[str] = "email"
    email: Annotated[
        Emails, Field(description="Recipients.", validation_alias=_also("email", "to", "address"))
    ]
    name: Annotated[Text | None, Field(description="Recipient name.")] = None
    smtp_host: Annotated[
        Host | None,
        Field(
            description="SMTP server for this channel (else the server's own settings).",
            validation_alias=_also("smtp_host", "host"),
        ),
    ] = None
    smtp_port: Annotated[
        Port | None,
        Field(description="SMTP port.", validation_alias=_also("smtp_port", "port")),
    ] = None
    security: Annotated[
        Annotated[str, _choice_of("starttls", "tls", "none")] | None,
        Field(description="How the SMTP connection is secured."),
    ] = None
    username: Annotated[Text | None, Field(description="SMTP login.")] = None
    password: Annotated[Text | None, SECRET, Field(description="SMTP password.")] = None
    from_: Annotated[
        Email | None,
        Field(description="Sender address.", validation_alias=_also("from")),
    ] = None
    from_name: Annotated[Text | None, Field(description="Sender name.")] = None
    verify_tls: Annotated[
        Bool | None, Field(description="false: the server's certificate is not checked.")
    ] = None
    ca_cert: Annotated[
        Pem | None,
        Field(description="PEM certificates to trust for the SMTP server (up to 64 KiB)."),
    ] = None


class SmsConfig(ChannelConfig):
    kind: ClassVar[str] = "sms"
    phone: Annotated[
        Phone,
        Field(description="Recipient.", validation_alias=_also("phone", "phone_number", "to")),
    ]
    account_sid: Annotated[
        Annotated[str, _sid_of("AC")] | None, Field(description="Twilio account SID.")
    ] = None
    auth_token: Annotated[Text | None, SECRET, Field(description="Twilio auth token.")] = None
    from_: Annotated[
        Phone | None,
        Field(description="Sender number.", validation_alias=_also("from", "from_number")),
    ] = None
    messaging_service_sid: Annotated[
        Annotated[str, _sid_of("MG")] | None,
        Field(description="Twilio messaging service SID (instead of a sender number)."),
    ] = None
    api_url: Annotated[BaseUrl | None, Field(description="Twilio API base URL.")] = None


class PagerdutyConfig(ChannelConfig):
    kind: ClassVar[str] = "pagerduty"
    routing_key: Annotated[
        Text,
        SECRET,
        Field(
            description="Events API v2 routing key.",
            validation_alias=_also("routing_key", "integration_key"),
        ),
    ]
    severity_map: Annotated[SeverityMap | None, Field(description="Severity mapping.")] = None
    api_url: Annotated[BaseUrl | None, Field(description="Events API base URL.")] = None


class OpsgenieConfig(ChannelConfig):
    kind: ClassVar[str] = "opsgenie"
    api_key: Annotated[Text, SECRET, Field(description="API key.")]
    region: Annotated[
        Annotated[str, _choice_of("us", "eu")] | None, Field(description="Opsgenie region.")
    ] = None
    responders: Annotated[Text | None, Field(description="Team to notify.")] = None
    tags: Annotated[Tags | None, Field(description="Tags of the alert.")] = None
    api_url: Annotated[BaseUrl | None, Field(description="Alert API base URL.")] = None


class WebhookConfig(ChannelConfig):
    kind: ClassVar[str] = "webhook"
    url: Annotated[
        HttpUrl,
        SECRET,
        Field(description="Where events are POSTed.", validation_alias=_also("url", "webhook_url")),
    ]
    secret: Annotated[Text | None, SECRET, Field(description="HMAC-SHA256 signing key.")] = None
    headers: Annotated[
        Headers | None, SECRET, Field(description="Extra request headers (at most 20).")
    ] = None


class TeamsConfig(ChannelConfig):
    kind: ClassVar[str] = "teams"
    webhook_url: Annotated[
        ServiceUrl,
        SECRET,
        Field(description="Incoming-webhook URL.", validation_alias=_also("webhook_url", "url")),
    ]


class TelegramConfig(ChannelConfig):
    kind: ClassVar[str] = "telegram"
    bot_token: Annotated[TelegramToken, SECRET, Field(description="Bot token.")]
    chat_id: Annotated[ChatId, Field(description="Numeric chat id or `@channel` name.")]
    api_url: Annotated[BaseUrl | None, Field(description="Bot API base URL.")] = None
    message_thread_id: Annotated[
        IntId | None, Field(description="Topic of a forum chat to post in.")
    ] = None
    silent: Annotated[Bool | None, Field(description="Send without a notification sound.")] = None


class GrafanaConfig(ChannelConfig):
    kind: ClassVar[str] = "grafana"
    url: Annotated[
        HttpUrl,
        SECRET,
        Field(description="Grafana URL.", validation_alias=_also("url", "webhook_url")),
    ]
    api_key: Annotated[
        Text | None,
        SECRET,
        Field(description="API key.", validation_alias=_also("api_key", "token")),
    ] = None
    dashboard_uid: Annotated[
        Text | None, Field(description="Dashboard the annotations belong to.")
    ] = None
    panel_id: Annotated[IntId | None, Field(description="Panel of that dashboard.")] = None
    tags: Annotated[Tags | None, Field(description="Tags of the annotations.")] = None


class DatadogConfig(ChannelConfig):
    kind: ClassVar[str] = "datadog"
    api_key: Annotated[Text, SECRET, Field(description="API key.")]
    site: Annotated[
        Annotated[str, _DATADOG_SITE] | None,
        Field(description="Datadog site."),
    ] = None
    tags: Annotated[Tags | None, Field(description="Tags of the events.")] = None
    api_url: Annotated[BaseUrl | None, Field(description="Events API base URL.")] = None


class PrometheusConfig(ChannelConfig):
    kind: ClassVar[str] = "prometheus"
    url: Annotated[
        HttpUrl,
        SECRET,
        Field(description="Alertmanager URL.", validation_alias=_also("url", "alertmanager_url")),
    ]
    username: Annotated[Text | None, Field(description="Basic-auth user.")] = None
    password: Annotated[Text | None, SECRET, Field(description="Basic-auth password.")] = None
    bearer_token: Annotated[Text | None, SECRET, Field(description="Bearer token.")] = None
    firing_hours: Annotated[
        Hours | None,
        Field(description="How long an alert stays firing without an update (1-720 hours)."),
    ] = None


@dataclass(frozen=True)
class ChannelType:
    """A channel type as code reads it, derived from its model: the canonical keys (required
    ones in the order they are checked), the secrets, and the other names accepted on input."""

    model: type[ChannelConfig]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    secrets: frozenset[str]
    aliases: dict[str, str]

    @classmethod
    def of(cls, model: type[ChannelConfig]) -> ChannelType:
        fields = {_key(n): f for n, f in model.model_fields.items()}
        own = [key for key in fields if key not in FILTER_KEYS]
        return cls(
            model=model,
            required=tuple(k for k in own if fields[k].is_required()),
            optional=tuple(k for k in own if not fields[k].is_required()),
            secrets=frozenset(k for k, f in fields.items() if SECRET in f.metadata),
            aliases={name: key for name, key in _names(model).items() if name != key},
        )

    @property
    def order(self) -> tuple[str, ...]:
        """The keys in the order they are checked (and stored): required, optional, filters."""
        return (*self.required, *self.optional, *FILTER_KEYS)


CHANNEL_TYPES: dict[str, ChannelType] = {
    model.kind: ChannelType.of(model)
    for model in (
        DiscordConfig,
        SlackConfig,
        EmailConfig,
        SmsConfig,
        PagerdutyConfig,
        OpsgenieConfig,
        WebhookConfig,
        TeamsConfig,
        TelegramConfig,
        GrafanaConfig,
        DatadogConfig,
        PrometheusConfig,
    )
}


def channel_settings(channel_type: str) -> dict[str, Any]:
    """The settings of ``channel_type``: required, optional and secret key names, the aliases
    accepted on input, and the filter keys every type takes. KeyError for an unknown type."""
    spec = CHANNEL_TYPES[channel_type]
    return {
        "required": list(spec.required),
        "optional": list(spec.optional),
        "secrets": sorted(spec.secrets),
        "aliases": dict(spec.aliases),
        "filters": list(FILTER_KEYS),
    }


def validate_channel_config(channel_type: str, config: Any) -> dict[str, Any]:
    """The checked, canonical config for ``channel_type`` (validated by its model); raises
    ChannelConfigError with the first problem: an unknown or doubled key in the order sent,
    else the first bad setting in :attr:`ChannelType.order`."""
    spec = CHANNEL_TYPES.get(channel_type)
    if spec is None:
        raise ChannelConfigError(f"type must be one of {', '.join(CHANNEL_TYPES)}")
    try:
        parsed = spec.model.model_validate(config)
    except ValidationError as exc:
        raise ChannelConfigError(_first_problem(spec, exc)) from None
    values = {_key(name): getattr(parsed, name) for name in spec.model.model_fields}
    return {key: values[key] for key in spec.order if values[key] is not None}


def _first_problem(spec: ChannelType, exc: ValidationError) -> str:
    rank = {key: i for i, key in enumerate(spec.order)}
    errors = exc.errors(include_url=False)
    first = min(errors, key=lambda e: rank.get(_key(str(e["loc"][0])), -1) if e["loc"] else -1)
    if first["type"] == "missing":
        return f"config.{first['loc'][0]} is required for a {spec.model.kind} channel"
    return str(first["msg"])


def _mask_value(value: str) -> str:
    """Never the whole secret: a URL keeps its scheme and host (which service it points at
    helps), anything else at most its last four characters, and only when it is long."""
    host = None
    try:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            host = parts.hostname
    except ValueError:
        host = None
    tail = value[-4:] if len(value) >= 16 else ""
    if host:
        masked = f"{parts.scheme}://{host}/****{tail}"
        if value not in masked and value.rstrip("/") not in masked:
            return masked
        return f"{parts.scheme}://****"
    return "****" + tail


def mask_config(channel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    spec = CHANNEL_TYPES.get(channel_type)
    secrets = spec.secrets if spec else frozenset(config)
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in secrets:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = {k: "****" for k in value}
        else:
            out[key] = _mask_value(str(value))
    return out
