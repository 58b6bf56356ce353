"""Counters, gauges and histograms of the pipeline: plain, thread-safe values in memory.

They know no exposition format. The server's process-wide ``prometheus_client`` registry lives
in ``api.metrics`` (ingest never imports from ``api``) and reads these values when ``/metrics``
is scraped: every ``MetricSet`` (``METRICS`` here, the alert dispatcher's in ``api``) becomes
metric families of the same names, types, labels and help texts.

Labels are only ever drawn from small fixed sets (record kind, rejection reason): never a node,
an address or anything else from the wire, which an attacker could use to grow memory."""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "METRICS",
    "Counter",
    "Gauge",
    "Histogram",
    "HistogramSnapshot",
    "IngestMetrics",
    "Metric",
    "MetricSet",
]


class Metric:
    """One named metric: its name, help text and label names (a fixed, small set)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labels = labels
        self._lock = threading.Lock()


class Counter(Metric):
    """A monotonic count per label values; the name ends in ``_total``."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name}: the name must end in _total")
        super().__init__(name, doc, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        if len(labels) != len(self.labels):
            raise ValueError(f"counter {self.name}: expected labels {self.labels}, got {labels}")
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def samples(self) -> list[tuple[tuple[str, ...], float]]:
        """(label values, count) sorted by label values; an unlabelled counter always has its
        one sample, 0 before the first ``inc``."""
        with self._lock:
            items = sorted(self._values.items())
        return items or ([((), 0.0)] if not self.labels else [])


class Gauge(Metric):
    """A value that goes up and down: set, or read from a bound function at scrape time."""

    def __init__(self, name: str, doc: str, fn: Callable[[], float] | None = None) -> None:
        super().__init__(name, doc)
        self._value = 0.0
        self._fn = fn

    def set(self, value: float) -> None:
        self._value = value

    def bind(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def value(self) -> float:
        return float(self._fn()) if self._fn is not None else self._value


@dataclass(frozen=True)
class HistogramSnapshot:
    """A histogram at one moment: cumulative counts per upper bound (``le``), then every
    observation (``+Inf``), and the sum."""

    buckets: list[tuple[float, int]]
    count: int
    sum: float


class Histogram(Metric):
    def __init__(self, name: str, doc: str, buckets: tuple[float, ...]) -> None:
        super().__init__(name, doc)
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"histogram {name}: bucket bounds must increase")
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._n = 0

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value
            self._n += 1

    @contextlib.contextmanager
    def time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start)

    @property
    def count(self) -> int:
        return self._n

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._n
        cumulative: list[tuple[float, int]] = []
        acc = 0
        for bound, c in zip(self.buckets, counts, strict=False):
            acc += c
            cumulative.append((bound, acc))
        return HistogramSnapshot(cumulative, n, total)


class MetricSet:
    """A group of metrics held as attributes; ``metrics()`` lists them in definition order."""

    def metrics(self) -> list[Metric]:
        return [m for m in vars(self).values() if isinstance(m, Metric)]


_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_ROWS = (100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000)


class IngestMetrics(MetricSet):
    def __init__(self) -> None:
        self.rows_received = Counter(
            "floodwatch_ingest_rows_received_total", "Rows in decoded batches", ("kind",)
        )
        self.rows_dropped_unrouted = Counter(
            "floodwatch_ingest_rows_dropped_unrouted_total",
            "Flow rows to addresses of no node, dropped at the sender's request",
            ("kind",),
        )
        self.rows_accepted = Counter(
            "floodwatch_ingest_rows_accepted_total", "Rows acknowledged (durable)", ("kind",)
        )
        self.batches_rejected = Counter(
            "floodwatch_ingest_batches_rejected_total", "Batches refused", ("kind", "reason")
        )
        self.batches_duplicate = Counter(
            "floodwatch_ingest_batches_duplicate_total", "Re-sent batches stored once", ("kind",)
        )
        self.wal_fsync_seconds = Histogram(
            "floodwatch_wal_fsync_seconds", "Time to write and fsync one group", _LATENCY
        )
        self.wal_groups = Counter("floodwatch_wal_groups_total", "Group commits")
        self.wal_bytes = Counter("floodwatch_wal_bytes_total", "Bytes written to the WAL")
        self.wal_torn_tails = Counter(
            "floodwatch_wal_torn_tails_total", "Torn segment tails cut off at start"
        )
        self.wal_replayed_rows = Counter(
            "floodwatch_wal_replayed_rows_total", "Rows replayed from the WAL at start"
        )
        self.flush_rows = Histogram("floodwatch_flush_rows", "Rows per Parquet file written", _ROWS)
        self.flush_seconds = Histogram(
            "floodwatch_flush_seconds", "Time to write one Parquet file", _LATENCY
        )
        self.buffer_rows = Gauge("floodwatch_buffer_rows", "Rows waiting in the buffer")
        self.buffer_bytes = Gauge("floodwatch_buffer_bytes", "Bytes waiting in the buffer")
        self.wal_pending_bytes = Gauge(
            "floodwatch_wal_pending_bytes", "Bytes queued for the next group commit"
        )
        self.decode_queue = Gauge("floodwatch_decode_queue", "Batches being decoded")
        self.compactions = Counter("floodwatch_lake_compactions_total", "Partitions compacted")
        self.retention_deleted = Counter(
            "floodwatch_lake_retention_deleted_total", "Partitions removed by retention"
        )
        self.loop_lag_seconds = Histogram(
            "floodwatch_event_loop_lag_seconds",
            "How late a 100 ms timer of the server's event loop fired (a busy loop delays every "
            "request)",
            _LATENCY,
        )
        self.gc_pause_seconds = Histogram(
            "floodwatch_gc_pause_seconds",
            "Python garbage-collector pauses (every generation); the whole process waits",
            _LATENCY,
        )
        self.agent_request_seconds = Histogram(
            "floodwatch_agent_request_seconds",
            "Time the server spent on an ftagent Agent API call, from routing to the answer",
            _LATENCY,
        )
        self.agent_config_cache = Counter(
            "floodwatch_agent_config_cache_total",
            "Agent config answers served from memory (hit) or loaded from the database (miss)",
            ("result",),
        )
        self.agent_requests = Counter(
            "floodwatch_agent_requests_total",
            "ftagent Agent API calls by endpoint and answered status",
            ("endpoint", "status"),
        )


METRICS = IngestMetrics()
