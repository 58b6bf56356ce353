"""WAL entries that hold the request body as it arrived (``form: wire``): after a crash, replay
rebuilds exactly the lake rows that were acknowledged, for node keys and collector keys."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from ingest.decode import decode_body
from ingest.pipeline import Pipeline, PipelineSettings, WireBatch, encode_ipc, lake_table_of
from ingest.routing import to_lake_table
from ingest.schema import FLOWS, METRICS, RecordKind

from .telemetry import crash_pipeline, flows_table, ipc_bytes, metrics_table

# Far enough in the past that a replay which checked the time window again would refuse the rows.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WS = str(uuid.uuid4())
NODE_A, NODE_B = sorted(str(uuid.uuid4()) for _ in range(2))
INDEX = {NODE_A: NODE_A, NODE_B: NODE_B, "ip:192.0.2.1": NODE_A, "ip:192.0.2.2": NODE_B}


def _arrive(
    kind: RecordKind, wire: pa.Table, compression: str | None, node: str | None
) -> tuple[pa.Table, WireBatch]:
    """What the receiver does with a body: decode, route, and keep the body for the WAL."""
    body = ipc_bytes(wire, compression)
    decoded = decode_body(
        body,
        kind,
        max_rows=100_000,
        now=NOW,
        max_age=timedelta(days=15),
        max_skew=timedelta(minutes=5),
    )
    index = None if node else INDEX
    lake = to_lake_table(kind, decoded.table, source="arrow", node=node, index=index)
    return lake, WireBatch.of(body, "arrow", node, lake)


def _cases() -> list[tuple[str, pa.Table, WireBatch]]:
    start = NOW - timedelta(minutes=1)
    out: list[tuple[str, pa.Table, WireBatch]] = []
    # node key: the body alone
    out.append(("metrics", *_arrive(METRICS, metrics_table(range(50), start=start), "lz4", NODE_A)))
    # collector key, rows named by node and by node_ip (a column the lake does not keep)
    two_nodes = metrics_table(
        range(100, 160),
        start=start,
        node=pa.array([NODE_A.upper() if i % 3 else NODE_B for i in range(60)]),
    )
    out.append(("metrics", *_arrive(METRICS, two_nodes, None, None)))
    by_ip = metrics_table(
        range(200, 240),
        start=start,
        node_ip=pa.array(["192.0.2.1" if i % 2 else "192.0.2.2" for i in range(40)]),
    )
    out.append(("metrics", *_arrive(METRICS, by_ip, "zstd", None)))
    # flows routed by dst_ip, with a column the server does not know
    flows = flows_table(30, "192.0.2.2", start=start, extra=pa.array(["x"] * 30))
    out.append(("flows", *_arrive(FLOWS, flows, "lz4", None)))
    return out


def test_lake_table_of_rebuilds_the_routed_rows() -> None:
    for kind, lake, wire in _cases():
        header = {"form": "wire", "wire_len": wire.wire_len, "src": wire.source}
        if wire.node is not None:
            header["node"] = wire.node
        again = lake_table_of(kind, header, wire.payload)
        assert again.equals(lake, check_metadata=True), kind
        # entries written before the wire form (no "form") still read as lake-form IPC
        assert lake_table_of(kind, {}, encode_ipc(lake, "lz4")).equals(lake)


def _buffered(p: Pipeline, kind: str) -> pa.Table:
    tables = [t for key, g in p.buffer._groups.items() if key.kind == kind for t in g.tables]
    order = "pps" if kind == "metrics" else "src_port"
    return pa.concat_tables(tables).sort_by([("node_uuid", "ascending"), (order, "ascending")])


def test_wire_entries_replay_after_a_crash(tmp_path: Path) -> None:
    settings = PipelineSettings(flush_age_secs=3600, maintenance_interval_secs=3600)
    cases = _cases()

    async def scenario() -> None:
        p = Pipeline(tmp_path, settings)
        await p.start()
        for i, (kind, lake, wire) in enumerate(cases):
            assert await p.submit(kind, WS, lake, f"b{i}", wire) == (lake.num_rows, False)
        before = {k: _buffered(p, k) for k in ("metrics", "flows")}
        await crash_pipeline(p)

        q = Pipeline(tmp_path, settings)
        await q.start()
        for kind in ("metrics", "flows"):
            assert _buffered(q, kind).equals(before[kind]), kind
        # the batch ids came back with the entries: a re-send is a duplicate
        kind, lake, wire = cases[0]
        assert await q.submit(kind, WS, lake, "b0", wire) == (0, True)
        await q.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
