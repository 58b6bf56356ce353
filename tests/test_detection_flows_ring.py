"""The raw flow rows the detection service keeps for enrichment (``_remember_flows``): the last
``FLOWS_RING_SECS`` of event time, and never more than ``FLOWS_RING_ROWS`` rows per workspace
(a sender repeating seconds, or a router at full rate, would otherwise grow it without end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from api import detection
from api.detection import DetectionService

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _service() -> DetectionService:
    svc = DetectionService.__new__(DetectionService)  # only the ring is used here
    svc._flows_ring = {}
    return svc


def _rows(start: int, secs: int, per_sec: int, tag: int) -> pl.DataFrame:
    times = [T0 + timedelta(seconds=start + i // per_sec) for i in range(secs * per_sec)]
    return pl.DataFrame({"time": times, "packets": [tag] * len(times)})


def test_ring_keeps_the_last_window_of_event_time() -> None:
    svc = _service()
    for k in range(5):
        svc._remember_flows("ws", _rows(k * 100, 100, 2, tag=k))
    ring = svc._flows_ring["ws"]
    newest = T0 + timedelta(seconds=499)
    assert ring["time"].max() == newest
    assert ring["time"].min() == newest - timedelta(seconds=detection.FLOWS_RING_SECS)
    assert ring.height == (detection.FLOWS_RING_SECS + 1) * 2


def test_ring_is_capped_in_rows_keeping_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detection, "FLOWS_RING_ROWS", 100)
    svc = _service()
    for k in range(10):  # the same ten seconds sent again and again
        svc._remember_flows("ws", _rows(0, 10, 5, tag=k))
    ring = svc._flows_ring["ws"]
    assert ring.height == 100
    assert set(ring["packets"].to_list()) == {8, 9}  # the two newest batches
    svc._remember_flows("other", _rows(0, 10, 5, tag=0))
    assert svc._flows_ring["other"].height == 50  # per workspace
