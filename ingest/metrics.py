"""Counters, gauges and histograms of the pipeline, rendered in the Prometheus text format.

Labels are only ever drawn from small fixed sets (record kind, rejection reason): never a node,
an address or anything else from the wire, which an attacker could use to grow memory."""

from __future__ import annotations

import abc
import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["METRICS", "Counter", "Gauge", "Histogram", "Registry"]


class _Metric(abc.ABC):
    kind = ""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labels = labels
        self._lock = threading.Lock()

    def _fmt_labels(self, values: tuple[str, ...]) -> str:
        if not values:
            return ""
        inner = ",".join(f'{k}="{v}"' for k, v in zip(self.labels, values, strict=True))
        return "{" + inner + "}"

    @abc.abstractmethod
    def render(self) -> list[str]:
        """The metric's sample lines in the Prometheus text format."""


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, doc, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        items = sorted(self._values.items()) or ([((), 0.0)] if not self.labels else [])
        return [f"{self.name}{self._fmt_labels(k)} {v:g}" for k, v in items]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, doc: str, fn: Callable[[], float] | None = None) -> None:
        super().__init__(name, doc)
        self._value = 0.0
        self._fn = fn

    def set(self, value: float) -> None:
        self._value = value

    def bind(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def render(self) -> list[str]:
        value = self._fn() if self._fn is not None else self._value
        return [f"{self.name} {value:g}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...]) -> None:
        super().__init__(name, doc)
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

    def render(self) -> list[str]:
        out = []
        acc = 0
        for bound, n in zip(self.buckets, self._counts, strict=False):
            acc += n
            out.append(f'{self.name}_bucket{{le="{bound:g}"}} {acc}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self._n}')
        out.append(f"{self.name}_sum {self._sum:g}")
        out.append(f"{self.name}_count {self._n}")
        return out


_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_ROWS = (100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000)


class Registry:
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

    def _all(self) -> list[_Metric]:
        return [m for m in vars(self).values() if isinstance(m, _Metric)]

    def render(self) -> str:
        lines: list[str] = []
        for m in self._all():
            lines.append(f"# HELP {m.name} {m.doc}")
            lines.append(f"# TYPE {m.name} {m.kind}")
            lines.extend(m.render())
        return "\n".join(lines) + "\n"


METRICS = Registry()
