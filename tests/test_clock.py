"""The injected clock (``store/clock.py``): components that decide by the time read it from a
``Clock``, so these tests move a ``ManualClock`` instead of sleeping through the windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.agentapi.hotpath import ConfigCache
from api.app import create_app
from api.config import Config, apply_overrides
from api.state import STATE
from store import workspaces as ws_repo
from store.clock import SYSTEM_CLOCK, ManualClock


def test_a_manual_clock_moves_only_when_told_and_its_readings_agree() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == start and clock.monotonic() == 0.0
    assert clock.now() == start, "reading it twice does not move it"
    clock.advance(90.5)
    assert (clock.now() - start).total_seconds() == 90.5
    assert clock.monotonic() == 90.5
    assert clock.time() == start.timestamp() + 90.5
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 3, 1))


def test_the_system_clock_reads_utc() -> None:
    now = SYSTEM_CLOCK.now()
    assert now.tzinfo is not None and now.utcoffset() is not None
    assert now.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs(SYSTEM_CLOCK.time() - now.timestamp()) < 5


def test_an_agent_config_answer_expires_by_the_clock() -> None:
    loads: list[str] = []

    async def loader(workspace: str, node: str) -> bytes:
        loads.append(node)
        return f"config {len(loads)}".encode()

    async def scenario() -> list[bytes | None]:
        clock = ManualClock()
        cache = ConfigCache(loader, ttl_secs=600, clock=clock)
        seen = [await cache.get("ws", "n1")]
        clock.advance(599)
        seen.append(await cache.get("ws", "n1"))  # still cached
        clock.advance(1)
        seen.append(await cache.get("ws", "n1"))  # expired: loaded again
        return seen

    assert asyncio.run(scenario()) == [b"config 1", b"config 1", b"config 2"]
    assert loads == ["n1", "n1"]


def test_the_rate_limit_window_follows_the_injected_clock(tmp_path: Path) -> None:
    """A deploy token's per-minute budget is spent; the next minute, on the app's clock (not the
    wall's), gives a fresh one."""
    cfg = apply_overrides(Config(), "server", data_dir=str(tmp_path / "data"), admin_socket=False)
    cfg = apply_overrides(cfg, "api", rate_limit_per_minute=3, bootstrap_workspace=False)
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC))

    async def scenario() -> list[int]:
        app = create_app(cfg, clock=clock)
        async with TestClient(TestServer(app)) as client:
            _, token = await app[STATE].store.run(
                ws_repo.create_workspace, "clocked", cfg.api.default_plan
            )
            headers = {"Authorization": f"Bearer {token}"}
            statuses = []
            for _ in range(4):
                resp = await client.get("/api/v1/workspace", headers=headers)
                statuses.append(resp.status)
            clock.advance(60)
            resp = await client.get("/api/v1/workspace", headers=headers)
            statuses.append(resp.status)
            assert resp.headers["X-RateLimit-Remaining"] == "2"
            return statuses

    assert asyncio.run(scenario()) == [200, 200, 200, 429, 200]
