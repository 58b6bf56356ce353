"""agent.sender against a small local aiohttp server on 127.0.0.1, and against the real one.

The small server is a stand-in for the Floodwatch receiver used ONLY for fault injection (503,
413, 400, ... on demand). It still checks each request as the real one does: the headers of
docs/wire-format.md, and the body through the server's own decoder (ingest.decode). The last
test pushes to the real ``floodwatch serve`` (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from aiohttp import web

from agent.capture import FlowRow
from agent.errors import (
    BadBatch,
    Forbidden,
    RejectedBatch,
    Unauthorized,
    UnsupportedMediaType,
)
from agent.procfs import metrics_rows, read_sample
from agent.sender import CONTENT_TYPE, Sender, decode_stream, rows_to_table
from agent.spool import Spool
from ingest.decode import decode_body
from ingest.schema import KINDS, METRICS

from .conftest import Workspace

KEY = "k" * 64
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Answer:
    status: int
    retry_after: str | None = None
    error: dict[str, Any] = field(default_factory=dict)


@dataclass
class Received:
    kind: str
    headers: dict[str, str]
    body: bytes
    table: pa.Table

    @property
    def batch_id(self) -> str:
        return self.headers["X-Batch-Id"]


@dataclass
class FakeReceiver:
    url: str
    script: list[Answer]
    received: list[Received] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.read()
        decoded = decode_body(
            body,
            KINDS[kind],
            max_rows=1_000_000,
            now=datetime.now(UTC),
            max_age=timedelta(days=15),
            max_skew=timedelta(minutes=5),
        )
        self.received.append(Received(kind, dict(request.headers), body, decoded.table))
        self.got.set()
        answer = self.script.pop(0) if self.script else Answer(202)
        if answer.status == 202:
            batch_id = request.headers["X-Batch-Id"]
            duplicate = batch_id in self.stored
            self.stored.add(batch_id)
            payload: dict[str, Any] = {
                "ok": True,
                "accepted": 0 if duplicate else decoded.table.num_rows,
                "batch_id": batch_id,
                "duplicate": duplicate,
                "ignored_columns": [],
                "some_future_field": {"ignored": True},
            }
            return web.json_response(payload, status=202)
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        error = {"code": "error", "message": "scripted failure", **answer.error}
        return web.json_response(
            {"ok": False, "error": error}, status=answer.status, headers=headers
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def receiver(*script: Answer) -> AsyncIterator[FakeReceiver]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake = FakeReceiver(f"http://127.0.0.1:{sock.getsockname()[1]}", list(script))
    app = web.Application()
    app.router.add_post("/api/v1/telemetry/{kind}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield fake
    finally:
        await runner.cleanup()


@asynccontextmanager
async def sending(*script: Answer, **options: Any) -> AsyncIterator[tuple[FakeReceiver, Sender]]:
    """A receiver and a metrics Sender pointed at it; the sender is closed first."""
    async with receiver(*script) as srv:
        sender = Sender(srv.url, KEY, kind="metrics", **options)
        try:
            yield srv, sender
        finally:
            await sender.close()


def recorder(sleeps: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(secs: float) -> None:
        sleeps.append(secs)
        await asyncio.sleep(0)

    return sleep


def metric_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"time": NOW - timedelta(seconds=n - i), "pps": float(start + i), "bps": 8.0 * i}
        for i in range(n)
    ]


def pps(table: pa.Table) -> list[float]:
    return [float(v) for v in table.column("pps").to_pylist()]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_503_waits_retry_after_and_resends_the_same_batch_id() -> None:
    sleeps: list[float] = []

    async def scenario() -> None:
        async with sending(Answer(503, retry_after="1"), sleep=recorder(sleeps)) as (srv, sender):
            await sender.add(metric_rows(3))
            await sender.flush()
        first, second = srv.received
        assert first.batch_id == second.batch_id
        assert re.fullmatch(r"[0-9a-f]{32}-1", first.batch_id)
        assert first.body == second.body
        assert sleeps == [1.0]
        for r in srv.received:
            assert r.headers["Authorization"] == f"Bearer {KEY}"
            assert r.headers["Content-Type"] == CONTENT_TYPE
            assert r.headers["X-Floodwatch-Wire-Version"] == "1"
            assert "Content-Encoding" not in r.headers
        assert pps(second.table) == [0.0, 1.0, 2.0]
        assert second.table.schema.field("time").type == pa.timestamp("us", tz="UTC")
        s = sender.stats
        assert (s.acked_rows, s.retried_rows, s.retries, s.requests) == (3, 3, 1, 2)
        assert (s.failed_rows, s.spooled_rows, s.duplicate_rows) == (0, 0, 0)

    run(scenario())


def test_413_splits_the_batch_into_halves() -> None:
    async def scenario() -> None:
        async with sending(Answer(413), batch_rows=10) as (srv, sender):
            await sender.add(metric_rows(10))
            await sender.flush()
        whole, first, second = srv.received
        assert [first.batch_id, second.batch_id] == [f"{whole.batch_id}.0", f"{whole.batch_id}.1"]
        assert [r.table.num_rows for r in srv.received] == [10, 5, 5]
        assert pps(first.table) + pps(second.table) == pps(whole.table)
        s = sender.stats
        assert (s.split_batches, s.acked_rows, s.failed_rows) == (1, 10, 0)

    run(scenario())


def test_413_on_a_single_row_is_a_rejection() -> None:
    async def scenario() -> None:
        async with sending(Answer(413)) as (srv, sender):
            await sender.add(metric_rows(1))
            with pytest.raises(RejectedBatch) as info:
                await sender.flush()
        assert info.value.status == 413 and len(srv.received) == 1
        assert sender.stats.failed_rows == 1

    run(scenario())


def test_400_drops_the_batch_and_sending_goes_on() -> None:
    sleeps: list[float] = []
    bad = Answer(400, error={"code": "invalid_parameter", "message": "too old", "field": "time"})

    async def scenario() -> None:
        async with sending(bad, sleep=recorder(sleeps)) as (srv, sender):
            await sender.add(metric_rows(3))
            with pytest.raises(BadBatch) as info:
                await sender.flush()
            err = info.value
            assert (err.status, err.code, err.field, err.rows) == (
                400,
                "invalid_parameter",
                "time",
                3,
            )
            assert err.batch_id == srv.received[0].batch_id
            await sender.add(metric_rows(2))
            await sender.flush()  # the rejection was reported once
        assert [r.batch_id[-2:] for r in srv.received] == ["-1", "-2"]
        assert sleeps == []
        s = sender.stats
        assert (s.failed_rows, s.acked_rows, s.retries) == (3, 2, 0)

    run(scenario())


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (415, UnsupportedMediaType),
        (404, RejectedBatch),
    ],
)
def test_permanent_answers_are_typed_and_never_retried(
    status: int, error: type[RejectedBatch]
) -> None:
    async def scenario() -> None:
        async with sending(Answer(status)) as (srv, sender):
            await sender.add(metric_rows(2))
            with pytest.raises(error) as info:
                await sender.flush()
            assert type(info.value) is error and info.value.status == status
            if status == 401:  # the key is wrong: nothing more is sent
                with pytest.raises(Unauthorized):
                    await sender.add(metric_rows(1))
        assert len(srv.received) == 1
        assert sender.stats.failed_rows == 2 and list(sender.rejections) == [info.value]

    run(scenario())


def test_server_errors_back_off_exponentially_with_jitter() -> None:
    sleeps: list[float] = []

    async def scenario() -> None:
        async with sending(
            Answer(500), Answer(502), Answer(503), backoff_base_secs=0.5, sleep=recorder(sleeps)
        ) as (srv, sender):
            await sender.add(metric_rows(4))
            await sender.flush()
        assert len({r.batch_id for r in srv.received}) == 1 and len(srv.received) == 4
        # 503 without Retry-After falls back to backoff too
        assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0 and 1.0 <= sleeps[2] <= 2.0
        assert sender.stats.acked_rows == 4 and sender.stats.retries == 3

    run(scenario())


def test_unreachable_server_spools_then_replays_with_the_original_id(tmp_path: Path) -> None:
    sleeps: list[float] = []
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    down = f"http://127.0.0.1:{free_port()}"

    async def scenario() -> None:
        async with Sender(
            down, KEY, kind="metrics", max_attempts=3, spool=spool, sleep=recorder(sleeps)
        ) as sender:
            await sender.add(metric_rows(3))
            await sender.flush()
        assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
        assert (sender.stats.spooled_rows, sender.stats.failed_rows) == (3, 0)
        (entry,) = spool.entries("metrics")
        assert entry.batch_id == f"{sender.sender_id}-1" and entry.rows == 3

        async with sending(spool=spool) as (srv, again):
            await again.add(metric_rows(2, start=10))
            await again.flush()
        assert [r.batch_id for r in srv.received] == [entry.batch_id, f"{again.sender_id}-1"]
        assert pps(srv.received[0].table) == [0.0, 1.0, 2.0]
        assert spool.entries() == []
        assert (again.stats.replayed_rows, again.stats.acked_rows) == (3, 5)

    run(scenario())


def test_a_retry_after_beyond_the_budget_spools_at_once(tmp_path: Path) -> None:
    sleeps: list[float] = []
    spool = Spool(tmp_path, max_bytes=1 << 20)

    async def scenario() -> None:
        async with sending(
            Answer(503, retry_after="60"),
            max_total_wait_secs=10,
            spool=spool,
            sleep=recorder(sleeps),
        ) as (srv, sender):
            await sender.add(metric_rows(2))
            await sender.flush()
        assert len(srv.received) == 1 and sleeps == []
        assert [e.batch_id for e in spool.entries()] == [srv.received[0].batch_id]

    run(scenario())


def test_close_puts_undelivered_batches_in_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    gate = asyncio.Event()

    async def stuck(_: float) -> None:
        await gate.wait()  # a retry wait that outlasts close_timeout_secs

    async def scenario() -> None:
        async with receiver(*[Answer(503, retry_after="1")] * 5) as srv:
            sender = Sender(
                srv.url,
                KEY,
                kind="metrics",
                batch_rows=2,
                max_pending_batches=1,
                close_timeout_secs=0.05,
                spool=spool,
                sleep=stuck,
            )
            await sender.add(metric_rows(2))  # batch 1: in flight, waiting to retry
            await srv.got.wait()
            await sender.add(metric_rows(2))  # batch 2: queued
            await sender.add(metric_rows(2))  # batch 3: queue full, so batch 2 is spooled
            assert [e.batch_id[-2:] for e in spool.entries()] == ["-2"]
            await sender.close()
        assert [e.batch_id[-2:] for e in spool.entries()] == ["-2", "-1", "-3"]
        assert sender.stats.spooled_rows == 6 and sender.stats.acked_rows == 0
        with pytest.raises(RuntimeError):
            await sender.add(metric_rows(1))

    run(scenario())


def test_rows_are_cut_into_batches_of_batch_rows_with_sequential_ids() -> None:
    async def scenario() -> None:
        async with sending(batch_rows=4) as (srv, sender):
            await sender.add(metric_rows(3))
            await sender.add(metric_rows(7, start=3))
            await sender.flush()
        assert [r.table.num_rows for r in srv.received] == [4, 4, 2]
        assert [r.batch_id.rsplit("-", 1)[1] for r in srv.received] == ["1", "2", "3"]
        assert [v for r in srv.received for v in pps(r.table)] == [float(i) for i in range(10)]

    run(scenario())


def test_a_partial_batch_is_sent_once_its_oldest_row_is_max_age_old() -> None:
    async def scenario() -> None:
        async with sending(max_age_secs=0.05) as (srv, sender):
            await sender.add(metric_rows(1))
            await asyncio.wait_for(srv.got.wait(), 10)  # no flush was called
            assert srv.received[0].table.num_rows == 1

    run(scenario())


def test_a_resent_batch_id_is_counted_as_duplicate() -> None:
    async def scenario() -> None:
        async with receiver() as srv:
            for _ in range(2):
                async with Sender(srv.url, KEY, kind="metrics", sender_id="fixed") as sender:
                    await sender.add(metric_rows(3))
                    await sender.flush()
        assert [r.batch_id for r in srv.received] == ["fixed-1", "fixed-1"]
        assert (sender.stats.duplicate_rows, sender.stats.acked_rows) == (3, 0)

    run(scenario())


@pytest.mark.parametrize("compression", ["zstd", "lz4", None])
def test_tables_and_record_batches_with_each_compression(compression: Any) -> None:
    rows = [{**r, "tcp_pps": 1.0, "conn_count": 5} for r in metric_rows(2000)]
    table = rows_to_table(METRICS, rows)

    async def scenario() -> None:
        async with sending(compression=compression, batch_rows=5000) as (srv, sender):
            await sender.add(table)
            await sender.flush()
            await sender.add(table.to_batches()[0].slice(0, 10))
            await sender.flush()
        first, second = srv.received
        assert decode_stream(first.body).equals(table)
        assert first.table.num_rows == 2000 and second.table.num_rows == 10
        uncompressed = len(first.body) > 2000 * 8 * len(table.columns)
        assert uncompressed == (compression is None)

    run(scenario())


def test_rows_that_do_not_fit_the_kind_are_refused_before_sending() -> None:
    async def scenario() -> None:
        sender = Sender("http://127.0.0.1:9", KEY, kind="metrics")
        with pytest.raises(ValueError, match="unknown metrics column"):
            await sender.add([{"time": NOW, "pps": 1.0, "bps": 1.0, "pss": 2.0}])
        with pytest.raises(ValueError, match=r"required metrics column.*bps"):
            await sender.add([{"time": NOW, "pps": 1.0}])
        with pytest.raises(ValueError, match="do not fit"):
            await sender.add([{"time": NOW, "pps": "fast", "bps": 1.0}])
        with pytest.raises(ValueError, match="kind"):
            Sender("http://127.0.0.1:9", KEY, kind="logs")
        with pytest.raises(ValueError, match="sender_id"):
            Sender("http://127.0.0.1:9", KEY, kind="metrics", sender_id="no spaces")
        await sender.close()
        assert sender.stats.requests == 0

    run(scenario())


# -- against the real server (no fault injection: what an agent meets in production) -------------


def test_the_real_server_takes_agent_rows_once(ws: Workspace) -> None:
    r = ws.client.post(
        "/api/v1/nodes", json={"name": f"agent-{uuid.uuid4().hex[:8]}", "ip": "203.0.113.77"}
    )
    assert r.status_code == 201, r.text
    node_key = r.json()["node"]["api_key"]
    base = ws.client.server.base_url
    proc = Path(__file__).parent / "data" / "proc"
    wall = time.time() - 10
    rows = metrics_rows(
        read_sample(proc / "t0", "eth0", wall=wall, mono=0.0),
        read_sample(proc / "t1", "eth0", wall=wall + 2, mono=2.0),
    )
    flow = FlowRow("198.51.100.9", "203.0.113.77", 40000, 443, 6, 0x02, 57, 60)
    flows = [flow.as_wire(datetime.now(UTC) - timedelta(seconds=i), 100) for i in range(5)]

    async def scenario() -> None:
        for attempt in ("first", "again"):
            async with Sender(base, node_key, kind="metrics", sender_id="agent-test") as sender:
                await sender.add(rows)
                await sender.flush()
            if attempt == "first":
                assert (sender.stats.acked_rows, sender.stats.duplicate_rows) == (2, 0)
            else:  # the same batch id again: stored once
                assert (sender.stats.acked_rows, sender.stats.duplicate_rows) == (0, 2)
        async with Sender(base, node_key, kind="flows", compression="lz4") as flow_sender:
            await flow_sender.add(flows)
            await flow_sender.flush()
        assert flow_sender.stats.acked_rows == 5
        async with Sender(base, "0" * 64, kind="metrics") as wrong:
            await wrong.add(rows)
            with pytest.raises(Unauthorized):
                await wrong.flush()

    run(scenario())
