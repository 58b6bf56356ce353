"""Properties of the detector: quiet on constant and seasonal traffic, scale-free above the
floors, every incident resolves, batch boundaries and state round trips change nothing."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detect.engine import Detector, Transition
from tests.test_detect_engine import ATTACKS, START, WARM, WEB, frame, rows_for

PROP = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def key(tr: Transition) -> tuple[Any, ...]:
    return (
        tr.kind,
        tr.node,
        tr.incident,
        tr.at,
        tuple(sorted(tr.detection.items())),
        tr.attack_family,
        tr.attack_subtype,
        tr.confidence,
        tr.severity,
        tr.peak_pps,
        tr.peak_bps,
        tuple(tuple(sorted(p.items())) for p in tr.timeline),
        tr.ended_reason,
    )


def in_batches(rows: list[dict[str, Any]], cuts: list[int], det: Detector | None = None):
    det = det or Detector()
    df = frame(rows)
    bounds = sorted({0, df.height, *(c % max(1, df.height) for c in cuts)})
    out: list[Transition] = []
    for lo, hi in itertools.pairwise(bounds):
        out.extend(det.process(df.slice(lo, hi - lo)))
    return out


mixes = st.fixed_dictionaries(
    {
        "tcp": st.floats(0.05, 0.95),
        "icmp": st.floats(0.0, 0.05),
        "other": st.floats(0.0, 0.05),
        "syn": st.floats(0.0, 0.1),
        "ack": st.floats(0.1, 0.5),
        "len": st.floats(80.0, 1200.0),
        "src": st.floats(2.0, 300.0),
    }
)


def full_mix(m: dict[str, float]) -> dict[str, float]:
    tcp = m["tcp"]
    udp = max(0.0, 1.0 - tcp - m["icmp"] - m["other"])
    return {
        **WEB,
        **m,
        "udp": udp,
        "syn": m["syn"] * tcp,
        "ack": m["ack"] * tcp,
        "rst": 0.01 * tcp,
        "fin": 0.02 * tcp,
    }


@PROP
@given(level=st.floats(10.0, 2e6), mix=mixes, noise=st.floats(0.0, 0.15), seed=st.integers(0, 99))
def test_no_incident_on_constant_traffic(
    level: float, mix: dict[str, float], noise: float, seed: int
) -> None:
    rows = rows_for(START, 2 * WARM, base=level, mix=full_mix(mix), noise=noise, seed=seed)
    assert [t for t in Detector().process(frame(rows)) if t.kind == "open"] == []


@PROP
@given(
    level=st.floats(500.0, 1e6),
    ratio=st.floats(1.5, 6.0),
    period_h=st.floats(1.0, 4.0),
    phase=st.floats(0.0, 6.3),
    seed=st.integers(0, 99),
)
def test_no_incident_on_seasonal_traffic(
    level: float, ratio: float, period_h: float, phase: float, seed: int
) -> None:
    """A daily-like rhythm (compressed to a period of 1-4 h, so much steeper than a day)."""
    amp = math.log(ratio) / 2
    period = period_h * 3600

    def base(i: int) -> float:
        return level * math.exp(amp * math.cos(2 * math.pi * i / period + phase))

    rows = rows_for(START, 3 * 3600, base=base, seed=seed)
    assert [t for t in Detector().process(frame(rows)) if t.kind == "open"] == []


def _verdict(trs: list[Transition]) -> list[tuple[Any, ...]]:
    return [
        (t.kind, t.at, t.attack_family, t.attack_subtype, t.detection.get("onset_at"))
        for t in trs
        if t.incident is not None
    ]


@PROP
@given(
    scale=st.floats(1.0, 100.0),
    attack=st.sampled_from(sorted(ATTACKS)),
    mult=st.floats(3.0, 50.0),
)
def test_verdict_unchanged_by_scaling(scale: float, attack: str, mult: float) -> None:
    kw: dict[str, Any] = {
        "attack": attack,
        "attack_from": WARM,
        "attack_secs": 90,
        "mult": mult,
        "noise": 0.03,
    }
    base = rows_for(START, WARM + 300, base=5000.0, **kw)
    scaled = rows_for(START, WARM + 300, base=5000.0, scale=scale, **kw)
    a = _verdict(Detector().process(frame(base)))
    b = _verdict(Detector().process(frame(scaled)))
    assert a == b
    assert a  # the attack is seen at every scale


@PROP
@given(
    attack=st.sampled_from(sorted(ATTACKS)),
    mult=st.floats(2.0, 300.0),
    secs=st.integers(5, 400),
    on=st.integers(0, 60),
    off=st.integers(5, 60),
)
def test_every_incident_resolves(attack: str, mult: float, secs: int, on: int, off: int) -> None:
    rows = rows_for(
        START,
        WARM + secs + 400,
        attack=attack,
        attack_from=WARM,
        attack_secs=secs,
        mult=mult,
        on_off=(on, off) if on else None,
    )
    trs = Detector().process(frame(rows))
    open_ids = {t.incident for t in trs if t.kind == "open"}
    resolved = {t.incident for t in trs if t.kind == "resolve"}
    assert open_ids == resolved
    for inc in open_ids:
        mine = [t for t in trs if t.incident == inc]
        assert mine[0].kind == "open" and mine[-1].kind == "resolve"
        assert [t.kind for t in mine].count("resolve") == 1


scenario = st.fixed_dictionaries(
    {
        "attack": st.sampled_from(sorted(ATTACKS)),
        "mult": st.floats(2.0, 100.0),
        "secs": st.integers(3, 300),
        "pulse": st.sampled_from([None, (10, 20), (30, 60)]),
        "flows": st.booleans(),
        "at": st.integers(WARM - 300, WARM + 300),
    }
)


def _rows(sc: dict[str, Any]) -> list[dict[str, Any]]:
    a = rows_for(
        START,
        WARM + 1000,
        attack=sc["attack"],
        attack_from=sc["at"],
        attack_secs=sc["secs"],
        mult=sc["mult"],
        on_off=sc["pulse"],
        flows=sc["flows"],
    )
    b = rows_for(START, WARM + 1000, node="node-b", seed=7)
    merged = a + b
    merged.sort(key=lambda r: (r["time"], r["node"]))
    # a few missing seconds
    return [r for r in merged if not (r["node"] == "node-b" and r["time"].second == 13)]


@PROP
@given(sc=scenario, cuts=st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_same_transitions_whatever_the_batch_boundaries(
    sc: dict[str, Any], cuts: list[int]
) -> None:
    rows = _rows(sc)
    whole = [key(t) for t in in_batches(rows, [])]
    split = [key(t) for t in in_batches(rows, cuts)]
    assert sorted(split, key=repr) == sorted(whole, key=repr)


@PROP
@given(sc=scenario, cut=st.integers(1, 2 * (WARM + 1000) - 1))
def test_state_round_trip_gives_same_future(sc: dict[str, Any], cut: int) -> None:
    rows = _rows(sc)
    df = frame(rows)
    a = Detector()
    a.process(df.slice(0, cut))
    b = Detector.from_state(a.state_bytes())
    rest = df.slice(cut)
    assert [key(t) for t in a.process(rest)] == [key(t) for t in b.process(rest)]


def test_batch_boundary_inside_a_minute_and_hour() -> None:
    """Deterministic spot check: cuts at odd seconds around an hour boundary."""
    rows = rows_for(
        START + timedelta(seconds=1234),
        WARM + 2600,
        attack="syn_flood",
        attack_from=2366,
        attack_secs=50,
        mult=4.0,
    )
    whole = [key(t) for t in in_batches(rows, [])]
    split = [key(t) for t in in_batches(rows, [7, 2365, 2366, 2367, 2399, 2401, 3599])]
    assert whole == split
    assert any(k[0] == "open" for k in whole)
