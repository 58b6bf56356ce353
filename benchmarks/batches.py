"""Deterministic telemetry batches for the benchmarks, written from docs/wire-format.md.

Every value comes from ``pyarrow.compute.random`` with a fixed initializer (or ``random.Random``
with a fixed seed), so the same ``seed`` gives the same rows; only ``time`` follows the clock,
because the server refuses rows older than the raw retention or in the future.

Rows carry every column of their kind (as a full agent sends them). Their ``time`` values are
spread over one minute that ended shortly before the batch was built, so a batch falls in one
hour partition as live traffic does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

__all__ = [
    "ARROW",
    "COMPRESSIONS",
    "DISTINCT_ROWS",
    "FLEET_TRAFFIC",
    "KIND_NAMES",
    "SHAPES",
    "BodySet",
    "build_bodies",
    "encode",
    "fleet_metrics_pool",
    "flows_batch",
    "metrics_batch",
    "row_pool",
    "wire_batch",
]

ARROW = "application/vnd.apache.arrow.stream"
KIND_NAMES = ("metrics", "flows")
COMPRESSIONS = ("none", "lz4", "zstd")
# Who sends and how rows name their node. "node-key": each batch is one node's rows, posted with
# that node's key (an agent). "collector-node" / "collector-node_ip": each batch holds the
# per-second history of many nodes in time order (every node's second t, then every node's
# t + 1, ...), posted with the workspace's collector key, rows named by node UUID or by the
# node's registered address (a collector, or a replay of stored history).
SHAPES = ("node-key", "collector-node", "collector-node_ip")
# What a collector shape's rows hold: see ``fleet_metrics_pool``.
FLEET_TRAFFIC = ("noise", "coherent")
# The address every flow row is sent to: the node's own (TEST-NET-3; nothing is ever sent there).
NODE_IP = "203.0.113.10"
_WINDOW = timedelta(seconds=60)

# metrics column -> typical level; a row's value is level * (0.5 + uniform[0, 1))
_RATES = {
    "pps": 150_000.0,
    "bps": 1.2e9,
    "tcp_pps": 110_000.0,
    "udp_pps": 35_000.0,
    "icmp_pps": 400.0,
    "other_pps": 50.0,
    "syn_pps": 900.0,
    "ack_pps": 90_000.0,
    "fin_pps": 700.0,
    "tx_pps": 120_000.0,
    "tx_bps": 9.0e8,
    "avg_pkt_len": 800.0,
}
# mostly zero on a healthy node: one row in ``1 / share`` has a value
_SPARSE = {"rst_pps": (40.0, 0.05), "frag_pps": (20.0, 0.01), "drop_pps": (300.0, 0.002)}


def _uniform(n: int, seed: int) -> pa.Array:
    return pc.random(n, initializer=seed)


def _ints(n: int, seed: int, lo: int, hi: int) -> pa.Array:
    """Uniform integers in [lo, hi)."""
    scaled = pc.add(pc.multiply(_uniform(n, seed), float(hi - lo)), float(lo))
    return pc.cast(pc.floor(scaled), pa.int64())


def _times(n: int, end: datetime) -> pa.Array:
    start = end - _WINDOW
    step = max(1, int(_WINDOW / timedelta(microseconds=1)) // max(n, 1))
    base = int(start.timestamp() * 1_000_000)
    return pa.array(range(base, base + n * step, step), pa.timestamp("us", tz="UTC"))


def metrics_batch(n: int, seed: int, end: datetime | None = None) -> pa.Table:
    """``n`` wire rows of ``metrics`` (no ``node`` column: they are sent with a node key)."""
    end = end or datetime.now(UTC) - timedelta(seconds=5)
    cols: dict[str, pa.Array] = {"time": _times(n, end)}
    for i, (name, level) in enumerate(_RATES.items()):
        cols[name] = pc.multiply(pc.add(_uniform(n, seed * 100 + i), 0.5), level)
    for i, (name, (level, share)) in enumerate(_SPARSE.items()):
        u = _uniform(n, seed * 100 + 50 + i)
        value = pc.multiply(_uniform(n, seed * 100 + 60 + i), level)
        cols[name] = pc.if_else(pc.less(u, share), value, 0.0)
    cols["conn_count"] = _ints(n, seed * 100 + 70, 1_000, 50_000)
    cols["distinct_sources"] = _ints(n, seed * 100 + 71, 10, 20_000)
    return pa.table(cols)


def flows_batch(n: int, seed: int, end: datetime | None = None) -> pa.Table:
    """``n`` wire rows of ``flows``: sampled packets (1 in 1000) towards the node's address."""
    end = end or datetime.now(UTC) - timedelta(seconds=5)
    rng = random.Random(seed)
    sources = pa.array(
        [
            f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
            f"{rng.randrange(1, 255)}"
            for _ in range(20_000)
        ],
        pa.string(),
    )
    src = pc.take(sources, _ints(n, seed * 100 + 1, 0, len(sources)))
    proto_pick = _uniform(n, seed * 100 + 2)
    protocol = pc.if_else(pc.less(proto_pick, 0.7), 6, pc.if_else(pc.less(proto_pick, 0.97), 17, 1))
    is_tcp = pc.equal(protocol, 6)
    has_ports = pc.not_equal(protocol, 1)
    services = pa.array([80, 443, 53, 22, 123, 8080, 3389, 25], pa.int64())
    dst_port = pc.take(services, _ints(n, seed * 100 + 3, 0, len(services)))
    flags = pa.array([2, 16, 18, 24, 17, 4], pa.int64())
    tcp_flags = pc.take(flags, _ints(n, seed * 100 + 4, 0, len(flags)))
    packet_len = _ints(n, seed * 100 + 5, 40, 1501)
    sampling = 1000
    cols: dict[str, pa.Array] = {
        "time": _times(n, end),
        "src_ip": src,
        "dst_ip": pa.array([NODE_IP] * n, pa.string()),
        "src_port": pc.cast(
            pc.if_else(has_ports, _ints(n, seed * 100 + 6, 1024, 65536), 0), pa.uint16()
        ),
        "dst_port": pc.cast(pc.if_else(has_ports, dst_port, 0), pa.uint16()),
        "protocol": pc.cast(protocol, pa.uint8()),
        "tcp_flags": pc.cast(pc.if_else(is_tcp, tcp_flags, None), pa.uint8()),
        "packets": pa.array([sampling] * n, pa.int64()),
        "bytes": pc.multiply(packet_len, sampling),
        "sampling_rate": pa.array([sampling] * n, pa.int64()),
        "ttl": pc.cast(_ints(n, seed * 100 + 7, 30, 129), pa.uint8()),
        "packet_len": pc.cast(packet_len, pa.uint16()),
    }
    return pa.table(cols)


def _coherent_metrics(rows: int, seed: int, nodes: int) -> pa.Table:
    """Rows of ``metrics`` (row ``i`` belongs to node ``i % nodes``) whose counters agree with
    each other: each node has its own packet rate (20k-300k pps) with ±5% noise per second,
    split 70/27/2/1% into TCP/UDP/ICMP/other (±2% of the packets moving between TCP and UDP),
    SYN/ACK/RST/FIN as shares of TCP, 800-byte packets, sources proportional to the rate. The
    counters of ``noise`` traffic are drawn apart (``tcp_pps`` can exceed ``pps``, every share
    jumps every second), which a detector reads as a fleet under attack."""
    rng = random.Random(seed)
    levels = pa.array([rng.uniform(20_000.0, 300_000.0) for _ in range(nodes)], pa.float64())
    index = pa.array(range(rows), pa.int64())
    node = pc.subtract(index, pc.multiply(pc.divide(index, nodes), nodes))
    level = pc.take(levels, node)

    def jitter(key: int, width: float) -> pa.Array:
        return pc.add(pc.multiply(pc.subtract(_uniform(rows, seed * 100 + key), 0.5), width), 1.0)

    pps = pc.multiply(level, jitter(1, 0.10))
    tcp = pc.multiply(pps, pc.multiply(jitter(2, 0.04), 0.70))
    icmp = pc.multiply(pps, 0.02)
    other = pc.multiply(pps, 0.01)
    udp = pc.subtract(pc.subtract(pc.subtract(pps, tcp), icmp), other)
    length = pc.multiply(jitter(3, 0.06), 800.0)
    cols: dict[str, pa.Array] = {
        "time": pa.nulls(rows, pa.timestamp("us", tz="UTC")),
        "pps": pps,
        "bps": pc.multiply(pc.multiply(pps, length), 8.0),
        "tcp_pps": tcp,
        "udp_pps": udp,
        "icmp_pps": icmp,
        "other_pps": other,
        "syn_pps": pc.multiply(tcp, pc.multiply(jitter(4, 0.2), 0.01)),
        "ack_pps": pc.multiply(tcp, pc.multiply(jitter(5, 0.04), 0.80)),
        "rst_pps": pc.multiply(tcp, pc.multiply(jitter(6, 0.4), 0.002)),
        "fin_pps": pc.multiply(tcp, pc.multiply(jitter(7, 0.2), 0.008)),
        "frag_pps": pc.multiply(pps, pc.multiply(jitter(8, 0.4), 0.0005)),
        "drop_pps": pa.array([0.0] * rows, pa.float64()),
        "tx_pps": pc.multiply(pps, jitter(9, 0.10)),
        "tx_bps": pc.multiply(pc.multiply(pps, jitter(10, 0.10)), 6000.0),
        "avg_pkt_len": length,
        "conn_count": pc.cast(
            pc.floor(pc.multiply(pps, pc.multiply(jitter(11, 0.1), 0.2))), pa.int64()
        ),
        "distinct_sources": pc.cast(
            pc.floor(pc.multiply(pps, pc.multiply(jitter(12, 0.1), 0.05))), pa.int64()
        ),
    }
    return pa.table(cols)


def fleet_metrics_pool(
    rows: int,
    seed: int,
    nodes: tuple[tuple[str, str], ...],
    column: str,
    end: datetime | None = None,
    traffic: str = "noise",
) -> pa.Table:
    """``rows`` wire rows of ``metrics``: the per-second history of ``nodes`` ((uuid, address)
    pairs) in time order, ``len(nodes)`` rows per second, the last second 5 s before ``end``.
    ``column`` is ``node`` (rows name their node by UUID) or ``node_ip`` (by address). The
    history spans ``rows / len(nodes)`` seconds, so batches cross hour partitions as a replay's
    do. ``traffic`` (``FLEET_TRAFFIC``): ``noise`` draws every counter of every row on its own
    (uniform within ±50% of its level, as ``metrics_batch``), ``coherent`` gives each node
    traffic a node can have (see ``_coherent_metrics``)."""
    if column not in ("node", "node_ip") or not nodes or traffic not in FLEET_TRAFFIC:
        raise ValueError(f"bad fleet pool: column {column!r}, {len(nodes)} nodes, {traffic!r}")
    end = end or datetime.now(UTC) - timedelta(seconds=5)
    count = len(nodes)
    if traffic == "coherent":
        table = _coherent_metrics(rows, seed, count)
    else:
        table = metrics_batch(rows, seed, end)
    seconds = -(-rows // count)
    first = int(end.timestamp()) - seconds + 1
    index = pa.array(range(rows), pa.int64())
    step = pc.divide(index, count)  # integer division: the row's second
    micros = pc.multiply(pc.add(step, first), 1_000_000)
    table = table.set_column(
        table.schema.get_field_index("time"),
        "time",
        pc.cast(micros, pa.timestamp("us", tz="UTC")),
    )
    names = pa.array([n[0] if column == "node" else n[1] for n in nodes], pa.string())
    which = pc.subtract(index, pc.multiply(step, count))  # the row's node: row % count
    return table.append_column(column, pc.take(names, which))


def wire_batch(kind: str, n: int, seed: int, end: datetime | None = None) -> pa.Table:
    if kind == "metrics":
        return metrics_batch(n, seed, end)
    if kind == "flows":
        return flows_batch(n, seed, end)
    raise ValueError(f"unknown kind {kind!r}")


def encode(table: pa.Table, compression: str) -> bytes:
    """One Arrow IPC stream (schema, batches, end-of-stream), as a sender posts it."""
    sink = pa.BufferOutputStream()
    opts = ipc.IpcWriteOptions(compression=None if compression == "none" else compression)
    with ipc.new_stream(sink, table.schema, options=opts) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True)
class BodySet:
    """Pre-built request bodies of one kind, batch size and compression."""

    kind: str
    rows: int
    compression: str
    bodies: tuple[bytes, ...]

    @property
    def mean_bytes(self) -> float:
        return sum(len(b) for b in self.bodies) / len(self.bodies)


# A flush writes up to 500,000 rows (ingest.flush_rows) to one file: with at least that many
# distinct rows in rotation a file holds no repeated row, so bytes per row on disk is honest.
DISTINCT_ROWS = 1 << 19

_pool: dict[tuple[str, int, int], pa.Table] = {}


def row_pool(kind: str, seed: int, rows: int = DISTINCT_ROWS) -> pa.Table:
    """``rows`` distinct wire rows of ``kind`` (cached per process: the time window is that of
    the first call)."""
    key = (kind, seed, rows)
    if key not in _pool:
        _pool[key] = wire_batch(kind, rows, seed).combine_chunks()
    return _pool[key]


def build_bodies(
    kind: str,
    rows: int,
    compression: str,
    seed: int,
    distinct_rows: int = DISTINCT_ROWS,
    shape: str = "node-key",
    nodes: tuple[tuple[str, str], ...] = (),
    traffic: str = "noise",
) -> BodySet:
    """Bodies of ``rows`` rows each, cut from a pool of ``distinct_rows`` distinct rows (at least
    two bodies); senders rotate them. ``shape`` (see ``SHAPES``): for the collector shapes
    ``nodes`` are the workspace's (uuid, address) pairs and the pool is their history in time
    order (metrics only)."""
    count = max(2, -(-distinct_rows // rows))
    if shape == "node-key":
        pool = row_pool(kind, seed, max(distinct_rows, count * rows))
    elif shape in SHAPES and kind == "metrics":
        column = shape.split("-", 1)[1]
        pool = fleet_metrics_pool(
            max(distinct_rows, count * rows), seed, nodes, column, traffic=traffic
        )
    else:
        raise ValueError(f"unknown shape {shape!r} for {kind}")
    bodies = tuple(encode(pool.slice(i * rows, rows), compression) for i in range(count))
    return BodySet(kind, rows, compression, bodies)
