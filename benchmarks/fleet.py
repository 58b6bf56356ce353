"""A fleet of simulated ftagent nodes against the real server: how many nodes one process serves.

Each simulated node keeps ftagent's timing (docs/agent-api.md §1.3, §1.4): ``GET /agent/config``
once at start and every 300 s, ``POST /agent/metrics`` every 5 s, ``POST /agent/heartbeat``
every 30 s (first at +30 s); a fraction of the nodes goes through attacks (open, config fetch, an
update about every 10 s, resolve, then a tiny classic-pcap upload as ``multipart/form-data``).
Start times and attack times are jittered from a fixed seed. Bodies are the ftagent-shaped ones of
``tests/test_agent_api.py``.

To measure capacity in a short run the fleet is time-compressed: at ``--speedup 10`` every node
does everything 10 times as often, so N nodes offer the load of ``10 * N`` real nodes. Phases,
all driven from this one process (asyncio + aiohttp; ``--connections`` keep-alive connections,
by default one per simulated node as every ftagent holds its own; 127.0.0.1 only, bounded in
time and requests):

1. **bare**: the very same fleet client, unpaced, against a bare aiohttp handler in its own
   process (uvloop, no access log) that reads each body and answers 200 with a small JSON
   object -- the requests/s that HTTP and this client alone allow here. Same code, bodies,
   headers and connections on both sides of the ratio, so the client's own cost cancels out.
2. **max**: the fleet against Floodwatch with no pacing (each node sends its next call as soon as
   the previous one is answered, at most ``--connections`` in flight): sustained requests/s.
3. **paced**: the fleet at a speedup that offers half the bare handler's requests/s (or
   ``--speedup``); latency is measured from each call's due time, so falling behind is charged.
4. **half**: the fleet paced at half of Floodwatch's own sustained rate (the better of max and
   paced), for a latency figure at a load the server can carry.

Targets (reported, never asserted): sustained >= 60% of bare requests/s; p99 < 50 ms at half load,
read after a warm-up of min(3 s, a quarter of the phase) in which every node opens its connection
and the server's key and config caches fill (the p99 with the warm-up is reported beside it).

Run: ``python -m benchmarks.fleet [--nodes N] [--secs S] [--quick] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import json
import random
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tests.test_agent_api import FLOOD_METRICS, HOST_HEARTBEAT, OPEN, RESOLVE, SPARSE_UPDATE

from .ceilings import serve_until_stopped
from .harness import PeakRss, ServerProcess, free_port
from .loadgen import check_loopback, percentile

__all__ = ["main", "node_events", "tiny_pcap"]

SEED = 20260314
REAL_NODE_RPS = 0.2 + 1 / 30 + 1 / 300  # metrics + heartbeats + config polls of a quiet node
P99_TARGET_MS = 50.0
WARMUP_MAX_SECS = 3.0
"""Paced phases open one new connection per node and start with cold key and config caches;
their first seconds are reported, but the latency targets are read after them."""
RATIO_TARGET = 0.60
_REQUEST_TIMEOUT_SECS = 30.0

METRICS_EVERY = 5.0
HEARTBEAT_EVERY = 30.0
CONFIG_EVERY = 300.0
UPDATE_EVERY = 10.0

# ftagent's threads (docs/agent-api.md §1.5): each lane makes its calls one after the other
DETECTION = frozenset(
    {"incident_open", "incident_update", "incident_resolve", "pcap", "config_after_open"}
)
LANES = (frozenset({"metrics"}), frozenset({"heartbeat"}), frozenset({"config"}), DETECTION)
SHORT_LIVED = frozenset({"pcap", "config_after_open"})  # each on a thread of its own


def tiny_pcap(packets: int = 3, seed: int = 1) -> bytes:
    """A valid classic pcap (microseconds, Ethernet): ``packets`` small UDP/IPv4 frames."""
    rng = random.Random(seed)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(packets):
        payload = bytes(rng.getrandbits(8) for _ in range(18))
        udp = struct.pack("!HHHH", 1900, 40000 + i, 8 + len(payload), 0) + payload
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            i,
            0,
            57,
            17,
            0,
            bytes([192, 0, 2, 73]),
            bytes([203, 0, 113, 10]),
        )
        frame = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00" + ip + udp
        out.append(struct.pack("<IIII", 1_773_511_841 + i, 0, len(frame), len(frame)) + frame)
    return b"".join(out)


def node_events(rng: random.Random, attacker: bool) -> Iterator[tuple[float, str]]:
    """(real-time seconds since the fleet start, call) of one node, in time order, forever."""
    start = rng.uniform(0.0, 30.0)
    streams = [
        (start, "config", CONFIG_EVERY),
        (start + rng.uniform(0.0, METRICS_EVERY), "metrics", METRICS_EVERY),
        (start + HEARTBEAT_EVERY, "heartbeat", HEARTBEAT_EVERY),
    ]
    heapq.heapify(streams)
    attack: list[tuple[float, str]] = []
    next_attack = start + rng.uniform(20.0, 240.0) if attacker else float("inf")
    while True:
        if not attack and next_attack <= streams[0][0]:
            a = next_attack
            dur = rng.uniform(40.0, 120.0)
            attack = [(a, "incident_open"), (a + 0.1, "config_after_open")]
            t = a + UPDATE_EVERY
            while t < a + dur:
                attack.append((t, "incident_update"))
                t += UPDATE_EVERY
            attack += [(a + dur, "incident_resolve"), (a + dur + 1.0, "pcap")]
            next_attack = a + dur + 30.0 + rng.expovariate(1 / 300)
        if attack and attack[0][0] <= streams[0][0]:
            yield attack.pop(0)
            continue
        t, kind, every = heapq.heappop(streams)
        heapq.heappush(streams, (t + every, kind, every))
        yield t, kind


def fleet_rate_per_node(nodes: int, attack_fraction: float, horizon: float = 3600.0) -> float:
    """Requests/s of one average real-time node of this fleet (attacks included)."""
    total = 0
    for i in range(nodes):
        rng = random.Random(SEED + i)
        attacker = rng.random() < attack_fraction
        for t, _ in node_events(rng, attacker):
            if t >= horizon:
                break
            total += 1
    return total / horizon / nodes


@dataclass
class Stats:
    started: float = 0.0
    ended: float = 0.0
    sent: int = 0
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    exceptions: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    warmup_until: float = 0.0
    steady: list[float] = field(default_factory=list)
    client_lags: list[float] = field(default_factory=list)

    def record(self, kind: str, status: int, secs: float) -> None:
        per = self.statuses.setdefault(kind, {})
        per[status] = per.get(status, 0) + 1
        self.latencies.setdefault(kind, []).append(secs)
        if time.monotonic() >= self.warmup_until:
            self.steady.append(secs)

    @property
    def answered(self) -> int:
        return sum(sum(s.values()) for s in self.statuses.values())

    @property
    def rps(self) -> float:
        return self.answered / max(self.ended - self.started, 1e-9)

    def summary(self) -> dict[str, Any]:
        every = [x for v in self.latencies.values() for x in v]
        errors: dict[str, int] = {}
        for per in self.statuses.values():
            for status, n in per.items():
                if status >= 400:
                    errors[str(status)] = errors.get(str(status), 0) + n
        for name, n in self.exceptions.items():
            errors[name] = errors.get(name, 0) + n

        def ms(values: list[float], q: float) -> float | None:
            p = percentile(values, q)
            return None if p is None else round(p * 1000, 2)

        return {
            "secs": round(self.ended - self.started, 2),
            "sent": self.sent,
            "answered": self.answered,
            "rps": round(self.rps, 1),
            "p50_ms": ms(every, 50),
            "p99_ms": ms(every, 99),
            "warmup_secs": round(max(0.0, self.warmup_until - self.started), 2),
            "steady_p50_ms": ms(self.steady, 50),
            "steady_p99_ms": ms(self.steady, 99),
            "errors": errors,
            "client_loop_lag_p99_ms": ms(self.client_lags, 99),
            "client_loop_lag_max_ms": ms(self.client_lags, 100),
            "endpoints": {
                kind: {
                    "count": len(lat),
                    "p50_ms": ms(lat, 50),
                    "p99_ms": ms(lat, 99),
                    "statuses": {str(k): v for k, v in sorted(self.statuses[kind].items())},
                }
                for kind, lat in sorted(self.latencies.items())
            },
        }


_BODIES = {
    "metrics": orjson.dumps(FLOOD_METRICS),
    "heartbeat": orjson.dumps(HOST_HEARTBEAT),
    "incident_open": orjson.dumps(OPEN),
    "incident_update": orjson.dumps(SPARSE_UPDATE),
    "incident_resolve": orjson.dumps(RESOLVE),
}
_PCAP = tiny_pcap()


class Fleet:
    def __init__(self, base_url: str, nodes: list[tuple[str, str]], attack_fraction: float) -> None:
        check_loopback(base_url)
        self.api = base_url + "/api/v1/agent"
        self.nodes = nodes
        self.attack_fraction = attack_fraction

    async def _call(
        self,
        session: Any,
        kind: str,
        headers: dict[str, str],
        incident: str | None,
        stats: Stats,
        t_from: float,
    ) -> tuple[int, bytes]:
        import aiohttp

        stats.sent += 1
        kw: dict[str, Any] = {"headers": headers}
        if kind == "config_after_open":
            kind = "config"
        if kind == "config":
            method, url = "GET", self.api + "/config"
            kw["headers"] = {k: v for k, v in headers.items() if k != "Content-Type"}
        elif kind in ("metrics", "heartbeat"):
            method, url, kw["data"] = "POST", f"{self.api}/{kind}", _BODIES[kind]
        elif kind == "incident_open":
            method, url, kw["data"] = "POST", self.api + "/incidents", _BODIES[kind]
        elif kind == "incident_update":
            method, url, kw["data"] = "POST", f"{self.api}/incidents/{incident}", _BODIES[kind]
        elif kind == "incident_resolve":
            url = f"{self.api}/incidents/{incident}/resolve"
            method, kw["data"] = "POST", _BODIES[kind]
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            form = aiohttp.FormData()
            form.add_field(
                "pcap",
                _PCAP,
                filename=f"{incident}_{stamp}.pcap",
                content_type="application/octet-stream",
            )
            kw["headers"] = {k: v for k, v in headers.items() if k != "Content-Type"}
            method, url, kw["data"] = "POST", f"{self.api}/incidents/{incident}/pcap", form
        try:
            async with session.request(method, url, allow_redirects=False, **kw) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            name = type(exc).__name__
            stats.exceptions[name] = stats.exceptions.get(name, 0) + 1
            return 0, b""
        stats.record(kind, status, time.monotonic() - t_from)
        return status, payload

    async def _node(
        self,
        session: Any,
        index: int,
        stats: Stats,
        t0: float,
        deadline: float,
        speedup: float | None,
        gate: asyncio.Semaphore | None,
        budget: list[int],
    ) -> None:
        """One node as ftagent runs it (§1.5): paced, its metrics sender, heartbeat, config loop
        and detection loop are threads of their own, each making its calls one after the other,
        and PCAP uploads and the config fetch after an open run on short-lived threads, so a
        slow incident call delays that node's next detection call, never its metrics. Unpaced,
        the node walks its schedule in order, as fast as it is answered."""
        key, node_uuid = self.nodes[index]
        headers = {
            "Authorization": f"Bearer {key}",
            "X-Node-UUID": node_uuid,
            "User-Agent": "ftagent/1.9.65",
            "Content-Type": "application/json",
        }
        attacker = random.Random(SEED + index).random() < self.attack_fraction
        incident: list[str | None] = [None]
        short: set[asyncio.Task[None]] = set()

        async def call(kind: str, due: float) -> tuple[int, bytes]:
            if gate is not None:
                async with gate:
                    return await self._call(
                        session, kind, headers, incident[0], stats, time.monotonic()
                    )
            return await self._call(session, kind, headers, incident[0], stats, due)

        async def lane(kinds: frozenset[str]) -> None:
            # every lane replays the node's one schedule (same seed), keeping its own calls
            rng = random.Random(SEED + index)
            rng.random()  # the attacker draw above
            for t_real, kind in node_events(rng, attacker):
                if kind not in kinds:
                    continue
                due = time.monotonic()
                if speedup is not None:
                    due = t0 + t_real / speedup
                    if due >= deadline:
                        return
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if time.monotonic() >= deadline or budget[0] <= 0:
                    return
                budget[0] -= 1
                if kind in SHORT_LIVED and speedup is not None:
                    task = asyncio.create_task(call(kind, due))
                    short.add(task)  # type: ignore[arg-type]
                    task.add_done_callback(short.discard)  # type: ignore[arg-type]
                    continue
                status, payload = await call(kind, due)
                if kind == "incident_open":
                    got = None
                    if status == 200:
                        got = str(orjson.loads(payload).get("uuid") or "") or None
                    # what the agent does when the open fails (§1.4): a uuid of its own
                    incident[0] = got or str(uuid.UUID(int=rng.getrandbits(128), version=4))

        # Unpaced, one lane walks the node's whole schedule in order, so the mix of calls stays
        # the fleet's (independent unpaced lanes would each spin at their own speed).
        groups = LANES if speedup is not None else (frozenset().union(*LANES),)
        lanes = [lane(kinds) for kinds in groups if attacker or kinds != DETECTION]
        await asyncio.gather(*lanes)
        if short:
            await asyncio.gather(*short, return_exceptions=True)

    async def run(
        self,
        connections: int,
        secs: float,
        speedup: float | None,
        max_requests: int,
        warmup_secs: float = 0.0,
    ) -> Stats:
        """The fleet for ``secs`` seconds: paced at ``speedup``, or unpaced when None. Answers
        in the first ``warmup_secs`` count everywhere except in the ``steady_*`` percentiles."""
        import aiohttp

        stats = Stats()
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
        timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_SECS)
        gate = asyncio.Semaphore(connections) if speedup is None else None
        budget = [max_requests]
        # The client's own stalls would be charged to the server: a full collection of this
        # process's objects took 40-60 ms and lined up with the worst seconds. So the collector
        # is off during a phase (a phase's cyclic garbage is a few MiB) and the client's loop
        # lag is sampled and reported next to the latencies.
        gc.collect()
        gc.freeze()
        gc.disable()
        stop = asyncio.Event()
        lag_probe = asyncio.create_task(_sample_loop_lag(stats.client_lags, stop))
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                t0 = stats.started = time.monotonic()
                stats.warmup_until = t0 + warmup_secs
                deadline = t0 + secs
                tasks = [
                    self._node(session, i, stats, t0, deadline, speedup, gate, budget)
                    for i in range(len(self.nodes))
                ]
                await asyncio.wait_for(asyncio.gather(*tasks), secs + _REQUEST_TIMEOUT_SECS + 5)
                stats.ended = time.monotonic()
        finally:
            stop.set()
            await lag_probe
            gc.enable()
            gc.unfreeze()
            gc.collect()
        return stats


async def _sample_loop_lag(into: list[float], stop: asyncio.Event) -> None:
    """How late a 10 ms sleep of the client's own loop wakes up, until ``stop``."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(0.01)
        into.append(max(0.0, time.monotonic() - t - 0.01))


_BARE_ANSWER = orjson.dumps({"ok": True, "uuid": str(uuid.UUID(int=SEED, version=4))})


async def _serve_bare_agent(port: int, max_secs: float) -> None:
    """The bare handler: every GET and POST under any path reads the body and answers 200 with
    a small JSON object (an ``ok`` and a ``uuid``, enough for the fleet's incident opens)."""

    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_BARE_ANSWER, content_type="application/json")

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    await serve_until_stopped(app, port, max_secs)


class BareAgentServer:
    """``_serve_bare_agent`` in its own process (uvloop, no access log). A context manager."""

    def __init__(self, max_secs: float) -> None:
        self.port = free_port()
        self.max_secs = max_secs
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BareAgentServer:
        cmd = [sys.executable, "-m", "benchmarks.fleet", "--bare-server", str(self.port)]
        self.proc = subprocess.Popen([*cmd, "--secs", str(self.max_secs)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("bare agent server exited early")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base_url + "/health", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("bare agent server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def create_nodes(base_url: str, token: str, count: int) -> list[tuple[str, str]]:
    """(api key, node uuid) of ``count`` new nodes, 16 creations at a time."""
    import aiohttp

    sem = asyncio.Semaphore(16)
    out: list[tuple[str, str]] = [("", "")] * count

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        body = {"name": f"fleet-{i}", "ip": f"198.18.{i // 250}.{1 + i % 250}"}
        async with (
            sem,
            session.post(
                base_url + "/api/v1/nodes",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as resp,
        ):
            text = await resp.text()
            if resp.status != 201:
                raise RuntimeError(f"node create failed: {resp.status} {text}")
            node = json.loads(text)["node"]
            out[i] = (str(node["api_key"]), str(node["uuid"]))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, i) for i in range(count)))
    return out


def _cpu(secs: float, stats: Stats) -> dict[str, float]:
    """The server's CPU over a phase: cores busy on average, and ms of CPU per answer."""
    wall = max(stats.ended - stats.started, 1e-9)
    return {
        "server_cpu_cores": round(secs / wall, 2),
        "server_cpu_ms_per_request": round(1000 * secs / max(stats.answered, 1), 2),
    }


def _log(msg: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    per_node_rps = fleet_rate_per_node(args.nodes, args.attack_fraction)
    report: dict[str, Any] = {
        "command": "python -m benchmarks.fleet " + " ".join(sys.argv[1:]),
        "nodes": args.nodes,
        "secs": args.secs,
        "connections": args.connections,
        "attack_fraction": args.attack_fraction,
        "seed": SEED,
        "fleet_real_node_rps": round(per_node_rps, 4),
        "quiet_real_node_rps": round(REAL_NODE_RPS, 4),
    }
    with tempfile.TemporaryDirectory(prefix="floodwatch-fleet-") as tmp:
        _log("bare aiohttp handler: the same fleet client, unpaced")
        with BareAgentServer(max_secs=args.secs * 4 + 120) as bare:
            fake_nodes = [
                (f"bare-{i}", str(uuid.UUID(int=SEED + i, version=4))) for i in range(args.nodes)
            ]
            bare_fleet = Fleet(bare.base_url, fake_nodes, args.attack_fraction)
            bare_stats = uvloop.run(
                bare_fleet.run(args.connections, args.secs, None, args.max_requests)
            )
        report["bare"] = bare_stats.summary()
        _log(f"bare: {bare_stats.rps:.0f} req/s")

        env = {
            "FLOODWATCH_API__RATE_LIMIT_PER_MINUTE": "1000000",
            "FLOODWATCH_LAKE__MAINTENANCE_INTERVAL_SECS": "86400",
        }
        server = ServerProcess(Path(tmp) / "data", env=env)
        server.start()
        try:
            _, token = server.create_workspace("fleet")
            nodes = uvloop.run(create_nodes(server.base_url, token, args.nodes))
            fleet = Fleet(server.base_url, nodes, args.attack_fraction)
            with PeakRss(server.pid) as rss:
                _log(f"max: {args.nodes} nodes, unpaced")
                cpu0 = server.cpu_secs()
                max_stats = uvloop.run(
                    fleet.run(args.connections, args.secs, None, args.max_requests)
                )
                cpu1 = server.cpu_secs()
                report["max"] = {**max_stats.summary(), **_cpu(cpu1 - cpu0, max_stats)}
                _log(f"max: {max_stats.rps:.0f} req/s")
                target = 0.5 * bare_stats.rps
                speedup = args.speedup or target / (args.nodes * per_node_rps)
                offered = args.nodes * speedup * per_node_rps
                _log(f"paced: speedup {speedup:.1f}, offered ~{offered:.0f} req/s")
                warmup = min(WARMUP_MAX_SECS, args.secs / 4)
                paced_stats = uvloop.run(
                    fleet.run(args.connections, args.secs, speedup, args.max_requests, warmup)
                )
                cpu2 = server.cpu_secs()
                report["paced"] = {
                    "speedup": round(speedup, 2),
                    "equivalent_real_nodes": round(args.nodes * speedup),
                    "offered_rps": round(offered, 1),
                    "half_bare_rps": round(target, 1),
                    **paced_stats.summary(),
                    **_cpu(cpu2 - cpu1, paced_stats),
                }
                # The server's own half load: half the best rate it sustained above.
                sustained = max(max_stats.rps, paced_stats.rps)
                speedup2 = 0.5 * sustained / (args.nodes * per_node_rps)
                offered2 = args.nodes * speedup2 * per_node_rps
                _log(f"half: speedup {speedup2:.1f}, offered ~{offered2:.0f} req/s")
                half_stats = uvloop.run(
                    fleet.run(args.connections, args.secs, speedup2, args.max_requests, warmup)
                )
                cpu3 = server.cpu_secs()
                report["half"] = {
                    "speedup": round(speedup2, 2),
                    "equivalent_real_nodes": round(args.nodes * speedup2),
                    "offered_rps": round(offered2, 1),
                    **half_stats.summary(),
                    **_cpu(cpu3 - cpu2, half_stats),
                }
            report["sustained_rps"] = round(sustained, 1)
            report["server_peak_rss_mib"] = round(rss.peak_bytes / 2**20, 1)
            report["server_exit_code"] = server.stop()
        finally:
            server.stop()

    ratio = sustained / max(bare_stats.rps, 1e-9)
    p99 = report["paced"]["steady_p99_ms"]
    p99_half = report["half"]["steady_p99_ms"]
    report["targets"] = {
        "ratio_to_bare": round(ratio, 3),
        "ratio_met": ratio >= RATIO_TARGET,
        "paced_p99_ms": p99,
        "paced_p99_with_warmup_ms": report["paced"]["p99_ms"],
        "paced_p99_met": p99 is not None and p99 < P99_TARGET_MS,
        "paced_at_half_bare": args.speedup is None,
        "half_own_p99_ms": p99_half,
        "half_own_p99_with_warmup_ms": report["half"]["p99_ms"],
        "half_own_p99_met": p99_half is not None and p99_half < P99_TARGET_MS,
    }
    report["nodes_per_process"] = {
        "quiet_nodes": int(sustained / REAL_NODE_RPS),
        "fleet_mix_nodes": int(sustained / per_node_rps),
    }
    return report


def markdown(r: dict[str, Any]) -> str:
    t = r["targets"]

    def yes(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        f"# Fleet: {r['nodes']} simulated ftagent nodes, {r['secs']} s per phase",
        "",
        f"`{r['command']}` -- {r['connections']} connections, seed {r['seed']}, "
        f"{r['attack_fraction']:.0%} of nodes attacked; one real node of this fleet makes "
        f"{r['fleet_real_node_rps']} req/s (a quiet one {r['quiet_real_node_rps']}).",
        "",
        "| phase | req/s | p50 ms | p99 ms | steady p50 / p99 ms | errors | server cores "
        "| server CPU ms/req | client loop lag p99 / max ms |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name in ("bare", "max", "paced", "half"):
        p = r[name]
        label = name
        if name in ("paced", "half"):
            label = (
                f"{name} x{p['speedup']} (= {p['equivalent_real_nodes']} real nodes, "
                f"offered {p['offered_rps']})"
            )
        lines.append(
            f"| {label} | {p['rps']} | {p['p50_ms']} | {p['p99_ms']} "
            f"| {p['steady_p50_ms']} / {p['steady_p99_ms']} | {p['errors'] or '-'} "
            f"| {p.get('server_cpu_cores', '-')} | {p.get('server_cpu_ms_per_request', '-')} "
            f"| {p['client_loop_lag_p99_ms']} / {p['client_loop_lag_max_ms']} |"
        )
    for name in ("max", "paced", "half"):
        lines += [
            "",
            f"Per endpoint, {name}:",
            "",
            "| endpoint | count | p50 ms | p99 ms | statuses |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for kind, e in r[name]["endpoints"].items():
            lines.append(
                f"| {kind} | {e['count']} | {e['p50_ms']} | {e['p99_ms']} | {e['statuses']} |"
            )
    n = r["nodes_per_process"]
    lines += [
        "",
        f"Server peak RSS: {r['server_peak_rss_mib']} MiB.",
        "",
        f"- Floodwatch / bare handler: {t['ratio_to_bare']:.0%} "
        f"(target >= {RATIO_TARGET:.0%}): {yes(t['ratio_met'])}",
        f"- p99 at half the bare rate, after the {r['paced']['warmup_secs']} s warm-up: "
        f"{t['paced_p99_ms']} ms (target < {P99_TARGET_MS:.0f} ms): {yes(t['paced_p99_met'])}; "
        f"{t['paced_p99_with_warmup_ms']} ms with it",
        f"- p99 at half of Floodwatch's own sustained rate, after the warm-up: "
        f"{t['half_own_p99_ms']} ms (target < {P99_TARGET_MS:.0f} ms): "
        f"{yes(t['half_own_p99_met'])}; {t['half_own_p99_with_warmup_ms']} ms with it",
        f"- Sustained: {r['sustained_rps']} req/s (the better of max and paced).",
        f"- One Floodwatch process can serve about {n['quiet_nodes']} ftagent nodes "
        f"({r['sustained_rps']} req/s / {r['quiet_real_node_rps']} req/s per node); "
        f"about {n['fleet_mix_nodes']} with this fleet's attack mix.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--nodes", type=int, default=500, help="simulated nodes (default 500)")
    parser.add_argument("--secs", type=float, default=30.0, help="seconds per phase (30)")
    parser.add_argument("--quick", action="store_true", help="200 nodes, 12 s per phase")
    parser.add_argument("--out", type=Path, help="write the whole report as JSON here")
    parser.add_argument(
        "--speedup", type=float, help="time compression of the paced phase (default: half bare)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="keep-alive connections (default: one per simulated node, as every ftagent holds "
        "its own)",
    )
    parser.add_argument("--attack-fraction", type=float, default=0.1)
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="per phase")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server is not None:  # the bare handler's own process (BareAgentServer)
        import uvloop

        uvloop.run(_serve_bare_agent(args.bare_server, args.secs))
        return
    if args.quick:
        args.nodes, args.secs = min(args.nodes, 200), min(args.secs, 12.0)
    if args.connections is None:
        args.connections = args.nodes
    report = run(args)
    print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
