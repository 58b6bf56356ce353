"""A 503 says which stage is behind: the buffer, a consumer of durable batches (detection), or
a pipeline that is not accepting. The receiver answers with ``Pipeline.refusal()``'s message,
so a sender (and the benchmark's count of 503 reasons) can tell them apart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.errors import Backpressure
from ingest.pipeline import Pipeline, PipelineSettings
from ingest.routing import to_lake_table
from ingest.schema import METRICS

from .telemetry import metrics_table

WS = "3f1c8f0e-4b7a-4c55-9d0e-2a8f6b1c9d10"
NODE = "8a6e0f2c-1d3b-4e5f-8a9b-0c1d2e3f4a5b"


def _lake(n: int) -> pa.Table:
    return to_lake_table(METRICS, metrics_table(range(n)), source="arrow", node=NODE)


def test_each_refusal_names_its_cause(tmp_path: Path) -> None:
    settings = PipelineSettings(max_buffer_bytes=64 * 1024, maintenance_interval_secs=3600)

    async def scenario() -> None:
        p = Pipeline(tmp_path, settings)
        assert p.refusal() == "the server is starting or stopping"
        assert not p.has_room()
        await p.start()
        try:
            assert p.refusal() is None and p.has_room()
            behind = [False]
            p.pressure.append(lambda: behind[0])
            behind[0] = True
            assert p.refusal() == "detection is catching up"
            with pytest.raises(Backpressure, match="detection is catching up"):
                await p.submit("metrics", WS, _lake(10), None)
            behind[0] = False
            # more bytes than the whole buffer: the buffer is what refuses
            assert p.refusal(settings.max_buffer_bytes + 1) == "ingest buffer is full"
            big = _lake(4000)
            assert big.nbytes > settings.max_buffer_bytes
            with pytest.raises(Backpressure, match="ingest buffer is full"):
                await p.submit("metrics", WS, big, None)
            assert await p.submit("metrics", WS, _lake(10), None) == (10, False)
        finally:
            await p.stop()
        assert p.refusal() == "the server is starting or stopping"

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
