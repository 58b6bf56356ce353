"""The collector benchmark's fleet history (``benchmarks.batches.fleet_metrics_pool``): the
``coherent`` traffic is traffic a node can have, and the detector reads it as calm; the
``noise`` traffic is not (its counters are drawn apart), which is why the two are reported
apart."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from benchmarks.batches import fleet_metrics_pool
from detect import frames
from detect.engine import Detector

NODES = tuple((f"00000000-0000-4000-8000-{i:012d}", f"10.0.0.{i}") for i in range(12))
END = datetime(2026, 12, 1, tzinfo=UTC)


def _pool(traffic: str, rows: int) -> pl.DataFrame:
    table = fleet_metrics_pool(rows, 7, NODES, "node", end=END, traffic=traffic)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def test_coherent_counters_agree_with_each_other() -> None:
    df = _pool("coherent", 12 * 600)
    protocols = df["tcp_pps"] + df["udp_pps"] + df["icmp_pps"] + df["other_pps"]
    assert ((protocols - df["pps"]).abs() <= df["pps"] * 1e-9).all()
    assert (df["udp_pps"] > 0).all()
    for flag in ("syn_pps", "ack_pps", "rst_pps", "fin_pps"):
        assert (df[flag] <= df["tcp_pps"]).all()
    assert (df["bps"] - df["pps"] * df["avg_pkt_len"] * 8).abs().max() < 1e-3 * df["bps"].max()
    # every node's rows in time order, one row per node and second
    per_node = df.group_by("node").agg(pl.col("time").is_sorted().alias("sorted"), pl.len())
    assert per_node["sorted"].all() and (per_node["len"] == 600).all()


def test_noise_counters_are_drawn_apart() -> None:
    df = _pool("noise", 12 * 60)
    assert (df["tcp_pps"] > df["pps"]).any()


def test_the_detector_reads_coherent_traffic_as_calm() -> None:
    df = _pool("coherent", 12 * 1800).rename({"node": "node_uuid"})
    det = Detector()
    out = []
    for part in frames.from_metrics(df, "ws").iter_slices(12 * 300):
        out += det.process(part)
    assert [t.kind for t in out] == []
    assert len(det.known_nodes()) == len(NODES)


def test_unknown_traffic_is_refused() -> None:
    with pytest.raises(ValueError, match="bad fleet pool"):
        fleet_metrics_pool(10, 1, NODES, "node", traffic="bursty")
