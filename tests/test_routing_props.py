"""Property tests of the collector fast paths: text columns checked per distinct value, routing
on distinct values, and the buffer's superseded and pressure rules. Each fast path must give
what the row-by-row path gives."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, date, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.buffer import Buffer
from ingest.decode import _IPV4, _IPV6, _UUID, _check_column
from ingest.errors import DecodeError
from ingest.receiver import latest_per_node
from ingest.routing import to_lake_table
from ingest.schema import FLOWS, METRICS
from store.lake import PartitionKey

NODES = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(4)]
IPS = ["198.18.0.1", "198.18.0.2", "2001:db8::1", "198.18.0.4"]
INDEX = {**{n: n for n in NODES}, **{"ip:" + ip: n for n, ip in zip(NODES, IPS, strict=True)}}
OTHER_UUID = str(uuid.UUID(int=99))

_UUIDS = st.sampled_from([*NODES, NODES[0].upper(), NODES[1][:9] + "ABCD" + NODES[1][13:]])
_NODE_VALUES = st.one_of(_UUIDS, st.just(OTHER_UUID), st.none(), st.just("not-a-uuid"))
_IP_VALUES = st.one_of(
    st.sampled_from(IPS),
    st.sampled_from(["2001:DB8::1", "2001:db8:0::1", "203.0.113.9", "bogus", "999.1.1.1"]),
    st.none(),
)


def _slow_text(
    name: str, kind: str, required: bool, values: list[str | None]
) -> list[str | None] | str:
    """The row-by-row reference: every value matched on its own, UUIDs lower-cased."""
    if required and None in values:
        return f"column {name} must not contain nulls"
    for v in values:
        if v is None:
            continue
        ok = (re.search(_IPV4, v) or re.search(_IPV6, v)) if kind == "ip" else re.search(_UUID, v)
        if not ok:
            what = "an IPv4 or IPv6 address" if kind == "ip" else "a UUID"
            return f"column {name} holds a value that is not {what}"
    return [v.lower() if v is not None and kind == "uuid" else v for v in values]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(["node", "node_ip", "dst_ip", "src_ip"]),
    values=st.data(),
    chunks=st.integers(1, 3),
)
def test_text_checked_per_distinct_value_equals_per_row(
    name: str, values: st.DataObject, chunks: int
) -> None:
    kind = METRICS if name in ("node", "node_ip") else FLOWS
    col = next(c for c in kind.columns if c.name == name)
    strategy = _NODE_VALUES if col.kind == "uuid" else _IP_VALUES
    rows: list[str | None] = values.draw(st.lists(strategy, max_size=40))
    cut = [rows[i::chunks] for i in range(chunks)]
    arr = pa.chunked_array([pa.array(c, pa.string()) for c in cut], pa.string())
    flat = [v for c in cut for v in c]
    expected = _slow_text(name, col.kind, col.required, flat)
    try:
        got: list[str | None] | str = _check_column(name, col, arr).to_pylist()
    except DecodeError as exc:
        got = str(exc)
    assert got == expected


def _slow_route(table: pa.Table, kind_name: str) -> list[str | None] | str:
    """Row by row: node, then node_ip, then (flows) dst_ip; the first error the fast path
    raises for the same table."""
    names = table.column_names

    def by_ip(v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return INDEX.get("ip:" + ipaddress.ip_address(v).compressed)
        except ValueError:
            return None

    routed: list[str | None] = [None] * table.num_rows
    for name, look in (("node", INDEX.get), ("node_ip", by_ip)):
        if name in names:
            col = table.column(name).to_pylist()
            found = [None if v is None else look(v) for v in col]
            routed = [r if r is not None else f for r, f in zip(routed, found, strict=True)]
            if any(v is not None and f is None for v, f in zip(col, found, strict=True)):
                return f"column {name} holds a value that names no node of this workspace"
    if kind_name == "flows" and "dst_ip" in names:
        found = [by_ip(v) for v in table.column("dst_ip").to_pylist()]
        routed = [r if r is not None else f for r, f in zip(routed, found, strict=True)]
    if table.num_rows and any(r is None for r in routed):
        return "some rows match no node"
    return routed


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    data=st.data(),
    use_node=st.booleans(),
    use_ip=st.booleans(),
    flows=st.booleans(),
)
def test_routing_on_distinct_values_equals_row_by_row(
    data: st.DataObject, use_node: bool, use_ip: bool, flows: bool
) -> None:
    n = data.draw(st.integers(0, 30))
    node_v = st.one_of(st.sampled_from(NODES), st.just(OTHER_UUID), st.none())
    ip_v = st.one_of(st.sampled_from([*IPS, "2001:0db8::1", "203.0.113.9"]), st.none())
    cols: dict[str, pa.Array] = {
        "time": pa.array([datetime(2026, 6, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC"))
    }
    if use_node:
        cols["node"] = pa.array(data.draw(st.lists(node_v, min_size=n, max_size=n)), pa.string())
    if use_ip:
        cols["node_ip"] = pa.array(data.draw(st.lists(ip_v, min_size=n, max_size=n)), pa.string())
    kind = FLOWS if flows else METRICS
    if flows:
        cols.pop("node_ip", None)
        cols["dst_ip"] = pa.array(data.draw(st.lists(ip_v, min_size=n, max_size=n)), pa.string())
    table = pa.table(cols)
    expected = _slow_route(table, kind.name)
    try:
        lake = to_lake_table(kind, table, source="t", index=INDEX)
        got: list[str | None] | str = lake.column("node_uuid").to_pylist()
    except DecodeError as exc:
        got = str(exc)
        if got.startswith("some rows match no node") or got.startswith("a collector key"):
            got = "some rows match no node"
    if not use_node and not use_ip and not flows:
        assert got == "some rows match no node"  # no routing column at all
        return
    assert got == expected


_WS = [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "take", "done", "restore"]),
            st.integers(0, 1),  # workspace
            st.integers(0, 5),  # hour
            st.integers(1, 40),  # rows
        ),
        max_size=60,
    ),
    max_rows=st.sampled_from([100, 1000, 1 << 40]),
)
def test_buffer_rules_hand_out_every_row_once(
    ops: list[tuple[str, int, int, int]], max_rows: int
) -> None:
    """Whatever makes a group due (size, age, a later hour, memory pressure), every row added
    is handed out exactly once, in-flight rows stay counted and the counts return to zero."""
    table = pa.table({"x": pa.array(range(40), pa.int64())})  # 8 bytes a row
    buf = Buffer(flush_rows=50, flush_age_secs=1e9, max_bytes=max_rows * 8)
    added: list[tuple[int, int]] = []  # (seq, rows)
    handed: list[tuple[int, int]] = []
    flying = []
    now = 0.0
    for seq, (op, ws, hour, rows) in enumerate(ops, start=1):
        now += 1.0
        key = PartitionKey("metrics", _WS[ws], date(2026, 6, 1), hour)
        if op == "add":
            buf.add(key, table.slice(0, rows), seq, now)
            added.append((seq, rows))
        elif op == "take":
            flying += buf.take_due(now)
        elif op == "done" and flying:
            g = flying.pop(0)
            buf.done(g)
            handed += [(s, t.num_rows) for s, t in zip(g.seqs, g.tables, strict=True)]
        elif op == "restore" and flying:
            buf.restore(flying.pop())
        lowest = buf.lowest_seq()
        pending = {s for s, _ in added} - {s for s, _ in handed}
        assert lowest == (min(pending) if pending else None)
        assert buf.rows == sum(r for _, r in added) - sum(r for _, r in handed)
    for g in [*flying, *buf.take_due(now, force=True)]:
        buf.done(g)
        handed += [(s, t.num_rows) for s, t in zip(g.seqs, g.tables, strict=True)]
    assert sorted(handed) == sorted(added)
    assert buf.rows == 0 and buf.nbytes == 0 and len(buf) == 0


def test_a_group_left_behind_is_due() -> None:
    """A sender of history in time order: once later hours got a quarter of a file's rows
    since an hour's last batch, that hour is written without waiting out its age; an hour
    that keeps receiving rows (a backfill next to live traffic) is not."""
    table = pa.table({"x": pa.array(range(10), pa.int64())})
    buf = Buffer(flush_rows=40, flush_age_secs=60, max_bytes=1 << 30)
    h09, h10, h11 = (PartitionKey("metrics", _WS[0], date(2026, 6, 1), h) for h in (9, 10, 11))
    other = PartitionKey("metrics", _WS[1], date(2026, 6, 1), 9)
    buf.add(h10, table, 1, 0.0)
    buf.add(other, table, 2, 0.0)
    buf.add(h11, table.slice(0, 5), 3, 0.0)
    assert buf.take_due(1.0) == []  # 5 rows of the later hour: not yet
    buf.add(h11, table.slice(0, 5), 4, 0.0)
    assert [g.key for g in buf.take_due(1.0)] == [h10]  # 10 = 40 // 4: h10 is done
    for seq in range(5, 9):  # a backfill of h09 interleaved with live rows of h11
        buf.add(h09 if seq % 2 else h11, table.slice(0, 6), seq, 0.0)
        assert buf.take_due(1.0) == []
    assert [g.key for g in buf.take_due(61.0)] == [other, h11, h09]  # the others by age


def test_pressure_makes_the_longest_waiting_groups_due() -> None:
    table = pa.table({"x": pa.array(range(10), pa.int64())})  # 80 bytes
    buf = Buffer(flush_rows=1000, flush_age_secs=60, max_bytes=500)
    keys = [PartitionKey("metrics", str(uuid.UUID(int=i)), date(2026, 6, 1), 1) for i in range(3)]
    for i, key in enumerate(keys):
        buf.add(key, table, i + 1, float(i))
    assert buf.take_due(3.0) == []  # 240 bytes: not past half
    buf.add(keys[2], table, 4, 3.0)  # 320 bytes: past half; at most 125 stay
    assert [g.key for g in buf.take_due(3.0)] == keys
    assert buf.nbytes == 320  # still counted while in flight


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    data=st.data(),
    count=st.integers(1, 6),
    seconds=st.integers(1, 120),
    ordered=st.booleans(),
)
def test_latest_per_node_equals_a_plain_maximum(
    data: st.DataObject, count: int, seconds: int, ordered: bool
) -> None:
    """Newest row per node of a collector's batch (the tail shortcut when times never decrease,
    the full table otherwise) equals the row of each node's greatest time."""
    pairs = [(s, i) for s in range(seconds) for i in range(count)]
    keep = data.draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    rows = [p for p, k in zip(pairs, keep, strict=True) if k] or pairs[:1]
    if not ordered:
        rows = data.draw(st.permutations(rows))
    start = datetime(2026, 6, 1, tzinfo=UTC)
    table = pa.table(
        {
            "node_uuid": pa.array([NODES[i % 4] + str(i) for _, i in rows], pa.string()),
            "time": pa.array([start.timestamp() * 1e6 + s * 1e6 for s, _ in rows], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "pps": pa.array([float(s * 10 + i) for s, i in rows]),
            "bps": pa.array([float(s * 100 + i) for s, i in rows]),
        }
    )
    newest: dict[str, tuple[int, int]] = {}
    for s, i in rows:
        node = NODES[i % 4] + str(i)
        newest[node] = max(newest.get(node, (s, i)), (s, i))
    expected = sorted(
        (node, start.timestamp() + s, float(s * 10 + i), float(s * 100 + i))
        for node, (s, i) in newest.items()
    )
    got = sorted((n, t.timestamp(), p, b) for n, t, p, b in latest_per_node(table))
    assert got == expected
