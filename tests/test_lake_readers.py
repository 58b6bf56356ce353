"""Analysts reading the lake while it is written and compacted: every read succeeds and counts
every published row exactly once (the catalog views and a plain ``**`` glob).

Against the layout before generations (staging beside the hour, old files deleted at once) the
readers failed or double-counted about one read in twenty. One race remains (docs/
ARCHITECTURE.md, "Compaction while analysts read"): a swap between DuckDB's reading of an hour
directory and its type check of the entries hides that hour from one read; measured once in
about 16,000 reads of this test, so a rare failure here is that race, not noise."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.pipeline import Pipeline, PipelineSettings
from ingest.routing import to_lake_table
from ingest.schema import METRICS
from store.catalog import write_catalog

from .telemetry import metrics_table

NOW = datetime(2026, 6, 10, 12, 30, tzinfo=UTC)
CLOSED = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # compacted by maintain(now=NOW)
OPEN = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # never compacted at NOW
ROUNDS = 20


def write_test_catalog(data_dir: Path) -> None:
    """The catalog as the server writes it, with stand-in snapshots of its two tables."""
    snaps = data_dir / "lake" / "_snapshots"
    snaps.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for name in ("nodes", "incidents"):
            con.execute(f"COPY (SELECT 'x' AS uuid) TO '{snaps / name}.parquet' (FORMAT parquet)")
    finally:
        con.close()
    write_catalog(data_dir, data_dir / "lake")


def _batch(ids: range, start: datetime, node: str) -> pa.Table:
    table = metrics_table(ids, start=start)
    times = pa.array([start + timedelta(milliseconds=i) for i in ids], pa.timestamp("us", tz="UTC"))
    return to_lake_table(METRICS, table.set_column(0, "time", times), source="test", node=node)


@dataclass
class Published:
    """Rows whose files are in place (``done``) and rows that may be (``started``)."""

    done: int = 0
    started: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bounds(self) -> tuple[int, int]:
        with self.lock:
            return self.done, self.started


@dataclass
class Reads:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    """Reads that counted fewer rows than published before they began: the documented race
    (a swap between DuckDB's listing of an hour and its type check hides that hour once)."""


def _reader(
    sql: str, connect: str, read_only: bool, pub: Published, stop: threading.Event, out: Reads
) -> None:
    con = duckdb.connect(connect, read_only=read_only)
    try:
        while not stop.is_set():
            lo, _ = pub.bounds()
            try:
                row = con.execute(sql).fetchone()
            except duckdb.Error as exc:
                out.failures.append(f"error: {exc}")
                continue
            _, hi = pub.bounds()
            assert row is not None
            rows, distinct = int(row[0]), int(row[1])
            if rows != distinct:
                out.failures.append(f"duplicates: {rows} rows, {distinct} distinct")
            elif rows < lo:
                out.missed.append(f"{rows} rows, published {lo}..{hi}")
            elif rows > hi:
                out.failures.append(f"{rows} rows, published {lo}..{hi}")
            else:
                out.ok += 1
    finally:
        con.close()


async def _write_and_compact(
    p: Pipeline,
    pub: Published,
    ws: str,
    rounds: int,
    on_change: Callable[[Published], None] = lambda _: None,
) -> None:
    """Late batches into a closed hour, each round compacted, and fresh ones into the open
    hour; several small files per round so that a swap has many files to replace.
    ``on_change`` is called whenever ``pub`` changed."""
    node = str(uuid.uuid4())
    ids = itertools.count()
    for r in range(rounds):
        for start in (CLOSED, CLOSED, CLOSED, OPEN, OPEN):
            first = next(ids) * 100
            batch = _batch(range(first, first + 100), start + timedelta(seconds=r), node)
            await p.submit("metrics", ws, batch, f"b{first}")
            with pub.lock:
                pub.started += batch.num_rows
            on_change(pub)
            await p.flush(force=True)  # the part is in place when this returns
            with pub.lock:
                pub.done += batch.num_rows
            on_change(pub)
        await p.maintain(now=NOW)


def test_reads_during_compaction_and_publication_count_each_row_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    pub = Published()
    stop = threading.Event()
    view, plain, fixed = Reads(), Reads(), Reads()
    glob = f"{lake}/metrics/**/*.parquet"
    readers = [
        threading.Thread(
            target=_reader,
            args=(
                "SELECT count(*), count(DISTINCT pps) FROM metrics",
                str(tmp_path / "catalog.duckdb"),
                True,
                pub,
                stop,
                view,
            ),
        ),
        threading.Thread(
            target=_reader,
            args=(
                "SELECT count(*), count(DISTINCT pps) FROM "
                f"read_parquet('{glob}', hive_partitioning = true)",
                ":memory:",
                False,
                pub,
                stop,
                plain,
            ),
        ),
        # the layout's fixed depth, through the hour=HH.current links: exact when it succeeds
        threading.Thread(
            target=_reader,
            args=(
                "SELECT count(*), count(DISTINCT pps) FROM "
                f"read_parquet('{lake}/metrics/*/*/*/*.parquet', hive_partitioning = true)",
                ":memory:",
                False,
                pub,
                stop,
                fixed,
            ),
        ),
    ]

    async def scenario() -> None:
        p = Pipeline(tmp_path, PipelineSettings(flush_rows=10**9, flush_age_secs=3600))
        await p.start()
        write_test_catalog(tmp_path)
        for t in readers:
            t.start()
        try:
            await _write_and_compact(p, pub, str(uuid.uuid4()), rounds=ROUNDS)
        finally:
            await asyncio.sleep(0.2)  # a few reads of the final state
            stop.set()
            for t in readers:
                t.join()
            await p.stop()

    asyncio.run(scenario())
    assert view.failures == [] and plain.failures == []
    assert view.ok > 0 and plain.ok > 0
    # the one known race may hide an hour from a rare read; never more than one read in 500
    for reads in (view, plain):
        assert len(reads.missed) <= reads.ok // 500, reads.missed
    # a fixed-depth glob may fail to open a file listed just before a swap, but counts exactly
    assert fixed.ok > 0
    print(f"reads: view {view.ok}, plain {plain.ok}, fixed {fixed.ok} ok + {len(fixed.failures)}")
    assert [f for f in fixed.failures if "Cannot open file" not in f] == []
    # the closed hour really was swapped, every round: ROUNDS + 1 generations, all but one linked
    hour = next(lake.glob("metrics/workspace=*/date=2026-06-10/hour=10"))
    assert (hour / "current").readlink() == Path(f"g{ROUNDS}")
    assert sorted(p.name for p in hour.glob("g*") if p.is_symlink()) == sorted(
        f"g{n}" for n in range(ROUNDS)
    )
