"""Detector speed (pytest-benchmark): one ``Detector.process`` pass over 1 s of 5 nodes (the
per-call cost), 10,000 and 100,000 node-seconds of benign traffic, on a detector that has seen
the same nodes for 300 s first (so baselines and per-node state exist).

    pytest benchmarks/test_detect_speed.py -q --benchmark-only

Each round gets a fresh copy of the warmed-up detector (a state round trip, outside the timed
call), so every round does the same work. Goal: under 100 ms per 100,000 node-seconds, growing
linearly; ``python -m benchmarks.bench_detect`` prints the same cases and 1M next to ftagent's
rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from benchmarks.bench_detect import _speed_fleet
from detect.engine import Detector
from detect.frames import from_metrics

WARM = 300


@pytest.fixture(scope="module")
def fleet() -> pl.DataFrame:
    return _speed_fleet(1000, WARM, 100, seed=1)


def _case(fleet: pl.DataFrame, nodes: int, secs: int) -> tuple[bytes, pl.DataFrame]:
    start: datetime = fleet["time"].min()  # type: ignore[assignment]
    names = fleet["node"].unique(maintain_order=True).to_list()[:nodes]
    f = fleet.filter(pl.col("node").is_in(names))
    lo = start + timedelta(seconds=WARM)
    det = Detector()
    det.process(f.filter(pl.col("time") < lo))
    frame = f.filter(pl.col("time").is_between(lo, lo + timedelta(seconds=secs), "left"))
    return det.state_bytes(), frame


@pytest.mark.parametrize(
    ("nodes", "secs"), [(5, 1), (100, 100), (1000, 100)], ids=["1s-5-nodes", "10k", "100k"]
)
def test_detect_pass(benchmark: Any, fleet: pl.DataFrame, nodes: int, secs: int) -> None:
    state, frame = _case(fleet, nodes, secs)

    def setup() -> tuple[tuple[Detector, pl.DataFrame], dict[str, Any]]:
        return (Detector.from_state(state), frame), {}

    benchmark.pedantic(lambda det, fr: det.process(fr), setup=setup, rounds=7)
    benchmark.extra_info["rows"] = frame.height
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["us_per_row"] = stats.stats.median * 1e6 / frame.height


COLLECTOR_NODES = 60
COLLECTOR_BATCH = 10_000
COLLECTOR_PASS = 500_000


@pytest.fixture(scope="module")
def collector_pass() -> tuple[bytes, list[Any]]:
    """A backfill pass as the server's detection worker gets it: 500,000 rows of a 60-node
    collector's coherent per-second history (``bench_telemetry --fleet-traffic coherent``) in
    10,000-row Arrow batches, after one hour of the same nodes."""
    import uuid

    import pyarrow as pa

    from benchmarks.batches import fleet_metrics_pool

    nodes = tuple((str(uuid.UUID(int=i + 1)), f"10.0.0.{i + 1}") for i in range(COLLECTOR_NODES))
    warm = COLLECTOR_NODES * 3600
    table = fleet_metrics_pool(
        warm + COLLECTOR_PASS,
        7,
        nodes,
        "node",
        end=datetime(2026, 12, 1, tzinfo=UTC),
        traffic="coherent",
    )
    table = table.rename_columns(["node_uuid" if c == "node" else c for c in table.column_names])
    det = Detector()
    det.process(from_metrics(table.slice(0, warm), "ws"))
    batches = [
        table.slice(o, COLLECTOR_BATCH) for o in range(warm, table.num_rows, COLLECTOR_BATCH)
    ]
    assert sum(b.num_rows for b in batches) == COLLECTOR_PASS
    return det.state_bytes(), [pa.concat_tables(batches)]


def test_detect_collector_pass(benchmark: Any, collector_pass: tuple[bytes, list[Any]]) -> None:
    """The worker's steps for one pass: the batches joined (zero-copy), converted once, then
    ``Detector.process``."""
    state, (joined,) = collector_pass

    def setup() -> tuple[tuple[Detector, Any], dict[str, Any]]:
        return (Detector.from_state(state), joined), {}

    benchmark.pedantic(
        lambda det, table: det.process(from_metrics(table, "ws", merge=False)),
        setup=setup,
        rounds=3,
    )
    benchmark.extra_info["rows"] = COLLECTOR_PASS
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["us_per_row"] = stats.stats.median * 1e6 / COLLECTOR_PASS
