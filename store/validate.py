"""Domain value checks shared by the repositories. Each raises ``InvalidValue`` naming the field."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import InvalidValue

__all__ = [
    "check_bool",
    "check_choice",
    "check_ip",
    "check_optional_text",
    "check_text",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_text(value: Any, field: str, max_len: int = 100) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidValue(f"{field} is required", field)
    if not isinstance(value, str):
        raise InvalidValue(f"{field} must be a string", field)
    text: str = value.strip()
    if len(text) > max_len:
        raise InvalidValue(f"{field} must be at most {max_len} characters", field)
    if _CONTROL.search(text):
        raise InvalidValue(f"{field} must not contain control characters", field)
    return text


def check_optional_text(value: Any, field: str, max_len: int = 100) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check_text(value, field, max_len)


def check_ip(value: Any, field: str = "ip") -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidValue(f"{field} is required", field)
    if not isinstance(value, str):
        raise InvalidValue(f"{field} must be a string holding an IPv4 or IPv6 address", field)
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidValue(f"{field} is not a valid IPv4 or IPv6 address", field) from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        raise InvalidValue(f"{field} must not carry an IPv6 zone index", field)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}"  # RFC 5952 section 5, on every Python version
    return addr.compressed


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidValue(f"{field} must be one of {', '.join(choices)}", field)
    return value


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"{field} must be true or false", field)
    return value
