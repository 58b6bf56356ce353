"""Per-node, per-series baselines: robust, attack-proof, updated at fixed event-time boundaries.

Model (all in log space, ``y = ln(x + c)`` with a small per-series offset ``c`` so that zero
rates are fine and tiny series are not noisy):

1. **Minute summaries.** Every completed minute of a node gives, per series, the median of its
   *learnable* seconds and their spread (90th percentile minus median). A minute counts when it
   has at least ``MIN_SECONDS`` learnable seconds. (The order statistics are taken of the
   rates and then moved to log space, which picks the same second; a median of an even count
   is the mean of the two middle rates.) A minute is complete when a row of a later
   minute of the same node arrives, so the same rows always make the same summaries, however
   they are cut into batches (the rows of the open minute are kept in the detector state).
2. **Level and noise.** The level of a series is the median of the node's last ``HIST_MINUTES``
   (15) minute medians; its noise is the median within-minute spread plus the spread between
   the minute medians (80th percentile minus median). Medians are selections, not sums, so
   levels are bit-identical whatever the batch boundaries, and robust: up to 7 bad minutes out
   of 15 do not move them. The level of a second is the one after the minutes *before* its
   minute, so it tracks the daily and weekly rhythm with a lag of about 7 minutes (the steepest
   daily curve moves about 0.4 % a minute, so the lag costs under 3 %).
3. **Attack-proof learning.** A second is learnable only when its packet rate is below
   ``CUT`` (1.8x) times the level snapshot taken when its clock hour began, and a series' own
   value is within 1.8x of its own snapshot. Anything resembling an attack (or a flash crowd
   beyond 1.8x) therefore never enters the baseline, and a minute without learnable seconds
   leaves the history untouched: during a long attack the level is frozen at the last normal
   15 minutes. A series held out for a whole minute while the packet rate was learnable (a
   backup's bytes, a flash crowd's sources) repeats its previous minute's value, so its level
   freezes too instead of running empty. The snapshot (not the running level) is what breaks
   the circularity "the baseline decides what is learnable, what is learnable makes the
   baseline": within an hour everything is vectorized; only hours are processed in sequence.
   A node that had rows during a whole clock hour but learned nothing in it gets no snapshot
   for the next hour (everything learnable, as for a new node): a lasting step up of more than
   1.8x, or an attack that fills a whole clock hour, becomes the new normal one to two hours
   after it began.
4. **Hour-of-day profile.** Each node also keeps, per clock hour of the day (UTC), the level
   seen at the end of that hour on earlier days (an exponential average across days). Where a
   profile hour is known, the expected packet and bit rates are raised to it when it is higher
   than the short-term level: a recurring busy hour (nightly jobs) is then expected. A weekly
   rhythm is followed by the short-term level itself (weekend steps are learned within the
   hour, and a step without a change of traffic mix never opens an incident).

Warm-up: ``learned`` counts a node's learned minutes; the engine uses a stricter threshold
until a node has learned an hour, and only absolute rules before it has 3 minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from detect.frames import SERIES

__all__ = [
    "CUT",
    "HIST_MINUTES",
    "LOG_OFFSET",
    "MIN_SECONDS",
    "BaselineState",
    "level_columns",
    "seed_from_rollups",
    "update",
]

HIST_MINUTES = 15
#: most list elements ``_levels_for`` copies to targets before it takes rolling windows instead
LIST_BUDGET = 200_000
MIN_SECONDS = 3
CUT = math.log(1.8)
PROFILE_ALPHA = 0.5

#: ``y = ln(x + c)``: packet rates get 10 pps, bit rate 80 kbit/s, sources 2, length 1 byte.
LOG_OFFSET: dict[str, float] = {
    **dict.fromkeys(SERIES, 10.0),
    "bps": 80_000.0,
    "distinct_sources": 2.0,
    "avg_pkt_len": 1.0,
}


def _y(s: str) -> str:
    return f"y_{s}"


def level_columns() -> list[str]:
    """Columns ``update`` adds to every row: ``L_<s>`` (log level) per series, ``N_pps`` and
    ``N_bps`` (log noise) and ``learned`` (minutes the node has learned)."""
    return [*(f"L_{s}" for s in SERIES), "N_pps", "N_bps", "Q_tcp", "Q_ack", "learned"]


_NOISY = ("pps", "bps")
#: per-minute spread (90th minus 10th percentile) of the TCP and ACK shares of packets: the
#: node's own traffic-mix jitter, which scales the engine's mix thresholds
_SHARES = ("tcp", "ack")


def _hist_schema() -> dict[str, pl.DataType]:
    """One row per node: the last ``HIST_MINUTES`` learned minutes as lists (oldest first)."""
    out: dict[str, pl.DataType] = {"node": pl.String(), "minutes": pl.List(pl.Int64())}
    for s in SERIES:
        out[f"{s}_m"] = pl.List(pl.Float64())
    for s in _NOISY:
        out[f"{s}_q"] = pl.List(pl.Float64())
    for s in _SHARES:
        out[f"{s}_share_q"] = pl.List(pl.Float64())
    return out


def _mins_schema() -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {"node": pl.String(), "minute": pl.Int64()}
    for s in SERIES:
        out[f"{s}_m"] = pl.Float64()
    for s in _NOISY:
        out[f"{s}_q"] = pl.Float64()
    for s in _SHARES:
        out[f"{s}_share_q"] = pl.Float64()
    return out


def _nodes_schema() -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {
        "node": pl.String(),
        "ref_hour": pl.Int64(),
        "learned": pl.Int64(),
    }
    for s in SERIES:
        out[f"{s}_ref"] = pl.Float64()
    return out


def _profile_schema() -> dict[str, pl.DataType]:
    return {
        "node": pl.String(),
        "hod": pl.Int64(),
        "day": pl.Int64(),
        "pps_p": pl.Float64(),
        "bps_p": pl.Float64(),
        "days": pl.Int64(),
        "pps_prev": pl.Float64(),
        "bps_prev": pl.Float64(),
        "days_prev": pl.Int64(),
    }


@dataclass
class BaselineState:
    """All baseline state: the last minute summaries per node (``hist``), the per-node hour
    snapshot and learned-minute count (``nodes``), and the hour-of-day profile (``profile``)."""

    hist: pl.DataFrame
    nodes: pl.DataFrame
    profile: pl.DataFrame

    @classmethod
    def empty(cls) -> BaselineState:
        return cls(
            pl.DataFrame(schema=_hist_schema()),
            pl.DataFrame(schema=_nodes_schema()),
            pl.DataFrame(schema=_profile_schema()),
        )


def _full(hist: pl.DataFrame, mins: list[pl.DataFrame]) -> pl.DataFrame:
    """``hist`` with the new minute summaries appended to its lists (not yet trimmed)."""
    if not mins:
        return hist
    cols = [c for c in _hist_schema() if c not in ("node", "minutes")]
    flat = pl.concat(mins, how="vertical")
    nulls = flat.select(pl.col(c).null_count() for c in cols).row(0)
    fill = {c for c, n in zip(cols, nulls, strict=True) if n}
    new = (
        flat.sort("node", "minute")
        .group_by("node", maintain_order=True)
        .agg(pl.col("minute").alias("minutes"), *(pl.col(c) for c in cols))
    )
    joined = hist.join(new, on="node", how="full", coalesce=True, suffix="_new")
    empty_i = pl.lit([], pl.List(pl.Int64()))
    empty_f = pl.lit([], pl.List(pl.Float64()))
    # a series whose every second in a minute was held out (a backup's bytes, a flash crowd's
    # sources) keeps its previous value for that minute: its level freezes instead of emptying.
    # The stored lists are already filled, so only columns with a null new minute need it.

    def joined_list(c: str) -> pl.Expr:
        out = pl.concat_list(pl.col(c).fill_null(empty_f), pl.col(f"{c}_new").fill_null(empty_f))
        return (out.list.eval(pl.element().forward_fill()) if c in fill else out).alias(c)

    return joined.select(
        "node",
        pl.concat_list(
            pl.col("minutes").fill_null(empty_i), pl.col("minutes_new").fill_null(empty_i)
        ).alias("minutes"),
        *(joined_list(c) for c in cols),
    )


def _levels_for(full: pl.DataFrame, targets: pl.DataFrame, at: str) -> pl.DataFrame:
    """Levels for ``targets`` (node, ``at`` minute): the medians over the last
    ``HIST_MINUTES`` learned minutes strictly before ``at``, and ``_k``, how many learned
    minutes ``full`` holds before ``at``. Two ways to the same values, by the work each does."""
    longest = full.select(pl.col("minutes").list.len().max()).item() or 0
    if targets.height * longest <= LIST_BUDGET:
        return _levels_by_lists(full, targets, at)
    return _levels_by_rolling(full, targets, at)


def _levels_by_lists(full: pl.DataFrame, targets: pl.DataFrame, at: str) -> pl.DataFrame:
    """``_levels_for`` by copying each target's node lists and slicing them: cheap for few
    targets (a live pass of many nodes and a few seconds), quadratic for many (a backfill pass
    of hours)."""
    w = HIST_MINUTES
    counts = (
        full.select("node", "minutes")
        .explode("minutes")
        .join(targets.select("node", at), on="node", how="inner")
        .filter(pl.col("minutes") < pl.col(at))
        .group_by("node", at)
        .agg(pl.len().cast(pl.Int64()).alias("_k"))
    )
    t = (
        targets.select("node", at)
        .join(counts, on=["node", at], how="left")
        .with_columns(pl.col("_k").fill_null(0))
        .join(full, on="node", how="left")
    )
    off = (pl.col("_k") - w).clip(0)
    length = pl.col("_k").clip(None, w)
    exprs: list[pl.Expr] = []
    for s in SERIES:
        win = pl.col(f"{s}_m").list.slice(off, length)
        med = win.list.median()
        exprs.append(med.alias(f"L_{s}"))
        if s in _NOISY:
            vals = win.list.drop_nulls().list.sort()
            n = vals.list.len()
            idx = ((n.cast(pl.Float64()) - 1.0) * 0.8).round(0).cast(pl.Int64())
            hi = vals.list.get(idx, null_on_oob=True)
            within = pl.col(f"{s}_q").list.slice(off, length).list.median()
            exprs.append(((hi - med).clip(0.0) + within.fill_null(0.0)).alias(f"N_{s}"))
    for s in _SHARES:
        q = pl.col(f"{s}_share_q").list.slice(off, length).list.median()
        exprs.append(q.alias(f"Q_{s}"))
    return t.select("node", at, "_k", *exprs)


def _levels_by_rolling(full: pl.DataFrame, targets: pl.DataFrame, at: str) -> pl.DataFrame:
    """Levels for ``targets`` (node, ``at`` minute): the medians over the last
    ``HIST_MINUTES`` learned minutes strictly before ``at``, and ``_k``, how many learned
    minutes ``full`` holds before ``at``.

    The windows are rolling statistics over each node's learned minutes (one row per learned
    minute), and each target takes the window that ends at its node's last learned minute
    before it (an as-of join): the work grows with the learned minutes plus the targets, not
    with their product."""
    w = HIST_MINUTES
    vals = [
        *(f"{s}_m" for s in SERIES),
        *(f"{s}_q" for s in _NOISY),
        *(f"{s}_share_q" for s in _SHARES),
    ]
    long = (
        full.select("node", "minutes", *vals)
        .explode("minutes", *vals)
        .filter(pl.col("minutes").is_not_null())
    )
    by_node = pl.col("node")
    exprs: list[pl.Expr] = [
        (pl.int_range(pl.len(), dtype=pl.Int64()).over(by_node) + 1).alias("_k"),
    ]
    for s in SERIES:
        med = pl.col(f"{s}_m").rolling_median(w, min_samples=1).over(by_node)
        exprs.append(med.alias(f"L_{s}"))
        if s in _NOISY:
            hi = pl.col(f"{s}_m").rolling_quantile(0.8, "nearest", w, min_samples=1).over(by_node)
            within = pl.col(f"{s}_q").rolling_median(w, min_samples=1).over(by_node)
            exprs.append(((hi - med).clip(0.0) + within.fill_null(0.0)).alias(f"N_{s}"))
    for s in _SHARES:
        q = pl.col(f"{s}_share_q").rolling_median(w, min_samples=1).over(by_node)
        exprs.append(q.alias(f"Q_{s}"))
    windows = long.select("node", "minutes", *exprs).sort("minutes")
    out_cols = [c for s in SERIES for c in (f"L_{s}", f"N_{s}") if s in _NOISY or c[0] == "L"]
    out_cols += [f"Q_{s}" for s in _SHARES]
    joined = (
        targets.select("node", at)
        .sort(at)
        .join_asof(
            windows,
            left_on=at,
            right_on="minutes",
            by="node",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .with_columns(pl.col("_k").fill_null(0))
    )
    return joined.select("node", at, "_k", *out_cols)


_ROW_LEVELS = ("pps", "bps", "distinct_sources", "avg_pkt_len")
_ROW_E = tuple(s for s in SERIES if s.endswith("pps") or s == "bps")


def _minute_hour(rows: pl.DataFrame) -> pl.DataFrame:
    epoch = pl.col("time").dt.epoch("s")
    return rows.with_columns((epoch // 60).alias("minute"), (epoch // 3600).alias("hour"))


def _last_minutes(
    rows: pl.DataFrame, kept: pl.DataFrame, newest: pl.DataFrame | None
) -> pl.DataFrame:
    """Each node's last minute among ``rows`` (node, ``last_minute``). ``newest`` (node,
    ``hi``: newest second of the node's new rows, one row per node of ``new``) saves the
    group-by over all rows: a node's new rows are newer than any row it has kept."""
    if newest is None:
        return rows.group_by("node").agg(pl.col("minute").max().alias("last_minute"))
    last = newest.select("node", (pl.col("hi") // 60).alias("last_minute"))
    if kept.height:
        rest = kept.filter(~pl.col("node").is_in(newest.get_column("node").implode()))
        if rest.height:
            rest_last = (
                _minute_hour(rest).group_by("node").agg(pl.col("minute").max().alias("last_minute"))
            )
            last = pl.concat([last, rest_last], how="vertical")
    return last


def _targets(new: pl.DataFrame, newest: pl.DataFrame | None) -> pl.DataFrame:
    """The (node, minute) pairs that need levels: every minute of each node's span when the
    caller gave the spans and they are not much sparser than the rows (a superset: a minute
    without rows gets levels no row reads), else the distinct pairs of ``new``."""
    if newest is not None and "lo" in newest.columns:
        span = newest.select("node", (pl.col("lo") // 60).alias("_a"), (pl.col("hi") // 60))
        size = span.select((pl.col("hi") - pl.col("_a") + 1).sum()).item()
        if size <= new.height:
            return span.select(
                "node", pl.int_ranges("_a", pl.col("hi") + 1, dtype=pl.Int64()).alias("minute")
            ).explode("minute")
    return new.select("node", "minute").unique()


def update(
    state: BaselineState,
    kept: pl.DataFrame,
    new: pl.DataFrame,
    newest: pl.DataFrame | None = None,
) -> tuple[BaselineState, pl.DataFrame, pl.DataFrame]:
    """Learn from the open minutes' ``kept`` rows plus the ``new`` rows (no duplicates, any
    order) and return (new state, ``new`` with ``L_<s>`` for pps, bps, distinct sources and
    packet length, ``N_pps``, ``N_bps``, ``Q_tcp``, ``Q_ack``, ``learned`` and ``E_<s>`` (the
    expected rate, ``exp(L_<s>) - c``, floored at 0) for bps and every packet rate, the rows of
    each node's still open minute, to keep for the next call).

    Only rows of minutes that complete here are summarized, and only the new rows get levels,
    so the kept rows of an open minute cost nothing until their minute completes. ``newest``
    (optional: node, ``hi``, the newest epoch second of each node's ``new`` rows, and ``lo``,
    the oldest) spares group-bys the caller has already done."""
    new = _minute_hour(new)
    if new.height == 0:
        empty = new.with_columns(
            *(pl.lit(None, pl.Float64()).alias(f"L_{s}") for s in _ROW_LEVELS),
            *(pl.lit(None, pl.Float64()).alias(c) for c in ("N_pps", "N_bps", "Q_tcp", "Q_ack")),
            pl.lit(0, pl.Int64()).alias("learned"),
            *(pl.lit(None, pl.Float64()).alias(f"E_{s}") for s in _ROW_E),
        )
        return state, empty, kept
    # learning reads only these columns: project before the filters and concatenations copy
    # rows (the kept rows of the open minute are stored in this shape too)
    learn = ("node", "time", "minute", "hour", *SERIES)
    fresh = new.select(learn)
    rows = (
        pl.concat([_minute_hour(kept.select("node", "time", *SERIES)).select(learn), fresh])
        if kept.height
        else fresh
    )
    last = _last_minutes(rows, kept, newest)
    nodes = state.nodes
    new_minutes: list[pl.DataFrame] = []
    folds: list[pl.DataFrame] = []
    lo_hour, hi_hour = rows.select(pl.col("hour").min().alias("lo"), pl.col("hour").max()).row(0)
    if lo_hour == hi_hour:  # the usual case: one clock hour, every node in it
        node_hours = last.select("node", pl.lit(lo_hour, pl.Int64()).alias("hour"))
        hours = [lo_hour]
    else:
        node_hours = rows.select("node", "hour").unique()
        hours = node_hours.get_column("hour").unique().sort().to_list()
    ends = last.get_column("last_minute").unique()
    if ends.len() == 1:  # the usual case: every node's rows end in the same minute
        end = int(ends[0])
        done_all = rows.filter(pl.col("minute") < end)
        pending = rows.filter(pl.col("minute") == end)
    else:
        marked = rows.join(last, on="node", how="left")
        done_all = marked.filter(pl.col("minute") < pl.col("last_minute"))
        pending = marked.filter(pl.col("minute") == pl.col("last_minute")).drop("last_minute")
    pending = pending.select("node", "time", *SERIES)
    for h in hours:
        chunk_nodes = node_hours.filter(pl.col("hour") == h).select("node")
        stored = nodes.filter(pl.col("ref_hour") == h).select("node", *(f"{s}_ref" for s in SERIES))
        missing = chunk_nodes.join(stored, on="node", how="anti")
        if missing.height:
            full = _full(state.hist, new_minutes)
            looked = _levels_for(
                full, missing.with_columns(pl.lit(h * 60, pl.Int64()).alias("_at")), "_at"
            ).select("node", *(pl.col(f"L_{s}").alias(f"{s}_ref") for s in SERIES))
            looked = _relearn(looked, full, nodes, h)
            refs = pl.concat([stored, looked], how="vertical")
            nodes = _upsert_refs(nodes, looked, h)
            folds.append(
                looked.select(
                    "node",
                    pl.lit((h - 1) % 24, pl.Int64()).alias("hod"),
                    pl.lit((h - 1) // 24, pl.Int64()).alias("day"),
                    pl.col("pps_ref").alias("_np"),
                    pl.col("bps_ref").alias("_nb"),
                ).filter(pl.col("_np").is_not_null())
            )
        else:
            refs = stored
        done = done_all.filter(pl.col("hour") == h) if len(hours) > 1 else done_all
        if done.height == 0:
            continue
        mins = _summarize(done, refs)
        if mins.height:
            new_minutes.append(mins)
    full = _full(state.hist, new_minutes)
    if new_minutes:
        counts = pl.concat(new_minutes).group_by("node").agg(pl.len().alias("_new"))
        nodes = (
            nodes.join(counts, on="node", how="full", coalesce=True)
            .with_columns(
                (pl.col("learned").fill_null(0) + pl.col("_new").fill_null(0)).alias("learned")
            )
            .drop("_new")
        )
    targets = _targets(new, newest)
    lv = _levels_for(full, targets, "minute")
    # minutes learned before each row's minute: learned before this call + new ones before it
    before = state.nodes.select("node", pl.col("learned").alias("_l0")).join(
        state.hist.select("node", pl.col("minutes").list.len().cast(pl.Int64()).alias("_h0")),
        on="node",
        how="full",
        coalesce=True,
    )
    lv = (
        lv.join(before, on="node", how="left")
        .with_columns(
            (pl.col("_l0").fill_null(0) + pl.col("_k") - pl.col("_h0").fill_null(0))
            .clip(0)
            .alias("learned")
        )
        .drop("_l0", "_h0", "_k")
    )
    profile = state.profile
    for fold in folds:
        profile = _fold_profile(profile, fold)
    lv = _apply_profile(profile, lv)
    # expected rates once per node-minute rather than once per row; the rows get the levels the
    # detector reads (logs where it compares in log space, expected rates for the counters)
    lv = lv.select(
        "node",
        "minute",
        *(f"L_{s}" for s in _ROW_LEVELS),
        "N_pps",
        "N_bps",
        "Q_tcp",
        "Q_ack",
        "learned",
        *(((pl.col(f"L_{s}").exp() - LOG_OFFSET[s]).clip(0.0)).alias(f"E_{s}") for s in _ROW_E),
    )
    out = new.join(lv, on=["node", "minute"], how="left")
    w = HIST_MINUTES
    hist = full.with_columns(
        *(pl.col(c).list.tail(w) for c in _hist_schema() if c != "node")
    ).select(list(_hist_schema()))
    return BaselineState(hist, nodes, profile), out, pending


def _summarize(done: pl.DataFrame, refs: pl.DataFrame) -> pl.DataFrame:
    """Minute summaries (``_mins_schema``) of the completed rows of one clock hour, each second
    masked by the hour's reference levels ``refs`` (see the module docstring).

    The comparisons and order statistics run on the rates themselves, and only the minute's
    results are taken to log space: ``ln`` is increasing, so ``ln(x + c) - ref <= CUT`` is
    ``x <= exp(ref + CUT) - c`` (one ``exp`` per node, not a ``log`` per second and series),
    and a median or quantile that picks a value picks the same second either way. (A median
    of an even count is the mean of the two middle rates, not of their logs.)"""
    lims: list[pl.Expr] = []
    for s in SERIES:
        ref = pl.col(f"{s}_ref")
        lims.append(((ref + CUT).exp() - LOG_OFFSET[s]).alias(f"_hi_{s}"))
        if s == "avg_pkt_len":
            lims.append(((ref - CUT).exp() - LOG_OFFSET[s]).alias(f"_lo_{s}"))
    # every node as an integer (its code in polars' string categories), and one integer key
    # per node-minute: the join, the sort and the group-by below touch no strings, and the
    # group-by reads each minute as one contiguous slice (same values as grouping by name)
    code = pl.col("node").cast(pl.Categorical()).to_physical().cast(pl.UInt64()).alias("_c")
    limits = refs.select(code, *lims)
    done = done.select(code, "node", "minute", *SERIES)
    names = done.select("_c", "node").unique(subset="_c")
    done = done.drop("node").join(limits, on="_c", how="left")
    ok_pps = pl.col("_hi_pps").is_null() | (pl.col("pps") <= pl.col("_hi_pps"))
    masked: list[pl.Expr] = []
    for s in SERIES:
        hi = pl.col(f"_hi_{s}")
        ok_s = hi.is_null() | (pl.col(s) <= hi)
        if s == "avg_pkt_len":
            ok_s = ok_s & (pl.col(f"_lo_{s}").is_null() | (pl.col(s) >= pl.col(f"_lo_{s}")))
        masked.append(pl.when(ok_pps & ok_s).then(pl.col(s)).alias(s))
    shares = [
        pl.when(ok_pps & (pl.col("pps") > 0))
        .then(pl.col(f"{s}_pps") / pl.col("pps"))
        .alias(f"_s_{s}")
        for s in _SHARES
    ]
    group = pl.col("_c") * (1 << 32) + pl.col("minute").cast(pl.UInt64())
    done = done.select(group.alias("_g"), ok_pps.alias("_ok"), *masked, *shares).sort("_g")
    aggs: list[pl.Expr] = [pl.col("_ok").sum().alias("_n")]
    for s in SERIES:
        aggs.append(pl.col(s).median().alias(f"_m_{s}"))
        if s in _NOISY:
            aggs.append(pl.col(s).quantile(0.9, interpolation="nearest").alias(f"_q_{s}"))
    for s in _SHARES:
        v = pl.col(f"_s_{s}")
        spread = v.quantile(0.9, interpolation="nearest") - v.quantile(0.1, interpolation="nearest")
        aggs.append(spread.alias(f"{s}_share_q"))

    def ln(c: str, s: str) -> pl.Expr:
        return (pl.col(c) + LOG_OFFSET[s]).log()

    outs: list[pl.Expr] = []
    for s in SERIES:
        outs.append(ln(f"_m_{s}", s).alias(f"{s}_m"))
        if s in _NOISY:
            outs.append((ln(f"_q_{s}", s) - ln(f"_m_{s}", s)).alias(f"{s}_q"))
    return (
        done.group_by("_g", maintain_order=True)
        .agg(aggs)
        .filter(pl.col("_n") >= MIN_SECONDS)
        .with_columns(
            (pl.col("_g") // (1 << 32)).alias("_c"),
            (pl.col("_g") % (1 << 32)).cast(pl.Int64()).alias("minute"),
        )
        .join(names, on="_c", how="left")
        .with_columns(outs)
        .select(list(_mins_schema()))
    )


def _relearn(looked: pl.DataFrame, full: pl.DataFrame, nodes: pl.DataFrame, h: int) -> pl.DataFrame:
    """No snapshot (everything learnable, as for a new node) for nodes that had rows in the
    previous clock hour but learned nothing in it: a change that held a whole hour (a new
    service, a lasting step up of more than ``CUT``) becomes the new normal instead of being
    held out for ever."""
    prev = nodes.filter(pl.col("ref_hour") == h - 1).select("node")
    if prev.height == 0:
        return looked
    start = (h - 1) * 60
    last = full.join(prev, on="node", how="semi").select(
        "node",
        pl.col("minutes")
        .list.eval(pl.element().filter(pl.element() < h * 60))
        .list.max()
        .alias("_last"),
    )
    stale = last.filter(pl.col("_last").is_null() | (pl.col("_last") < start)).select("node")
    if stale.height == 0:
        return looked
    hit = pl.col("node").is_in(stale.get_column("node").implode())
    return looked.with_columns(
        pl.when(hit).then(None).otherwise(pl.col(f"{s}_ref")).alias(f"{s}_ref") for s in SERIES
    )


def _upsert_refs(nodes: pl.DataFrame, looked: pl.DataFrame, hour: int) -> pl.DataFrame:
    if looked.height == 0:
        return nodes
    fresh = looked.with_columns(pl.lit(hour, pl.Int64()).alias("ref_hour"))
    old = nodes.join(fresh.select("node"), on="node", how="semi")
    fresh = fresh.join(old.select("node", "learned"), on="node", how="left").with_columns(
        pl.col("learned").fill_null(0)
    )
    rest = nodes.join(fresh.select("node"), on="node", how="anti")
    return pl.concat([rest, fresh.select(list(_nodes_schema()))], how="vertical")


def _apply_profile(profile: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """Raise the pps/bps level of a row to the profile's level for its hour of day, when the
    profile knows that hour (seen on at least 2 earlier days) and is higher."""
    if profile.height == 0:
        return rows
    hod = (pl.col("minute") // 60) % 24
    day = pl.col("minute") // 1440
    # the value folded on an earlier day than the row's (folds of the row's own day are not
    # used, so a batch that crosses hours sees what smaller batches would have seen)
    known = profile.select(
        "node",
        "hod",
        pl.when(pl.col("days") >= 2).then(pl.col("day")).alias("day"),
        pl.col("pps_p").alias("_pp"),
        pl.col("bps_p").alias("_bp"),
        pl.when(pl.col("days_prev") >= 2).then(pl.col("pps_prev")).alias("_ppv"),
        pl.when(pl.col("days_prev") >= 2).then(pl.col("bps_prev")).alias("_bpv"),
    )
    rows = rows.with_columns(hod.alias("hod"), day.alias("_day"))
    rows = rows.join(known, on=["node", "hod"], how="left")
    cur = pl.col("day") < pl.col("_day")
    pp = pl.when(cur).then(pl.col("_pp")).otherwise(pl.col("_ppv"))
    bp = pl.when(cur).then(pl.col("_bp")).otherwise(pl.col("_bpv"))
    return rows.with_columns(
        pl.when(pp > pl.col("L_pps")).then(pp).otherwise(pl.col("L_pps")).alias("L_pps"),
        pl.when(bp > pl.col("L_bps")).then(bp).otherwise(pl.col("L_bps")).alias("L_bps"),
    ).drop("hod", "_day", "day", "_pp", "_bp", "_ppv", "_bpv")


def _fold_profile(profile: pl.DataFrame, upd: pl.DataFrame) -> pl.DataFrame:
    """Fold the levels at the end of one clock hour (``upd``: node, hod, day, _np, _nb) into
    the hour-of-day profile: an exponential average across days, one step per day."""
    if upd.height == 0:
        return profile
    merged = upd.join(profile, on=["node", "hod"], how="full", coalesce=True, suffix="_old")
    a = PROFILE_ALPHA
    new = pl.col("_np").is_not_null()
    first = pl.col("pps_p").is_null()

    def blend(n: str, old: str) -> pl.Expr:
        return (
            pl.when(~new)
            .then(pl.col(old))
            .when(first)
            .then(pl.col(n))
            .otherwise(pl.col(old) * (1 - a) + pl.col(n) * a)
        )

    out = merged.with_columns(
        pl.when(new).then(pl.col("pps_p")).otherwise(pl.col("pps_prev")).alias("pps_prev"),
        pl.when(new).then(pl.col("bps_p")).otherwise(pl.col("bps_prev")).alias("bps_prev"),
        pl.when(new).then(pl.col("days")).otherwise(pl.col("days_prev")).alias("days_prev"),
    ).with_columns(
        blend("_np", "pps_p").alias("pps_p"),
        blend("_nb", "bps_p").alias("bps_p"),
        pl.when(~new)
        .then(pl.col("days"))
        .when(first)
        .then(pl.lit(1, pl.Int64()))
        .otherwise(pl.col("days") + 1)
        .alias("days"),
        pl.when(new).then(pl.col("day")).otherwise(pl.col("day_old")).alias("day"),
    )
    return out.select(list(_profile_schema()))


def levels_now(state: BaselineState, node: str) -> dict[str, float | None]:
    """The node's current levels (``L_<s>``, ``N_pps``, ``N_bps``), or {} if it has none."""
    hist = state.hist.filter(pl.col("node") == node)
    if hist.height == 0:
        return {}
    target = pl.DataFrame({"node": [node], "_at": [2**62]})
    row = _levels_for(hist, target, "_at").row(0, named=True)
    return {k: v for k, v in row.items() if k not in ("node", "_at")}


def learned_minutes(state: BaselineState, node: str) -> int:
    df = state.nodes.filter(pl.col("node") == node)
    return int(df.get_column("learned")[0]) if df.height else 0


def seed_from_rollups(state: BaselineState, rollups: pl.DataFrame) -> BaselineState:
    """Rebuild the minute history from 1-minute rollups (``node_uuid``, ``time``,
    ``<measure>_avg``, ``<measure>_max``): the minute's average stands for its median and half
    the distance to its maximum (in log space) for its spread. Nodes already learning keep
    their own history; minutes far above the node's median (attacks) are left out."""
    df = rollups
    if "node_uuid" in df.columns and "node" not in df.columns:
        df = df.rename({"node_uuid": "node"})
    if df.height == 0:
        return state
    exprs: list[pl.Expr] = [
        pl.col("node").cast(pl.String()),
        (pl.col("time").dt.epoch("s") // 60).alias("minute"),
    ]
    for s in SERIES:
        c = LOG_OFFSET[s]
        avg = f"{s}_avg"
        mx = f"{s}_max"
        m = (pl.col(avg).cast(pl.Float64()) + c).log() if avg in df.columns else None
        exprs.append(
            m.alias(f"{s}_m") if m is not None else pl.lit(None, pl.Float64()).alias(f"{s}_m")
        )
        if s in _NOISY:
            if m is not None and mx in df.columns:
                q = (((pl.col(mx).cast(pl.Float64()) + c).log() - m) * 0.5).clip(0.0)
                exprs.append(q.alias(f"{s}_q"))
            else:
                exprs.append(pl.lit(0.0).alias(f"{s}_q"))
    exprs += [pl.lit(None, pl.Float64()).alias(f"{s}_share_q") for s in _SHARES]
    seq = df.select(exprs).filter(pl.col("pps_m").is_not_null())
    seq = seq.join(state.hist.select("node"), on="node", how="anti")
    if seq.height == 0:
        return state
    seq = seq.filter(pl.col("pps_m") <= pl.col("pps_m").median().over("node") + CUT)
    seq = seq.sort("node", "minute").select(list(_mins_schema()))
    counts = seq.group_by("node").agg(pl.len().cast(pl.Int64()).alias("learned"))
    full = _full(pl.DataFrame(schema=_hist_schema()), [seq])
    hist = full.with_columns(
        *(pl.col(c).list.tail(HIST_MINUTES) for c in _hist_schema() if c != "node")
    ).select(list(_hist_schema()))
    nodes = state.nodes.join(counts.select("node"), on="node", how="anti")
    add = counts.with_columns(
        pl.lit(None, pl.Int64()).alias("ref_hour"),
        *(pl.lit(None, pl.Float64()).alias(f"{s}_ref") for s in SERIES),
    ).select(list(_nodes_schema()))
    return BaselineState(
        pl.concat([state.hist, hist], how="vertical"),
        pl.concat([nodes, add], how="vertical"),
        state.profile,
    )
