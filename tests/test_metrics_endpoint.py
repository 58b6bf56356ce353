"""The server's own ``GET /metrics``: exposed by prometheus_client from the process-wide registry
in ``api.metrics``, with every series it had."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from api.dispatcher import ALERT_METRICS
from api.metrics import REGISTRY, MetricSetCollector, exposition
from ingest.metrics import METRICS, Counter, Gauge, Histogram, MetricSet

from .conftest import Server

# Every series /metrics has served (name without _total for counters, as the parser names
# families): type and label names. A renamed, retyped or relabelled metric fails here.
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "floodwatch_ingest_rows_received": ("counter", ("kind",)),
    "floodwatch_ingest_rows_dropped_unrouted": ("counter", ("kind",)),
    "floodwatch_ingest_rows_accepted": ("counter", ("kind",)),
    "floodwatch_ingest_batches_rejected": ("counter", ("kind", "reason")),
    "floodwatch_ingest_batches_duplicate": ("counter", ("kind",)),
    "floodwatch_wal_fsync_seconds": ("histogram", ()),
    "floodwatch_wal_groups": ("counter", ()),
    "floodwatch_wal_bytes": ("counter", ()),
    "floodwatch_wal_torn_tails": ("counter", ()),
    "floodwatch_wal_replayed_rows": ("counter", ()),
    "floodwatch_flush_rows": ("histogram", ()),
    "floodwatch_flush_seconds": ("histogram", ()),
    "floodwatch_buffer_rows": ("gauge", ()),
    "floodwatch_buffer_bytes": ("gauge", ()),
    "floodwatch_wal_pending_bytes": ("gauge", ()),
    "floodwatch_decode_queue": ("gauge", ()),
    "floodwatch_lake_compactions": ("counter", ()),
    "floodwatch_lake_retention_deleted": ("counter", ()),
    "floodwatch_event_loop_lag_seconds": ("histogram", ()),
    "floodwatch_gc_pause_seconds": ("histogram", ()),
    "floodwatch_agent_request_seconds": ("histogram", ()),
    "floodwatch_agent_config_cache": ("counter", ("result",)),
    "floodwatch_agent_requests": ("counter", ("endpoint", "status")),
    "floodwatch_alerts_sent": ("counter", ("type",)),
    "floodwatch_alerts_failed": ("counter", ("type",)),
    "floodwatch_alerts_retried": ("counter", ("type",)),
    "floodwatch_alerts_queue_depth": ("gauge", ()),
    "floodwatch_alerts_delivery_seconds": ("histogram", ()),
}


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


# --------------------------------------------------------------------------- the exposition


def test_metric_sets_become_families_of_the_same_names_types_and_labels() -> None:
    class Probe(MetricSet):
        def __init__(self) -> None:
            self.calls = Counter("probe_calls_total", "Calls", ("kind", "status"))
            self.idle = Counter("probe_idle_total", "Never counted")
            self.depth = Gauge("probe_depth", "Depth")
            self.bound = Gauge("probe_bound", "Bound", lambda: 7)
            self.size = Histogram("probe_rows", "Rows", (100, 1_000_000))

    probe = Probe()
    probe.calls.inc(2, "flows", "200")
    probe.calls.inc(1, "flows", "200")
    probe.calls.inc(5, "metrics", "503")
    probe.depth.set(3.5)
    for rows in (100, 101, 2_000_000):
        probe.size.observe(rows)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MetricSetCollector([probe]))
    text = exposition(registry).decode()
    fams = _families(text)
    assert {n: f.type for n, f in fams.items()} == {
        "probe_calls": "counter",
        "probe_idle": "counter",
        "probe_depth": "gauge",
        "probe_bound": "gauge",
        "probe_rows": "histogram",
    }
    calls = {tuple(s.labels.items()): s.value for s in fams["probe_calls"].samples}
    assert calls == {
        (("kind", "flows"), ("status", "200")): 3.0,
        (("kind", "metrics"), ("status", "503")): 5.0,
    }
    assert [(s.name, s.value) for s in fams["probe_idle"].samples] == [("probe_idle_total", 0)]
    assert fams["probe_depth"].samples[0].value == 3.5
    assert fams["probe_bound"].samples[0].value == 7
    rows = {(s.name, s.labels.get("le")): s.value for s in fams["probe_rows"].samples}
    assert rows == {
        ("probe_rows_bucket", "100"): 1,  # le: the bound is included
        ("probe_rows_bucket", "1e+06"): 2,  # bounds written as before (%g)
        ("probe_rows_bucket", "+Inf"): 3,
        ("probe_rows_count", None): 3,
        ("probe_rows_sum", None): 2_000_201,
    }
    assert "_created" not in text  # no series the old exposition did not have
    assert "# TYPE probe_calls_total counter" in text  # the name scrapers saw before


def test_the_process_registry_exposes_every_metric_of_both_sets() -> None:
    fams = _families(exposition().decode())
    defined = {m.name.removesuffix("_total") for s in (METRICS, ALERT_METRICS) for m in s.metrics()}
    assert defined == set(EXPECTED)
    assert {n: f.type for n, f in fams.items() if n in EXPECTED} == {
        n: t for n, (t, _) in EXPECTED.items()
    }
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        REGISTRY.register(MetricSetCollector([ALERT_METRICS]))  # names are checked


def test_metric_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="_total"):
        Counter("probe_calls", "a counter's name ends in _total")
    with pytest.raises(ValueError, match="labels"):
        Counter("probe_calls_total", "Calls", ("kind",)).inc(1)
    with pytest.raises(ValueError, match="increase"):
        Histogram("probe_rows", "Rows", (10, 5))


# --------------------------------------------------------------------------- live server


def _get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=30)


def test_loopback_scrape_parses_and_has_every_series(server: Server) -> None:
    resp = _get(server.url("/metrics"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    fams = _families(resp.text)
    served = {n: (f.type, f) for n, f in fams.items()}
    for name, (kind, labels) in EXPECTED.items():
        assert name in served, name
        assert served[name][0] == kind, name
        for sample in served[name][1].samples:
            assert set(sample.labels) - {"le"} == set(labels), (name, sample)
    assert set(fams) == set(EXPECTED)  # nothing else either
