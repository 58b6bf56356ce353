"""The detection service reads the app's clock (``DetectionService(clock=...)``): flow records
of the newest second are held until a later second arrives or ``FLOWS_HOLD_SECS`` of the
clock's time pass, and that wait is measured on the clock, not on the machine's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from api.config import DetectConfig
from api.detection import FLOWS_HOLD_SECS, DetectionService
from detect.engine import Detector
from store.clock import ManualClock

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NODE = "00000000-0000-0000-0000-000000000001"


def _flows(seconds: int, per_sec: int = 5) -> pa.Table:
    n = seconds * per_sec
    return pa.table(
        {
            "time": pa.array(
                [T0 + timedelta(seconds=i // per_sec) for i in range(n)], pa.timestamp("us", "UTC")
            ),
            "node_uuid": pa.array([NODE] * n, pa.string()),
            "src_ip": pa.array([f"198.51.100.{i % 200 + 1}" for i in range(n)], pa.string()),
            "dst_ip": pa.array(["192.0.2.10"] * n, pa.string()),
            "src_port": pa.array([40000 + i for i in range(n)], pa.uint16()),
            "dst_port": pa.array([443] * n, pa.uint16()),
            "protocol": pa.array([6] * n, pa.uint8()),
            "tcp_flags": pa.array([16] * n, pa.uint8()),
            "packets": pa.array([1000] * n, pa.int64()),
            "bytes": pa.array([600_000] * n, pa.int64()),
            "sampling_rate": pa.array([1000] * n, pa.int64()),
        }
    )


def test_held_flow_second_is_released_after_the_hold_on_the_clock(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    svc = DetectionService(DetectConfig(), None, None, tmp_path, clock=clock)  # type: ignore[arg-type]
    svc.detector = Detector()
    svc._pass([("flows", "ws", _flows(4))])
    held = svc._flows_pending
    assert len(held) == 1 and held[0][1]["time"].max() == T0 + timedelta(seconds=3)
    clock.advance(FLOWS_HOLD_SECS - 0.5)
    svc._pass([])
    assert svc._flows_pending, "held while the clock has not passed the hold"
    clock.advance(1.0)
    svc._pass([])
    assert not svc._flows_pending, "released once the clock passed the hold"
    assert svc._flows_ring["ws"]["time"].max() == T0 + timedelta(seconds=3)
