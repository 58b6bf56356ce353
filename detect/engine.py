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

- **confirmation**: consecutive triggering seconds; 2 from 2.5x or with a strongly changed mix
  (``mix >= 2``: the mix is evidence of its own, and a ramp is caught a second earlier), else
  ``confirm_seconds`` (3); never one second alone unless ``confirm_seconds`` is 1. After a
  resolve, during ``cooldown_secs``, small excesses need the full ``confirm_seconds``.
- **open** at the confirming second; ``onset_at`` is the first second of the run.
- while open, a second counts as attack when it triggers or is merely elevated (hysteresis);
  **update** at most every ``update_interval_secs`` when the peak grew, the family/subtype
  changed or the severity rose (while the peak holds, family and severity are looked at again
  at most every ``RECHECK_SECS``). The seconds of an open incident are folded into it in
  ranges (``detect.incident.NodeRows.fold``), not one by one.
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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from detect.baseline import (
    LOG_OFFSET,
    BaselineState,
    learned_minutes,
    levels_now,
    seed_from_rollups,
    update,
)
from detect.evidence import DETAIL_INPUT, FEAT_OUT, details, features, with_params
from detect.frames import NODE_SECOND_SCHEMA, SERIES, normalize
from detect.incident import (
    FLAGS,
    LATE_DETAIL,
    PROTOS,
    IncidentState,
    NodeRows,
    PassRows,
    add_flow_detail,
    breakdown,
    reclassify,
    ts,
)
from detect.settings import DetectionSettings

__all__ = ["DETECTOR_VERSION", "Detector", "Transition"]

DETECTOR_VERSION = "floodwatch-detect/1.0"
_MAGIC = b"FWDET1\n"

SettingsLookup = Callable[[str, str], DetectionSettings]

#: while an open incident's peak does not grow, its family and severity are classified again
#: at most this often (an update for a changed family may come this much later)
RECHECK_SECS = 30


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
    incident: IncidentState | None = None


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
    "d_obs",
    "d_base",
    "d_thr",
    "top_src_port",
    "top_src_port_share",
    "top_dst_port",
    "top_dst_port_share",
    "has_flows",
    *(f"x_{k}" for k in (*PROTOS, *FLAGS, "psh", "urg")),
    *(f"ex_{k}" for k in ("pps", "bytes", *PROTOS, *FLAGS, "frag", "dns", "gre", "esp")),
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
            new_hi: pl.DataFrame | None = None
        else:  # the usual case: every row is newer than its node's newest second
            late = df.head(0)
            new = df.drop("t")
            new_hi = pl.DataFrame(
                {
                    "node": [n for _, n, _, _ in spans],
                    "lo": [lo for _, _, lo, _ in spans],
                    "hi": [hi for _, _, _, hi in spans],
                },
                schema={"node": pl.String(), "lo": pl.Int64(), "hi": pl.Int64()},
            )
        # baselines: kept rows of the open minute plus the new rows
        self.baseline, leveled, self._pending = update(self.baseline, self._pending, new, new_hi)
        feats = features(with_params(leveled, params, self._params_uniform))
        out.extend(self._run_nodes(feats, late, [(n, hi) for _, n, _, hi in spans]))
        # silence expiry, measured on each workspace's newest row
        for ws, _, _, t in spans:
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
        feats = feats.select("node", "t", "ex_pps", *DETAIL_INPUT, *FEAT_OUT)
        active = set(hot) | set(busy_state)
        if active:
            sel = feats.filter(pl.col("node").is_in(pl.Series(list(active)).implode()))
            sel = details(sel).sort("node", "t")
            cols = [c for c in _ROW_COLS if c in sel.columns]
            for node, rows in PassRows(sel.select("node", *cols)).nodes():
                st = self._nodes[node]
                s = self.settings_for(st.workspace, node)
                out.extend(self._step_rows(node, st, s, rows))
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
        cols = ("node", "t", "pps", "bps", "source", *LATE_DETAIL)
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
                add_flow_detail(inc, row, float(row["pps"]) - inc.expected_pps)

    # ------------------------------------------------------------------ state machine
    def _step_rows(
        self, node: str, st: _NodeState, s: DetectionSettings, rows: NodeRows
    ) -> list[Transition]:
        """Run one node's seconds (in time order) through its state machine. An open
        incident's seconds are folded into it in ranges (``NodeRows.fold``): from ``acc`` up to
        the second before the one being looked at, whenever the incident is classified, emitted
        or resolved, and at the end."""
        out: list[Transition] = []
        acc = 0
        peak = st.incident.peak_pps if st.incident is not None else 0.0
        t_list, trig_list, elev_list, pps_list = rows.t, rows.trig, rows.elev, rows.pps
        rank = ("low", "medium", "high", "critical")
        for i in range(rows.n):
            t = t_list[i]
            inc = st.incident
            if inc is not None and st.newest is not None and t - st.newest >= s.silence_expiry_secs:
                rows.fold(inc, acc, i)
                out.append(self._resolve(node, st, st.newest + s.silence_expiry_secs, "no_data"))
                inc = None
            st.newest = t if st.newest is None else max(st.newest, t)
            trig = trig_list[i]
            elev = elev_list[i]
            if inc is None:
                if trig:
                    last = st.run_last
                    if st.run_start is not None and last is not None and t - last <= 2:
                        st.run_len += 1
                    else:
                        st.run_start, st.run_len = t, 1
                    st.run_last = t
                    need = int(rows.need[i])
                    if (
                        st.last_resolve is not None
                        and t - st.last_resolve < s.cooldown_secs
                        and need > 1
                    ):
                        need = max(need, s.confirm_seconds)
                    if st.run_len >= need:
                        out.append(self._open(node, st, rows, i))
                        acc = i + 1
                        peak = st.incident.peak_pps if st.incident is not None else 0.0
                        continue
                else:
                    st.run_start, st.run_len, st.run_last = None, 0, None
                if elev:
                    st.elev_run += 1
                    st.calm_run = 0
                    if st.status == "normal" and st.elev_run >= 3:
                        st.status = "elevated"
                        out.append(self._plain("elevated", node, st, t, rows.row(i)))
                else:
                    st.calm_run += 1
                    st.elev_run = 0
                    if st.status == "elevated" and st.calm_run >= s.hold_down_secs:
                        st.status = "normal"
                        out.append(self._plain("normal", node, st, t, rows.row(i)))
                continue
            # an incident is open
            peak = max(peak, pps_list[i])
            if elev:
                inc.last_attack = t
                inc.normal_run = 0
            else:
                inc.normal_run += 1
            if inc.normal_run >= s.hold_down_secs and t - inc.last_attack >= s.bridge_secs:
                rows.fold(inc, acc, i + 1)
                out.append(self._resolve(node, st, t, "normal"))
                continue
            if t - inc.last_tx >= s.update_interval_secs and (
                peak > inc.tx_peak * 1.01
                or t - inc.last_check >= max(s.update_interval_secs, RECHECK_SECS)
            ):
                rows.fold(inc, acc, i + 1)
                acc = i + 1
                reclassify(inc, t)
                fam, sub, sev = ([*inc.tx_kind, None, None, None])[:3]
                if (
                    inc.peak_pps > inc.tx_peak * 1.01
                    or (inc.family, inc.subtype) != (fam, sub)
                    or rank.index(inc.severity or "low") > rank.index(sev or "low")
                ):
                    out.append(self._emit("update", node, st, t))
        if st.incident is not None:
            rows.fold(st.incident, acc, rows.n)
        return out

    def _open(self, node: str, st: _NodeState, rows: NodeRows, i: int) -> Transition:
        r = rows.row(i)
        t = int(r["t"])
        onset = st.run_start if st.run_start is not None else t
        metric = str(r["metric"] or "pps")
        expected = float(r["E_pps"] or 0.0)
        # the fired series' own figures (``d_*``, set on every triggering row), so that
        # observed >= threshold and multiplier = observed / baseline hold as documented
        observed = float(r["d_obs"])
        base = float(r["d_base"] or 0.0)
        thr = float(r["d_thr"] or 0.0)
        mult = observed / base if base > 0 else float(r["m_pps"] or 0.0)
        inc = IncidentState(
            id=f"{node}:{onset}",
            onset=onset,
            fired=t,
            metric=metric,
            observed=observed,
            baseline=base,
            threshold=thr,
            multiplier=mult,
            samples_above=st.run_len,
            last_attack=t,
            last_tx=t,
            expected_pps=expected,
        )
        st.incident = inc
        st.run_start, st.run_len, st.run_last = None, 0, None
        st.status = "normal"
        st.elev_run = st.calm_run = 0
        rows.fold(inc, i, i + 1)
        reclassify(inc, t)
        return self._emit("open", node, st, t)

    def _resolve(self, node: str, st: _NodeState, t: int, reason: str) -> Transition:
        inc = st.incident
        assert inc is not None
        reclassify(inc, t)
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
            "onset_at": ts(inc.onset),
            "fired_at": ts(inc.fired),
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
            at=ts(t),
            detection=detection,
            attack_family=inc.family,
            attack_subtype=inc.subtype,
            confidence=inc.confidence,
            severity=inc.severity,
            peak_pps=inc.peak_pps,
            peak_bps=inc.peak_bps,
            timeline=list(inc.timeline),
            breakdown=breakdown(inc),
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
            at=ts(t),
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
        st.incident = IncidentState(**inc)
    return st
