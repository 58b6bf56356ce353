"""The node-second frame: the detector's only input.

One row per (node, second). ``from_metrics`` turns a lake metrics table into it (a rename and a
few casts: the metrics rows already are node-seconds); ``from_flows`` aggregates sampled flow
records into node-seconds, adding the detail only flows have (GRE/ESP/DNS rates, the top source
and destination port and their packet shares, PSH/URG rates).

Flow conventions, since flow records carry no fragment bit: a TCP or UDP record with both ports
0 is counted as a fragment (non-first fragments carry no L4 header, which is how collectors
report them). TCP flags follow the metrics columns: ``syn_pps`` counts SYN without ACK,
``ack_pps`` ACK without SYN. ``packets`` and ``bytes`` already stand for traffic before sampling.

``normalize`` is what the engine runs first on every frame: ``conform`` (absent optional columns
added as nulls, casts, ``ftagent-replay`` and unknown sources dropped), then duplicated (node,
second) rows merged into one (metrics counters win over flow-made counters, the higher packet
rate wins, flow detail fills in), so duplicates count once. A caller that concatenates many
frames before the engine sees them (the server's detection pass) conforms each part and leaves
the merge to the engine, once over the whole pass.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from detect.settings import SERIES_NAMES

__all__ = [
    "FLOW_DETAIL",
    "NODE_SECOND_SCHEMA",
    "RATE_COLUMNS",
    "SERIES",
    "conform",
    "from_flows",
    "from_metrics",
    "normalize",
]

#: Series that get a baseline of their own (declared with the settings that turn them off).
SERIES: tuple[str, ...] = SERIES_NAMES

RATE_COLUMNS: tuple[str, ...] = SERIES
FLOW_DETAIL: tuple[str, ...] = (
    "gre_pps",
    "esp_pps",
    "dns_pps",
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
    "psh_pps",
    "urg_pps",
)

_UTC_US = pl.Datetime("us", "UTC")

NODE_SECOND_SCHEMA: dict[str, pl.DataType] = {
    "workspace": pl.String(),
    "node": pl.String(),
    "time": _UTC_US,
    "source": pl.String(),
    **{name: pl.Float64() for name in SERIES},
    "gre_pps": pl.Float64(),
    "esp_pps": pl.Float64(),
    "dns_pps": pl.Float64(),
    "top_src_port": pl.Int32(),
    "top_src_port_share": pl.Float64(),
    "top_dst_port": pl.Int32(),
    "top_dst_port_share": pl.Float64(),
    "psh_pps": pl.Float64(),
    "urg_pps": pl.Float64(),
}

_KNOWN_SOURCES = ("arrow", "ftagent", "flows")
_PRIORITY = {"arrow": 0, "ftagent": 1, "flows": 2}


def _to_polars(table: Any) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table
    if isinstance(table, pa.Table | pa.RecordBatch):
        out = pl.from_arrow(table)
        assert isinstance(out, pl.DataFrame)
        return out
    raise TypeError(f"expected a polars DataFrame or an Arrow table, got {type(table).__name__}")


def _time_to_second(expr: pl.Expr) -> pl.Expr:
    return expr.cast(_UTC_US).dt.truncate("1s")


def from_metrics(table: Any, workspace: str, merge: bool = True) -> pl.DataFrame:
    """A lake metrics table (``node_uuid``, ``source``, ``time``, ``pps``...) as node-seconds;
    with ``merge`` False, conformed but with duplicated seconds left for the engine to merge."""
    df = _to_polars(table)
    if "node_uuid" in df.columns and "node" not in df.columns:
        df = df.rename({"node_uuid": "node"})
    if "time" in df.columns and df.schema["time"] != _UTC_US:
        dtype = df.schema["time"]
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            df = df.with_columns(pl.col("time").dt.replace_time_zone("UTC"))
    df = df.with_columns(pl.lit(workspace, pl.String()).alias("workspace"))
    if "source" not in df.columns:
        df = df.with_columns(pl.lit("arrow", pl.String()).alias("source"))
    return normalize(df) if merge else conform(df)


def from_flows(table: Any, workspace: str) -> pl.DataFrame:
    """Sampled flow records aggregated to node-seconds (``source`` = ``flows``)."""
    df = _to_polars(table)
    if "node_uuid" in df.columns and "node" not in df.columns:
        df = df.rename({"node_uuid": "node"})
    if df.height == 0:
        return normalize(pl.DataFrame(schema=NODE_SECOND_SCHEMA))
    for name, dtype in (
        ("src_port", pl.Int32()),
        ("dst_port", pl.Int32()),
        ("tcp_flags", pl.Int16()),
        ("src_ip", pl.String()),
    ):
        if name not in df.columns:
            df = df.with_columns(pl.lit(None, dtype).alias(name))
    tdt = df.schema["time"]
    if isinstance(tdt, pl.Datetime) and tdt.time_zone is None:
        df = df.with_columns(pl.col("time").dt.replace_time_zone("UTC"))
    pk = pl.col("packets").cast(pl.Float64())
    proto = pl.col("protocol").cast(pl.Int32())
    flags = pl.col("tcp_flags").cast(pl.Int32()).fill_null(0)
    sport = pl.col("src_port").cast(pl.Int32()).fill_null(0)
    dport = pl.col("dst_port").cast(pl.Int32()).fill_null(0)
    tcp = proto == 6
    udp = proto == 17
    df = df.with_columns(
        _time_to_second(pl.col("time")).alias("time"),
        pk.alias("_pk"),
        proto.alias("_proto"),
        flags.alias("_flags"),
        sport.alias("_sport"),
        dport.alias("_dport"),
        (tcp | udp).alias("_l4"),
    )
    fl = pl.col("_flags")

    def _sum_where(cond: pl.Expr) -> pl.Expr:
        return pl.when(cond).then(pl.col("_pk")).otherwise(0.0).sum()

    keys = ["node", "time"]
    agg = df.group_by(keys).agg(
        pl.col("_pk").sum().alias("pps"),
        (pl.col("bytes").cast(pl.Float64()).sum() * 8.0).alias("bps"),
        (pl.col("bytes").cast(pl.Float64()).sum()).alias("_bytes"),
        _sum_where(pl.col("_proto") == 6).alias("tcp_pps"),
        _sum_where(pl.col("_proto") == 17).alias("udp_pps"),
        _sum_where(pl.col("_proto").is_in([1, 58])).alias("icmp_pps"),
        _sum_where(~pl.col("_proto").is_in([1, 6, 17, 58])).alias("other_pps"),
        _sum_where(tcp & ((fl & 0x12) == 0x02)).alias("syn_pps"),
        _sum_where(tcp & ((fl & 0x12) == 0x10)).alias("ack_pps"),
        _sum_where(tcp & ((fl & 0x04) != 0)).alias("rst_pps"),
        _sum_where(tcp & ((fl & 0x01) != 0)).alias("fin_pps"),
        _sum_where(tcp & ((fl & 0x08) != 0)).alias("psh_pps"),
        _sum_where(tcp & ((fl & 0x20) != 0)).alias("urg_pps"),
        _sum_where(pl.col("_l4") & (pl.col("_sport") == 0) & (pl.col("_dport") == 0)).alias(
            "frag_pps"
        ),
        _sum_where(pl.col("_proto") == 47).alias("gre_pps"),
        _sum_where(pl.col("_proto") == 50).alias("esp_pps"),
        _sum_where(udp & ((pl.col("_sport") == 53) | (pl.col("_dport") == 53))).alias("dns_pps"),
        pl.col("src_ip").n_unique().cast(pl.Float64()).alias("distinct_sources"),
    )
    ports = []
    for col, name in (("_sport", "src"), ("_dport", "dst")):
        per = (
            df.filter(pl.col("_l4") & (pl.col(col) != 0))
            .group_by([*keys, col])
            .agg(pl.col("_pk").sum().alias("_p"))
            .sort([*keys, "_p", col], descending=[False, False, True, False])
            .group_by(keys)
            .agg(
                pl.col(col).first().cast(pl.Int32()).alias(f"top_{name}_port"),
                pl.col("_p").first().alias(f"_top_{name}"),
            )
        )
        ports.append(per)
    for per in ports:
        agg = agg.join(per, on=keys, how="left")
    agg = agg.with_columns(
        (pl.col("_bytes") / pl.col("pps")).fill_nan(None).alias("avg_pkt_len"),
        (pl.col("_top_src") / pl.col("pps")).fill_nan(None).alias("top_src_port_share"),
        (pl.col("_top_dst") / pl.col("pps")).fill_nan(None).alias("top_dst_port_share"),
        pl.lit(workspace, pl.String()).alias("workspace"),
        pl.lit("flows", pl.String()).alias("source"),
    ).drop("_bytes", "_top_src", "_top_dst")
    return normalize(agg)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame in ``NODE_SECOND_SCHEMA``: absent optional columns as nulls, casts, rows without
    node or time and of unknown sources dropped. Duplicated seconds stay (``normalize``)."""
    df = frame
    if "source" in df.columns:
        df = df.filter(pl.col("source").is_in(_KNOWN_SOURCES))
    else:
        df = df.with_columns(pl.lit("arrow", pl.String()).alias("source"))
    if "workspace" not in df.columns:
        df = df.with_columns(pl.lit("", pl.String()).alias("workspace"))
    exprs = []
    for name, dtype in NODE_SECOND_SCHEMA.items():
        if name in df.columns:
            if name == "time":
                tdt = df.schema["time"]
                base = pl.col("time")
                if isinstance(tdt, pl.Datetime) and tdt.time_zone is None:
                    base = base.dt.replace_time_zone("UTC")
                exprs.append(_time_to_second(base).alias("time"))
            elif df.schema[name] != dtype:
                exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
    if exprs:
        df = df.with_columns(exprs)
    df = df.select(list(NODE_SECOND_SCHEMA))
    df = df.filter(pl.col("node").is_not_null() & pl.col("time").is_not_null())
    # a pass joined from many batches arrives in as many chunks per column; every join,
    # filter and gather after this is several times slower on those than on one copy
    return df.with_columns(pl.col("pps").fill_null(0.0), pl.col("bps").fill_null(0.0)).rechunk()


def normalize(frame: pl.DataFrame) -> pl.DataFrame:
    """Conform a node-second frame to ``NODE_SECOND_SCHEMA`` and merge its duplicated seconds
    (see the module docstring)."""
    df = conform(frame)
    if df.height:
        # Rows whose (node, second) hash repeats go through the (slower) exact merge: every
        # true duplicate is among them, and a row there only by a hash collision comes out of
        # the merge as it went in. Hashing two columns apart and combining them is several
        # times cheaper than testing the (node, time) pairs themselves.
        key = pl.col("node").hash(7) ^ pl.col("time").dt.epoch("us").hash(11)
        if df.select(key.n_unique()).item() < df.height:  # counting is cheaper than marking
            dup = df.select(key.is_duplicated()).to_series()
            df = pl.concat([df.filter(~dup), _merge_duplicates(df.filter(dup))], how="vertical")
    return df


def _merge_duplicates(df: pl.DataFrame) -> pl.DataFrame:
    prio = pl.col("source").replace_strict(_PRIORITY, default=3, return_dtype=pl.Int32())
    df = df.with_columns(prio.alias("_prio")).sort(["node", "time", "_prio"])
    aggs: list[pl.Expr] = [pl.col("workspace").first(), pl.col("source").first()]
    for name in NODE_SECOND_SCHEMA:
        if name in ("workspace", "node", "time", "source"):
            continue
        if name == "pps":
            aggs.append(pl.col("pps").max())
        else:
            aggs.append(pl.col(name).drop_nulls().first())
    out = df.group_by(["node", "time"], maintain_order=True).agg(aggs)
    return out.select(list(NODE_SECOND_SCHEMA))
