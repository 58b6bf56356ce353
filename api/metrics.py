"""The server's own ``GET /metrics``: one process-wide ``prometheus_client`` registry, and who may
read it.

Exposition: ``REGISTRY`` holds one collector that reads the pipeline's metrics
(``ingest.metrics.METRICS``) and the alert dispatcher's (``api.dispatcher.ALERT_METRICS``) when
scraped and turns each into a metric family of the same name, type, labels and help text; the
text is ``prometheus_client``'s own (``generate_latest``, ``CONTENT_TYPE_LATEST``). The values
stay plain thread-safe counters in their packages, so ingest never imports from ``api``. (The
per-workspace ``GET /api/metrics`` is another endpoint with its own registry per request.)

Access (the server listens publicly for agents, and the counters show the whole server's
traffic): a request whose socket peer is a loopback address (127.0.0.0/8, ::1, or either as an
IPv4-mapped IPv6 address) and that carries no proxy header (``Forwarded``, ``X-Forwarded-For``,
``X-Real-IP``: a reverse proxy on the same machine connects from loopback on behalf of anyone)
is answered. Any other request needs ``Authorization: Bearer <server.metrics_token>``:

- no token configured: 403 ``forbidden`` (nothing the caller can send would help; the message
  names the setting). Not 404: the path is public knowledge (the OpenAPI document lists it), and
  an operator whose scraper sees 404 would look for a wrong URL instead of the missing setting;
- token configured, header missing or wrong: 401 ``unauthorized``; these failures count against
  ``api.auth_failures_per_minute`` for the peer address, past which it gets 429.

The peer is the connected socket's address, never a forwarding header (no proxy is trusted to
name the client). The token is compared in constant time (of SHA-256 digests, so not even its
length leaks) and never logged; the access log writes the path only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Iterator, Mapping

from aiohttp import web
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.core import Metric as Family
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ingest.metrics import METRICS, Counter, Gauge, Histogram, Metric, MetricSet

from .dispatcher import ALERT_METRICS
from .errors import ApiError
from .http import count_auth_failure, state
from .openapi.build import error_answer
from .openapi.operations import Route, answer, operation

__all__ = [
    "PROXY_HEADERS",
    "REGISTRY",
    "MetricSetCollector",
    "exposition",
    "is_loopback",
    "metrics_handler",
    "metrics_refusal",
]

PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
"""Headers a reverse proxy adds: a loopback request carrying one came from elsewhere."""


def _family(metric: Metric) -> Family:
    if isinstance(metric, Counter):
        counter = CounterMetricFamily(metric.name, metric.doc, labels=metric.labels)
        for labels, value in metric.samples():
            counter.add_metric(labels, value)
        return counter
    if isinstance(metric, Gauge):
        return GaugeMetricFamily(metric.name, metric.doc, value=metric.value())
    if isinstance(metric, Histogram):
        snap = metric.snapshot()
        # the bounds are written as before (``%g``), so the le series stay the same ones
        buckets = [(f"{bound:g}", float(n)) for bound, n in snap.buckets]
        buckets.append(("+Inf", float(snap.count)))
        return HistogramMetricFamily(metric.name, metric.doc, buckets=buckets, sum_value=snap.sum)
    raise TypeError(f"no exposition for {type(metric).__name__} {metric.name}")


class MetricSetCollector(Collector):
    """Reads metric sets at scrape time (and once at registration, to check the names)."""

    def __init__(self, sets: Iterable[MetricSet]) -> None:
        self.sets = tuple(sets)

    def collect(self) -> Iterator[Family]:
        for metric_set in self.sets:
            for metric in metric_set.metrics():
                yield _family(metric)


REGISTRY = CollectorRegistry(auto_describe=True)
"""The process-wide registry behind ``/metrics`` (a duplicate name fails at registration)."""
REGISTRY.register(MetricSetCollector([METRICS, ALERT_METRICS]))


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)


def is_loopback(peer: str | None) -> bool:
    """``peer`` (a socket's address) is 127.0.0.0/8 or ::1, also as ::ffff:127.x.y.z."""
    if not peer:
        return False
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def metrics_refusal(peer: str | None, headers: Mapping[str, str], token: str) -> ApiError | None:
    """Why a ``/metrics`` request from socket peer ``peer`` with ``headers`` is refused, given
    the configured ``server.metrics_token`` (empty: none); ``None``: answer it."""
    named = {k.lower(): v for k, v in headers.items()}
    if is_loopback(peer) and not any(h.lower() in named for h in PROXY_HEADERS):
        return None
    if not token:
        return ApiError(
            403,
            "forbidden",
            "/metrics answers loopback addresses only; to scrape it from elsewhere, set "
            "server.metrics_token and send it as Authorization: Bearer <token>",
        )
    scheme, _, given = named.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return ApiError(
            401, "unauthorized", "missing metrics token (Authorization: Bearer <token>)"
        )
    if not hmac.compare_digest(_digest(given), _digest(token)):
        return ApiError(401, "unauthorized", "invalid metrics token")
    return None


def _socket_peer(request: web.Request) -> str | None:
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, list | tuple) and peername:
        return str(peername[0])
    return None


PATH = "/metrics"


async def metrics_handler(request: web.Request) -> web.Response:
    st = state(request)
    peer = _socket_peer(request)
    refusal = metrics_refusal(peer, request.headers, st.config.server.metrics_token)
    if refusal is not None:
        if refusal.status == 401:  # a guess at the token: limited like deploy-token failures
            count_auth_failure(st.auth_failure_limiter, peer or "unknown", st.clock.time())
        raise refusal
    resp = web.Response(body=exposition())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    resp.headers["Cache-Control"] = "no-store"
    return resp


OPERATIONS = [
    Route(
        "GET",
        PATH,
        operation(
            "metrics",
            tag="Health",
            summary="Prometheus metrics",
            description="The server's own counters, gauges and histograms (ingest pipeline, "
            "Agent API, alerts) in the Prometheus text format; labels never carry node ids or "
            "addresses. Answered without a token when the connection comes from a loopback "
            "address (127.0.0.0/8, ::1) and carries no proxy header (`Forwarded`, "
            "`X-Forwarded-For`, `X-Real-IP`). Any other request needs `Authorization: Bearer "
            "<server.metrics_token>`: 401 without it or with a wrong one, 403 when no "
            "`server.metrics_token` is configured. The address is the connection's, never a "
            "forwarding header's.",
            security=[{}, {"metricsToken": []}],
            answers={200: answer("The metrics.", {"type": "string"}, content_type="text/plain")},
            errors=(401, 429),
            standard_errors=False,
            error_overrides={
                403: error_answer(
                    "Not from a loopback address (or through a proxy), and no "
                    "`server.metrics_token` is configured: nothing the caller sends helps.",
                    ("forbidden",),
                )
            },
        ),
    )
]
"""``/metrics`` is added by ``api/app.py`` (outside the REST route tables)."""
