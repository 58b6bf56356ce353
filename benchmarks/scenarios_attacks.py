"""The attacks of a detection scenario (``benchmarks.detect_scenarios``): the families and
subtypes, each attack's own traffic mix (its recipe), its size and shape, and the schedule of
campaigns and single attacks over the fleet."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

from benchmarks.scenarios_benign import NodeProfile, expected, overlaps, poisson
from benchmarks.scenarios_labels import SIZE_BUCKETS, AttackLabel

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
MAX_ATTACK_PPS = 150e6


# ---------------------------------------------------------------------------------------------
# attack recipes: the attack's own mix, as fractions of its packets


def recipe(family: str, subtype: str, rng: random.Random) -> dict[str, Any]:
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


def schedule_attacks(
    seed: int,
    profiles: list[NodeProfile],
    start: datetime,
    days: float,
    *,
    attacks_per_node_day: float,
    campaigns_per_workspace_day: float,
) -> tuple[list[AttackLabel], dict[str, dict[str, Any]], dict[str, list[tuple[int, int]]]]:
    """The labelled attacks (campaigns first, then single attacks; sorted by onset and node),
    each attack's recipe by attack id, and each node's attack spans in seconds from ``start``."""
    total = int(days * 86400)
    t0 = int(start.timestamp())
    lo, hi = 2 * 3600, total - 1800
    spans: dict[str, list[tuple[int, int]]] = {p.node: [] for p in profiles}
    attacks: list[AttackLabel] = []
    mix: dict[str, dict[str, Any]] = {}

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
        if onset < lo or end > hi or overlaps(spans[p.node], onset - 1200, end + 1200):
            return False
        baseline = expected(p, t0 + onset)
        m = _draw_multiplier(arng, baseline, bucket)
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
                baseline_pps=baseline,
                attack_pps=(round(m, 3) - 1) * baseline,
                ramp_secs=ramp,
                pulse_on_secs=on,
                pulse_off_secs=off,
            )
        )
        mix[aid] = recipe(kind[0], kind[1], arng)
        spans[p.node].append((onset, end))
        return True

    weights = [w for _, _, w in ATTACK_KINDS]
    # campaigns first
    workspaces: dict[str, list[NodeProfile]] = {}
    for p in profiles:
        workspaces.setdefault(p.workspace, []).append(p)
    for ws, members in workspaces.items():
        crng = random.Random(f"campaign:{seed}:{ws}")
        n_camp = poisson(crng, campaigns_per_workspace_day * days)
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
        for _ in range(poisson(arng, attacks_per_node_day * days)):
            kind = arng.choices(ATTACK_KINDS, weights=weights)[0]
            shape = _shape(arng)
            for _try in range(30):
                if add_attack(p, arng.randint(lo, max(lo, hi - shape[5])), kind, shape, None, arng):
                    break
    attacks.sort(key=lambda a: (a.onset, a.node))
    return attacks, mix, spans
