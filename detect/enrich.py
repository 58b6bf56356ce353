"""Incident enrichment: what the sampled flows of one node say about an attack.

:func:`flow_breakdown` summarizes the lake-form ``flows`` rows of one node over a time window
(the wire format's flows columns, ``docs/wire-format.md``). ``packets`` and ``bytes`` already
stand for the traffic before sampling, so they are summed as they are; ``sampling_rate`` is not
used. Every share is a percentage (0-100, two decimals) of the window's packets unless said
otherwise. Missing columns and nulls are tolerated: a row with a null ``packets`` counts 0.

No I/O: the only outside call is the :class:`detect.geo.GeoLookup` passed in, asked about the
heaviest ``geo_limit`` distinct sources only (a spoofed flood has millions of them); the share of
packets whose source was looked up is ``geo_coverage_pct``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from detect.classify import AMPLIFICATION_PORTS

if TYPE_CHECKING:
    from detect.geo import GeoLookup

__all__ = [
    "AMPLIFICATION_PORTS",
    "DEFAULT_GEO_LIMIT",
    "amplification_port",
    "empty_breakdown",
    "flow_breakdown",
]

DEFAULT_GEO_LIMIT = 5_000
_TTL_TOP = 5

_TCP, _UDP, _ICMP, _ICMP6 = 6, 17, 1, 58
_FIN, _SYN, _RST, _PSH, _ACK, _URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

_COLUMNS: dict[str, pl.DataType] = {
    "src_ip": pl.String(),
    "src_port": pl.Int32(),
    "dst_port": pl.Int32(),
    "protocol": pl.Int32(),
    "tcp_flags": pl.Int32(),
    "packets": pl.Int64(),
    "bytes": pl.Int64(),
    "ttl": pl.Int32(),
}
_FLAG_KEYS = ("syn", "syn_ack", "ack", "rst", "fin", "psh", "urg")


def _pct(part: float, total: float) -> float:
    return round(100.0 * part / total, 2) if total > 0 else 0.0


def empty_breakdown() -> dict[str, Any]:
    """The breakdown of a window without traffic."""
    return {
        "records": 0,
        "total_packets": 0,
        "total_bytes": 0,
        "protocol_breakdown": {"tcp": 0.0, "udp": 0.0, "icmp": 0.0, "other": 0.0},
        "tcp_flags": dict.fromkeys(_FLAG_KEYS, 0.0),
        "fragments_pct": 0.0,
        "top_sources": [],
        "source_ip_count": 0,
        "top_src_ports": [],
        "top_dst_ports": [],
        "geo_origin": [],
        "asns": [],
        "geo_coverage_pct": 0.0,
        "avg_pkt_len": None,
        "ttl": [],
    }


def _prepare(flows: pl.DataFrame) -> pl.DataFrame:
    """The columns used, with fixed types; absent columns become nulls, bad values nulls."""
    exprs: list[pl.Expr] = []
    for name, dtype in _COLUMNS.items():
        if name in flows.columns:
            col = pl.col(name)
            if name == "src_ip":
                col = col.cast(pl.String, strict=False)
            else:
                col = col.cast(dtype, strict=False)
            exprs.append(col.alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    df = flows.select(exprs)
    # Counters: null or negative counts nothing.
    return df.with_columns(
        pl.col("packets").fill_null(0).clip(lower_bound=0),
        pl.col("bytes").fill_null(0).clip(lower_bound=0),
    )


def _top_ports(df: pl.DataFrame, col: str, top: int, total: int) -> list[dict[str, Any]]:
    grouped = (
        df.filter(pl.col("protocol").is_in([_TCP, _UDP]) & pl.col(col).is_not_null())
        .group_by(col)
        .agg(pl.col("packets").sum())
        .filter(pl.col("packets") > 0)
        .sort(["packets", col], descending=[True, False])
        .head(top)
    )
    return [
        {"port": int(port), "packets": int(pk), "share": _pct(pk, total)}
        for port, pk in grouped.iter_rows()
    ]


def _heaviest(sources: pl.DataFrame, k: int) -> pl.DataFrame:
    """The ``k`` heaviest sources, by packets then address (deterministic on ties)."""
    by, desc = ["packets", "src_ip"], [True, False]
    if sources.height <= k:
        return sources.sort(by, descending=desc)
    return sources.top_k(k, by=by, reverse=[False, True]).sort(by, descending=desc)


def _geo(
    heavy: pl.DataFrame, geo: GeoLookup, total: int, top: int
) -> tuple[pl.DataFrame, list[dict[str, Any]], list[dict[str, Any]], float]:
    """Geo columns for the heaviest sources; countries and ASNs of their packets."""
    ips = heavy.get_column("src_ip").to_list()
    answers = geo.lookup_many(ips)
    table = pl.DataFrame(
        {
            "src_ip": ips,
            "country": [answers[ip][0] for ip in ips],
            "asn": [answers[ip][1] for ip in ips],
            "as_org": [answers[ip][2] for ip in ips],
        },
        schema={"src_ip": pl.String, "country": pl.String, "asn": pl.Int64, "as_org": pl.String},
    )
    located = heavy.join(table, on="src_ip", how="left")
    covered = int(located.get_column("packets").sum())
    by_country = (
        located.group_by("country")
        .agg(pl.col("packets").sum())
        .filter(pl.col("packets") > 0)
        .sort(["packets", "country"], descending=[True, False], nulls_last=True)
    )
    countries = [
        {"country": c, "packets": int(pk), "share": _pct(pk, total)}
        for c, pk in by_country.iter_rows()
    ]
    by_as = (
        located.filter(pl.col("asn").is_not_null() | pl.col("as_org").is_not_null())
        .group_by(["asn", "as_org"])
        .agg(pl.col("packets").sum())
        .filter(pl.col("packets") > 0)
        .sort(["packets", "asn", "as_org"], descending=[True, False, False], nulls_last=True)
        .head(top)
    )
    asns = [
        {"asn": asn, "as_org": org, "packets": int(pk), "share": _pct(pk, total)}
        for asn, org, pk in by_as.iter_rows()
    ]
    return table, countries, asns, _pct(covered, total)


def flow_breakdown(
    flows: pl.DataFrame,
    geo: GeoLookup | None = None,
    top: int = 10,
    *,
    geo_limit: int = DEFAULT_GEO_LIMIT,
) -> dict[str, Any]:
    """Summarize one node's flows rows of a time window.

    Returns a JSON-ready dict:

    - ``records``, ``total_packets``, ``total_bytes``;
    - ``protocol_breakdown``: ``{tcp, udp, icmp, other}`` percent of packets (ICMPv6 is icmp);
    - ``tcp_flags``: percent of the TCP packets whose flags are known that are ``syn`` (SYN
      without ACK), ``syn_ack``, ``ack`` (ACK without SYN), ``rst``, ``fin``, ``psh``, ``urg``.
      A packet may count under several flags, so these do not add up to 100;
    - ``fragments_pct``: percent of packets in TCP or UDP records with both ports 0 (non-first
      fragments carry no ports);
    - ``top_sources``: the ``top`` heaviest sources ``{ip, packets, bytes, share, country, asn,
      as_org}`` (geo fields ``None`` without ``geo``), and ``source_ip_count`` (distinct);
    - ``top_src_ports``, ``top_dst_ports``: ``{port, packets, share}`` over TCP and UDP records;
    - ``geo_origin``: every country ``{country, packets, share}`` of the looked-up sources
      (``country`` ``None`` for private, reserved or unknown space), ``asns``: the ``top`` AS
      ``{asn, as_org, packets, share}``, and ``geo_coverage_pct``: percent of packets whose
      source was looked up (the ``geo_limit`` heaviest sources); empty lists without ``geo``;
    - ``avg_pkt_len``: bytes per packet (``None`` without packets);
    - ``ttl``: the 5 most common TTLs ``{ttl, packets, share}``.
    """
    if top < 0:
        raise ValueError("top must not be negative")
    if flows.height == 0:
        return empty_breakdown()
    df = _prepare(flows)

    proto = pl.col("protocol")
    flags = pl.col("tcp_flags")
    pk = pl.col("packets")
    tcp = proto == _TCP
    known = tcp & flags.is_not_null()

    def has(bit: int) -> pl.Expr:
        return (flags & bit) != 0

    def psum(cond: pl.Expr) -> pl.Expr:
        return pk.filter(cond.fill_null(False)).sum()

    totals = df.select(
        pk.sum().alias("packets"),
        pl.col("bytes").sum().alias("bytes"),
        psum(tcp).alias("tcp"),
        psum(proto == _UDP).alias("udp"),
        psum(proto.is_in([_ICMP, _ICMP6])).alias("icmp"),
        psum(known).alias("tcp_known"),
        psum(known & has(_SYN) & ~has(_ACK)).alias("syn"),
        psum(known & has(_SYN) & has(_ACK)).alias("syn_ack"),
        psum(known & has(_ACK) & ~has(_SYN)).alias("ack"),
        psum(known & has(_RST)).alias("rst"),
        psum(known & has(_FIN)).alias("fin"),
        psum(known & has(_PSH)).alias("psh"),
        psum(known & has(_URG)).alias("urg"),
        psum(
            proto.is_in([_TCP, _UDP]) & (pl.col("src_port") == 0) & (pl.col("dst_port") == 0)
        ).alias("frag"),
    ).row(0, named=True)

    total = int(totals["packets"] or 0)
    out = empty_breakdown()
    out["records"] = df.height
    out["total_packets"] = total
    out["total_bytes"] = int(totals["bytes"] or 0)
    if total == 0:
        out["source_ip_count"] = int(df.get_column("src_ip").drop_nulls().n_unique())
        return out

    tcp_pk, udp_pk, icmp_pk = (int(totals[k] or 0) for k in ("tcp", "udp", "icmp"))
    out["protocol_breakdown"] = {
        "tcp": _pct(tcp_pk, total),
        "udp": _pct(udp_pk, total),
        "icmp": _pct(icmp_pk, total),
        "other": _pct(total - tcp_pk - udp_pk - icmp_pk, total),
    }
    tcp_known = int(totals["tcp_known"] or 0)
    out["tcp_flags"] = {k: _pct(int(totals[k] or 0), tcp_known) for k in _FLAG_KEYS}
    out["fragments_pct"] = _pct(int(totals["frag"] or 0), total)
    out["avg_pkt_len"] = round(out["total_bytes"] / total, 1)

    sources = (
        df.filter(pl.col("src_ip").is_not_null())
        .group_by("src_ip")
        .agg(pk.sum(), pl.col("bytes").sum())
    )
    out["source_ip_count"] = sources.height
    sources = sources.filter(pk > 0)
    head = _heaviest(sources, top)
    if geo is not None and sources.height > 0:
        heavy = _heaviest(sources, max(geo_limit, top))
        table, countries, asns, coverage = _geo(heavy, geo, total, top)
        head = head.join(table, on="src_ip", how="left", maintain_order="left")
        out["geo_origin"] = countries
        out["asns"] = asns
        out["geo_coverage_pct"] = coverage
    else:
        head = head.with_columns(
            pl.lit(None, dtype=pl.String).alias("country"),
            pl.lit(None, dtype=pl.Int64).alias("asn"),
            pl.lit(None, dtype=pl.String).alias("as_org"),
        )
    out["top_sources"] = [
        {
            "ip": row["src_ip"],
            "packets": int(row["packets"]),
            "bytes": int(row["bytes"]),
            "share": _pct(row["packets"], total),
            "country": row["country"],
            "asn": row["asn"],
            "as_org": row["as_org"],
        }
        for row in head.iter_rows(named=True)
    ]

    out["top_src_ports"] = _top_ports(df, "src_port", top, total)
    out["top_dst_ports"] = _top_ports(df, "dst_port", top, total)

    ttls = (
        df.filter(pl.col("ttl").is_not_null())
        .group_by("ttl")
        .agg(pk.sum())
        .filter(pk > 0)
        .sort(["packets", "ttl"], descending=[True, False])
        .head(_TTL_TOP)
    )
    out["ttl"] = [
        {"ttl": int(t), "packets": int(p), "share": _pct(p, total)} for t, p in ttls.iter_rows()
    ]
    return out


def amplification_port(
    top_src_ports: Sequence[Mapping[str, Any]], min_share: float = 50.0
) -> str | None:
    """``<name>_amplification`` when one known reflector source port carries most packets.

    ``top_src_ports`` is :func:`flow_breakdown`'s list (``{port, packets, share}``, share in
    percent); the heaviest port must be a reflector port of :data:`AMPLIFICATION_PORTS` and carry
    more than ``min_share`` percent of the packets.
    """
    best: Mapping[str, Any] | None = None
    for entry in top_src_ports:
        share = entry.get("share")
        if not isinstance(share, int | float):
            continue
        if best is None or share > best["share"]:
            best = entry
    if best is None or best["share"] <= min_share:
        return None
    port = best.get("port")
    if not isinstance(port, int) or isinstance(port, bool):
        return None
    name = AMPLIFICATION_PORTS.get(port)
    return f"{name}_amplification" if name is not None else None
