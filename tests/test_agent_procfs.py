"""agent.procfs against fake /proc trees in tests/data/proc, and agent.capture's pure parts
(frame parsing on hand-built frames, the capture window)."""

from __future__ import annotations

import socket
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.capture import CaptureWindow, FlowRow, parse_frame, parse_ip
from agent.errors import InterfaceNotFound, ProcfsError, ProcfsFormatError
from agent.procfs import (
    Sample,
    compute_rates,
    default_interface,
    metrics_rows,
    parse_net_dev,
    parse_snmp,
    read_sample,
)
from agent.sender import encode_stream, rows_to_table
from ingest.decode import Decoded, decode_body
from ingest.schema import FLOWS, METRICS, RecordKind

PROC = Path(__file__).parent / "data" / "proc"
WALL = 1_900_000_000.2  # a fixed instant; rows are checked with a `now` next to it


def sample(tree: str, mono: float, wall: float = WALL, interface: str = "eth0") -> Sample:
    return read_sample(PROC / tree, interface, wall=wall, mono=mono)


def server_accepts(kind: RecordKind, rows: list[dict[str, Any]], now: datetime) -> Decoded:
    """The rows, encoded as the sender does, pass the server's own decoder."""
    body = encode_stream(rows_to_table(kind, rows))
    return decode_body(
        body,
        kind,
        max_rows=1_000_000,
        now=now,
        max_age=timedelta(days=15),
        max_skew=timedelta(minutes=5),
    )


# -- procfs ------------------------------------------------------------------------------------


def test_two_snapshots_give_the_exact_row() -> None:
    rows = metrics_rows(sample("t0", 100.0), sample("t1", 101.0, WALL + 1))
    assert rows == [
        {
            "time": datetime.fromtimestamp(1_900_000_000, tz=UTC),
            "pps": 10_000.0,
            "bps": 10_000_000.0,
            "tcp_pps": 6_000.0,
            "udp_pps": 3_500.0,  # v4 InDatagrams 2500 + NoPorts 400 + InErrors 100, v6 500
            "icmp_pps": 250.0,  # Icmp 200 + Icmp6 50
            "other_pps": 250.0,
            "syn_pps": None,
            "ack_pps": None,
            "rst_pps": None,
            "fin_pps": None,
            "frag_pps": 40.0,  # Ip 30 + Ip6 10
            "drop_pps": 5.0,
            "tx_pps": 4_000.0,
            "tx_bps": 4_800_000.0,
            "avg_pkt_len": 125.0,
            "conn_count": 42,
            "distinct_sources": None,
        }
    ]
    decoded = server_accepts(METRICS, rows, datetime.fromtimestamp(WALL, tz=UTC))
    assert decoded.table.num_rows == 1 and decoded.ignored_columns == ()


def test_a_longer_interval_gives_one_row_per_second_at_the_mean_rate() -> None:
    rows = metrics_rows(sample("t0", 100.0), sample("t1", 102.0, WALL + 2))
    assert [r["time"] for r in rows] == [
        datetime.fromtimestamp(1_900_000_000, tz=UTC),
        datetime.fromtimestamp(1_900_000_001, tz=UTC),
    ]
    assert all(r["pps"] == 5_000.0 and r["tcp_pps"] == 3_000.0 for r in rows)
    assert all(r["conn_count"] == 42 and r["avg_pkt_len"] == 125.0 for r in rows)


def test_without_snmp6_only_ipv4_counters_are_used() -> None:
    rates = compute_rates(sample("t0", 100.0), sample("t1_no_ipv6", 101.0))
    assert rates is not None
    assert (rates["udp_pps"], rates["icmp_pps"], rates["frag_pps"]) == (3_000.0, 200.0, 30.0)
    assert rates["other_pps"] == 10_000.0 - 6_000.0 - 3_000.0 - 200.0


def test_other_pps_is_floored_at_zero() -> None:
    # The protocol counters are host-wide: here eth0 saw nothing while they moved (as with
    # loopback traffic), so pps - tcp - udp - icmp is negative and must not be sent as such.
    prev, cur = sample("t0", 100.0), sample("t1", 101.0)
    quiet = Sample(cur.wall, cur.mono, cur.interface, prev.dev, cur.snmp, cur.snmp6)
    rates = compute_rates(prev, quiet)
    assert rates is not None
    assert rates["pps"] == 0.0 and rates["tcp_pps"] == 6_000.0 and rates["other_pps"] == 0.0
    assert rates["avg_pkt_len"] is None  # no packets, no mean


def test_receive_counter_reset_gives_no_row() -> None:
    prev = sample("t0", 100.0)
    assert compute_rates(prev, sample("reset", 101.0)) is None
    assert metrics_rows(prev, sample("reset", 101.0)) == []
    # and the next interval, from the reset sample on, is normal again
    after = metrics_rows(sample("reset", 101.0), sample("reset", 102.0))
    assert len(after) == 1 and after[0]["pps"] == 0.0


def test_a_protocol_counter_reset_nulls_only_what_it_feeds() -> None:
    rates = compute_rates(sample("t0", 100.0), sample("udp_reset", 101.0))
    assert rates is not None
    assert rates["udp_pps"] is None and rates["other_pps"] is None
    assert rates["pps"] == 10_000.0 and rates["tcp_pps"] == 6_000.0 and rates["icmp_pps"] == 250.0


@pytest.mark.parametrize("dt", [0.0, -1.0])
def test_no_row_without_time_passing(dt: float) -> None:
    assert metrics_rows(sample("t0", 100.0), sample("t1", 100.0 + dt)) == []


def test_missing_interface_names_the_ones_that_exist() -> None:
    with pytest.raises(InterfaceNotFound) as info:
        sample("t0", 1.0, interface="ens9")
    assert "'ens9'" in str(info.value)
    assert info.value.available == ["lo", "eth0", "docker0"]


@pytest.mark.parametrize(
    ("tree", "where", "what"),
    [
        ("bad_dev_short", "net/dev line 4", "expected 16 counters, got 15"),
        ("bad_dev_text", "net/dev line 4", "'20x0000' is not an integer"),
        ("bad_dev_header", "net/dev", "missing the two header lines"),
        ("bad_snmp_count", "net/snmp line 8", "Tcp has 15 names but 14 values"),
        ("bad_snmp_missing", "net/snmp", "no Tcp InSegs counter"),
        ("bad_snmp6", "net/snmp6 line 15", "expected 'Name value'"),
    ],
)
def test_malformed_files_give_a_clear_error(tree: str, where: str, what: str) -> None:
    with pytest.raises(ProcfsFormatError) as info:
        sample(tree, 1.0)
    assert where in str(info.value) and what in str(info.value)


def test_missing_files_are_a_procfs_error(tmp_path: Path) -> None:
    with pytest.raises(ProcfsError, match=r"cannot read .*net/dev") as info:
        read_sample(tmp_path, "eth0")
    assert not isinstance(info.value, ProcfsFormatError)


def test_default_interface_comes_from_the_default_route(tmp_path: Path) -> None:
    assert default_interface(PROC / "t0") == "eth0"
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "route").write_text("Iface\tDestination\n")
    with pytest.raises(ProcfsError, match="no IPv4 default route"):
        default_interface(tmp_path)


def test_net_dev_with_no_space_after_the_colon() -> None:
    text = (
        "Inter-|   Receive  |  Transmit\n face |bytes packets|bytes packets\n"
        "  eth1:123456789012 7 0 1 0 0 0 0 55 3 0 0 0 0 0 0\n"
    )
    dev = parse_net_dev(text)["eth1"]
    assert (dev.rx_bytes, dev.rx_packets, dev.rx_drop, dev.tx_bytes, dev.tx_packets) == (
        123456789012,
        7,
        1,
        55,
        3,
    )


def test_snmp_values_without_names_are_malformed() -> None:
    with pytest.raises(ProcfsFormatError, match="Udp names without values"):
        parse_snmp("Udp: InDatagrams NoPorts\n")
    with pytest.raises(ProcfsFormatError, match="follow names of 'Udp'"):
        parse_snmp("Udp: InDatagrams\nTcp: 1\n")


# -- capture: frames built byte by byte ----------------------------------------------------------

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def eth(ethertype: int, payload: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    head = MAC_A + MAC_B
    for tpid in vlans:
        head += struct.pack("!HH", tpid, 100)  # tag: TPID, then TCI (VLAN 100); type follows
    return head + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, l4: bytes, ttl: int = 57, frag_offset: int = 0) -> bytes:
    total = 20 + len(l4)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        0x1234,
        frag_offset,
        ttl,
        proto,
        0,
        socket.inet_pton(socket.AF_INET, src),
        socket.inet_pton(socket.AF_INET, dst),
    )
    return header + l4


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hops: int = 64) -> bytes:
    return (
        struct.pack("!IHBB", 0x60000000, len(payload), next_header, hops)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


def tcp(sport: int, dport: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


def udp(sport: int, dport: int, data: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def test_ipv4_tcp_syn() -> None:
    frame = eth(0x0800, ipv4("203.0.113.9", "198.51.100.7", 6, tcp(40000, 443, 0x02)))
    assert parse_frame(frame) == FlowRow("203.0.113.9", "198.51.100.7", 40000, 443, 6, 0x02, 57, 40)


def test_ipv6_udp() -> None:
    frame = eth(0x86DD, ipv6("2001:db8::1", "2001:db8::53", 17, udp(5353, 53, b"x" * 12)))
    assert parse_frame(frame) == FlowRow("2001:db8::1", "2001:db8::53", 5353, 53, 17, None, 64, 60)


@pytest.mark.parametrize("vlans", [(0x8100,), (0x88A8, 0x8100)])
def test_vlan_tagged(vlans: tuple[int, ...]) -> None:
    frame = eth(0x0800, ipv4("192.0.2.1", "192.0.2.2", 17, udp(123, 123, b"t" * 48)), vlans)
    assert parse_frame(frame) == FlowRow("192.0.2.1", "192.0.2.2", 123, 123, 17, None, 57, 76)


def test_ethernet_padding_is_not_read_as_transport_data() -> None:
    # a 20-byte IPv4 header claiming 28 bytes (ICMP echo) padded to the 60-byte minimum frame
    packet = ipv4("192.0.2.1", "192.0.2.2", 1, bytes([8, 0, 0, 0, 0, 1, 0, 1]))
    row = parse_frame(eth(0x0800, packet + b"\0" * 18))
    assert row == FlowRow("192.0.2.1", "192.0.2.2", 0, 0, 1, None, 57, 28)


def test_ipv4_later_fragment_has_no_ports() -> None:
    frame = eth(0x0800, ipv4("192.0.2.1", "192.0.2.2", 17, b"\xff" * 40, frag_offset=185))
    assert parse_frame(frame) == FlowRow("192.0.2.1", "192.0.2.2", 0, 0, 17, None, 57, 60)


def test_ipv6_extension_headers_are_walked() -> None:
    hop_by_hop = bytes([6, 0]) + b"\x01\x04\0\0\0\0"  # next = TCP, 8 bytes, PadN
    frame = eth(0x86DD, ipv6("2001:db8::a", "2001:db8::b", 0, hop_by_hop + tcp(1, 80, 0x14)))
    assert parse_frame(frame) == FlowRow("2001:db8::a", "2001:db8::b", 1, 80, 6, 0x14, 64, 68)


def test_raw_ip_without_link_header() -> None:
    row = parse_ip(ipv4("10.9.8.7", "10.9.8.6", 6, tcp(5, 6, 0x11)))
    assert row == FlowRow("10.9.8.7", "10.9.8.6", 5, 6, 6, 0x11, 57, 40)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00" * 13,
        eth(0x0806, b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20),  # ARP
        eth(0x0800, ipv4("192.0.2.1", "192.0.2.2", 6, tcp(1, 2, 2))[:30]),  # TCP header cut
        eth(0x0800, ipv4("192.0.2.1", "192.0.2.2", 6, tcp(1, 2, 2))[:36]),  # 16 of 20 bytes
        eth(0x0800, ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2))[:25]),  # UDP header cut
        eth(0x0800, b"\x46" + b"\0" * 19),  # IHL says 24 bytes, 20 present
        eth(0x0800, b"\x65" + b"\0" * 39),  # version 6 in an IPv4 frame
        eth(0x86DD, ipv6("::1", "::2", 17, udp(1, 2))[:39]),  # IPv6 header cut
        eth(0x8100, b"\x00"),  # VLAN tag cut
        bytes(range(256)) * 2,
    ],
)
def test_truncated_or_foreign_frames_give_none(frame: bytes) -> None:
    assert parse_frame(frame) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
@example(eth(0x86DD, ipv6("::1", "::2", 44, b"\x06\x00\x00\x00\0\0\0\0")))
@example(eth(0x86DD, ipv6("::1", "::2", 51, b"\x06\xff")))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parse_frame(data)
    parse_ip(data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([0x0800, 0x86DD, 0x8100]),
    st.integers(0, 255),
    st.binary(max_size=120),
)
def test_frames_with_a_plausible_start_never_raise(ethertype: int, first: int, rest: bytes) -> None:
    row = parse_frame(eth(ethertype, bytes([first]) + rest))
    if row is not None:
        assert 0 <= row.src_port <= 65535 and 0 <= row.protocol <= 255 and 0 <= row.ttl <= 255
        assert 0 <= row.packet_len <= 65535


def test_capture_window_counts_flags_sources_and_bounds_flows() -> None:
    window = CaptureWindow(sampling_rate=100, max_flows=3)

    def row(src: str, flags: int | None) -> FlowRow:
        return FlowRow(src, "198.51.100.7", 1000, 80, 6 if flags is not None else 17, flags, 60, 40)

    for src, flags in [
        ("203.0.113.1", 0x02),  # SYN
        ("203.0.113.2", 0x02),  # SYN
        ("203.0.113.1", 0x12),  # SYN-ACK: counts as ACK, not SYN
        ("203.0.113.3", 0x14),  # RST-ACK
        ("203.0.113.3", 0x11),  # FIN-ACK
        ("203.0.113.4", None),  # UDP
    ]:
        window.observe(row(src, flags), WALL)
    stats = window.take()
    assert (stats.sampled, stats.syn, stats.ack, stats.rst, stats.fin) == (6, 2, 3, 1, 1)
    assert stats.distinct_sources == 3  # capped at max_flows
    assert len(stats.flows) == 3 and stats.dropped_flows == 3
    assert [f["src_ip"] for f in stats.flows] == ["203.0.113.3", "203.0.113.3", "203.0.113.4"]
    flow = stats.flows[0]
    assert (flow["packets"], flow["bytes"], flow["sampling_rate"]) == (100, 4000, 100)
    assert window.take().sampled == 0
    decoded = server_accepts(FLOWS, stats.flows, datetime.fromtimestamp(WALL, tz=UTC))
    assert decoded.table.num_rows == 3
