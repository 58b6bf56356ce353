"""Compaction, rollups and retention of the Parquet lake, through the pipeline."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.pipeline import Pipeline, PipelineSettings
from ingest.routing import to_lake_table
from ingest.schema import METRICS

from .telemetry import metrics_table

NOW = datetime(2026, 6, 10, 12, 30, tzinfo=UTC)


def _lake_table(ids: range, start: datetime, node: str) -> pa.Table:
    table = metrics_table(ids, start=start)
    # metrics_table spaces rows 1 ms apart; spread them one second apart instead
    times = pa.array(
        [start + timedelta(seconds=i) for i in range(len(ids))], pa.timestamp("us", tz="UTC")
    )
    table = table.set_column(0, "time", times)
    return to_lake_table(METRICS, table, source="test", node=node)


def _codecs_and_stats(path: Path) -> tuple[set[str], set[str]]:
    """The compression codecs of a Parquet file's columns, and the columns with statistics."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    cols = [meta.column(i) for i in range(meta.num_columns)]
    return {c.compression for c in cols}, {c.path_in_schema for c in cols if c.is_stats_set}


def _q(sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_closed_hour_is_compacted_and_rolled_up(tmp_path: Path) -> None:
    ws, node = str(uuid.uuid4()), str(uuid.uuid4())
    hour = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # closed: ended 1.5 h before NOW

    async def scenario() -> int:
        p = Pipeline(tmp_path, PipelineSettings(flush_rows=10**9, flush_age_secs=3600))
        await p.start()
        # three flushes make three small files in the same hour partition
        for k in range(3):
            batch = _lake_table(
                range(k * 600, (k + 1) * 600), hour + timedelta(minutes=10 * k), node
            )
            await p.submit("metrics", ws, batch, f"b{k}")
            await p.flush(force=True)
        part_dir = tmp_path / f"lake/metrics/workspace={ws}/date=2026-06-10/hour=10"
        # fresh parts go to the hour's first generation
        assert len(list(part_dir.glob("g0/part-*.parquet"))) == 3
        # fresh parts: lake.fresh_compression, statistics on node and time only
        for f in part_dir.glob("g0/part-*.parquet"):
            assert _codecs_and_stats(f) == ({"LZ4"}, {"node_uuid", "time"})
        done = await p.maintain(now=NOW)
        await p.stop()
        return done

    assert asyncio.run(scenario()) == 1
    lake = tmp_path / "lake"
    part_dir = lake / f"metrics/workspace={ws}/date=2026-06-10/hour=10"
    # the compacted file is the new generation g1; g0 is now a symlink to the replaced one
    assert (part_dir / "g0").is_symlink() and not (part_dir / "g1").is_symlink()
    assert len(list((part_dir / "g0").glob("part-*.parquet"))) == 3
    files = sorted(f.name for f in (part_dir / "g1").glob("*.parquet"))
    assert len(files) == 1 and files[0].startswith("compacted-")
    # the compacted hour: lake.compression, statistics on every column
    codecs, stats = _codecs_and_stats(part_dir / "g1" / files[0])
    assert codecs == {"ZSTD"} and stats == set(METRICS.lake_schema.names)
    rows = _q(f"SELECT count(*), count(DISTINCT pps) FROM read_parquet('{part_dir}/**/*.parquet')")
    assert rows == [(1800, 1800)]
    # 1-minute rollups: 30 minutes of one sample per second
    r1 = _q(
        f"SELECT count(*), sum(samples), max(pps_max), min(pps_avg) FROM "
        f"read_parquet('{lake}/metrics_1m/workspace={ws}/*/*/*.parquet')"
    )
    assert r1 == [(30, 1800, 1799.0, 29.5)]
    r5 = _q(
        f"SELECT count(*), sum(samples) FROM "
        f"read_parquet('{lake}/metrics_5m/workspace={ws}/*/*/*.parquet')"
    )
    assert r5 == [(6, 1800)]
    r60 = _q(
        f"SELECT count(*), sum(samples), max(bps_max) FROM "
        f"read_parquet('{lake}/metrics_1h/workspace={ws}/*/*.parquet')"
    )
    assert r60 == [(1, 1800, 1799.0 * 8)]


def test_open_hour_is_left_alone_and_retention_drops_old_days(tmp_path: Path) -> None:
    ws, node = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario() -> None:
        p = Pipeline(
            tmp_path,
            PipelineSettings(
                flush_rows=10**9,
                flush_age_secs=3600,
                retention_days=(("metrics", 15), ("metrics_1m", 30)),
            ),
        )
        await p.start()
        current = NOW.replace(minute=0)
        old = NOW - timedelta(days=20)
        for k, start in enumerate((current, current + timedelta(minutes=5), old)):
            await p.submit(
                "metrics", ws, _lake_table(range(k * 10, k * 10 + 10), start, node), None
            )
            await p.flush(force=True)
        await p.maintain(now=NOW)
        await p.stop()

    asyncio.run(scenario())
    lake = tmp_path / "lake"
    current_dir = lake / f"metrics/workspace={ws}/date=2026-06-10/hour=12"
    assert len(list(current_dir.glob("g0/part-*.parquet"))) == 2  # the open hour is not compacted
    assert not (lake / f"metrics/workspace={ws}/date=2026-05-21").exists()
    # the old day was compacted and rolled up before retention removed its raw data
    assert (lake / f"metrics_1m/workspace={ws}/date=2026-05-21").exists()
