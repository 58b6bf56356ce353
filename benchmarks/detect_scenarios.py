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

The generator is split by topic: ``scenarios_benign`` (profiles, the expected rate, benign
events), ``scenarios_attacks`` (families, recipes, shapes, the attack schedule),
``scenarios_labels`` (the label types and size buckets) and ``scenarios_rows`` (the frame schema,
a node's rows, ``wire_tables``). This module ties them together; its names are the public ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from benchmarks.scenarios_attacks import (
    AMPLIFICATION_LEN,
    AMPLIFICATION_PORTS,
    ATTACK_KINDS,
    MAX_ATTACK_PPS,
    schedule_attacks,
)
from benchmarks.scenarios_benign import NodeProfile, benign_events, draw_fleet, expected
from benchmarks.scenarios_labels import (
    SIZE_BUCKETS,
    AttackLabel,
    BenignEvent,
    NodeLabel,
    size_bucket,
)
from benchmarks.scenarios_rows import (
    FLOAT_COLUMNS,
    FLOW_FLOAT_COLUMNS,
    SCHEMA,
    node_block,
    wire_tables,
)

__all__ = [
    "AMPLIFICATION_LEN",
    "AMPLIFICATION_PORTS",
    "ATTACK_KINDS",
    "DEFAULT_START",
    "FLOAT_COLUMNS",
    "FLOW_FLOAT_COLUMNS",
    "MAX_ATTACK_PPS",
    "SCHEMA",
    "SIZE_BUCKETS",
    "AttackLabel",
    "BenignEvent",
    "NodeLabel",
    "NodeProfile",
    "Scenario",
    "generate",
    "size_bucket",
    "wire_tables",
]

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)


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
        return expected(p, int(t.timestamp()))

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
        return node_block(self, p, t_lo, t_hi)


def _secs(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds()) + 1


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
    profiles = draw_fleet(seed, nodes)
    attacks, mix, spans = schedule_attacks(
        seed,
        profiles,
        start,
        days,
        attacks_per_node_day=attacks_per_node_day,
        campaigns_per_workspace_day=campaigns_per_workspace_day,
    )
    total = int(days * 86400)
    events = benign_events(seed, profiles, total, int(start.timestamp()), start, spans)
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
