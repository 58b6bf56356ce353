"""Per-second trigger evidence, vectorized over every row of a pass (the rules are described in
``detect.engine``'s module docstring): ``features`` marks each node-second ``trig`` / ``elev``
with the confirmation it needs, the metric and the mix evidence; ``details`` adds the observed
and excess counters the classifier reads, only for nodes with something going on."""

from __future__ import annotations

import math

import polars as pl

from detect.baseline import LOG_OFFSET
from detect.frames import SERIES
from detect.incident import FLAGS as _FLAGS
from detect.incident import PROTOS as _PROTOS

__all__ = ["DETAIL_INPUT", "FEAT_OUT", "details", "features", "with_params"]


def with_params(df: pl.DataFrame, params: pl.DataFrame, uniform: bool) -> pl.DataFrame:
    """Per-node settings as columns: literals when every node has the same settings (the usual
    case, no join), else a join."""
    cols = [c for c in params.columns if c != "node"]
    if uniform:
        first = params.row(0, named=True)
        return df.with_columns(pl.lit(first[c]).alias(c) for c in cols)
    return df.join(params, on="node", how="left")


_BASE_SERIES = ("pps", "bps", *(f"{k}_pps" for k in (*_PROTOS, *_FLAGS, "frag")))
DETAIL_INPUT = (
    "pps",
    "bps",
    *(f"{k}_pps" for k in (*_PROTOS, *_FLAGS, "frag", "dns", "gre", "esp", "psh", "urg")),
    *(f"E_{s}" for s in _BASE_SERIES),
    *(f"en_{s}" for s in SERIES if s.endswith("_pps")),
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
)
FEAT_OUT = ("trig", "elev", "need", "m_pps", "thr_pps", "metric", "mix", "d_obs", "d_base", "d_thr")


_FEAT_COLS = ("node", "t", "ex_pps", *DETAIL_INPUT, *FEAT_OUT)


#: smallest share distance that counts as one unit of traffic-mix change
_SHARE_FLOOR = 0.10
#: mix evidence from which two triggering seconds confirm, whatever the rate
_NEED2_MIX = 2.0
#: share of the excess packets that must be TCP for the bulk-transfer exemption
_BULK_TCP = 0.5
#: "no new connections" evidence: the excess is at least this TCP, the TCP rate grew at least
#: this much, the SYN rate at most this much
_NO_CONN_TCP = 0.8
_NO_CONN_GROWTH = 2.5
_NO_CONN_SYN = 1.25


def features(df: pl.DataFrame) -> pl.DataFrame:
    """Per-second trigger evidence (see the module docstring), vectorized over all rows.

    Most seconds are nowhere near any threshold: a cheap first stage (log excess of packets and
    bits, excess over the floors) proves for them that neither ``trig`` nor ``elev`` can hold,
    because every threshold is at least ``ln(1 + (m - 1) / 4)`` times the sensitivity factor for
    packets (``ln 1.2`` or ``ln 1.5`` times the factor for elevated) and ``2 ln m`` times the factor
    for bits, whatever the noise, mix and warm-up. Only the remaining candidate rows go through
    the traffic-mix evidence; the result is the same as evaluating every row."""
    c = LOG_OFFSET
    pps = pl.col("pps")
    learned = pl.col("learned")
    sens = pl.col("p_sens") * (1.0 + ((60 - learned).clip(0) / 60.0))
    lm = pl.col("p_mult").log()
    noise = pl.col("N_pps").fill_null(0.0)
    df = df.with_columns(
        pl.col("time").dt.epoch("s").alias("t"),
        ((pps + c["pps"]).log() - pl.col("L_pps")).alias("lx"),
        ((pl.col("bps") + c["bps"]).log() - pl.col("L_bps")).alias("lb"),
        (pps - pl.col("E_pps")).alias("ex_pps"),
        ((pps + c["pps"]) / (pl.col("E_pps") + c["pps"])).alias("m_pps"),
        ((pl.col("L_pps") + pl.max_horizontal(lm, 2.2 * noise) * sens).exp() - c["pps"]).alias(
            "thr_pps"
        ),
    )
    p_sens = pl.col("p_sens")
    low_x = pl.min_horizontal(
        ((pl.col("p_mult") - 1.0) / 4.0 + 1.0).log() * p_sens,
        math.log(1.5) * p_sens,
        pl.lit(math.log(1.2)),
    )
    cand = ((pl.col("ex_pps") >= pl.col("p_floor_pps")) & (pl.col("lx") >= low_x)).fill_null(
        False
    ) | (
        ((pl.col("bps") - pl.col("E_bps")) >= pl.col("p_floor_bps"))
        & (pl.col("lb") >= 2.0 * lm * p_sens)
    ).fill_null(False)
    df = df.with_columns(cand.alias("_cand"))
    hot = df.filter(pl.col("_cand"))
    calm = df.filter(~pl.col("_cand")).with_columns(
        pl.lit(False).alias("trig"),
        pl.lit(False).alias("elev"),
        pl.col("p_confirm").alias("need"),
        pl.lit(None, pl.Float64()).alias("mix"),
        pl.lit("bps").alias("metric"),
        *(pl.lit(None, pl.Float64()).alias(c) for c in ("d_obs", "d_base", "d_thr")),
    )
    calm = calm.select(_FEAT_COLS)
    if hot.height == 0:
        return calm
    return pl.concat([calm, _evidence(hot)], how="vertical_relaxed")


def _evidence(df: pl.DataFrame) -> pl.DataFrame:
    """Trigger evidence (see the module docstring) for the candidate rows of ``features``."""
    c = LOG_OFFSET

    def x(s: str) -> pl.Expr:
        return pl.when(pl.col(f"en_{s}")).then(pl.col(s)).otherwise(None).fill_null(0.0)

    pps = pl.col("pps")
    e_pps = pl.col("E_pps")
    keys = (*_PROTOS, *_FLAGS, "frag")
    # materialized in stages: small expression graphs plan much faster than one big one
    df = df.with_columns(
        *(pl.col(f"E_{k}_pps").fill_null(0.0).alias(f"_e_{k}") for k in keys),
        *(x(f"{k}_pps").alias(f"_x_{k}") for k in keys),
        ((pl.col("bps") - pl.col("E_bps")) / 8.0).clip(0.0).alias("_ex_bytes"),
    )
    e = {k: pl.col(f"_e_{k}") for k in keys}
    xs = {k: pl.col(f"_x_{k}") for k in keys}
    df = df.with_columns(
        pl.sum_horizontal(*(xs[p] for p in _PROTOS)).alias("_pnow"),
        pl.sum_horizontal(*(e[p] for p in _PROTOS)).alias("_pbase"),
        pl.sum_horizontal(*((xs[p] - e[p]).clip(0.0) for p in _PROTOS)).alias("_ex_proto"),
    )
    proto_now = pl.col("_pnow")
    proto_base = pl.col("_pbase")
    tvd = 0.5 * pl.sum_horizontal(*((xs[p] / proto_now - e[p] / proto_base).abs() for p in _PROTOS))
    tvd = pl.when((proto_now > 0) & (proto_base > 0)).then(tvd).otherwise(0.0)
    tvdf = 0.5 * pl.sum_horizontal(*((xs[f] / pps - e[f] / e_pps).abs() for f in _FLAGS))
    both = (pps > 0) & (e_pps > 0)
    tvdf = pl.when(both).then(tvdf).otherwise(0.0)
    dfrag = pl.when(both).then(xs["frag"] / pps - e["frag"] / e_pps).otherwise(0.0)
    dlen = (pl.col("avg_pkt_len") + 1.0).log() - pl.col("L_avg_pkt_len")
    lx = pl.col("lx")
    dsrc = (
        (pl.col("distinct_sources") + c["distinct_sources"]).log() - pl.col("L_distinct_sources")
    ) - lx
    src_on = pl.col("en_distinct_sources")
    ex_pps = pl.col("ex_pps")
    ex = {k: (xs[k] - e[k]).clip(0.0) for k in ("tcp", "syn")}
    ex_proto = pl.col("_ex_proto")
    ex_bytes = pl.col("_ex_bytes")
    # the extra bytes per extra TCP packet: a backup's packets are large, a TCP flood's small
    # (per TCP packet rather than per packet, so the noise of other protocols does not hide it)
    ex_len = ex_bytes / ex["tcp"].clip(1.0)
    bulk_pkts = (
        (ex["tcp"] > _BULK_TCP * ex_proto) & (ex_len > 900.0) & (ex["syn"] < 0.1 * ex["tcp"])
    )
    # the same seen from the bytes, for a transfer that adds few packets: extra bytes in big
    # packets while the TCP share holds and the SYN share does not rise
    bulk_bytes = (
        (ex_bytes > 900.0 * ex_pps.clip(1.0))
        & (xs["tcp"] / pps >= 0.9 * e["tcp"] / e_pps)
        & (xs["syn"] / pps <= e["syn"] / e_pps + 0.03)
    )
    bulk = (bulk_pkts.fill_null(False) | bulk_bytes.fill_null(False)).fill_null(False)
    non_tcp = (ex["tcp"] <= 0.5 * ex_proto).fill_null(False)
    # TCP traffic that grew 2.5x or more while the SYN rate did not follow: a flash crowd brings
    # new visitors (SYNs grow with the traffic), a flood of established-looking packets (PSH/ACK
    # data, ACKs) on a node whose own traffic is ACK-heavy does not, and it leaves the shares
    # almost unchanged. Counts as one unit of mix evidence; backups are exempt through ``bulk``.
    tcp_m = (xs["tcp"] + c["tcp_pps"]) / (e["tcp"] + c["tcp_pps"])
    syn_m = (xs["syn"] + c["syn_pps"]) / (e["syn"] + c["syn_pps"])
    no_new_conns = (
        pl.col("en_syn_pps")
        & (ex["tcp"] >= _NO_CONN_TCP * ex_proto)
        & (tcp_m >= _NO_CONN_GROWTH)
        & (syn_m <= _NO_CONN_SYN)
    ).fill_null(False)
    # materialized in stages (small expression graphs plan much faster than one big one)
    df = df.with_columns(
        tvd.alias("_tvd"),
        tvdf.alias("_tvdf"),
        dfrag.alias("_dfrag"),
        dlen.alias("_dlen"),
        dsrc.alias("_dsrc"),
        bulk.alias("bulk"),
        non_tcp.alias("non_tcp"),
        no_new_conns.alias("_no_conn"),
    )
    q_tcp = pl.max_horizontal(pl.lit(_SHARE_FLOOR), 2.0 * pl.col("Q_tcp").fill_null(0.0))
    q_ack = pl.max_horizontal(pl.lit(_SHARE_FLOOR), 2.0 * pl.col("Q_ack").fill_null(0.0))
    mix_pkt = pl.max_horizontal(
        pl.col("_tvd") / q_tcp,
        pl.col("_tvdf") / q_ack,
        pl.col("_dfrag") / 0.08,
        pl.when(src_on).then(-pl.col("_dsrc") / math.log(1.6)).otherwise(0.0).fill_null(0.0),
        pl.col("_no_conn").cast(pl.Float64()),
        pl.lit(0.0),
    ).fill_nan(0.0)
    df = df.with_columns(mix_pkt.alias("mix_pkt"))
    mix = pl.max_horizontal(
        pl.col("mix_pkt"),
        pl.when(pl.col("en_avg_pkt_len"))
        .then(pl.col("_dlen").abs() / 0.3)
        .otherwise(0.0)
        .fill_null(0.0),
    ).fill_nan(0.0)
    df = df.with_columns(mix.alias("mix"))
    bulk_c = pl.col("bulk")
    learned = pl.col("learned")
    warm = 1.0 + ((60 - learned).clip(0) / 60.0)
    sens = pl.col("p_sens") * warm
    lm = pl.col("p_mult").log()
    noise = pl.col("N_pps").fill_null(0.0)
    mixv = pl.col("mix")
    mult = pl.col("p_mult")
    req = (
        pl.when(mixv >= 3.0)
        .then(pl.max_horizontal(((mult - 1.0) / 4.0 + 1.0).log(), 0.8 * noise))
        .when(mixv >= 2.0)
        .then(pl.max_horizontal(((mult - 1.0) / 2.0 + 1.0).log(), 1.2 * noise))
        .when(mixv >= 1.0)
        .then(pl.max_horizontal(lm, 2.0 * noise))
        .otherwise(pl.max_horizontal(4.0 * lm, 2.2 * noise))
    )
    thr = req * sens
    floor_ok = pl.col("ex_pps") >= pl.col("p_floor_pps")
    ready = learned >= 3
    trig_pps = pl.col("en_pps") & (pl.col("lx") >= thr) & floor_ok & ~bulk_c
    bnoise = pl.col("N_bps").fill_null(0.0)
    thr_b = (
        pl.when(pl.col("mix_pkt") >= 1.0)
        .then(2.0 * lm)
        .otherwise(4.0 * lm)
        .clip(2.2 * bnoise, None)
        * sens
    )
    trig_bps = (
        pl.col("en_bps")
        & pl.col("non_tcp")
        & (pl.col("lb") >= thr_b)
        & ((pl.col("bps") - pl.col("E_bps")) >= pl.col("p_floor_bps"))
        & ~bulk_c
    )
    df = df.with_columns(
        trig_pps.fill_null(False).alias("_tp"),
        trig_bps.fill_null(False).alias("_tb"),
        floor_ok.fill_null(False).alias("_floor"),
    )
    trig_pps = pl.col("_tp")
    floor_ok = pl.col("_floor")
    trig = ready & (pl.col("_tp") | pl.col("_tb"))
    elev_lvl = pl.max_horizontal(pl.lit(math.log(1.5)), 2.5 * noise) * sens
    elev = (
        ready
        & floor_ok.fill_null(False)
        & ~bulk_c
        & ((pl.col("lx") >= elev_lvl) | ((mixv >= 1.0) & (pl.col("lx") >= math.log(1.2))))
    ).fill_null(False)
    m = pl.col("m_pps")
    confirm = pl.col("p_confirm")
    # strong evidence confirms sooner, but never on one second alone: a single second of any
    # size is a spike (a burst, a measurement artefact), not an attack (unless the node's
    # settings ask for one second)
    need = (
        pl.when((m >= 2.5) | (mixv >= _NEED2_MIX))
        .then(pl.min_horizontal(pl.lit(2), confirm))
        .otherwise(confirm)
    )
    by_bps = ~trig_pps & pl.col("_tb")
    # what the detection object reports: the series that fired, its value, its baseline and
    # the threshold it crossed (the packet threshold the traffic mix lowered, not the plain one;
    # never below baseline + floor, which a trigger must also clear)
    thr_p = pl.max_horizontal(
        (pl.col("L_pps") + thr).exp() - c["pps"], pl.col("E_pps") + pl.col("p_floor_pps")
    )
    thr_b_abs = pl.max_horizontal(
        (pl.col("L_bps") + thr_b).exp() - c["bps"], pl.col("E_bps") + pl.col("p_floor_bps")
    )
    return df.with_columns(
        trig.alias("trig"),
        elev.alias("elev"),
        need.fill_null(confirm).alias("need"),
        # the series that fired; a second that fired on neither (elevated, or calm) is judged
        # by its packet rate
        pl.when(by_bps).then(pl.lit("bps")).otherwise(pl.lit("pps")).alias("metric"),
        pl.when(by_bps).then(pl.col("bps")).otherwise(pps).alias("d_obs"),
        pl.when(by_bps).then(pl.col("E_bps")).otherwise(e_pps).alias("d_base"),
        pl.when(by_bps)
        .then(thr_b_abs)
        .when(trig_pps)
        .then(thr_p)
        .otherwise(pl.col("thr_pps"))
        .alias("d_thr"),
    ).select(_FEAT_COLS)


def details(df: pl.DataFrame) -> pl.DataFrame:
    """Classification inputs (observed and excess counters), only for rows of nodes with
    something going on."""

    def x(s: str) -> pl.Expr:
        return pl.when(pl.col(f"en_{s}")).then(pl.col(s)).otherwise(None)

    return df.with_columns(
        *(x(f"{k}_pps").alias(f"x_{k}") for k in (*_PROTOS, *_FLAGS)),
        pl.col("psh_pps").alias("x_psh"),
        pl.col("urg_pps").alias("x_urg"),
        pl.col("top_src_port").is_not_null().alias("has_flows"),
        ((pl.col("bps") - pl.col("E_bps")) / 8.0).clip(0.0).alias("ex_bytes"),
        *(
            (x(f"{k}_pps") - pl.col(f"E_{k}_pps").fill_null(0.0)).clip(0.0).alias(f"ex_{k}")
            for k in (*_PROTOS, *_FLAGS, "frag")
        ),
        pl.col("dns_pps").alias("ex_dns"),
        pl.col("gre_pps").alias("ex_gre"),
        pl.col("esp_pps").alias("ex_esp"),
        pl.col("psh_pps").alias("ex_psh"),
        pl.col("urg_pps").alias("ex_urg"),
    )
