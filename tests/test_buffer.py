"""The buffer on its own: hour partitions, and groups handed out in pieces of bounded size."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from ingest.buffer import Buffer, split_by_hour
from ingest.routing import to_lake_table
from ingest.schema import METRICS
from store.lake import PartitionKey, sort_by_node_time

from .telemetry import metrics_table

WS = str(uuid.uuid4())
NODE = str(uuid.uuid4())


def _lake(ids: range, start: datetime, step: timedelta = timedelta(seconds=1)) -> pa.Table:
    table = metrics_table(ids, start=start)
    times = pa.array([start + step * i for i in range(len(ids))], pa.timestamp("us", tz="UTC"))
    return to_lake_table(METRICS, table.set_column(0, "time", times), source="t", node=NODE)


def test_split_by_hour_one_hour_and_several() -> None:
    start = datetime(2026, 6, 1, 10, 59, 58, tzinfo=UTC)
    one = _lake(range(2), start)
    assert split_by_hour("metrics", WS, one) == [
        (PartitionKey("metrics", WS, date(2026, 6, 1), 10), one)
    ]
    # 3 rows an hour apart from 23:59:58: three partitions, across midnight
    three = _lake(range(3), datetime(2026, 6, 1, 23, 59, 58, tzinfo=UTC), timedelta(hours=1))
    parts = split_by_hour("metrics", WS, three)
    assert [k for k, _ in parts] == [
        PartitionKey("metrics", WS, date(2026, 6, 1), 23),
        PartitionKey("metrics", WS, date(2026, 6, 2), 0),
        PartitionKey("metrics", WS, date(2026, 6, 2), 1),
    ]
    assert [t.column("pps").to_pylist() for _, t in parts] == [[0.0], [1.0], [2.0]]
    assert split_by_hour("metrics", WS, three.slice(0, 0)) == []


def test_a_large_group_is_handed_out_in_pieces() -> None:
    buf = Buffer(flush_rows=250, flush_age_secs=60, max_bytes=1 << 30)
    key = PartitionKey("metrics", WS, date(2026, 6, 1), 10)
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    for seq in range(1, 11):  # 10 batches of 100 rows; pieces of at most 250, cut between them
        buf.add(key, _lake(range(seq * 100, seq * 100 + 100), start), seq, now=0.0)
    pieces = buf.take_due(now=0.0)
    assert [p.rows for p in pieces] == [200] * 5
    assert sorted(s for p in pieces for s in p.seqs) == list(range(1, 11))
    assert sum(p.rows for p in pieces) == buf.rows == 1000
    assert buf.lowest_seq() == 1
    buf.done(pieces[1])
    buf.restore(pieces[0])  # a failed write goes back
    assert buf.lowest_seq() == 1
    for p in [*buf.take_due(now=0.0, force=True), *pieces[2:]]:
        buf.done(p)
    assert buf.rows == 0 and buf.nbytes == 0 and buf.lowest_seq() is None


def test_sort_by_node_time_matches_a_plain_sort() -> None:
    nodes = [str(uuid.uuid4()) for _ in range(5)]
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    parts = []
    for i in range(12):  # interleaved batches whose times overlap, as re-sent data would
        t = _lake(range(i * 50, i * 50 + 50), start + timedelta(seconds=(i * 7) % 30))
        parts.append(
            t.set_column(0, "node_uuid", pa.array([nodes[(i + j) % 5] for j in range(50)]))
        )
    table = pa.concat_tables(parts)
    expected = table.sort_by([("node_uuid", "ascending"), ("time", "ascending")])
    assert sort_by_node_time(table).equals(expected, check_metadata=True)
    # a span too long for the packed key falls back to the plain sort
    wide = _lake(range(10), datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=3))
    wide = pa.concat_tables([wide.slice(5), wide.slice(0, 5)])
    assert sort_by_node_time(wide).column("pps").to_pylist() == [float(i) for i in range(10)]


def test_split_by_hour_with_the_decoders_time_span_gives_the_same_parts() -> None:
    one = _lake(range(3), datetime(2026, 6, 1, 10, 0, 5, tzinfo=UTC))
    three = _lake(range(3), datetime(2026, 6, 1, 23, 59, 58, tzinfo=UTC), timedelta(hours=1))
    for table in (one, three):
        micros = table.column("time").cast(pa.int64()).to_pylist()
        span = (min(micros), max(micros))
        assert split_by_hour("metrics", WS, table, span) == split_by_hour("metrics", WS, table)
