"""The load generator: a process of its own that posts pre-built Arrow IPC bodies.

``LoadGenerator`` starts one child process (``multiprocessing``, spawn) and talks to it over a
pipe. The child builds the bodies once per ``build()`` (fixed seeds, see ``batches.py``), then
runs phases on request:

- **closed loop** (``rate_rps=None``): ``connections`` senders, each posting its next batch as soon
  as the previous one is answered; a 503 makes that sender wait ``Retry-After`` as a real sender
  would. This finds the maximum rate.
- **open loop** (``rate_rps`` set): batches are due at Poisson arrival times (seeded) whatever the
  server does, over at most ``connections`` keep-alive connections; latency is measured from the
  due time, so a server that falls behind is charged for the queueing it causes. Batches due
  while ``max_inflight`` are outstanding are not sent and are counted as ``skipped``.

Every phase is bounded by ``max_requests`` and ``max_secs`` (and a hard per-request timeout), and
only loopback addresses are accepted as targets. The child exits when the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import multiprocessing as mp
import os
import random
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from .batches import ARROW, DISTINCT_ROWS, BodySet, build_bodies

__all__ = ["LoadGenerator", "LoadResult", "Phase", "check_loopback", "percentile"]

_REQUEST_TIMEOUT_SECS = 60.0


def check_loopback(url: str) -> None:
    """Refuse any target that is not on this machine's loopback."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"load generator targets loopback addresses only, not {host!r}")


@dataclass(frozen=True)
class Phase:
    base_url: str
    kind: str
    keys: tuple[str, ...]
    batch_prefix: str
    connections: int = 6
    max_requests: int = 100_000
    max_secs: float = 10.0
    rate_rps: float | None = None
    max_inflight: int = 256
    seed: int = 1


@dataclass
class LoadResult:
    rows_per_request: int
    body_bytes: float
    sent: int = 0
    skipped: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    retry_after_503: int = 0
    reasons_503: dict[str, int] = field(default_factory=dict)  # error message -> count
    accepted_rows: int = 0
    duplicates: int = 0
    t_first: float = 0.0  # time.monotonic() of the first send (CLOCK_MONOTONIC is system-wide)
    t_last: float = 0.0  # time.monotonic() of the last answer
    offered_rps: float | None = None
    cpu_secs: float = 0.0
    latencies_202: list[float] = field(default_factory=list)  # seconds, in send order
    latencies_503: list[float] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(self.t_last - self.t_first, 1e-9)

    @property
    def ack_rows_per_s(self) -> float:
        return self.accepted_rows / self.duration

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- the child process ------------------------------------------------------------------------


class _Run:
    def __init__(self, phase: Phase, bodies: BodySet) -> None:
        self.phase = phase
        self.bodies = bodies
        self.url = f"{phase.base_url}/api/v1/telemetry/{phase.kind}"
        self.result = LoadResult(bodies.rows, bodies.mean_bytes, offered_rps=phase.rate_rps)
        self.lat202 = array("d")
        self.lat503 = array("d")
        self._headers = [
            {"Authorization": f"Bearer {k}", "Content-Type": ARROW} for k in phase.keys
        ]

    async def post(self, session: Any, i: int, started: float) -> float:
        """Send batch ``i``; returns the Retry-After seconds of a 503 (else 0)."""
        import aiohttp
        import orjson

        res = self.result
        body = self.bodies.bodies[i % len(self.bodies.bodies)]
        headers = {**self._headers[i % len(self._headers)]}
        headers["X-Batch-Id"] = f"{self.phase.batch_prefix}-{i}"
        res.sent += 1
        try:
            async with session.post(self.url, data=body, headers=headers) as resp:
                payload = await resp.read()
                status = resp.status
                retry = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            name = type(exc).__name__
            res.errors[name] = res.errors.get(name, 0) + 1
            res.t_last = time.monotonic()
            return 1.0
        done = time.monotonic()
        res.t_last = max(res.t_last, done)
        res.statuses[status] = res.statuses.get(status, 0) + 1
        if status == 202:
            answer = orjson.loads(payload)
            res.accepted_rows += int(answer["accepted"])
            res.duplicates += bool(answer["duplicate"])
            self.lat202.append(done - started)
        elif status == 503:
            self.lat503.append(done - started)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                reason = str(orjson.loads(payload)["error"]["message"])
                res.reasons_503[reason] = res.reasons_503.get(reason, 0) + 1
            if retry is not None:
                res.retry_after_503 += 1
                with contextlib.suppress(ValueError):
                    return float(retry)
            return 1.0
        return 0.0

    async def closed_loop(self, session: Any) -> None:
        p = self.phase
        next_index = iter(range(p.max_requests))
        deadline = time.monotonic() + p.max_secs

        async def sender() -> None:
            for i in next_index:
                now = time.monotonic()
                if now >= deadline:
                    return
                wait = await self.post(session, i, now)
                if wait:
                    await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

        self.result.t_first = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(p.connections)))

    async def open_loop(self, session: Any) -> None:
        p = self.phase
        assert p.rate_rps is not None and p.rate_rps > 0
        rng = random.Random(p.seed)
        tasks: set[asyncio.Task[float]] = set()
        t0 = self.result.t_first = time.monotonic()
        due = t0
        for i in range(p.max_requests):
            due += rng.expovariate(p.rate_rps)
            if due - t0 >= p.max_secs:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= p.max_inflight:
                self.result.skipped += 1
                continue
            task = asyncio.create_task(self.post(session, i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=_REQUEST_TIMEOUT_SECS)

    async def run(self) -> LoadResult:
        import aiohttp

        p = self.phase
        connector = aiohttp.TCPConnector(limit=p.connections, limit_per_host=p.connections)
        timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_SECS)
        cpu0 = os.times()
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            if p.rate_rps is None:
                await self.closed_loop(session)
            else:
                await self.open_loop(session)
        cpu1 = os.times()
        res = self.result
        res.cpu_secs = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        res.latencies_202 = self.lat202.tolist()
        res.latencies_503 = self.lat503.tolist()
        if res.t_last == 0.0:
            res.t_last = time.monotonic()
        return res


def _child(conn: Connection) -> None:
    import uvloop

    bodies: BodySet | None = None
    while True:
        try:
            cmd, arg = conn.recv()
        except EOFError:
            return
        try:
            if cmd == "build":
                t = time.perf_counter()
                bodies = build_bodies(**arg)
                info = {
                    "build_secs": time.perf_counter() - t,
                    "bodies": len(bodies.bodies),
                    "mean_bytes": bodies.mean_bytes,
                }
                conn.send(("ok", info))
            elif cmd == "run":
                phase: Phase = arg
                check_loopback(phase.base_url)
                if bodies is None or bodies.kind != phase.kind:
                    raise RuntimeError("build bodies of this kind first")
                conn.send(("ok", uvloop.run(_Run(phase, bodies).run())))
            elif cmd == "stop":
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


# --- the parent's handle --------------------------------------------------------------------


class LoadGenerator:
    """Handle on the load generator process. Use as a context manager."""

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._proc: Any = None
        self.body_bytes = 0.0

    def __enter__(self) -> LoadGenerator:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child,), name="loadgen", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, EOFError):
                self._conn.send(("stop", None))
                if self._conn.poll(10):
                    self._conn.recv()
            self._conn.close()
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    def _call(self, cmd: str, arg: Any, timeout: float) -> Any:
        assert self._conn is not None, "use LoadGenerator as a context manager"
        self._conn.send((cmd, arg))
        if not self._conn.poll(timeout):
            raise TimeoutError(f"load generator did not answer {cmd} within {timeout:.0f} s")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"load generator: {value}")
        return value

    def build(
        self, kind: str, rows: int, compression: str, seed: int, distinct_rows: int = DISTINCT_ROWS
    ) -> dict[str, float]:
        """Pre-build the bodies that the following phases send; returns build_secs, bodies and
        mean_bytes."""
        arg = {
            "kind": kind,
            "rows": rows,
            "compression": compression,
            "seed": seed,
            "distinct_rows": distinct_rows,
        }
        out: dict[str, float] = self._call("build", arg, timeout=300)
        return out

    def run(self, phase: Phase) -> LoadResult:
        check_loopback(phase.base_url)
        result: LoadResult = self._call("run", phase, timeout=phase.max_secs + 3 * 60)
        return result
