"""Node liveness from telemetry and heartbeats, written to the nodes table in one statement per
second instead of one UPDATE per request.

Every request that proves a node alive (a binary telemetry batch, an ftagent metrics POST, an
ftagent heartbeat) only touches a dict in memory; once a second the newest state of every node
heard from is written with a single ``UPDATE ... FROM`` over an Arrow table. A REST reader sees a
node's ``last_seen`` at most one flush interval late. The same flush sets ``elevated`` from the
newest sample and the node's baseline (``ElevationRule``), so status needs no extra query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from store import Connection, Store
from store.clock import SYSTEM_CLOCK, Clock

__all__ = ["ActivityTracker", "ElevationRule", "heartbeat_status"]

log = logging.getLogger("floodwatch.activity")

_BATCH_SCHEMA = pa.schema(
    [
        ("node", pa.string()),
        ("seen", pa.timestamp("us", tz="UTC")),
        ("pps", pa.float64()),
        ("bps", pa.float64()),
        ("elevated", pa.bool_()),
        ("version", pa.string()),
        ("status", pa.string()),
        ("update_error", pa.string()),
    ]
)

# One statement for the whole batch. Columns the batch leaves null keep their stored value;
# ``last_seen`` never moves backwards.
_UPDATE = """
    UPDATE nodes SET
        last_seen = greatest(coalesce(nodes.last_seen, b.seen), b.seen),
        last_pps = coalesce(b.pps, nodes.last_pps),
        last_bps = coalesce(b.bps, nodes.last_bps),
        elevated = coalesce(b.elevated, nodes.elevated),
        agent_version = coalesce(b.version, nodes.agent_version),
        agent_status = coalesce(b.status, nodes.agent_status),
        last_heartbeat_at = CASE WHEN b.status IS NULL THEN nodes.last_heartbeat_at
                                 ELSE b.seen END,
        agent_update_error = CASE
            WHEN b.update_error IS NOT NULL THEN b.update_error
            -- a heartbeat with another version: the self-update went through after all
            WHEN b.version IS DISTINCT FROM nodes.agent_version AND b.version IS NOT NULL
                 AND b.status IS NOT NULL THEN NULL
            ELSE nodes.agent_update_error END,
        agent_update_error_at = CASE WHEN b.update_error IS NULL THEN nodes.agent_update_error_at
                                     ELSE b.seen END
    FROM fw_activity_batch b
    WHERE nodes.uuid = CAST(b.node AS UUID)
"""

MAX_STATUS_BYTES = 16 * 1024
"""A heartbeat body larger than this (serialized) keeps only its top-level scalar fields."""

_HEARTBEAT_SCALARS = (
    *("version", "circuit_breaker", "retry_queue_size", "gre_dedup_enabled", "hypervisor_mode"),
    *("baseline_ready", "baseline_quality", "baseline_warmup_active", "baseline_total_samples"),
    *("baseline_avg_pps", "baseline_p99_pps", "baseline_hourly_ready"),
    *("baseline_current_hour_p99", "pcap_active", "flow_active", "interface", "vm_count"),
    *("zero_traffic_warning", "src_ip_overflow", "src_ip_count", "pkt_samples_count"),
    *("mirror_mode", "mirror_flow_only", "mirror_interface", "mirror_tracked_ips"),
    "mirror_active_attacks",
)
"""The scalar fields of ftagent heartbeats (docs/agent-api.md §6.1): a huge body is cut to these."""


def heartbeat_status(body: dict[str, Any]) -> str:
    """The heartbeat as stored (JSON text, always valid): the whole body; its scalars when it
    is huge; only the documented scalars when even those are too many."""
    raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    if len(raw) <= MAX_STATUS_BYTES:
        return raw.decode()

    def short(v: Any) -> bool:
        return isinstance(v, str | int | float | bool) and (not isinstance(v, str) or len(v) <= 256)

    scalars = {k: v for k, v in body.items() if short(v)}
    scalars["truncated"] = True
    raw = orjson.dumps(scalars)
    if len(raw) <= MAX_STATUS_BYTES:
        return raw.decode()
    known = {k: body[k] for k in _HEARTBEAT_SCALARS if k in body and short(body[k])}
    return orjson.dumps({**known, "truncated": True}).decode()


@dataclass(frozen=True)
class ElevationRule:
    """``elevated`` while the newest sample's pps exceeds ``factor`` times the node's baseline
    (the 99th percentile of its per-minute average pps over the last day of rollups) and at
    least ``floor_pps``. Nodes with no baseline yet are never elevated."""

    factor: float = 2.0
    floor_pps: float = 1000.0

    def elevated(self, pps: float, baseline_p99: float | None) -> bool:
        if baseline_p99 is None or not math.isfinite(pps):
            return False
        return pps > max(self.factor * baseline_p99, self.floor_pps)


@dataclass
class _Pending:
    seen: datetime
    pps: float | None = None
    bps: float | None = None
    sample_time: datetime | None = None
    version: str | None = None
    status: str | None = None
    update_error: str | None = None
    elevated: bool | None = None


def _write(con: Connection, batch: pa.Table) -> None:
    # DuckDB finds the Arrow table by its variable name (a replacement scan), which, unlike
    # ``register``, does not trip over an unfetched result left on the shared connection.
    fw_activity_batch = batch  # noqa: F841
    con.execute(_UPDATE).fetchall()


class ActivityTracker:
    def __init__(
        self,
        store: Store,
        interval_secs: float = 1.0,
        max_nodes: int = 1_000_000,
        rule: ElevationRule | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.store = store
        self.clock = clock
        self.interval_secs = interval_secs
        self.max_nodes = max_nodes
        self.rule = rule or ElevationRule()
        self.baselines: dict[str, float] = {}
        """node UUID -> baseline p99 pps, refreshed by the housekeeping task."""
        self.verdicts: dict[str, bool] = {}
        """node UUID -> the detector's latest elevated verdict (set by ``mark_elevated``)."""
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None

    def _slot(self, node: str, now: datetime) -> _Pending | None:
        current = self._pending.get(node)
        if current is None:
            if len(self._pending) >= self.max_nodes:
                return None
            current = self._pending[node] = _Pending(seen=now)
        elif now > current.seen:
            current.seen = now
        return current

    def record(self, items: list[tuple[str, datetime, float, float]]) -> None:
        """Note the newest traffic sample per node (``when`` is the sample's time; the node is
        seen now)."""
        now = self.clock.now()
        for node, when, pps, bps in items:
            slot = self._slot(node, now)
            if slot is None:
                continue
            if slot.sample_time is None or when >= slot.sample_time:
                slot.sample_time, slot.pps, slot.bps = when, pps, bps

    def mark_elevated(self, node: str, elevated: bool) -> None:
        """The detector's verdict on the node (above its baseline but below an incident, or
        back to normal): it replaces the newest-sample rule for that node from now on."""
        self.verdicts[node] = elevated
        slot = self._slot(node, self.clock.now())
        if slot is not None:
            slot.elevated = elevated

    def heartbeat(
        self,
        node: str,
        version: str | None,
        status: str | None,
        update_error: str | None = None,
    ) -> None:
        """Note an agent heartbeat: the node is alive, and what it said about itself."""
        slot = self._slot(node, self.clock.now())
        if slot is None:
            return
        if version is not None:
            slot.version = version
        if status is not None:
            slot.status = status
        if update_error is not None:
            slot.update_error = update_error

    def _batch(self, pending: dict[str, _Pending]) -> pa.Table:
        nodes = list(pending)
        slots = [pending[n] for n in nodes]
        elevated: list[bool | None] = [
            s.elevated
            if s.elevated is not None
            else self.verdicts[n]
            if n in self.verdicts
            else None
            if s.pps is None
            else self.rule.elevated(s.pps, self.baselines.get(n))
            for n, s in zip(nodes, slots, strict=True)
        ]
        return pa.Table.from_arrays(
            [
                pa.array(nodes, pa.string()),
                pa.array([s.seen for s in slots], pa.timestamp("us", tz="UTC")),
                pa.array([s.pps for s in slots], pa.float64()),
                pa.array([s.bps for s in slots], pa.float64()),
                pa.array(elevated, pa.bool_()),
                pa.array([s.version for s in slots], pa.string()),
                pa.array([s.status for s in slots], pa.string()),
                pa.array([s.update_error for s in slots], pa.string()),
            ],
            schema=_BATCH_SCHEMA,
        )

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        await self.store.run(_write, self._batch(batch))

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
