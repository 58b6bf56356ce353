"""Attack family, subtype, confidence and severity, in ftagent's vocabulary.

The classifier looks at the *attack traffic*, not at the whole traffic: for every attack second
the engine adds up each counter's excess over its baseline (``max(0, observed - expected)``),
so a SYN flood on a web server is judged by the SYN packets it added, not diluted by the
server's usual ACK traffic. Metrics alone are enough for the family (protocol shares, SYN/ACK/
RST/FIN rates, fragments, mean packet length of the excess); flows add the subtype detail
(reflector source port, DNS, GRE/ESP, top destination port).

Family rules, first match wins (shares are of the excess packets):

1. fragments > 60 % -> ``fragment_flood``
2. the two largest of TCP/UDP/ICMP both > 30 % -> ``multi_vector`` (checked before the single
   protocols: an NTP reflection mixed with a SYN flood is 50/50 and must not read as UDP)
3. GRE/ESP/other protocols > 50 % -> ``protocol_flood``
4. ICMP > 50 % -> ``icmp_flood``
5. UDP > 50 %: DNS (from flows) > 50 % with a mean packet under 512 B -> ``dns_flood``, else
   ``udp_flood``
6. TCP > 50 %: SYN > 50 % of the TCP excess (or > 30 % with a SYN/(SYN+ACK) ratio of at
   least 0.3, ftagent's fallback) -> ``syn_flood``, else ``tcp_flood``
7. otherwise the largest protocol as above, or ``unknown`` when nothing stands out.

Subtypes follow ftagent's rules: a reflector source port (or, failing that, destination port)
of the amplification map gives ``<name>_amplification`` (checked first: reflected answers are
large and fragment); UDP packets under 100 B are a
``small_packet_flood``, over 1,200 B without a known port ``amplification_generic``, else
``volumetric``; TCP flag subtypes (``ack_flood``, ``rst_flood``, ``fin_flood``,
``syn_ack_flood``, ``xmas_flood``, ``null_flood``, ``psh_ack_flood``, ``tcp_generic``); ICMP
``ping_of_death`` above 1,000 B else ``ping_flood``; ``gre_flood``/``esp_flood`` by the larger of
the two (``gre_flood`` when flows are absent); ``multi_<name>_amplification`` or ``multi_mixed``.

Severity (documented rule): the larger of a relative grade (peak pps over expected:
>= 50x critical, >= 10x high, >= 4x medium, else low) and an absolute grade (peak >= 10 Gbit/s
or 5 Mpps critical, >= 1 Gbit/s or 1 Mpps high, >= 100 Mbit/s or 100 kpps medium).

Confidence 0-100: evidence strength, not probability: 30 for the multiplier over threshold
(up to 30), up to 25 for how clearly the traffic mix changed, up to 20 for duration, 15 when
one family holds > 80 % of the excess, 10 when flows confirmed the detail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "AMPLIFICATION_PORTS",
    "FAMILIES",
    "classify",
    "confidence",
    "severity",
]

FAMILIES = (
    "udp_flood",
    "syn_flood",
    "tcp_flood",
    "icmp_flood",
    "dns_flood",
    "fragment_flood",
    "protocol_flood",
    "multi_vector",
    "unknown",
)

#: ftagent's amplification port map (source or destination port -> name).
AMPLIFICATION_PORTS: dict[int, str] = {
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


def _share(ev: Mapping[str, float], key: str, total: float) -> float:
    return ev.get(key, 0.0) / total if total > 0 else 0.0


def _tcp_flag_subtype(ev: Mapping[str, float]) -> str:
    tcp = ev.get("tcp", 0.0)
    if tcp <= 0:
        return "tcp_generic"
    syn, ack, rst, fin = (_share(ev, k, tcp) for k in ("syn", "ack", "rst", "fin"))
    has_flow_flags = ev.get("flows", 0.0) > 0
    psh = _share(ev, "psh", tcp) if has_flow_flags else 0.0
    urg = _share(ev, "urg", tcp) if has_flow_flags else 0.0
    if has_flow_flags and fin > 0.15 and psh > 0.15 and urg > 0.15:
        return "xmas_flood"
    if syn > 0.3 and ack > 0.3:
        return "syn_ack_flood"
    if rst > 0.3:
        return "rst_flood"
    if fin > 0.3:
        return "fin_flood"
    # PSH+ACK packets are ACK packets too: with the flags of flows, a flood that sets PSH on
    # most of its ACKs is a PSH-ACK flood before it is an ACK flood
    if has_flow_flags and psh > 0.5 and ack > 0.45 and syn < 0.15:
        return "psh_ack_flood"
    if ack > 0.45 and syn < 0.15:
        return "ack_flood"
    if has_flow_flags and psh > 0.25 and ack > 0.2:
        return "psh_ack_flood"
    if max(syn, ack, rst, fin, psh) < 0.05:
        return "null_flood"
    return "tcp_generic"


def _amp_name(ports: Mapping[str, tuple[int | None, float]]) -> str | None:
    for key in ("src", "dst"):
        port, share = ports.get(key, (None, 0.0))
        if port is not None and share >= 0.3 and port in AMPLIFICATION_PORTS:
            if key == "dst" and port == 53:
                continue  # queries to a resolver are a DNS flood, not a reflection
            return AMPLIFICATION_PORTS[port]
    return None


def classify(
    ev: Mapping[str, float], ports: Mapping[str, tuple[int | None, float]] | None = None
) -> tuple[str, str | None]:
    """(family, subtype) of an attack from its excess counters.

    ``ev`` holds summed excess packets per counter: ``pps``, ``bytes`` and ``tcp``, ``udp``,
    ``icmp``, ``other``, ``syn``, ``ack``, ``rst``, ``fin``, ``frag``, and from flows ``dns``,
    ``gre``, ``esp``, ``psh``, ``urg`` plus ``flows`` (> 0 when flows were seen). ``ports``:
    ``{"src": (top source port, share of the excess), "dst": (...)}`` from flows."""
    ports = ports or {}
    proto_total = sum(max(0.0, ev.get(k, 0.0)) for k in ("tcp", "udp", "icmp", "other"))
    total = max(proto_total, ev.get("pps", 0.0))
    if total <= 0:
        return "unknown", None
    tcp, udp, icmp, other = (_share(ev, k, proto_total) for k in ("tcp", "udp", "icmp", "other"))
    frag = _share(ev, "frag", total)
    avg_len = ev.get("bytes", 0.0) / ev["pps"] if ev.get("pps", 0.0) > 0 else 0.0
    flows = ev.get("flows", 0.0) > 0
    amp = _amp_name(ports) if flows else None
    top_two = sorted((tcp, udp, icmp), reverse=True)[:2]

    if frag > 0.6:
        return "fragment_flood", "ip_fragment_flood"
    if top_two[1] > 0.3:
        if amp in ("ntp", "dns", "ssdp"):
            return "multi_vector", f"multi_{amp}_amplification"
        flag = _tcp_flag_subtype(ev) if tcp > 0.3 else "tcp_generic"
        if flag not in ("tcp_generic", "syn_flood") and udp < 0.3:
            return "multi_vector", f"multi_{flag}"
        return "multi_vector", "multi_mixed"
    if other > 0.5:
        if flows and ev.get("esp", 0.0) > ev.get("gre", 0.0):
            return "protocol_flood", "esp_flood"
        return "protocol_flood", "gre_flood"
    if icmp > 0.5:
        return "icmp_flood", "ping_of_death" if avg_len > 1000 else "ping_flood"
    if udp > 0.5:
        if flows and not amp and _dns_or_udp(ev, avg_len) == "dns_flood":
            return "dns_flood", "dns_query_flood"
        return "udp_flood", _udp_subtype(frag, avg_len, amp, ports)
    if tcp > 0.5:
        syn = _share(ev, "syn", ev.get("tcp", 0.0))
        ack = _share(ev, "ack", ev.get("tcp", 0.0))
        ratio = syn / (syn + ack) if syn + ack > 0 else 0.0
        if syn > 0.5 or (syn > 0.3 and ratio >= 0.3):
            return "syn_flood", "syn_ack_flood" if ack > 0.3 else "syn_flood"
        return "tcp_flood", _tcp_flag_subtype(ev)
    best = max(("tcp", tcp), ("udp", udp), ("icmp", icmp), ("other", other), key=lambda t: t[1])
    if best[1] <= 0.05:
        return "unknown", None
    return {
        "tcp": ("tcp_flood", _tcp_flag_subtype(ev)),
        "udp": ("udp_flood", _udp_subtype(frag, avg_len, amp, ports)),
        "icmp": ("icmp_flood", "ping_flood"),
        "other": ("protocol_flood", "gre_flood"),
    }[best[0]]


def _dns_or_udp(ev: Mapping[str, float], avg_len: float) -> str:
    udp = ev.get("udp", 0.0)
    if udp > 0 and ev.get("dns", 0.0) / udp > 0.5 and avg_len < 512:
        return "dns_flood"
    return "udp_flood"


def _udp_subtype(
    frag: float,
    avg_len: float,
    amp: str | None,
    ports: Mapping[str, tuple[int | None, float]],
) -> str:
    # a reflector port is the strongest evidence: reflected answers are large (they fragment)
    # and may land on a node whose usual traffic is QUIC
    if amp:
        return f"{amp}_amplification"
    if frag > 0.3:
        return "udp_fragment_flood"
    dst_port, dst_share = ports.get("dst", (None, 0.0))
    if dst_port == 443 and dst_share >= 0.3 and 1 <= avg_len < 1300:
        return "quic_flood"
    if avg_len < 100:
        return "small_packet_flood"
    if avg_len > 1200:
        return "amplification_generic"
    return "volumetric"


def severity(peak_pps: float, expected_pps: float, peak_bps: float) -> str:
    """``low``/``medium``/``high``/``critical`` (rule in the module docstring)."""
    mult = peak_pps / expected_pps if expected_pps > 0 else math.inf
    rel = 0
    if mult >= 50:
        rel = 3
    elif mult >= 10:
        rel = 2
    elif mult >= 4:
        rel = 1
    ab = 0
    if peak_bps >= 10e9 or peak_pps >= 5e6:
        ab = 3
    elif peak_bps >= 1e9 or peak_pps >= 1e6:
        ab = 2
    elif peak_bps >= 100e6 or peak_pps >= 100e3:
        ab = 1
    return ("low", "medium", "high", "critical")[max(rel, ab)]


def confidence(
    peak_over_threshold: float,
    mix_change: float,
    duration_secs: float,
    dominant_share: float,
    flows: bool,
) -> int:
    """0-100 evidence score (see the module docstring)."""
    score = 30.0 * min(1.0, max(0.0, math.log(max(peak_over_threshold, 1.0)) / math.log(10)))
    score += 25.0 * min(1.0, max(0.0, mix_change) / 3.0)
    score += 20.0 * min(1.0, duration_secs / 120.0)
    score += 15.0 if dominant_share > 0.8 else 0.0
    score += 10.0 if flows else 0.0
    return int(max(0, min(100, round(score + 10))))
