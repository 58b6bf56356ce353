"""Per-second node metrics from the kernel's counters, by parsing files under a proc root.

Everything here is pure except ``read_sample`` (which reads three files) and works on any
directory laid out like ``/proc`` (tests use fake trees). Sources:

- ``net/dev``: per-interface receive/transmit bytes, packets and drops -> ``pps``, ``bps``,
  ``drop_pps``, ``tx_pps``, ``tx_bps``, ``avg_pkt_len``.
- ``net/snmp`` (and ``net/snmp6`` when present): host-wide protocol counters -> ``tcp_pps``
  (Tcp InSegs, which counts IPv4 and IPv6), ``udp_pps`` (Udp InDatagrams + NoPorts + InErrors,
  plus the Udp6 counters: a UDP flood at closed ports shows up in NoPorts, not InDatagrams),
  ``icmp_pps`` (Icmp InMsgs + Icmp6InMsgs), ``frag_pps`` (Ip ReasmReqds + Ip6ReasmReqds),
  ``conn_count`` (Tcp CurrEstab, a gauge).

The protocol counters are per network namespace, not per interface: on a host with several busy
interfaces (or much loopback traffic) ``tcp_pps + udp_pps + icmp_pps`` can exceed the interface's
``pps``; ``other_pps`` is then floored at 0. ``syn_pps`` .. ``fin_pps`` and ``distinct_sources``
need packet capture (``agent.capture``) and are left null here.

Counter resets: a counter that went backwards (interface re-created, counters cleared, or a
32-bit counter wrapped on an old kernel) makes every value derived from it unknown for that
interval. If it feeds ``pps`` or ``bps`` (required on the wire) the interval yields **no row**;
otherwise that column is **null**. A zero would read as "the traffic stopped", which is worse
for a detector than a one-second gap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InterfaceNotFound, ProcfsError, ProcfsFormatError

__all__ = [
    "DevCounters",
    "Sample",
    "compute_rates",
    "default_interface",
    "metrics_rows",
    "parse_default_interface",
    "parse_net_dev",
    "parse_snmp",
    "parse_snmp6",
    "read_sample",
]

_DEV_FIELDS = 16  # 8 receive + 8 transmit counters per interface line

# (group, field) pairs of net/snmp that the rows need; a file without one is malformed.
_SNMP_NEEDED = (
    ("Ip", "ReasmReqds"),
    ("Tcp", "InSegs"),
    ("Tcp", "CurrEstab"),
    ("Udp", "InDatagrams"),
    ("Udp", "NoPorts"),
    ("Udp", "InErrors"),
    ("Icmp", "InMsgs"),
)
_UDP4 = ("InDatagrams", "NoPorts", "InErrors")
_UDP6 = ("Udp6InDatagrams", "Udp6NoPorts", "Udp6InErrors")


@dataclass(frozen=True)
class DevCounters:
    """One interface's line of ``net/dev`` (the counters the agent uses)."""

    rx_bytes: int
    rx_packets: int
    rx_errs: int
    rx_drop: int
    tx_bytes: int
    tx_packets: int
    tx_errs: int
    tx_drop: int


@dataclass(frozen=True)
class Sample:
    """The counters of one instant. ``wall`` is UTC epoch seconds (row timestamps), ``mono``
    a monotonic clock (interval lengths, immune to clock steps)."""

    wall: float
    mono: float
    interface: str
    dev: DevCounters
    snmp: Mapping[str, Mapping[str, int]]
    snmp6: Mapping[str, int] | None  # None when the kernel has no IPv6


def _int(token: str, source: str, lineno: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise ProcfsFormatError(
            f"{source} line {lineno}: {token[:40]!r} is not an integer"
        ) from None


def parse_net_dev(text: str, *, source: str = "net/dev") -> dict[str, DevCounters]:
    """Every interface of a ``net/dev`` file. Raises ProcfsFormatError."""
    lines = text.splitlines()
    if len(lines) < 2 or "|" not in lines[0] or "|" not in lines[1]:
        raise ProcfsFormatError(f"{source}: missing the two header lines")
    out: dict[str, DevCounters] = {}
    for lineno, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not name:
            raise ProcfsFormatError(f"{source} line {lineno}: expected 'interface: counters'")
        tokens = rest.split()
        if len(tokens) != _DEV_FIELDS:
            raise ProcfsFormatError(
                f"{source} line {lineno}: expected {_DEV_FIELDS} counters, got {len(tokens)}"
            )
        v = [_int(t, source, lineno) for t in tokens]
        # receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes
        # packets errs drop fifo colls carrier compressed
        out[name] = DevCounters(v[0], v[1], v[2], v[3], v[8], v[9], v[10], v[11])
    return out


def parse_snmp(text: str, *, source: str = "net/snmp") -> dict[str, dict[str, int]]:
    """``net/snmp`` as {group: {field: value}}: each group is a line of names followed by a line
    of values with the same prefix. Raises ProcfsFormatError."""
    out: dict[str, dict[str, int]] = {}
    pending: tuple[str, list[str], int] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        group, sep, rest = line.partition(":")
        group = group.strip()
        if not sep or not group or " " in group:
            raise ProcfsFormatError(f"{source} line {lineno}: expected 'Group: fields'")
        tokens = rest.split()
        if pending is None:
            pending = (group, tokens, lineno)
            continue
        head_group, names, head_line = pending
        pending = None
        if group != head_group:
            raise ProcfsFormatError(
                f"{source} line {lineno}: values for {group!r} follow names of {head_group!r} "
                f"(line {head_line})"
            )
        if len(tokens) != len(names):
            raise ProcfsFormatError(
                f"{source} line {lineno}: {group} has {len(names)} names but {len(tokens)} values"
            )
        out[group] = {n: _int(t, source, lineno) for n, t in zip(names, tokens, strict=True)}
    if pending is not None:
        raise ProcfsFormatError(f"{source} line {pending[2]}: {pending[0]} names without values")
    return out


def parse_snmp6(text: str, *, source: str = "net/snmp6") -> dict[str, int]:
    """``net/snmp6``: one ``Name value`` pair a line. Raises ProcfsFormatError."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2:
            raise ProcfsFormatError(f"{source} line {lineno}: expected 'Name value'")
        out[tokens[0]] = _int(tokens[1], source, lineno)
    return out


def parse_default_interface(text: str) -> str | None:
    """The interface of the IPv4 default route in a ``net/route`` file, or None."""
    for line in text.splitlines()[1:]:
        tokens = line.split()
        if len(tokens) >= 8 and tokens[1] == "00000000" and tokens[7] == "00000000":
            return tokens[0]
    return None


def _read(root: Path, name: str) -> str:
    path = root / "net" / name
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ProcfsError(f"cannot read {path}: {exc.strerror or exc}") from None


def default_interface(root: str | Path) -> str:
    """The default route's interface under ``root`` (used when none is configured)."""
    found = parse_default_interface(_read(Path(root), "route"))
    if found is None:
        raise ProcfsError(f"no IPv4 default route in {Path(root) / 'net' / 'route'}; set interface")
    return found


def read_sample(
    root: str | Path,
    interface: str,
    *,
    wall: float | None = None,
    mono: float | None = None,
) -> Sample:
    """Read the counters of ``interface`` under ``root`` now (``wall``/``mono`` override the
    clocks, for tests). Raises ProcfsError (missing file), ProcfsFormatError (malformed file),
    InterfaceNotFound."""
    root = Path(root)
    mono_now = time.monotonic() if mono is None else mono
    wall_now = time.time() if wall is None else wall
    devs = parse_net_dev(_read(root, "dev"), source=str(root / "net" / "dev"))
    dev = devs.get(interface)
    if dev is None:
        raise InterfaceNotFound(interface, list(devs))
    snmp_source = str(root / "net" / "snmp")
    snmp = parse_snmp(_read(root, "snmp"), source=snmp_source)
    for group, field in _SNMP_NEEDED:
        if field not in snmp.get(group, {}):
            raise ProcfsFormatError(f"{snmp_source}: no {group} {field} counter")
    snmp6: dict[str, int] | None = None
    if (root / "net" / "snmp6").exists():
        snmp6 = parse_snmp6(_read(root, "snmp6"), source=str(root / "net" / "snmp6"))
    return Sample(wall_now, mono_now, interface, dev, snmp, snmp6)


def _delta(a: int, b: int) -> int | None:
    return b - a if b >= a else None


def _sum_deltas(pairs: list[tuple[int, int]]) -> int | None:
    total = 0
    for a, b in pairs:
        d = _delta(a, b)
        if d is None:
            return None
        total += d
    return total


def _v6(prev: Sample, cur: Sample, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """Pairs of IPv6 counters, or none when either sample lacks them (IPv6 off, or toggled)."""
    if prev.snmp6 is None or cur.snmp6 is None:
        return []
    p6, c6 = prev.snmp6, cur.snmp6
    return [(p6[n], c6[n]) for n in names if n in p6 and n in c6]


def compute_rates(prev: Sample, cur: Sample) -> dict[str, Any] | None:
    """The per-second rates between two samples of the same interface, as wire metric columns
    (without ``time``), or None when the interval cannot give a row (zero or negative length,
    or a reset of the receive counters). See the module doc for resets."""
    if prev.interface != cur.interface:
        raise ValueError("samples of different interfaces")
    dt = cur.mono - prev.mono
    if not dt > 0 or not math.isfinite(dt):
        return None
    rx_packets = _delta(prev.dev.rx_packets, cur.dev.rx_packets)
    rx_bytes = _delta(prev.dev.rx_bytes, cur.dev.rx_bytes)
    if rx_packets is None or rx_bytes is None:
        return None
    ps, cs = prev.snmp, cur.snmp

    def snmp(group: str, names: tuple[str, ...], v6: tuple[str, ...] = ()) -> int | None:
        pairs = [(ps[group][n], cs[group][n]) for n in names]
        return _sum_deltas(pairs + _v6(prev, cur, v6))

    tcp = snmp("Tcp", ("InSegs",))
    udp = snmp("Udp", _UDP4, _UDP6)
    icmp = snmp("Icmp", ("InMsgs",), ("Icmp6InMsgs",))
    frag = snmp("Ip", ("ReasmReqds",), ("Ip6ReasmReqds",))
    drop = _delta(prev.dev.rx_drop, cur.dev.rx_drop)
    tx_packets = _delta(prev.dev.tx_packets, cur.dev.tx_packets)
    tx_bytes = _delta(prev.dev.tx_bytes, cur.dev.tx_bytes)

    def rate(d: int | None, scale: int = 1) -> float | None:
        return None if d is None else d * scale / dt

    other: float | None = None
    if tcp is not None and udp is not None and icmp is not None:
        other = max(0.0, (rx_packets - tcp - udp - icmp) / dt)
    return {
        "pps": rx_packets / dt,
        "bps": rx_bytes * 8 / dt,
        "tcp_pps": rate(tcp),
        "udp_pps": rate(udp),
        "icmp_pps": rate(icmp),
        "other_pps": other,
        "syn_pps": None,
        "ack_pps": None,
        "rst_pps": None,
        "fin_pps": None,
        "frag_pps": rate(frag),
        "drop_pps": rate(drop),
        "tx_pps": rate(tx_packets),
        "tx_bps": rate(tx_bytes, 8),
        "avg_pkt_len": rx_bytes / rx_packets if rx_packets else None,
        "conn_count": max(0, cur.snmp["Tcp"]["CurrEstab"]),
        "distinct_sources": None,
    }


def metrics_rows(prev: Sample, cur: Sample) -> list[dict[str, Any]]:
    """Wire ``metrics`` rows for the interval ``prev`` -> ``cur``: one row per whole second of
    it (at least one), all with the interval's mean rates. The first row's ``time`` is
    ``prev.wall`` rounded to the nearest second, so back-to-back intervals of about one second
    give consecutive timestamps. Empty when ``compute_rates`` gives None."""
    rates = compute_rates(prev, cur)
    if rates is None:
        return []
    seconds = max(1, round(cur.mono - prev.mono))
    start = round(prev.wall)
    return [{"time": datetime.fromtimestamp(start + i, tz=UTC), **rates} for i in range(seconds)]
