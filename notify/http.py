"""One HTTP request to a service, turned into an :class:`~notify.events.Attempt`.

Shared by every HTTP sender: no redirects are followed (a redirect would carry auth headers to
a host the user never configured, and a moved endpoint is a configuration problem), 2xx is
success, 408/425/429/5xx are worth retrying, any other answer is not. Error texts are built
here from the status and the service's own error message, with every secret of the channel
replaced by ``****``; exception texts that may hold a URL are never passed through.
"""

from __future__ import annotations

import errno
import math
import ssl
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from .events import Attempt, current_clock

__all__ = [
    "USER_AGENT",
    "HttpResult",
    "describe_error",
    "dumps",
    "is_tls_error",
    "parse_retry_after",
    "redact",
    "request",
    "secret_values",
]

USER_AGENT = "Floodwatch-Alerts/1.0"
_RETRYABLE_4XX = frozenset({408, 425, 429})
_ERROR_TEXT_MAX = 300
_BODY_MAX = 65536


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_json_safe(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    # lone surrogates are no UTF-8: replaced rather than refused
    return str(value).encode("utf-8", "replace").decode("utf-8")


def dumps(body: Any) -> bytes:
    """``body`` as JSON bytes, whatever an incident holds (integers past 64 bits become
    strings, non-finite floats null, lone surrogates ``?``, unknown objects their text)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return orjson.dumps(_json_safe(body))


def secret_values(channel_type: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    """The secrets of a channel's config (and their telling parts), longest first.

    A secret URL also contributes its path, its query and each long path segment, since an
    error text may quote any of them on its own.
    """
    from .channels import CHANNEL_TYPES

    spec = CHANNEL_TYPES.get(channel_type)
    keys: Iterable[str] = spec.secrets if spec is not None else config.keys()
    out: set[str] = set()
    for key in keys:
        value = config.get(key)
        values = [str(v) for v in value.values()] if isinstance(value, Mapping) else [value]
        for item in values:
            if not isinstance(item, str):
                continue
            out.add(item)
            parts = urlsplit(item)
            if parts.scheme in ("http", "https"):
                if parts.path not in ("", "/"):
                    out.add(parts.path)
                    out.update(seg for seg in parts.path.split("/") if len(seg) >= 8)
                if parts.query:
                    out.add(parts.query)
    return tuple(sorted((s for s in out if len(s) >= 4), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (also URL-encoded) replaced by ``****``."""
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote(secret)):
            if form in text:
                text = text.replace(form, "****")
    return text


def is_tls_error(exc: BaseException) -> bool:
    """Whether a failure is the server's certificate or TLS setup: no retry fixes that."""
    return isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError))


def describe_error(exc: BaseException, secrets: Iterable[str]) -> str:
    """A short, secret-free text for a network-level failure."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return redact(f"the TLS certificate of {exc.host}:{exc.port} is not trusted", secrets)
    if isinstance(exc, aiohttp.ClientSSLError):
        return redact(f"TLS with {exc.host}:{exc.port} failed", secrets)
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or 'handshake'})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        reason = "connection refused" if os_error.errno == errno.ECONNREFUSED else "cannot connect"
        text = f"{reason} to {exc.host}:{exc.port}"
        if os_error.strerror and reason == "cannot connect":
            text += f" ({os_error.strerror})"
        return redact(text, secrets)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer's body was malformed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad answer (HTTP {exc.status})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "the configured URL is not valid"
    if isinstance(exc, OSError):
        return redact(f"network error: {exc.strerror or type(exc).__name__}", secrets)
    return f"request failed ({type(exc).__name__})"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (counted
    from ``now``, by default the attempt's clock: :func:`notify.events.current_clock`)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or current_clock().now())).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _service_message(body: bytes) -> str:
    """The error message a service put in its answer, or the start of the answer's text."""
    text = body[:4096].decode("utf-8", "replace")
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, Mapping):
        parts = []
        for key in ("message", "description", "error", "errors", "status", "result", "took"):
            value = data.get(key)
            if value in (None, "", [], {}) or key == "took":
                continue
            if isinstance(value, (list, Mapping)):
                value = orjson.dumps(value).decode()
            parts.append(f"{key}: {value}")
            if len(parts) == 2:
                break
        if parts:
            text = "; ".join(parts)
    text = " ".join(text.split())
    return text[:_ERROR_TEXT_MAX]


class HttpResult:
    """The attempt and, when the service answered, its status and parsed JSON body."""

    __slots__ = ("attempt", "body", "data")

    def __init__(self, attempt: Attempt, body: bytes = b"") -> None:
        self.attempt = attempt
        self.body = body
        try:
            self.data: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            self.data = None


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    secrets: Iterable[str],
    *,
    body: bytes | None = None,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    success: frozenset[int] | None = None,
) -> HttpResult:
    """Send one request; network failures are left to :func:`notify.events.deliver`.

    ``success`` narrows the statuses that count as delivered (default: any 2xx).
    """
    sent_headers = {"User-Agent": USER_AGENT}
    if body is not None:
        sent_headers["Content-Type"] = content_type
    sent_headers.update(headers or {})
    async with session.request(
        method,
        url,
        data=body,
        headers=sent_headers,
        params=params,
        allow_redirects=False,
    ) as resp:
        # only the start of an answer matters (an id, an error message); a service sending
        # megabytes cannot make an attempt hold them
        raw = await resp.content.read(_BODY_MAX)
        status = resp.status
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    ok = (status in success) if success is not None else 200 <= status < 300
    if ok:
        return HttpResult(Attempt(ok=True, latency_ms=0.0, http_status=status), raw)
    if 300 <= status < 400:
        error = f"HTTP {status}: the endpoint redirects; configure its final URL"
        retryable = False
    else:
        message = _service_message(raw)
        error = f"HTTP {status}" + (f": {message}" if message else "")
        retryable = status >= 500 or status in _RETRYABLE_4XX or status < 200
    if status not in (429, 503):
        retry_after = None
    return HttpResult(
        Attempt(
            ok=False,
            latency_ms=0.0,
            http_status=status,
            error=redact(error, secrets),
            retryable=retryable,
            retry_after=retry_after,
        ),
        raw,
    )
