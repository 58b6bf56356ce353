"""Optional packet sampling (Linux, root or CAP_NET_RAW): an AF_PACKET socket on one interface
keeps 1 in N received packets, chosen in the kernel by a classic BPF filter (``ld rand; mod N``)
so that a flood does not have to cross into Python. Each kept packet becomes a wire ``flows``
row standing for N packets, and feeds the TCP flag and distinct-source counts of the metrics
rows.

``parse_frame`` / ``parse_ip`` are pure and never raise on any input: a frame they cannot read
(not IP, truncated, garbage) gives None. Estimates, not counts: ``syn_pps`` etc. are sampled
counts times N; ``distinct_sources`` is the number of distinct sources among the *sampled*
packets, a lower bound.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import CaptureError

__all__ = ["Capture", "CaptureWindow", "FlowRow", "WindowStats", "parse_frame", "parse_ip"]

log = logging.getLogger("floodwatch.agent")

ETH_P_ALL = 0x0003
_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
_MAX_VLAN_TAGS = 4
_MAX_V6_EXTENSIONS = 8
_TCP, _UDP, _UDPLITE, _SCTP = 6, 17, 136, 132
_V6_EXT_GENERIC = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_V6_FRAGMENT, _V6_AH = 44, 51
_PORTED = frozenset({_TCP, _UDP, _UDPLITE, _SCTP})

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

PACKET_OUTGOING = 4
ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 0xFFFE
_SO_ATTACH_FILTER = 26
_SNAP_BYTES = 256  # headers only: Ethernet + 4 VLAN tags + IPv6 + extensions + TCP fit


@dataclass(frozen=True, slots=True)
class FlowRow:
    """The header fields of one sampled packet. ``tcp_flags`` is None unless the packet is TCP
    with its header present; ports are 0 for protocols without them and for non-first
    fragments."""

    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    protocol: int
    tcp_flags: int | None
    ttl: int
    packet_len: int

    def as_wire(self, when: datetime, sampling_rate: int) -> dict[str, Any]:
        """This packet as a wire ``flows`` row standing for ``sampling_rate`` packets."""
        return {
            "time": when,
            "src_ip": self.src_ip,
            "dst_ip": self.dst_ip,
            "src_port": self.src_port,
            "dst_port": self.dst_port,
            "protocol": self.protocol,
            "tcp_flags": self.tcp_flags,
            "packets": sampling_rate,
            "bytes": sampling_rate * self.packet_len,
            "sampling_rate": sampling_rate,
            "ttl": self.ttl,
            "packet_len": self.packet_len,
        }


def _l4(data: bytes, protocol: int) -> tuple[int, int, int | None] | None:
    """(src_port, dst_port, tcp_flags) of a first-fragment transport header, None if cut."""
    if protocol == _TCP:
        if len(data) < 20:
            return None
        sport, dport = struct.unpack_from("!HH", data)
        return sport, dport, data[13]
    if protocol in _PORTED:
        if len(data) < 8:
            return None
        sport, dport = struct.unpack_from("!HH", data)
        return sport, dport, None
    return 0, 0, None


def _ipv4(pkt: bytes) -> FlowRow | None:
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total_len, frag = struct.unpack_from("!H2xH", pkt, 2)
    if ihl < 20 or len(pkt) < ihl or total_len < ihl:
        return None
    ttl, protocol = pkt[8], pkt[9]
    src = socket.inet_ntop(socket.AF_INET, pkt[12:16])
    dst = socket.inet_ntop(socket.AF_INET, pkt[16:20])
    if frag & 0x1FFF:  # a later fragment carries no transport header
        return FlowRow(src, dst, 0, 0, protocol, None, ttl, total_len)
    l4 = _l4(pkt[ihl:total_len], protocol)
    if l4 is None:
        return None
    return FlowRow(src, dst, l4[0], l4[1], protocol, l4[2], ttl, total_len)


def _ipv6(pkt: bytes) -> FlowRow | None:
    if len(pkt) < 40 or pkt[0] >> 4 != 6:
        return None
    (payload_len,) = struct.unpack_from("!H", pkt, 4)
    protocol, hop_limit = pkt[6], pkt[7]
    src = socket.inet_ntop(socket.AF_INET6, pkt[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, pkt[24:40])
    # payload_len 0 is a jumbogram (length in a hop-by-hop option); report what the wire holds
    packet_len = min(65535, 40 + payload_len) if payload_len else min(65535, len(pkt))
    end = 40 + payload_len if payload_len else len(pkt)
    off = 40
    for _ in range(_MAX_V6_EXTENSIONS):
        if protocol in _V6_EXT_GENERIC or protocol == _V6_AH:
            if len(pkt) < off + 2:
                return None
            step = (pkt[off + 1] + 2) * 4 if protocol == _V6_AH else (pkt[off + 1] + 1) * 8
            protocol = pkt[off]
            off += step
        elif protocol == _V6_FRAGMENT:
            if len(pkt) < off + 8:
                return None
            (frag,) = struct.unpack_from("!H", pkt, off + 2)
            protocol = pkt[off]
            off += 8
            if frag >> 3:
                return FlowRow(src, dst, 0, 0, protocol, None, hop_limit, packet_len)
        else:
            break
    else:
        return None  # a chain this long is not traffic we can describe
    l4 = _l4(pkt[off:end], protocol)
    if l4 is None:
        return None
    return FlowRow(src, dst, l4[0], l4[1], protocol, l4[2], hop_limit, packet_len)


def parse_ip(packet: bytes) -> FlowRow | None:
    """An IPv4 or IPv6 packet (no link header: tun devices) to a FlowRow, or None."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        return _ipv4(packet)
    if version == 6:
        return _ipv6(packet)
    return None


def parse_frame(frame: bytes) -> FlowRow | None:
    """An Ethernet frame (optionally 802.1Q/802.1ad tagged) to a FlowRow, or None when it is
    not IPv4/IPv6 or too short to hold the headers. Never raises."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    for _ in range(_MAX_VLAN_TAGS):
        if ethertype not in _VLAN_TYPES:
            break
        if len(frame) < off + 4:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, off + 2)
        off += 4
    if ethertype == _ETH_IPV4:
        return _ipv4(frame[off:])
    if ethertype == _ETH_IPV6:
        return _ipv6(frame[off:])
    return None


@dataclass(frozen=True)
class WindowStats:
    """What was sampled since the previous ``take``. Counts are of sampled packets (multiply by
    ``sampling_rate`` for estimates); ``flows`` are wire rows."""

    sampled: int
    syn: int  # SYN without ACK
    ack: int
    rst: int
    fin: int
    distinct_sources: int
    flows: list[dict[str, Any]]
    dropped_flows: int


class CaptureWindow:
    """Accumulates sampled packets between two ``take`` calls; bounded in memory. Not
    thread-safe by itself (``Capture`` holds a lock around it)."""

    def __init__(self, sampling_rate: int, *, max_flows: int = 100_000) -> None:
        self.sampling_rate = sampling_rate
        self.max_flows = max_flows
        self._flows: deque[dict[str, Any]] = deque()
        self._sources: set[str] = set()
        self._dropped = 0
        self._sampled = self._syn = self._ack = self._rst = self._fin = 0

    def observe(self, row: FlowRow, wall: float) -> None:
        self._sampled += 1
        flags = row.tcp_flags
        if flags is not None:
            self._syn += bool(flags & TCP_SYN and not flags & TCP_ACK)
            self._ack += bool(flags & TCP_ACK)
            self._rst += bool(flags & TCP_RST)
            self._fin += bool(flags & TCP_FIN)
        if len(self._sources) < self.max_flows:
            self._sources.add(row.src_ip)
        if len(self._flows) >= self.max_flows:
            self._flows.popleft()
            self._dropped += 1
        self._flows.append(row.as_wire(datetime.fromtimestamp(wall, tz=UTC), self.sampling_rate))

    def take(self) -> WindowStats:
        stats = WindowStats(
            self._sampled,
            self._syn,
            self._ack,
            self._rst,
            self._fin,
            len(self._sources),
            list(self._flows),
            self._dropped,
        )
        self._flows.clear()
        self._sources.clear()
        self._dropped = 0
        self._sampled = self._syn = self._ack = self._rst = self._fin = 0
        return stats


def _sampling_filter(n: int) -> bytes:
    """Classic BPF: drop our own outgoing packets, keep 1 in ``n`` of the rest at random."""
    program = [
        (0x20, 0, 0, 0xFFFFF004),  # ld  [SKF_AD_OFF + SKF_AD_PKTTYPE]
        (0x15, 4, 0, PACKET_OUTGOING),  # jeq #OUTGOING -> drop
        (0x20, 0, 0, 0xFFFFF038),  # ld  [SKF_AD_OFF + SKF_AD_RANDOM]
        (0x94, 0, 0, n),  # mod #n
        (0x15, 0, 1, 0),  # jeq #0 -> accept, else drop
        (0x06, 0, 0, _SNAP_BYTES),  # accept: ret #snap
        (0x06, 0, 0, 0),  # drop: ret #0
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


class Capture:
    """Samples one interface in a background thread. ``start`` opens the socket (raises
    CaptureError), ``take`` returns what was sampled since the previous call, ``stop`` joins."""

    def __init__(self, interface: str, sampling_rate: int, *, max_flows: int = 100_000) -> None:
        if not 1 <= sampling_rate <= 2**31:
            raise ValueError("sampling_rate must be between 1 and 2**31")
        self.interface = interface
        self.sampling_rate = sampling_rate
        self._window = CaptureWindow(sampling_rate, max_flows=max_flows)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.unparsed = 0  # sampled frames that were not IP or were cut

    def _open(self) -> socket.socket:
        if not sys.platform.startswith("linux") or not hasattr(socket, "AF_PACKET"):
            raise CaptureError("packet capture needs Linux (AF_PACKET)")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureError("packet capture needs root or CAP_NET_RAW") from None
        try:
            code = _sampling_filter(self.sampling_rate)
            buf = ctypes.create_string_buffer(code, len(code))
            fprog = struct.pack("HP", len(code) // 8, ctypes.addressof(buf))
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
            sock.bind((self.interface, ETH_P_ALL))
            # Packets queued between socket() and the filter were not sampled: discard them.
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.recv(_SNAP_BYTES)
            sock.settimeout(0.5)
        except OSError as exc:
            sock.close()
            raise CaptureError(f"cannot capture on {self.interface!r}: {exc.strerror}") from None
        return sock

    def start(self) -> None:
        if self._thread is not None:
            return
        self._sock = self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="floodwatch-capture", daemon=True)
        self._thread.start()
        log.info("capture started interface=%s sample_rate=%d", self.interface, self.sampling_rate)

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        buf = bytearray(_SNAP_BYTES)
        while not self._stop.is_set():
            try:
                n, addr = sock.recvfrom_into(buf)
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.error("capture stopped interface=%s error=%s", self.interface, exc)
                return
            if len(addr) > 3 and addr[2] == PACKET_OUTGOING:
                continue
            frame = bytes(buf[:n])
            hatype = addr[3] if len(addr) > 3 else ARPHRD_ETHER
            row = parse_ip(frame) if hatype == ARPHRD_NONE else parse_frame(frame)
            if row is None:
                self.unparsed += 1
                continue
            now = time.time()
            with self._lock:
                self._window.observe(row, now)

    def take(self) -> WindowStats:
        with self._lock:
            return self._window.take()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
