"""The one data contract: Arrow schemas of the binary telemetry wire format (v1) and of the lake.

Every stage uses these declarations: the decoder checks incoming batches against ``WIRE``, the
buffer and lake writer produce ``LAKE`` tables, the analyst catalog exposes them. To add a column
see "To add a column" in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "FLOWS",
    "KINDS",
    "METRICS",
    "WIRE_VERSION",
    "Column",
    "RecordKind",
]

WIRE_VERSION = 1
TIME_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One wire column.

    ``kind`` is the logical type: ``time``, ``float`` (non-negative, finite), ``int`` (with
    ``lo``/``hi`` bounds), ``text``, ``ip`` or ``uuid``. Any Arrow type that converts without loss
    is accepted (e.g. int32 for a float column); ``arrow`` is the type stored in the lake."""

    name: str
    kind: str
    arrow: pa.DataType
    required: bool = False
    lo: int | None = None
    hi: int | None = None
    doc: str = ""


@dataclass(frozen=True)
class RecordKind:
    name: str
    columns: tuple[Column, ...]

    @property
    def wire_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns)

    @functools.cached_property
    def lake_schema(self) -> pa.Schema:
        """Lake files: ``node_uuid`` and ``source`` first, then the wire columns (the workspace,
        date and hour are hive partition keys, not columns)."""
        fields = [
            pa.field("node_uuid", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
        ]
        fields += [
            pa.field(c.name, c.arrow, nullable=not c.required)
            for c in self.columns
            if c.name not in ROUTING_COLUMNS
        ]
        return pa.schema(fields)


def _rate(name: str, doc: str, required: bool = False) -> Column:
    return Column(name, "float", pa.float64(), required=required, doc=doc)


# Columns that say which node a row belongs to; consumed by routing, not stored as such.
ROUTING_COLUMNS = frozenset({"node", "node_ip"})

METRICS = RecordKind(
    "metrics",
    (
        Column("time", "time", TIME_TYPE, required=True, doc="start of the one-second sample"),
        Column("node", "uuid", pa.string(), doc="node UUID (collector keys only)"),
        Column("node_ip", "ip", pa.string(), doc="node address (collector keys only)"),
        _rate("pps", "packets per second received", required=True),
        _rate("bps", "bits per second received", required=True),
        _rate("tcp_pps", "TCP packets per second"),
        _rate("udp_pps", "UDP packets per second"),
        _rate("icmp_pps", "ICMP packets per second"),
        _rate("other_pps", "other IP protocols, packets per second"),
        _rate("syn_pps", "TCP SYN (without ACK) packets per second"),
        _rate("ack_pps", "TCP ACK packets per second"),
        _rate("rst_pps", "TCP RST packets per second"),
        _rate("fin_pps", "TCP FIN packets per second"),
        _rate("frag_pps", "IP fragments per second"),
        _rate("drop_pps", "packets dropped by the interface or kernel per second"),
        _rate("tx_pps", "packets per second sent"),
        _rate("tx_bps", "bits per second sent"),
        _rate("avg_pkt_len", "mean received packet length in bytes"),
        Column("conn_count", "int", pa.int64(), lo=0, hi=2**62, doc="open connections"),
        Column(
            "distinct_sources", "int", pa.int64(), lo=0, hi=2**62, doc="distinct source addresses"
        ),
    ),
)

FLOWS = RecordKind(
    "flows",
    (
        Column("time", "time", TIME_TYPE, required=True, doc="when the packet was sampled"),
        Column("node", "uuid", pa.string(), doc="node UUID (collector keys; else by dst_ip)"),
        Column("src_ip", "ip", pa.string(), required=True, doc="source IPv4 or IPv6 address"),
        Column("dst_ip", "ip", pa.string(), required=True, doc="destination address"),
        Column("src_port", "int", pa.int32(), lo=0, hi=65535, doc="source port (0 if none)"),
        Column("dst_port", "int", pa.int32(), lo=0, hi=65535, doc="destination port"),
        Column("protocol", "int", pa.int16(), required=True, lo=0, hi=255, doc="IP protocol"),
        Column("tcp_flags", "int", pa.int16(), lo=0, hi=255, doc="TCP flags byte"),
        Column("packets", "int", pa.int64(), required=True, lo=0, hi=2**62, doc="packets"),
        Column("bytes", "int", pa.int64(), required=True, lo=0, hi=2**62, doc="bytes"),
        Column(
            "sampling_rate", "int", pa.int64(), lo=1, hi=2**31, doc="1 in N packets (default 1)"
        ),
        Column("ttl", "int", pa.int16(), lo=0, hi=255, doc="IP TTL / hop limit"),
        Column("packet_len", "int", pa.int32(), lo=0, hi=65535, doc="IP packet length"),
    ),
)

KINDS: dict[str, RecordKind] = {"metrics": METRICS, "flows": FLOWS}
