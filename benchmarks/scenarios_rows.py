"""The rows of a detection scenario (``benchmarks.detect_scenarios``): the node-second frame
schema (the detector's input), one node's rows for a span of seconds (benign traffic, benign
events and the attacks added to it, with per-second noise from polars hashes), and the
wire-format ``metrics``/``flows`` tables of a frame (``docs/wire-format.md``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from benchmarks.scenarios_benign import NodeProfile, expected_expr

if TYPE_CHECKING:
    from benchmarks.detect_scenarios import Scenario

FLOAT_COLUMNS = [
    "pps",
    "bps",
    "tcp_pps",
    "udp_pps",
    "icmp_pps",
    "other_pps",
    "syn_pps",
    "ack_pps",
    "rst_pps",
    "fin_pps",
    "frag_pps",
    "avg_pkt_len",
]
FLOW_FLOAT_COLUMNS = ["gre_pps", "esp_pps", "dns_pps", "psh_pps", "urg_pps"]
SCHEMA: dict[str, Any] = {
    "workspace": pl.Utf8,
    "node": pl.Utf8,
    "time": pl.Datetime("us", "UTC"),
    "source": pl.Utf8,
    **{c: pl.Float64 for c in FLOAT_COLUMNS},
    "distinct_sources": pl.Int64,
    **{c: pl.Float64 for c in FLOW_FLOAT_COLUMNS},
    "top_src_port": pl.Int32,
    "top_src_port_share": pl.Float64,
    "top_dst_port": pl.Int32,
    "top_dst_port_share": pl.Float64,
}

# the flow-only columns: null in a metrics row
FLOW_DETAIL_COLUMNS = [
    *FLOW_FLOAT_COLUMNS,
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
]
# the per-packet columns an attack's recipe may give a share of its packets to
ATTACK_MIX_COLUMNS = (
    "tcp",
    "udp",
    "icmp",
    "other",
    "syn",
    "ack",
    "rst",
    "fin",
    "psh",
    "frag",
    "gre",
    "esp",
    "dns",
)
_STREAMS = {
    "slow": 1,
    "mid": 2,
    "white": 3,
    "mix": 4,
    "flags": 5,
    "len": 6,
    "src": 7,
    "gap": 8,
    "port": 9,
    "attack": 10,
}


# ---------------------------------------------------------------------------------------------
# randomness as polars expressions


def _stream_seed(seed: int, node_index: int, stream: int) -> int:
    return (seed * 1_000_003 + node_index * 7919 + stream * 104_729) % (2**61 - 1)


def _uniform(expr: pl.Expr, key: int) -> pl.Expr:
    """Uniform in (0, 1], a pure function of ``expr`` (Int64) and ``key``."""
    return ((expr.hash(seed=key) // 2048).cast(pl.Float64) + 1.0) / float(2**53)


def _normal(expr: pl.Expr, key: int) -> pl.Expr:
    u1 = _uniform(expr, key)
    u2 = _uniform(expr, key + 1)
    return (-2.0 * u1.log()).sqrt() * (2 * math.pi * u2).cos()


def _value_noise(t: pl.Expr, period: int, key: int) -> pl.Expr:
    k = t // period
    f = (t % period).cast(pl.Float64) / period
    return _normal(k, key) * (1.0 - f) + _normal(k + 1, key) * f


# ---------------------------------------------------------------------------------------------
# rows


def node_block(scen: Scenario, p: NodeProfile, t_lo: int, t_hi: int) -> pl.DataFrame:
    """The rows of node ``p`` for epoch seconds [t_lo, t_hi)."""
    t = pl.col("ts")

    def key(stream: str) -> int:
        return _stream_seed(scen.seed, p.index, _STREAMS[stream])

    def span_mask(a: datetime, b: datetime) -> pl.Expr:
        return (t >= int(a.timestamp())) & (t <= int(b.timestamp()))

    attacks = [
        a
        for a in scen.attacks
        if a.node == p.node and int(a.onset.timestamp()) < t_hi and int(a.end.timestamp()) >= t_lo
    ]
    events = [
        e
        for e in scen.events
        if e.node == p.node
        and int(e.start.timestamp()) < t_hi + 2
        and int(e.end.timestamp()) >= t_lo - 2
    ]
    df = pl.DataFrame({"ts": pl.int_range(t_lo, t_hi, eager=True, dtype=pl.Int64)})

    # presence: silences, restarts, random 2-s gaps (never within an attack)
    keep = pl.lit(True)
    for e in events:
        if e.kind in ("silence", "restart"):
            keep = keep & ~span_mask(e.start, e.end)
    gap = _uniform(t // 2, key("gap")) < 1 / 2000
    in_attack = pl.lit(False)
    for a in scen.attacks:
        a0, a1 = int(a.onset.timestamp()) - 10, int(a.end.timestamp()) + 10
        if a.node == p.node and a0 < t_hi and a1 >= t_lo:
            in_attack = in_attack | ((t >= a0) & (t <= a1))
    keep = keep & (~gap | in_attack)

    noise = (
        p.noise_slow * _value_noise(t, 300, key("slow"))
        + p.noise_mid * _value_noise(t, 20, key("mid"))
        + p.noise_white * _normal(t, key("white"))
    )
    factor = pl.lit(1.0)
    ds_factor = pl.lit(1.0)
    backup_pps = pl.lit(0.0)
    for e in events:
        s, en = int(e.start.timestamp()), int(e.end.timestamp())
        if e.kind == "flash_crowd":
            down = 300
            up = (t - s + 1).cast(pl.Float64) / e.ramp_secs
            dn = (en - t + 1).cast(pl.Float64) / down
            shape = pl.min_horizontal(pl.lit(1.0), up, dn).clip(0.0, 1.0)
            f = 1.0 + (e.factor - 1.0) * shape
            factor = factor * pl.when((t >= s) & (t <= en)).then(f).otherwise(1.0)
            ds_factor = ds_factor * pl.when((t >= s) & (t <= en)).then(f**0.4).otherwise(1.0)
        elif e.kind == "spike":
            factor = factor * pl.when((t >= s) & (t <= en)).then(e.factor).otherwise(1.0)
        elif e.kind == "restart":
            factor = factor * pl.when(t == en + 1).then(0.5).otherwise(1.0)
        elif e.kind == "backup":
            kp = min(2.5, 1 + (e.factor - 1) * p.avg_len / 1400)
            backup_pps = backup_pps + pl.when((t >= s) & (t <= en)).then(
                (kp - 1) * expected_expr(p, t)
            ).otherwise(0.0)

    df = df.filter(keep)
    benign = expected_expr(p, t) * (noise - 0.5 * (p.noise_slow**2 + p.noise_white**2)).exp()
    benign = benign * factor

    def jit(stream: str, sigma: float) -> pl.Expr:
        return (sigma * _normal(t, key(stream))).exp()

    df = df.with_columns(b=benign, bk=backup_pps)
    b = pl.col("b")
    tcp_share = (p.tcp * jit("mix", 0.03)).clip(0.0, 1.0 - p.icmp - p.other)
    df = df.with_columns(
        tcp_b=b * tcp_share,
        icmp_b=b * p.icmp * jit("flags", 0.1),
        other_b=b * p.other,
        len_b=p.avg_len * jit("len", 0.05),
        ds_b=b / p.pkts_per_source * jit("src", 0.1) * ds_factor,
    ).with_columns(udp_b=(b - pl.col("tcp_b") - pl.col("icmp_b") - pl.col("other_b")).clip(0.0))
    tcpb = pl.col("tcp_b")
    cols: dict[str, pl.Expr] = {
        "tcp": tcpb + pl.col("bk"),
        "udp": pl.col("udp_b"),
        "icmp": pl.col("icmp_b"),
        "other": pl.col("other_b"),
        "syn": tcpb * p.syn * jit("flags", 0.15),
        "ack": tcpb * p.ack + pl.col("bk") * 0.6,
        "rst": tcpb * p.rst,
        "fin": tcpb * p.fin,
        "psh": tcpb * p.psh + pl.col("bk") * 0.4,
        "urg": pl.lit(0.0),
        "frag": b * p.frag,
        "gre": pl.col("other_b") * p.gre_of_other,
        "esp": pl.col("other_b") * (1 - p.gre_of_other),
        "dns": pl.col("udp_b") * p.dns_of_udp,
        "bytes": b * pl.col("len_b") + pl.col("bk") * 1400.0,
        "ds": pl.col("ds_b") + pl.when(pl.col("bk") > 0).then(1.0).otherwise(0.0),
    }
    # top ports: candidates (port expr, packet count expr)
    ephemeral = (32768 + _uniform(t, key("port")) * 28000).floor().cast(pl.Int32)
    if p.fixed_src_port is not None:
        src_cands = [(pl.lit(p.fixed_src_port, pl.Int32), b * p.fixed_src_share)]
    else:
        src_cands = [(ephemeral, b * 0.004 * jit("port", 0.3))]
    dst_fixed: dict[int, pl.Expr] = {p.service_port: b * p.service_share * jit("port", 0.05)}
    src_fixed: dict[int, pl.Expr] = {}
    backup_port = 873 if p.index % 2 else 22
    dst_fixed[backup_port] = dst_fixed.get(backup_port, pl.lit(0.0)) + pl.col("bk")

    for a in attacks:
        r = scen._attack_mix[a.attack_id]
        on, en = int(a.onset.timestamp()), int(a.end.timestamp())
        rel = t - on
        if a.shape == "ramp":
            shape = ((rel + 1).cast(pl.Float64) / a.ramp_secs).clip(0.0, 1.0)
        elif a.shape == "pulsed":
            period = a.pulse_on_secs + a.pulse_off_secs
            shape = pl.when(rel % period < a.pulse_on_secs).then(1.0).otherwise(0.0)
        else:
            shape = pl.lit(1.0)
        amount = (
            pl.when((t >= on) & (t <= en))
            .then(a.attack_pps * shape * (0.05 * _normal(t, key("attack") + 17 * on)).exp())
            .otherwise(0.0)
        )
        for c in ATTACK_MIX_COLUMNS:
            if r.get(c):
                cols[c] = cols[c] + amount * r[c]
        cols["bytes"] = cols["bytes"] + amount * r["len"]
        cols["ds"] = cols["ds"] + amount / 1000 * r["sources_per_kpps"]
        if r.get("src_port"):
            port = int(r["src_port"])
            src_fixed[port] = src_fixed.get(port, pl.lit(0.0)) + amount * r["src_share"]
        if r.get("dst_port"):
            port = int(r["dst_port"])
            dst_fixed[port] = dst_fixed.get(port, pl.lit(0.0)) + amount * r["dst_share"]
    src_cands += [(pl.lit(k, pl.Int32), v) for k, v in src_fixed.items()]
    dst_cands = [(pl.lit(k, pl.Int32), v) for k, v in dst_fixed.items()]

    df = df.with_columns(**{f"c_{k}": v for k, v in cols.items()})
    pps = (pl.col("c_tcp") + pl.col("c_udp") + pl.col("c_icmp") + pl.col("c_other")).alias("pps")
    df = df.with_columns(pps)
    out: dict[str, pl.Expr] = {
        "workspace": pl.lit(p.workspace),
        "node": pl.lit(p.node),
        "time": pl.from_epoch(t, time_unit="s").dt.cast_time_unit("us").dt.replace_time_zone("UTC"),
        "source": pl.lit("flows" if p.has_flows else "arrow"),
        "pps": pl.col("pps"),
        "bps": pl.col("c_bytes") * 8.0,
        "tcp_pps": pl.col("c_tcp"),
        "udp_pps": pl.col("c_udp"),
        "icmp_pps": pl.col("c_icmp"),
        "other_pps": pl.col("c_other"),
        "syn_pps": pl.col("c_syn"),
        "ack_pps": pl.col("c_ack"),
        "rst_pps": pl.col("c_rst"),
        "fin_pps": pl.col("c_fin"),
        "frag_pps": pl.col("c_frag"),
        "avg_pkt_len": pl.col("c_bytes") / pl.col("pps"),
        "distinct_sources": pl.col("c_ds").round(0).cast(pl.Int64),
    }
    if p.has_flows:
        src_port, src_share = _top(src_cands)
        dst_port, dst_share = _top(dst_cands)
        out |= {
            "gre_pps": pl.col("c_gre"),
            "esp_pps": pl.col("c_esp"),
            "dns_pps": pl.col("c_dns"),
            "psh_pps": pl.col("c_psh"),
            "urg_pps": pl.col("c_urg"),
            "top_src_port": src_port,
            "top_src_port_share": (src_share / pl.col("pps")).clip(0.0, 1.0),
            "top_dst_port": dst_port,
            "top_dst_port_share": (dst_share / pl.col("pps")).clip(0.0, 1.0),
        }
    else:
        out |= {c: pl.lit(None, SCHEMA[c]) for c in FLOW_DETAIL_COLUMNS}
    block = df.select(**{c: out[c].cast(SCHEMA[c]) for c in SCHEMA})
    if p.feed != "both":
        return block
    metrics = block.with_columns(
        pl.lit("arrow").alias("source"),
        *(pl.lit(None, SCHEMA[c]).alias(c) for c in FLOW_DETAIL_COLUMNS),
    )
    return pl.concat([metrics, block]).sort("time", "source")


def _top(cands: list[tuple[pl.Expr, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    port, count = cands[0]
    for p2, c2 in cands[1:]:
        better = c2 > count
        port = pl.when(better).then(p2).otherwise(port)
        count = pl.when(better).then(c2).otherwise(count)
    return port, count


# ---------------------------------------------------------------------------------------------
# wire-format tables (docs/wire-format.md) for end-to-end tests


def wire_tables(frame: pl.DataFrame, sampling_rate: int = 1000) -> tuple[pa.Table, pa.Table]:
    """The ``metrics`` table (one row per node-second, collector form with a ``node`` column)
    and a ``flows`` table of sampled records (one record per traffic class and second) for the
    flow nodes of ``frame``. Flow records' ``packets``/``bytes`` stand for traffic before
    sampling, so summing them per second gives back the frame's rates."""
    metrics = (
        frame.unique(["node", "time"], keep="first", maintain_order=True)
        .select(
            "time",
            "node",
            *FLOAT_COLUMNS,
            pl.col("distinct_sources").cast(pl.Int64),
        )
        .to_arrow()
    )
    flows = frame.filter(pl.col("source") == "flows")
    parts: list[pl.DataFrame] = []
    common = [
        pl.col("time"),
        pl.col("node"),
        pl.lit(sampling_rate, pl.Int64).alias("sampling_rate"),
    ]
    avg = pl.col("avg_pkt_len")

    def part(
        pkts: pl.Expr, proto: int, flags: int, sport: pl.Expr, dport: pl.Expr, src: str
    ) -> pl.DataFrame:
        return flows.select(
            *common,
            pl.lit(src).alias("src_ip"),
            pl.lit("192.0.2.1").alias("dst_ip"),
            sport.cast(pl.Int32).alias("src_port"),
            dport.cast(pl.Int32).alias("dst_port"),
            pl.lit(proto, pl.Int16).alias("protocol"),
            pl.lit(flags, pl.Int16).alias("tcp_flags"),
            pkts.round(0).cast(pl.Int64).alias("packets"),
            (pkts * avg).round(0).cast(pl.Int64).alias("bytes"),
            avg.round(0).clip(20, 65535).cast(pl.Int32).alias("packet_len"),
            pl.lit(64, pl.Int16).alias("ttl"),
        )

    top_src = pl.col("top_src_port").fill_null(0)
    top_dst = pl.col("top_dst_port").fill_null(0)
    top_src_pkts = pl.col("top_src_port_share").fill_null(0) * pl.col("pps")
    rest_udp = (pl.col("udp_pps") - pl.col("dns_pps") - top_src_pkts).clip(0)
    tcp_rest = (
        pl.col("tcp_pps")
        - pl.col("syn_pps")
        - pl.col("ack_pps")
        - pl.col("rst_pps")
        - pl.col("fin_pps")
        - pl.col("psh_pps")
    ).clip(0)
    parts += [
        part(pl.col("syn_pps"), 6, 0x02, pl.lit(40000), top_dst, "198.51.100.1"),
        part(pl.col("ack_pps"), 6, 0x10, pl.lit(40001), top_dst, "198.51.100.2"),
        part(pl.col("rst_pps"), 6, 0x04, pl.lit(40002), top_dst, "198.51.100.3"),
        part(pl.col("fin_pps"), 6, 0x01, pl.lit(40003), top_dst, "198.51.100.4"),
        part(pl.col("psh_pps"), 6, 0x18, pl.lit(40004), top_dst, "198.51.100.5"),
        part(tcp_rest, 6, 0x00, pl.lit(40005), top_dst, "198.51.100.6"),
        part(pl.col("dns_pps"), 17, 0, pl.lit(40006), pl.lit(53), "198.51.100.7"),
        part(top_src_pkts.clip(0), 17, 0, top_src, pl.lit(40007), "203.0.113.8"),
        part(rest_udp, 17, 0, pl.lit(40008), top_dst, "198.51.100.9"),
        part(pl.col("icmp_pps"), 1, 0, pl.lit(0), pl.lit(0), "198.51.100.10"),
        part(pl.col("gre_pps"), 47, 0, pl.lit(0), pl.lit(0), "198.51.100.11"),
        part(pl.col("esp_pps"), 50, 0, pl.lit(0), pl.lit(0), "198.51.100.12"),
    ]
    table = pl.concat(parts).filter(pl.col("packets") > 0).sort("time", "node").to_arrow()
    return metrics, table
