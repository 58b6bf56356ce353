"""Property tests of the telemetry path: the decoder never fails uncleanly, the receiver never
answers 5xx to what a client sent, and acknowledged rows reach the lake exactly once across
crashes and re-sends."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import decode_body
from ingest.errors import DecodeError
from ingest.pipeline import Pipeline, PipelineSettings, WireBatch
from ingest.routing import to_lake_table
from ingest.schema import FLOWS, METRICS

from .conftest import Server, new_workspace, start_server
from .telemetry import crash_pipeline, ipc_bytes, metrics_table, post_batch

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = {"max_age": timedelta(days=15), "max_skew": timedelta(minutes=5)}


def _decode(body: bytes, kind=METRICS):  # type: ignore[no-untyped-def]
    return decode_body(body, kind, max_rows=10_000, now=NOW, **WINDOW)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_decode_error_or_table(body: bytes) -> None:
    for kind in (METRICS, FLOWS):
        try:
            _decode(body, kind)
        except DecodeError as exc:
            assert str(exc)


_ARROW_TYPES = st.sampled_from(
    [
        pa.int8(),
        pa.uint16(),
        pa.int64(),
        pa.float32(),
        pa.float64(),
        pa.string(),
        pa.bool_(),
        pa.timestamp("s"),
        pa.timestamp("ms", tz="UTC"),
        pa.timestamp("ns", tz="Europe/Paris"),
        pa.binary(),
        pa.date32(),
    ]
)
_NAMES = st.sampled_from(
    [c.name for c in METRICS.columns] + [c.name for c in FLOWS.columns] + ["junk"]
)


@st.composite
def _mismatched_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 5))
    names = draw(st.lists(_NAMES, min_size=1, max_size=8, unique=True))
    cols = {}
    for name in names:
        typ = draw(_ARROW_TYPES)
        if pa.types.is_timestamp(typ):
            values = [NOW.replace(tzinfo=None) - timedelta(seconds=i) for i in range(n)]
        elif pa.types.is_floating(typ):
            values = draw(st.lists(st.floats(allow_nan=True, width=32), min_size=n, max_size=n))
        elif pa.types.is_integer(typ):
            lo, hi = (0, 255) if typ == pa.int8() or typ == pa.uint16() else (-(2**40), 2**40)
            lo = max(lo, -128) if typ == pa.int8() else lo
            hi = 127 if typ == pa.int8() else hi
            values = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
        elif typ == pa.string():
            values = draw(st.lists(st.text(max_size=40), min_size=n, max_size=n))
        elif typ == pa.bool_():
            values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        elif typ == pa.binary():
            values = draw(st.lists(st.binary(max_size=16), min_size=n, max_size=n))
        else:
            values = [NOW.date()] * n
        if n and draw(st.booleans()):
            values[0] = None
        cols[name] = pa.array(values, typ)
    return pa.table(cols)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_mismatched_tables(), st.sampled_from([None, "lz4", "zstd"]))
def test_schema_mismatches_give_decode_error_or_valid_lake_rows(
    table: pa.Table, compression: str | None
) -> None:
    body = ipc_bytes(table, compression)
    for kind in (METRICS, FLOWS):
        try:
            decoded = _decode(body, kind)
        except DecodeError:
            continue
        node = str(uuid.uuid4())
        try:
            lake = to_lake_table(kind, decoded.table, source="arrow", node=node)
        except DecodeError:
            continue
        assert lake.schema == kind.lake_schema
        assert lake.num_rows == table.num_rows


# --- against the live server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("props") / "data",
        env={"FLOODWATCH_API__AUTH_FAILURES_PER_MINUTE": "100000"},
    )
    yield srv
    srv.stop()


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=4096), kind=st.sampled_from(["metrics", "flows"]))
def test_receiver_never_answers_5xx_to_client_bytes(
    pserver: Server, body: bytes, kind: str
) -> None:
    key = _node_key(pserver)
    r = post_batch(pserver.base_url, key, body, kind=kind)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["ok"] is False


_KEYS: dict[str, str] = {}


def _node_key(srv: Server) -> str:
    if srv.base_url not in _KEYS:
        ws = new_workspace(srv)
        r = ws.client.post("/api/v1/nodes", json={"name": "props", "ip": "192.0.2.50"})
        _KEYS[srv.base_url] = r.json()["node"]["api_key"]
    return _KEYS[srv.base_url]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(table=_mismatched_tables())
def test_receiver_answers_schema_mismatches_with_4xx_or_202(
    pserver: Server, table: pa.Table
) -> None:
    r = post_batch(pserver.base_url, _node_key(pserver), ipc_bytes(table))
    assert r.status_code in (202, 400, 413), r.text


# --- exactly once through the pipeline, with crashes --------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 300), st.booleans()),
        st.tuples(st.just("resend"), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("flush"), st.just(0), st.booleans()),
        st.tuples(st.just("crash"), st.just(0), st.booleans()),
    ),
    min_size=1,
    max_size=12,
)


def _lake_ids(lake_root: Path) -> list[int]:
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT CAST(pps AS BIGINT) FROM read_parquet('{lake_root}/metrics/*/*/*/*.parquet')"
        ).fetchall()
    finally:
        con.close()
    return sorted(int(r[0]) for r in rows)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(ops=_OPS)
def test_acknowledged_rows_are_in_the_lake_exactly_once(
    ops: list[tuple[str, int, bool]],
) -> None:
    ws = str(uuid.uuid4())
    node = str(uuid.uuid4())
    settings_ = PipelineSettings(
        flush_rows=200, flush_age_secs=3600, maintenance_interval_secs=3600
    )

    async def scenario(data: Path) -> tuple[set[int], list[int]]:
        p = Pipeline(data, settings_)
        await p.start()
        acked: set[int] = set()
        sent: list[tuple[str, range]] = []
        next_id = 0
        for op, n, straddle in ops:
            if op == "submit" or (op == "resend" and not sent):
                ids = range(next_id, next_id + max(n, 1))
                next_id = ids.stop
                key = f"k{len(sent)}"
                sent.append((key, ids))
            elif op == "resend":
                key, ids = sent[n % len(sent)]
            elif op == "flush":
                await p.flush(force=straddle)
                continue
            else:
                await crash_pipeline(p)
                p = Pipeline(data, settings_)
                await p.start()
                continue
            # rows are 1 ms apart; with ``straddle`` half of them fall after the hour boundary,
            # so that one batch spans two lake partitions
            before_hour = len(ids) // 2 if straddle else len(ids) + 10
            table = metrics_table(ids, start=NOW - timedelta(milliseconds=before_hour))
            body = ipc_bytes(table)
            lake = to_lake_table(METRICS, _decode(body).table, source="t", node=node)
            # WAL entries of every form: lake-form IPC, the body with the node, the body with
            # the routed node column (as for a collector key)
            form = ids.start % 3
            wire = WireBatch.of(body, "t", node if form == 1 else None, lake) if form else None
            accepted, duplicate = await p.submit("metrics", ws, lake, key, wire)
            assert duplicate or accepted == len(ids)
            acked.update(ids)
        await p.stop()
        return acked, _lake_ids(data / "lake")

    with tempfile.TemporaryDirectory() as tmp:
        # a hang is a bug too: fail rather than block the suite
        acked, in_lake = asyncio.run(asyncio.wait_for(scenario(Path(tmp)), timeout=120))
    assert in_lake == sorted(acked)
