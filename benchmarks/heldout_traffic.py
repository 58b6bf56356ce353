"""An independent labeled traffic generator for the held-out detection evaluation: node
profiles, attack kinds and the event plan (``heldout_rows`` turns them into per-second rows).

Written from the public docs only (``docs/wire-format.md``, ``docs/detection.md``), without
reading the detector or our own scenario generator. Deterministic for a seed: plans come from
``random.Random``, per-second noise from ``pyarrow.compute.random`` with fixed initializers and
is shaped with polars (numpy is not used).

Benign traffic per node: a daily rhythm (its own peak hour and depth, in its own time zone), a
weekend level, per-hour and per-minute wander, per-second multiplicative noise (log-normal, or
log-Laplace for a heavier tail), a protocol mix that fits the node's role (web, QUIC-heavy web,
DNS, game, mail, VPN concentrator, storage), TCP flag rates consistent with the TCP rate, and
bps = sum(packets x length). Benign events: flash crowds (2-4x for 5-30 min, mix unchanged,
sources grow with the traffic), nightly backups (large TCP packets from one source: bps up a
lot, pps modestly), short spikes (2-5x for 1-3 s) and silences (agent offline 1-20 min).

Attacks are added on top of the benign traffic as vectors (protocol, flags, packet length,
ports, fragments, source population). ``mult`` is total pps at full strength over the node's
expected benign pps at onset (so the attack adds ``(mult - 1) x baseline``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = [
    "ATTACK_KINDS",
    "ROLES",
    "AttackKind",
    "Event",
    "NodeProfile",
    "Vector",
    "daily",
    "expected_level",
    "finish_attack",
    "make_profiles",
    "plan_history",
    "wander",
    "weekly",
]

AMP_PORTS: dict[str, tuple[int, tuple[int, int], float]] = {
    # subtype: (reflector source port, packet length range, share of non-first fragments)
    "dns_amplification": (53, (1200, 1500), 0.45),
    "ntp_amplification": (123, (440, 490), 0.0),
    "ssdp_amplification": (1900, (280, 380), 0.0),
    "memcached_amplification": (11211, (1100, 1450), 0.2),
    "cldap_amplification": (389, (1300, 1500), 0.5),
    "chargen_amplification": (19, (300, 1100), 0.0),
    "snmp_amplification": (161, (900, 1450), 0.1),
    "mdns_amplification": (5353, (250, 450), 0.0),
    "wsd_amplification": (3702, (600, 1000), 0.0),
}


@dataclass(frozen=True)
class Vector:
    """One component of an attack."""

    proto: str  # tcp, udp, icmp, gre, esp
    flags: str  # syn, ack, rst, fin, psh_ack, or "" (not TCP)
    pkt_len: tuple[int, int]
    src_port: int  # 0: random ephemeral; -1: none (not TCP/UDP)
    dst_port: int  # 0: random; -1: none
    frag: float  # share of the vector's packets that are non-first fragments
    sources: str  # spoofed, botnet, reflectors
    share: float = 1.0  # share of the attack's packets


@dataclass(frozen=True)
class AttackKind:
    """A labeled attack type: what it sends and which verdicts count as right."""

    name: str
    vectors: tuple[Vector, ...]
    families: tuple[str, ...]  # accepted attack_family when the node sends flows
    families_metrics: tuple[str, ...]  # accepted attack_family from metrics alone
    subtype: str | None  # expected attack_subtype when the node sends flows (None: not scored)


def _amp(subtype: str) -> AttackKind:
    port, plen, frag = AMP_PORTS[subtype]
    v = Vector("udp", "", plen, port, 0, frag, "reflectors")
    return AttackKind(subtype, (v,), ("udp_flood",), ("udp_flood",), subtype)


def _multi(name: str, *vectors: Vector) -> AttackKind:
    return AttackKind(name, vectors, ("multi_vector",), ("multi_vector",), None)


ATTACK_KINDS: dict[str, AttackKind] = {
    k.name: k
    for k in (
        AttackKind(
            "udp_flood",
            (Vector("udp", "", (64, 1400), 0, 0, 0.0, "spoofed"),),
            ("udp_flood",),
            ("udp_flood",),
            None,
        ),
        AttackKind(
            "syn_flood",
            (Vector("tcp", "syn", (54, 74), 0, 443, 0.0, "spoofed"),),
            ("syn_flood",),
            ("syn_flood",),
            None,
        ),
        AttackKind(
            "ack_flood",
            (Vector("tcp", "ack", (54, 66), 0, 0, 0.0, "spoofed"),),
            ("tcp_flood",),
            ("tcp_flood",),
            "ack_flood",
        ),
        AttackKind(
            "rst_flood",
            (Vector("tcp", "rst", (54, 60), 0, 0, 0.0, "spoofed"),),
            ("tcp_flood",),
            ("tcp_flood",),
            "rst_flood",
        ),
        AttackKind(
            "fin_flood",
            (Vector("tcp", "fin", (54, 60), 0, 0, 0.0, "spoofed"),),
            ("tcp_flood",),
            ("tcp_flood",),
            "fin_flood",
        ),
        AttackKind(
            "psh_ack_flood",  # botnet pushing data on established-looking packets
            (Vector("tcp", "psh_ack", (300, 700), 0, 443, 0.0, "botnet"),),
            ("tcp_flood",),
            ("tcp_flood",),
            "psh_ack_flood",
        ),
        AttackKind(
            "udp_service_flood",  # UDP at the node's own service, its usual packet size
            (Vector("udp", "", (100, 1200), 0, 0, 0.0, "botnet"),),
            ("udp_flood",),
            ("udp_flood",),
            None,
        ),
        AttackKind(
            "icmp_flood",
            (Vector("icmp", "", (64, 1000), -1, -1, 0.0, "botnet"),),
            ("icmp_flood",),
            ("icmp_flood",),
            None,
        ),
        AttackKind(
            "dns_flood",  # a query flood at the node's DNS service, small packets, botnet
            (Vector("udp", "", (70, 100), 0, 53, 0.0, "botnet"),),
            ("dns_flood",),
            ("dns_flood", "udp_flood", "small_packet_flood"),  # docs: metrics alone can't tell
            None,
        ),
        AttackKind(
            "fragment_flood",
            (Vector("udp", "", (1000, 1500), 0, 0, 1.0, "spoofed"),),
            ("fragment_flood",),
            ("fragment_flood",),
            None,
        ),
        AttackKind(
            "gre_flood",
            (Vector("gre", "", (500, 1450), -1, -1, 0.0, "botnet"),),
            ("protocol_flood",),
            ("protocol_flood",),
            "gre_flood",
        ),
        AttackKind(
            "esp_flood",
            (Vector("esp", "", (400, 1400), -1, -1, 0.0, "spoofed"),),
            ("protocol_flood",),
            ("protocol_flood",),
            "esp_flood",
        ),
        *(_amp(s) for s in AMP_PORTS),
        _multi(
            "multi_vector_syn_ntp",
            Vector("tcp", "syn", (54, 74), 0, 443, 0.0, "spoofed", 0.5),
            Vector("udp", "", (440, 490), 123, 0, 0.0, "reflectors", 0.5),
        ),
        _multi(
            "multi_vector_udp_icmp",
            Vector("udp", "", (64, 512), 0, 0, 0.0, "spoofed", 0.6),
            Vector("icmp", "", (64, 128), -1, -1, 0.0, "spoofed", 0.4),
        ),
        _multi(
            "multi_vector_ack_dnsamp",
            Vector("tcp", "ack", (54, 66), 0, 0, 0.0, "spoofed", 0.45),
            Vector("udp", "", (1200, 1500), 53, 0, 0.3, "reflectors", 0.55),
        ),
    )
}

ROLES: dict[str, dict[str, float]] = {
    # protocol shares of packets (tcp, udp, icmp, other); packet lengths by protocol
    "web": {"tcp": 0.93, "udp": 0.055, "icmp": 0.01, "other": 0.005, "ltcp": 420, "ludp": 300},
    "quic": {"tcp": 0.62, "udp": 0.37, "icmp": 0.006, "other": 0.004, "ltcp": 380, "ludp": 1100},
    "dns": {"tcp": 0.12, "udp": 0.87, "icmp": 0.008, "other": 0.002, "ltcp": 120, "ludp": 85},
    "game": {"tcp": 0.22, "udp": 0.77, "icmp": 0.008, "other": 0.002, "ltcp": 300, "ludp": 160},
    "mail": {"tcp": 0.97, "udp": 0.02, "icmp": 0.008, "other": 0.002, "ltcp": 700, "ludp": 120},
    "vpn": {"tcp": 0.15, "udp": 0.35, "icmp": 0.005, "other": 0.495, "ltcp": 300, "ludp": 900},
    "storage": {"tcp": 0.95, "udp": 0.04, "icmp": 0.008, "other": 0.002, "ltcp": 900, "ludp": 200},
}


@dataclass
class NodeProfile:
    idx: int
    name: str
    ip: str
    role: str
    base_pps: float  # daily mean pps
    tz_secs: int
    peak_hour: float
    daily_amp: float
    weekend: float
    sigma: float  # per-second log noise
    heavy: bool  # log-Laplace instead of log-normal
    f_syn: float
    f_fin: float
    f_rst: float
    f_frag: float
    src_ratio: float
    flows: bool
    backup: bool
    uuid: str = ""
    hour_f: dict[int, float] = field(default_factory=dict)  # hour index -> factor
    minute_f: dict[int, float] = field(default_factory=dict)  # minute index -> factor


@dataclass
class Event:
    node: int
    kind: str  # attack, flash, backup, spike, gap
    start: int  # first second (epoch)
    end: int  # first second after
    attack: str = ""
    mult: float = 1.0
    shape: str = "step"  # step, ramp, pulsed
    ramp: int = 0
    on: int = 0
    off: int = 0
    campaign: int | None = None
    factor: float = 1.0  # flash crowd / spike / backup level
    b0: float = 0.0  # expected benign pps at onset
    phase: str = "history"
    pkt_lens: tuple[int, ...] = ()
    pools: tuple[int, ...] = ()


def make_profiles(
    n: int, rng: random.Random, flow_share: float = 0.2, noise: float = 1.0
) -> list[NodeProfile]:
    roles = ["web", "web", "quic", "dns", "game", "mail", "storage", "web", "quic", "vpn"]
    n_flows = max(2, round(n * flow_share))
    order = list(range(n))
    rng.shuffle(order)
    flow_nodes = {3, *order[: n_flows - 1]} if n > 3 else set(order[:n_flows])
    out: list[NodeProfile] = []
    for i in range(n):
        role = roles[i % len(roles)] if i < len(roles) else rng.choice(roles)
        # sizes log-uniform 1 kpps .. 500 kpps, a few fixed at the ends
        if i == 0:
            base = 1_200.0
        elif i == 1:
            base = 450_000.0
        else:
            base = math.exp(rng.uniform(math.log(1_000), math.log(500_000)))
        out.append(
            NodeProfile(
                idx=i,
                name=f"ho-{i:03d}-{role}",
                ip=f"198.18.{i // 200}.{10 + i % 200}",
                role=role,
                base_pps=base,
                tz_secs=rng.choice([-8, -5, 0, 1, 2, 3, 8, 9]) * 3600,
                peak_hour=rng.uniform(18.0, 22.5) if role != "storage" else rng.uniform(10, 16),
                daily_amp=rng.uniform(0.25, 0.5),
                weekend=rng.uniform(0.65, 1.3),
                sigma=rng.uniform(0.04, 0.14) * (1.4 if base < 5_000 else 1.0) * noise,
                heavy=rng.random() < 0.5,
                f_syn=rng.uniform(0.008, 0.04) if role != "storage" else rng.uniform(0.002, 0.01),
                f_fin=rng.uniform(0.6, 1.0),
                f_rst=rng.uniform(0.002, 0.015),
                f_frag=rng.uniform(0.0, 0.002) if role != "vpn" else rng.uniform(0.005, 0.02),
                src_ratio=rng.uniform(0.01, 0.08) if role != "vpn" else rng.uniform(0.001, 0.005),
                flows=i in flow_nodes,
                backup=role in ("storage", "mail") or rng.random() < 0.2,
            )
        )
    return out


def daily(p: NodeProfile, t: float) -> float:
    h = ((t + p.tz_secs) / 3600.0) % 24.0
    d = 1 + p.daily_amp * math.cos(2 * math.pi * (h - p.peak_hour) / 24)
    d += 0.15 * p.daily_amp * math.cos(4 * math.pi * (h - p.peak_hour + 3) / 24)
    return d


def weekly(p: NodeProfile, t: float) -> float:
    dow = (int((t + p.tz_secs) // 86400) + 3) % 7  # 0 = Monday
    return p.weekend if dow >= 5 else 1.0


def wander(p: NodeProfile, t: int, rng_seed: int) -> tuple[float, float]:
    hi, mi = t // 3600, t // 60
    if hi not in p.hour_f:
        r = random.Random(rng_seed * 7919 + hi)
        p.hour_f[hi] = math.exp(r.gauss(0, 0.06))
    if mi not in p.minute_f:
        r = random.Random(rng_seed * 104729 + mi)
        p.minute_f[mi] = math.exp(r.gauss(0, 0.03))
    return p.hour_f[hi], p.minute_f[mi]


def expected_level(p: NodeProfile, t: int, seed: int) -> float:
    """Benign pps without per-second noise and without events."""
    h, m = wander(p, t, seed * 1000 + p.idx)
    return p.base_pps * daily(p, t) * weekly(p, t) * h * m


def _free(busy: list[tuple[int, int]], s: int, e: int) -> bool:
    return all(e <= a or s >= b for a, b in busy)


def _pick_mult(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.18:
        return rng.uniform(2.0, 3.0)
    if r < 0.53:
        return math.exp(rng.uniform(math.log(3), math.log(10)))
    if r < 0.85:
        return math.exp(rng.uniform(math.log(10), math.log(100)))
    return math.exp(rng.uniform(math.log(100), math.log(1000)))


def _shape(rng: random.Random, ev: Event) -> None:
    r = rng.random()
    if r < 0.5:
        ev.shape = "step"
    elif r < 0.75:
        ev.shape = "ramp"
        ev.ramp = rng.randint(30, 120)
    else:
        ev.shape = "pulsed"
        ev.on, ev.off = rng.randint(10, 60), rng.randint(10, 60)


def _duration(rng: random.Random, ev: Event) -> int:
    d = int(math.exp(rng.uniform(math.log(30), math.log(1800))))
    if ev.shape == "ramp":
        d = max(d, ev.ramp + 30)
    if ev.shape == "pulsed":
        d = max(d, 3 * (ev.on + ev.off))
    return d


# kinds that only make sense on some roles
ROLE_ONLY: dict[str, tuple[str, ...]] = {
    "dns_flood": ("dns", "web"),
    "psh_ack_flood": ("web", "mail", "storage", "quic"),
    "udp_service_flood": ("game", "quic"),
}


def _kind_for(p: NodeProfile, rng: random.Random) -> str:
    names = list(ATTACK_KINDS)
    while True:
        name = rng.choice(names)
        if p.role in ROLE_ONLY.get(name, (p.role,)):
            return name


def finish_attack(p: NodeProfile, ev: Event, rng: random.Random, seed: int) -> None:
    """Baseline at onset, capped multiplier, per-vector lengths and source pools."""
    kind = ATTACK_KINDS[ev.attack]
    ev.b0 = expected_level(p, ev.start, seed)
    lens = tuple(rng.randint(*v.pkt_len) for v in kind.vectors)
    if ev.attack == "udp_service_flood":  # looks like the node's own UDP service
        lens = (int(ROLES[p.role]["ludp"] * rng.uniform(0.85, 1.15)),)
    # keep the attack physically plausible: at most 150 Mpps and 400 Gbit/s
    mean_len = sum(v.share * ln for v, ln in zip(kind.vectors, lens, strict=True))
    max_extra = min(150e6, 400e9 / 8 / mean_len)
    ev.mult = min(ev.mult, 1 + max_extra / ev.b0)
    ev.pkt_lens = lens
    ev.pools = tuple(
        rng.randint(300, 30_000) if v.sources == "reflectors" else rng.randint(200, 20_000)
        for v in kind.vectors
    )


def plan_history(
    profiles: list[NodeProfile], t0: int, t1: int, rng: random.Random, seed: int
) -> list[Event]:
    """Events over [t0, t1): warm-up of 3 h with nothing but spikes, no attack in the last 40
    min (so every incident can end before the history stops)."""
    events: list[Event] = []
    busy: dict[int, list[tuple[int, int]]] = {p.idx: [] for p in profiles}
    days = (t1 - t0) / 86400
    warm = t0 + 3 * 3600
    last = t1 - 40 * 60

    def add(ev: Event, margin_before: int = 300, margin_after: int = 1500) -> bool:
        lst = busy[ev.node]
        if (
            ev.start < warm
            or ev.end > last
            or not _free(lst, ev.start - margin_before, ev.end + margin_after)
        ):
            return False
        lst.append((ev.start - margin_before, ev.end + margin_after))
        events.append(ev)
        return True

    # campaigns: 3-6 nodes, same kind, starts within 45 s
    n_camp = max(1, round(days * 3))
    for c in range(n_camp):
        for _ in range(50):
            start = rng.randint(warm, last - 3600)
            kind = rng.choice(
                [
                    "syn_flood",
                    "udp_flood",
                    "ntp_amplification",
                    "dns_amplification",
                    "ack_flood",
                    "icmp_flood",
                    "memcached_amplification",
                    "multi_vector_syn_ntp",
                ]
            )
            nodes = rng.sample(profiles, k=min(len(profiles), rng.randint(3, 6)))
            proto = Event(-1, "attack", start, start, attack=kind, campaign=c)
            _shape(rng, proto)
            dur = _duration(rng, proto)
            mult = _pick_mult(rng)
            mult = max(mult, 3.0)
            evs = []
            for p in nodes:
                s = start + rng.randint(0, 45)
                ev = Event(
                    p.idx,
                    "attack",
                    s,
                    s + dur,
                    attack=kind,
                    campaign=c,
                    mult=mult * rng.uniform(0.8, 1.25),
                    shape=proto.shape,
                    ramp=proto.ramp,
                    on=proto.on,
                    off=proto.off,
                )
                evs.append(ev)
            if all(_free(busy[e.node], e.start - 300, e.end + 1500) for e in evs) and all(
                e.start >= warm and e.end <= last for e in evs
            ):
                for e in evs:
                    finish_attack(profiles[e.node], e, rng, seed)
                    add(e)
                break

    for p in profiles:
        # single attacks: about 2 per node-day
        n_att = max(1, round(days * 2 + rng.uniform(-0.5, 0.5)))
        for _ in range(n_att):
            for _try in range(40):
                s = rng.randint(warm, last)
                ev = Event(p.idx, "attack", s, s, attack=_kind_for(p, rng), mult=_pick_mult(rng))
                _shape(rng, ev)
                ev.end = s + _duration(rng, ev)
                if add(ev):
                    finish_attack(p, ev, rng, seed)
                    break
        # nightly backups (local 00:30-04:00), on backup nodes
        if p.backup:
            day0 = (t0 + p.tz_secs) // 86400
            for d in range(int(days) + 2):
                local_start = (day0 + d) * 86400 + rng.randint(1800, 4 * 3600)
                s = local_start - p.tz_secs
                ev = Event(p.idx, "backup", s, s + rng.randint(20 * 60, 100 * 60))
                ev.factor = p.base_pps * rng.uniform(0.25, 1.0)
                add(ev, 600, 600)
        # flash crowds on public-facing roles
        if p.role in ("web", "quic", "game", "dns"):
            for _ in range(max(1, round(days * rng.uniform(0.3, 1.0)))):
                for _try in range(20):
                    s = rng.randint(warm, last)
                    ev = Event(p.idx, "flash", s, s + rng.randint(300, 1800))
                    ev.factor = rng.uniform(2.0, 4.0)
                    # new visitors open connections: half the crowds raise the SYN share
                    ev.mult = 1.0 if rng.random() < 0.5 else rng.uniform(1.3, 2.0)
                    if add(ev, 600, 600):
                        break
        # silences (agent offline)
        for _ in range(round(days * rng.uniform(0.2, 0.8))):
            for _try in range(20):
                s = rng.randint(t0 + 3600, last)
                if add(Event(p.idx, "gap", s, s + rng.randint(60, 1200)), 300, 300):
                    break
        # short spikes 1-3 s, 2-5x, anywhere (also in warm-up) but not within other events
        for _ in range(round(days * rng.uniform(4, 10))):
            s = rng.randint(t0 + 1800, t1 - 120)
            ev = Event(p.idx, "spike", s, s + rng.randint(1, 3))
            ev.factor = rng.uniform(2.0, 5.0)
            if _free(busy[p.idx], s - 120, ev.end + 120):
                busy[p.idx].append((s - 120, ev.end + 120))
                events.append(ev)
    events.sort(key=lambda e: (e.start, e.node))
    return events
