"""Detection evaluation: Floodwatch's detector and ftagent's rule on the same labeled scenarios.

``python -m benchmarks.bench_detect [--seed N] [--nodes N] [--days D] [--chunk-secs S]
[--quick | --full] [--no-speed] [--json FILE]``

The default run (16 nodes x 1.5 days, speed at 10k/100k/1M node-seconds) takes about 3 minutes
here (4 min while other jobs loaded both cores); ``--full`` is 24 nodes x 2 days; ``--quick``
8 nodes x 0.5 day with small speed cases.

Both detectors get the same time-ordered node-second chunks of ``detect_scenarios.generate``
(``--chunk-secs`` of every workspace at a time, 300 s by default: the detector's verdicts do not
depend on batch boundaries, a property ``tests/test_detect_properties.py`` checks, so larger
chunks only save per-call overhead; the speed section measures small calls separately).
An incident *matches* an attack of the same node when its onset lies in
``[onset - 5 s, end + hold-down + 120 s]``; an attack is *detected* when at least one incident
matches it. An incident that matches no attack is a *false incident*, attributed to the benign
event of its node whose span (widened the same way) holds its onset, else to ``warm-up`` (first
30 min of a node), ``after attack`` (within 30 min after an attack's match window) or ``noise``.
The scoring functions are pure and tested in ``tests/test_detect_scenarios.py``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import polars as pl

from benchmarks.detect_reference import ReferenceDetector
from benchmarks.detect_scenarios import (
    SIZE_BUCKETS,
    AttackLabel,
    BenignEvent,
    NodeLabel,
    generate,
)

PRE_SLACK = timedelta(seconds=5)
POST_SLACK = timedelta(seconds=120)
WARMUP = timedelta(minutes=30)
AFTERMATH = timedelta(minutes=30)
# families a label also accepts (DNS reflection is a DNS flood in ftagent's vocabulary)
ACCEPT_FAMILY: dict[tuple[str, str], set[str]] = {
    ("udp_flood", "dns_amplification"): {"dns_flood"},
}


class Detector(Protocol):
    def process(self, frame: pl.DataFrame) -> list[Any]: ...


@dataclass
class Incident:
    incident: str
    workspace: str
    node: str
    onset: datetime
    fired_at: datetime
    end: datetime | None = None
    family: str | None = None
    subtype: str | None = None
    families: list[str] = field(default_factory=list)
    peak_pps: float = 0.0


# ---------------------------------------------------------------------------------------------
# pure scoring


def collect(transitions: Iterable[Any], incidents: dict[str, Incident]) -> None:
    """Fold transitions into ``incidents`` (by incident id); the last family/subtype wins."""
    for tr in transitions:
        if tr.incident is None:
            continue
        inc = incidents.get(tr.incident)
        if inc is None:
            det = tr.detection
            inc = incidents[tr.incident] = Incident(
                tr.incident,
                tr.workspace,
                tr.node,
                det.get("onset_at") or tr.at,
                det.get("fired_at") or tr.at,
            )
        if tr.attack_family:
            inc.family = tr.attack_family
            if not inc.families or inc.families[-1] != tr.attack_family:
                inc.families.append(tr.attack_family)
        if tr.attack_subtype:
            inc.subtype = tr.attack_subtype
        inc.peak_pps = max(inc.peak_pps, float(tr.peak_pps or 0.0))
        if tr.kind == "resolve":
            inc.end = tr.at


def match_window(a: AttackLabel, holddown_secs: int) -> tuple[datetime, datetime]:
    return a.onset - PRE_SLACK, a.end + timedelta(seconds=holddown_secs) + POST_SLACK


def match(
    attacks: list[AttackLabel], incidents: list[Incident], holddown_secs: int
) -> tuple[dict[str, list[Incident]], dict[str, list[str]]]:
    """(attack id -> matching incidents by onset, incident id -> matched attack ids)."""
    by_node: dict[str, list[AttackLabel]] = {}
    for a in attacks:
        by_node.setdefault(a.node, []).append(a)
    per_attack: dict[str, list[Incident]] = {a.attack_id: [] for a in attacks}
    per_incident: dict[str, list[str]] = {}
    for inc in sorted(incidents, key=lambda i: i.onset):
        hits = []
        for a in by_node.get(inc.node, []):
            lo, hi = match_window(a, holddown_secs)
            if lo <= inc.onset <= hi:
                per_attack[a.attack_id].append(inc)
                hits.append(a.attack_id)
        per_incident[inc.incident] = hits
    return per_attack, per_incident


def family_ok(a: AttackLabel, family: str | None) -> bool:
    return family == a.family or family in ACCEPT_FAMILY.get((a.family, a.subtype), set())


def subtype_ok(a: AttackLabel, subtype: str | None) -> bool:
    return subtype == a.subtype


def attribute(
    inc: Incident,
    events: list[BenignEvent],
    attacks: list[AttackLabel],
    first_seen: dict[str, datetime],
    holddown_secs: int,
) -> str:
    """The benign cause of a false incident."""
    for e in events:
        if e.node != inc.node:
            continue
        lo = e.start - PRE_SLACK
        hi = e.end + timedelta(seconds=holddown_secs) + POST_SLACK
        if e.kind in ("silence", "restart"):
            hi = e.end + timedelta(seconds=holddown_secs + 60)
        if lo <= inc.onset <= hi:
            return e.kind
    first = first_seen.get(inc.node)
    if first is not None and inc.onset < first + WARMUP:
        return "warm-up"
    for a in attacks:
        if a.node == inc.node:
            _, hi = match_window(a, holddown_secs)
            if hi < inc.onset <= hi + AFTERMATH:
                return "after attack"
    return "noise"


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 1) if den else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def score(
    attacks: list[AttackLabel],
    incidents: list[Incident],
    events: list[BenignEvent],
    nodes: list[NodeLabel],
    first_seen: dict[str, datetime],
    holddown_secs: int = 10,
) -> dict[str, Any]:
    """Every figure of the report, from labels and incidents alone."""
    per_attack, per_incident = match(attacks, incidents, holddown_secs)
    detected = {aid for aid, incs in per_attack.items() if incs}

    def recall(group: Callable[[AttackLabel], str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for a in attacks:
            g = out.setdefault(group(a), {"attacks": 0, "detected": 0})
            g["attacks"] += 1
            g["detected"] += a.attack_id in detected
        for g in out.values():
            g["recall_pct"] = _pct(g["detected"], g["attacks"])
        return dict(sorted(out.items()))

    delays = []
    delay_of: dict[str, float] = {}
    fam_ok = sub_ok = 0
    fam_by_feed: dict[str, list[int]] = {}
    fam_confusion: dict[str, dict[str, int]] = {}
    for a in attacks:
        incs = per_attack[a.attack_id]
        if not incs:
            continue
        first = incs[0]
        delays.append((first.fired_at - a.onset).total_seconds())
        delay_of[a.attack_id] = delays[-1]
        fam_ok += family_ok(a, first.family)
        cell = fam_by_feed.setdefault(_feed(a, nodes), [0, 0])
        cell[0] += family_ok(a, first.family)
        cell[1] += 1
        sub_ok += subtype_ok(a, first.subtype)
        row = fam_confusion.setdefault(f"{a.family}/{a.subtype}", {})
        key = f"{first.family}/{first.subtype}"
        row[key] = row.get(key, 0) + 1
    false = [i for i in incidents if not per_incident.get(i.incident)]
    causes: dict[str, int] = {}
    for inc in false:
        cause = attribute(inc, events, attacks, first_seen, holddown_secs)
        causes[cause] = causes.get(cause, 0) + 1
    benign_days = sum(n.benign_node_days for n in nodes)
    pulsed = [len(per_attack[a.attack_id]) for a in attacks if a.shape == "pulsed"]
    pulsed_detected = [k for k in pulsed if k]
    campaigns: dict[str, list[bool]] = {}
    for a in attacks:
        if a.campaign:
            campaigns.setdefault(a.campaign, []).append(a.attack_id in detected)
    n_matched = len(delays)
    return {
        "attacks": len(attacks),
        "detected": len(detected),
        "recall_pct": _pct(len(detected), len(attacks)),
        "recall_by_size": recall(lambda a: a.bucket),
        "recall_by_shape": recall(lambda a: a.shape),
        "recall_by_duration": recall(lambda a: a.duration_class),
        "recall_by_family": recall(lambda a: a.family),
        "recall_by_source": recall(lambda a: _feed(a, nodes)),
        "delay_secs": {
            "median": _quantile(delays, 0.5),
            "p90": _quantile(delays, 0.9),
            "max": max(delays) if delays else None,
        },
        "incidents": len(incidents),
        "false_incidents": len(false),
        "benign_node_days": round(benign_days, 2),
        "false_per_100_node_days": round(100.0 * len(false) / benign_days, 1)
        if benign_days
        else None,
        "false_by_cause": dict(sorted(causes.items())),
        "family_accuracy_pct": _pct(fam_ok, n_matched),
        "family_accuracy_by_feed": {k: _pct(*v) for k, v in sorted(fam_by_feed.items())},
        "delay_by_attack": delay_of,
        "subtype_accuracy_pct": _pct(sub_ok, n_matched),
        "family_confusion": fam_confusion,
        "pulsed": {
            "attacks": len(pulsed),
            "detected": len(pulsed_detected),
            "one_incident": sum(1 for k in pulsed_detected if k == 1),
            "incidents_per_detected_mean": round(sum(pulsed_detected) / len(pulsed_detected), 2)
            if pulsed_detected
            else None,
            "incidents_max": max(pulsed) if pulsed else 0,
        },
        "campaigns": {
            "campaigns": len(campaigns),
            "all_nodes_detected": sum(all(v) for v in campaigns.values()),
            "some_nodes_detected": sum(any(v) for v in campaigns.values()),
            "node_recall_pct": _pct(
                sum(sum(v) for v in campaigns.values()), sum(len(v) for v in campaigns.values())
            ),
        },
    }


def _feed(a: AttackLabel, nodes: list[NodeLabel]) -> str:
    """How the attacked node reports: ``metrics``, ``flows`` or ``both``."""
    for n in nodes:
        if n.node == a.node:
            return n.feed if n.feed else ("flows" if n.has_flows else "metrics")
    return "metrics"


# ---------------------------------------------------------------------------------------------
# running the detectors


def floodwatch_detector() -> tuple[Any | None, str]:
    try:
        from detect.engine import Detector as FloodwatchDetector
    except ImportError as exc:
        return None, f"detect.engine not importable ({exc})"
    try:
        return FloodwatchDetector(), ""
    except TypeError:
        from detect.settings import DetectionSettings

        settings = DetectionSettings()
        return FloodwatchDetector(lambda ws, node: settings), ""


def floodwatch_holddown() -> int:
    try:
        from detect.settings import DetectionSettings
    except ImportError:
        return 10
    s = DetectionSettings()
    for name in ("holddown_secs", "hold_down_secs", "attack_holddown", "resolve_after_secs"):
        if hasattr(s, name):
            return int(getattr(s, name))
    return 10


def run_scenario(args: argparse.Namespace) -> dict[str, Any]:
    scen = generate(seed=args.seed, nodes=args.nodes, days=args.days, chunk_secs=args.chunk_secs)
    detectors: dict[str, Any] = {"ftagent rule": ReferenceDetector()}
    fw, why = floodwatch_detector()
    if fw is not None:
        detectors = {"floodwatch": fw, **detectors}
    incidents: dict[str, dict[str, Incident]] = {k: {} for k in detectors}
    secs: dict[str, float] = dict.fromkeys(detectors, 0.0)
    errors: dict[str, str] = {}
    first_seen: dict[str, datetime] = {}
    rows = 0
    t_gen = time.perf_counter()
    gen_secs = 0.0
    for frame in scen.frames():
        gen_secs += time.perf_counter() - t_gen
        rows += frame.height
        for node, t in frame.group_by("node").agg(pl.col("time").min()).iter_rows():
            first_seen.setdefault(node, t)
        for name, det in detectors.items():
            if name in errors:
                continue
            t0 = time.perf_counter()
            try:
                trs = det.process(frame)
            except Exception as exc:  # a detector under development may fail: report it
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            secs[name] += time.perf_counter() - t0
            collect(trs, incidents[name])
        t_gen = time.perf_counter()
    nodes = scen.node_labels()
    hold = {"floodwatch": floodwatch_holddown(), "ftagent rule": 10}
    results = {
        name: score(
            scen.attacks, list(incidents[name].values()), scen.events, nodes, first_seen, hold[name]
        )
        | {"process_secs": round(secs[name], 2), "error": errors.get(name)}
        for name in detectors
    }
    # delay on the attacks every detector found (the fair comparison of delays)
    common = set.intersection(*(set(r["delay_by_attack"]) for r in results.values()))
    for r in results.values():
        both = [r["delay_by_attack"][aid] for aid in common]
        r["delay_common_secs"] = {
            "attacks": len(both),
            "median": _quantile(both, 0.5),
            "p90": _quantile(both, 0.9),
        }
    return {
        "seed": args.seed,
        "nodes": args.nodes,
        "days": args.days,
        "chunk_secs": args.chunk_secs,
        "node_seconds": rows,
        "generate_secs": round(gen_secs, 1),
        "floodwatch_missing": why or None,
        "events": _count(e.kind for e in scen.events),
        "results": results,
    }


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in items:
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def _speed_fleet(n_nodes: int, warm_secs: int, secs: int, seed: int) -> pl.DataFrame:
    """``n_nodes`` benign nodes for ``warm_secs + secs`` seconds, sorted by time and node, one
    row per node-second (a ``both`` node's flows row, which carries every column), so the speed
    cases count node-seconds; merging a duplicated second costs extra and is not in them."""
    scen = generate(seed=seed, nodes=n_nodes, days=(warm_secs + secs) / 86400)
    t0 = int(scen.start.timestamp())
    blocks = [scen.node_block(p, t0, t0 + warm_secs + secs) for p in scen.profiles]
    rows = pl.concat(blocks)
    rows = rows.filter(
        pl.col("source").is_in(["flows"])
        | ~pl.col("node").is_in([p.node for p in scen.profiles if p.feed == "both"])
    )
    return rows.sort("time", "node")


def _make(name: str) -> Any:
    if name == "ftagent rule":
        return ReferenceDetector()
    det, _ = floodwatch_detector()
    return det


def _clone(det: Any) -> Any:
    """A copy of a warmed-up detector (its own state round trip when it has one)."""
    if hasattr(det, "state_bytes") and hasattr(type(det), "from_state"):
        return type(det).from_state(det.state_bytes())
    return copy.deepcopy(det)


def run_speed(names: list[str], quick: bool, full: bool, seed: int) -> dict[str, Any]:
    """``process`` calls on a detector that has seen ``warm`` seconds of the same nodes first
    (so per-node state and baselines exist), each timed alone on a fresh copy of that detector;
    the median of ``reps`` copies (one for 1M). The first two cases are single seconds: the
    fixed cost of a call, which is what a server pays per acknowledged batch."""
    warm = 30 if quick else 300
    reps = 1 if quick else 3
    cases: list[tuple[str, int, int]] = [
        ("1 s of 5 nodes (per-call cost)", 5, 1),
        ("1 s of 1000 nodes", 1000, 1),
        ("10k: 100 nodes x 100 s", 100, 100),
        ("100k: 1000 nodes x 100 s", 1000, 100),
    ]
    if not quick:
        cases.append(("1M: 1000 nodes x 1000 s", 1000, 1000))
    longest = max(secs for _, _, secs in cases)
    fleet = _speed_fleet(1000, warm, longest, seed)
    start: datetime = fleet["time"].min()  # type: ignore[assignment]
    nodes = fleet["node"].unique(maintain_order=True).to_list()

    def cut(n: int, secs: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        f = fleet.filter(pl.col("node").is_in(nodes[:n]))
        lo, hi = start + timedelta(seconds=warm), start + timedelta(seconds=warm + secs)
        return f.filter(pl.col("time") < lo), f.filter(pl.col("time").is_between(lo, hi, "left"))

    if full:
        extra = _speed_fleet(60, warm, 1667, seed + 1)
        first: datetime = extra["time"].min()  # type: ignore[assignment]
        lo = first + timedelta(seconds=warm)
        big = (extra.filter(pl.col("time") < lo), extra.filter(pl.col("time") >= lo))
    out: dict[str, Any] = {n: {} for n in names}
    for name in names:
        for label, n, secs in cases:
            before, frame = cut(n, secs)
            out[name][label] = _time_case(name, before, frame, reps)
        if full:
            out[name]["60 nodes x 1667 s"] = _time_case(name, *big, reps)
    # peak Python-heap memory of one 100k call (tracemalloc sees Python objects, not polars')
    before, frame = cut(1000, 100)
    for name in names:
        det = _make(name)
        det.process(before)
        tracemalloc.start()
        det.process(frame)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[name]["tracemalloc_peak_mib_100k"] = round(peak / 2**20, 1)
        if hasattr(det, "state_bytes"):
            try:
                out[name]["state_bytes_1000_nodes"] = len(det.state_bytes())
            except Exception as exc:
                out[name]["state_bytes_1000_nodes"] = f"{type(exc).__name__}: {exc}"
    out["process_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _time_case(name: str, before: pl.DataFrame, frame: pl.DataFrame, reps: int) -> dict[str, Any]:
    if frame.height >= 500_000:
        reps = 1  # the big case once: it is long enough not to need a median
    warmed = _make(name)
    warmed.process(before)
    times = []
    for _ in range(reps):
        det = _clone(warmed)
        gc.collect()
        t0 = time.perf_counter()
        det.process(frame)
        times.append(time.perf_counter() - t0)
    dt = sorted(times)[len(times) // 2]
    return {
        "rows": frame.height,
        "ms": round(dt * 1000, 1),
        "us_per_row": round(dt * 1e6 / frame.height, 2),
    }


# ---------------------------------------------------------------------------------------------
# printing


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def render(report: dict[str, Any]) -> str:
    res = report["results"]
    names = list(res)
    lines = [
        f"# Detection evaluation (seed {report['seed']}, {report['nodes']} nodes, "
        f"{report['days']} days, {report['node_seconds']:,} node-seconds, "
        f"{report.get('chunk_secs', 60)} s chunks)",
        "",
    ]
    if report.get("floodwatch_missing"):
        lines += [f"Floodwatch column missing: {report['floodwatch_missing']}", ""]
    for name in names:
        if res[name].get("error"):
            lines += [f"{name} FAILED: {res[name]['error']}", ""]
    head = "| | " + " | ".join(names) + " |"
    sep = "| --- |" + " --- |" * len(names)

    def table(title: str, rows: list[tuple[str, list[Any]]]) -> None:
        lines.extend([f"## {title}", "", head, sep])
        lines.extend("| " + k + " | " + " | ".join(_fmt(v) for v in vs) + " |" for k, vs in rows)
        lines.append("")

    def recall_rows(key: str, order: list[str] | None = None) -> list[tuple[str, list[Any]]]:
        groups = order or sorted({g for n in names for g in res[n][key]})
        rows = []
        for g in groups:
            cells = []
            for n in names:
                d = res[n][key].get(g)
                cells.append(f"{d['recall_pct']}% ({d['detected']}/{d['attacks']})" if d else None)
            rows.append((g, cells))
        return rows

    table(
        "Recall",
        [
            (
                "all attacks",
                [
                    f"{res[n]['recall_pct']}% ({res[n]['detected']}/{res[n]['attacks']})"
                    for n in names
                ],
            ),
            *recall_rows("recall_by_size", [b for b, _, _ in SIZE_BUCKETS]),
            *recall_rows("recall_by_shape"),
            *recall_rows("recall_by_duration"),
            *recall_rows("recall_by_source"),
        ],
    )
    table("Recall by family", recall_rows("recall_by_family"))
    table(
        "Delay onset -> fired_at (s)",
        [(k, [res[n]["delay_secs"][k] for n in names]) for k in ("median", "p90", "max")]
        + [
            (
                f"{k}, attacks both detect",
                [res[n].get("delay_common_secs", {}).get(k) for n in names],
            )
            for k in ("attacks", "median", "p90")
        ],
    )
    causes = sorted({c for n in names for c in res[n]["false_by_cause"]})
    table(
        "False incidents",
        [
            ("incidents (all)", [res[n]["incidents"] for n in names]),
            ("false incidents", [res[n]["false_incidents"] for n in names]),
            ("benign node-days", [res[n]["benign_node_days"] for n in names]),
            ("per 100 node-days", [res[n]["false_per_100_node_days"] for n in names]),
        ]
        + [(f"cause: {c}", [res[n]["false_by_cause"].get(c, 0) for n in names]) for c in causes],
    )
    table(
        "Classification of matched attacks (first incident)",
        [
            ("family accuracy %", [res[n]["family_accuracy_pct"] for n in names]),
            *(
                (
                    f"... on {feed} nodes",
                    [res[n].get("family_accuracy_by_feed", {}).get(feed) for n in names],
                )
                for feed in ("metrics", "flows", "both")
            ),
            ("subtype accuracy %", [res[n]["subtype_accuracy_pct"] for n in names]),
        ],
    )
    table(
        "Pulsed attacks and campaigns",
        [
            ("pulsed attacks", [res[n]["pulsed"]["attacks"] for n in names]),
            ("pulsed detected", [res[n]["pulsed"]["detected"] for n in names]),
            ("... as one incident", [res[n]["pulsed"]["one_incident"] for n in names]),
            (
                "... incidents per detected (mean)",
                [res[n]["pulsed"]["incidents_per_detected_mean"] for n in names],
            ),
            ("... incidents (max)", [res[n]["pulsed"]["incidents_max"] for n in names]),
            ("campaigns", [res[n]["campaigns"]["campaigns"] for n in names]),
            ("... every node detected", [res[n]["campaigns"]["all_nodes_detected"] for n in names]),
            ("... some node detected", [res[n]["campaigns"]["some_nodes_detected"] for n in names]),
            ("... node recall %", [res[n]["campaigns"]["node_recall_pct"] for n in names]),
        ],
    )
    lines.append(
        "Detector time over the scenario (s): "
        + ", ".join(f"{n} {res[n]['process_secs']}" for n in names)
        + f"; generator {report['generate_secs']} s"
    )
    lines.append("")
    lines.append("Misclassified (label -> first incident's family/subtype: count):")
    for n in names:
        lines.append(f"- {n}:")
        conf = res[n]["family_confusion"]
        for label in sorted(conf):
            wrong = {k: v for k, v in conf[label].items() if k != label}
            if wrong:
                lines.append(f"  - {label} -> " + ", ".join(f"{k}: {v}" for k, v in wrong.items()))
    lines.append("")
    speed = report.get("speed")
    if speed:
        lines += ["## Speed (one process call, after warm-up rows of the same nodes)", ""]
        snames = [n for n in names if n in speed]
        lines += ["| case | " + " | ".join(snames) + " |", "| --- |" + " --- |" * len(snames)]
        for case in speed[snames[0]]:
            if isinstance(speed[snames[0]][case], dict):
                cells = [
                    f"{speed[n][case]['ms']} ms ({speed[n][case]['us_per_row']} us/row)"
                    for n in snames
                ]
                lines.append(f"| {case} | " + " | ".join(cells) + " |")
        for key in ("tracemalloc_peak_mib_100k", "state_bytes_1000_nodes"):
            lines.append(f"| {key} | " + " | ".join(_fmt(speed[n].get(key)) for n in snames) + " |")
        lines += ["", f"Process max RSS: {speed['process_max_rss_mib']} MiB", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--days", type=float, default=None)
    ap.add_argument("--chunk-secs", type=int, default=300, help="seconds per detector call")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="8 nodes x 0.5 day, small speed cases")
    size.add_argument("--full", action="store_true", help="24 nodes x 2 days, every speed case")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--json", default=None, help="write the whole report as JSON here")
    args = ap.parse_args(argv)
    if args.nodes is None:
        args.nodes = 8 if args.quick else 24 if args.full else 16
    if args.days is None:
        args.days = 0.5 if args.quick else 2.0 if args.full else 1.5
    t0 = time.perf_counter()
    report = run_scenario(args)
    if not args.no_speed:
        names = [n for n, r in report["results"].items() if not r.get("error")]
        report["speed"] = run_speed(names, args.quick, args.full, args.seed)
    report["wall_secs"] = round(time.perf_counter() - t0, 1)
    print(render(report))
    print(f"\nwall time {report['wall_secs']} s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
