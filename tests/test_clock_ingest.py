"""The telemetry pipeline on the injected clock (``store/clock.py``): the receiver's accepted
event-time window, the buffer's flush age and the de-duplication window are decided by the
app's ``Clock``, so these tests move a ``ManualClock`` instead of waiting.

The clocks start years away from the machine's (2020), so that a component still reading the
machine's time would decide otherwise and fail these tests."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.config import Config, apply_overrides
from api.state import STATE
from ingest.pipeline import Pipeline, PipelineSettings
from ingest.routing import to_lake_table
from ingest.schema import METRICS
from store import workspaces as ws_repo
from store.clock import ManualClock

from .telemetry import ARROW, ipc_bytes, metrics_table

START = datetime(2020, 5, 1, 12, 0, tzinfo=UTC)


def _lake_rows(n: int, start: datetime) -> pa.Table:
    return to_lake_table(
        METRICS, metrics_table(range(n), start=start), source="test", node=str(uuid.uuid4())
    )


def test_the_receiver_accepts_event_times_around_the_clocks_now(tmp_path: Path) -> None:
    """A batch is checked against the app's clock: rows a minute before its ``now`` are
    accepted, rows two hours ahead are refused, and the same rows are refused as too old once
    the clock has moved past the raw retention."""
    cfg = apply_overrides(Config(), "server", data_dir=str(tmp_path / "data"), admin_socket=False)
    cfg = apply_overrides(cfg, "api", bootstrap_workspace=False)
    cfg = apply_overrides(cfg, "detect", enabled=False)
    clock = ManualClock(START)

    async def scenario() -> list[tuple[int, Any]]:
        app = create_app(cfg, clock=clock)
        async with TestClient(TestServer(app)) as client:
            _, token = await app[STATE].store.run(
                ws_repo.create_workspace, "clocked", cfg.api.default_plan
            )
            resp = await client.post(
                "/api/v1/nodes",
                json={"name": "edge-1", "ip": "203.0.113.10"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status == 201, await resp.text()
            key = (await resp.json())["node"]["api_key"]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": ARROW}

            async def post(start: datetime) -> tuple[int, Any]:
                body = ipc_bytes(metrics_table(range(3), start=start))
                r = await client.post("/api/v1/telemetry/metrics", data=body, headers=headers)
                found = await r.json()
                return r.status, found.get("accepted", found.get("error", {}).get("field"))

            recent = clock.now() - timedelta(minutes=1)
            seen = [await post(recent), await post(clock.now() + timedelta(hours=2))]
            clock.advance(timedelta(days=cfg.lake.raw_retention_days, hours=1).total_seconds())
            seen += [await post(recent), await post(clock.now() - timedelta(minutes=1))]
            return seen

    assert asyncio.run(scenario()) == [(202, 3), (400, "time"), (400, "time"), (202, 3)]


def test_a_buffered_group_is_flushed_when_the_clock_says_it_is_old_enough(
    tmp_path: Path,
) -> None:
    """``flush_age_secs`` is measured on the pipeline's clock: a group is not due a moment
    before it, and is due the moment the clock reaches it."""
    clock = ManualClock(START)

    async def scenario() -> list[int]:
        p = Pipeline(tmp_path, PipelineSettings(flush_rows=10**9, flush_age_secs=60), clock=clock)
        await p.start()
        try:
            accepted, _ = await p.submit("metrics", "ws", _lake_rows(5, START), None)
            assert accepted == 5
            await asyncio.sleep(0.5)  # a few passes of the flusher: nothing is due yet
            written = [await p.flush(), p.buffer.rows]
            clock.advance(59.5)
            written += [await p.flush(), p.buffer.rows]
            clock.advance(0.5)
            # flush() takes the due groups before it first yields: the flusher cannot race it
            written += [await p.flush(), p.buffer.rows]
            return written
        finally:
            await p.stop()

    assert asyncio.run(scenario()) == [0, 5, 0, 5, 5, 0]


def test_a_batch_id_is_remembered_for_the_dedup_window_of_the_clock(tmp_path: Path) -> None:
    """A batch's arrival time (its WAL header) and the expiry of remembered batch ids both
    come from the pipeline's clock: a repeat is a duplicate within the window and new after it."""
    clock = ManualClock(START)
    window = 3600

    async def scenario() -> list[tuple[int, bool]]:
        p = Pipeline(
            tmp_path,
            PipelineSettings(flush_rows=10**9, flush_age_secs=3600, dedup_window_secs=window),
            clock=clock,
        )
        await p.start()
        try:
            seen = [await p.submit("metrics", "ws", _lake_rows(4, START), "b1")]
            clock.advance(window - 1)
            await p.maintain()
            seen.append(await p.submit("metrics", "ws", _lake_rows(4, START), "b1"))
            clock.advance(2)
            await p.maintain()
            seen.append(await p.submit("metrics", "ws", _lake_rows(4, START), "b1"))
            return seen
        finally:
            await p.stop()

    assert asyncio.run(scenario()) == [(4, False), (0, True), (4, False)]
