"""Builders for binary telemetry batches, written from docs/wire-format.md, and lake readers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
import requests

from ingest.pipeline import Pipeline

ARROW = "application/vnd.apache.arrow.stream"


def ipc_bytes(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(
        sink, table.schema, options=ipc.IpcWriteOptions(compression=compression)
    ) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def metrics_table(ids: range | list[int], start: datetime | None = None, **extra: Any) -> pa.Table:
    """One row per id: ``pps`` carries the id so that every row can be counted in the lake."""
    start = start or datetime.now(UTC) - timedelta(seconds=len(ids) + 5)
    ids = list(ids)
    cols: dict[str, Any] = {
        "time": pa.array(
            [start + timedelta(milliseconds=i) for i in range(len(ids))],
            pa.timestamp("ms", tz="UTC"),
        ),
        "pps": pa.array([float(i) for i in ids], pa.float64()),
        "bps": pa.array([float(i) * 8 for i in ids], pa.float64()),
    }
    cols.update(extra)
    return pa.table(cols)


def flows_table(n: int, dst_ip: str, start: datetime | None = None, **extra: Any) -> pa.Table:
    start = start or datetime.now(UTC) - timedelta(seconds=5)
    cols: dict[str, Any] = {
        "time": pa.array([start] * n, pa.timestamp("us", tz="UTC")),
        "src_ip": [f"198.51.100.{i % 250}" for i in range(n)],
        "dst_ip": [dst_ip] * n,
        "src_port": pa.array([1024 + i for i in range(n)], pa.int32()),
        "dst_port": pa.array([80] * n, pa.int32()),
        "protocol": pa.array([6] * n, pa.uint8()),
        "tcp_flags": pa.array([2] * n, pa.uint8()),
        "packets": pa.array([100] * n, pa.int64()),
        "bytes": pa.array([6000] * n, pa.int64()),
        "sampling_rate": pa.array([100] * n, pa.int64()),
    }
    cols.update(extra)
    return pa.table(cols)


def post_batch(
    base_url: str,
    key: str,
    body: bytes,
    kind: str = "metrics",
    batch_id: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> requests.Response:
    h = {"Authorization": f"Bearer {key}", "Content-Type": ARROW}
    if batch_id is not None:
        h["X-Batch-Id"] = batch_id
    h.update(headers or {})
    return requests.post(
        f"{base_url}/api/v1/telemetry/{kind}", data=body, headers=h, timeout=timeout
    )


def lake_query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on a plain read-only DuckDB session over the analysts' catalog."""
    con = duckdb.connect(str(data_dir / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll until ``predicate()`` holds; returns whether it did before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


async def crash_pipeline(p: Pipeline) -> None:
    """Abandon a pipeline as a crash would: no flush, no checkpoint, tasks just stop. A write
    already handed to a worker thread finishes first (a real crash would stop it somewhere
    inside; the SIGKILL test in test_telemetry_crash.py covers that)."""
    p.accepting = False
    for task in p._tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    wal = p.wal
    with wal._cond:  # entries queued but not yet written die with the process (none was acked)
        wal._pending.clear()
        wal._closing = True
        wal._cond.notify()
    if wal._writer is not None:
        await asyncio.to_thread(wal._writer.join)
    for executor in (p._lake_executor, p.wal._executor):
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)
