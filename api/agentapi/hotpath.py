"""The in-memory parts of the Agent API's hot path (docs/agent-api.md §1.3): every ftagent node
calls metrics every 5 s, heartbeat every 30 s and config every 300 s, so none of those may queue
behind the database.

- ``ConfigCache``: the effective config answer per node, serialized, loaded from the database
  (reader thread) on a miss and kept until it is invalidated (any REST or admin write clears
  everything, an ack clears its node) or ``ttl_secs`` pass, whichever comes first. Nothing but
  those writes changes a config answer, so the TTL is only a safety net.
- ``MetricsBatcher``: ftagent metrics rows of every request that arrives within a 2 ms window
  become one Arrow table per workspace and one WAL entry; each request is answered when its
  rows are durable (the same fsync-before-acknowledge rule as binary telemetry). While a batch
  is on its way to disk, the next one keeps filling past its window and goes the moment the
  first is durable (group commit, as the WAL does for its entries): a row would have waited for
  that fsync anyway, and the per-batch work (about 1.5 ms of CPU, whatever the rows) is paid
  about once per fsync. In the fleet benchmark a 2 ms window gave a lower p99 at half load than
  5 ms (30-48 ms against 38-59) for about 10% more CPU per call.
- ``ReplayWatch``: tells the metrics posts of a retry-queue flush from current ones (§7.2).
- ``metrics_row``: the hand-written reading of a metrics post into its lake row, kept on the
  hottest path instead of ``models.Metrics`` (which accepts and refuses the same bodies, a test
  proves it; docs/ARCHITECTURE.md, "Typed models: library choice", has the figures).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pyarrow as pa

from detect.agent_incidents import num
from ingest.errors import Backpressure
from ingest.metrics import METRICS as COUNTERS
from ingest.pipeline import Pipeline
from ingest.schema import METRICS
from store.clock import SYSTEM_CLOCK, Clock

from ..errors import ApiError

__all__ = ["REPLAY_GAP_SECS", "ConfigCache", "MetricsBatcher", "ReplayWatch", "metrics_row"]

Loader = Callable[[str, str], Awaitable[bytes | None]]


class ConfigCache:
    """node UUID -> the serialized config answer (bytes, about 1 KiB a node)."""

    def __init__(
        self,
        loader: Loader,
        ttl_secs: float = 600.0,
        max_entries: int = 200_000,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._loader = loader
        self.clock = clock
        self.ttl = ttl_secs
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, bytes]] = {}
        # a load only fills the cache if neither a clear nor its node's invalidation came
        # while it ran (it may have read the database before the write)
        self._cleared = 0
        self._invalidated: dict[str, int] = {}

    def clear(self) -> None:
        """Forget every answer, and every answer being loaded."""
        self._cleared += 1
        self._entries.clear()
        self._invalidated.clear()

    def invalidate(self, node: str) -> None:
        """Forget the node's answer, and the one being loaded for it."""
        self._invalidated[node] = self._invalidated.get(node, 0) + 1
        self._entries.pop(node, None)

    def _epoch(self, node: str) -> tuple[int, int]:
        return self._cleared, self._invalidated.get(node, 0)

    def epoch(self) -> tuple[int, dict[str, int]]:
        """Where the invalidations stand, to hand to ``prime`` after a bulk load."""
        return self._cleared, dict(self._invalidated)

    def prime(self, answers: dict[str, bytes], epoch: tuple[int, dict[str, int]]) -> int:
        """Cache answers loaded in bulk since ``epoch``: none if the cache was cleared since,
        none of a node invalidated since, none that would replace a fresher entry."""
        cleared, invalidated = epoch
        if cleared != self._cleared:
            return 0
        expires = self.clock.monotonic() + self.ttl
        added = 0
        for node, body in answers.items():
            if len(self._entries) >= self.max_entries:
                break
            if node in self._entries or self._invalidated.get(node, 0) != invalidated.get(node, 0):
                continue
            self._entries[node] = (expires, body)
            added += 1
        return added

    async def get(self, workspace: str, node: str) -> bytes | None:
        now = self.clock.monotonic()
        hit = self._entries.get(node)
        if hit is not None and hit[0] > now:
            COUNTERS.agent_config_cache.inc(1, "hit")
            return hit[1]
        COUNTERS.agent_config_cache.inc(1, "miss")
        epoch = self._epoch(node)
        body = await self._loader(workspace, node)
        if body is not None and epoch == self._epoch(node):
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[node] = (now + self.ttl, body)
        return body


class MetricsBatcher:
    """Group commit of single ftagent metrics rows into lake tables."""

    def __init__(
        self, pipeline: Pipeline, max_rows: int = 4096, window_secs: float = 0.002
    ) -> None:
        self.pipeline = pipeline
        self.max_rows = max_rows
        self.window_secs = window_secs
        self._pending: dict[str, list[tuple[dict[str, Any], asyncio.Future[None]]]] = {}
        self._count = 0
        self._scheduled = False
        self._due = False  # the window passed while a batch was in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Tables handed to the pipeline so far."""

    async def submit(self, workspace: str, row: dict[str, Any]) -> None:
        """Returns once ``row`` is durable; raises ``Backpressure`` when the pipeline sheds."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.setdefault(workspace, []).append((row, fut))
        self._count += 1
        if self._count >= self.max_rows:
            self._dispatch()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_later(self.window_secs, self._window_passed)
        await fut

    def _window_passed(self) -> None:
        self._scheduled = False
        if self._tasks:  # goes as soon as the batch in flight is durable (_write's finally)
            self._due = True
        else:
            self._dispatch()

    def _dispatch(self) -> None:
        self._due = False
        pending, self._pending, self._count = self._pending, {}, 0
        for workspace, items in pending.items():
            self.batches += 1
            task = asyncio.ensure_future(self._write(workspace, items))
            self._tasks.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._due:
            self._dispatch()

    async def _write(
        self, workspace: str, items: list[tuple[dict[str, Any], asyncio.Future[None]]]
    ) -> None:
        error: BaseException | None = None
        try:
            table = pa.Table.from_pylist([row for row, _ in items], schema=METRICS.lake_schema)
            await self.pipeline.submit(METRICS.name, workspace, table, None)
        except Exception as exc:
            error = exc
        except asyncio.CancelledError:
            error = Backpressure("the server is stopping", 2)
        for _, fut in items:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
                fut.exception()  # a request that went away must not warn

    async def drain(self) -> None:
        """Write whatever is pending (on shutdown, before the pipeline stops)."""
        while self._pending or self._tasks:
            if self._pending:
                self._dispatch()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


REPLAY_GAP_SECS = 0.5
"""How close together the posts of one retry-queue flush arrive (they go back to back)."""


class ReplayWatch:
    """Tells the metrics of a retry-queue flush from current ones (§7.2).

    Replayed metrics carry no time of their own. ftagent flushes its queue only right after a
    heartbeat was answered 2xx, and that heartbeat says how many posts it holds
    (``retry_queue_size``). So after a heartbeat announcing ``n > 0`` posts, the node's metrics
    that follow it back to back (each within ``REPLAY_GAP_SECS`` of the heartbeat or of the
    previous one, at most ``n`` of them) are the flush; the first gap, or ``n`` posts, ends it.
    A node whose heartbeat announced an empty queue never has its metrics taken for replays,
    however close together they come (an attack's start flushes metrics early, §1.4)."""

    def __init__(self, max_nodes: int = 1_000_000) -> None:
        self.max_nodes = max_nodes
        self._flushing: dict[str, tuple[float, int]] = {}
        """node -> (when the flush's last post or its heartbeat came, posts still expected)"""

    def heartbeat(self, node: str, queued: Any, now: float) -> None:
        if isinstance(queued, int) and not isinstance(queued, bool) and queued > 0:
            if len(self._flushing) >= self.max_nodes:
                self._flushing.clear()
            self._flushing[node] = (now, min(queued, 100_000))
        else:
            self._flushing.pop(node, None)

    def is_replay(self, node: str, now: float) -> bool:
        flush = self._flushing.get(node)
        if flush is None:
            return False
        last, left = flush
        if now - last >= REPLAY_GAP_SECS or left <= 0:
            del self._flushing[node]
            return False
        if left > 1:
            self._flushing[node] = (now, left - 1)
        else:
            del self._flushing[node]
        return True


def metrics_row(
    body: dict[str, Any], node: str, now: datetime, source: str = "ftagent"
) -> dict[str, Any]:
    """One lake row from an ftagent metrics body; 400 when ``pps`` or ``bps`` is unusable."""
    pps, bps = num(body.get("pps")), num(body.get("bps"))
    for name, value in (("pps", pps), ("bps", bps)):
        if value is None:
            raise ApiError(
                400, "invalid_parameter", f"{name} must be a non-negative number", field=name
            )
    assert pps is not None and bps is not None
    row: dict[str, Any] = {"node_uuid": node, "source": source, "time": now}
    row["pps"], row["bps"] = pps, bps
    for proto in ("tcp", "udp", "icmp"):
        share = num(body.get(f"{proto}_pct"))
        row[f"{proto}_pps"] = None if share is None else pps * (min(share, 100.0) / 100.0)
    conn = num(body.get("conn_count"))
    row["conn_count"] = None if conn is None else int(min(conn, 2**62))
    return row
