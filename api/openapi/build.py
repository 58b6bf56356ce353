"""Building blocks of the OpenAPI document: schema helpers, the shared parameters, headers and
error answers of ``#/components``, and the answer helpers operations use."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

MAX_OFFSET = 1_000_000_000

# --------------------------------------------------------------------------- schema helpers


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


UUID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}
TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
    "description": "UTC, ISO 8601, whole seconds.",
    "examples": ["2026-08-01T09:00:00Z"],
}
# components that nullable fields copy inline, so that null is a plain type-array member
INLINE = {"Uuid": UUID, "Timestamp": TIMESTAMP}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null, as a type array (``["string", "null"]``) wherever possible."""
    name = schema.get("$ref", "").rpartition("/")[2]
    if name in INLINE:
        schema = INLINE[name]
    if "type" not in schema or "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    out = {**schema, "type": [*([kind] if isinstance(kind, str) else kind), "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), **extra: Any) -> Schema:
    """A closed object whose properties are all required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def envelope(properties: dict[str, Schema], **extra: Any) -> Schema:
    return obj({"ok": {"const": True}, **properties}, **extra)


def integer(minimum: int = 0, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, **extra}


NUMBER: Schema = {"type": "number"}
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
HEX64: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def page(key: str, item: str, description: str) -> Schema:
    return envelope(
        {
            key: {"type": "array", "items": ref(item), "description": description},
            "total": integer(description="Number of matching items across all pages."),
            "limit": integer(1, maximum=100, description="The page size used."),
            "offset": integer(maximum=MAX_OFFSET, description="The offset used."),
        }
    )


# --------------------------------------------------------------------------- component schemas


def parameters() -> dict[str, Any]:
    def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": description,
        }

    def path(name: str, schema: Schema, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schema,
            "description": description,
        }

    either_id: Schema = {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
            {"type": "string", "format": "uuid"},
        ]
    }
    return {
        "Limit": query("limit", integer(1, maximum=100, default=50), "Page size."),
        "ChannelLimit": query("limit", integer(1, maximum=100, default=100), "Page size."),
        "Offset": query("offset", integer(maximum=MAX_OFFSET, default=0), "Items to skip."),
        "NodeUuid": path("uuid", {"type": "string", "format": "uuid"}, "The node's UUID."),
        "WorkspaceUuid": path(
            "uuid", {"type": "string", "format": "uuid"}, "The sub-workspace's UUID."
        ),
        "CollectorId": path("id", {"type": "string", "format": "uuid"}, "The key's `id`."),
        "IncidentRef": path("ref", either_id, "The incident's integer `id` or its UUID."),
        "ChannelRef": path("id", either_id, "The channel's integer `id` or its UUID."),
    }


RATE_HEADERS: dict[str, tuple[str, Schema]] = {
    "X-RateLimit-Limit": ("Requests allowed per minute for this deploy token.", integer(1)),
    "X-RateLimit-Remaining": ("Requests left in the current one-minute window.", integer()),
    "X-RateLimit-Reset": ("Unix time at which the current window ends.", integer()),
}


def headers() -> dict[str, Any]:
    headers: dict[str, Any] = {
        name: {"description": text, "required": True, "schema": schema}
        for name, (text, schema) in RATE_HEADERS.items()
    }
    headers["Retry-After"] = {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": integer(1),
    }
    headers["Allow"] = {
        "description": "The methods the path supports.",
        "required": True,
        "schema": {"type": "string"},
    }
    return headers


def rate_headers(*, required: bool = True) -> dict[str, Any]:
    """The X-RateLimit-* headers. Every answer to a request whose deploy token was recognised
    carries them: always on success, on an error only if it came after that check."""
    if required:
        return {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_HEADERS}
    return {
        name: {
            "description": f"{text} Present once the deploy token was checked.",
            "schema": schema,
        }
        for name, (text, schema) in RATE_HEADERS.items()
    }


# --------------------------------------------------------------------------- responses


def error_answer(description: str, codes: tuple[str, ...], **headers: Any) -> dict[str, Any]:
    code: Schema = {"const": codes[0]} if len(codes) == 1 else {"enum": list(codes)}
    schema = {
        "allOf": [
            ref("Error"),
            {"properties": {"error": {"properties": {"code": code}}}},
        ]
    }
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def responses() -> dict[str, Any]:
    rate = rate_headers(required=False)

    def header(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/headers/{name}"}

    return {
        "BadRequest": error_answer(
            "A query parameter or body field is missing or wrong (`invalid_parameter`, with "
            "`field`), or the body is not a JSON object (`invalid_json`).",
            ("invalid_parameter", "invalid_json"),
            **rate,
        ),
        "InvalidBatch": error_answer(
            "The batch or a telemetry header is malformed; `field` names the bad column when "
            "there is one. Do not resend it.",
            ("invalid_batch",),
        ),
        "Unauthorized": error_answer(
            "The token or key is missing, wrong or revoked.", ("unauthorized",)
        ),
        "PaymentRequired": error_answer(
            "Writes need an active (or trialing) subscription; creating a node also needs a free "
            "slot under the plan's node limit.",
            ("payment_required",),
            **rate,
        ),
        "Forbidden": error_answer(
            "Authenticated but not allowed: sub-workspaces are managed with a top-level "
            "workspace's token only; a node key may only send its own node's rows.",
            ("forbidden",),
            **rate,
        ),
        "NotFound": error_answer(
            "No such resource in the caller's workspace.",
            ("not_found",),
            **rate,
        ),
        "MethodNotAllowed": error_answer(
            "The path exists but not with this method; `Allow` lists the methods it has.",
            ("method_not_allowed",),
            Allow=header("Allow"),
        ),
        "Conflict": error_answer(
            'The name (or e-mail) is already in use; the message says "already exists".',
            ("conflict",),
            **rate,
        ),
        "PayloadTooLarge": error_answer(
            "The body is too large: over `api.max_body_bytes` (1 MiB) for JSON; over "
            "`ingest.max_body_bytes` (64 MiB) or `ingest.max_batch_rows` rows for telemetry.",
            ("payload_too_large",),
            **rate,
        ),
        "UnsupportedMediaType": error_answer(
            "The Content-Type is not the one the operation takes.",
            ("unsupported_media_type",),
        ),
        "RateLimited": error_answer(
            "Too many requests for this token (X-RateLimit-* tell the window), or too many "
            "failed authentications from this address.",
            ("rate_limited",),
            **{"Retry-After": header("Retry-After"), **rate},
        ),
        "InternalError": error_answer(
            "A bug. The message carries a request id that the server's log also records.",
            ("internal_error",),
            **rate,
        ),
        "Unavailable": error_answer(
            "Overloaded, or the database is not available. Retry later; after `Retry-After` "
            "seconds when given. The code is `unavailable`, except on ftagent's endpoints when "
            "the database writer is too far behind: `overloaded`.",
            ("unavailable", "overloaded"),
            **{
                "Retry-After": {
                    "description": "Seconds to wait; sent when the server sheds load.",
                    "schema": integer(1),
                },
                **rate,
            },
        ),
    }


def ok_answer(description: str, schema: Schema, *, authenticated: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if authenticated:
        response["headers"] = rate_headers()
    return response


def error_answers(*statuses: int) -> dict[str, Any]:
    """Error answers of a deploy-token operation: ``statuses`` plus those every one can give."""
    wanted = sorted({*statuses, 401, 429, 500, 503})
    return {str(s): {"$ref": f"#/components/responses/{ERROR_RESPONSES[s]}"} for s in wanted}


ERROR_RESPONSES = {
    400: "BadRequest",
    401: "Unauthorized",
    402: "PaymentRequired",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "RateLimited",
    500: "InternalError",
    503: "Unavailable",
}


# --------------------------------------------------------------------------- paths


def param_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def json_body(schema: str, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": ref(schema)}},
    }


def query_filter(
    name: str, values: tuple[str, ...] | list[str], description: str
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": {"type": "string", "enum": list(values)},
        "description": f"{description} An empty value means no filter.",
    }


# --------------------------------------------------------------------------- shared components


def shared_schemas() -> dict[str, Schema]:
    """The components the models refer to by name (``api.models.component``) rather than
    declare: the error envelope every failed request answers with, and the value types
    ``Uuid``, ``Timestamp``, ``Name``, ``OptionalText``, ``IpAddress``, ``Email``. Their rules
    are enforced by the checks of ``store.validate``; these schemas document them."""
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
