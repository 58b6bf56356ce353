"""The lake's ordering of a group's rows (``sort_by_node_time`` / ``order_by_node_time``) must be
a stable sort by node then time whatever the shape: a collector's history in time order (the
counting-sort path), shuffled rows (the full sort), chunks that name different nodes, and rows
of one node at the same second (kept in arrival order)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.lake import order_by_node_time, sort_by_node_time

BASE = int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() * 1_000_000)
NODES = [str(uuid.UUID(int=i * 7919 + 11)) for i in range(60)]
SCHEMA = pa.schema(
    [
        pa.field("node_uuid", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("row", pa.int64()),
        pa.field("source", pa.string()),
    ]
)


def _table(nodes: list[str], micros: list[int], first_row: int = 0) -> pa.Table:
    n = len(nodes)
    return pa.Table.from_arrays(
        [
            pa.array(nodes, pa.string()),
            pa.array([BASE + m for m in micros], pa.timestamp("us", tz="UTC")),
            pa.array(range(first_row, first_row + n), pa.int64()),
            pa.array(["arrow"] * n, pa.string()),
        ],
        schema=SCHEMA,
    )


def _plain(table: pa.Table) -> pa.Table:
    """The reference: Arrow's stable multi-column sort."""
    return table.sort_by([("node_uuid", "ascending"), ("time", "ascending")])


def _history(count: int, seconds: int, first: int = 0) -> tuple[list[str], list[int]]:
    """A collector's batch: every node's second t, then every node's second t + 1, ..."""
    nodes = [NODES[i % count] for i in range(count * seconds)]
    micros = [(first + i // count) * 1_000_000 for i in range(count * seconds)]
    return nodes, micros


def test_time_ordered_history_of_many_nodes() -> None:
    nodes, micros = _history(12, 50)
    table = _table(nodes, micros)
    out = sort_by_node_time(table)
    assert out.equals(_plain(table), check_metadata=True)
    assert out.schema == table.schema
    # every node's rows together, in time order
    assert out.column("node_uuid").to_pylist() == sorted(nodes)


def test_chunks_naming_different_nodes_share_one_ranking() -> None:
    """The first chunk names a few nodes, later chunks others: ranks must be global."""
    a = _table(*_history(3, 10, first=0), first_row=0)
    late_nodes, late_micros = _history(12, 10, first=10)
    b = _table(list(reversed(late_nodes)), late_micros, first_row=1000)
    table = pa.concat_tables([a, b])
    assert table.column("node_uuid").num_chunks == 2
    assert sort_by_node_time(table).equals(_plain(table))
    assert order_by_node_time([a, b]).equals(_plain(table))


def test_a_node_going_back_in_time_gets_the_full_sort() -> None:
    nodes, micros = _history(5, 20)
    micros[37] -= 7_000_000  # one late row
    table = _table(nodes, micros)
    out = sort_by_node_time(table)
    assert out.equals(_plain(table))
    node = nodes[37]
    cols = out.select(["node_uuid", "time"]).to_pydict()
    times = [t for n, t in zip(cols["node_uuid"], cols["time"], strict=True) if n == node]
    assert times == sorted(times)


def test_equal_times_keep_arrival_order() -> None:
    nodes = [NODES[0], NODES[1], NODES[0], NODES[1], NODES[0]]
    table = _table(nodes, [5, 5, 5, 5, 5])
    out = sort_by_node_time(table)
    assert out.column("row").to_pylist() == [0, 2, 4, 1, 3]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 12),
    rows=st.integers(2, 400),
    pieces=st.integers(1, 6),
    shuffle=st.sampled_from(["none", "some", "all"]),
)
def test_same_rows_and_order_as_the_plain_sort(
    seed: int, count: int, rows: int, pieces: int, shuffle: str
) -> None:
    rng = random.Random(seed)
    nodes = [NODES[rng.randrange(count)] for _ in range(rows)]
    micros = sorted(rng.randrange(0, 600) * 1_000_000 for _ in range(rows))
    if shuffle == "some":
        for _ in range(max(1, rows // 20)):
            i, j = rng.randrange(rows), rng.randrange(rows)
            micros[i], micros[j] = micros[j], micros[i]
    elif shuffle == "all":
        rng.shuffle(micros)
    cuts = sorted(rng.sample(range(1, rows), min(pieces - 1, rows - 1)))
    tables = []
    for lo, hi in zip([0, *cuts], [*cuts, rows], strict=True):
        tables.append(_table(nodes[lo:hi], micros[lo:hi], first_row=lo))
    whole = pa.concat_tables(tables)
    expected = _plain(whole)
    assert sort_by_node_time(whole).equals(expected)
    assert order_by_node_time(tables).equals(expected)


def test_an_hour_too_wide_for_the_packed_key_still_sorts() -> None:
    table = _table([NODES[1], NODES[0], NODES[1]], [3 << 32, 0, 1])
    assert sort_by_node_time(table).equals(_plain(table))


@pytest.mark.parametrize("count", [1, 60])
def test_large_group_in_time_order(count: int) -> None:
    nodes, micros = _history(count, 3000 // count)
    table = _table(nodes, micros)
    assert sort_by_node_time(table).equals(_plain(table))
