"""Request helpers shared by every route: authentication, rate limits, body and query parsing."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from store import workspaces as ws_repo
from store.plans import is_active
from store.types import Workspace

from .errors import ApiError, error_middleware
from .ratelimit import FixedWindowLimiter
from .state import STATE, AppState

__all__ = [
    "HOT_PATH_PREFIXES",
    "Caller",
    "api_middleware",
    "authenticate",
    "choice_param",
    "int_param",
    "path_uuid",
    "read_json",
    "state",
]

log = logging.getLogger("floodwatch")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TOUCH_EVERY = timedelta(minutes=1)
_RATE_HEADERS = web.RequestKey("floodwatch_rate_headers", dict[str, str])
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Caller:
    workspace: Workspace
    token_id: uuid.UUID

    @property
    def ws_uuid(self) -> uuid.UUID:
        return self.workspace["uuid"]


def state(request: web.Request) -> AppState:
    return request.app[STATE]


def _client_key(request: web.Request) -> str:
    return request.remote or "unknown"


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def count_auth_failure(limiter: FixedWindowLimiter, client: str, now: float) -> None:
    """Count one failed authentication from ``client``: 429 ``rate_limited`` (with
    ``Retry-After``) once the address is over the limit. Deploy tokens, node keys and the
    /metrics token share the limit."""
    failures = limiter.hit(client, now)
    if not failures.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "too many failed authentication attempts; slow down",
            headers={"Retry-After": str(failures.retry_after(now))},
        )


async def authenticate(request: web.Request) -> Caller:
    """The workspace behind the request's deploy token, after rate limiting.

    Raises 401 (missing, wrong or revoked token), 429 (too many requests for this token, or too
    many failed attempts from this address) and 402 for writes without an active subscription."""
    st = state(request)
    now = st.clock.time()
    client = _client_key(request)
    token = _bearer(request)
    found = None
    if token is not None and len(token) <= 256:
        found = await st.store.run(ws_repo.authenticate_token, token)
    if found is None:
        # Only failures are limited: a client behind the same address (a proxy, a NAT) that
        # holds a valid token is never locked out by someone else's guessing.
        count_auth_failure(st.auth_failure_limiter, client, now)
        if token is None:
            raise ApiError(
                401, "unauthorized", "missing deploy token (Authorization: Bearer <token>)"
            )
        raise ApiError(401, "unauthorized", "invalid deploy token")
    workspace, token_id = found
    verdict = st.token_limiter.hit(str(token_id), now)
    request[_RATE_HEADERS] = verdict.headers()
    if not verdict.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {verdict.limit} requests per minute exceeded",
            headers={"Retry-After": str(verdict.retry_after(now))},
        )
    when = st.clock.now()
    last = st.token_last_touched.get(str(token_id))
    if last is None or when - last >= _TOUCH_EVERY:
        st.token_last_touched[str(token_id)] = when
        await st.store.run(ws_repo.touch_token, token_id, when)
    if request.method in WRITE_METHODS and not is_active(workspace["subscription_status"]):
        raise ApiError(
            402,
            "payment_required",
            f"the workspace subscription is {workspace['subscription_status']}; "
            "writes need an active subscription",
        )
    return Caller(workspace, token_id)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


HOT_PATH_PREFIXES = ("/api/v1/agent/", "/api/v1/telemetry/")
"""The agents' and telemetry senders' own calls (machine traffic, thousands a second)."""


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The app's one middleware (one layer, since every layer costs each of thousands of agent
    calls a second):

    - a REST request first writes the liveness the agents' calls noted in memory (at most a
      second's worth, one statement), so a heartbeat is visible to the very next read;
    - errors become the JSON envelope (``error_middleware``);
    - every answer of an authenticated request, errors too, gets the X-RateLimit-* headers;
    - after every successful write through the REST API (not the agents' and senders' own
      calls) the hot path's caches are cleared, so revoked keys, deleted nodes, new overrides
      and new commands apply to the very next agent call."""
    hot = request.path.startswith(HOT_PATH_PREFIXES)
    if not hot:
        activity = state(request).activity
        if activity is not None and activity.has_pending:
            # read your agents' writes: liveness noted in memory reaches the table first
            try:
                await activity.flush()
            except Exception:  # the request goes on; the periodic flush logs and retries
                log.exception("node activity update failed")
    response = await error_middleware(request, handler)
    headers = request.get(_RATE_HEADERS)
    if headers:
        response.headers.update(headers)
    if not hot and request.method in WRITE_METHODS and response.status < 400:
        state(request).control_changed()
    return response


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 invalid_json naming the problem."""
    raw = await request.read()  # bounded by the app's client_max_size (413 past it)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "invalid_json",
            f"request body must be a JSON object, not {type(body).__name__}",
        )
    return body


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    text = raw.strip()
    value = int(text) if _DIGITS.fullmatch(text) else None
    if value is None or not lo <= value <= hi:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be an integer from {lo} to {hi}", field=name
        )
    return value


def choice_param(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be one of {', '.join(choices)}", field=name
        )
    return raw


def node_param(request: web.Request) -> uuid.UUID | None:
    """The ``node`` query filter of a list (``node_filter`` declares it): a node UUID, or
    ``None`` when it is absent or empty."""
    raw = request.query.get("node")
    if not raw:
        return None
    node_uuid = parse_uuid(raw)
    if node_uuid is None:
        raise ApiError(400, "invalid_parameter", "node must be a node UUID", field="node")
    return node_uuid


def node_filter(items: str) -> dict[str, Any]:
    """The OpenAPI parameter read by ``node_param``, for a list of ``items``."""
    return {
        "name": "node",
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": {"type": "string", "format": "uuid"},
        "description": f"Only {items} of this node. An empty value means no filter.",
    }


def parse_uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def path_uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    """A UUID from the path; anything that is not one cannot name a resource, so 404."""
    value = parse_uuid(request.match_info[name])
    if value is None:
        raise ApiError(404, "not_found", f"{what} not found")
    return value
