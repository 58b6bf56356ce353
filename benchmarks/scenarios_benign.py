"""The benign side of a detection scenario (``benchmarks.detect_scenarios``): a node's profile
and its expected rate over the day and the week, and the schedule of benign events (flash
crowds, backups, spikes, silences, restarts)."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from benchmarks.scenarios_labels import BenignEvent

# A profile's traffic mix by kind, in the order it is drawn: a (lo, hi) pair is drawn with
# ``rng.uniform(lo, hi)``, a number is taken as it is. tcp/icmp/other are shares of all packets
# (UDP is the rest), syn/ack/rst/fin shares of TCP packets; port and share are the service port
# and its share of the packets; pps_src is packets per distinct source; weekend multiplies local
# Saturdays and Sundays.
PROFILE_KINDS: dict[str, dict[str, float | tuple[float, float]]] = {
    "web": {
        "tcp": (0.88, 0.97),
        "icmp": (0.002, 0.01),
        "other": (0, 0.003),
        "syn": (0.02, 0.06),
        "ack": (0.42, 0.58),
        "rst": (0.003, 0.02),
        "fin": (0.01, 0.04),
        "avg_len": (250, 700),
        "dns_of_udp": (0.1, 0.4),
        "port": 443,
        "share": 0.7,
        "pps_src": (20, 200),
        "weekend": (0.55, 0.95),
    },
    "game": {
        "tcp": (0.05, 0.2),
        "icmp": (0.002, 0.01),
        "other": (0, 0.002),
        "syn": (0.02, 0.08),
        "ack": (0.4, 0.6),
        "rst": (0.005, 0.02),
        "fin": (0.01, 0.04),
        "avg_len": (90, 220),
        "dns_of_udp": 0.01,
        "port": 27015,
        "share": 0.75,
        "pps_src": (30, 60),
        "weekend": (1.05, 1.4),
    },
    "dns": {
        "tcp": (0.02, 0.08),
        "icmp": (0.002, 0.01),
        "other": 0.0,
        "syn": (0.1, 0.3),
        "ack": (0.3, 0.5),
        "rst": (0.01, 0.05),
        "fin": (0.05, 0.15),
        "avg_len": (70, 120),
        "dns_of_udp": 0.97,
        "port": 53,
        "share": 0.88,
        "pps_src": (2, 10),
        "weekend": (0.75, 1.0),
    },
    "mixed": {
        "tcp": (0.55, 0.8),
        "icmp": (0.005, 0.02),
        "other": (0, 0.02),
        "syn": (0.02, 0.08),
        "ack": (0.4, 0.6),
        "rst": (0.005, 0.03),
        "fin": (0.01, 0.05),
        "avg_len": (300, 900),
        "dns_of_udp": (0.05, 0.3),
        "port": 80,
        "share": 0.35,
        "pps_src": (20, 300),
        "weekend": (0.6, 1.2),
    },
}


@dataclass(frozen=True)
class NodeProfile:
    workspace: str
    node: str
    index: int
    kind: str  # web | game | dns | mixed
    base_pps: float
    tz_hours: int
    daily_ratio: float
    peak_hour: float
    weekend_factor: float
    has_flows: bool
    feed: str  # metrics | flows | both
    noise_slow: float
    noise_mid: float
    noise_white: float
    tcp: float
    udp: float
    icmp: float
    other: float
    gre_of_other: float
    syn: float  # shares of TCP packets
    ack: float
    rst: float
    fin: float
    psh: float
    frag: float  # share of all packets
    dns_of_udp: float
    avg_len: float
    pkts_per_source: float
    service_port: int
    service_share: float
    fixed_src_port: int | None
    fixed_src_share: float
    node_ip: str


def expected(p: NodeProfile, t: int) -> float:
    """Expected benign pps (no noise, no events) of a node at epoch second ``t``."""
    local = t + p.tz_hours * 3600
    hour = (local % 86400) / 3600
    amp = math.log(p.daily_ratio) / 2
    daily = math.exp(amp * math.cos(2 * math.pi * (hour - p.peak_hour) / 24))
    dow = (local // 86400 + 3) % 7
    return p.base_pps * daily * (p.weekend_factor if dow >= 5 else 1.0)


def expected_expr(p: NodeProfile, t: pl.Expr) -> pl.Expr:
    """``expected`` as a polars expression of the epoch second ``t``."""
    local = t + p.tz_hours * 3600
    hour = (local % 86400).cast(pl.Float64) / 3600
    amp = math.log(p.daily_ratio) / 2
    daily = (amp * (2 * math.pi * (hour - p.peak_hour) / 24).cos()).exp()
    dow = (local // 86400 + 3) % 7
    weekly = pl.when(dow >= 5).then(pl.lit(p.weekend_factor)).otherwise(pl.lit(1.0))
    return p.base_pps * daily * weekly


def _draw(rng: random.Random, spec: float | tuple[float, float]) -> float:
    return rng.uniform(*spec) if isinstance(spec, tuple) else spec


def draw_profile(rng: random.Random, seed: int, index: int, workspace: str) -> NodeProfile:
    kind = rng.choices(["web", "game", "dns", "mixed"], weights=[45, 20, 12, 23])[0]
    base = math.exp(rng.uniform(math.log(1_000), math.log(2_000_000)))
    node = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    mix = {name: _draw(rng, spec) for name, spec in PROFILE_KINDS[kind].items()}
    fixed_src: int | None = None
    fixed_share = 0.0
    if kind == "web" and rng.random() < 0.3:
        fixed_src, fixed_share = 443, rng.uniform(0.03, 0.1)
    tcp, icmp, other = mix["tcp"], mix["icmp"], mix["other"]
    udp = max(0.0, 1.0 - tcp - icmp - other)
    rng.random()  # (the draw that once chose flows or metrics; kept so profiles stay put)
    feed = ("metrics", "flows", "both")[int(random.Random(f"feed:{seed}:{index}").random() * 3)]
    has_flows = feed != "metrics"
    return NodeProfile(
        workspace=workspace,
        node=node,
        index=index,
        kind=kind,
        base_pps=base,
        tz_hours=rng.randint(-10, 10),
        daily_ratio=rng.uniform(2.0, 6.0),
        peak_hour=rng.uniform(13.0, 22.0),
        weekend_factor=mix["weekend"],
        has_flows=has_flows,
        feed=feed,
        noise_slow=rng.uniform(0.03, 0.12),
        noise_mid=rng.uniform(0.02, 0.08),
        noise_white=rng.uniform(0.02, 0.1),
        tcp=tcp,
        udp=udp,
        icmp=icmp,
        other=other,
        gre_of_other=rng.uniform(0.2, 0.8),
        syn=mix["syn"],
        ack=mix["ack"],
        rst=mix["rst"],
        fin=mix["fin"],
        psh=rng.uniform(0.25, 0.4),
        frag=rng.uniform(0.0, 0.002),
        dns_of_udp=mix["dns_of_udp"],
        avg_len=mix["avg_len"],
        pkts_per_source=mix["pps_src"],
        service_port=int(mix["port"]),
        service_share=mix["share"],
        fixed_src_port=fixed_src,
        fixed_src_share=fixed_share,
        node_ip=f"10.{(index >> 8) & 255}.{index & 255}.{10 + index % 200}",
    )


def overlaps(spans: list[tuple[int, int]], a: int, b: int) -> bool:
    return any(a <= y and x <= b for x, y in spans)


def poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p < limit:
            return n
        n += 1


def benign_events(
    seed: int,
    profiles: list[NodeProfile],
    total: int,
    t0: int,
    start: datetime,
    attack_spans: dict[str, list[tuple[int, int]]],
) -> list[BenignEvent]:
    events: list[BenignEvent] = []
    days = total / 86400
    for p in profiles:
        rng = random.Random(f"events:{seed}:{p.index}")
        busy = [(a - 600, b + 600) for a, b in attack_spans[p.node]]

        def place(
            kind: str,
            dur: int,
            factor: float,
            ramp: int = 0,
            at: int | None = None,
            rng: random.Random = rng,
            busy: list[tuple[int, int]] = busy,
            p: NodeProfile = p,
        ) -> None:
            for _ in range(30):
                s = at if at is not None else rng.randint(600, max(600, total - dur - 60))
                e = s + dur - 1
                if e < total and not overlaps(busy, s - 60, e + 300):
                    busy.append((s, e))
                    events.append(
                        BenignEvent(
                            p.workspace,
                            p.node,
                            kind,
                            start + timedelta(seconds=s),
                            start + timedelta(seconds=e),
                            factor,
                            ramp,
                        )
                    )
                    return
                at = None

        for _ in range(poisson(rng, 0.6 * days)):
            ramp = rng.randint(120, 600)
            place("flash_crowd", ramp + rng.randint(600, 2400) + 300, rng.uniform(2, 5), ramp)
        if rng.random() < 0.6:
            hour = rng.uniform(1, 4)
            for d in range(math.ceil(days)):
                s = d * 86400 + int((hour - p.tz_hours) % 24 * 3600)
                if s < total - 60:
                    place("backup", rng.randint(600, 3600), rng.uniform(3, 10), 0, s)
        for _ in range(poisson(rng, 12 * days)):
            place("spike", rng.randint(1, 3), rng.uniform(1.5, 3.0))
        for _ in range(poisson(rng, 0.4 * days)):
            place("silence", rng.randint(60, 1800), 0.0)
        for _ in range(poisson(rng, 0.3 * days)):
            place("restart", rng.randint(10, 60), 0.0)
    events.sort(key=lambda e: (e.start, e.node))
    return events


def draw_fleet(seed: int, nodes: int) -> list[NodeProfile]:
    """``nodes`` node profiles in workspaces of 3-8 nodes (the last one may be smaller)."""
    rng = random.Random(f"fleet:{seed}")
    profiles: list[NodeProfile] = []
    ws_index = 0
    while len(profiles) < nodes:
        size = min(rng.randint(3, 8), nodes - len(profiles))
        workspace = f"ws-{seed}-{ws_index}"
        for _ in range(size):
            i = len(profiles)
            profiles.append(draw_profile(random.Random(f"node:{seed}:{i}"), seed, i, workspace))
        ws_index += 1
    return profiles
