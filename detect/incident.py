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
    "add_flow_detail",
    "breakdown",
    "iso",
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


def iso(sec: int) -> str:
    return ts(sec).isoformat().replace("+00:00", "Z")


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


class NodeRows:
    """One node's seconds of a pass, ordered by time (see the module docstring)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df
        self.n = df.height
        self.t: list[int] = df.get_column("t").to_list()
        self.trig: list[bool] = df.get_column("trig").to_list()
        # a triggering second is also an elevated one
        self.elev: list[bool] = (df.get_column("elev") | df.get_column("trig")).to_list()
        self.need: list[int] = df.get_column("need").to_list()
        self.pps: list[float] = df.get_column("pps").to_list()
        self._cols: dict[str, list[Any]] | None = None

    def row(self, i: int) -> dict[str, Any]:
        return self.df.row(i, named=True)

    def _columns(self) -> dict[str, list[Any]]:
        """Per second, as lists: prefix sums over attack seconds (per ``ev`` and ``obs`` key
        the value and the count of seconds that had one), and the values a fold reads."""
        if self._cols is None:
            attack = pl.Series("_a", self.elev, dtype=pl.Boolean())
            flows = pl.col("has_flows").fill_null(False)
            thr = pl.col("thr_pps").fill_null(0.0)
            exprs: list[pl.Expr] = []
            for prefix, keys, clip in (("ex", _EV_KEYS, True), ("x", _OBS_KEYS, False)):
                for k in keys:
                    v = _col(self.df, f"{prefix}_{k}")
                    has = pl.lit(attack) & v.is_not_null()
                    val = v.clip(0.0) if clip else v
                    exprs += [
                        pl.when(has).then(val).otherwise(0.0).cum_sum().alias(f"s_{prefix}_{k}"),
                        has.cast(pl.Int64()).cum_sum().alias(f"n_{prefix}_{k}"),
                    ]
            exprs += [
                pl.lit(attack).alias("attack"),
                (pl.lit(attack) & flows).alias("flow_attack"),
                (pl.lit(attack) & ~flows).alias("flowless"),
                pl.lit(attack).cast(pl.Int64()).cum_sum().alias("n_attack"),
                pl.when(pl.lit(attack) & (thr > 0)).then(pl.col("pps") / thr).alias("over"),
                pl.when(pl.lit(attack)).then(pl.col("mix").fill_null(0.0).fill_nan(0.0)),
                pl.col("bps"),
                pl.col("E_pps").fill_null(0.0),
                thr.alias("thr_pps"),
                pl.col("ex_pps").fill_null(0.0),
                *(pl.col(c) for c in _PORT_COLS),
            ]
            self._cols = self.df.select(exprs).to_dict(as_series=False)
        return self._cols

    def fold(self, inc: IncidentState, a: int, b: int) -> None:
        """Fold seconds ``a`` to ``b - 1`` into ``inc``: every second adds to the timeline and
        the peaks; attack (elevated or triggering) seconds add their counters, their share of
        the threshold and mix, and their flow detail (ports) or, without flows, their time to
        ``flowless``."""
        if b <= a:
            return
        c = self._columns()
        pps = self.pps[a:b]
        bps = c["bps"][a:b]
        inc.peak_pps = max(inc.peak_pps, *pps)
        inc.peak_bps = max(inc.peak_bps, *bps)
        inc.timeline.extend(
            {"t": iso(t), "pps": p, "bps": q, "expected_pps": e, "threshold_pps": h}
            for t, p, q, e, h in zip(
                self.t[a:b], pps, bps, c["E_pps"][a:b], c["thr_pps"][a:b], strict=True
            )
        )

        def span(col: str) -> Any:
            vals = c[col]
            return vals[b - 1] - (vals[a - 1] if a > 0 else 0)

        attack_secs = span("n_attack")
        if attack_secs == 0:
            return
        inc.attack_secs += attack_secs
        for prefix, keys, target in (("ex", _EV_KEYS, inc.ev), ("x", _OBS_KEYS, inc.obs)):
            for k in keys:
                if span(f"n_{prefix}_{k}") > 0:
                    target[k] = target.get(k, 0.0) + float(span(f"s_{prefix}_{k}"))
        over = [x for x in c["over"][a:b] if x is not None]
        if over:
            inc.peak_over = max(inc.peak_over, *over)
        mix = [x for x in c["mix"][a:b] if x is not None]
        if mix:
            inc.mix_max = max(inc.mix_max, *mix)
        for i in range(a, b):
            if c["flow_attack"][i]:
                r = {col: c[col][i] for col in _PORT_COLS}
                _add_ports(inc, r, float(self.pps[i]), float(c["ex_pps"][i]))
            elif c["flowless"][i]:
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
