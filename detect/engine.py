"""The detector: one explicit state object (``Detector``) and one entry point, ``process``.

``process(frame)`` takes node-seconds (``detect.frames``) and returns ``Transition`` objects.
It is driven only by the rows' ``time``; the same rows give the same transitions whatever the
batch boundaries (baselines move at completed minutes, see ``detect.baseline``; the state
machine below runs second by second in event time).

Evidence, per second, all vectorized over every row of the batch:

- **volume**: ``lx = ln(pps + 10) - level`` against a log threshold;
- **traffic mix** (``mix``, 1 = clearly changed): the largest of the protocol-share distance
  (half the L1 distance of the TCP/UDP/ICMP/other shares to the baseline's), the same for the
  SYN/ACK/RST/FIN shares of all packets, the rise of the fragment share (scaled by 0.08), the
  change of mean packet length (|ln| / 0.3), and a fall of distinct sources per packet by a
  factor 1.6. The two share distances are scaled by the node's own mix jitter: the larger of
  0.10 and twice the usual per-minute spread (90th minus 10th percentile) of its TCP share,
  resp. ACK share (``detect.baseline``), so a node whose small protocols flicker does not read
  flicker as a new mix. A flood of another protocol, flag or packet size moves at least one of
  these even at 1.2-1.4x the normal rate; a flash crowd (more sources per packet, same shares),
  a daily peak or a weekend step moves none.

The threshold on ``lx`` therefore falls as the mix evidence grows (``m`` is the
``multiplier`` setting, 1.7 by default, ``noise`` the series' own noise):
``max(ln(1 + (m - 1) / 4), 0.8 noise)`` when ``mix >= 3``, ``max(ln(1 + (m - 1) / 2),
1.2 noise)`` when ``mix >= 2``, ``max(ln m, 2 noise)`` when ``mix >= 1`` and
``max(4 ln m, 2.2 noise)`` (about 8x) when the mix did not change. It is scaled by the
sensitivity factor and, while a node has learned less than an hour, by up to 2x (warm-up; no
detection at all before 3 learned minutes). The bit rate triggers on its own only for a non-TCP
excess with a changed packet mix. Bulk TCP transfers (backups: the excess is mostly TCP with
over 900 extra bytes per extra TCP packet, or extra bytes in big packets while the TCP share
holds, and SYNs do not rise) are never attack evidence. The excess
must also be at least ``floor_pps`` (or ``floor_bps``), so a 50 pps node never opens an
incident at 500 pps.

State machine per node (plain Python, only for nodes with something going on):

- **confirmation**: consecutive triggering seconds; 1 when the rate is 5x or more with a
  strongly changed mix (or 12x whatever the mix), 2 from 2.5x or with a strongly changed mix
  (``mix >= 2``: the mix is evidence of its own, and a ramp is caught a second earlier), else
  ``confirm_seconds`` (3). After a
  resolve, during ``cooldown_secs``, small excesses need the full ``confirm_seconds``.
- **open** at the confirming second; ``onset_at`` is the first second of the run.
- while open, a second counts as attack when it triggers or is merely elevated (hysteresis);
  **update** at most every ``update_interval_secs`` when the peak grew, the family/subtype
  changed or the severity rose.
- **resolve** after ``hold_down_secs`` observed normal seconds *and* ``bridge_secs`` since the
  last attack second: pulsed attacks with off phases up to ``bridge_secs`` stay one incident.
  No data for ``silence_expiry_secs`` (measured on the workspace's newest row) resolves with
  ``no_data``.
- **elevated/normal** (node status) when no incident is open: ``elevated`` after 3 elevated
  seconds, ``normal`` after ``hold_down_secs`` normal seconds.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from detect import classify as cls
from detect.baseline import (
    LOG_OFFSET,
    BaselineState,
    learned_minutes,
    levels_now,
    seed_from_rollups,
    update,
)
from detect.frames import NODE_SECOND_SCHEMA, SERIES, normalize
from detect.settings import DetectionSettings

__all__ = ["DETECTOR_VERSION", "Detector", "Transition"]

DETECTOR_VERSION = "floodwatch-detect/1.0"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAGIC = b"FWDET1\n"
_PROTOS = ("tcp", "udp", "icmp", "other")
_FLAGS = ("syn", "ack", "rst", "fin")

SettingsLookup = Callable[[str, str], DetectionSettings]


def _ts(sec: int) -> datetime:
    return _EPOCH + timedelta(seconds=sec)


def _iso(sec: int) -> str:
    return _ts(sec).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Transition:
    kind: str
    workspace: str
    node: str
    incident: str | None
    at: datetime
    detection: dict[str, Any]
    attack_family: str | None
    attack_subtype: str | None
    confidence: int | None
    severity: str | None
    peak_pps: float
    peak_bps: float
    timeline: list[dict[str, Any]]
    breakdown: dict[str, Any]
    ended_reason: str | None = None


@dataclass
class _Incident:
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


@dataclass
class _NodeState:
    workspace: str
    newest: int | None = None
    status: str = "normal"
    elev_run: int = 0
    calm_run: int = 0
    run_start: int | None = None
    run_len: int = 0
    run_last: int | None = None
    last_resolve: int | None = None
    incident: _Incident | None = None


# evaluation columns pulled into Python for nodes with something going on
_ROW_COLS = (
    "t",
    "pps",
    "bps",
    "E_pps",
    "thr_pps",
    "m_pps",
    "mix",
    "trig",
    "elev",
    "need",
    "metric",
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
    "has_flows",
    *(f"x_{k}" for k in (*_PROTOS, *_FLAGS, "psh", "urg")),
    *(f"ex_{k}" for k in ("pps", "bytes", *_PROTOS, *_FLAGS, "frag", "dns", "gre", "esp")),
    *(f"ex_{k}" for k in ("psh", "urg")),
)


class Detector:
    """All detector state: baselines (polars frames) and per-node incident state."""

    def __init__(self, settings_lookup: SettingsLookup | None = None) -> None:
        self._lookup: SettingsLookup = settings_lookup or (lambda _w, _n: DetectionSettings())
        self._settings: dict[str, DetectionSettings] = {}
        self._params: pl.DataFrame | None = None
        self._params_uniform = False
        self.baseline = BaselineState.empty()
        self._pending = pl.DataFrame(schema=NODE_SECOND_SCHEMA)
        self._nodes: dict[str, _NodeState] = {}
        self._ws_newest: dict[str, int] = {}

    # ------------------------------------------------------------------ introspection
    def known_nodes(self) -> set[str]:
        """Node keys the detector holds any state for: a baseline (learned or seeded from
        rollups) or per-node incident state."""
        nodes = self.baseline.nodes
        out = set(nodes.get_column("node").to_list()) if nodes.height else set()
        out.update(self._nodes)
        return out

    def open_incident_nodes(self) -> set[str]:
        """Node keys with an open incident."""
        return {n for n, st in self._nodes.items() if st.incident is not None}

    def open_incident_ids(self) -> set[str]:
        """Ids (``Transition.incident``) of the incidents held open."""
        return {st.incident.id for st in self._nodes.values() if st.incident is not None}

    # ------------------------------------------------------------------ settings
    def settings_for(self, workspace: str, node: str) -> DetectionSettings:
        s = self._settings.get(node)
        if s is None:
            s = self._lookup(workspace, node)
            self._settings[node] = s
            self._params = None
        return s

    def settings_changed(self, workspace: str, node: str | None = None) -> None:
        """Forget cached settings (of one node, or of the whole workspace); they are looked up
        again on the next row."""
        if node is not None:
            self._settings.pop(node, None)
        else:
            for n, st in self._nodes.items():
                if st.workspace == workspace:
                    self._settings.pop(n, None)
            for n in [n for n in self._settings if n not in self._nodes]:
                self._settings.pop(n, None)
        self._params = None

    def _param_frame(self, pairs: list[tuple[str, str]]) -> pl.DataFrame:
        missing = [(w, n) for w, n in pairs if n not in self._settings]
        for w, n in missing:
            self.settings_for(w, n)
        if self._params is None or missing:
            rows = []
            for n, s in self._settings.items():
                row: dict[str, Any] = {
                    "node": n,
                    "p_on": s.enabled,
                    "p_floor_pps": s.floor_pps,
                    "p_floor_bps": s.floor_bps,
                    "p_mult": s.multiplier,
                    "p_sens": s.sensitivity_factor,
                    "p_confirm": s.confirm_seconds,
                }
                for name in SERIES:
                    row[f"en_{name}"] = s.series_enabled(name)
                rows.append(row)
            self._params = pl.DataFrame(rows)
            cols = [c for c in self._params.columns if c != "node"]
            self._params_uniform = (
                self._params.height > 0
                and self._params.select(pl.struct(cols).n_unique()).item() <= 1
            )
        return self._params

    # ------------------------------------------------------------------ processing
    def process(self, frame: pl.DataFrame) -> list[Transition]:
        """Feed node-seconds, get the transitions they cause (ordered by time, then node)."""
        df = normalize(frame)
        out: list[Transition] = []
        if df.height == 0:
            return out
        df = df.with_columns(pl.col("time").dt.epoch("s").alias("t"))
        spans = (
            df.group_by("workspace", "node")
            .agg(pl.col("t").min().alias("lo"), pl.col("t").max().alias("hi"))
            .rows()
        )
        params = self._param_frame([(w, n) for w, n, _, _ in spans])
        if not params.get_column("p_on").all():
            off = params.filter(~pl.col("p_on")).get_column("node")
            df = df.filter(~pl.col("node").is_in(off.implode()))
            off_set = set(off.to_list())
            spans = [sp for sp in spans if sp[1] not in off_set]
        if df.height == 0:
            return out
        for w, n, _, _ in spans:
            if n not in self._nodes:
                self._nodes[n] = _NodeState(workspace=w)
        if any((nw := self._nodes[n].newest) is not None and lo <= nw for _, n, lo, _ in spans):
            newest = pl.DataFrame(
                {
                    "node": list(self._nodes),
                    "_newest": [st.newest for st in self._nodes.values()],
                },
                schema={"node": pl.String(), "_newest": pl.Int64()},
            )
            df = df.join(newest, on="node", how="left")
            is_new = pl.col("_newest").is_null() | (pl.col("t") > pl.col("_newest"))
            late = df.filter(~is_new)
            new = df.filter(is_new).drop("_newest", "t")
        else:  # the usual case: every row is newer than its node's newest second
            late = df.head(0)
            new = df.drop("t")
        # baselines: kept rows of the open minute plus the new rows
        self.baseline, leveled, self._pending = update(self.baseline, self._pending, new)
        feats = _features(_with_params(leveled, params, self._params_uniform))
        out.extend(self._run_nodes(feats, late, [(n, hi) for _, n, _, hi in spans]))
        # silence expiry, measured on each workspace's newest row
        for ws, _, _, t in spans:
            self._ws_newest[ws] = max(self._ws_newest.get(ws, t), t)
        # silence expiry, measured on each workspace's newest row
        for ws, t in df.group_by("workspace").agg(pl.col("t").max()).rows():
            self._ws_newest[ws] = max(self._ws_newest.get(ws, t), t)
        for n, st in self._nodes.items():
            inc = st.incident
            if inc is None or st.newest is None:
                continue
            s = self.settings_for(st.workspace, n)
            ws_new = self._ws_newest.get(st.workspace)
            if ws_new is not None and ws_new - st.newest >= s.silence_expiry_secs:
                out.append(self._resolve(n, st, st.newest + s.silence_expiry_secs, "no_data"))
        out.sort(key=lambda tr: (tr.at, tr.node))
        return out

    def _run_nodes(
        self, feats: pl.DataFrame, late: pl.DataFrame, last: list[tuple[str, int]]
    ) -> list[Transition]:
        out: list[Transition] = []
        busy_state = [n for n, st in self._nodes.items() if _busy(st)]
        hot = feats.filter(pl.col("trig") | pl.col("elev")).get_column("node").unique().to_list()
        feats = feats.select("node", "t", "ex_pps", *_DETAIL_INPUT, *_FEAT_OUT)
        active = set(hot) | set(busy_state)
        if active:
            sel = feats.filter(pl.col("node").is_in(pl.Series(list(active)).implode()))
            sel = _details(sel).sort("node", "t")
            cols = [c for c in _ROW_COLS if c in sel.columns]
            for (node,), part in sel.partition_by(
                "node", as_dict=True, maintain_order=True
            ).items():
                st = self._nodes[str(node)]
                s = self.settings_for(st.workspace, str(node))
                for row in part.select(cols).iter_rows(named=True):
                    out.extend(self._step(str(node), st, s, row))
        for node, t in last:
            st = self._nodes[node]
            st.newest = t if st.newest is None else max(st.newest, t)
        if late.height:
            self._fold_late(late)
        return out

    def _fold_late(self, late: pl.DataFrame) -> None:
        """Late rows (at or before the node's newest second) never open or close anything.
        Within ``late_window_secs`` they may raise an open incident's peaks, and a flows row
        for an attack second that was counted from metrics alone adds the detail only flows
        carry (DNS, GRE/ESP, PSH/URG, top ports) to the incident's evidence, once: a node that
        sends both metrics and flows gets its flow records a little after its metrics."""
        open_nodes = [n for n, st in self._nodes.items() if st.incident is not None]
        if not open_nodes:
            return
        late = late.filter(pl.col("node").is_in(pl.Series(open_nodes, dtype=pl.String()).implode()))
        cols = ("node", "t", "pps", "bps", "source", *_LATE_DETAIL)
        for row in late.select(cols).iter_rows(named=True):
            node, t = row["node"], int(row["t"])
            st = self._nodes[node]
            inc = st.incident
            if inc is None or st.newest is None:
                continue
            s = self.settings_for(st.workspace, node)
            if t < st.newest - s.late_window_secs or t < inc.onset:
                continue
            inc.peak_pps = max(inc.peak_pps, float(row["pps"]))
            inc.peak_bps = max(inc.peak_bps, float(row["bps"]))
            if row["source"] == "flows" and t in inc.flowless:
                inc.flowless.remove(t)
                _add_flow_detail(inc, row, float(row["pps"]) - inc.expected_pps)

    # ------------------------------------------------------------------ state machine
    def _step(
        self, node: str, st: _NodeState, s: DetectionSettings, r: dict[str, Any]
    ) -> list[Transition]:
        out: list[Transition] = []
        t = int(r["t"])
        inc = st.incident
        if inc is not None and st.newest is not None and t - st.newest >= s.silence_expiry_secs:
            out.append(self._resolve(node, st, st.newest + s.silence_expiry_secs, "no_data"))
            inc = None
        st.newest = t if st.newest is None else max(st.newest, t)
        trig = bool(r["trig"])
        elev = bool(r["elev"]) or trig
        if inc is None:
            if trig:
                if st.run_last is not None and t - st.run_last <= 2 and st.run_start is not None:
                    st.run_len += 1
                else:
                    st.run_start, st.run_len = t, 1
                st.run_last = t
                need = int(r["need"])
                if (
                    st.last_resolve is not None
                    and t - st.last_resolve < s.cooldown_secs
                    and need > 1
                ):
                    need = max(need, s.confirm_seconds)
                if st.run_len >= need:
                    out.append(self._open(node, st, s, r))
                    return out
            else:
                st.run_start, st.run_len, st.run_last = None, 0, None
            if elev:
                st.elev_run += 1
                st.calm_run = 0
                if st.status == "normal" and st.elev_run >= 3:
                    st.status = "elevated"
                    out.append(self._plain("elevated", node, st, t, r))
            else:
                st.calm_run += 1
                st.elev_run = 0
                if st.status == "elevated" and st.calm_run >= s.hold_down_secs:
                    st.status = "normal"
                    out.append(self._plain("normal", node, st, t, r))
            return out
        # an incident is open
        _accumulate(inc, r, attack=elev)
        if elev:
            inc.last_attack = t
            inc.normal_run = 0
        else:
            inc.normal_run += 1
        if inc.normal_run >= s.hold_down_secs and t - inc.last_attack >= s.bridge_secs:
            out.append(self._resolve(node, st, t, "normal"))
            return out
        if t - inc.last_tx >= s.update_interval_secs:
            _reclassify(inc, t)
            rank = ("low", "medium", "high", "critical")
            fam, sub, sev = ([*inc.tx_kind, None, None, None])[:3]
            if (
                inc.peak_pps > inc.tx_peak * 1.01
                or (inc.family, inc.subtype) != (fam, sub)
                or rank.index(inc.severity or "low") > rank.index(sev or "low")
            ):
                out.append(self._emit("update", node, st, t))
        return out

    def _open(
        self, node: str, st: _NodeState, s: DetectionSettings, r: dict[str, Any]
    ) -> Transition:
        t = int(r["t"])
        onset = st.run_start if st.run_start is not None else t
        metric = str(r["metric"] or "pps")
        expected = float(r["E_pps"] or 0.0)
        thr = float(r["thr_pps"] or 0.0)
        inc = _Incident(
            id=f"{node}:{onset}",
            onset=onset,
            fired=t,
            metric=metric,
            observed=float(r["pps"]),
            baseline=expected,
            threshold=thr,
            multiplier=float(r["m_pps"] or 0.0),
            samples_above=st.run_len,
            last_attack=t,
            last_tx=t,
            expected_pps=expected,
        )
        st.incident = inc
        st.run_start, st.run_len, st.run_last = None, 0, None
        st.status = "normal"
        st.elev_run = st.calm_run = 0
        _accumulate(inc, r, attack=True)
        inc.peak_bps = max(inc.peak_bps, float(r["bps"]))
        _reclassify(inc, t)
        return self._emit("open", node, st, t)

    def _resolve(self, node: str, st: _NodeState, t: int, reason: str) -> Transition:
        inc = st.incident
        assert inc is not None
        _reclassify(inc, t)
        tr = self._emit("resolve", node, st, t, ended_reason=reason)
        st.incident = None
        st.last_resolve = t
        st.status = "normal"
        st.elev_run = st.calm_run = 0
        return tr

    def _emit(
        self, kind: str, node: str, st: _NodeState, t: int, ended_reason: str | None = None
    ) -> Transition:
        inc = st.incident
        assert inc is not None
        detection = {
            "onset_at": _ts(inc.onset),
            "fired_at": _ts(inc.fired),
            "metric": inc.metric,
            "observed": inc.observed,
            "baseline": inc.baseline,
            "threshold": inc.threshold,
            "multiplier": inc.multiplier,
            "samples_above": inc.samples_above,
            "source": "floodwatch",
            "detector": DETECTOR_VERSION,
        }
        tr = Transition(
            kind=kind,
            workspace=st.workspace,
            node=node,
            incident=inc.id,
            at=_ts(t),
            detection=detection,
            attack_family=inc.family,
            attack_subtype=inc.subtype,
            confidence=inc.confidence,
            severity=inc.severity,
            peak_pps=inc.peak_pps,
            peak_bps=inc.peak_bps,
            timeline=list(inc.timeline),
            breakdown=_breakdown(inc),
            ended_reason=ended_reason,
        )
        inc.timeline.clear()
        inc.last_tx = t
        inc.tx_peak = inc.peak_pps
        inc.tx_kind = [inc.family, inc.subtype, inc.severity]
        return tr

    def _plain(self, kind: str, node: str, st: _NodeState, t: int, r: dict[str, Any]) -> Transition:
        detection = {
            "metric": str(r.get("metric") or "pps"),
            "observed": float(r["pps"]),
            "baseline": float(r["E_pps"] or 0.0),
            "threshold": float(r["thr_pps"] or 0.0),
            "multiplier": float(r["m_pps"] or 0.0),
            "source": "floodwatch",
            "detector": DETECTOR_VERSION,
        }
        return Transition(
            kind=kind,
            workspace=st.workspace,
            node=node,
            incident=None,
            at=_ts(t),
            detection=detection,
            attack_family=None,
            attack_subtype=None,
            confidence=None,
            severity=None,
            peak_pps=float(r["pps"]),
            peak_bps=float(r["bps"]),
            timeline=[],
            breakdown={},
        )

    # ------------------------------------------------------------------ baselines
    def seed_baselines(self, rollups: pl.DataFrame) -> None:
        """Rebuild baselines of nodes not yet learning from 1-minute rollups (metrics_1m)."""
        self.baseline = seed_from_rollups(self.baseline, rollups)

    def baseline_now(self, node: str, at: datetime | None = None) -> dict[str, Any]:
        """Expected value and (mix-changed) threshold per series, from the node's current
        baseline (``at`` only selects the hour-of-day profile)."""
        med = levels_now(self.baseline, node)
        if not med:
            return {}
        s = self._settings.get(node) or DetectionSettings()
        learned = learned_minutes(self.baseline, node)
        if at is not None and self.baseline.profile.height:
            hod = int(at.timestamp()) // 3600 % 24
            prof = self.baseline.profile.filter(
                (pl.col("node") == node) & (pl.col("hod") == hod) & (pl.col("days") >= 2)
            )
            if prof.height:
                pp, bp = prof.select("pps_p", "bps_p").row(0)
                if med["L_pps"] is not None and pp is not None and pp > med["L_pps"]:
                    med["L_pps"] = pp
                if med["L_bps"] is not None and bp is not None and bp > med["L_bps"]:
                    med["L_bps"] = bp
        out: dict[str, Any] = {"learned_minutes": learned, "series": {}}
        warm = 1.0 + max(0.0, (60 - learned) / 60)
        for x in SERIES:
            lvl = med[f"L_{x}"]
            if lvl is None:
                continue
            c = LOG_OFFSET[x]
            noise = float(med.get(f"N_{x}") or 0.0)
            thr_log = max(math.log(s.multiplier), 2.2 * noise) * s.sensitivity_factor * warm
            out["series"][x] = {
                "expected": max(0.0, math.exp(lvl) - c),
                "threshold": max(0.0, math.exp(lvl + thr_log) - c),
            }
        return out

    # ------------------------------------------------------------------ persistence
    def state_bytes(self) -> bytes:
        """All state (baselines, open minutes, per-node incident state) as bytes."""
        meta = {
            "version": 1,
            "ws_newest": self._ws_newest,
            "nodes": {n: _node_to_json(st) for n, st in self._nodes.items()},
        }
        parts = [json.dumps(meta, sort_keys=True).encode()]
        for df in (
            self.baseline.hist,
            self.baseline.nodes,
            self.baseline.profile,
            self._pending,
        ):
            buf = io.BytesIO()
            df.write_ipc(buf)
            parts.append(buf.getvalue())
        blob = bytearray(_MAGIC)
        for p in parts:
            blob += struct.pack("<Q", len(p)) + p
        return bytes(blob)

    @classmethod
    def from_state(cls_, data: bytes, settings_lookup: SettingsLookup | None = None) -> Detector:
        if not data.startswith(_MAGIC):
            raise ValueError("not a detector state")
        pos = len(_MAGIC)
        parts: list[bytes] = []
        while pos < len(data):
            (n,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            parts.append(data[pos : pos + n])
            pos += n
        if len(parts) != 5:
            raise ValueError("truncated detector state")
        meta = json.loads(parts[0])
        det = cls_(settings_lookup)
        frames = [pl.read_ipc(io.BytesIO(p)) for p in parts[1:]]
        det.baseline = BaselineState(frames[0], frames[1], frames[2])
        det._pending = frames[3]
        det._ws_newest = {k: int(v) for k, v in meta["ws_newest"].items()}
        det._nodes = {n: _node_from_json(v) for n, v in meta["nodes"].items()}
        return det


# ---------------------------------------------------------------------- helpers


def _busy(st: _NodeState) -> bool:
    return st.incident is not None or st.status != "normal" or st.run_len > 0 or st.elev_run > 0


def _accumulate(inc: _Incident, r: dict[str, Any], attack: bool) -> None:
    t = int(r["t"])
    pps = float(r["pps"])
    bps = float(r["bps"])
    inc.peak_pps = max(inc.peak_pps, pps)
    inc.peak_bps = max(inc.peak_bps, bps)
    thr = float(r["thr_pps"] or 0.0)
    inc.timeline.append(
        {
            "t": _iso(t),
            "pps": pps,
            "bps": bps,
            "expected_pps": float(r["E_pps"] or 0.0),
            "threshold_pps": thr,
        }
    )
    if not attack:
        return
    inc.attack_secs += 1
    if thr > 0:
        inc.peak_over = max(inc.peak_over, pps / thr)
    inc.mix_max = max(inc.mix_max, float(r["mix"] or 0.0))
    for k in ("pps", "bytes", *_PROTOS, *_FLAGS, "frag", "dns", "gre", "esp", "psh", "urg"):
        v = r.get(f"ex_{k}")
        if v is not None:
            inc.ev[k] = inc.ev.get(k, 0.0) + max(0.0, float(v))
    for k in (*_PROTOS, *_FLAGS, "psh", "urg"):
        v = r.get(f"x_{k}")
        if v is not None:
            inc.obs[k] = inc.obs.get(k, 0.0) + float(v)
    if r.get("has_flows"):
        _add_ports(inc, r, pps, float(r.get("ex_pps") or 0.0))
    else:
        inc.flowless.append(t)
        if len(inc.flowless) > _FLOWLESS_KEEP:
            del inc.flowless[: len(inc.flowless) - _FLOWLESS_KEEP]


_FLOWLESS_KEEP = 120
_LATE_DETAIL = (
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


def _add_ports(inc: _Incident, r: dict[str, Any], pps: float, ex: float) -> None:
    inc.ev["flows"] = inc.ev.get("flows", 0.0) + 1.0
    for key, target in (("src", inc.src_ports), ("dst", inc.dst_ports)):
        port = r.get(f"top_{key}_port")
        share = r.get(f"top_{key}_port_share")
        if port is not None and share is not None:
            # the top port's packets, attributed to the excess as far as they reach
            amount = min(float(share) * pps, ex) if ex > 0 else 0.0
            target[str(int(port))] = target.get(str(int(port)), 0.0) + amount


def _add_flow_detail(inc: _Incident, r: dict[str, Any], ex: float) -> None:
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


def _reclassify(inc: _Incident, t: int) -> None:
    total = inc.ev.get("pps", 0.0)
    ports = {"src": _top_port(inc.src_ports, total), "dst": _top_port(inc.dst_ports, total)}
    inc.family, inc.subtype = cls.classify(inc.ev, ports)
    inc.severity = cls.severity(inc.peak_pps, inc.expected_pps, inc.peak_bps)
    proto_total = sum(inc.ev.get(k, 0.0) for k in _PROTOS)
    dominant = max((inc.ev.get(k, 0.0) for k in _PROTOS), default=0.0)
    inc.confidence = cls.confidence(
        inc.peak_over,
        inc.mix_max,
        t - inc.onset + 1,
        dominant / proto_total if proto_total > 0 else 0.0,
        inc.ev.get("flows", 0.0) > 0,
    )


def _pct(parts: dict[str, float], keys: tuple[str, ...], total: float) -> dict[str, float]:
    return {k: round(100.0 * parts.get(k, 0.0) / total, 1) if total > 0 else 0.0 for k in keys}


def _breakdown(inc: _Incident) -> dict[str, Any]:
    proto_total = sum(inc.obs.get(k, 0.0) for k in _PROTOS)
    out: dict[str, Any] = {
        "protocol_breakdown": _pct(inc.obs, _PROTOS, proto_total),
        "tcp_flags": _pct(inc.obs, (*_FLAGS, "psh", "urg"), inc.obs.get("tcp", 0.0)),
    }
    total = inc.ev.get("pps", 0.0)
    for key, ports in (("top_src_ports", inc.src_ports), ("top_dst_ports", inc.dst_ports)):
        if ports and total > 0:
            best = sorted(ports.items(), key=lambda kv: (-kv[1], int(kv[0])))[:5]
            out[key] = [{"port": int(p), "share": round(min(1.0, a / total), 3)} for p, a in best]
    return out


def _node_to_json(st: _NodeState) -> dict[str, Any]:
    d = dict(st.__dict__)
    if st.incident is not None:
        d["incident"] = dict(st.incident.__dict__)
    return d


def _node_from_json(d: dict[str, Any]) -> _NodeState:
    d = dict(d)
    inc = d.pop("incident", None)
    st = _NodeState(**d)
    if inc is not None:
        st.incident = _Incident(**inc)
    return st


def _with_params(df: pl.DataFrame, params: pl.DataFrame, uniform: bool) -> pl.DataFrame:
    """Per-node settings as columns: literals when every node has the same settings (the usual
    case, no join), else a join."""
    cols = [c for c in params.columns if c != "node"]
    if uniform:
        first = params.row(0, named=True)
        return df.with_columns(pl.lit(first[c]).alias(c) for c in cols)
    return df.join(params, on="node", how="left")


_BASE_SERIES = ("pps", "bps", *(f"{k}_pps" for k in (*_PROTOS, *_FLAGS, "frag")))
_DETAIL_INPUT = (
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
_FEAT_OUT = ("trig", "elev", "need", "m_pps", "thr_pps", "metric", "mix")


_FEAT_COLS = ("node", "t", "ex_pps", *_DETAIL_INPUT, *_FEAT_OUT)


#: smallest share distance that counts as one unit of traffic-mix change
_SHARE_FLOOR = 0.10
#: mix evidence from which two triggering seconds confirm, whatever the rate
_NEED2_MIX = 2.0
#: share of the excess packets that must be TCP for the bulk-transfer exemption
_BULK_TCP = 0.5


def _features(df: pl.DataFrame) -> pl.DataFrame:
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
    )
    calm = calm.select(_FEAT_COLS)
    if hot.height == 0:
        return calm
    return pl.concat([calm, _evidence(hot)], how="vertical_relaxed")


def _evidence(df: pl.DataFrame) -> pl.DataFrame:
    """Trigger evidence (see the module docstring) for the candidate rows of ``_features``."""
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
    # materialized in stages (small expression graphs plan much faster than one big one)
    df = df.with_columns(
        tvd.alias("_tvd"),
        tvdf.alias("_tvdf"),
        dfrag.alias("_dfrag"),
        dlen.alias("_dlen"),
        dsrc.alias("_dsrc"),
        bulk.alias("bulk"),
        non_tcp.alias("non_tcp"),
    )
    q_tcp = pl.max_horizontal(pl.lit(_SHARE_FLOOR), 2.0 * pl.col("Q_tcp").fill_null(0.0))
    q_ack = pl.max_horizontal(pl.lit(_SHARE_FLOOR), 2.0 * pl.col("Q_ack").fill_null(0.0))
    mix_pkt = pl.max_horizontal(
        pl.col("_tvd") / q_tcp,
        pl.col("_tvdf") / q_ack,
        pl.col("_dfrag") / 0.08,
        pl.when(src_on).then(-pl.col("_dsrc") / math.log(1.6)).otherwise(0.0).fill_null(0.0),
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
    need = (
        pl.when(((m >= 5.0) & (mixv >= 2.0)) | (m >= 12.0))
        .then(1)
        .when((m >= 2.5) | (mixv >= _NEED2_MIX))
        .then(2)
        .otherwise(pl.col("p_confirm"))
    )
    return df.with_columns(
        trig.alias("trig"),
        elev.alias("elev"),
        need.fill_null(pl.col("p_confirm")).alias("need"),
        pl.when(trig_pps).then(pl.lit("pps")).otherwise(pl.lit("bps")).alias("metric"),
    ).select(_FEAT_COLS)


def _details(df: pl.DataFrame) -> pl.DataFrame:
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
