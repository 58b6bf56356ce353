"""The checks of channel config values: each takes the config key and the value, returns the value
in its canonical form, or raises :class:`ChannelConfigError` with the message the API answers
with. ``notify.channels`` builds each channel type's config model from them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

MAX_VALUE_LEN = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ChannelConfigError(ValueError):
    """The channel's config does not fit its type."""


Check = Callable[[str, Any], Any]


def plain_text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ChannelConfigError(f"config.{key} must be a non-empty string")
    if len(value) > MAX_VALUE_LEN or _CONTROL.search(value):
        raise ChannelConfigError(f"config.{key} is too long or holds control characters")
    return value.strip()


def _url(https_only: bool) -> Check:
    def check(key: str, value: Any) -> str:
        text: str = plain_text(key, value)
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


def email(key: str, value: Any) -> str:
    text: str = plain_text(key, value)
    if not _EMAIL.fullmatch(text):
        raise ChannelConfigError(f"config.{key} must be an e-mail address")
    return text


def phone(key: str, value: Any) -> str:
    text: str = plain_text(key, value).replace(" ", "").replace("-", "")
    if not _PHONE.fullmatch(text):
        raise ChannelConfigError(
            f"config.{key} must be a phone number in E.164 form (+15551234567)"
        )
    return text


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ChannelConfigError(f"config.{key} must be true or false")
    return value


def choice(*choices: str) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ChannelConfigError(f"config.{key} must be one of {', '.join(choices)}")
        return str(value)

    return check


def telegram_token(key: str, value: Any) -> str:
    text: str = plain_text(key, value)
    if not _TELEGRAM_TOKEN.fullmatch(text):
        raise ChannelConfigError(f"config.{key} must be a Telegram bot token (digits:letters)")
    return text


def chat_id(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text: str = plain_text(key, value)
    if not _CHAT_ID.fullmatch(text):
        raise ChannelConfigError(f"config.{key} must be a numeric chat id or an @channel name")
    return text


def headers(key: str, value: Any) -> dict[str, str]:
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
UUID_PATTERN = re.compile(f"{_HEX}{{8}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{12}}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
SEVERITIES = ("low", "medium", "high", "critical")
EVENT_KINDS = ("attack_start", "attack_update", "attack_end", "test")


def node_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 1000:
        raise ChannelConfigError(f"config.{key} must be a list of at most 1000 node uuids")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not UUID_PATTERN.fullmatch(item.strip()):
            raise ChannelConfigError(f"config.{key} must hold node uuids")
        text = item.strip().lower().replace("-", "")
        canonical = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
        if canonical not in out:
            out.append(canonical)
    return out


def event_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or any(v not in EVENT_KINDS for v in value):
        raise ChannelConfigError(f"config.{key} must be a list of {', '.join(EVENT_KINDS)}")
    return [k for k in EVENT_KINDS if k in value]


def mute(key: str, value: Any) -> dict[str, str]:
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


HTTPS_URL = _url(https_only=True)
HTTP_URL = _url(https_only=False)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def service_url(key: str, value: Any) -> str:
    """An https:// URL; plain http:// only to this machine (a local relay, or a test)."""
    text = str(HTTP_URL(key, value))
    parts = urlsplit(text)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ChannelConfigError(f"config.{key} must be an https:// URL")
    return text


def base_url(key: str, value: Any) -> str:
    """A service's base URL (http or https, no query or fragment), without a trailing slash."""
    text = str(HTTP_URL(key, value))
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ChannelConfigError(f"config.{key} must be a base URL without ?query or #fragment")
    return text.rstrip("/")


def port(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ChannelConfigError(f"config.{key} must be a port number (1-65535)")
    return value


def hours(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 720:
        raise ChannelConfigError(f"config.{key} must be a whole number of hours (1-720)")
    return value


def int_id(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ChannelConfigError(f"config.{key} must be a non-negative integer")
    return value


def host(key: str, value: Any) -> str:
    text = plain_text(key, value)
    if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]", text):
        raise ChannelConfigError(f"config.{key} must be a host name or address")
    return text


def emails(key: str, value: Any) -> str:
    """One address, or several separated by commas (at most 20)."""
    text = plain_text(key, value)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or len(parts) > 20 or any(not _EMAIL.fullmatch(p) for p in parts):
        raise ChannelConfigError(
            f"config.{key} must be an e-mail address (or several, comma-separated)"
        )
    return ", ".join(parts)


def tags(key: str, value: Any) -> list[str]:
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


def sid(prefix: str) -> Check:
    def check(key: str, value: Any) -> str:
        text = plain_text(key, value)
        if not re.fullmatch(prefix + r"[0-9a-fA-F]{32}", text):
            raise ChannelConfigError(f"config.{key} must be {prefix} followed by 32 hex digits")
        return text

    return check


def severity_map(key: str, value: Any) -> str:
    """``low=info,medium=warning,high=error,critical=critical`` (any subset), or ``default``."""
    text = plain_text(key, value)
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


def pem(key: str, value: Any) -> str:
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        raise ChannelConfigError(f"config.{key} must be PEM text of one or more certificates")
    if len(value) > 65536:
        raise ChannelConfigError(f"config.{key} is too long")
    return value
