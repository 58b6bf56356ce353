"""Detection wired into the server: acknowledged telemetry in, incidents out.

The pipeline hands every batch to ``DetectionService.on_durable`` the moment it is durable (on
the event loop, before the 2xx; the call only queues it). One worker thread takes everything
queued, turns it into node-seconds (``detect.frames``), runs the detector (``detect.engine``) and
hands its transitions back to the event loop, where a single writer task folds them into the
incidents table (``store.detections``) in arrival order. polars releases the GIL, so the worker
runs beside the event loop on the second core.

Flows are held back until their second is complete: a second of a node's flows is released once
a row of a later second of that node's workspace has arrived, or once it has waited
``FLOWS_HOLD_SECS`` of wall-clock time (a sender that stopped). Released seconds become
node-seconds; the raw rows stay in a short ring (``FLOWS_RING_SECS`` of event time, at most
``FLOWS_RING_ROWS`` rows per workspace) from which an incident's breakdown, top sources, ports
and origin are computed.

State: the detector's whole state is saved every ``detect.snapshot_interval_secs`` and at stop
to ``<data_dir>/detect/state.bin`` and loaded at start; nodes the saved state does not know get
baselines rebuilt from the lake's 1-minute rollups. Active detector incidents that the loaded
state does not hold (the state file was older than the incident) are resolved at start with
``ended_reason`` ``restart``: the detector opens a new one if the attack goes on.

Backpressure: ``pipeline.pressure`` reports the service as behind while more than
``detect.max_backlog_rows`` rows wait, so ingest answers 503 rather than growing the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pyarrow as pa

from detect import frames
from detect.settings import DetectionSettings, SettingsError, check_names, validate_patch
from ingest.pipeline import Pipeline
from ingest.wal import write_atomic
from store import Store, iso_utc
from store import detections as repo
from store.clock import SYSTEM_CLOCK, Clock

from .activity import ActivityTracker
from .config import DetectConfig

__all__ = ["DetectionService", "effective_settings", "patch_overrides"]

log = logging.getLogger("floodwatch.detect")

FLOWS_HOLD_SECS = 1.5
FLOWS_RING_SECS = 180
FLOWS_RING_ROWS = 500_000
"""Raw flow rows kept per workspace at most (the newest): at a router's full rate, or when a
sender repeats seconds, 180 s of rows would otherwise hold gigabytes."""
STATE_FILE = "state.bin"
PASS_ROWS = 500_000
"""Rows one detection pass takes from the queue at most (unless one batch alone is larger).
Past about 100k rows a pass costs the same per row; larger passes only hold more memory."""
LATEST_COLUMNS = ("pps", "bps", "tcp_pps", "udp_pps", "icmp_pps", "other_pps", "conn_count")
"""The columns of each node's newest metrics second that the service keeps."""


def _joined(tables: list[pa.Table]) -> list[pa.Table]:
    """The tables as one (zero-copy), or as they are when their schemas do not line up."""
    if len(tables) == 1:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="default")]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return tables


def patch_overrides(
    base: dict[str, Any], stored: dict[str, Any], patch: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply a REST patch to stored overrides. ``null`` removes an override (also inside
    ``series``). Returns (new overrides, effective settings = ``base`` + overrides); raises
    SettingsError naming the field."""
    if not isinstance(patch, dict):
        raise SettingsError("body", "must be a JSON object of settings")
    # an unknown name is refused even when it is null (removing an override that cannot exist),
    # as the schema says: a typo must not pass silently
    check_names(patch)
    new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in stored.items()}
    for key, value in patch.items():
        if value is None:
            new.pop(key, None)
        elif key == "series" and isinstance(value, dict):
            series = dict(new.get("series") or {})
            for name, flag in value.items():
                if flag is None:
                    series.pop(name, None)
                else:
                    series[name] = flag
            if series:
                new["series"] = series
            else:
                new.pop("series", None)
        else:
            new[key] = value
    effective = validate_patch(base, new)  # names the field of any bad value
    return new, effective


def effective_settings(*layers: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid by each layer of stored overrides (workspace, then node)."""
    out = DetectionSettings().to_dict()
    for layer in layers:
        if layer:
            out = validate_patch(out, layer)
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class DetectionService:
    def __init__(
        self,
        cfg: DetectConfig,
        store: Store,
        pipeline: Pipeline,
        data_dir: Path,
        activity: ActivityTracker | None = None,
        enrich: Callable[[pl.DataFrame], dict[str, Any]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.cfg = cfg
        # the serving clock: the flows hold window, the snapshot interval, the rollup window
        # of baseline seeding and the stamp of incidents ended at start (the detector itself
        # reads only the rows' event time)
        self.clock = clock
        self.store = store
        self.pipeline = pipeline
        self.dir = data_dir / "detect"
        self.activity = activity
        self.enrich = enrich
        self.detector: Any = None
        self._queue: deque[tuple[str, str, pa.Table]] = deque()
        self._queued_rows = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: asyncio.Queue[list[dict[str, Any]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._overrides: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._settings: dict[tuple[str, str], DetectionSettings] = {}
        self._controls: deque[tuple[str, str | None]] = deque()
        self._flows_pending: list[tuple[str, pl.DataFrame, float]] = []
        self._flows_ring: dict[str, pl.DataFrame] = {}
        self._saved_at = self.clock.monotonic()
        self._llm_tasks: set[asyncio.Task[None]] = set()
        self._summarizer: Any = None
        self.processed_rows = 0
        self.transitions = 0
        self.failures = 0
        self.last_pass_secs = 0.0
        self._latest: dict[str, dict[str, Any]] = {}

    # --- settings --------------------------------------------------------------------------

    def settings_for(self, workspace: str, node: str) -> DetectionSettings:
        key = (workspace, node)
        found = self._settings.get(key)
        if found is None:
            try:
                merged = effective_settings(
                    self._overrides.get((workspace, None), {}),
                    self._overrides.get((workspace, node), {}),
                )
                found = DetectionSettings.from_dict(merged)
            except SettingsError:
                log.warning("stored detection settings no longer valid; defaults used")
                found = DetectionSettings()
            self._settings[key] = found
        return found

    def overrides_changed(
        self, workspace: str, node: str | None, overrides: dict[str, Any]
    ) -> None:
        """A REST write stored new overrides: they apply from the next pass on."""
        with self._cv:
            if overrides:
                self._overrides[(workspace, node)] = overrides
            else:
                self._overrides.pop((workspace, node), None)
            self._controls.append((workspace, node))
            self._cv.notify()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        from detect.engine import Detector

        self._loop = asyncio.get_running_loop()
        self._out = asyncio.Queue()
        self.dir.mkdir(parents=True, exist_ok=True)
        for ws, node, over in await self.store.read(repo.all_detection_overrides):
            self._overrides[(ws, node)] = over
        path = self.dir / STATE_FILE
        detector = None
        if path.exists():
            try:
                blob = await asyncio.to_thread(path.read_bytes)
                detector = Detector.from_state(blob, self.settings_for)
            except Exception:
                log.exception("detector state unreadable; baselines are rebuilt from the lake")
        if detector is None:
            detector = Detector(self.settings_for)
        self.detector = detector
        if self.cfg.seed_days > 0:
            try:
                rollups = await self.store.query(self._read_rollups)
                if rollups is not None and rollups.height:
                    await asyncio.to_thread(detector.seed_baselines, rollups)
                    log.info("baselines seeded from rollups rows=%d", rollups.height)
            except Exception:
                log.exception("baseline seeding from rollups failed")
        await self._reconcile()
        self._writer = asyncio.create_task(self._write_loop(), name="detect-writer")
        self._thread = threading.Thread(target=self._run, name="detect", daemon=True)
        self._thread.start()
        self.pipeline.durable_hooks.append(self.on_durable)
        self.pipeline.pressure.append(self.behind)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.pipeline.durable_hooks.remove(self.on_durable)
        with contextlib.suppress(ValueError):
            self.pipeline.pressure.remove(self.behind)
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._out is not None and self._writer is not None:
            await self._out.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for task in list(self._llm_tasks):
            task.cancel()
        if self._summarizer is not None:
            await self._summarizer.close()
        if self.detector is not None:
            await asyncio.to_thread(self._save)

    def _read_rollups(self, con: Any) -> pl.DataFrame | None:
        root = self.pipeline.lake.root
        since = self.clock.now() - timedelta(days=self.cfg.seed_days)
        files = sorted(str(p) for p in root.glob("metrics_1m/workspace=*/date=*/hour=*/*.parquet"))
        files = [f for f in files if _date_of(f) >= since.date().isoformat()]
        if not files:
            return None
        known = self.detector.known_nodes()
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        table = con.execute(
            f"SELECT * FROM read_parquet({listed}, union_by_name = true, hive_partitioning = true) "
            "WHERE time >= ? ORDER BY node_uuid, time",
            [since],
        ).to_arrow_table()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if known:
            frame = frame.filter(~pl.col("node_uuid").is_in(list(known)))
        return frame

    async def _reconcile(self) -> None:
        """Active detector incidents the loaded state does not hold are resolved now."""
        refs = await self.store.read(repo.open_detector_refs)
        held = self.detector.open_incident_ids()
        lost = [ref for ref in refs if ref not in held]
        if not lost:
            return
        now = self.clock.now()
        stale = [
            {"kind": "resolve", "incident": ref, "at": now, "ended_reason": "restart"}
            for ref in lost
        ]
        await self.store.run(repo.apply_transitions, stale)
        log.info("detector incidents ended at start (state older than them) count=%d", len(lost))

    # --- intake (event loop) ---------------------------------------------------------------

    def on_durable(self, kind: str, workspace: str, table: pa.Table) -> None:
        with self._cv:
            self._queue.append((kind, workspace, table))
            self._queued_rows += table.num_rows
            self._cv.notify()

    def behind(self) -> bool:
        return self._queued_rows > self.cfg.max_backlog_rows

    @property
    def backlog_rows(self) -> int:
        return self._queued_rows

    # --- the worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._controls and not self._stopping:
                    if not self._cv.wait(timeout=0.5):
                        break
                # at most about PASS_ROWS rows a pass (always at least one batch, everything at
                # stop): a backlog is worked off in passes of bounded memory
                items: list[tuple[str, str, pa.Table]] = []
                rows = 0
                while self._queue and (
                    not items or self._stopping or rows + self._queue[0][2].num_rows <= PASS_ROWS
                ):
                    item = self._queue.popleft()
                    items.append(item)
                    rows += item[2].num_rows
                controls = list(self._controls)
                self._controls.clear()
                stopping = self._stopping
            try:
                for ws, node in controls:
                    self._settings = {
                        k: v
                        for k, v in self._settings.items()
                        if not (k[0] == ws and (node is None or k[1] == node))
                    }
                    self.detector.settings_changed(ws, node)
                self._pass(items, final=stopping)
            except Exception:
                self.failures += 1
                log.exception("detection pass failed rows=%d", sum(t.num_rows for _, _, t in items))
            finally:
                with self._cv:
                    self._queued_rows -= sum(t.num_rows for _, _, t in items)
            if self.clock.monotonic() - self._saved_at >= self.cfg.snapshot_interval_secs:
                try:
                    self._save()
                except Exception:
                    log.exception("detector state not saved")
            if stopping:
                return

    def _pass(self, items: list[tuple[str, str, pa.Table]], final: bool = False) -> None:
        started = time.perf_counter()
        parts: list[pl.DataFrame] = []
        now = self.clock.monotonic()
        metrics: dict[str, list[pa.Table]] = {}
        for kind, ws, table in items:
            if kind == "metrics":
                metrics.setdefault(ws, []).append(table)
            elif kind == "flows":
                raw = pl.from_arrow(table)
                assert isinstance(raw, pl.DataFrame)
                self._flows_pending.append((ws, raw, now))
        for ws, tables in metrics.items():
            # one conversion per workspace and pass, not one per batch (a backfill's pass holds
            # about 50 batches); duplicated seconds are merged once, by the detector
            for table in _joined(tables):
                parts.append(frames.from_metrics(table, ws, merge=False))
                self._remember_latest(table)
        parts.extend(self._release_flows(now, final))
        if not parts:
            return
        frame = (
            pl.concat([p for p in parts if p.height], how="diagonal_relaxed")
            if len(parts) > 1
            else parts[0]
        )
        if not frame.height:
            return
        if not frame.get_column("time").is_sorted():  # history and live batches usually are
            frame = frame.sort("time")
        transitions = self.detector.process(frame)
        self.processed_rows += frame.height
        self.last_pass_secs = time.perf_counter() - started
        if transitions:
            out = [self._as_dict(t) for t in transitions]
            self.transitions += len(out)
            assert self._loop is not None and self._out is not None
            self._loop.call_soon_threadsafe(self._out.put_nowait, out)

    def _remember_latest(self, table: pa.Table) -> None:
        """Keep each node's newest metrics second (for the Prometheus scrape: live state
        without a lake scan)."""
        names = set(table.column_names)
        if table.num_rows == 0 or not {"node_uuid", "time"} <= names:
            return
        cols = ["node_uuid", "time", *(c for c in LATEST_COLUMNS if c in names)]
        df = pl.from_arrow(table.select(cols))
        assert isinstance(df, pl.DataFrame)
        newest = df.group_by("node_uuid").agg(pl.all().get(pl.col("time").arg_max()))
        for row in newest.iter_rows(named=True):
            node = row.pop("node_uuid")
            held = self._latest.get(node)
            if held is None or row["time"] >= held["time"]:
                self._latest[node] = row

    def latest_sample(self, node: str) -> dict[str, Any] | None:
        """The node's newest metrics second seen (``time`` and the columns of
        ``LATEST_COLUMNS`` it carried), or None."""
        return self._latest.get(node)

    def _release_flows(self, now: float, final: bool) -> list[pl.DataFrame]:
        """Complete seconds of held flows, as node-seconds per workspace."""
        if not self._flows_pending:
            return []
        by_ws: dict[str, list[tuple[pl.DataFrame, float]]] = {}
        for ws, df, at in self._flows_pending:
            by_ws.setdefault(ws, []).append((df, at))
        self._flows_pending = []
        out: list[pl.DataFrame] = []
        for ws, chunks in by_ws.items():
            rows = pl.concat([c for c, _ in chunks], how="diagonal_relaxed")
            oldest = min(at for _, at in chunks)
            seconds = pl.col("time").dt.truncate("1s")
            newest = rows.select(seconds.max()).item()
            if final or now - oldest >= FLOWS_HOLD_SECS:
                ready, held = rows, rows.clear()
            else:
                ready = rows.filter(seconds < newest)
                held = rows.filter(seconds >= newest)
            if held.height:
                self._flows_pending.append((ws, held, now if ready.height else oldest))
            if ready.height:
                self._remember_flows(ws, ready)
                out.append(frames.from_flows(ready, ws))
        return out

    def _remember_flows(self, ws: str, rows: pl.DataFrame) -> None:
        ring = self._flows_ring.get(ws)
        ring = rows if ring is None else pl.concat([ring, rows], how="diagonal_relaxed")
        newest = ring.select(pl.col("time").max()).item()
        if newest is not None:
            ring = ring.filter(pl.col("time") >= newest - timedelta(seconds=FLOWS_RING_SECS))
        if ring.height > FLOWS_RING_ROWS:
            ring = ring.tail(FLOWS_RING_ROWS)
        self._flows_ring[ws] = ring

    def _as_dict(self, t: Any) -> dict[str, Any]:
        d: dict[str, Any] = _plain(t)
        if d.get("kind") in ("open", "update", "resolve") and self.enrich is not None:
            ring = self._flows_ring.get(d["workspace"])
            if ring is not None and ring.height:
                onset = (d.get("detection") or {}).get("onset_at") or d["at"]
                window = ring.filter(
                    (pl.col("node_uuid") == d["node"])
                    & (pl.col("time") >= onset - timedelta(seconds=5))
                    & (pl.col("time") <= d["at"] + timedelta(seconds=1))
                )
                if window.height:
                    try:
                        detail = self.enrich(window)
                        bd = dict(d.get("breakdown") or {})
                        bd["flows"] = detail  # the flow records' own view, shares in percent
                        for key in ("top_sources", "geo_origin", "source_ip_count", "asns"):
                            if detail.get(key):
                                bd[key] = detail[key]
                        d["breakdown"] = bd
                    except Exception:
                        log.exception("flow enrichment failed")
        if d.get("kind") in ("open", "update", "resolve"):
            d["summary"] = _summary(d)
        return d

    def _save(self) -> None:
        self._saved_at = self.clock.monotonic()
        blob = self.detector.state_bytes()
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / STATE_FILE, blob)

    # --- results (event loop) --------------------------------------------------------------

    async def _write_loop(self) -> None:
        assert self._out is not None
        while True:
            batch = await self._out.get()
            taken = 1
            while not self._out.empty() and len(batch) < 5000:
                batch = batch + self._out.get_nowait()
                taken += 1
            try:
                await self._apply(batch)
            except Exception:
                log.exception("detection transitions not written count=%d", len(batch))
            finally:
                for _ in range(taken):
                    self._out.task_done()

    async def _apply(self, batch: list[dict[str, Any]]) -> None:
        incidents = [t for t in batch if t.get("kind") in ("open", "update", "resolve")]
        if incidents:
            done = await self.store.run(repo.apply_transitions, incidents)
            if self.cfg.summary_llm_url:
                for t, (inc, what) in zip(incidents, done, strict=False):
                    if what in ("open", "resolve") and t.get("summary"):
                        task = asyncio.create_task(self._llm_summary(inc, t))
                        self._llm_tasks.add(task)
                        task.add_done_callback(self._llm_tasks.discard)
        if self.activity is not None:
            for t in batch:
                if t.get("kind") in ("elevated", "normal", "open", "resolve"):
                    self.activity.mark_elevated(t["node"], t["kind"] == "elevated")

    async def _llm_summary(self, inc: str, t: dict[str, Any]) -> None:
        """Ask the configured model for the summary; the deterministic one stays on failure."""
        from .summarizer import Summarizer

        if self._summarizer is None:
            self._summarizer = Summarizer.from_config(self.cfg)
        facts = {
            k: t.get(k)
            for k in (
                "kind",
                "attack_family",
                "attack_subtype",
                "severity",
                "confidence",
                "peak_pps",
                "peak_bps",
                "detection",
                "breakdown",
                "at",
                "ended_reason",
            )
        }
        fallback = str(t.get("summary") or "")
        text = await self._summarizer.summarize(_plain_json(facts), fallback)
        if text and text != fallback:
            await self.store.run(repo.set_summary, inc, text)

    def baseline_now(self, node: str, at: datetime | None = None) -> dict[str, Any] | None:
        if self.detector is None:
            return None
        try:
            found = self.detector.baseline_now(node, at or self.clock.now())
        except Exception:
            log.exception("baseline lookup failed")
            return None
        return None if found is None else _plain(found)


def _plain_json(value: Any) -> Any:
    """``value`` with datetimes as ISO strings (for a JSON request body)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    return value


def _summary(t: dict[str, Any]) -> str | None:
    try:
        from detect.summary import summarize
    except ImportError:  # pragma: no cover - shipped together
        return None
    try:
        text: str = summarize(SimpleNamespace(**t))
    except Exception:
        log.exception("summary failed")
        return None
    bd = t.get("breakdown") or {}
    origins = [o for o in bd.get("geo_origin") or [] if isinstance(o, dict) and o.get("country")]
    if origins:
        where = ", ".join(f"{o['country']} {float(o.get('share') or 0):.0f}%" for o in origins[:3])
        text += f" Origin by country: {where}."
    sources = bd.get("top_sources") or []
    if sources and bd.get("source_ip_count"):
        top = sources[0]
        text += (
            f" {int(bd['source_ip_count'])} source addresses; the busiest, {top.get('ip')}, "
            f"sent {float(top.get('share') or 0):.0f}% of the sampled packets."
        )
    return text


def _date_of(path: str) -> str:
    for part in Path(path).parts:
        if part.startswith("date="):
            return part[5:]
    return ""
