"""API errors and the one middleware that turns every failure into the JSON error envelope.

``{"ok": false, "error": {"code": "...", "message": "..."}}`` with a stable code per status:

=====  ======================  ==============================================================
400    invalid_parameter       a query parameter or body field is missing or wrong (``field``)
400    invalid_json            the body is not a JSON object
400    invalid_batch           a binary telemetry batch is malformed (``field`` names the column)
401    unauthorized            token missing, wrong or revoked
402    payment_required        subscription inactive, or the plan's node limit is reached
403    forbidden               authenticated, but not allowed (e.g. nested sub-workspaces)
404    not_found               no such resource in the caller's workspace, or no such endpoint
405    method_not_allowed      the path exists, the method does not
409    conflict                a name or e-mail already exists
413    payload_too_large       the body is larger than ``api.max_body_bytes``
415    unsupported_media_type  a binary telemetry body without the Arrow stream Content-Type
429    rate_limited            too many requests; see ``Retry-After``
500    internal_error          a bug; logged with a request id, never with request data
503    unavailable             overloaded or starting: retry after ``Retry-After`` seconds
=====  ======================  ==============================================================
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from ingest.errors import Backpressure, DecodeError
from notify import ChannelConfigError
from store import errors as store_errors

__all__ = ["ApiError", "error_middleware", "json_bytes", "json_response"]

log = logging.getLogger("floodwatch.api")

_JSON_OPTS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS | orjson.OPT_NON_STR_KEYS


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def json_bytes(payload: Any) -> bytes:
    """The JSON text every answer uses (UTC times with Z, no microseconds)."""
    return orjson.dumps(payload, option=_JSON_OPTS)


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json_bytes(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: ApiError) -> web.Response:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.field is not None:
        body["field"] = err.field
    return json_response({"ok": False, "error": body}, err.status, err.headers)


def _from_store(exc: store_errors.StoreError) -> ApiError:
    if isinstance(exc, store_errors.NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, store_errors.Conflict):
        return ApiError(409, "conflict", str(exc))
    if isinstance(exc, store_errors.InvalidValue):
        return ApiError(400, "invalid_parameter", str(exc), field=exc.field)
    if isinstance(exc, store_errors.LimitReached | store_errors.SubscriptionInactive):
        return ApiError(402, "payment_required", str(exc))
    if isinstance(exc, store_errors.Forbidden):
        return ApiError(403, "forbidden", str(exc))
    return ApiError(503, "unavailable", "the database is not available")


_HTTP_CODES = {
    400: "invalid_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except store_errors.StoreError as exc:
        return error_response(_from_store(exc))
    except DecodeError as exc:
        code = {403: "forbidden", 413: "payload_too_large"}.get(exc.status, "invalid_batch")
        return error_response(ApiError(exc.status, code, str(exc), field=exc.column))
    except Backpressure as exc:
        return error_response(
            ApiError(
                503, "unavailable", str(exc), headers={"Retry-After": str(exc.retry_after_secs)}
            )
        )
    except ChannelConfigError as exc:
        return error_response(ApiError(400, "invalid_parameter", str(exc), field="config"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"no endpoint {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            message = "request body is too large"
        else:
            message = exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        code = _HTTP_CODES.get(exc.status, "invalid_parameter" if exc.status < 500 else "error")
        return error_response(ApiError(exc.status, code, message, headers=headers))
    except Exception:
        request_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error request_id=%s path=%s", request_id, request.path)
        return error_response(
            ApiError(500, "internal_error", f"internal error (request id {request_id})")
        )
