"""Scoring and the printed report of the held-out evaluation (``heldout_eval`` runs it).

An incident matches an attack of its node when it starts between 30 s before the onset and
150 s after the end (or started earlier and was still open at the onset); the first match
counts, later ones make the attack "split", incidents that match nothing are false. Scored:
recall by size band, shape and kind; delay onset -> ``detection.fired_at``; false incidents per
100 benign node-days; family and subtype accuracy; severity against the documented grades;
campaigns; the ``detection`` fields; the live floods' visibility.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .heldout_traffic import ATTACK_KINDS, Event, NodeProfile

if TYPE_CHECKING:
    from .heldout_eval import Plan

__all__ = ["Label", "print_report", "score", "ts"]

DETECTION_KEYS = (
    "onset_at", "fired_at", "metric", "observed", "baseline", "threshold", "multiplier",
    "samples_above", "source", "detector",
)  # fmt: skip
WIRE_METRICS = {
    "pps", "bps", "tcp_pps", "udp_pps", "icmp_pps", "other_pps", "syn_pps", "ack_pps",
    "rst_pps", "fin_pps", "frag_pps", "distinct_sources", "avg_pkt_len",
}  # fmt: skip
BANDS = ((2.0, 3.0, "2-3x"), (3.0, 10.0, "3-10x"), (10.0, 100.0, "10-100x"), (100.0, 1e9, ">=100x"))


def ts(x: str | None) -> float | None:
    if not x:
        return None
    return datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _band(m: float) -> str:
    for lo, hi, name in BANDS:
        if lo <= m < hi:
            return name
    return "<2x"


@dataclass
class Label:
    ev: Event
    node: NodeProfile
    onset: int
    end: int
    peak_pps: float = 0.0
    incident: dict[str, Any] | None = None
    extra: list[dict[str, Any]] = field(default_factory=list)
    wall_onset_sent: float | None = None  # live: wall time the onset second's batch was posted
    wall_onset_acked: float | None = None
    wall_seen: float | None = None


def _fields_problems(inc: dict[str, Any], det_d: dict[str, Any]) -> list[str]:
    out: list[str] = []
    d = inc.get("detection") or {}
    for k in DETECTION_KEYS:
        if k not in d:
            out.append(f"detection.{k} missing")
        elif d[k] is None:
            out.append(f"detection.{k} null")
    if d.get("onset_at") and inc.get("started_at") != d.get("onset_at"):
        out.append(f"started_at {inc.get('started_at')} != onset_at {d.get('onset_at')}")
    on, fi = ts(d.get("onset_at")), ts(d.get("fired_at"))
    if on is not None and fi is not None and fi < on:
        out.append("fired_at before onset_at")
    obs, base, thr, mul = (d.get(k) for k in ("observed", "baseline", "threshold", "multiplier"))
    if isinstance(obs, int | float) and isinstance(base, int | float) and base > 0:
        if isinstance(mul, int | float) and abs(mul - obs / base) > 0.02 * max(1.0, mul):
            out.append(f"multiplier {mul} != observed/baseline {obs / base:.3g}")
        if isinstance(thr, int | float) and obs < thr:
            out.append(f"observed {obs:.4g} < threshold {thr:.4g}")
        if isinstance(thr, int | float) and thr < base:
            out.append(f"threshold {thr:.4g} < baseline {base:.4g}")
    if d.get("metric") and d.get("metric") not in WIRE_METRICS:
        out.append(f"metric {d.get('metric')!r} not a wire column")
    if d.get("source") not in ("floodwatch", "ftagent"):
        out.append(f"detection.source {d.get('source')!r}")
    sa = d.get("samples_above")
    if isinstance(sa, int) and sa < 1:
        out.append(f"samples_above {sa}")
    if inc.get("source") != "floodwatch":
        out.append(f"source {inc.get('source')!r}")
    if det_d.get("detection") != inc.get("detection"):
        out.append("Get Incident detection differs from the list's")
    for k in ("attack_family", "severity", "started_at", "campaign_id", "attack_subtype"):
        if det_d.get(k) != inc.get(k) and inc.get("status") == det_d.get("status"):
            out.append(f"Get Incident {k} differs from the list's")
    if inc.get("family") != inc.get("attack_family"):
        out.append("family != attack_family")
    return out


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


def _label_str(lab: Label) -> str:
    e = lab.ev
    shape = e.shape + (
        f"({e.ramp}s)" if e.shape == "ramp" else f"({e.on}/{e.off}s)" if e.shape == "pulsed" else ""
    )
    return (
        f"{lab.node.name} [{lab.node.base_pps:,.0f}pps base, b0 {e.b0:,.0f}, "
        f"{'flows' if lab.node.flows else 'metrics-only'}] {e.attack} {e.mult:.1f}x {shape} "
        f"{_iso(lab.onset)}..{_iso(lab.end)} ({lab.end - lab.onset}s)"
        f"{' live' if e.phase == 'live' else ''}"
        f"{f' campaign {e.campaign}' if e.campaign is not None else ''}"
    )


def _inc_str(inc: dict[str, Any]) -> str:
    d = inc.get("detection") or {}
    return (
        f"{inc.get('attack_family')}/{inc.get('attack_subtype')} sev {inc.get('severity')} "
        f"started {inc.get('started_at')} fired {d.get('fired_at')} resolved "
        f"{inc.get('resolved_at')} metric {d.get('metric')} obs {d.get('observed')} base "
        f"{d.get('baseline')} thr {d.get('threshold')} x{d.get('multiplier')} "
        f"peak {inc.get('peak_pps')} camp {inc.get('campaign_id')}"
    )


def score(
    plan: Plan,
    profiles: list[NodeProfile],
    by_uuid: dict[str, NodeProfile],
    events: list[Event],
    labels: list[Label],
    incidents: list[dict[str, Any]],
    details: dict[str, dict[str, Any]],
    benign_rows: int,
    live: dict[str, Any],
) -> dict[str, Any]:
    now = time.time()
    by_node: dict[str, list[Label]] = defaultdict(list)
    for lab in labels:
        by_node[lab.node.uuid].append(lab)
    false_inc: list[dict[str, Any]] = []
    for inc in sorted(incidents, key=lambda i: ts(i["started_at"]) or 0):
        s = ts(inc["started_at"]) or 0
        r = ts(inc.get("resolved_at")) or now
        best = None
        for lab in by_node.get(inc["node_uuid"], []):
            if lab.onset - 30 <= s < lab.end + 150 or (s < lab.onset and r > lab.onset):
                best = lab
                break
        if best is None:
            false_inc.append(inc)
        elif best.incident is None:
            best.incident = inc
        else:
            best.extra.append(inc)

    # benign time: every node-second sent outside attack windows (onset-30 .. end+150)
    attack_secs = sum(min(lab.end + 150, 10**12) - (lab.onset - 30) for lab in labels)
    live_rows = int(live.get("rows", 0))
    benign_days = max(1e-9, (benign_rows + live_rows - attack_secs) / 86400)

    # recall by band, shape, kind
    rows_band: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows_shape: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    delays: list[float] = []
    delays_by_shape: dict[str, list[float]] = defaultdict(list)
    delays_band: dict[str, list[float]] = defaultdict(list)
    fam_ok = fam_n = sub_ok = sub_n = 0
    fam_wrong: list[str] = []
    sub_wrong: list[str] = []
    missed: list[str] = []
    split: list[str] = []
    slow: list[str] = []
    sev_low: list[str] = []
    for lab in labels:
        band = _band(lab.ev.mult)
        hit = lab.incident is not None
        for tab, key in ((rows_band, band), (rows_shape, lab.ev.shape), (rows_kind, lab.ev.attack)):
            tab[key][0] += 1
            tab[key][1] += int(hit)
        if not hit:
            missed.append(_label_str(lab) + f" peak {lab.peak_pps:,.0f}pps")
            continue
        assert lab.incident is not None
        inc = lab.incident
        if lab.extra:
            split.append(
                _label_str(lab)
                + f": {1 + len(lab.extra)} incidents: "
                + " | ".join(_inc_str(i) for i in [inc, *lab.extra])
            )
        fired = ts((inc.get("detection") or {}).get("fired_at"))
        if fired is not None:
            dl = fired - lab.onset
            delays.append(dl)
            delays_by_shape[lab.ev.shape].append(dl)
            delays_band[band].append(dl)
            if dl > 5:
                slow.append(f"{dl:.0f}s: " + _label_str(lab) + " -> " + _inc_str(inc))
        kind = ATTACK_KINDS[lab.ev.attack]
        accepted = kind.families if lab.node.flows else kind.families_metrics
        fam_n += 1
        if inc.get("attack_family") in accepted:
            fam_ok += 1
        else:
            fam_wrong.append(
                f"expected {'/'.join(accepted)}: " + _label_str(lab) + " -> " + _inc_str(inc)
            )
        if lab.node.flows and kind.subtype:
            sub_n += 1
            if inc.get("attack_subtype") == kind.subtype:
                sub_ok += 1
            else:
                sub_wrong.append(
                    f"expected subtype {kind.subtype}: " + _label_str(lab) + " -> " + _inc_str(inc)
                )
        # documented severity: relative grade by peak over expected, absolute by pps/bps
        rel = lab.peak_pps / max(lab.ev.b0, 1.0)
        want = "critical" if rel >= 50 else "high" if rel >= 10 else "medium" if rel >= 4 else "low"
        order = ["low", "medium", "high", "critical"]
        if order.index(inc.get("severity", "low")) < order.index(want):
            sev_low.append(
                f"severity {inc.get('severity')} < {want} (peak/expected {rel:.0f}x): "
                + _label_str(lab)
            )

    # campaigns
    camp: dict[int, list[Label]] = defaultdict(list)
    for lab in labels:
        if lab.ev.campaign is not None:
            camp[lab.ev.campaign].append(lab)
    camp_rows = []
    for c, labs in sorted(camp.items()):
        ids = [lab.incident.get("campaign_id") if lab.incident else "MISSED" for lab in labs]
        fams = [lab.incident.get("attack_family") if lab.incident else None for lab in labs]
        starts = [(ts(lab.incident["started_at"]) or 0) if lab.incident else None for lab in labs]
        hit_ids = [i for i in ids if i != "MISSED"]
        ok = len(hit_ids) >= 3 and len(set(hit_ids)) == 1 and hit_ids[0] is not None
        camp_rows.append(
            {
                "campaign": c,
                "kind": labs[0].ev.attack,
                "nodes": len(labs),
                "ids": ids,
                "families": fams,
                "incident_start_spread_s": (
                    max(s for s in starts if s is not None)
                    - min(s for s in starts if s is not None)
                    if any(s is not None for s in starts)
                    else None
                ),
                "shared": ok,
            }
        )

    # fields
    field_problems: Counter[str] = Counter()
    field_examples: dict[str, str] = {}
    for inc in incidents:
        for prob in _fields_problems(inc, details.get(inc["uuid"], {})):
            key = prob.split(" ")[0] if "differs" not in prob and "missing" not in prob else prob
            key = prob if len(prob) < 60 and not any(ch.isdigit() for ch in prob) else key
            field_problems[key] += 1
            field_examples.setdefault(key, f"{prob} [{inc['node_name']} {inc['started_at']}]")

    # false incidents: what were they near
    def near(inc: dict[str, Any]) -> str:
        s = ts(inc["started_at"]) or 0
        p = by_uuid.get(inc["node_uuid"])
        if p is None:
            return "?"
        tags = []
        for e in events:
            if e.node == p.idx and e.kind != "attack" and e.start - 180 <= s <= e.end + 180:
                syn = f" syn x{e.mult:.1f}" if e.kind == "flash" and e.mult > 1 else ""
                tags.append(f"{e.kind}({e.factor:.1f}x{syn} {_iso(e.start)}..{_iso(e.end)})")
        return ", ".join(tags) or "plain benign"

    false_lines = [
        f"{inc['node_name']} [{by_uuid[inc['node_uuid']].base_pps:,.0f}pps "
        f"{by_uuid[inc['node_uuid']].role}"
        f"{' heavy-tail' if by_uuid[inc['node_uuid']].heavy else ''}"
        f" sigma {by_uuid[inc['node_uuid']].sigma:.2f}] near {near(inc)}: {_inc_str(inc)}"
        for inc in false_inc
    ]

    live_rows_out = []
    for lab in labels:
        if lab.ev.phase != "live":
            continue
        vis = (
            lab.wall_seen - lab.wall_onset_sent
            if lab.wall_seen is not None and lab.wall_onset_sent is not None
            else None
        )
        live_rows_out.append(
            {
                "label": _label_str(lab),
                "detected": lab.incident is not None,
                "visible_after_s": None if vis is None else round(vis, 2),
                "fired_delay_s": (
                    (ts(lab.incident["detection"]["fired_at"]) or 0) - lab.onset
                    if lab.incident and lab.incident.get("detection")
                    else None
                ),
                "family": lab.incident.get("attack_family") if lab.incident else None,
                "subtype": lab.incident.get("attack_subtype") if lab.incident else None,
            }
        )

    n_att = len(labels)
    n_hit = sum(lab.incident is not None for lab in labels)
    ge3 = [lab for lab in labels if lab.ev.mult >= 3]
    rep: dict[str, Any] = {
        "plan": plan.__dict__,
        "attacks": n_att,
        "detected": n_hit,
        "recall": n_hit / max(1, n_att),
        "recall_ge3x": sum(lab.incident is not None for lab in ge3) / max(1, len(ge3)),
        "n_ge3x": len(ge3),
        "recall_by_band": {k: v for k, v in sorted(rows_band.items())},
        "recall_by_shape": dict(rows_shape),
        "recall_by_kind": dict(sorted(rows_kind.items())),
        "delay_median": statistics.median(delays) if delays else None,
        "delay_p90": _pct(delays, 0.9),
        "delay_by_shape": {
            k: (statistics.median(v), _pct(v, 0.9), len(v)) for k, v in delays_by_shape.items()
        },
        "delay_by_band": {
            k: (statistics.median(v), _pct(v, 0.9), len(v)) for k, v in sorted(delays_band.items())
        },
        "false_incidents": len(false_inc),
        "benign_node_days": benign_days,
        "false_per_100_node_days": len(false_inc) / benign_days * 100,
        "family_accuracy": fam_ok / max(1, fam_n),
        "family_n": fam_n,
        "subtype_accuracy": sub_ok / max(1, sub_n) if sub_n else None,
        "subtype_n": sub_n,
        "split_attacks": len(split),
        "incidents_total": len(incidents),
        "campaigns": camp_rows,
        "field_problems": dict(field_problems),
        "field_examples": field_examples,
        "severity_below_doc": len(sev_low),
        "live": {**live, "floods": live_rows_out},
        "missed": missed,
        "false": false_lines,
        "family_wrong": fam_wrong,
        "subtype_wrong": sub_wrong,
        "splits": split,
        "slow_over_5s": slow,
        "severity_low": sev_low,
    }
    print_report(rep)
    return rep


def print_report(r: dict[str, Any]) -> None:
    def ok(flag: bool) -> str:
        return "PASS" if flag else "FAIL"

    print("\n" + "=" * 100)
    print("HELD-OUT DETECTION EVALUATION")
    print("=" * 100)
    p = r["plan"]
    print(
        f"nodes {p['nodes']}, days {p['days']}, seed {p['seed']}; "
        f"{r['incidents_total']} incidents read back"
    )
    print(f"attacks {r['attacks']}, detected {r['detected']} (recall {r['recall']:.1%})")
    print(
        f"recall >= 3x: {r['recall_ge3x']:.1%} of {r['n_ge3x']}  target >= 99%  "
        f"{ok(r['recall_ge3x'] >= 0.99)}"
    )
    print(
        "recall by band:   "
        + "  ".join(
            f"{k}: {v[1]}/{v[0]} ({v[1] / max(1, v[0]):.0%})"
            for k, v in r["recall_by_band"].items()
        )
    )
    for title, key in (("shape:  ", "recall_by_shape"), ("kind:   ", "recall_by_kind")):
        print(f"recall by {title}" + "  ".join(f"{k}: {v[1]}/{v[0]}" for k, v in r[key].items()))
    dm, d90 = r["delay_median"], r["delay_p90"]
    print(
        f"delay onset->fired_at: median {dm}s, p90 {d90}s  target <= 2 / <= 5  "
        f"{ok(dm is not None and dm <= 2 and d90 <= 5)}"
    )
    for title, key in (
        ("shape (median, p90, n): ", "delay_by_shape"),
        ("band (median, p90, n):  ", "delay_by_band"),
    ):
        print(
            f"delay by {title}"
            + "  ".join(f"{k}: {v[0]:.0f}/{v[1]:.0f}/{v[2]}" for k, v in r[key].items())
        )
    print(
        f"false incidents: {r['false_incidents']} over {r['benign_node_days']:.1f} benign node-days"
        f" = {r['false_per_100_node_days']:.1f} per 100 node-days  target <= 1  "
        f"{ok(r['false_per_100_node_days'] <= 1)}"
    )
    print(
        f"family accuracy: {r['family_accuracy']:.1%} of {r['family_n']}  target >= 95%  "
        f"{ok(r['family_accuracy'] >= 0.95)}"
    )
    if r["subtype_accuracy"] is not None:
        print(f"subtype accuracy (flow nodes): {r['subtype_accuracy']:.1%} of {r['subtype_n']}")
    print(f"attacks split into several incidents: {r['split_attacks']}")
    print(f"severity below the documented grade: {r['severity_below_doc']}")
    print("campaigns:")
    for c in r["campaigns"]:
        print(
            f"  #{c['campaign']} {c['kind']} on {c['nodes']} nodes: shared={c['shared']} "
            f"ids={c['ids']}"
            f" families={c['families']} start spread {c['incident_start_spread_s']}"
        )
    print("field problems: " + (json.dumps(r["field_problems"]) if r["field_problems"] else "none"))
    for v in r["field_examples"].values():
        print(f"  e.g. {v}")
    lv = r["live"]
    print(
        f"live: nodes {lv.get('nodes')}, {lv.get('polls')} polls, sender late "
        f"{lv.get('late_count')}x (max {lv.get('late_secs_max', 0):.2f}s)"
    )
    for f in lv.get("floods", []):
        v = f["visible_after_s"]
        print(
            f"  {f['label']}: visible after {v}s {ok(v is not None and v <= 2)}; fired "
            f"+{f['fired_delay_s']}s; {f['family']}/{f['subtype']}"
        )
    for title, key in (
        ("MISSED ATTACKS", "missed"),
        ("FALSE INCIDENTS", "false"),
        ("WRONG FAMILY", "family_wrong"),
        ("WRONG SUBTYPE", "subtype_wrong"),
        ("SPLIT ATTACKS", "splits"),
        ("DELAY > 5 s", "slow_over_5s"),
        ("SEVERITY BELOW DOCUMENTED GRADE", "severity_low"),
    ):
        print(f"\n{title} ({len(r[key])}):")
        for line in r[key]:
            print("  - " + line)
    sys.stdout.flush()
