"""``floodwatch backtest``: stored history replayed through the detector with other settings.

The replay reads the lake hour by hour, in event-time order, for one workspace (optionally one
node): each hour's raw ``metrics`` and ``flows`` files become node-seconds exactly as the server
makes them from an acknowledged batch (``detect.frames``), and a fresh ``detect.engine.Detector``
processes them. Before the first hour, baselines are seeded from the 1-minute rollups of the
``detect.seed_days`` before ``--from``, as the server seeds nodes it has no saved state for. Only
one hour (or a slice of a very busy hour) is in memory at a time.

Settings: the workspace's stored overrides with the ``--config`` file applied on top, as if the
file had been sent as ``PATCH /api/v1/workspace/detection``, then each node's own overrides, the
same layering the server uses. Without ``--config`` the replay runs with the settings the
server runs with now.

What the server recorded (incidents of the workspace overlapping the range, the node names and
the stored overrides) comes from the database: over the admin socket when a server runs, by
opening the file when none does (``api.admin.call_admin``, operation ``backtest.context``).

Matching, one to one: a would-be incident and a recorded one match when they are on the same
node and the same detector incident (the recorded ``detector_ref`` is the detector's own id,
``<node>:<onset>``); the remaining ones match when their time spans overlap (an open incident's
span runs to the end of the range), earliest first. The result has three groups: ``both``,
``backtest_only`` and ``recorded_only``.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from store import Connection
from store import detections as det_repo
from store.db import rows_as_dicts
from store.errors import InvalidValue, NotFound
from store.lake import Lake

from .config import Config

__all__ = [
    "BacktestError",
    "Progress",
    "context_op",
    "hours_of",
    "load_settings_file",
    "match_incidents",
    "parse_time",
    "render_text",
    "run_backtest",
]

# a very busy hour of flows is read in slices of about this many rows (bounded memory)
FLOWS_SLICE_ROWS = 2_000_000
# node-seconds handed to the detector at once (its working memory grows with the batch; the
# server's passes are smaller still)
DETECT_SLICE_ROWS = 50_000
# the progress bar shows for ranges of at least this many hours (and only on a terminal)
PROGRESS_MIN_HOURS = 3


class BacktestError(Exception):
    """A bad argument or settings file; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid_parameter"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


# ---------------------------------------------------------------------------------- arguments

_RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``now``, a relative time before now (``-90s``, ``-30m``, ``-6h``, ``-2d``, ``-1w``) or ISO
    8601 (``2026-12-05T14:00:00Z``; without an offset, UTC). Raises ValueError."""
    now = now or datetime.now(UTC)
    raw = text.strip()
    if raw.lower() == "now":
        return now
    m = _RELATIVE.match(raw.lower())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNIT_SECS[m.group(2)])
    try:
        when = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-12-05T14:00:00Z) or -30m, -6h, -2d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def load_settings_file(path: str) -> dict[str, Any]:
    """A TOML or JSON file of detection settings, the shape of ``PATCH
    /api/v1/workspace/detection``. JSON when the name ends in ``.json`` or the text starts with
    ``{``, TOML otherwise. Only read here; validated against the workspace's settings later."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BacktestError(
            f"--config: cannot read {path}: {exc.strerror or exc}", "config"
        ) from None
    except UnicodeDecodeError:
        raise BacktestError(f"--config: {path} is not UTF-8 text", "config") from None
    as_json = p.suffix.lower() == ".json" or text.lstrip().startswith("{")
    try:
        data: Any = json.loads(text) if as_json else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if as_json else "TOML"
        raise BacktestError(f"--config: {path} is not valid {kind}: {exc}", "config") from None
    if not isinstance(data, dict):
        raise BacktestError(f"--config: {path} must hold an object of detection settings", "config")
    # a TOML file may put the settings under [detection], like the REST answer's key
    if set(data) == {"detection"} and isinstance(data["detection"], dict):
        data = data["detection"]
    out: dict[str, Any] = data
    return out


# ------------------------------------------------------------------ what the server recorded


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        text: str = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return text
    return str(value)


def _ws_uuid(con: Connection, ref: str | None) -> uuid.UUID:
    from .admin import _ws_ref

    return _ws_ref(con, ref)


def context_op(con: Connection, cfg: Config, a: dict[str, Any]) -> dict[str, Any]:
    """The admin operation ``backtest.context``: the workspace, its nodes (the one named by
    ``node``, by uuid, name or unique uuid prefix), the stored detection overrides and the
    incidents recorded for the range [``from``, ``to``)."""
    ws = _ws_uuid(con, a.get("workspace"))
    try:
        start = datetime.fromisoformat(str(a.get("from")))
        end = datetime.fromisoformat(str(a.get("to")))
    except ValueError:
        raise InvalidValue("from and to must be ISO 8601 times", "from") from None
    nodes = rows_as_dicts(
        con.execute(
            "SELECT CAST(uuid AS VARCHAR) AS uuid, name, ip, deleted_at FROM nodes "
            "WHERE workspace_uuid = ? ORDER BY name",
            [str(ws)],
        )
    )
    node_ref = a.get("node")
    chosen: dict[str, Any] | None = None
    if node_ref:
        ref = str(node_ref)
        exact = [n for n in nodes if n["uuid"] == ref.lower()]
        named = [n for n in nodes if n["name"] == ref]
        live_named = [n for n in named if n["deleted_at"] is None]
        prefix = [n for n in nodes if n["uuid"].startswith(ref.lower())]
        for found in (exact, live_named, named, prefix):
            if len(found) == 1:
                chosen = found[0]
                break
        if chosen is None:
            raise NotFound(f"no single node of the workspace matches {ref}")
    overrides: dict[str, Any] = {"workspace": {}, "nodes": {}}
    for ws_id, node, over in det_repo.all_detection_overrides(con):
        if ws_id != str(ws):
            continue
        if node is None:
            overrides["workspace"] = over
        else:
            overrides["nodes"][node] = over
    params: list[Any] = [str(ws), end, start]
    where = ""
    if chosen is not None:
        where = " AND i.node_uuid = ?"
        params.append(chosen["uuid"])
    rows = rows_as_dicts(
        con.execute(
            "SELECT CAST(i.uuid AS VARCHAR) AS uuid, i.id, CAST(i.node_uuid AS VARCHAR) AS node, "
            "i.source, i.status, i.severity, i.attack_family, i.attack_subtype, i.started_at, "
            "i.resolved_at, i.peak_pps, i.peak_bps, CAST(i.detection AS VARCHAR) AS detection, "
            "i.detector_ref, "
            "json_extract_string(i.detail, '$.floodwatch.resolved_at') AS detector_resolved_at "
            "FROM incidents i WHERE i.workspace_uuid = ? AND i.started_at < ? "
            "AND (i.resolved_at IS NULL OR i.resolved_at >= ?)" + where + " "
            "ORDER BY i.started_at, i.id",
            params,
        )
    )
    recorded = []
    for r in rows:
        detection = orjson.loads(r["detection"]) if r["detection"] else {}
        recorded.append(
            {
                "uuid": r["uuid"],
                "id": r["id"],
                "node": r["node"],
                "source": r["source"],
                "status": r["status"],
                "severity": r["severity"],
                "attack_family": r["attack_family"],
                "attack_subtype": r["attack_subtype"],
                "started_at": _iso(r["started_at"]),
                "fired_at": detection.get("fired_at") or _iso(r["started_at"]),
                "resolved_at": _iso(r["resolved_at"]),
                "detector_resolved_at": r["detector_resolved_at"],
                "peak_pps": float(r["peak_pps"] or 0.0),
                "peak_bps": float(r["peak_bps"] or 0.0),
                "multiplier": detection.get("multiplier"),
                "detector_ref": r["detector_ref"],
            }
        )
    return {
        "workspace_id": str(ws),
        "node": chosen["uuid"] if chosen else None,
        "nodes": [
            {"uuid": n["uuid"], "name": n["name"], "deleted": n["deleted_at"] is not None}
            for n in nodes
        ],
        "overrides": overrides,
        "recorded": recorded,
    }


# --------------------------------------------------------------------------- the lake, hourly


def hours_of(start: datetime, end: datetime) -> list[datetime]:
    first = start.replace(minute=0, second=0, microsecond=0)
    out = []
    h = first
    while h < end:
        out.append(h)
        h += timedelta(hours=1)
    return out


class LakeReader:
    """Raw files of one workspace's hours, read with a time (and node) filter."""

    def __init__(self, root: Path, workspace: str, node: str | None) -> None:
        self.root = root
        self.workspace = workspace
        self.node = node
        # only its hour_files() is used: the files of an hour's current generation
        self._lake = Lake(root, {}, "metrics", (), ())

    def _hour_dir(self, kind: str, hour: datetime) -> Path:
        return (
            self.root
            / kind
            / f"workspace={self.workspace}"
            / f"date={hour.date().isoformat()}"
            / f"hour={hour.hour:02d}"
        )

    def files(self, kind: str, hour: datetime) -> list[Path]:
        hour_dir = self._hour_dir(kind, hour)
        if not hour_dir.is_dir():
            return []
        return self._lake.hour_files(hour_dir)

    def read(self, files: list[Path], start: datetime, end: datetime) -> pa.Table | None:
        """Rows of ``files`` with ``start <= time < end`` (of the node, when one is chosen)."""
        lo = pa.scalar(start, pa.timestamp("us", tz="UTC"))
        hi = pa.scalar(end, pa.timestamp("us", tz="UTC"))
        filters: list[tuple[str, str, Any]] = [("time", ">=", lo), ("time", "<", hi)]
        if self.node is not None:
            filters.append(("node_uuid", "==", self.node))
        tables = []
        for f in files:
            try:
                t = pq.read_table(f, filters=filters)
            except FileNotFoundError:  # swept between listing and reading: its rows moved on
                continue
            if t.num_rows:
                tables.append(t)
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default")

    def rollups(self, start: datetime, end: datetime) -> pl.DataFrame | None:
        """1-minute rollups of the minutes wholly inside [start, end)."""
        base = self.root / "metrics_1m" / f"workspace={self.workspace}"
        if not base.is_dir():
            return None
        first_day = start.date().isoformat()
        last_day = end.date().isoformat()
        files = []
        for f in sorted(base.glob("date=*/hour=*/rollup.parquet")):
            day = f.parent.parent.name.split("=", 1)[1]
            if first_day <= day <= last_day:
                files.append(f)
        table = self.read(files, start, end - timedelta(minutes=1) + timedelta(microseconds=1))
        if table is None:
            return None
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.sort("node_uuid", "time")


def _time_slices(frame: pl.DataFrame, rows: int) -> list[pl.DataFrame]:
    """``frame`` (sorted by time) cut at whole seconds into pieces of about ``rows`` rows."""
    if frame.height <= rows:
        return [frame]
    secs = frame.get_column("time").dt.epoch("s")
    epoch = pl.col("time").dt.epoch("s")
    lo, hi = frame.select(epoch.min().alias("lo"), epoch.max().alias("hi")).row(0)
    first = int(lo)
    span = int(hi) - first + 1
    per_sec = max(1.0, frame.height / span)
    width = max(1, int(rows / per_sec))
    bucket = ((secs - first) // width).alias("_slice")
    parts = frame.with_columns(bucket).partition_by("_slice", maintain_order=True)
    return [p.drop("_slice") for p in parts]


def _rows_of(files: list[Path]) -> int:
    total = 0
    for f in files:
        try:
            total += pq.ParquetFile(f).metadata.num_rows
        except (OSError, pa.ArrowInvalid):
            continue
    return total


# ------------------------------------------------------------------------------ progress bar


class Progress:
    """A one-line bar on ``stream`` (redrawn with ``\\r``), when ``enabled``."""

    def __init__(self, stream: TextIO, total: int, enabled: bool, width: int = 30) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.enabled = enabled
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    @classmethod
    def for_terminal(cls, stream: TextIO, hours: int) -> Progress:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(stream, hours, tty and hours >= PROGRESS_MIN_HOURS)

    def update(self, done: int, label: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        frac = min(1.0, done / self.total)
        fill = round(frac * self.width)
        bar = "#" * fill + "-" * (self.width - fill)
        elapsed = now - self.started
        eta = ""
        if 0 < done < self.total:
            left = elapsed / done * (self.total - done)
            eta = f" ~{_duration(left)} left"
        line = f"\r[{bar}] {done}/{self.total} h {frac * 100:3.0f}% {label}{eta}"
        self.stream.write(line.ljust(len(line) + 8))
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * (self.width + 80) + "\r")
            self.stream.flush()


def _duration(secs: float) -> str:
    secs = max(0, int(secs))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m"


# ----------------------------------------------------------------------------------- replay


@dataclass
class _Would:
    """A would-be incident, folded from the detector's transitions."""

    ref: str
    node: str
    onset_at: datetime
    fired_at: datetime
    detection: dict[str, Any]
    attack_family: str | None = None
    attack_subtype: str | None = None
    severity: str | None = None
    confidence: int | None = None
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    ended_at: datetime | None = None
    ended_reason: str | None = None
    updates: int = 0

    def fold(self, t: Any) -> None:
        self.attack_family = t.attack_family or self.attack_family
        self.attack_subtype = t.attack_subtype or self.attack_subtype
        self.severity = t.severity or self.severity
        if t.confidence is not None:
            self.confidence = t.confidence
        self.peak_pps = max(self.peak_pps, float(t.peak_pps or 0.0))
        self.peak_bps = max(self.peak_bps, float(t.peak_bps or 0.0))
        if t.kind == "update":
            self.updates += 1
        if t.kind == "resolve":
            self.ended_at = t.at
            self.ended_reason = t.ended_reason

    def as_dict(self, names: dict[str, str]) -> dict[str, Any]:
        d = self.detection
        return {
            "ref": self.ref,
            "node": self.node,
            "node_name": names.get(self.node),
            "attack_family": self.attack_family,
            "attack_subtype": self.attack_subtype,
            "severity": self.severity,
            "confidence": self.confidence,
            "onset_at": _iso(self.onset_at),
            "fired_at": _iso(self.fired_at),
            "ended_at": _iso(self.ended_at),
            "ended_reason": self.ended_reason,
            "peak_pps": self.peak_pps,
            "peak_bps": self.peak_bps,
            "metric": d.get("metric"),
            "observed": d.get("observed"),
            "baseline": d.get("baseline"),
            "threshold": d.get("threshold"),
            "multiplier": d.get("multiplier"),
            "samples_above": d.get("samples_above"),
            "updates": self.updates,
        }


def _settings_lookup(
    workspace_layer: dict[str, Any], node_layers: dict[str, dict[str, Any]]
) -> Callable[[str, str], Any]:
    from detect.settings import DetectionSettings, SettingsError

    from .detection import effective_settings

    cache: dict[str, DetectionSettings] = {}

    def lookup(_ws: str, node: str) -> DetectionSettings:
        found = cache.get(node)
        if found is None:
            try:
                found = DetectionSettings.from_dict(
                    effective_settings(workspace_layer, node_layers.get(node, {}))
                )
            except SettingsError:  # the server falls back the same way
                found = DetectionSettings()
            cache[node] = found
        return found

    return lookup


def workspace_settings(
    ctx: dict[str, Any], patch: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(workspace overrides to replay with, effective workspace settings); the patch is applied
    like ``PATCH /api/v1/workspace/detection``. Raises BacktestError naming the field."""
    from detect.settings import DetectionSettings, SettingsError

    from .detection import effective_settings, patch_overrides

    stored = dict(ctx["overrides"]["workspace"])
    try:
        if patch is None:
            return stored, effective_settings(stored)
        base = DetectionSettings().to_dict()
        new, effective = patch_overrides(base, stored, patch)
    except SettingsError as exc:
        raise BacktestError(f"{exc.field}: {exc.message}", exc.field) from None
    return new, effective


def run_backtest(
    cfg: Config,
    ctx: dict[str, Any],
    start: datetime,
    end: datetime,
    ws_overrides: dict[str, Any],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay [start, end) of the workspace (or node) in ``ctx`` and compare. Returns the
    result object the CLI prints (see ``docs/backtest.md``)."""
    from detect import frames
    from detect.engine import Detector

    workspace = str(ctx["workspace_id"])
    node = ctx.get("node")
    reader = LakeReader(cfg.data_path / "lake", workspace, node)
    names = {n["uuid"]: n["name"] for n in ctx["nodes"]}
    detector = Detector(_settings_lookup(ws_overrides, ctx["overrides"]["nodes"]))
    hours = hours_of(start, end)
    if progress is None:
        progress = Progress(sys.stderr, len(hours), False)
    stats = {"hours": len(hours), "metrics_rows": 0, "flows_rows": 0, "node_seconds": 0}
    seeded = 0
    if cfg.detect.seed_days > 0:
        rollups = reader.rollups(start - timedelta(days=cfg.detect.seed_days), start)
        if rollups is not None and rollups.height:
            detector.seed_baselines(rollups)
            seeded = rollups.get_column("node_uuid").n_unique()
    would: dict[str, _Would] = {}
    order: list[str] = []
    transitions = 0

    def feed(frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        stats["node_seconds"] += frame.height
        for piece in _time_slices(frame.sort("time"), DETECT_SLICE_ROWS):
            fold(detector.process(piece))

    def fold(found: list[Any]) -> None:
        nonlocal transitions
        for t in found:
            if t.kind not in ("open", "update", "resolve") or t.incident is None:
                continue
            transitions += 1
            w = would.get(t.incident)
            if w is None:
                det = dict(t.detection)
                w = _Would(
                    ref=t.incident,
                    node=t.node,
                    onset_at=det.get("onset_at") or t.at,
                    fired_at=det.get("fired_at") or t.at,
                    detection=det,
                )
                would[t.incident] = w
                order.append(t.incident)
            w.fold(t)

    progress.update(0, _iso(start) or "", force=True)
    for i, hour in enumerate(hours):
        lo, hi = max(start, hour), min(end, hour + timedelta(hours=1))
        m_files = reader.files("metrics", hour)
        f_files = reader.files("flows", hour)
        slices = max(1, min(60, math.ceil(_rows_of(f_files) / FLOWS_SLICE_ROWS)))
        step = (hi - lo) / slices
        for k in range(slices):
            a = lo + step * k
            b = hi if k == slices - 1 else lo + step * (k + 1)
            a = a.replace(microsecond=0) if k else a
            b = b.replace(microsecond=0) if k < slices - 1 else b
            parts: list[pl.DataFrame] = []
            metrics = reader.read(m_files, a, b)
            if metrics is not None:
                stats["metrics_rows"] += metrics.num_rows
                parts.append(frames.from_metrics(metrics, workspace))
            flows = reader.read(f_files, a, b)
            if flows is not None:
                stats["flows_rows"] += flows.num_rows
                parts.append(frames.from_flows(flows, workspace))
            parts = [p for p in parts if p.height]
            if parts:
                feed(parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed"))
        progress.update(i + 1, (_iso(hi) or "") + f" {len(order)} would-be")
    progress.close()

    backtest = [would[r].as_dict(names) for r in order]
    recorded = list(ctx["recorded"])
    for r in recorded:
        r["node_name"] = names.get(r["node"])
    groups = match_incidents(backtest, recorded, _iso(end) or "")
    return {
        "ok": True,
        "workspace_id": workspace,
        "node": node,
        "node_name": names.get(node) if node else None,
        "from": _iso(start),
        "to": _iso(end),
        "settings": None,  # filled by the caller (effective workspace settings)
        "stats": {**stats, "seeded_nodes": seeded, "transitions": transitions},
        **groups,
        "totals": {
            "backtest": len(backtest),
            "recorded": len(recorded),
            "both": len(groups["both"]),
            "backtest_only": len(groups["backtest_only"]),
            "recorded_only": len(groups["recorded_only"]),
        },
    }


# ---------------------------------------------------------------------------------- matching


def _span(start: str | None, end: str | None, open_end: str) -> tuple[str, str]:
    # ISO strings of one shape (Z, seconds or microseconds) compare as times once normalized
    return _norm(start or open_end), _norm(end or open_end)


def _norm(text: str) -> str:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def match_incidents(
    backtest: list[dict[str, Any]], recorded: list[dict[str, Any]], range_end: str
) -> dict[str, list[Any]]:
    """One-to-one: same detector incident first (``ref`` = ``detector_ref``), then same node
    with overlapping spans (an open incident runs to ``range_end``), earliest first."""
    taken: set[int] = set()
    pair: dict[int, int] = {}
    by_ref = {r.get("detector_ref"): i for i, r in enumerate(recorded) if r.get("detector_ref")}
    for bi, b in enumerate(backtest):
        ri = by_ref.get(b["ref"])
        if ri is not None and ri not in taken and recorded[ri]["node"] == b["node"]:
            pair[bi] = ri
            taken.add(ri)
    for bi, b in enumerate(backtest):
        if bi in pair:
            continue
        b_lo, b_hi = _span(b["onset_at"], b["ended_at"], range_end)
        best: tuple[str, int] | None = None
        for ri, r in enumerate(recorded):
            if ri in taken or r["node"] != b["node"]:
                continue
            r_end = r.get("resolved_at") or r.get("detector_resolved_at")
            r_lo, r_hi = _span(r["started_at"], r_end, range_end)
            if r_lo <= b_hi and b_lo <= r_hi and (best is None or r_lo < best[0]):
                best = (r_lo, ri)
        if best is not None:
            pair[bi] = best[1]
            taken.add(best[1])
    both = [
        {"backtest": b, "recorded": recorded[pair[i]]} for i, b in enumerate(backtest) if i in pair
    ]
    return {
        "both": both,
        "backtest_only": [b for i, b in enumerate(backtest) if i not in pair],
        "recorded_only": [r for i, r in enumerate(recorded) if i not in taken],
    }


# ------------------------------------------------------------------------------ human output


def _short_time(text: str | None) -> str:
    if not text:
        return "-"
    return _norm(text)[:19].replace("T", " ")


def _pps(value: Any) -> str:
    v = float(value or 0.0)
    for unit, scale in (("Gpps", 1e9), ("Mpps", 1e6), ("kpps", 1e3)):
        if v >= scale:
            return f"{v / scale:.1f} {unit}"
    return f"{v:.0f} pps"


def _mult(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}x"


def _node_label(uuid_text: str, name: str | None) -> str:
    return name or uuid_text[:8]


def render_text(result: dict[str, Any]) -> str:
    head = ["node", "family", "onset", "fired", "end", "peak", "multiplier", "recorded"]
    rows: list[list[str]] = []
    entries: list[tuple[str, list[str]]] = []
    for pair in result["both"]:
        b, r = pair["backtest"], pair["recorded"]
        entries.append((b["onset_at"], _backtest_row(b, r["uuid"])))
    for b in result["backtest_only"]:
        entries.append((b["onset_at"], _backtest_row(b, "- (would be new)")))
    entries.sort(key=lambda e: _norm(e[0]))
    rows = [row for _, row in entries]
    lines = [
        f"backtest of workspace {result['workspace_id']}"
        + (f", node {result['node_name'] or result['node']}" if result["node"] else "")
        + f", {_short_time(result['from'])} to {_short_time(result['to'])} UTC",
    ]
    stats = result["stats"]
    lines.append(
        f"replayed {stats['node_seconds']} node-seconds ({stats['metrics_rows']} metrics rows, "
        f"{stats['flows_rows']} flow rows) over {stats['hours']} h; baselines seeded for "
        f"{stats['seeded_nodes']} node(s)"
    )
    lines.append("")
    lines.append("would-be incidents:")
    lines += _table(head, rows) if rows else ["  none"]
    rec = result["recorded_only"]
    lines.append("")
    lines.append("recorded, not reproduced by the backtest:")
    if rec:
        rec_rows = [
            [
                _node_label(r["node"], r.get("node_name")),
                str(r.get("attack_family") or "-"),
                _short_time(r["started_at"]),
                _short_time(r.get("fired_at")),
                _short_time(r.get("resolved_at")) if r.get("resolved_at") else "open",
                _pps(r.get("peak_pps")),
                _mult(r.get("multiplier")),
                f"{r['uuid']} ({r['source']})",
            ]
            for r in rec
        ]
        lines += _table(head, rec_rows)
    else:
        lines.append("  none")
    t = result["totals"]
    lines.append("")
    lines.append(
        f"totals: {t['backtest']} would-be, {t['recorded']} recorded; {t['both']} in both, "
        f"{t['backtest_only']} only in the backtest, {t['recorded_only']} only recorded"
    )
    return "\n".join(lines)


def _backtest_row(b: dict[str, Any], recorded: str) -> list[str]:
    end = _short_time(b["ended_at"]) if b["ended_at"] else "open at end"
    family = str(b.get("attack_family") or "-")
    if b.get("attack_subtype"):
        family += f"/{b['attack_subtype']}"
    return [
        _node_label(b["node"], b.get("node_name")),
        family,
        _short_time(b["onset_at"]),
        _short_time(b["fired_at"]),
        end,
        _pps(b["peak_pps"]),
        _mult(b.get("multiplier")),
        recorded,
    ]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]

    def fmt(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]
