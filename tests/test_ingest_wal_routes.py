"""A collector's batch is logged in the WAL as its body plus the node-index entries its routing
used (``{"routes": ...}``), not as a copy of its routed node column: replay must route the body
again to exactly the acknowledged rows, even after the workspace's nodes changed, and entries
in the older form (an Arrow IPC stream of ``node_uuid``) must still replay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from ingest.decode import decode_body
from ingest.errors import DecodeError
from ingest.pipeline import Pipeline, PipelineSettings, WireBatch, lake_table_of
from ingest.receiver import latest_per_node
from ingest.routing import to_lake_table
from ingest.schema import FLOWS, METRICS, RecordKind

from .telemetry import crash_pipeline, flows_table, ipc_bytes, metrics_table

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WS = str(uuid.uuid4())
NODES = sorted(str(uuid.uuid4()) for _ in range(4))
IPS = ["192.0.2.1", "2001:db8::7", "192.0.2.3", "192.0.2.4"]
# what the server's node index looks like: uuid -> uuid and ip:<address> -> uuid; one node not
# named by any batch below, so that the logged routes are a strict subset
INDEX = {n: n for n in NODES} | {f"ip:{ip}": n for ip, n in zip(IPS, NODES, strict=True)}


def _header(wire: WireBatch) -> dict[str, object]:
    return {"form": "wire", "wire_len": wire.wire_len, "src": wire.source}


def _arrive(
    kind: RecordKind, table: pa.Table, compression: str | None
) -> tuple[pa.Table, WireBatch, dict[str, str]]:
    body = ipc_bytes(table, compression)
    decoded = decode_body(
        body,
        kind,
        max_rows=100_000,
        now=NOW,
        max_age=timedelta(days=15),
        max_skew=timedelta(minutes=5),
    )
    routes: dict[str, str] = {}
    lake = to_lake_table(kind, decoded.table, source="arrow", index=INDEX, routes=routes)
    return lake, WireBatch.of(body, "arrow", None, lake, routes), routes


def _cases() -> list[tuple[str, pa.Table, WireBatch, dict[str, str]]]:
    start = NOW - timedelta(minutes=1)
    by_uuid = metrics_table(
        range(60),
        start=start,
        node=pa.array([NODES[i % 3].upper() if i % 2 else NODES[i % 3] for i in range(60)]),
    )
    # IPv6 written in a long form: routing matches it by address, and so must replay
    by_ip = metrics_table(
        range(100, 140),
        start=start,
        node_ip=pa.array(["2001:0db8:0:0::7" if i % 2 else IPS[0] for i in range(40)]),
    )
    # both columns: node wins where present, node_ip where node is null
    both = metrics_table(
        range(200, 220),
        start=start,
        node=pa.array([NODES[2] if i < 10 else None for i in range(20)]),
        node_ip=pa.array([IPS[0]] * 20),
    )
    flows = flows_table(30, IPS[2], start=start)
    return [
        ("metrics", *_arrive(METRICS, by_uuid, "lz4")),
        ("metrics", *_arrive(METRICS, by_ip, None)),
        ("metrics", *_arrive(METRICS, both, "zstd")),
        ("flows", *_arrive(FLOWS, flows, "lz4")),
    ]


def test_routes_hold_only_the_index_entries_the_batch_used() -> None:
    cases = _cases()
    assert cases[0][3] == {n: n for n in NODES[:3]}
    assert cases[1][3] == {f"ip:{IPS[0]}": NODES[0], f"ip:{IPS[1]}": NODES[1]}
    assert cases[2][3] == {NODES[2]: NODES[2], f"ip:{IPS[0]}": NODES[0]}
    assert cases[3][3] == {f"ip:{IPS[2]}": NODES[2]}


def test_replay_routes_the_body_to_the_acknowledged_rows() -> None:
    for kind, lake, wire, routes in _cases():
        body = wire.payload[: wire.wire_len]
        trailer = wire.payload[wire.wire_len :]
        assert trailer.startswith(b"{") and orjson.loads(trailer) == {"routes": routes}
        again = lake_table_of(kind, _header(wire), wire.payload)
        assert again.equals(lake, check_metadata=True), kind
        # the older form of the same batch (node column as Arrow IPC) replays to the same rows
        old = WireBatch.of(body, "arrow", None, lake)
        assert not old.payload[old.wire_len :].startswith(b"{")
        assert lake_table_of(kind, _header(old), old.payload).equals(lake), kind


def test_payload_crc_is_that_of_the_whole_payload() -> None:
    import zlib

    for _, _, wire, _ in _cases():
        assert wire.crc == zlib.crc32(wire.payload)


def test_routes_that_no_longer_route_the_body_fail_loudly() -> None:
    """A damaged routes object is a decode error (replay logs and skips), never wrong rows."""
    kind, _, wire, _ = _cases()[1]
    body = wire.payload[: wire.wire_len]
    damaged = body + orjson.dumps({"routes": {f"ip:{IPS[0]}": NODES[0]}})
    with pytest.raises(DecodeError):
        lake_table_of(kind, _header(wire), damaged)


def test_collector_batches_replay_after_a_crash_without_the_index(tmp_path: Path) -> None:
    settings = PipelineSettings(flush_age_secs=3600, maintenance_interval_secs=3600)
    cases = _cases()

    def buffered(p: Pipeline, kind: str) -> pa.Table:
        tables = [t for key, g in p.buffer._groups.items() if key.kind == kind for t in g.tables]
        order = "pps" if kind == "metrics" else "src_port"
        return pa.concat_tables(tables).sort_by([("node_uuid", "ascending"), (order, "ascending")])

    async def scenario() -> None:
        p = Pipeline(tmp_path, settings)
        await p.start()
        for i, (kind, lake, wire, _) in enumerate(cases):
            assert await p.submit(kind, WS, lake, f"k:{i}", wire) == (lake.num_rows, False)
        before = {k: buffered(p, k) for k in ("metrics", "flows")}
        await crash_pipeline(p)
        # the nodes are gone from the workspace by now: replay needs only what the WAL holds
        INDEX.clear()
        try:
            q = Pipeline(tmp_path, settings)
            await q.start()
            for kind in ("metrics", "flows"):
                assert buffered(q, kind).equals(before[kind]), kind
            await q.stop()
        finally:
            INDEX.update({n: n for n in NODES})
            INDEX.update({f"ip:{ip}": n for ip, n in zip(IPS, NODES, strict=True)})

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_latest_per_node_with_a_bound_on_nodes() -> None:
    """The receiver passes how many nodes routing named at most; the answer is the same with
    and without that bound, for time-ordered batches and for shuffled ones."""
    start = NOW - timedelta(minutes=5)
    n = 240
    ordered = metrics_table(range(n), start=start, node=pa.array([NODES[i % 3] for i in range(n)]))
    lake = to_lake_table(METRICS, ordered, source="arrow", index=INDEX)
    shuffled = lake.take(pa.array([(i * 7) % n for i in range(n)]))
    for table in (lake, shuffled, lake.slice(0, 1)):
        expected = sorted(latest_per_node(table))
        for most in (1 if table.num_rows == 1 else 3, 4):
            assert sorted(latest_per_node(table, None, None, most)) == expected
        newest = {}
        for row in table.select(["node_uuid", "time", "pps", "bps"]).to_pylist():
            held = newest.get(row["node_uuid"])
            if held is None or row["time"] >= held[1]:
                newest[row["node_uuid"]] = (row["node_uuid"], row["time"], row["pps"], row["bps"])
        assert expected == sorted(newest.values())
