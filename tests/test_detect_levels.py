"""The baseline's two ways to a level (lists copied to each target, or rolling windows over each
node's learned minutes plus an as-of join) give the same values, and the ones the model
defines: the median of the last ``HIST_MINUTES`` learned minutes strictly before the target."""

from __future__ import annotations

import statistics

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from detect import baseline
from detect.frames import SERIES

VALUE = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.floats(-5, 20))


@st.composite
def histories(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame]:
    schema = baseline._hist_schema()
    rows = []
    for n in range(draw(st.integers(1, 4))):
        minutes = sorted(draw(st.sets(st.integers(0, 200), max_size=40)))
        row: dict[str, object] = {"node": f"n{n}", "minutes": minutes}
        for col in schema:
            if col not in ("node", "minutes"):
                row[col] = [draw(VALUE) for _ in minutes]
        rows.append(row)
    full = pl.DataFrame(rows, schema=schema)
    pairs = draw(
        st.sets(st.tuples(st.integers(0, 5), st.integers(0, 220)), min_size=1, max_size=30)
    )
    targets = pl.DataFrame(
        {"node": [f"n{n}" for n, _ in pairs], "at": [m for _, m in pairs]},
        schema={"node": pl.String(), "at": pl.Int64()},
    )
    return full, targets


def _close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    assert isinstance(a, int | float) and isinstance(b, int | float)
    return abs(a - b) <= 1e-9 * max(1.0, abs(a))


@settings(max_examples=150, deadline=None)
@given(histories())
def test_lists_and_rolling_agree(case: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    full, targets = case
    a = baseline._levels_by_lists(full, targets, "at").sort("node", "at")
    b = baseline._levels_by_rolling(full, targets, "at").sort("node", "at")
    assert a.columns == b.columns
    for col in a.columns:
        for x, y in zip(a.get_column(col).to_list(), b.get_column(col).to_list(), strict=True):
            assert _close(x, y), (col, x, y)


@settings(max_examples=80, deadline=None)
@given(histories())
def test_level_is_the_median_of_the_window_before(case: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    full, targets = case
    by_node = {r["node"]: r for r in full.iter_rows(named=True)}
    got = baseline._levels_by_rolling(full, targets, "at")
    for r in got.iter_rows(named=True):
        hist = by_node.get(r["node"])
        before = [] if hist is None else [i for i, m in enumerate(hist["minutes"]) if m < r["at"]]
        assert r["_k"] == len(before)
        window = before[-baseline.HIST_MINUTES :]
        for s in SERIES:
            values = [hist[f"{s}_m"][i] for i in window if hist[f"{s}_m"][i] is not None]
            want = statistics.median(values) if values else None
            assert _close(r[f"L_{s}"], want), (s, r[f"L_{s}"], want)
