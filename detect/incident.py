"""An open detector incident and how a node's seconds are folded into it.

``IncidentState`` holds what the detector knows of one open incident: when it began and fired,
its peaks, the summed excess counters the classifier reads (``ev``), the observed counters of
its attack seconds (``obs``), the ports seen in flows, and the per-second timeline not yet sent.

``NodeRows`` holds one node's seconds of a pass as plain lists (for the state machine's loop in
``detect.engine``) and folds a range of them into an incident in one step: prefix sums over the
attack seconds for the counters, a slice for the timeline and the peaks. The state machine
therefore touches each second with a few comparisons; the per-counter work happens once per fold
(at an open, an update check, a resolve and the end of the pass), not once per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from detect import classify as cls

__all__ = [
    "FLAGS",
    "FLOWLESS_KEEP",
    "LATE_DETAIL",
    "PROTOS",
    "IncidentState",
    "NodeRows",
    "PassRows",
    "add_flow_detail",
    "breakdown",
    "reclassify",
    "ts",
]

PROTOS = ("tcp", "udp", "icmp", "other")
FLAGS = ("syn", "ack", "rst", "fin")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: excess counters summed over attack seconds (``ex_<k>``, negative excess counts as 0)
_EV_KEYS = ("pps", "bytes", *PROTOS, *FLAGS, "frag", "dns", "gre", "esp", "psh", "urg")
#: observed counters summed over attack seconds (``x_<k>``)
_OBS_KEYS = (*PROTOS, *FLAGS, "psh", "urg")
#: attack seconds without flow detail kept per incident (a late flows row may complete them)
FLOWLESS_KEEP = 120
#: the columns of a late flows row that can add detail to an attack second
LATE_DETAIL = (
    "dns_pps",
    "gre_pps",
    "esp_pps",
    "psh_pps",
    "urg_pps",
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
)


def ts(sec: int) -> datetime:
    return _EPOCH + timedelta(seconds=sec)


@dataclass
class IncidentState:
    id: str
    onset: int
    fired: int
    metric: str
    observed: float
    baseline: float
    threshold: float
    multiplier: float
    samples_above: int
    last_attack: int
    last_tx: int
    normal_run: int = 0
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    expected_pps: float = 0.0
    peak_over: float = 1.0
    mix_max: float = 0.0
    family: str | None = None
    subtype: str | None = None
    severity: str | None = None
    confidence: int | None = None
    attack_secs: int = 0
    tx_peak: float = 0.0
    tx_kind: list[str | None] = field(default_factory=list)
    ev: dict[str, float] = field(default_factory=dict)
    obs: dict[str, float] = field(default_factory=dict)
    src_ports: dict[str, float] = field(default_factory=dict)
    dst_ports: dict[str, float] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # recent attack seconds counted without flow detail (a late flows row may complete them)
    flowless: list[int] = field(default_factory=list)
    # event time of the last classification (family and severity are checked again at most
    # once per update interval unless the peak grew)
    last_check: int = 0


class PassRows:
    """The seconds of a pass's active nodes, sorted by node and time, as plain lists for the
    state machine. What a fold reads (prefix sums over attack seconds per node, and the
    per-second values of the timeline) is computed for the whole pass at the first fold, in
    one vectorized step, and read per node only for the seconds folded."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df
        base = df.select(
            "node", "t", "trig", (pl.col("elev") | pl.col("trig")).alias("elev"), "need", "pps"
        ).to_dict(as_series=False)
        self.t: list[int] = base["t"]
        self.trig: list[bool] = base["trig"]
        self.elev: list[bool] = base["elev"]  # a triggering second is also an elevated one
        self.need: list[int] = base["need"]
        self.pps: list[float] = base["pps"]
        self._nodes: list[str] = base["node"]
        self._sums: pl.DataFrame | None = None
        self._cols: pl.DataFrame | None = None

    def nodes(self) -> list[tuple[str, NodeRows]]:
        out: list[tuple[str, NodeRows]] = []
        names = self._nodes
        lo = 0
        for i in range(1, len(names) + 1):
            if i == len(names) or names[i] != names[lo]:
                out.append((names[lo], NodeRows(self, lo, i)))
                lo = i
        return out

    def prepared(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(prefix sums per node over attack seconds: the count, then per ``ev`` and ``obs``
        key the value and the count of seconds that had one; the values a fold reads)."""
        if self._sums is None or self._cols is None:
            df = self.df
            attack = pl.col("elev") | pl.col("trig")
            flows = pl.col("has_flows").fill_null(False)
            thr = pl.col("thr_pps").fill_null(0.0)
            sums: list[pl.Expr] = [attack.cast(pl.Int64()).cum_sum().over("node").alias("_n")]
            for prefix, keys, clip in (("ex", _EV_KEYS, True), ("x", _OBS_KEYS, False)):
                for k in keys:
                    v = _col(df, f"{prefix}_{k}")
                    has = attack & v.is_not_null()
                    val = v.clip(0.0) if clip else v
                    sums += [
                        pl.when(has)
                        .then(val)
                        .otherwise(0.0)
                        .cum_sum()
                        .over("node")
                        .alias(f"s_{prefix}_{k}"),
                        has.cast(pl.Int64()).cum_sum().over("node").alias(f"n_{prefix}_{k}"),
                    ]
            self._sums = df.select(sums)
            self._cols = df.select(
                (attack & flows).alias("flow_attack"),
                (attack & ~flows).alias("flowless"),
                pl.when(attack & (thr > 0)).then(pl.col("pps") / thr).alias("over"),
                pl.when(attack).then(pl.col("mix").fill_null(0.0).fill_nan(0.0)),
                pl.col("bps"),
                pl.col("E_pps").fill_null(0.0),
                thr.alias("thr_pps"),
                pl.col("ex_pps").fill_null(0.0),
                pl.from_epoch(pl.col("t")).dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("iso"),
                *(pl.col(c) for c in _PORT_COLS),
            )
        return self._sums, self._cols


class NodeRows:
    """One node's seconds of a pass (rows ``lo`` to ``hi - 1`` of its ``PassRows``), indexed
    from 0 (see the module docstring)."""

    def __init__(self, rows: PassRows, lo: int, hi: int) -> None:
        self.rows = rows
        self.lo = lo
        self.n = hi - lo
        self.t = rows.t[lo:hi]
        self.trig = rows.trig[lo:hi]
        self.elev = rows.elev[lo:hi]
        self.need = rows.need[lo:hi]
        self.pps = rows.pps[lo:hi]
        self._cols: dict[str, list[Any]] | None = None

    def row(self, i: int) -> dict[str, Any]:
        return self.rows.df.row(self.lo + i, named=True)

    def fold(self, inc: IncidentState, a: int, b: int) -> None:
        """Fold seconds ``a`` to ``b - 1`` into ``inc``: every second adds to the timeline and
        the peaks; attack (elevated or triggering) seconds add their counters, their share of
        the threshold and mix, and their flow detail (ports) or, without flows, their time to
        ``flowless``."""
        if b <= a:
            return
        sums, cols = self.rows.prepared()
        if self._cols is None:
            self._cols = cols.slice(self.lo, self.n).to_dict(as_series=False)
        c = self._cols
        pps = self.pps[a:b]
        bps = c["bps"][a:b]
        inc.peak_pps = max(inc.peak_pps, *pps)
        inc.peak_bps = max(inc.peak_bps, *bps)
        inc.timeline.extend(
            {"t": t, "pps": p, "bps": q, "expected_pps": e, "threshold_pps": h}
            for t, p, q, e, h in zip(
                c["iso"][a:b], pps, bps, c["E_pps"][a:b], c["thr_pps"][a:b], strict=True
            )
        )
        hi = sums.row(self.lo + b - 1)
        span = [x - y for x, y in zip(hi, sums.row(self.lo + a - 1), strict=True)] if a > 0 else hi
        attack_secs = span[0]
        if attack_secs == 0:
            return
        inc.attack_secs += attack_secs
        j = 1
        for keys, target in ((_EV_KEYS, inc.ev), (_OBS_KEYS, inc.obs)):
            for k in keys:
                if span[j + 1] > 0:
                    target[k] = target.get(k, 0.0) + float(span[j])
                j += 2
        over = [x for x in c["over"][a:b] if x is not None]
        if over:
            inc.peak_over = max(inc.peak_over, *over)
        mix = [x for x in c["mix"][a:b] if x is not None]
        if mix:
            inc.mix_max = max(inc.mix_max, *mix)
        flow_attack, flowless = c["flow_attack"], c["flowless"]
        for i in range(a, b):
            if flow_attack[i]:
                r = {col: c[col][i] for col in _PORT_COLS}
                _add_ports(inc, r, float(self.pps[i]), float(c["ex_pps"][i]))
            elif flowless[i]:
                inc.flowless.append(self.t[i])
        if len(inc.flowless) > FLOWLESS_KEEP:
            del inc.flowless[: len(inc.flowless) - FLOWLESS_KEEP]


_PORT_COLS = ("top_src_port", "top_src_port_share", "top_dst_port", "top_dst_port_share")


def _col(df: pl.DataFrame, name: str) -> pl.Expr:
    if name not in df.columns:
        return pl.lit(None, pl.Float64())
    return pl.col(name).cast(pl.Float64())


def _add_ports(inc: IncidentState, r: dict[str, Any], pps: float, ex: float) -> None:
    inc.ev["flows"] = inc.ev.get("flows", 0.0) + 1.0
    for key, target in (("src", inc.src_ports), ("dst", inc.dst_ports)):
        port = r.get(f"top_{key}_port")
        share = r.get(f"top_{key}_port_share")
        if port is not None and share is not None:
            # the top port's packets, attributed to the excess as far as they reach
            amount = min(float(share) * pps, ex) if ex > 0 else 0.0
            target[str(int(port))] = target.get(str(int(port)), 0.0) + amount


def add_flow_detail(inc: IncidentState, r: dict[str, Any], ex: float) -> None:
    """The flow-only detail of a late flows row, for an attack second already counted from
    metrics (whose counters stay: metrics win over flow-made counters)."""
    for k in ("dns", "gre", "esp", "psh", "urg"):
        v = r.get(f"{k}_pps")
        if v is not None:
            inc.ev[k] = inc.ev.get(k, 0.0) + max(0.0, float(v))
    for k in ("psh", "urg"):
        v = r.get(f"{k}_pps")
        if v is not None:
            inc.obs[k] = inc.obs.get(k, 0.0) + float(v)
    _add_ports(inc, r, float(r["pps"]), ex)


def _top_port(ports: dict[str, float], total: float) -> tuple[int | None, float]:
    if not ports or total <= 0:
        return None, 0.0
    port, amount = max(ports.items(), key=lambda kv: (kv[1], -int(kv[0])))
    return int(port), min(1.0, amount / total)


def reclassify(inc: IncidentState, t: int) -> None:
    """Family, subtype, severity and confidence from everything folded so far."""
    total = inc.ev.get("pps", 0.0)
    ports = {"src": _top_port(inc.src_ports, total), "dst": _top_port(inc.dst_ports, total)}
    inc.family, inc.subtype = cls.classify(inc.ev, ports)
    inc.severity = cls.severity(inc.peak_pps, inc.expected_pps, inc.peak_bps)
    proto_total = sum(inc.ev.get(k, 0.0) for k in PROTOS)
    dominant = max((inc.ev.get(k, 0.0) for k in PROTOS), default=0.0)
    inc.confidence = cls.confidence(
        inc.peak_over,
        inc.mix_max,
        t - inc.onset + 1,
        dominant / proto_total if proto_total > 0 else 0.0,
        inc.ev.get("flows", 0.0) > 0,
    )
    inc.last_check = t


def _pct(parts: dict[str, float], keys: tuple[str, ...], total: float) -> dict[str, float]:
    return {k: round(100.0 * parts.get(k, 0.0) / total, 1) if total > 0 else 0.0 for k in keys}


def breakdown(inc: IncidentState) -> dict[str, Any]:
    proto_total = sum(inc.obs.get(k, 0.0) for k in PROTOS)
    out: dict[str, Any] = {
        "protocol_breakdown": _pct(inc.obs, PROTOS, proto_total),
        "tcp_flags": _pct(inc.obs, (*FLAGS, "psh", "urg"), inc.obs.get("tcp", 0.0)),
    }
    total = inc.ev.get("pps", 0.0)
    for key, ports in (("top_src_ports", inc.src_ports), ("top_dst_ports", inc.dst_ports)):
        if ports and total > 0:
            best = sorted(ports.items(), key=lambda kv: (-kv[1], int(kv[0])))[:5]
            out[key] = [{"port": int(p), "share": round(min(1.0, a / total), 3)} for p, a in best]
    return out
