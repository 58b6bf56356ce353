"""The detection evaluation's own pieces: scenario generator, scoring, reference detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from benchmarks.bench_detect import Incident, attribute, collect, match, score
from benchmarks.detect_reference import ReferenceDetector, _Counts, classify
from benchmarks.detect_scenarios import (
    SCHEMA,
    AttackLabel,
    BenignEvent,
    NodeLabel,
    generate,
    size_bucket,
    wire_tables,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(secs: int) -> datetime:
    return T0 + timedelta(seconds=secs)


def attack(
    aid: str, node: str, onset: int, end: int, *, shape: str = "step", m: float = 5.0, **kw: Any
) -> AttackLabel:
    base: dict[str, Any] = {
        "workspace": "w",
        "family": "syn_flood",
        "subtype": "syn_flood",
        "duration_class": "short",
        "campaign": None,
        "baseline_pps": 1000.0,
        "attack_pps": (m - 1) * 1000.0,
    }
    base |= kw
    return AttackLabel(
        aid, node=node, onset=at(onset), end=at(end), multiplier=m, shape=shape, **base
    )


def incident(iid: str, node: str, onset: int, fired: int, family: str = "syn_flood") -> Incident:
    return Incident(iid, "w", node, at(onset), at(fired), family=family, subtype=family)


# ---------------------------------------------------------------------------------------------
# scoring


def test_match_window_is_onset_minus_5_to_end_plus_holddown_plus_120() -> None:
    a = attack("a", "n1", 1000, 1100)
    incs = [
        incident("early", "n1", 994, 999),  # 6 s before onset: no
        incident("edge", "n1", 995, 1000),  # 5 s before: yes
        incident("late", "n1", 1230, 1235),  # end + 10 + 120: yes
        incident("after", "n1", 1231, 1236),  # one second later: no
        incident("other", "n2", 1010, 1015),  # another node: no
    ]
    per_attack, per_incident = match([a], incs, holddown_secs=10)
    assert [i.incident for i in per_attack["a"]] == ["edge", "late"]
    assert per_incident == {"early": [], "edge": ["a"], "late": ["a"], "after": [], "other": []}


def test_score_recall_delay_false_and_family() -> None:
    attacks = [
        attack("a1", "n1", 1000, 1060, m=2.5),
        attack("a2", "n1", 5000, 5300, m=50, family="udp_flood", subtype="ntp_amplification"),
        attack("a3", "n2", 2000, 2400, m=500, shape="pulsed", pulse_on_secs=20, pulse_off_secs=20),
        attack("a4", "n2", 8000, 8020, m=4, campaign="c", family="icmp_flood"),
        attack("a5", "n1", 8010, 8030, m=4, campaign="c", family="icmp_flood"),
    ]
    incs = [
        incident("i1", "n1", 1000, 1004),
        incident("i2", "n1", 5001, 5006, family="syn_flood"),  # wrong family
        incident("i3", "n2", 2000, 2000),
        incident("i4", "n2", 2040, 2041),
        incident("i5", "n2", 2080, 2081),
        incident("f1", "n1", 3000, 3005),  # backup
        incident("f2", "n2", 100, 105),  # warm-up
        incident("f3", "n2", 40000, 40005),  # noise
        incident("i6", "n1", 8012, 8013, family="icmp_flood"),
    ]
    events = [BenignEvent("w", "n1", "backup", at(2900), at(3100), 5.0)]
    nodes = [
        NodeLabel("w", "n1", "web", True, 1000.0, 86400, 0, 1.0),
        NodeLabel("w", "n2", "web", False, 1000.0, 86400, 0, 1.0),
    ]
    first = {"n1": at(0), "n2": at(0)}
    r = score(attacks, incs, events, nodes, first, holddown_secs=10)
    assert r["detected"] == 4 and r["attacks"] == 5
    assert r["recall_by_size"]["2-3x"] == {"attacks": 1, "detected": 1, "recall_pct": 100.0}
    assert r["recall_by_size"]["3-10x"]["detected"] == 1
    assert r["false_incidents"] == 3
    assert r["false_per_100_node_days"] == 150.0
    assert r["false_by_cause"] == {"backup": 1, "noise": 1, "warm-up": 1}
    # delays: 4, 6, 0, 3 -> median (nearest rank) 3, max 6
    assert r["delay_secs"] == {"median": 3.0, "p90": 6.0, "max": 6.0}
    assert r["family_accuracy_pct"] == 75.0
    assert r["pulsed"] == {
        "attacks": 1,
        "detected": 1,
        "one_incident": 0,
        "incidents_per_detected_mean": 3.0,
        "incidents_max": 3,
    }
    assert r["campaigns"]["campaigns"] == 1
    assert r["campaigns"]["all_nodes_detected"] == 0
    assert r["campaigns"]["some_nodes_detected"] == 1


def test_dns_reflection_accepts_dns_flood_family() -> None:
    a = attack("a", "n", 100, 200, family="udp_flood", subtype="dns_amplification")
    nodes = [NodeLabel("w", "n", "dns", True, 1.0, 1, 0, 1.0)]
    r = score([a], [incident("i", "n", 100, 105, "dns_flood")], [], nodes, {}, 10)
    assert r["family_accuracy_pct"] == 100.0


def test_attribute_after_attack_and_silence() -> None:
    a = attack("a", "n", 3000, 3100)
    silence = BenignEvent("w", "n", "silence", at(5000), at(5600), 0.0)
    first = {"n": at(0)}
    assert attribute(incident("x", "n", 1000, 1005), [], [a], first, 10) == "warm-up"
    assert attribute(incident("x", "n", 3500, 3505), [], [a], first, 10) == "after attack"
    assert attribute(incident("x", "n", 5620, 5625), [silence], [a], first, 10) == "silence"
    assert attribute(incident("x", "n", 9000, 9005), [silence], [a], first, 10) == "noise"


@dataclass
class _T:
    kind: str
    incident: str | None
    at: datetime
    workspace: str = "w"
    node: str = "n"
    detection: dict[str, Any] = field(default_factory=dict)
    attack_family: str | None = None
    attack_subtype: str | None = None
    peak_pps: float = 0.0


def test_collect_folds_open_update_resolve() -> None:
    incs: dict[str, Incident] = {}
    det = {"onset_at": at(10), "fired_at": at(14)}
    collect([_T("open", "n:10", at(14), detection=det, attack_family="udp_flood")], incs)
    collect([_T("elevated", None, at(15))], incs)
    collect(
        [
            _T("update", "n:10", at(20), attack_family="multi_vector", peak_pps=5.0),
            _T("resolve", "n:10", at(40), attack_family="multi_vector", attack_subtype="x"),
        ],
        incs,
    )
    inc = incs["n:10"]
    assert (inc.onset, inc.fired_at, inc.end) == (at(10), at(14), at(40))
    assert (inc.family, inc.subtype, inc.families) == (
        "multi_vector",
        "x",
        ["udp_flood", "multi_vector"],
    )
    assert inc.peak_pps == 5.0


def test_size_buckets() -> None:
    assert [size_bucket(m) for m in (1.5, 2.0, 2.99, 3.0, 10.0, 99.0, 100.0, 5000.0)] == [
        "2-3x",
        "2-3x",
        "2-3x",
        "3-10x",
        "10-100x",
        "10-100x",
        "100-1000x",
        "100-1000x",
    ]


# ---------------------------------------------------------------------------------------------
# generator


def _small(seed: int = 3) -> Any:
    return generate(seed=seed, nodes=6, days=0.25, attacks_per_node_day=16)


@pytest.fixture(scope="module")
def small_frame() -> tuple[Any, pl.DataFrame]:
    scen = _small()
    return scen, pl.concat(list(scen.frames()))


def test_generator_is_deterministic(small_frame: tuple[Any, pl.DataFrame]) -> None:
    scen, frame = small_frame
    again = _small()
    assert again.attacks == scen.attacks and again.events == scen.events
    assert pl.concat(list(again.frames())).equals(frame)
    other = generate(seed=4, nodes=6, days=0.25, attacks_per_node_day=16)
    assert other.attacks != scen.attacks


def test_frames_schema_order_and_chunks(small_frame: tuple[Any, pl.DataFrame]) -> None:
    scen, frame = small_frame
    assert dict(frame.schema) == SCHEMA
    assert frame.select(pl.struct("node", "time", "source").is_unique().all()).item()

    chunks = list(scen.frames())
    assert all(c["workspace"].n_unique() == 1 for c in chunks)
    ends = [c["time"].max() for c in chunks]
    starts = [c["time"].min() for c in chunks]
    assert all(
        s >= e - timedelta(seconds=scen.chunk_secs)
        for s, e in zip(starts[1:], ends[:-1], strict=True)
    )
    flows = frame.filter(pl.col("source") == "flows")
    metrics = frame.filter(pl.col("source") == "arrow")
    assert flows.height and metrics.height
    assert flows["top_dst_port"].null_count() == 0
    assert metrics["top_dst_port"].null_count() == metrics.height
    parts = frame.select(
        pl.col("tcp_pps")
        + pl.col("udp_pps")
        + pl.col("icmp_pps")
        + pl.col("other_pps")
        - pl.col("pps")
    )
    assert parts.to_series().abs().max() < 1e-6 * frame["pps"].max()  # type: ignore[operator]
    assert (
        frame.select(pl.all_horizontal(pl.col(c) >= 0 for c in ("pps", "bps", "syn_pps")))
        .to_series()
        .all()
    )


def test_both_feed_nodes_send_metrics_and_flows_rows() -> None:
    scen = generate(seed=1, nodes=12, days=0.02)
    feeds = {p.node: p.feed for p in scen.profiles}
    assert set(feeds.values()) == {"metrics", "flows", "both"}
    frame = pl.concat(list(scen.frames()))
    per_node = frame.group_by("node").agg(pl.col("source").unique().sort().alias("sources"))
    expect = {"metrics": ["arrow"], "flows": ["flows"], "both": ["arrow", "flows"]}
    for node, sources in per_node.iter_rows():
        assert sources == expect[feeds[node]]
    both = frame.filter(pl.col("node").is_in([n for n, f in feeds.items() if f == "both"]))
    pairs = both.group_by("node", "time").agg(
        pl.len().alias("n"), (pl.col("pps").max() - pl.col("pps").min()).alias("d")
    )
    assert pairs["n"].to_list() == [2] * pairs.height and pairs["d"].max() == 0.0
    detail = both.filter(pl.col("source") == "arrow")["top_dst_port"]
    assert detail.null_count() == detail.len()


def _expected(scen: Any, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        expected=pl.struct("node", "time").map_elements(
            lambda r: scen.expected_pps(r["node"], r["time"]), return_dtype=pl.Float64
        )
    )


def test_attack_seconds_carry_the_labelled_multiplier(
    small_frame: tuple[Any, pl.DataFrame],
) -> None:
    scen, frame = small_frame
    assert len(scen.attacks) >= 5
    for a in scen.attacks:
        rows = frame.filter((pl.col("node") == a.node) & pl.col("time").is_between(a.onset, a.end))
        full = rows.filter(pl.col("time").map_elements(a.full_rate, return_dtype=pl.Boolean))
        assert full.height >= 1, a
        ratio = _expected(scen, full).select(pl.col("pps") / pl.col("expected")).to_series()
        assert 0.7 * a.multiplier < ratio.median() < 1.35 * a.multiplier, (a, ratio.median())
        # the first attack second is the labelled onset, and the second before carries no attack
        before = frame.filter(
            (pl.col("node") == a.node) & (pl.col("time") == a.onset - timedelta(seconds=1))
        )
        if before.height and a.multiplier > 20 and a.shape != "ramp":
            first = rows.filter(pl.col("time") == a.onset)
            assert first["pps"].item() > 2 * before["pps"].item()


def test_benign_seconds_carry_no_attack(small_frame: tuple[Any, pl.DataFrame]) -> None:
    scen, frame = small_frame
    mask = pl.lit(False)
    for a in scen.attacks:
        mask = mask | ((pl.col("node") == a.node) & pl.col("time").is_between(a.onset, a.end))
    benign = _expected(scen, frame.filter(~mask).sample(n=20000, seed=1))
    ratio = benign.select(pl.col("pps") / pl.col("expected")).to_series()
    assert ratio.max() < 8  # type: ignore[operator]
    assert ratio.median() == pytest.approx(1.0, abs=0.25)


def test_wire_tables_add_up() -> None:
    scen = generate(seed=5, nodes=4, days=0.01)
    frame = next(iter(scen.frames()))
    metrics, flows = wire_tables(frame)
    assert metrics.num_rows == frame.select("node", "time").unique().height
    assert {"time", "node", "pps", "bps", "distinct_sources"} <= set(metrics.column_names)
    flow_nodes = frame.filter(pl.col("source") == "flows")
    if flow_nodes.height:
        per_sec = pl.from_arrow(flows).group_by("node", "time").agg(pl.col("packets").sum())  # type: ignore[union-attr]
        joined = flow_nodes.join(per_sec, on=["node", "time"])
        assert (
            joined.select(((pl.col("packets") - pl.col("pps")).abs() / pl.col("pps")).max()).item()
            < 0.05
        )


# ---------------------------------------------------------------------------------------------
# reference detector


def _rows(n: int, pps: list[float], **cols: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "workspace": ["w"] * n,
            "node": ["n"] * n,
            "time": [at(i) for i in range(n)],
            "source": ["arrow"] * n,
            "pps": pps,
            "bps": [p * 8 * 500 for p in pps],
            **{k: [v * p for p in pps] for k, v in cols.items()},
        }
    )


def test_reference_opens_and_resolves_a_syn_flood() -> None:
    n = 700
    pps = [3000.0] * 500 + [80000.0] * 100 + [3000.0] * 100
    frame = _rows(
        n, pps, tcp_pps=0.95, udp_pps=0.05, icmp_pps=0.0, other_pps=0.0, syn_pps=0.9, ack_pps=0.02
    )
    frame = frame.with_columns(
        pl.col(c).cast(pl.Float64)
        for c in ("tcp_pps", "udp_pps", "icmp_pps", "other_pps", "syn_pps", "ack_pps")
    )
    det = ReferenceDetector()
    trs = det.process(frame[:550]) + det.process(frame[550:])
    assert [t.kind for t in trs] == ["open", "resolve"]
    assert trs[0].at == at(500)  # >= 5 x 10,000 pps: at once
    assert trs[0].attack_family == "syn_flood"
    assert trs[1].at == at(609)
    assert trs[1].incident == f"n:{int(at(500).timestamp())}"


def test_reference_classify_amplification_by_source_port() -> None:
    c = _Counts()
    c.c |= {"pps": 100.0, "udp": 98.0, "tcp": 2.0, "bytes": 100.0 * 468}
    c.src_ports = {123: 95.0}
    assert classify(c, at_open=False) == ("udp_flood", "ntp_amplification")
    c.c["frag"] = 70.0
    assert classify(c, at_open=False) == ("fragment_flood", "ip_fragment_flood")
