"""``GET /metrics`` on the injected clock (``store/clock.py``): wrong metrics tokens count
against ``api.auth_failures_per_minute`` in the minute of the app's ``Clock``, so the test
moves a ``ManualClock`` to the next minute instead of waiting for the machine's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.config import Config, apply_overrides
from store.clock import ManualClock


def test_metrics_token_failures_are_limited_per_minute_of_the_clock(tmp_path: Path) -> None:
    cfg = apply_overrides(
        Config(),
        "server",
        data_dir=str(tmp_path / "data"),
        admin_socket=False,
        metrics_token="m" * 24,
    )
    cfg = apply_overrides(cfg, "api", auth_failures_per_minute=2, bootstrap_workspace=False)
    cfg = apply_overrides(cfg, "detect", enabled=False)
    # the minute's start, years from the machine's: only this clock's minute can end
    clock = ManualClock(datetime(2020, 5, 1, 12, 0, 10, tzinfo=UTC))
    # through a proxy header, a loopback request is not trusted: it needs the token
    wrong = {"Authorization": "Bearer " + "x" * 24, "X-Forwarded-For": "198.51.100.1"}

    async def scenario() -> list[int]:
        app = create_app(cfg, clock=clock)
        async with TestClient(TestServer(app)) as client:
            statuses = [(await client.get("/metrics", headers=wrong)).status for _ in range(3)]
            clock.advance(49)  # still the same minute of the clock
            statuses.append((await client.get("/metrics", headers=wrong)).status)
            clock.advance(1)  # the next one: a fresh budget
            statuses.append((await client.get("/metrics", headers=wrong)).status)
            right = {**wrong, "Authorization": "Bearer " + "m" * 24}
            statuses.append((await client.get("/metrics", headers=right)).status)
            return statuses

    assert asyncio.run(scenario()) == [401, 401, 429, 429, 401, 200]
