"""Component schemas still written by hand (issue 12 moves each into a model of ``api/models``)."""

from __future__ import annotations

from .build import (
    TEXT_PATTERN,
    TIMESTAMP,
    UUID,
    Schema,
    obj,
)


def schemas() -> dict[str, Schema]:
    return {
        "Error": obj(
            {
                "ok": {"const": False},
                "error": obj(
                    {
                        "code": {"type": "string", "description": "Stable machine-readable code."},
                        "message": {"type": "string", "minLength": 1},
                        "field": {
                            "type": "string",
                            "description": "The parameter or body field at fault.",
                        },
                    },
                    optional=("field",),
                ),
            },
            description="The one error envelope of every failed request.",
        ),
        "Uuid": UUID,
        "Timestamp": TIMESTAMP,
        "Name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
            "description": "Surrounding whitespace is trimmed; at most 100 characters after "
            "that; no control characters.",
        },
        "OptionalText": {
            "type": ["string", "null"],
            "maxLength": 100,
            "pattern": TEXT_PATTERN,
            "description": "Trimmed; empty or null means unset.",
        },
        "IpAddress": {
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
            "type": "string",
            "description": "IPv4 or IPv6 address (no zone index).",
        },
        "Email": {
            "type": "string",
            "maxLength": 254,
            "pattern": r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$",
        },
    }


# --------------------------------------------------------------------------- parameters, headers
