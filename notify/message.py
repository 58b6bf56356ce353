"""The human text of an alert: what every channel type says, before its own formatting.

Every message names the node (name and address), the attack family and subtype, its size
against the node's baseline, how long it has lasted, where it comes from (countries and
networks from the flow breakdown, when there is one), the summary and a link to the incident.
An end says why it ended, an update what changed, a test that it is a test.

The incident is read defensively: any field may be missing, null or of an unexpected type (it
comes from the database as Get Incident renders it, and from agents before that), and nothing
here raises on such input. Texts are capped so no single field can make a message huge; each
sender then applies its own service's limits.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .events import AlertEvent, parse_time

__all__ = [
    "SEVERITY_COLOURS",
    "Facts",
    "facts",
    "family_label",
    "format_bits",
    "format_duration",
    "format_packets",
    "headline",
    "html_text",
    "plain_text",
    "short_text",
    "truncate",
]

SEVERITY_COLOURS = {
    "low": 0x2E86DE,
    "medium": 0xF1C40F,
    "high": 0xE67E22,
    "critical": 0xE74C3C,
    "ended": 0x2ECC71,
    "test": 0x95A5A6,
}
_FIELD_MAX = 300
_SUMMARY_MAX = 2000
_ACRONYMS = frozenset(
    [
        "udp",
        "tcp",
        "syn",
        "ack",
        "rst",
        "fin",
        "icmp",
        "dns",
        "ntp",
        "ssdp",
        "cldap",
        "gre",
        "ip",
        "http",
        "https",
        "snmp",
        "mdns",
        "wsd",
        "ssl",
        "tls",
        "quic",
        "sip",
        "ldap",
        "arp",
        "bgp",
        "vpn",
    ]
)
_END_REASONS = {
    "resolved": "traffic is back to normal",
    "expired": "no more reports or traffic data for it (expired)",
    "false_positive": "it was marked as a false positive",
    "node_deleted": "its node was deleted",
}
_CHANGES = {
    "peak": "the peak grew",
    "family": "the attack type changed",
    "severity": "the severity rose",
}


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``ellipsis`` when cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return text[:limit]
    return text[: limit - len(ellipsis)].rstrip() + ellipsis


def _text(value: Any, limit: int = _FIELD_MAX) -> str | None:
    """A clean one-line string, or None for a non-string or an empty one."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    text = "".join(ch for ch in text if ch.isprintable())
    return truncate(text, limit) if text else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _scaled(value: float, units: Sequence[str], step: float = 1000.0) -> str:
    index = 0
    while abs(value) >= step and index < len(units) - 1:
        value /= step
        index += 1
    digits = 0 if index == 0 or abs(value) >= 100 else (1 if abs(value) >= 10 else 2)
    number = f"{value:.{digits}f}"
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return f"{number} {units[index]}"


def format_packets(pps: float) -> str:
    """``1.25 Mpps``, ``40 kpps``, ``812 pps``."""
    return _scaled(pps, ("pps", "kpps", "Mpps", "Gpps", "Tpps"))


def format_bits(bps: float) -> str:
    """``9.6 Gbit/s``."""
    return _scaled(bps, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"))


def format_duration(seconds: float) -> str:
    """``45 s``, ``5 min 10 s``, ``2 h 3 min``, ``3 d 4 h``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def family_label(family: str | None, subtype: str | None = None) -> str:
    """``UDP flood (DNS amplification)`` from ``udp_flood`` and ``dns_amplification``."""

    def words(code: str) -> str:
        parts = [p for p in code.replace("-", "_").split("_") if p]
        out = [p.upper() if p.lower() in _ACRONYMS else p.lower() for p in parts]
        if out and out[0].islower():
            out[0] = out[0].capitalize()
        return " ".join(out)

    name = words(family) if family else "Unknown attack"
    if not name:
        name = "Unknown attack"
    if subtype and subtype != family:
        sub = words(subtype)
        if sub:
            first = sub.split(" ", 1)[0]
            if not first.isupper():  # "Memcached amplification" reads "memcached ..." inside
                sub = sub[0].lower() + sub[1:]
            return f"{name} ({sub})"
    return name


def _rate(metric: str, value: float) -> str:
    text = format_bits(value) if metric.endswith("bps") else format_packets(value)
    prefix = metric.rsplit("_", 1)[0] if "_" in metric else ""
    return f"{prefix.upper()} {text}" if prefix else text


def _multiplier(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.1f}x".replace(".0x", "x")


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _origin(incident: Mapping[str, Any]) -> str | None:
    """Top countries and networks of the attack's sources, from the flow breakdown."""
    parts: list[str] = []
    countries = incident.get("geo_origin")
    if isinstance(countries, list):
        named = []
        for item in countries:
            country = _text(_dig(item, "country"), 40)
            if country is None:
                continue
            share = _number(_dig(item, "share"))
            named.append(f"{country} {share:.0f}%" if share is not None else country)
            if len(named) == 3:
                break
        if named:
            parts.append(", ".join(named))
    asns: Any = None
    for path in (
        ("breakdown", "flows", "asns"),
        ("detail", "floodwatch", "breakdown", "flows", "asns"),
        ("asns",),
    ):
        asns = _dig(incident, *path)
        if isinstance(asns, list) and asns:
            break
    networks = []
    if isinstance(asns, list):
        for item in asns:
            org = _text(_dig(item, "as_org"), 60)
            asn = _number(_dig(item, "asn"))
            if org is None and asn is None:
                continue
            label = " ".join(x for x in (f"AS{int(asn)}" if asn else None, org) if x)
            share = _number(_dig(item, "share"))
            networks.append(f"{label} {share:.0f}%" if share is not None else label)
            if len(networks) == 3:
                break
    if networks:
        parts.append(", ".join(networks))
    if not parts:
        # only the top sources, when there is no country/AS rollup
        sources = incident.get("top_sources")
        if isinstance(sources, list):
            seen: list[str] = []
            for item in sources:
                found = _text(_dig(item, "country"), 40) or _text(_dig(item, "as_org"), 60)
                if found and found not in seen:
                    seen.append(found)
                if len(seen) == 3:
                    break
            if seen:
                parts.append(", ".join(seen))
    return "; ".join(parts) if parts else None


@dataclass(frozen=True)
class Facts:
    """Everything a message says, each part already as short text (None when unknown)."""

    kind: str
    severity: str | None
    title: str | None
    node_name: str | None
    node_ip: str | None
    family: str | None
    subtype: str | None
    family_text: str
    peak_text: str | None
    size_text: str | None
    multiplier: float | None
    duration_text: str | None
    origin_text: str | None
    sources_text: str | None
    summary: str | None
    link: str | None
    end_reason_text: str | None
    changes_text: str | None
    started_at: str | None
    incident_uuid: str | None
    workspace_name: str | None

    @property
    def node_text(self) -> str:
        if self.node_name and self.node_ip:
            return f"{self.node_name} ({self.node_ip})"
        return self.node_name or self.node_ip or "an unknown node"

    @property
    def colour(self) -> int:
        if self.kind == "test":
            return SEVERITY_COLOURS["test"]
        if self.kind == "attack_end":
            return SEVERITY_COLOURS["ended"]
        return SEVERITY_COLOURS.get(self.severity or "", SEVERITY_COLOURS["medium"])

    def rows(self) -> list[tuple[str, str]]:
        """Label and value of each known fact, in the order messages show them."""
        rows: list[tuple[str, str]] = [("Node", self.node_text)]
        if self.kind != "test" or self.family:
            rows.append(("Attack", self.family_text))
        if self.severity:
            rows.append(("Severity", self.severity.upper()))
        if self.size_text:
            rows.append(("Size", self.size_text))
        elif self.peak_text:
            rows.append(("Peak", self.peak_text))
        if self.duration_text:
            rows.append(("Duration", self.duration_text))
        if self.origin_text:
            rows.append(("Origin", self.origin_text))
        if self.sources_text:
            rows.append(("Sources", self.sources_text))
        if self.changes_text:
            rows.append(("Changed", self.changes_text))
        if self.end_reason_text:
            rows.append(("Ended because", self.end_reason_text))
        return rows


def facts(event: AlertEvent, now: datetime | None = None) -> Facts:
    """The facts of ``event``; ``now`` (default: the event's time) ends an open duration."""
    incident: Mapping[str, Any] = event.incident if isinstance(event.incident, Mapping) else {}
    node: Mapping[str, Any] = event.node if isinstance(event.node, Mapping) else {}
    severity = _text(incident.get("severity"), 20)
    family = _text(incident.get("attack_family"), 60)
    subtype = _text(incident.get("attack_subtype"), 60)

    peak_pps, peak_bps = _number(incident.get("peak_pps")), _number(incident.get("peak_bps"))
    peaks = [
        format_packets(peak_pps) if peak_pps else None,
        format_bits(peak_bps) if peak_bps else None,
    ]
    peak_text = " / ".join(p for p in peaks if p) or None

    size_text = None
    detection = incident.get("detection")
    multiplier = None
    if isinstance(detection, Mapping):
        metric = _text(detection.get("metric"), 30) or "pps"
        observed = _number(detection.get("observed"))
        baseline = _number(detection.get("baseline"))
        multiplier = _number(detection.get("multiplier"))
        if multiplier is None and observed is not None and baseline:
            multiplier = observed / baseline
        if observed is not None and baseline is not None:
            size_text = f"{_rate(metric, observed)} against a baseline of {_rate(metric, baseline)}"
            if multiplier is not None and multiplier > 0:
                size_text += f" ({_multiplier(multiplier)})"
            if peak_text:
                size_text += f"; peak {peak_text}"

    started = parse_time(incident.get("started_at"))
    ended = parse_time(incident.get("resolved_at")) if event.kind == "attack_end" else None
    duration_text = None
    if started is not None:
        until = ended or now or event.occurred_at
        duration_text = format_duration((until - started).total_seconds())
        if event.kind != "attack_end":
            duration_text += " so far"

    count = _number(incident.get("source_ip_count"))
    sources_text = f"{int(count):,} source addresses" if count else None

    summary = _text(incident.get("ai_summary"), _SUMMARY_MAX) or _text(
        incident.get("summary"), _SUMMARY_MAX
    )
    end_reason_text = None
    if event.kind == "attack_end":
        end_reason_text = _END_REASONS.get(event.end_reason or "", "it ended")
    changes_text = None
    if event.kind == "attack_update":
        said = [_CHANGES[c] for c in event.changes if c in _CHANGES]
        if "severity" in event.changes and severity:
            said = [
                s if s != _CHANGES["severity"] else f"severity rose to {severity.upper()}"
                for s in said
            ]
        changes_text = ", ".join(said) if said else "the attack is still going on"

    link = event.dashboard_url if isinstance(event.dashboard_url, str) else None
    return Facts(
        kind=event.kind,
        severity=severity.lower() if severity else None,
        title=_text(incident.get("title"), 200),
        node_name=_text(node.get("name"), 100) or _text(incident.get("node_name"), 100),
        node_ip=_text(node.get("ip"), 60) or _text(incident.get("node_ip"), 60),
        family=family,
        subtype=subtype,
        family_text=family_label(family, subtype),
        peak_text=peak_text,
        size_text=size_text,
        multiplier=multiplier,
        duration_text=duration_text,
        origin_text=_origin(incident),
        sources_text=sources_text,
        summary=summary,
        link=link if link and link.startswith(("http://", "https://")) else None,
        end_reason_text=end_reason_text,
        changes_text=changes_text,
        started_at=_text(incident.get("started_at"), 40),
        incident_uuid=_text(incident.get("uuid"), 64),
        workspace_name=_text(event.workspace.get("name"), 100)
        if isinstance(event.workspace, Mapping)
        else None,
    )


def headline(event: AlertEvent, f: Facts | None = None) -> str:
    """One line: ``[HIGH] UDP flood (DNS amplification) on edge-1 (198.51.100.7) started``."""
    f = f or facts(event)
    if event.kind == "test":
        where = f" for {f.workspace_name}" if f.workspace_name else ""
        return f"Test alert from Floodwatch{where}: this channel works"
    verb = {
        "attack_start": "started",
        "attack_update": "is growing" if "peak" in event.changes else "updated",
        "attack_end": "ended",
    }[event.kind]
    tag = f"[{f.severity.upper()}] " if f.severity and event.kind != "attack_end" else ""
    if event.kind == "attack_end":
        tag = "[RESOLVED] "
    return f"{tag}{f.family_text} on {f.node_text} {verb}"


def plain_text(event: AlertEvent) -> str:
    """The full message as plain text (e-mail, annotation text, descriptions)."""
    f = facts(event)
    lines = [headline(event, f), ""]
    if event.kind == "test":
        lines.append("This is a test message sent on request; no attack is going on.")
        lines.append("")
    lines += [f"{label}: {value}" for label, value in f.rows()]
    if f.summary:
        lines += ["", f.summary]
    if f.link:
        lines += ["", f"Incident: {f.link}"]
    return "\n".join(lines)


def html_text(event: AlertEvent) -> str:
    """The full message as a small, self-contained HTML document (every value escaped)."""
    f = facts(event)
    esc = html.escape
    colour = f"#{f.colour:06x}"
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{esc(label)}</th>'
        f"<td>{esc(value)}</td></tr>"
        for label, value in f.rows()
    )
    parts = [
        '<!doctype html><html><body style="font-family:sans-serif">',
        f'<h2 style="border-left:6px solid {colour};padding-left:8px">',
        f"{esc(headline(event, f))}</h2>",
    ]
    if event.kind == "test":
        parts.append("<p>This is a test message sent on request; no attack is going on.</p>")
    parts.append(f"<table>{rows}</table>")
    if f.summary:
        parts.append(f"<p>{esc(f.summary)}</p>")
    if f.link:
        parts.append(f'<p><a href="{esc(f.link, quote=True)}">Open the incident</a></p>')
    parts.append("</body></html>")
    return "".join(parts)


def short_text(event: AlertEvent, limit: int = 160) -> str:
    """A text message of at most ``limit`` characters (SMS): the essentials, then the link
    when it fits whole."""
    f = facts(event)
    if event.kind == "test":
        return truncate("Floodwatch test alert: this channel works.", limit)
    state = {"attack_start": "", "attack_update": " update", "attack_end": " ended"}[event.kind]
    tag = "RESOLVED" if event.kind == "attack_end" else (f.severity or "alert").upper()
    head = f"[{tag}] {f.family_text}{state} on {f.node_text}"
    bits: list[str] = []
    if f.peak_text:
        bits.append(f.peak_text.split(" / ")[0])
    if f.multiplier:
        bits.append(f"{_multiplier(f.multiplier)} baseline")
    if f.duration_text:
        bits.append(f.duration_text.replace(" so far", ""))
    if f.origin_text:
        bits.append("from " + f.origin_text.split(";")[0].split(", ")[0].rsplit(" ", 1)[0])
    if event.kind == "attack_end" and event.end_reason and event.end_reason != "resolved":
        bits.append(event.end_reason.replace("_", " "))
    # the link matters most after the headline: drop details from the end until it fits
    link = f" {f.link}" if f.link and len(f.link) <= limit // 2 else ""
    while True:
        text = head + (": " + ", ".join(bits) if bits else "")
        if len(text) + len(link) <= limit or not bits:
            break
        bits.pop()
    return truncate(text, limit - len(link)) + link
