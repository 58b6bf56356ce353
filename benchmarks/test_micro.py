"""Micro benchmarks of the telemetry pipeline's stages (pytest-benchmark, fixed seeds).

    pytest benchmarks -q --benchmark-only          (make bench)

Each reports rows/s of its median round in ``extra_info`` and in a table at the end. The numbers
are for comparing stages and commits within one run on one machine, never for asserting.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest.buffer import split_by_hour
from ingest.decode import decode_body
from ingest.pipeline import (
    FRESH_STATISTICS,
    PipelineSettings,
    WireBatch,
    encode_ipc,
    lake_table_of,
)
from ingest.receiver import latest_per_node
from ingest.routing import to_lake_table
from ingest.schema import FLOWS, KINDS, METRICS
from ingest.wal import Wal
from store.lake import Lake, PartitionKey, order_by_node_time, sort_by_node_time

from .batches import NODE_IP, encode, wire_batch

SETTINGS = PipelineSettings()
SEED = 20_251_128
NODE = str(uuid.UUID(int=SEED))
WORKSPACE = str(uuid.UUID(int=SEED + 1))
_END = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)


def _decode(body: bytes, kind: Any) -> Any:
    return decode_body(
        body,
        kind,
        max_rows=1_000_000,
        now=datetime.now(UTC),
        max_age=timedelta(days=15),
        max_skew=timedelta(minutes=5),
    )


def _lake_table(kind: str, rows: int, end: datetime = _END) -> pa.Table:
    k = KINDS[kind]
    decoded = _decode(encode(wire_batch(kind, rows, SEED, end), "none"), k)
    return to_lake_table(k, decoded.table, source="arrow", node=NODE)


# --- decode ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_decode_metrics_10k(measure: Any, compression: str) -> None:
    body = encode(wire_batch("metrics", 10_000, SEED, _END), compression)
    out = measure(_decode, body, METRICS, rows=10_000)
    assert out.table.num_rows == 10_000


def test_decode_metrics_1k(measure: Any) -> None:
    """Per-batch fixed costs show at small batches."""
    body = encode(wire_batch("metrics", 1_000, SEED, _END), "lz4")
    out = measure(_decode, body, METRICS, rows=1_000)
    assert out.table.num_rows == 1_000


def test_decode_flows_10k(measure: Any) -> None:
    body = encode(wire_batch("flows", 10_000, SEED, _END), "lz4")
    out = measure(_decode, body, FLOWS, rows=10_000)
    assert out.table.num_rows == 10_000


# --- routing -------------------------------------------------------------------------------------


def test_to_lake_table_metrics_node_key(measure: Any) -> None:
    wire = _decode(encode(wire_batch("metrics", 10_000, SEED, _END), "none"), METRICS).table
    out = measure(to_lake_table, METRICS, wire, source="arrow", node=NODE, rows=10_000)
    assert out.num_rows == 10_000


def test_to_lake_table_flows_collector_key(measure: Any) -> None:
    """A collector key: each row's node is found from its ``dst_ip``."""
    wire = _decode(encode(wire_batch("flows", 10_000, SEED, _END), "none"), FLOWS).table
    index = {"ip:" + NODE_IP: NODE}
    out = measure(to_lake_table, FLOWS, wire, source="arrow", index=index, rows=10_000)
    assert out.num_rows == 10_000


def test_latest_per_node_metrics_10k(measure: Any) -> None:
    """Runs for every accepted metrics batch (node liveness), in the decode worker."""
    table = _lake_table("metrics", 10_000)
    out = measure(latest_per_node, table, rows=10_000)
    assert len(out) == 1


# --- buffer and WAL encoding -------------------------------------------------------------------


def test_split_by_hour_one_hour(measure: Any) -> None:
    table = _lake_table("metrics", 10_000)
    out = measure(split_by_hour, "metrics", WORKSPACE, table, rows=10_000)
    assert len(out) == 1


def test_split_by_hour_two_hours(measure: Any) -> None:
    """A batch whose minute straddles an hour boundary is cut in two."""
    end = _END.replace(minute=0, second=30)
    table = _lake_table("metrics", 10_000, end)
    out = measure(split_by_hour, "metrics", WORKSPACE, table, rows=10_000)
    assert len(out) == 2


@pytest.mark.parametrize("compression", ["lz4", "zstd", ""])
def test_encode_ipc_metrics_10k(measure: Any, compression: str) -> None:
    """The WAL entry of an accepted batch (``ingest.wal_compression``, lz4 by default)."""
    table = _lake_table("metrics", 10_000)
    out = measure(encode_ipc, table, compression, rows=10_000)
    assert out


def test_wal_wire_replay_metrics_10k(measure: Any) -> None:
    """What replay does with a WAL entry that holds the body as sent (lz4): decode and route."""
    body = encode(wire_batch("metrics", 10_000, SEED, _END), "lz4")
    lake = to_lake_table(METRICS, _decode(body, METRICS).table, source="arrow", node=NODE)
    wire = WireBatch.of(body, "arrow", NODE, lake)
    header = {"form": "wire", "wire_len": wire.wire_len, "src": "arrow", "node": NODE}
    out = measure(lake_table_of, "metrics", header, wire.payload, rows=10_000)
    assert out.equals(lake)


# --- lake ----------------------------------------------------------------------------------------


def test_sort_by_node_time_8_nodes_250k(measure: Any) -> None:
    """A lake write's sort: 25 batches of 10k rows from 8 nodes, times overlapping."""
    nodes = [str(uuid.UUID(int=SEED + 10 + i)) for i in range(8)]
    one = _lake_table("metrics", 10_000)
    parts = [
        one.set_column(0, "node_uuid", pa.repeat(pa.scalar(nodes[i % 8]), 10_000))
        for i in range(25)
    ]
    table = pa.concat_tables(parts)
    out = measure(sort_by_node_time, table, rows=250_000)
    assert out.num_rows == 250_000


def test_order_by_node_time_8_nodes_250k(measure: Any) -> None:
    """The same rows as a lake write gets them: 25 batches of 10k rows from 8 nodes, each node's
    batches in time order (as agents send them), ordered without moving rows."""
    nodes = [str(uuid.UUID(int=SEED + 10 + i)) for i in range(8)]
    pool = _lake_table("metrics", 250_000)  # times increase through the pool
    parts = [
        pool.slice(i * 10_000, 10_000).set_column(
            0, "node_uuid", pa.repeat(pa.scalar(nodes[i % 8]), 10_000)
        )
        for i in range(25)
    ]
    out = measure(order_by_node_time, parts, rows=250_000)
    assert out.num_rows == 250_000 and out.column("pps").num_chunks == 25


def test_order_by_node_time_collector_60_nodes_250k(measure: Any) -> None:
    """A collector's history as a lake write gets it: 25 batches of 10k rows, each holding 60
    nodes' seconds in time order (every node's second t, then t + 1, ...): the counting sort on
    the node rank, then one take of every column but the node's."""
    nodes = pa.array([str(uuid.UUID(int=SEED + 100 + i)) for i in range(60)])
    pool = _lake_table("metrics", 250_000)
    second = pc.divide(pa.array(range(250_000), pa.int64()), 60)
    start = int(_END.timestamp()) - 250_000 // 60
    times = pc.cast(pc.multiply(pc.add(second, start), 1_000_000), pa.timestamp("us", tz="UTC"))
    which = pc.subtract(pa.array(range(250_000), pa.int64()), pc.multiply(second, 60))
    pool = pool.set_column(0, "node_uuid", pc.take(nodes, which))
    pool = pool.set_column(pool.schema.get_field_index("time"), "time", times)
    parts = [pool.slice(i * 10_000, 10_000) for i in range(25)]
    out = measure(order_by_node_time, parts, rows=250_000)
    assert out.column("node_uuid").to_pylist() == sorted(pool.column("node_uuid").to_pylist())


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lk = Lake(
        tmp_path / "lake",
        {k.name: k.lake_schema for k in KINDS.values()},
        METRICS.name,
        tuple(c.name for c in METRICS.columns if c.kind == "float"),
        tuple(c.name for c in METRICS.columns if c.kind == "int"),
        SETTINGS.compression,
        SETTINGS.compression_level,
        fresh_compression=SETTINGS.fresh_compression,
        fresh_statistics=FRESH_STATISTICS,
    )
    lk.prepare()
    return lk


@pytest.mark.parametrize("kind", ["metrics", "flows"])
def test_lake_write_part_100k(measure: Any, lake: Lake, kind: str) -> None:
    """One Parquet file of 100k rows as the server writes it: sort by node and time, the fresh
    files' codec (lz4) and statistics, fsync, rename."""
    table = _lake_table(kind, 100_000)
    key = PartitionKey(kind, WORKSPACE, _END.date(), _END.hour)
    seqs = itertools.count(1)

    def write() -> None:
        seq = next(seqs)
        lake.write_part(key, table, lake.new_part_path(key, seq), [seq])

    measure(write, rows=100_000)
    # parts go into the hour's current generation directory (g0 for a new hour)
    assert list((lake.root / key.relpath()).glob("g*/part-*.parquet"))


# --- WAL group commit ----------------------------------------------------------------------------


@pytest.fixture
def wal_loop() -> Iterator[tuple[asyncio.AbstractEventLoop, Wal]]:
    """A started WAL in a temporary directory, with the event loop that drives it."""
    with tempfile.TemporaryDirectory(prefix="floodwatch-bench-wal-") as tmp:
        loop = asyncio.new_event_loop()
        wal = Wal(Path(tmp), segment_max_bytes=64 * 1024 * 1024)
        wal.open()
        loop.run_until_complete(wal.start())
        try:
            yield loop, wal
        finally:
            loop.run_until_complete(wal.stop())
            loop.close()


@pytest.mark.parametrize("rows", [1_000, 10_000])
def test_wal_append_100_concurrent(measure: Any, wal_loop: Any, rows: int) -> None:
    """100 entries appended at once: one committer writes and fsyncs them as groups."""
    loop, wal = wal_loop
    payload = encode_ipc(_lake_table("metrics", rows), "lz4")

    async def hundred() -> list[int]:
        header = {"kind": "metrics", "ws": WORKSPACE, "rows": rows, "t": 0.0}
        return list(await asyncio.gather(*(wal.append(dict(header), payload) for _ in range(100))))

    def run() -> list[int]:
        seqs: list[int] = loop.run_until_complete(hundred())
        return seqs

    seqs = measure(run, rows=100 * rows)
    assert len(seqs) == 100
