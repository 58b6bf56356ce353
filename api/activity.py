"""Node liveness from telemetry: the newest sample of every node that sent data, written to the
nodes table in one batch per second instead of one UPDATE per request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from store import Connection, Store, utcnow

__all__ = ["ActivityTracker"]

log = logging.getLogger("floodwatch.activity")


def _write(con: Connection, rows: list[tuple[datetime, float, float, str]]) -> None:
    con.executemany(
        "UPDATE nodes SET last_seen = ?, last_pps = ?, last_bps = ? WHERE uuid = ?",
        rows,
    )


class ActivityTracker:
    def __init__(self, store: Store, interval_secs: float = 1.0, max_nodes: int = 1_000_000):
        self.store = store
        self.interval_secs = interval_secs
        self.max_nodes = max_nodes
        self._pending: dict[str, tuple[datetime, float, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, items: list[tuple[str, datetime, float, float]]) -> None:
        """Note the newest sample per node (``seen`` is the arrival time, now)."""
        for node, when, pps, bps in items:
            current = self._pending.get(node)
            if current is None and len(self._pending) >= self.max_nodes:
                continue
            if current is None or when >= current[0]:
                self._pending[node] = (when, pps, bps)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        seen = utcnow()
        rows = [(seen, pps, bps, node) for node, (_, pps, bps) in batch.items()]
        await self.store.run(_write, rows)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_secs)
            try:
                await self.flush()
            except Exception:
                log.exception("node activity update failed")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="node-activity")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
