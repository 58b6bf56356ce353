"""ftagent's published host-mode detection rule as a detector with Floodwatch's entry point.

The rule (per node, driven by samples, one sample = one node-second row):

- rolling window of the last 300 pps samples (and bps), p99 recomputed every 10 samples added
  (nearest rank); ready once the window is full;
- threshold ``max(4 x p99, F)`` with ``F = 10,000`` pps (``6 x p99`` while fewer than 1,800
  samples were ever added); bit-rate threshold ``max(3 x p99_bps, 50 Mbit/s)`` once ready;
- a second triggers when pps > threshold, or (not ready and pps >= F), or (warm-up and
  pps >= 3F), or bps > the bit-rate threshold, or (not ready and bps > 1 Gbit/s); triggers are
  suppressed during the first 90 s of a not-ready node and for 120 s after a resolve, except at
  pps >= 5F;
- an incident opens after 5 consecutive triggering seconds, or at once at pps >= 5F; it resolves
  after 10 consecutive non-triggering seconds;
- no sample enters the window while an incident is open, during confirmation, or while pps is
  above the threshold (before ready: at or above F);
- family and subtype by ftagent's classification rules from the counters' shares over the
  incident (the triggering seconds at open, the whole incident at resolve).

Not modelled: the hour-of-day layer, blocklist scaling, velocity triggers, payload signatures and
IOC enrichment. "DNS seen" (>= 10 distinct query names) is approximated by DNS packets being
more than 20% of UDP packets (flow nodes only: metrics rows carry no DNS counter).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

try:  # the same Transition as Floodwatch's detector when it exists
    from detect.engine import Transition
except ImportError:  # pragma: no cover - until detect/engine.py exists

    @dataclass(frozen=True)
    class Transition:  # type: ignore[no-redef]
        kind: str
        workspace: str
        node: str
        incident: str | None
        at: datetime
        detection: dict[str, Any]
        attack_family: str | None
        attack_subtype: str | None
        confidence: int | None
        severity: str | None
        peak_pps: float
        peak_bps: float
        timeline: list[dict[str, Any]]
        breakdown: dict[str, Any]
        ended_reason: str | None


VERSION = "ftagent-reference-1"
FLOOR = 10_000.0
WINDOW = 300
WARMUP = 1800
CONFIRM = 5
HOLDDOWN = 10
COOLDOWN = 120
GRACE = 90
BPS_FLOOR = 50e6

AMP_PORTS = {
    53: "dns",
    123: "ntp",
    1900: "ssdp",
    11211: "memcached",
    389: "cldap",
    19: "chargen",
    161: "snmp",
    3702: "wsd",
    5353: "mdns",
    1194: "openvpn",
    3283: "apple_remote",
}
_COUNTERS = (
    "pps",
    "bytes",
    "tcp",
    "udp",
    "icmp",
    "other",
    "syn",
    "ack",
    "rst",
    "fin",
    "psh",
    "urg",
    "frag",
    "dns",
    "gre",
    "esp",
)


def _p99(values: deque[float]) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


@dataclass
class _Counts:
    c: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0.0))
    src_ports: dict[int, float] = field(default_factory=dict)
    dst_ports: dict[int, float] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        c = self.c
        pps = row["pps"] or 0.0
        c["pps"] += pps
        c["bytes"] += (row["bps"] or 0.0) / 8
        for k in ("tcp", "udp", "icmp", "other", "syn", "ack", "rst", "fin", "frag"):
            c[k] += row[f"{k}_pps"] or 0.0
        for k in ("psh", "urg", "dns", "gre", "esp"):
            c[k] += row.get(f"{k}_pps") or 0.0
        for col, ports in (("top_src_port", self.src_ports), ("top_dst_port", self.dst_ports)):
            port = row.get(col)
            if port is not None:
                ports[port] = ports.get(port, 0.0) + (row.get(f"{col}_share") or 0.0) * pps


def _flag_subtype(f: dict[str, float]) -> str:
    if f["fin"] > 15 and f["psh"] > 15 and f["urg"] > 15:
        return "xmas_flood"
    if all(f[k] < 5 for k in ("syn", "ack", "rst", "fin", "psh")):
        return "null_flood"
    if f["syn"] > 30 and f["ack"] > 30:
        return "syn_ack_flood"
    if f["rst"] > 30:
        return "rst_flood"
    if f["fin"] > 30:
        return "fin_flood"
    if f["ack"] > 45 and f["syn"] < 15:
        return "ack_flood"
    if f["psh"] > 25 and f["ack"] > 20:
        return "psh_ack_flood"
    return "tcp_generic"


def classify(counts: _Counts, at_open: bool) -> tuple[str, str | None]:
    """ftagent's family rules (and, at resolve, its subtype rules) from summed counters."""
    c = counts.c
    total = c["pps"]
    if total <= 0:
        return "unknown", None
    pct = {k: 100.0 * c[k] / total for k in ("tcp", "udp", "icmp", "other", "frag")}
    flags_total = sum(c[k] for k in ("syn", "ack", "rst", "fin", "psh", "urg"))
    flags = {
        k: (100.0 * c[k] / flags_total if flags_total else 0.0)
        for k in ("syn", "ack", "rst", "fin", "psh", "urg")
    }
    if at_open:
        syn_ratio = c["syn"] / (c["syn"] + c["ack"]) if c["syn"] + c["ack"] else 0.0
    else:
        syn_ratio = c["syn"] / flags_total if flags_total else 0.0
    dns_seen = c["udp"] > 0 and c["dns"] > 0.2 * c["udp"]
    tcp, udp, icmp, other = pct["tcp"], pct["udp"], pct["icmp"], pct["other"]
    if pct["frag"] > 60:
        family = "fragment_flood"
    elif dns_seen and udp > 50:
        family = "dns_flood"
    elif udp > 45:
        family = "udp_flood"
    elif tcp > 45 and syn_ratio > 0.5:
        family = "syn_flood"
    elif icmp > 30:
        family = "icmp_flood"
    elif sorted((tcp, udp, icmp))[1] > 35:
        family = "multi_vector"
    elif other > 30:
        family = "protocol_flood"
    elif udp > 5 and udp >= max(tcp, icmp):
        family = "udp_flood"
    elif tcp > 5 and tcp >= max(udp, icmp):
        family = "syn_flood" if syn_ratio >= 0.3 else "tcp_flood"
    elif icmp > 5:
        family = "icmp_flood"
    elif tcp + udp + icmp + other > 0:
        shares = {"tcp_flood": tcp, "udp_flood": udp, "icmp_flood": icmp, "protocol_flood": other}
        family = max(shares, key=lambda k: shares[k])
    else:
        family = "unknown"
    if at_open:
        return family, None
    avg = c["bytes"] / total
    src = max(counts.src_ports, key=lambda p: counts.src_ports[p]) if counts.src_ports else None
    dst = max(counts.dst_ports, key=lambda p: counts.dst_ports[p]) if counts.dst_ports else None

    def amp(port: int | None) -> str | None:
        return f"{AMP_PORTS[port]}_amplification" if port in AMP_PORTS else None

    subtype: str | None
    if family == "udp_flood":
        if pct["frag"] > 30:
            subtype = "udp_fragment_flood"
        elif dst == 443 and 1 <= avg < 1300:
            subtype = "quic_flood"
        elif amp(src) or amp(dst):
            subtype = amp(src) or amp(dst)
        elif avg < 100:
            subtype = "small_packet_flood"
        elif avg > 1200:
            subtype = "amplification_generic"
        else:
            subtype = "volumetric"
    elif family == "syn_flood":
        subtype = "syn_ack_flood" if flags["syn"] > 30 and flags["ack"] > 30 else "syn_flood"
    elif family == "tcp_flood":
        subtype = _flag_subtype(flags)
    elif family == "multi_vector":
        fs = _flag_subtype(flags)
        port_amp = amp(src) or amp(dst)
        if fs != "tcp_generic":
            subtype = f"multi_{fs}"
        elif port_amp in ("dns_amplification", "ntp_amplification", "ssdp_amplification"):
            subtype = f"multi_{port_amp}"
        else:
            subtype = "multi_mixed"
    elif family == "dns_flood":
        subtype = "dns_amplification" if 53 in (src, dst) and avg > 512 else "dns_query_flood"
    elif family == "icmp_flood":
        subtype = "ping_of_death" if avg > 1000 else "ping_flood"
    elif family == "protocol_flood":
        fs = _flag_subtype(flags) if tcp > 5 else "tcp_generic"
        subtype = fs if fs != "tcp_generic" else "gre_flood"
    elif family == "fragment_flood":
        subtype = "ip_fragment_flood"
    else:
        subtype = None
    if tcp > 40 and family in ("unknown", "tcp_flood"):
        subtype = _flag_subtype(flags)
        family = "tcp_flood"
    return family, subtype


@dataclass
class _Node:
    workspace: str
    first_at: datetime
    pps: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    bps: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    added: int = 0
    p99: float = 0.0
    p99_bps: float = 0.0
    run: int = 0  # consecutive triggering seconds
    run_start: datetime | None = None
    run_counts: _Counts = field(default_factory=_Counts)
    incident: str | None = None
    onset: datetime | None = None
    fired_at: datetime | None = None
    below: int = 0
    counts: _Counts = field(default_factory=_Counts)
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    family: str | None = None
    last_resolve: datetime | None = None
    last_time: datetime | None = None


_ROW_COLUMNS = [
    "workspace",
    "node",
    "time",
    "source",
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
    "psh_pps",
    "urg_pps",
    "dns_pps",
    "gre_pps",
    "esp_pps",
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
]


class ReferenceDetector:
    """ftagent's rule, one state per node; ``process(frame)`` as Floodwatch's ``Detector``."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}

    def process(self, frame: pl.DataFrame) -> list[Transition]:
        cols = [c for c in _ROW_COLUMNS if c in frame.columns]
        missing = [c for c in _ROW_COLUMNS if c not in frame.columns]
        rows = frame.select(cols).sort("time").iter_rows(named=True)
        out: list[Transition] = []
        for row in rows:
            if row["source"] == "ftagent-replay":
                continue
            for c in missing:
                row[c] = None
            self._row(row, out)
        return out

    def _row(self, row: dict[str, Any], out: list[Transition]) -> None:
        node_id: str = row["node"]
        at: datetime = row["time"]
        n = self.nodes.get(node_id)
        if n is None:
            n = self.nodes[node_id] = _Node(row["workspace"], at)
        if n.last_time is not None and at <= n.last_time:
            return  # late or duplicated rows: ftagent has no such thing
        n.last_time = at
        pps = float(row["pps"] or 0.0)
        bps = float(row["bps"] or 0.0)
        ready = len(n.pps) >= WINDOW
        warm = n.added < WARMUP
        if ready:
            threshold = max((6.0 if warm else 4.0) * n.p99, FLOOR)
            bps_threshold: float | None = max(3.0 * n.p99_bps, BPS_FLOOR)
        else:
            threshold = max(4.0 * n.p99, FLOOR)
            bps_threshold = None
        trig = (
            pps > threshold
            or (not ready and pps >= FLOOR)
            or (warm and pps >= 3 * FLOOR)
            or (bps_threshold is not None and bps > bps_threshold)
            or (not ready and bps > 1e9)
        )
        huge = pps >= 5 * FLOOR
        if trig and not huge:
            if not ready and (at - n.first_at).total_seconds() < GRACE:
                trig = False
            if (
                n.incident is None
                and n.last_resolve is not None
                and (at - n.last_resolve).total_seconds() < COOLDOWN
            ):
                trig = False
        n.peak_pps = max(n.peak_pps, pps) if n.incident else n.peak_pps
        if n.incident is not None:
            n.counts.add(row)
            n.peak_pps = max(n.peak_pps, pps)
            n.peak_bps = max(n.peak_bps, bps)
            if trig:
                n.below = 0
            else:
                n.below += 1
                if n.below >= HOLDDOWN:
                    out.append(self._transition("resolve", node_id, n, at, threshold, pps))
                    n.incident = None
                    n.last_resolve = at
                    n.below = 0
            return
        if trig:
            if n.run == 0:
                n.run_start = at
                n.run_counts = _Counts()
            n.run += 1
            n.run_counts.add(row)
            if n.run >= CONFIRM or huge:
                assert n.run_start is not None
                n.onset = n.run_start
                n.fired_at = at
                n.incident = f"{node_id}:{int(n.onset.timestamp())}"
                n.counts = n.run_counts
                n.peak_pps, n.peak_bps = pps, bps
                n.below = 0
                n.run = 0
                out.append(self._transition("open", node_id, n, at, threshold, pps))
            return
        n.run = 0
        if pps > threshold or (not ready and pps >= FLOOR):
            return
        n.pps.append(pps)
        n.bps.append(bps)
        n.added += 1
        if n.added % 10 == 0:
            n.p99 = _p99(n.pps)
            n.p99_bps = _p99(n.bps)

    def _transition(
        self, kind: str, node_id: str, n: _Node, at: datetime, threshold: float, pps: float
    ) -> Transition:
        family, subtype = classify(n.counts, at_open=kind == "open")
        c = n.counts.c
        total = c["pps"] or 1.0
        assert n.onset is not None and n.fired_at is not None
        return Transition(
            kind=kind,
            workspace=n.workspace,
            node=node_id,
            incident=n.incident,
            at=at,
            detection={
                "onset_at": n.onset,
                "fired_at": n.fired_at,
                "metric": "pps",
                "observed": pps,
                "baseline": n.p99,
                "threshold": threshold,
                "multiplier": pps / n.p99 if n.p99 else None,
                "samples_above": CONFIRM,
                "source": "ftagent-reference",
                "detector": VERSION,
            },
            attack_family=family,
            attack_subtype=subtype,
            confidence=None,
            severity=None,
            peak_pps=n.peak_pps,
            peak_bps=n.peak_bps,
            timeline=[],
            breakdown={
                "protocol_breakdown": {
                    k: round(100.0 * c[k] / total, 1) for k in ("tcp", "udp", "icmp", "other")
                }
            },
            ended_reason="normal" if kind == "resolve" else None,
        )
