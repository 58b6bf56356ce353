"""The twelve channel types of the hosted service and what each one's ``config`` must hold.

Each type declares its required and optional keys, which of them are secrets, and a check per
key. Unknown keys are refused (a typo would otherwise silently stop alerts); a few common
spellings are accepted as aliases and stored under the canonical key. Secrets are masked whenever a
channel is shown: the last four characters stay visible so people can tell two keys apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CHANNEL_TYPES",
    "FILTER_KEYS",
    "ChannelConfigError",
    "channel_settings",
    "mask_config",
    "validate_channel_config",
]

MAX_VALUE_LEN = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ChannelConfigError(ValueError):
    """The channel's config does not fit its type."""


Check = Callable[[str, Any], Any]


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ChannelConfigError(f"config.{key} must be a non-empty string")
    if len(value) > MAX_VALUE_LEN or _CONTROL.search(value):
        raise ChannelConfigError(f"config.{key} is too long or holds control characters")
    return value.strip()


def _url(https_only: bool) -> Check:
    def check(key: str, value: Any) -> str:
        text: str = _text(key, value)
        parts = urlsplit(text)
        schemes = ("https",) if https_only else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname:
            want = "an https:// URL" if https_only else "an http:// or https:// URL"
            raise ChannelConfigError(f"config.{key} must be {want}")
        return text

    return check


_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_TELEGRAM_TOKEN = re.compile(r"[0-9]{3,15}:[A-Za-z0-9_-]{20,64}")
_CHAT_ID = re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64}")


def _email(key: str, value: Any) -> str:
    text: str = _text(key, value)
    if not _EMAIL.fullmatch(text):
        raise ChannelConfigError(f"config.{key} must be an e-mail address")
    return text


def _phone(key: str, value: Any) -> str:
    text: str = _text(key, value).replace(" ", "").replace("-", "")
    if not _PHONE.fullmatch(text):
        raise ChannelConfigError(
            f"config.{key} must be a phone number in E.164 form (+15551234567)"
        )
    return text


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ChannelConfigError(f"config.{key} must be true or false")
    return value


def _choice(*choices: str) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ChannelConfigError(f"config.{key} must be one of {', '.join(choices)}")
        return str(value)

    return check


def _telegram_token(key: str, value: Any) -> str:
    text: str = _text(key, value)
    if not _TELEGRAM_TOKEN.fullmatch(text):
        raise ChannelConfigError(f"config.{key} must be a Telegram bot token (digits:letters)")
    return text


def _chat_id(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text: str = _text(key, value)
    if not _CHAT_ID.fullmatch(text):
        raise ChannelConfigError(f"config.{key} must be a numeric chat id or an @channel name")
    return text


def _headers(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 20:
        raise ChannelConfigError(f"config.{key} must be an object of at most 20 headers")
    out = {}
    for name, v in value.items():
        bad_value = not isinstance(v, str) or len(v) > 1024 or bool(_CONTROL.search(v))
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name) or bad_value:
            raise ChannelConfigError(f"config.{key} holds an invalid header")
        out[name] = v
    return out


_HEX = "[0-9a-fA-F]"
_UUID = re.compile(f"{_HEX}{{8}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{12}}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
SEVERITIES = ("low", "medium", "high", "critical")
EVENT_KINDS = ("attack_start", "attack_update", "attack_end", "test")


def _severity(key: str, value: Any) -> str:
    return str(_choice(*SEVERITIES)(key, value))


def _node_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 1000:
        raise ChannelConfigError(f"config.{key} must be a list of at most 1000 node uuids")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _UUID.fullmatch(item.strip()):
            raise ChannelConfigError(f"config.{key} must hold node uuids")
        text = item.strip().lower().replace("-", "")
        canonical = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
        if canonical not in out:
            out.append(canonical)
    return out


def _event_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or any(v not in EVENT_KINDS for v in value):
        raise ChannelConfigError(f"config.{key} must be a list of {', '.join(EVENT_KINDS)}")
    return [k for k in EVENT_KINDS if k in value]


def _mute(key: str, value: Any) -> dict[str, str]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, dict) or not set(value) <= {"from", "to", "tz"}:
        raise ChannelConfigError(f"config.{key} must be an object {{from, to, tz}}")
    out: dict[str, str] = {}
    for part in ("from", "to"):
        clock = value.get(part)
        if not isinstance(clock, str) or not _CLOCK.fullmatch(clock):
            raise ChannelConfigError(f"config.{key}.{part} must be a time of day HH:MM")
        out[part] = clock
    tz = value.get("tz", "UTC")
    try:
        if not isinstance(tz, str) or not tz or len(tz) > 64:
            raise ValueError(tz)
        ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        raise ChannelConfigError(f"config.{key}.tz must be UTC or an IANA time zone") from None
    out["tz"] = tz
    return out


FILTER_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "min_severity": _severity,
    "nodes": _node_list,
    "events": _event_list,
    "mute": _mute,
}
"""The per-channel filters every type accepts (see :func:`notify.events.passes_filters`)."""


@dataclass(frozen=True)
class ChannelType:
    required: dict[str, Check]
    optional: dict[str, Check] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    aliases: dict[str, str] = field(default_factory=dict)


_HTTPS = _url(https_only=True)
_HTTP = _url(https_only=False)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _service_url(key: str, value: Any) -> str:
    """An https:// URL; plain http:// only to this machine (a local relay, or a test)."""
    text = str(_HTTP(key, value))
    parts = urlsplit(text)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ChannelConfigError(f"config.{key} must be an https:// URL")
    return text


def _base_url(key: str, value: Any) -> str:
    """A service's base URL (http or https, no query or fragment), without a trailing slash."""
    text = str(_HTTP(key, value))
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ChannelConfigError(f"config.{key} must be a base URL without ?query or #fragment")
    return text.rstrip("/")


def _port(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ChannelConfigError(f"config.{key} must be a port number (1-65535)")
    return value


def _hours(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 720:
        raise ChannelConfigError(f"config.{key} must be a whole number of hours (1-720)")
    return value


def _int_id(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ChannelConfigError(f"config.{key} must be a non-negative integer")
    return value


def _host(key: str, value: Any) -> str:
    text = _text(key, value)
    if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]", text):
        raise ChannelConfigError(f"config.{key} must be a host name or address")
    return text


def _emails(key: str, value: Any) -> str:
    """One address, or several separated by commas (at most 20)."""
    text = _text(key, value)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or len(parts) > 20 or any(not _EMAIL.fullmatch(p) for p in parts):
        raise ChannelConfigError(
            f"config.{key} must be an e-mail address (or several, comma-separated)"
        )
    return ", ".join(parts)


def _tags(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 20:
        raise ChannelConfigError(f"config.{key} must be a list of at most 20 tags")
    out = []
    for tag in value:
        if not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9_.:/@-]{1,100}", tag):
            raise ChannelConfigError(
                f"config.{key} must hold tags of letters, digits and _ . : / @ - (1-100)"
            )
        out.append(tag)
    return out


def _sid(prefix: str) -> Check:
    def check(key: str, value: Any) -> str:
        text = _text(key, value)
        if not re.fullmatch(prefix + r"[0-9a-fA-F]{32}", text):
            raise ChannelConfigError(f"config.{key} must be {prefix} followed by 32 hex digits")
        return text

    return check


def _severity_map(key: str, value: Any) -> str:
    """``low=info,medium=warning,high=error,critical=critical`` (any subset), or ``default``."""
    text = _text(key, value)
    if text == "default":
        return text
    for pair in text.split(","):
        ours, _, theirs = pair.partition("=")
        if ours.strip() not in SEVERITIES or theirs.strip() not in (
            "critical",
            "error",
            "warning",
            "info",
        ):
            raise ChannelConfigError(
                f"config.{key} must look like high=error,critical=critical "
                "(ours: low, medium, high, critical; PagerDuty's: critical, error, warning, info)"
            )
    return text


def _pem(key: str, value: Any) -> str:
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        raise ChannelConfigError(f"config.{key} must be PEM text of one or more certificates")
    if len(value) > 65536:
        raise ChannelConfigError(f"config.{key} is too long")
    return value


CHANNEL_TYPES: dict[str, ChannelType] = {
    "discord": ChannelType(
        {"webhook_url": _service_url},
        {"username": _text, "avatar_url": _HTTPS, "mention_everyone": _bool},
        frozenset({"webhook_url"}),
        {"url": "webhook_url"},
    ),
    "slack": ChannelType(
        {"webhook_url": _service_url},
        {"username": _text, "icon": _text, "channel": _text, "mention_everyone": _bool},
        frozenset({"webhook_url"}),
        {"url": "webhook_url"},
    ),
    "email": ChannelType(
        {"email": _emails},
        {
            "name": _text,
            "smtp_host": _host,
            "smtp_port": _port,
            "security": _choice("starttls", "tls", "none"),
            "username": _text,
            "password": _text,
            "from": _email,
            "from_name": _text,
            "verify_tls": _bool,
            "ca_cert": _pem,
        },
        frozenset({"password"}),
        {"to": "email", "address": "email", "host": "smtp_host", "port": "smtp_port"},
    ),
    "sms": ChannelType(
        {"phone": _phone},
        {
            "account_sid": _sid("AC"),
            "auth_token": _text,
            "from": _phone,
            "messaging_service_sid": _sid("MG"),
            "api_url": _base_url,
        },
        frozenset({"auth_token"}),
        {"phone_number": "phone", "to": "phone", "from_number": "from"},
    ),
    "pagerduty": ChannelType(
        {"routing_key": _text},
        {"severity_map": _severity_map, "api_url": _base_url},
        frozenset({"routing_key"}),
        {"integration_key": "routing_key"},
    ),
    "opsgenie": ChannelType(
        {"api_key": _text},
        {
            "region": _choice("us", "eu"),
            "responders": _text,
            "tags": _tags,
            "api_url": _base_url,
        },
        frozenset({"api_key"}),
    ),
    "webhook": ChannelType(
        {"url": _HTTP},
        {"secret": _text, "headers": _headers},
        frozenset({"url", "secret", "headers"}),
        {"webhook_url": "url"},
    ),
    "teams": ChannelType(
        {"webhook_url": _service_url}, {}, frozenset({"webhook_url"}), {"url": "webhook_url"}
    ),
    "telegram": ChannelType(
        {"bot_token": _telegram_token, "chat_id": _chat_id},
        {"api_url": _base_url, "message_thread_id": _int_id, "silent": _bool},
        frozenset({"bot_token"}),
    ),
    "grafana": ChannelType(
        {"url": _HTTP},
        {"api_key": _text, "dashboard_uid": _text, "panel_id": _int_id, "tags": _tags},
        frozenset({"url", "api_key"}),
        {"webhook_url": "url", "token": "api_key"},
    ),
    "datadog": ChannelType(
        {"api_key": _text},
        {
            "site": _choice(
                "datadoghq.com",
                "us3.datadoghq.com",
                "us5.datadoghq.com",
                "datadoghq.eu",
                "ap1.datadoghq.com",
                "ap2.datadoghq.com",
                "ddog-gov.com",
            ),
            "tags": _tags,
            "api_url": _base_url,
        },
        frozenset({"api_key"}),
    ),
    "prometheus": ChannelType(
        {"url": _HTTP},
        {
            "username": _text,
            "password": _text,
            "bearer_token": _text,
            "firing_hours": _hours,
        },
        frozenset({"url", "password", "bearer_token"}),
        {"alertmanager_url": "url"},
    ),
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
    """The checked, canonical config for ``channel_type``; raises ChannelConfigError."""
    spec = CHANNEL_TYPES.get(channel_type)
    if spec is None:
        raise ChannelConfigError(f"type must be one of {', '.join(CHANNEL_TYPES)}")
    if not isinstance(config, dict):
        raise ChannelConfigError("config must be an object")
    canonical: dict[str, Any] = {}
    for key, value in config.items():
        target = str(spec.aliases.get(key, key))
        known = target in spec.required or target in spec.optional or target in FILTER_KEYS
        if not known:
            raise ChannelConfigError(f"config.{key} is not a setting of a {channel_type} channel")
        if target in canonical:
            raise ChannelConfigError(f"config.{target} is given twice")
        canonical[target] = value
    out: dict[str, Any] = {}
    for key, check in spec.required.items():
        if key not in canonical or canonical[key] is None:
            raise ChannelConfigError(f"config.{key} is required for a {channel_type} channel")
        out[key] = check(key, canonical[key])
    for key, check in {**spec.optional, **FILTER_KEYS}.items():
        if canonical.get(key) is not None:
            out[key] = check(key, canonical[key])
    return out


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
