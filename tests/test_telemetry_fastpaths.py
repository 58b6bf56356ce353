"""The shortcuts of the telemetry hot path give exactly what the long way gives.

- ``order_by_node_time``: a lake write orders agents' batches without sorting rows when it can;
  the rows and their order must be those of ``sort_by_node_time`` of the concatenation.
- ``decode_body`` checks every float column at once; a bad value must still be refused, naming
  its column, and large but finite values must still pass.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decode import decode_body
from ingest.errors import DecodeError
from ingest.routing import to_lake_table
from ingest.schema import METRICS
from store.lake import order_by_node_time, sort_by_node_time

from .telemetry import ipc_bytes, metrics_table

NODES = sorted(str(uuid.uuid4()) for _ in range(3))
START = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
TIME = pa.timestamp("us", tz="UTC")


def _batch(first: int, node: int, offsets: list[int], mixed: bool) -> pa.Table:
    """A lake-form batch: rows ``first``.. (pps carries the row number) of one node at the given
    second offsets, or (``mixed``) of nodes taken in turn."""
    ids = range(first, first + len(offsets))
    table = metrics_table(ids, start=START)
    times = pa.array([START + timedelta(seconds=s) for s in offsets], TIME)
    lake = to_lake_table(METRICS, table.set_column(0, "time", times), source="t", node=NODES[0])
    owners = [NODES[(node + (j if mixed else 0)) % len(NODES)] for j in range(len(offsets))]
    return lake.set_column(0, lake.schema.field(0), pa.array(owners, pa.string()))


_batches = st.lists(
    st.tuples(
        st.integers(0, len(NODES) - 1),  # node
        st.integers(0, 30),  # first second
        st.lists(st.integers(0, 3), max_size=6),  # steps between rows (0: the same second)
        st.booleans(),  # rows in reverse order (times decrease)
        st.booleans(),  # rows of several nodes
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(_batches)
def test_order_by_node_time_is_a_stable_sort(
    specs: list[tuple[int, int, list[int], bool, bool]],
) -> None:
    tables = []
    first = 0
    for node, start, steps, reverse, mixed in specs:
        offsets = [start]
        for step in steps:
            offsets.append(offsets[-1] + step)
        if reverse:
            offsets.reverse()
        tables.append(_batch(first, node, offsets, mixed))
        first += len(offsets)
    if not tables:
        tables = [_batch(0, 0, [], False)]
    expected = sort_by_node_time(pa.concat_tables(tables))
    got = order_by_node_time(tables)
    assert got.equals(expected, check_metadata=True)
    assert got.column("pps").to_pylist() == expected.column("pps").to_pylist()


def test_agents_batches_are_ordered_without_moving_rows() -> None:
    # two nodes, each sending batches of increasing time, arriving interleaved and out of order
    tables = [
        _batch(0, 1, [10, 11, 12], False),
        _batch(3, 0, [20, 21], False),
        _batch(5, 1, [0, 1, 2], False),
        _batch(8, 0, [21, 22], False),  # starts at the second the node's previous batch ended
    ]
    got = order_by_node_time(tables)
    assert got.column("pps").to_pylist() == [3.0, 4.0, 8.0, 9.0, 5.0, 6.0, 7.0, 0.0, 1.0, 2.0]
    # the batches themselves, reordered: one chunk per batch, nothing copied into a new one
    assert got.column("pps").num_chunks == len(tables)
    # overlapping batches of one node are sorted row by row
    tables.append(_batch(10, 0, [5, 30], False))
    assert order_by_node_time(tables).column("pps").num_chunks == 1


def _metrics_body(**columns: list[float]) -> bytes:
    n = len(next(iter(columns.values())))
    table = metrics_table(range(n), start=datetime.now(UTC) - timedelta(minutes=1))
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values, pa.float64()))
    return ipc_bytes(table)


def _decode(body: bytes) -> pa.Table:
    now = datetime.now(UTC)
    decoded = decode_body(
        body, METRICS, max_rows=1000, now=now, max_age=timedelta(days=1), max_skew=timedelta(0)
    )
    return decoded.table


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -1.0, -1e-300])
def test_a_bad_float_is_refused_naming_its_column(bad: float) -> None:
    body = _metrics_body(tcp_pps=[1.0, 2.0, 3.0], udp_pps=[1.0, bad, 3.0])
    with pytest.raises(DecodeError) as info:
        _decode(body)
    assert info.value.column == "udp_pps"


def test_large_finite_floats_pass_even_when_their_sum_overflows() -> None:
    big = 1.7e308
    table = _decode(_metrics_body(tcp_pps=[big, big, big], udp_pps=[0.0, -0.0, 1e-300]))
    assert table.column("tcp_pps").to_pylist() == [big, big, big]


def test_nulls_in_optional_float_columns_pass() -> None:
    body = _metrics_body(tcp_pps=[None, 1.0, None])  # type: ignore[list-item]
    assert _decode(body).column("tcp_pps").null_count == 2
