"""Labeled per-second node traffic for evaluating DDoS detectors (fixed seeds, replayable).

Written from the detector contract and a model of real traffic only, never from a detector's
code: nothing here is tuned so that any particular detector does well.

Model
=====

Fleet
    ``nodes`` nodes in workspaces of 3-8 nodes. Each node has a profile (``web``: TCP-heavy,
    about half of TCP pure ACK, SYN a few percent, service port 443/80; ``game``: UDP-heavy, small
    packets, one game port; ``dns``: UDP to port 53, small packets; ``mixed``: TCP and UDP), a
    typical rate drawn log-uniformly between 1,000 and 2,000,000 pps, a local timezone offset
    (-10 h .. +10 h), and a feed: a third of the nodes send ``metrics`` only (rows with
    ``source="arrow"``), a third ``flows`` only (``source="flows"``, with the flow-only columns:
    GRE/ESP/DNS rates, top ports, PSH/URG) and a third ``both`` (two rows per second, a metrics
    row and a flows row with the same counters, as a node with an agent behind a router that
    exports flows sends them).

Benign traffic of one node at second t (all rates per second)
    ``expected(t) = base * daily(t) * weekly(t)`` where ``daily`` is a log-cosine with its peak at
    a local hour of 13-22 h and a peak/trough ratio of 2-6x, and ``weekly`` multiplies local
    Saturdays and Sundays by 0.55-1.4 (lower for business nodes, higher for game nodes).
    ``pps(t) = expected(t) * exp(noise(t)) * events(t)``; the noise is log-normal and
    autocorrelated: the sum of two value-noise layers (normal knots every 300 s and every 20 s,
    linearly interpolated, so neighbouring seconds are correlated) and a white per-second term,
    sigma 0.05-0.22 in all. The protocol mix, TCP flag shares, packet size, top ports and
    distinct sources come from the profile with small per-second jitter.

Benign events (labelled with ``BenignEvent``; none within 10 min of a labelled attack)
    - flash crowd: ramp over 2-10 min to 2-5x, plateau 10-40 min, ramp down 5 min; the same mix,
      distinct sources grow faster than packets;
    - backup: local 01:00-04:00, 10-60 min of 1400-byte TCP packets (ACK/PSH, one source, port 22
      or 873): bits/s up 3-10x, packets/s up 1.2-2.5x;
    - spike: 1-3 s at 1.5-3x;
    - silence: the agent is offline, no rows for 1-30 min;
    - restart: no rows for 10-60 s, then a first second at half rate;
    - gaps: single missing seconds (about 1 in 2,000, as 2-s holes), never inside an attack.

Attacks (labelled with ``AttackLabel``)
    Attack traffic is *added* to the benign traffic with its own mix (SYN flood: 60-byte SYN
    packets from very many spoofed sources; amplification: large UDP packets from one reflector
    source port and thousands of reflectors; ...). Its full rate is
    ``(multiplier - 1) * expected(onset)``, so during full-rate seconds the node sees about
    ``multiplier`` times its expected benign rate; the multiplier is drawn by bucket (2-3x,
    3-10x, 10-100x, 100-1000x, equally likely, log-uniform within), capped so that no attack
    exceeds 150 Mpps. Shapes: ``step``, ``ramp`` (linear over 10-60 s, then flat) and ``pulsed``
    (on/off, each 10-60 s; the label's onset is the first on-second, its end the last). Durations:
    short (10-60 s) or long (5-60 min). About a third of the attacks belong to campaigns: the
    same family and shape hit 2-5 nodes of one workspace with onsets within one minute. No
    attack starts in a node's first two hours (detectors are given time to learn).

Families and subtypes (the ftagent vocabulary): udp_flood (volumetric, small_packet_flood, and
``<reflector>_amplification`` for dns 53, ntp 123, ssdp 1900, memcached 11211, cldap 389, chargen
19, snmp 161, mdns 5353, wsd 3702), syn_flood, tcp_flood (ack_flood, rst_flood, fin_flood),
icmp_flood (ping_flood, ping_of_death), dns_flood (dns_query_flood), fragment_flood
(ip_fragment_flood), protocol_flood (gre_flood, esp_flood) and multi_vector
(multi_ntp_amplification, multi_dns_amplification, multi_mixed).

Randomness: the schedule (profiles, events, attacks) comes from ``random.Random`` seeded with
the seed and node index; per-second noise from ``polars`` hashes of (second, stream), so a
second's values do not depend on how time is cut into chunks. Same seed, same polars version:
same rows.

Use::

    scen = generate(seed=1, nodes=24, days=2)
    for frame in scen.frames():      # time-ordered node-second chunks, several nodes each
        ...
    scen.attacks, scen.events, scen.node_labels()

``wire_tables(frame)`` turns a chunk into the wire-format ``metrics`` and ``flows`` Arrow tables
(``docs/wire-format.md``) for end-to-end tests.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)

FLOAT_COLUMNS = [
    "pps",
    "bps",
    "tcp_pps",
    "udp_pps",
    "icmp_pps",
    "other_pps",
    "syn_pps",
    "ack_pps",
    "rst_pps",
    "fin_pps",
    "frag_pps",
    "avg_pkt_len",
]
FLOW_FLOAT_COLUMNS = ["gre_pps", "esp_pps", "dns_pps", "psh_pps", "urg_pps"]
SCHEMA: dict[str, Any] = {
    "workspace": pl.Utf8,
    "node": pl.Utf8,
    "time": pl.Datetime("us", "UTC"),
    "source": pl.Utf8,
    **{c: pl.Float64 for c in FLOAT_COLUMNS},
    "distinct_sources": pl.Int64,
    **{c: pl.Float64 for c in FLOW_FLOAT_COLUMNS},
    "top_src_port": pl.Int32,
    "top_src_port_share": pl.Float64,
    "top_dst_port": pl.Int32,
    "top_dst_port_share": pl.Float64,
}

AMPLIFICATION_PORTS = {
    "dns": 53,
    "ntp": 123,
    "ssdp": 1900,
    "memcached": 11211,
    "cldap": 389,
    "chargen": 19,
    "snmp": 161,
    "mdns": 5353,
    "wsd": 3702,
}
AMPLIFICATION_LEN = {
    "dns": 1250.0,
    "ntp": 468.0,
    "ssdp": 320.0,
    "memcached": 1420.0,
    "cldap": 1300.0,
    "chargen": 1050.0,
    "snmp": 900.0,
    "mdns": 340.0,
    "wsd": 1000.0,
}
# (family, subtype, weight)
ATTACK_KINDS: list[tuple[str, str, float]] = [
    ("udp_flood", "volumetric", 6),
    ("udp_flood", "small_packet_flood", 5),
    *[("udp_flood", f"{name}_amplification", 3) for name in AMPLIFICATION_PORTS],
    ("syn_flood", "syn_flood", 14),
    ("tcp_flood", "ack_flood", 5),
    ("tcp_flood", "rst_flood", 4),
    ("tcp_flood", "fin_flood", 3),
    ("icmp_flood", "ping_flood", 6),
    ("icmp_flood", "ping_of_death", 2),
    ("dns_flood", "dns_query_flood", 7),
    ("fragment_flood", "ip_fragment_flood", 6),
    ("protocol_flood", "gre_flood", 4),
    ("protocol_flood", "esp_flood", 2),
    ("multi_vector", "multi_ntp_amplification", 3),
    ("multi_vector", "multi_dns_amplification", 3),
    ("multi_vector", "multi_mixed", 3),
]
SIZE_BUCKETS: list[tuple[str, float, float]] = [
    ("2-3x", 2.0, 3.0),
    ("3-10x", 3.0, 10.0),
    ("10-100x", 10.0, 100.0),
    ("100-1000x", 100.0, 1000.0),
]
MAX_ATTACK_PPS = 150e6
_STREAMS = {
    "slow": 1,
    "mid": 2,
    "white": 3,
    "mix": 4,
    "flags": 5,
    "len": 6,
    "src": 7,
    "gap": 8,
    "port": 9,
    "attack": 10,
}


def size_bucket(multiplier: float) -> str:
    """The report's size bucket of a multiplier (below 2x counts as 2-3x, above 1000x as
    100-1000x)."""
    for name, _lo, hi in SIZE_BUCKETS[:-1]:
        if multiplier < hi:
            return name
    return SIZE_BUCKETS[-1][0]


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


@dataclass(frozen=True)
class AttackLabel:
    attack_id: str
    workspace: str
    node: str
    onset: datetime  # first attack second
    end: datetime  # last attack second
    family: str
    subtype: str
    multiplier: float
    shape: str  # step | ramp | pulsed
    duration_class: str  # short | long
    campaign: str | None
    baseline_pps: float  # expected benign pps at onset
    attack_pps: float  # full rate of the attack traffic alone
    ramp_secs: int = 0
    pulse_on_secs: int = 0
    pulse_off_secs: int = 0

    @property
    def bucket(self) -> str:
        return size_bucket(self.multiplier)

    def active(self, t: datetime) -> bool:
        """Whether the attack sends at full or ramping rate in second ``t``."""
        if t < self.onset or t > self.end:
            return False
        if self.shape != "pulsed":
            return True
        k = int((t - self.onset).total_seconds()) % (self.pulse_on_secs + self.pulse_off_secs)
        return k < self.pulse_on_secs

    def full_rate(self, t: datetime) -> bool:
        """Active and past the ramp: the node sees about ``multiplier`` x expected."""
        if not self.active(t):
            return False
        return self.shape != "ramp" or (t - self.onset).total_seconds() + 1 >= self.ramp_secs


@dataclass(frozen=True)
class BenignEvent:
    workspace: str
    node: str
    kind: str  # flash_crowd | backup | spike | silence | restart
    start: datetime
    end: datetime  # last second concerned (inclusive)
    factor: float  # peak pps factor (flash, spike), bps factor (backup), 0 (silence/restart)
    ramp_secs: int = 0


@dataclass(frozen=True)
class NodeLabel:
    workspace: str
    node: str
    kind: str
    has_flows: bool
    base_pps: float
    observed_secs: int  # seconds with rows (2-s random gaps not subtracted)
    attack_secs: int  # seconds from onset to end + 130 s of every attack
    benign_node_days: float
    feed: str = "metrics"  # metrics | flows | both


@dataclass
class Scenario:
    seed: int
    start: datetime
    days: float
    profiles: list[NodeProfile]
    attacks: list[AttackLabel]
    events: list[BenignEvent]
    chunk_secs: int = 60
    block_secs: int = 3600
    _attack_mix: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def total_secs(self) -> int:
        return int(self.days * 86400)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.total_secs)

    def node_labels(self) -> list[NodeLabel]:
        out = []
        for p in self.profiles:
            off = sum(
                _secs(e.start, e.end) for e in self.events if e.node == p.node and e.factor == 0
            )
            att = sum(_secs(a.onset, a.end) + 130 for a in self.attacks if a.node == p.node)
            observed = self.total_secs - off
            out.append(
                NodeLabel(
                    p.workspace,
                    p.node,
                    p.kind,
                    p.has_flows,
                    p.base_pps,
                    observed,
                    att,
                    max(0, observed - att) / 86400,
                    p.feed,
                )
            )
        return out

    def expected_pps(self, node: str, t: datetime) -> float:
        """Expected benign pps (no noise, no events) of a node at second ``t``."""
        p = next(p for p in self.profiles if p.node == node)
        return _expected(p, int(t.timestamp()))

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return self.frames()

    def frames(self, nodes: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """Node-second chunks in time order: per ``chunk_secs`` window, one frame per workspace
        (the nodes of a collector), sorted by time then node."""
        profiles = [p for p in self.profiles if nodes is None or p.node in nodes]
        t0 = int(self.start.timestamp())
        total = self.total_secs
        by_ws: dict[str, list[NodeProfile]] = {}
        for p in profiles:
            by_ws.setdefault(p.workspace, []).append(p)
        for b0 in range(0, total, self.block_secs):
            b1 = min(total, b0 + self.block_secs)
            blocks = {
                ws: pl.concat([self.node_block(p, t0 + b0, t0 + b1) for p in ps])
                for ws, ps in by_ws.items()
            }
            for c0 in range(b0, b1, self.chunk_secs):
                lo = self.start + timedelta(seconds=c0)
                hi = self.start + timedelta(seconds=min(b1, c0 + self.chunk_secs))
                for ws in by_ws:
                    chunk = blocks[ws].filter((pl.col("time") >= lo) & (pl.col("time") < hi))
                    if chunk.height:
                        yield chunk.sort("time", "node")

    def node_block(self, p: NodeProfile, t_lo: int, t_hi: int) -> pl.DataFrame:
        """The rows of one node for epoch seconds [t_lo, t_hi)."""
        return _node_block(self, p, t_lo, t_hi)


def _secs(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds()) + 1


# ---------------------------------------------------------------------------------------------
# randomness as polars expressions


def _stream_seed(seed: int, node_index: int, stream: int) -> int:
    return (seed * 1_000_003 + node_index * 7919 + stream * 104_729) % (2**61 - 1)


def _uniform(expr: pl.Expr, key: int) -> pl.Expr:
    """Uniform in (0, 1], a pure function of ``expr`` (Int64) and ``key``."""
    return ((expr.hash(seed=key) // 2048).cast(pl.Float64) + 1.0) / float(2**53)


def _normal(expr: pl.Expr, key: int) -> pl.Expr:
    u1 = _uniform(expr, key)
    u2 = _uniform(expr, key + 1)
    return (-2.0 * u1.log()).sqrt() * (2 * math.pi * u2).cos()


def _value_noise(t: pl.Expr, period: int, key: int) -> pl.Expr:
    k = t // period
    f = (t % period).cast(pl.Float64) / period
    return _normal(k, key) * (1.0 - f) + _normal(k + 1, key) * f


# ---------------------------------------------------------------------------------------------
# the benign model


def _expected(p: NodeProfile, t: int) -> float:
    local = t + p.tz_hours * 3600
    hour = (local % 86400) / 3600
    amp = math.log(p.daily_ratio) / 2
    daily = math.exp(amp * math.cos(2 * math.pi * (hour - p.peak_hour) / 24))
    dow = (local // 86400 + 3) % 7
    return p.base_pps * daily * (p.weekend_factor if dow >= 5 else 1.0)


def _expected_expr(p: NodeProfile, t: pl.Expr) -> pl.Expr:
    local = t + p.tz_hours * 3600
    hour = (local % 86400).cast(pl.Float64) / 3600
    amp = math.log(p.daily_ratio) / 2
    daily = (amp * (2 * math.pi * (hour - p.peak_hour) / 24).cos()).exp()
    dow = (local // 86400 + 3) % 7
    weekly = pl.when(dow >= 5).then(pl.lit(p.weekend_factor)).otherwise(pl.lit(1.0))
    return p.base_pps * daily * weekly


def _profile(rng: random.Random, seed: int, index: int, workspace: str) -> NodeProfile:
    kind = rng.choices(["web", "game", "dns", "mixed"], weights=[45, 20, 12, 23])[0]
    base = math.exp(rng.uniform(math.log(1_000), math.log(2_000_000)))
    node = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    fixed_src: int | None = None
    fixed_share = 0.0
    if kind == "web":
        tcp, icmp, other = rng.uniform(0.88, 0.97), rng.uniform(0.002, 0.01), rng.uniform(0, 0.003)
        syn, ack, rst, fin = (
            rng.uniform(0.02, 0.06),
            rng.uniform(0.42, 0.58),
            rng.uniform(0.003, 0.02),
            rng.uniform(0.01, 0.04),
        )
        avg_len, dns_of_udp, port, share = rng.uniform(250, 700), rng.uniform(0.1, 0.4), 443, 0.7
        pps_src = rng.uniform(20, 200)
        weekend = rng.uniform(0.55, 0.95)
        if rng.random() < 0.3:
            fixed_src, fixed_share = 443, rng.uniform(0.03, 0.1)
    elif kind == "game":
        tcp, icmp, other = rng.uniform(0.05, 0.2), rng.uniform(0.002, 0.01), rng.uniform(0, 0.002)
        syn, ack, rst, fin = (
            rng.uniform(0.02, 0.08),
            rng.uniform(0.4, 0.6),
            rng.uniform(0.005, 0.02),
            rng.uniform(0.01, 0.04),
        )
        avg_len, dns_of_udp, port, share = rng.uniform(90, 220), 0.01, 27015, 0.75
        pps_src = rng.uniform(30, 60)
        weekend = rng.uniform(1.05, 1.4)
    elif kind == "dns":
        tcp, icmp, other = rng.uniform(0.02, 0.08), rng.uniform(0.002, 0.01), 0.0
        syn, ack, rst, fin = (
            rng.uniform(0.1, 0.3),
            rng.uniform(0.3, 0.5),
            rng.uniform(0.01, 0.05),
            rng.uniform(0.05, 0.15),
        )
        avg_len, dns_of_udp, port, share = rng.uniform(70, 120), 0.97, 53, 0.88
        pps_src = rng.uniform(2, 10)
        weekend = rng.uniform(0.75, 1.0)
    else:
        tcp, icmp, other = rng.uniform(0.55, 0.8), rng.uniform(0.005, 0.02), rng.uniform(0, 0.02)
        syn, ack, rst, fin = (
            rng.uniform(0.02, 0.08),
            rng.uniform(0.4, 0.6),
            rng.uniform(0.005, 0.03),
            rng.uniform(0.01, 0.05),
        )
        avg_len, dns_of_udp, port, share = rng.uniform(300, 900), rng.uniform(0.05, 0.3), 80, 0.35
        pps_src = rng.uniform(20, 300)
        weekend = rng.uniform(0.6, 1.2)
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
        weekend_factor=weekend,
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
        syn=syn,
        ack=ack,
        rst=rst,
        fin=fin,
        psh=rng.uniform(0.25, 0.4),
        frag=rng.uniform(0.0, 0.002),
        dns_of_udp=dns_of_udp,
        avg_len=avg_len,
        pkts_per_source=pps_src,
        service_port=port,
        service_share=share,
        fixed_src_port=fixed_src,
        fixed_src_share=fixed_share,
        node_ip=f"10.{(index >> 8) & 255}.{index & 255}.{10 + index % 200}",
    )


# ---------------------------------------------------------------------------------------------
# attack recipes: the attack's own mix, as fractions of its packets


def _recipe(family: str, subtype: str, rng: random.Random) -> dict[str, Any]:
    r: dict[str, Any] = {"len": 60.0, "src_port": None, "dst_port": None, "sources_per_kpps": 50.0}

    def udp(length: float, src: int | None, sources: float) -> dict[str, Any]:
        return {
            "udp": 1.0,
            "len": length,
            "src_port": src,
            "src_share": 0.97 if src else 0.0,
            "sources_per_kpps": sources,
            "frag": 0.0,
        }

    if family == "udp_flood" and subtype.endswith("_amplification"):
        name = subtype.removesuffix("_amplification")
        r |= udp(AMPLIFICATION_LEN[name] * rng.uniform(0.9, 1.05), AMPLIFICATION_PORTS[name], 2)
        if name == "dns":
            r["dns"] = 1.0
    elif subtype == "volumetric":
        r |= udp(rng.uniform(400, 1100), None, 5)
        r["dst_port"], r["dst_share"] = rng.choice([80, 443, 27015, 3074, 9987]), 0.3
    elif subtype == "small_packet_flood":
        r |= udp(rng.uniform(60, 90), None, 8)
    elif family == "syn_flood":
        r |= {"tcp": 1.0, "syn": 1.0, "len": 60.0, "sources_per_kpps": 900.0}
        r["dst_port"], r["dst_share"] = rng.choice([80, 443, 22]), 0.9
    elif family == "tcp_flood":
        flag = subtype.removesuffix("_flood")
        r |= {"tcp": 1.0, flag: 1.0, "len": 60.0, "sources_per_kpps": 600.0}
        r["dst_port"], r["dst_share"] = rng.choice([80, 443]), 0.8
    elif subtype == "ping_flood":
        r |= {"icmp": 1.0, "len": rng.uniform(64, 120), "sources_per_kpps": 10.0}
    elif subtype == "ping_of_death":
        r |= {"icmp": 1.0, "len": rng.uniform(1100, 1480), "frag": 0.5, "sources_per_kpps": 10.0}
    elif family == "dns_flood":
        r |= {"udp": 1.0, "dns": 1.0, "len": rng.uniform(70, 100), "sources_per_kpps": 20.0}
        r["dst_port"], r["dst_share"] = 53, 0.99
    elif family == "fragment_flood":
        r |= {"udp": 1.0, "frag": 0.95, "len": rng.uniform(1200, 1480), "sources_per_kpps": 5.0}
    elif subtype == "gre_flood":
        r |= {"other": 1.0, "gre": 1.0, "len": rng.uniform(500, 1400), "sources_per_kpps": 3.0}
    elif subtype == "esp_flood":
        r |= {"other": 1.0, "esp": 1.0, "len": rng.uniform(400, 1400), "sources_per_kpps": 3.0}
    elif subtype in ("multi_ntp_amplification", "multi_dns_amplification"):
        name = "ntp" if "ntp" in subtype else "dns"
        r |= {"udp": 0.5, "tcp": 0.5, "syn": 0.5, "sources_per_kpps": 400.0}
        r["len"] = 0.5 * AMPLIFICATION_LEN[name] + 0.5 * 60
        r["src_port"], r["src_share"] = AMPLIFICATION_PORTS[name], 0.49
        if name == "dns":
            r["dns"] = 0.5
    else:  # multi_mixed: UDP + SYN + ICMP
        r |= {"udp": 0.4, "tcp": 0.4, "syn": 0.4, "icmp": 0.2, "sources_per_kpps": 300.0}
        r["len"] = 0.4 * 700 + 0.4 * 60 + 0.2 * 90
    return r


# ---------------------------------------------------------------------------------------------
# scheduling


def _overlaps(spans: list[tuple[int, int]], a: int, b: int) -> bool:
    return any(a <= y and x <= b for x, y in spans)


def _draw_multiplier(rng: random.Random, expected: float, bucket: int | None = None) -> float:
    for _ in range(20):
        _, lo, hi = SIZE_BUCKETS[rng.randrange(4) if bucket is None else bucket]
        m = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        if (m - 1) * expected <= MAX_ATTACK_PPS:
            return m
        bucket = None
    return min(m, 1 + MAX_ATTACK_PPS / expected)


def _shape(rng: random.Random) -> tuple[str, int, int, int, str, int]:
    """(shape, ramp, on, off, duration class, duration secs)."""
    shape = rng.choices(["step", "ramp", "pulsed"], weights=[45, 30, 25])[0]
    cls = "short" if rng.random() < 0.5 else "long"
    dur = rng.randint(10, 60) if cls == "short" else int(math.exp(rng.uniform(5.7, 8.19)))
    ramp = on = off = 0
    if shape == "ramp":
        ramp = min(rng.randint(10, 60), max(5, dur - 5))
    if shape == "pulsed":
        on, off = rng.randint(10, 60), rng.randint(10, 60)
        periods = max(2, round(dur / (on + off)))
        dur = periods * (on + off) - off
    return shape, ramp, on, off, cls, dur


def generate(
    seed: int = 1,
    nodes: int = 24,
    days: float = 2.0,
    *,
    start: datetime = DEFAULT_START,
    attacks_per_node_day: float = 3.0,
    campaigns_per_workspace_day: float = 1.0,
    chunk_secs: int = 60,
    block_secs: int = 3600,
) -> Scenario:
    """Draw a fleet, its benign events and its labelled attacks. Rows are made lazily by
    ``Scenario.frames()`` (or by iterating the scenario)."""
    rng = random.Random(f"fleet:{seed}")
    profiles: list[NodeProfile] = []
    ws_index = 0
    while len(profiles) < nodes:
        size = min(rng.randint(3, 8), nodes - len(profiles))
        workspace = f"ws-{seed}-{ws_index}"
        for _ in range(size):
            i = len(profiles)
            profiles.append(_profile(random.Random(f"node:{seed}:{i}"), seed, i, workspace))
        ws_index += 1
    total = int(days * 86400)
    t0 = int(start.timestamp())
    lo, hi = 2 * 3600, total - 1800
    spans: dict[str, list[tuple[int, int]]] = {p.node: [] for p in profiles}
    attacks: list[AttackLabel] = []
    mix: dict[str, dict[str, Any]] = {}
    by_node = {p.node: p for p in profiles}

    def add_attack(
        p: NodeProfile,
        onset: int,
        kind: tuple[str, str, float],
        shape: tuple[str, int, int, int, str, int],
        campaign: str | None,
        arng: random.Random,
        bucket: int | None = None,
    ) -> bool:
        name, ramp, on, off, cls, dur = shape
        end = onset + dur - 1
        if onset < lo or end > hi or _overlaps(spans[p.node], onset - 1200, end + 1200):
            return False
        expected = _expected(p, t0 + onset)
        m = _draw_multiplier(arng, expected, bucket)
        aid = f"a{len(attacks):04d}"
        attacks.append(
            AttackLabel(
                attack_id=aid,
                workspace=p.workspace,
                node=p.node,
                onset=start + timedelta(seconds=onset),
                end=start + timedelta(seconds=end),
                family=kind[0],
                subtype=kind[1],
                multiplier=round(m, 3),
                shape=name,
                duration_class=cls,
                campaign=campaign,
                baseline_pps=expected,
                attack_pps=(round(m, 3) - 1) * expected,
                ramp_secs=ramp,
                pulse_on_secs=on,
                pulse_off_secs=off,
            )
        )
        mix[aid] = _recipe(kind[0], kind[1], arng)
        spans[p.node].append((onset, end))
        return True

    weights = [w for _, _, w in ATTACK_KINDS]
    # campaigns first
    workspaces: dict[str, list[NodeProfile]] = {}
    for p in profiles:
        workspaces.setdefault(p.workspace, []).append(p)
    for ws, members in workspaces.items():
        crng = random.Random(f"campaign:{seed}:{ws}")
        n_camp = _poisson(crng, campaigns_per_workspace_day * days)
        for c in range(n_camp):
            if len(members) < 2:
                break
            kind = crng.choices(ATTACK_KINDS, weights=weights)[0]
            shape = _shape(crng)
            base_onset = crng.randint(lo, max(lo, hi - shape[5]))
            hit = crng.sample(members, crng.randint(2, min(5, len(members))))
            bucket = crng.randrange(4)
            for p in hit:
                add_attack(
                    p, base_onset + crng.randint(0, 59), kind, shape, f"{ws}-c{c}", crng, bucket
                )
    # single attacks
    for p in profiles:
        arng = random.Random(f"attacks:{seed}:{p.index}")
        for _ in range(_poisson(arng, attacks_per_node_day * days)):
            kind = arng.choices(ATTACK_KINDS, weights=weights)[0]
            shape = _shape(arng)
            for _try in range(30):
                if add_attack(p, arng.randint(lo, max(lo, hi - shape[5])), kind, shape, None, arng):
                    break
    attacks.sort(key=lambda a: (a.onset, a.node))
    events = _benign_events(seed, profiles, total, t0, start, spans)
    del by_node
    return Scenario(
        seed=seed,
        start=start,
        days=days,
        profiles=profiles,
        attacks=attacks,
        events=events,
        chunk_secs=chunk_secs,
        block_secs=block_secs,
        _attack_mix=mix,
    )


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p < limit:
            return n
        n += 1


def _benign_events(
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
                if e < total and not _overlaps(busy, s - 60, e + 300):
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

        for _ in range(_poisson(rng, 0.6 * days)):
            ramp = rng.randint(120, 600)
            place("flash_crowd", ramp + rng.randint(600, 2400) + 300, rng.uniform(2, 5), ramp)
        if rng.random() < 0.6:
            hour = rng.uniform(1, 4)
            for d in range(math.ceil(days)):
                s = d * 86400 + int((hour - p.tz_hours) % 24 * 3600)
                if s < total - 60:
                    place("backup", rng.randint(600, 3600), rng.uniform(3, 10), 0, s)
        for _ in range(_poisson(rng, 12 * days)):
            place("spike", rng.randint(1, 3), rng.uniform(1.5, 3.0))
        for _ in range(_poisson(rng, 0.4 * days)):
            place("silence", rng.randint(60, 1800), 0.0)
        for _ in range(_poisson(rng, 0.3 * days)):
            place("restart", rng.randint(10, 60), 0.0)
    events.sort(key=lambda e: (e.start, e.node))
    return events


# ---------------------------------------------------------------------------------------------
# rows


def _node_block(scen: Scenario, p: NodeProfile, t_lo: int, t_hi: int) -> pl.DataFrame:
    t = pl.col("ts")

    def key(stream: str) -> int:
        return _stream_seed(scen.seed, p.index, _STREAMS[stream])

    start_epoch = int(scen.start.timestamp())

    def span_mask(a: datetime, b: datetime) -> pl.Expr:
        return (t >= int(a.timestamp())) & (t <= int(b.timestamp()))

    attacks = [
        a
        for a in scen.attacks
        if a.node == p.node and int(a.onset.timestamp()) < t_hi and int(a.end.timestamp()) >= t_lo
    ]
    events = [
        e
        for e in scen.events
        if e.node == p.node
        and int(e.start.timestamp()) < t_hi + 2
        and int(e.end.timestamp()) >= t_lo - 2
    ]
    df = pl.DataFrame({"ts": pl.int_range(t_lo, t_hi, eager=True, dtype=pl.Int64)})

    # presence: silences, restarts, random 2-s gaps (never within an attack)
    keep = pl.lit(True)
    for e in events:
        if e.kind in ("silence", "restart"):
            keep = keep & ~span_mask(e.start, e.end)
    gap = _uniform(t // 2, key("gap")) < 1 / 2000
    in_attack = pl.lit(False)
    for a in scen.attacks:
        a0, a1 = int(a.onset.timestamp()) - 10, int(a.end.timestamp()) + 10
        if a.node == p.node and a0 < t_hi and a1 >= t_lo:
            in_attack = in_attack | ((t >= a0) & (t <= a1))
    keep = keep & (~gap | in_attack)

    noise = (
        p.noise_slow * _value_noise(t, 300, key("slow"))
        + p.noise_mid * _value_noise(t, 20, key("mid"))
        + p.noise_white * _normal(t, key("white"))
    )
    factor = pl.lit(1.0)
    ds_factor = pl.lit(1.0)
    backup_pps = pl.lit(0.0)
    for e in events:
        s, en = int(e.start.timestamp()), int(e.end.timestamp())
        if e.kind == "flash_crowd":
            down = 300
            up = (t - s + 1).cast(pl.Float64) / e.ramp_secs
            dn = (en - t + 1).cast(pl.Float64) / down
            shape = pl.min_horizontal(pl.lit(1.0), up, dn).clip(0.0, 1.0)
            f = 1.0 + (e.factor - 1.0) * shape
            factor = factor * pl.when((t >= s) & (t <= en)).then(f).otherwise(1.0)
            ds_factor = ds_factor * pl.when((t >= s) & (t <= en)).then(f**0.4).otherwise(1.0)
        elif e.kind == "spike":
            factor = factor * pl.when((t >= s) & (t <= en)).then(e.factor).otherwise(1.0)
        elif e.kind == "restart":
            factor = factor * pl.when(t == en + 1).then(0.5).otherwise(1.0)
        elif e.kind == "backup":
            kp = min(2.5, 1 + (e.factor - 1) * p.avg_len / 1400)
            backup_pps = backup_pps + pl.when((t >= s) & (t <= en)).then(
                (kp - 1) * _expected_expr(p, t)
            ).otherwise(0.0)

    df = df.filter(keep)
    benign = _expected_expr(p, t) * (noise - 0.5 * (p.noise_slow**2 + p.noise_white**2)).exp()
    benign = benign * factor

    def jit(stream: str, sigma: float) -> pl.Expr:
        return (sigma * _normal(t, key(stream))).exp()

    df = df.with_columns(b=benign, bk=backup_pps)
    b = pl.col("b")
    tcp_share = (p.tcp * jit("mix", 0.03)).clip(0.0, 1.0 - p.icmp - p.other)
    df = df.with_columns(
        tcp_b=b * tcp_share,
        icmp_b=b * p.icmp * jit("flags", 0.1),
        other_b=b * p.other,
        len_b=p.avg_len * jit("len", 0.05),
        ds_b=b / p.pkts_per_source * jit("src", 0.1) * ds_factor,
    ).with_columns(udp_b=(b - pl.col("tcp_b") - pl.col("icmp_b") - pl.col("other_b")).clip(0.0))
    tcpb = pl.col("tcp_b")
    cols: dict[str, pl.Expr] = {
        "tcp": tcpb + pl.col("bk"),
        "udp": pl.col("udp_b"),
        "icmp": pl.col("icmp_b"),
        "other": pl.col("other_b"),
        "syn": tcpb * p.syn * jit("flags", 0.15),
        "ack": tcpb * p.ack + pl.col("bk") * 0.6,
        "rst": tcpb * p.rst,
        "fin": tcpb * p.fin,
        "psh": tcpb * p.psh + pl.col("bk") * 0.4,
        "urg": pl.lit(0.0),
        "frag": b * p.frag,
        "gre": pl.col("other_b") * p.gre_of_other,
        "esp": pl.col("other_b") * (1 - p.gre_of_other),
        "dns": pl.col("udp_b") * p.dns_of_udp,
        "bytes": b * pl.col("len_b") + pl.col("bk") * 1400.0,
        "ds": pl.col("ds_b") + pl.when(pl.col("bk") > 0).then(1.0).otherwise(0.0),
    }
    # top ports: candidates (port expr, packet count expr)
    ephemeral = (32768 + _uniform(t, key("port")) * 28000).floor().cast(pl.Int32)
    if p.fixed_src_port is not None:
        src_cands = [(pl.lit(p.fixed_src_port, pl.Int32), b * p.fixed_src_share)]
    else:
        src_cands = [(ephemeral, b * 0.004 * jit("port", 0.3))]
    dst_fixed: dict[int, pl.Expr] = {p.service_port: b * p.service_share * jit("port", 0.05)}
    src_fixed: dict[int, pl.Expr] = {}
    backup_port = 873 if p.index % 2 else 22
    dst_fixed[backup_port] = dst_fixed.get(backup_port, pl.lit(0.0)) + pl.col("bk")

    for a in attacks:
        r = scen._attack_mix[a.attack_id]
        on, en = int(a.onset.timestamp()), int(a.end.timestamp())
        rel = t - on
        if a.shape == "ramp":
            shape = ((rel + 1).cast(pl.Float64) / a.ramp_secs).clip(0.0, 1.0)
        elif a.shape == "pulsed":
            period = a.pulse_on_secs + a.pulse_off_secs
            shape = pl.when(rel % period < a.pulse_on_secs).then(1.0).otherwise(0.0)
        else:
            shape = pl.lit(1.0)
        amount = (
            pl.when((t >= on) & (t <= en))
            .then(a.attack_pps * shape * (0.05 * _normal(t, key("attack") + 17 * on)).exp())
            .otherwise(0.0)
        )
        for c in ("tcp", "udp", "icmp", "other", "syn", "ack", "rst", "fin", "psh"):
            if r.get(c):
                cols[c] = cols[c] + amount * r[c]
        for c in ("frag", "gre", "esp", "dns"):
            if r.get(c):
                cols[c] = cols[c] + amount * r[c]
        cols["bytes"] = cols["bytes"] + amount * r["len"]
        cols["ds"] = cols["ds"] + amount / 1000 * r["sources_per_kpps"]
        if r.get("src_port"):
            port = int(r["src_port"])
            src_fixed[port] = src_fixed.get(port, pl.lit(0.0)) + amount * r["src_share"]
        if r.get("dst_port"):
            port = int(r["dst_port"])
            dst_fixed[port] = dst_fixed.get(port, pl.lit(0.0)) + amount * r["dst_share"]
    src_cands += [(pl.lit(k, pl.Int32), v) for k, v in src_fixed.items()]
    dst_cands = [(pl.lit(k, pl.Int32), v) for k, v in dst_fixed.items()]

    df = df.with_columns(**{f"c_{k}": v for k, v in cols.items()})
    pps = (pl.col("c_tcp") + pl.col("c_udp") + pl.col("c_icmp") + pl.col("c_other")).alias("pps")
    df = df.with_columns(pps)
    out: dict[str, pl.Expr] = {
        "workspace": pl.lit(p.workspace),
        "node": pl.lit(p.node),
        "time": pl.from_epoch(t, time_unit="s").dt.cast_time_unit("us").dt.replace_time_zone("UTC"),
        "source": pl.lit("flows" if p.has_flows else "arrow"),
        "pps": pl.col("pps"),
        "bps": pl.col("c_bytes") * 8.0,
        "tcp_pps": pl.col("c_tcp"),
        "udp_pps": pl.col("c_udp"),
        "icmp_pps": pl.col("c_icmp"),
        "other_pps": pl.col("c_other"),
        "syn_pps": pl.col("c_syn"),
        "ack_pps": pl.col("c_ack"),
        "rst_pps": pl.col("c_rst"),
        "fin_pps": pl.col("c_fin"),
        "frag_pps": pl.col("c_frag"),
        "avg_pkt_len": pl.col("c_bytes") / pl.col("pps"),
        "distinct_sources": pl.col("c_ds").round(0).cast(pl.Int64),
    }
    if p.has_flows:
        src_port, src_share = _top(src_cands)
        dst_port, dst_share = _top(dst_cands)
        out |= {
            "gre_pps": pl.col("c_gre"),
            "esp_pps": pl.col("c_esp"),
            "dns_pps": pl.col("c_dns"),
            "psh_pps": pl.col("c_psh"),
            "urg_pps": pl.col("c_urg"),
            "top_src_port": src_port,
            "top_src_port_share": (src_share / pl.col("pps")).clip(0.0, 1.0),
            "top_dst_port": dst_port,
            "top_dst_port_share": (dst_share / pl.col("pps")).clip(0.0, 1.0),
        }
    else:
        out |= {
            c: pl.lit(None, SCHEMA[c])
            for c in [
                *FLOW_FLOAT_COLUMNS,
                "top_src_port",
                "top_src_port_share",
                "top_dst_port",
                "top_dst_port_share",
            ]
        }
    del start_epoch
    block = df.select(**{c: out[c].cast(SCHEMA[c]) for c in SCHEMA})
    if p.feed != "both":
        return block
    detail = [*FLOW_FLOAT_COLUMNS, "top_src_port", "top_src_port_share"]
    detail += ["top_dst_port", "top_dst_port_share"]
    metrics = block.with_columns(
        pl.lit("arrow").alias("source"), *(pl.lit(None, SCHEMA[c]).alias(c) for c in detail)
    )
    return pl.concat([metrics, block]).sort("time", "source")


def _top(cands: list[tuple[pl.Expr, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    port, count = cands[0]
    for p2, c2 in cands[1:]:
        better = c2 > count
        port = pl.when(better).then(p2).otherwise(port)
        count = pl.when(better).then(c2).otherwise(count)
    return port, count


# ---------------------------------------------------------------------------------------------
# wire-format tables (docs/wire-format.md) for end-to-end tests


def wire_tables(frame: pl.DataFrame, sampling_rate: int = 1000) -> tuple[pa.Table, pa.Table]:
    """The ``metrics`` table (one row per node-second, collector form with a ``node`` column)
    and a ``flows`` table of sampled records (one record per traffic class and second) for the
    flow nodes of ``frame``. Flow records' ``packets``/``bytes`` stand for traffic before
    sampling, so summing them per second gives back the frame's rates."""
    metrics = (
        frame.unique(["node", "time"], keep="first", maintain_order=True)
        .select(
            "time",
            "node",
            *FLOAT_COLUMNS,
            pl.col("distinct_sources").cast(pl.Int64),
        )
        .to_arrow()
    )
    flows = frame.filter(pl.col("source") == "flows")
    parts: list[pl.DataFrame] = []
    common = [
        pl.col("time"),
        pl.col("node"),
        pl.lit(sampling_rate, pl.Int64).alias("sampling_rate"),
    ]
    avg = pl.col("avg_pkt_len")

    def part(
        pkts: pl.Expr, proto: int, flags: int, sport: pl.Expr, dport: pl.Expr, src: str
    ) -> pl.DataFrame:
        return flows.select(
            *common,
            pl.lit(src).alias("src_ip"),
            pl.lit("192.0.2.1").alias("dst_ip"),
            sport.cast(pl.Int32).alias("src_port"),
            dport.cast(pl.Int32).alias("dst_port"),
            pl.lit(proto, pl.Int16).alias("protocol"),
            pl.lit(flags, pl.Int16).alias("tcp_flags"),
            pkts.round(0).cast(pl.Int64).alias("packets"),
            (pkts * avg).round(0).cast(pl.Int64).alias("bytes"),
            avg.round(0).clip(20, 65535).cast(pl.Int32).alias("packet_len"),
            pl.lit(64, pl.Int16).alias("ttl"),
        )

    top_src = pl.col("top_src_port").fill_null(0)
    top_dst = pl.col("top_dst_port").fill_null(0)
    top_src_pkts = pl.col("top_src_port_share").fill_null(0) * pl.col("pps")
    rest_udp = (pl.col("udp_pps") - pl.col("dns_pps") - top_src_pkts).clip(0)
    tcp_rest = (
        pl.col("tcp_pps")
        - pl.col("syn_pps")
        - pl.col("ack_pps")
        - pl.col("rst_pps")
        - pl.col("fin_pps")
        - pl.col("psh_pps")
    ).clip(0)
    parts += [
        part(pl.col("syn_pps"), 6, 0x02, pl.lit(40000), top_dst, "198.51.100.1"),
        part(pl.col("ack_pps"), 6, 0x10, pl.lit(40001), top_dst, "198.51.100.2"),
        part(pl.col("rst_pps"), 6, 0x04, pl.lit(40002), top_dst, "198.51.100.3"),
        part(pl.col("fin_pps"), 6, 0x01, pl.lit(40003), top_dst, "198.51.100.4"),
        part(pl.col("psh_pps"), 6, 0x18, pl.lit(40004), top_dst, "198.51.100.5"),
        part(tcp_rest, 6, 0x00, pl.lit(40005), top_dst, "198.51.100.6"),
        part(pl.col("dns_pps"), 17, 0, pl.lit(40006), pl.lit(53), "198.51.100.7"),
        part(top_src_pkts.clip(0), 17, 0, top_src, pl.lit(40007), "203.0.113.8"),
        part(rest_udp, 17, 0, pl.lit(40008), top_dst, "198.51.100.9"),
        part(pl.col("icmp_pps"), 1, 0, pl.lit(0), pl.lit(0), "198.51.100.10"),
        part(pl.col("gre_pps"), 47, 0, pl.lit(0), pl.lit(0), "198.51.100.11"),
        part(pl.col("esp_pps"), 50, 0, pl.lit(0), pl.lit(0), "198.51.100.12"),
    ]
    table = pl.concat(parts).filter(pl.col("packets") > 0).sort("time", "node").to_arrow()
    return metrics, table
