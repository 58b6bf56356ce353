"""A deterministic, specific written summary of an incident, for the person woken at 3 am.

``summarize(transition)`` says what (family and subtype in plain words), how big against
normal (peak packet and bit rates, multiplier over the expected rate), from where when flows
named a reflector or a target port, how long it has lasted, and what to check first. Same
transition, same text: no clock, no randomness, numbers rounded the same way every time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["summarize"]

_WHAT: dict[str, str] = {
    "udp_flood": "UDP flood",
    "syn_flood": "TCP SYN flood",
    "tcp_flood": "TCP flood",
    "icmp_flood": "ICMP flood",
    "dns_flood": "DNS query flood",
    "fragment_flood": "IP fragment flood",
    "protocol_flood": "IP protocol flood",
    "multi_vector": "multi-vector attack",
    "unknown": "traffic flood",
}

_CHECK: dict[str, str] = {
    "udp_flood": "check upstream link saturation and ask the provider for UDP filtering or "
    "scrubbing; rate-limit UDP to ports that do not serve UDP",
    "syn_flood": "check SYN backlog and SYN cookies (net.ipv4.tcp_syncookies) on the target "
    "service, and the connection table of any stateful firewall",
    "tcp_flood": "check the stateful firewall or load balancer connection table; out-of-state "
    "ACK/RST/FIN packets should be dropped before the service",
    "icmp_flood": "rate-limit ICMP at the edge; check link utilization",
    "dns_flood": "check resolver/authoritative server query rate, response rate limiting and "
    "cache hit ratio",
    "fragment_flood": "drop or rate-limit fragments at the edge; check reassembly memory",
    "protocol_flood": "filter the unexpected IP protocol (GRE/ESP) at the edge unless tunnels "
    "terminate on this node",
    "multi_vector": "check link utilization first, then each vector: SYN backlog, UDP "
    "filtering, ICMP rate limits",
    "unknown": "check link utilization and the top sources in flow records",
}


def _rate(pps: float) -> str:
    if pps >= 1e6:
        return f"{pps / 1e6:.1f} Mpps"
    if pps >= 1e3:
        return f"{pps / 1e3:.1f} kpps"
    return f"{pps:.0f} pps"


def _bits(bps: float) -> str:
    for unit, div in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= div:
            return f"{bps / div:.1f} {unit}"
    return f"{bps:.0f} bit/s"


def _duration(secs: int) -> str:
    if secs < 120:
        return f"{secs} s"
    if secs < 7200:
        return f"{secs // 60} min"
    return f"{secs // 3600} h {secs % 3600 // 60} min"


def summarize(tr: Any) -> str:
    """Summary of a ``Transition`` (open, update or resolve)."""
    fam = tr.attack_family or "unknown"
    what = _WHAT.get(fam, fam.replace("_", " "))
    sub = tr.attack_subtype
    if sub and sub != fam:
        what += f" ({sub.replace('_', ' ')})"
    det = tr.detection or {}
    # the expected packet rate: the detection's baseline when packets fired, else the timeline's
    if det.get("metric", "pps") == "pps":
        expected = float(det.get("baseline") or 0.0)
    else:
        rates = (float(p["expected_pps"]) for p in tr.timeline or [] if p.get("expected_pps"))
        expected = next(rates, 0.0)
    mult = tr.peak_pps / expected if expected > 0 else 0.0
    parts = [
        f"{(tr.severity or 'unknown').capitalize()} {what} on node {tr.node}",
        f"peak {_rate(tr.peak_pps)} / {_bits(tr.peak_bps)}"
        + (f", {mult:.1f}x the expected {_rate(expected)}" if expected > 0 else ""),
    ]
    onset = det.get("onset_at")
    if onset is not None:
        secs = max(0, int((tr.at - onset).total_seconds()) + 1)
        state = "lasted" if tr.kind == "resolve" else "running for"
        parts.append(f"{state} {_duration(secs)} since {onset.strftime('%Y-%m-%d %H:%M:%S')} UTC")
    bd = tr.breakdown or {}
    src = bd.get("top_src_ports") or []
    dst = bd.get("top_dst_ports") or []
    if src and src[0]["share"] >= 0.3:
        parts.append(
            f"{src[0]['share'] * 100:.0f}% of attack packets from source port {src[0]['port']}"
            " (reflectors)"
        )
    if dst and dst[0]["share"] >= 0.3:
        parts.append(f"aimed at port {dst[0]['port']} ({dst[0]['share'] * 100:.0f}%)")
    proto = bd.get("protocol_breakdown") or {}
    if proto:
        mix = ", ".join(f"{k.upper()} {v:.0f}%" for k, v in proto.items() if v >= 1)
        if mix:
            parts.append(f"traffic mix {mix}")
    if tr.kind == "resolve":
        reason = "no data from the node" if tr.ended_reason == "no_data" else "traffic normal"
        parts.append(f"resolved: {reason}")
    parts.append(f"Check first: {_CHECK.get(fam, _CHECK['unknown'])}.")
    conf = tr.confidence
    if conf is not None:
        parts.append(f"Confidence {conf}/100.")
    return "; ".join(parts[:-2]) + ". " + " ".join(parts[-2:])
