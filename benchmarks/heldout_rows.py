"""Per-second rows of the held-out generator: a node's ``metrics`` frame (every wire column,
benign traffic plus its events and attacks, silences cut out) and, for flow nodes, aggregated
sampled-flow records. The traffic model is in ``heldout_traffic``'s docstring; noise comes from
``pyarrow.compute.random`` with fixed initializers, so the rows are the same for a seed.
"""

from __future__ import annotations

import math

import polars as pl
import pyarrow.compute as pc

from .heldout_traffic import ATTACK_KINDS, ROLES, Event, NodeProfile, Vector, daily, wander, weekly

__all__ = ["node_frames"]


def _uniform(n: int, seed: int) -> pl.Series:
    s = pl.from_arrow(pc.random(n, initializer=seed & 0x7FFFFFFF))
    assert isinstance(s, pl.Series)
    return s.clip(1e-12, 1.0)


def _noise(n: int, seed: int, heavy: bool) -> pl.Series:
    """Standard-ish noise: N(0,1) by Box-Muller, or Laplace with unit variance."""
    u1, u2 = _uniform(n, seed), _uniform(n, seed + 1)
    if heavy:
        sign = (u2 < 0.5).cast(pl.Float64) * 2 - 1
        return sign * (-(u1.log())) / math.sqrt(2)
    return (-2 * u1.log()).sqrt() * (2 * math.pi * u2).cos()


def _attack_shape(ev: Event) -> pl.Expr:
    rel = pl.col("t") - ev.start
    inside = (pl.col("t") >= ev.start) & (pl.col("t") < ev.end)
    if ev.shape == "ramp":
        a = pl.min_horizontal((rel + 1).cast(pl.Float64) / ev.ramp, pl.lit(1.0))
    elif ev.shape == "pulsed":
        a = ((rel % (ev.on + ev.off)) < ev.on).cast(pl.Float64)
    else:
        a = pl.lit(1.0)
    return pl.when(inside).then(a).otherwise(0.0)


def _envelope(ev: Event, rise: int, fall: int) -> pl.Expr:
    rel = (pl.col("t") - ev.start).cast(pl.Float64)
    left = (ev.end - pl.col("t")).cast(pl.Float64)
    up = pl.min_horizontal(rel / rise, pl.lit(1.0))
    down = pl.min_horizontal(left / fall, pl.lit(1.0))
    inside = (pl.col("t") >= ev.start) & (pl.col("t") < ev.end)
    return pl.when(inside).then(pl.min_horizontal(up, down)).otherwise(0.0)


def _ip(a: pl.Expr, prefix: str) -> pl.Expr:
    """Deterministic address from an integer expression."""
    return pl.format(prefix + ".{}.{}.{}", (a // 65536) % 256, (a // 256) % 256, a % 254 + 1)


def _spoof(seed_expr: pl.Expr) -> pl.Expr:
    h = (seed_expr * 2654435761) % 4294967291
    return pl.format("{}.{}.{}.{}", h % 223 + 1, (h // 223) % 256, (h // 57088) % 256, h % 253 + 1)


def node_frames(
    p: NodeProfile, events: list[Event], t0: int, t1: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(metrics, flows) of one node over [t0, t1): metrics with integer column ``t`` plus the
    wire columns, flows (flow nodes only) with ``t`` plus the wire columns."""
    n = t1 - t0
    s0 = (seed * 1_000_003 + p.idx * 7919 + t0) & 0x3FFFFFFF
    evs = [e for e in events if e.node == p.idx and e.end > t0 and e.start < t1]
    # wander factors per minute (python, cheap: n/60 values)
    minutes = list(range(t0 // 60, (t1 + 59) // 60 + 1))
    wf = []
    for m in minutes:
        h, mi = wander(p, m * 60, seed * 1000 + p.idx)
        wf.append(daily(p, m * 60 + 30) * weekly(p, m * 60) * h * mi)
    mdf = pl.DataFrame({"m": minutes, "wf": wf})
    df = pl.DataFrame({"t": pl.int_range(t0, t1, eager=True)})
    df = df.with_columns(m=pl.col("t") // 60).join(mdf, on="m", how="left").sort("t")
    noises = (
        "lvl", "tcp", "udp", "icmp", "oth", "syn", "fin", "rst", "frg", "src", "len", "att", "bk",
    )  # fmt: skip
    z = {k: _noise(n, s0 + 10 * i, p.heavy) for i, k in enumerate(noises)}
    df = df.with_columns(**{f"z_{k}": v for k, v in z.items()})
    r = ROLES[p.role]
    # benign events
    flash = pl.lit(1.0)
    backup = pl.lit(0.0)
    synf = pl.lit(1.0)
    for e in evs:
        if e.kind == "flash":
            flash = flash + (e.factor - 1) * _envelope(e, 120, 240)
            synf = synf + (e.mult - 1) * _envelope(e, 120, 240)
        elif e.kind == "spike":
            inside = (pl.col("t") >= e.start) & (pl.col("t") < e.end)
            flash = flash + pl.when(inside).then(e.factor - 1).otherwise(0.0)
        elif e.kind == "backup":
            backup = backup + e.factor * _envelope(e, 60, 30)
    sig = p.sigma
    df = df.with_columns(
        L=p.base_pps * pl.col("wf") * (sig * pl.col("z_lvl")).exp() * flash,
        BK=backup * (0.08 * pl.col("z_bk")).exp(),
    )
    df = df.with_columns(
        tcp_b=pl.col("L") * r["tcp"] * (0.03 * pl.col("z_tcp")).exp(),
        udp_b=pl.col("L") * r["udp"] * (0.05 * pl.col("z_udp")).exp(),
        icmp_b=pl.col("L") * r["icmp"] * (0.25 * pl.col("z_icmp")).exp(),
        oth_b=pl.col("L") * r["other"] * (0.1 * pl.col("z_oth")).exp(),
    )
    df = df.with_columns(
        syn_b=pl.col("tcp_b") * p.f_syn * synf * (0.12 * pl.col("z_syn")).exp(),
        rst_b=pl.col("tcp_b") * p.f_rst * (0.3 * pl.col("z_rst")).exp(),
        frg_b=(pl.col("udp_b") + pl.col("oth_b")) * p.f_frag * (0.4 * pl.col("z_frg")).exp(),
        lmul=(0.04 * pl.col("z_len")).exp(),
    )
    df = df.with_columns(fin_b=pl.col("syn_b") * p.f_fin * (0.1 * pl.col("z_fin")).exp())
    lo = 200.0 if p.role == "vpn" else 150.0
    df = df.with_columns(
        tcp=pl.col("tcp_b") + pl.col("BK"),
        udp=pl.col("udp_b"),
        icmp=pl.col("icmp_b"),
        oth=pl.col("oth_b"),
        syn=pl.col("syn_b"),
        ack=pl.col("tcp_b") - pl.col("syn_b") - 0.5 * pl.col("rst_b") + pl.col("BK"),
        rst=pl.col("rst_b"),
        fin=pl.col("fin_b"),
        frg=pl.col("frg_b"),
        byt=pl.col("lmul")
        * (
            pl.col("tcp_b") * r["ltcp"]
            + pl.col("udp_b") * r["ludp"]
            + pl.col("icmp_b") * 84
            + pl.col("oth_b") * lo * 4
        )
        + pl.col("BK") * 1500,
        src=pl.col("L") * p.src_ratio * (0.1 * pl.col("z_src")).exp()
        + (pl.col("BK") > 0).cast(pl.Float64) * 2,
    )
    # attacks
    att_cols: list[tuple[str, Vector, Event, int]] = []
    for e in evs:
        if e.kind != "attack":
            continue
        kind = ATTACK_KINDS[e.attack]
        a = (e.mult - 1) * e.b0 * _attack_shape(e) * (0.06 * pl.col("z_att")).exp()
        for j, v in enumerate(kind.vectors):
            col = f"a{len(att_cols)}"
            att_cols.append((col, v, e, j))
            df = df.with_columns((a * v.share).alias(col))
            c = pl.col(col)
            plen = e.pkt_lens[j]
            upd: dict[str, pl.Expr] = {"byt": pl.col("byt") + c * plen}
            target = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "gre": "oth", "esp": "oth"}
            upd[target[v.proto]] = pl.col(target[v.proto]) + c
            if v.flags == "syn":
                upd["syn"] = pl.col("syn") + c
            elif v.flags in ("ack", "psh_ack"):
                upd["ack"] = pl.col("ack") + c
            elif v.flags == "rst":
                upd["rst"] = pl.col("rst") + c
            elif v.flags == "fin":
                upd["fin"] = pl.col("fin") + c
                upd["ack"] = pl.col("ack") + c * 0.5  # half of them FIN|ACK
            if v.frag > 0:
                upd["frg"] = pl.col("frg") + c * v.frag
            if v.sources == "spoofed":
                upd["src"] = pl.col("src") + pl.min_horizontal(c * 0.85, pl.lit(3e6))
            else:
                upd["src"] = pl.col("src") + pl.min_horizontal(c, pl.lit(float(e.pools[j])))
            df = df.with_columns(**upd)
    gaps = [e for e in evs if e.kind == "gap"]
    keep = pl.lit(True)
    for g in gaps:
        keep = keep & ~((pl.col("t") >= g.start) & (pl.col("t") < g.end))
    df = df.filter(keep)
    pps = pl.col("tcp") + pl.col("udp") + pl.col("icmp") + pl.col("oth")
    metrics = df.select(
        "t",
        pps=pps,
        bps=pl.col("byt") * 8,
        tcp_pps=pl.col("tcp"),
        udp_pps=pl.col("udp"),
        icmp_pps=pl.col("icmp"),
        other_pps=pl.col("oth"),
        syn_pps=pl.col("syn"),
        ack_pps=pl.col("ack").clip(0.0, None),
        rst_pps=pl.col("rst"),
        fin_pps=pl.col("fin"),
        frag_pps=pl.col("frg"),
        avg_pkt_len=pl.col("byt") / pps,
        conn_count=(pl.col("L") * 0.6 + pl.col("BK") * 0 + 5).cast(pl.Int64),
        distinct_sources=pl.col("src").round(0).cast(pl.Int64),
    )
    if not p.flows:
        return metrics, None
    flows = _flows(p, df, att_cols, r)
    return metrics, flows


def _rec(
    df: pl.DataFrame,
    packets: pl.Expr,
    *,
    proto: int,
    flags: int,
    src: pl.Expr,
    sport: pl.Expr,
    dport: pl.Expr,
    plen: pl.Expr,
    dst: str,
) -> pl.DataFrame:
    out = df.select(
        "t",
        src_ip=src,
        dst_ip=pl.lit(dst),
        src_port=sport.cast(pl.Int32),
        dst_port=dport.cast(pl.Int32),
        protocol=pl.lit(proto, pl.Int16),
        tcp_flags=pl.lit(flags, pl.Int16),
        packets=packets.round(0).cast(pl.Int64),
        packet_len=plen.cast(pl.Int32),
    )
    out = out.filter(pl.col("packets") > 0)
    return out.with_columns(
        bytes=pl.col("packets") * pl.col("packet_len"), sampling_rate=pl.lit(1000, pl.Int64)
    )


def _flows(
    p: NodeProfile,
    df: pl.DataFrame,
    att_cols: list[tuple[str, Vector, Event, int]],
    r: dict[str, float],
) -> pl.DataFrame:
    """Aggregated sampled-flow records per second (packets/bytes stand for the traffic before
    sampling): the benign mix in a few records, each attack vector in 4 records (plus its
    fragments, ports 0)."""
    t, c, lit = pl.col("t"), pl.col, pl.lit
    cli = _ip(t * 7 % 50_000, "100")
    ephem = 32768 + (t * 37) % 28000
    dst = p.ip
    udp_port = 443 if p.role == "quic" else 53 if p.role == "dns" else 27015
    ltcp, ludp = int(r["ltcp"]), int(r["ludp"])
    benign = [
        # packets, protocol, TCP flags, source, source port, destination port, packet length
        (c("tcp_b") - c("syn_b") - c("fin_b") - c("rst_b"), 6, 0x18, cli, ephem, lit(443), ltcp),
        (c("syn_b"), 6, 0x02, _ip(t * 13 % 50_000, "100"), ephem + 1, lit(443), 60),
        (c("fin_b") + c("rst_b"), 6, 0x11, _ip(t * 17 % 50_000, "100"), ephem + 2, lit(443), 52),
        # benign UDP: resolver answers (source port 53) and the service's own UDP
        (c("udp_b") * 0.15, 17, 0, lit("9.9.9.9"), lit(53), ephem, 180),
        (c("udp_b") * 0.85, 17, 0, _ip(t * 11 % 50_000, "100"), ephem + 3, lit(udp_port), ludp),
        (c("icmp_b"), 1, 0, _ip(t * 19 % 50_000, "100"), lit(0), lit(0), 84),
        (c("BK"), 6, 0x18, lit("10.20.30.40"), lit(50123), lit(22), 1500),
    ]
    if r["other"] > 0.05:
        benign.append((c("oth_b"), 50, 0, lit("192.0.2.77"), lit(0), lit(0), 800))
    parts = [
        _rec(df, pk, proto=pr, flags=fl, src=src, sport=sp, dport=dp, plen=lit(ln), dst=dst)
        for pk, pr, fl, src, sp, dp, ln in benign
    ]
    proto_num = {"tcp": 6, "udp": 17, "icmp": 1, "gre": 47, "esp": 50}
    flag_num = {"syn": 0x02, "ack": 0x10, "rst": 0x04, "fin": 0x01, "psh_ack": 0x18, "": 0}
    for col, v, e, j in att_cols:
        sub = df.filter(pl.col(col) > 0)
        if sub.is_empty():
            continue
        plen = e.pkt_lens[j]
        unfrag = pl.col(col) * (1 - v.frag)
        for k in range(4):
            seed_e = t * 4 + k + e.start
            if v.sources == "spoofed":
                src = _spoof(seed_e)
            else:
                src = _ip((seed_e * 2654435761) % e.pools[j] + e.start % 1000, "45")
            has_ports = v.proto in ("tcp", "udp")
            sport = (
                (pl.lit(v.src_port) if v.src_port > 0 else 1024 + (seed_e * 31) % 64000)
                if has_ports
                else pl.lit(0)
            )
            dport = (
                (pl.lit(v.dst_port) if v.dst_port > 0 else 1 + (seed_e * 17) % 65000)
                if has_ports
                else pl.lit(0)
            )
            parts.append(
                _rec(
                    sub,
                    unfrag / 4,
                    proto=proto_num[v.proto],
                    flags=flag_num[v.flags],
                    src=src,
                    sport=sport,
                    dport=dport,
                    plen=pl.lit(plen),
                    dst=dst,
                )
            )
        if v.frag > 0:
            parts.append(
                _rec(
                    sub,
                    pl.col(col) * v.frag,
                    proto=17,
                    flags=0,
                    src=_ip((t * 2654435761) % e.pools[j], "45"),
                    sport=pl.lit(0),
                    dport=pl.lit(0),
                    plen=pl.lit(min(plen, 1480)),
                    dst=dst,
                )
            )
    flows = pl.concat(parts, how="vertical").sort("t", maintain_order=True)
    return flows
