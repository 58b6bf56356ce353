"""The server's own ``GET /metrics``: one process-wide ``prometheus_client`` registry.

Exposition: ``REGISTRY`` holds one collector that reads the pipeline's metrics
(``ingest.metrics.METRICS``) and the alert dispatcher's (``api.dispatcher.ALERT_METRICS``) when
scraped and turns each into a metric family of the same name, type, labels and help text; the
text is ``prometheus_client``'s own (``generate_latest``, ``CONTENT_TYPE_LATEST``). The values
stay plain thread-safe counters in their packages, so ingest never imports from ``api``. (The
per-workspace ``GET /api/metrics`` is another endpoint with its own registry per request.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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

__all__ = ["REGISTRY", "MetricSetCollector", "exposition", "metrics_handler"]


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


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics``, without authentication."""
    resp = web.Response(body=exposition())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    resp.headers["Cache-Control"] = "no-store"
    return resp
