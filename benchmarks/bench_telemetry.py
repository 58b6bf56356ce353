"""End-to-end benchmark of the binary telemetry pipeline against the real server.

    python -m benchmarks.bench_telemetry [--quick] [--detect both] [--out results.json]

Starts ``python -m api serve`` on a free loopback port with a fresh temporary data directory,
then for each cell (kind x rows per batch x wire compression), in a workspace of its own with
``--nodes`` nodes (node keys; every batch is one node's rows). Cells of a collector shape
(``metrics:10000:lz4:collector-node`` or ``...:collector-node_ip``) have ``fleet_nodes`` nodes
(60) and post with the workspace's collector key batches that each hold the per-second history of
every node in time order, rows named by ``node`` UUID or by ``node_ip``:

1. **max rate**: closed loop over ``--connections`` keep-alive connections for a fixed time.
   ``e2e rows/s`` = rows acknowledged / (first send -> the moment all of them are readable in
   the lake). ``ack rows/s`` counts acknowledgements only; ``drain`` is the wait after the last
   ack until the lake held every row.
2. **half load**: open loop (Poisson arrivals, seeded) at half the e2e rate; p50/p99 time to
   acknowledge (202), measured from each batch's due time.
3. **3x load**: open loop at three times the e2e rate over 32 connections; counts 503s with
   Retry-After and records the server's peak RSS until the lake has caught up.
4. **HTTP ceiling**: the same bodies and connections against a bare aiohttp handler.

5. **Parquet ceiling**: pyarrow writing the same kind of rows to Parquet with the lake's codec,
   level and dictionary choice (one core), in a process of its own right after the cell, so that
   both ceilings see the machine as the cell did.

With ``--detect both`` every cell runs twice, on two servers started side by side: one with
``[detect] enabled = false`` and one with ``true`` (the default), each cell on the detection-off
server first and then at once on the other, so both see the machine alike. The report's
"Detection" table gives, per cell, the ratio of rows/s with detection on to rows/s with it off.
``--detect off`` / ``on`` runs the cells on one server with that setting; without the flag the
server keeps its default (on).

Peak RSS is the server's VmHWM, reset through /proc/<pid>/clear_refs before each measured phase.

Two settings differ from the defaults, and the report says so: ``ingest.flush_age_secs`` is 1 s
(the default 10 s would add a fixed 10 s wait to every bounded run, which says nothing about
throughput), and lake maintenance is pushed out of the run (compaction of closed hours is not
part of the ingest path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .batches import DISTINCT_ROWS, FLEET_TRAFFIC, SHAPES
from .ceilings import BareServer, run_parquet_ceiling
from .harness import GaugePeaks, LakeCounter, PeakRss, ServerProcess, cpu_secs
from .loadgen import LoadGenerator, LoadResult, Phase, percentile
from .telemetry_report import (
    cell_line,
    detection_ratios,
    markdown,
    parquet_summary,
    ratios,
    targets,
)

__all__ = ["FULL", "QUICK", "Plan", "main", "run"]

DETECT_MODES = ("default", "off", "on", "both")
# Memory the server accounts for itself, sampled during the max-rate and 3x phases.
_GAUGES = ("floodwatch_buffer_bytes", "floodwatch_buffer_rows", "floodwatch_wal_pending_bytes")


@dataclass(frozen=True)
class Plan:
    # (kind, rows per batch, wire compression, sender shape: batches.SHAPES)
    cells: tuple[tuple[str, int, str, str], ...]
    max_secs: float
    half_secs: float
    half_min_requests: int
    half_max_secs: float
    over_secs: float
    ceiling_secs: float
    parquet_files: int
    connections: int = 8
    over_connections: int = 32
    nodes: int = 8
    fleet_nodes: int = 60  # nodes of a collector-shape cell
    fleet_traffic: str = "noise"  # what a collector-shape cell's rows hold: FLEET_TRAFFIC
    seed: int = 20_251_128
    flush_age_secs: float = 1.0
    lake_timeout_secs: float = 120.0
    # "default" (the server's own setting), "off", "on", or "both" (every cell on a server with
    # detection off, then on one with it on)
    detect: str = "default"


def _grid(
    kinds: tuple[str, ...], rows: tuple[int, ...], comps: tuple[str, ...]
) -> tuple[tuple[str, int, str, str], ...]:
    return tuple((k, r, c, "node-key") for k in kinds for r in rows for c in comps)


# Collector / replay traffic: many nodes' seconds per batch, in time order.
COLLECTOR_CELLS = (
    ("metrics", 10_000, "lz4", "collector-node"),
    ("metrics", 10_000, "lz4", "collector-node_ip"),
    ("metrics", 50_000, "lz4", "collector-node_ip"),
)


MAX_SECS = 12.0
"""The max-rate phase. e2e divides by first send -> every row readable, and the last rows wait
``ingest.flush_age_secs`` in the buffer before a writer takes them: a fixed ~1 s of drain that
is latency, not throughput. Over 4 s it cost e2e a fifth; over 12 s it costs a twelfth, so the
figure reads close to the rate the pipeline sustains."""

FULL = Plan(
    cells=_grid(("metrics", "flows"), (1_000, 10_000, 100_000), ("none", "lz4", "zstd"))
    + COLLECTOR_CELLS,
    max_secs=MAX_SECS,
    half_secs=5,
    half_min_requests=40,
    half_max_secs=12,
    over_secs=5,
    ceiling_secs=3,
    parquet_files=4,
)
QUICK = Plan(
    cells=(
        ("metrics", 10_000, "none", "node-key"),
        ("metrics", 10_000, "lz4", "node-key"),
        ("metrics", 10_000, "zstd", "node-key"),
        ("flows", 10_000, "lz4", "node-key"),
        *COLLECTOR_CELLS,
    ),
    max_secs=MAX_SECS,
    half_secs=3,
    half_min_requests=30,
    half_max_secs=5,
    over_secs=3,
    ceiling_secs=2,
    parquet_files=1,
)


# --- helpers -------------------------------------------------------------------------------------


def _scrape(server: ServerProcess) -> dict[str, float]:
    """The server's /metrics as {"name{labels}": value}."""
    text = server.http.get(server.base_url + "/metrics", timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def _delta(after: dict[str, float], before: dict[str, float], prefix: str) -> dict[str, float]:
    return {
        k: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith(prefix) and after[k] - before.get(k, 0.0)
    }


def _ms(secs: float | None) -> float | None:
    return None if secs is None else round(secs * 1000, 1)


def _load_summary(res: LoadResult) -> dict[str, Any]:
    return {
        "sent": res.sent,
        "skipped_client_backlog": res.skipped,
        "statuses": {str(k): v for k, v in sorted(res.statuses.items())},
        "errors": res.errors,
        "retry_after_503": res.retry_after_503,
        "reasons_503": res.reasons_503,
        "accepted_rows": res.accepted_rows,
        "duplicates": res.duplicates,
        "duration_secs": round(res.duration, 3),
        "offered_rps": res.offered_rps,
        "ack_rows_per_s": round(res.ack_rows_per_s),
        "p50_ack_ms": _ms(percentile(res.latencies_202, 50)),
        "p99_ack_ms": _ms(percentile(res.latencies_202, 99)),
        "max_ack_ms": _ms(max(res.latencies_202, default=None)),
        "acks": len(res.latencies_202),
        "p50_503_ms": _ms(percentile(res.latencies_503, 50)),
        "loadgen_cpu_secs": round(res.cpu_secs, 2),
    }


class _Cell:
    def __init__(
        self,
        server: ServerProcess,
        gen: LoadGenerator,
        bare: BareServer,
        plan: Plan,
        index: int,
        kind: str,
        rows: int,
        compression: str,
        shape: str = "node-key",
        detect: str = "default",
    ) -> None:
        self.server, self.gen, self.bare, self.plan = server, gen, bare, plan
        self.kind, self.rows, self.compression, self.shape = kind, rows, compression, shape
        self.detect = detect
        self.name = f"c{index}-{kind}-{rows}-{compression}"
        if shape != "node-key":
            self.name += f"-{shape.replace('_', '')}"
        if detect != "default":
            self.name += f"-detect{detect}"
        self.acked = 0
        self.keys: tuple[str, ...] = ()
        self.lake: LakeCounter | None = None
        self.cache: Path | None = None

    def phase(self, tag: str, **kw: Any) -> Phase:
        return Phase(
            base_url=kw.pop("base_url", self.server.base_url),
            kind=self.kind,
            keys=self.keys,
            batch_prefix=f"{self.name}-{tag}",
            seed=self.plan.seed,
            **kw,
        )

    def wait_lake(self) -> float | None:
        assert self.lake is not None
        return self.lake.wait_for(self.acked, self.plan.lake_timeout_secs)

    def _build(self, ws: str, token: str) -> dict[str, float]:
        """Nodes and keys of the cell, and the load generator's bodies."""
        p, srv = self.plan, self.server
        if self.shape == "node-key":
            self.keys = tuple(srv.create_nodes(token, p.nodes, self.name))
            return self.gen.build(self.kind, self.rows, self.compression, p.seed)
        nodes = _create_fleet(srv, token, p.fleet_nodes, self.name)
        info = srv.cli_json("collector", "create", "--workspace", ws, "--name", self.name)
        self.keys = (str(info["key"]),)
        arg = {
            "kind": self.kind,
            "rows": self.rows,
            "compression": self.compression,
            "seed": p.seed,
            "distinct_rows": DISTINCT_ROWS,
            "shape": self.shape,
            "nodes": nodes,
            "traffic": p.fleet_traffic,
        }
        # LoadGenerator.build() knows only the node-key shape; its child passes every argument
        # on to batches.build_bodies
        built: dict[str, float] = self.gen._call("build", arg, timeout=300)
        return built

    def run(self) -> dict[str, Any]:
        p, srv = self.plan, self.server
        ws, token = srv.create_workspace(self.name)
        built = self._build(ws, token)
        self.lake = LakeCounter(srv.lake_root, self.kind, ws)
        out: dict[str, Any] = {
            "kind": self.kind,
            "rows_per_batch": self.rows,
            "compression": self.compression,
            "shape": self.shape,
            "fleet_traffic": None if self.shape == "node-key" else p.fleet_traffic,
            "detect": self.detect,
            "nodes": p.nodes if self.shape == "node-key" else p.fleet_nodes,
            "body_bytes": round(built["mean_bytes"]),
            "distinct_bodies": built["bodies"],
        }
        metrics0 = _scrape(srv)

        # 1. max rate, closed loop
        cpu0 = srv.cpu_secs()
        with PeakRss(srv.pid) as peak, GaugePeaks(srv.base_url, _GAUGES) as gauges:
            res = self.gen.run(self.phase("max", connections=p.connections, max_secs=p.max_secs))
            self.acked += res.accepted_rows
            t_lake = self.wait_lake()
        server_cpu = srv.cpu_secs() - cpu0
        e2e = None if t_lake is None else res.accepted_rows / (t_lake - res.t_first)
        rate = e2e or res.ack_rows_per_s
        out["max"] = {
            **_load_summary(res),
            "e2e_rows_per_s": None if e2e is None else round(e2e),
            "drain_secs": None if t_lake is None else round(t_lake - res.t_last, 3),
            "peak_rss_bytes": peak.peak_bytes,
            "peak_gauges": gauges.peaks,
            "server_cpu_secs": round(server_cpu, 2),
            "server_cpu_us_per_row": round(server_cpu / max(res.accepted_rows, 1) * 1e6, 3),
        }

        # 2. half load, open loop
        half_rps = 0.5 * rate / self.rows
        half_secs = min(max(p.half_secs, p.half_min_requests / half_rps), p.half_max_secs)
        res = self.gen.run(
            self.phase("half", connections=16, max_secs=half_secs, rate_rps=half_rps)
        )
        self.acked += res.accepted_rows
        out["half"] = {**_load_summary(res), "offered_rows_per_s": round(half_rps * self.rows)}
        self.wait_lake()

        # 3. three times the maximum rate, open loop
        over_rps = 3 * rate / self.rows
        with PeakRss(srv.pid) as peak, GaugePeaks(srv.base_url, _GAUGES) as gauges:
            res = self.gen.run(
                self.phase(
                    "over",
                    connections=p.over_connections,
                    max_secs=p.over_secs,
                    rate_rps=over_rps,
                    max_inflight=2 * p.over_connections,
                )
            )
            self.acked += res.accepted_rows
            t_lake = self.wait_lake()
        sent_rows_per_s = res.sent * self.rows / res.duration
        out["over"] = {
            **_load_summary(res),
            "offered_rows_per_s": round(over_rps * self.rows),
            "sent_rows_per_s": round(sent_rows_per_s),
            "peak_rss_bytes": peak.peak_bytes,
            "peak_gauges": gauges.peaks,
            "lake_caught_up_secs": None if t_lake is None else round(t_lake - res.t_last, 3),
        }
        metrics1 = _scrape(srv)

        # 4. the HTTP ceiling with the same bodies
        res = self.gen.run(
            self.phase(
                "ceiling",
                base_url=self.bare.base_url,
                connections=p.connections,
                max_secs=p.ceiling_secs,
            )
        )
        ok = res.count(202)
        out["http_ceiling"] = {
            "rows_per_s": round(ok * self.rows / res.duration),
            "requests_per_s": round(ok / res.duration, 1),
            "p50_ms": _ms(percentile(res.latencies_202, 50)),
            "statuses": {str(k): v for k, v in res.statuses.items()},
        }

        # 5. the Parquet ceiling, measured next to the cell (the machine's load drifts)
        out["parquet_ceiling"] = run_parquet_ceiling(
            self.kind, p.seed, p.parquet_files, cache=self.cache
        )

        lake_rows, lake_bytes = self.lake.scan()
        out["lake"] = {
            "rows": lake_rows,
            "duckdb_rows": self.lake.duckdb_count(),
            "acked_rows": self.acked,
            "bytes": lake_bytes,
            "bytes_per_row": round(lake_bytes / lake_rows, 2) if lake_rows else None,
            "all_acked_rows_readable": lake_rows == self.acked,
        }
        out["server"] = _server_breakdown(metrics0, metrics1)
        return out


def _create_fleet(
    srv: ServerProcess, token: str, count: int, prefix: str
) -> tuple[tuple[str, str], ...]:
    """(uuid, address) of ``count`` new nodes (``POST /api/v1/nodes``), addresses in
    198.18.0.0/15 (benchmarking range)."""
    out = []
    for i in range(count):
        ip = f"198.18.{i // 250}.{1 + i % 250}"
        resp = srv.http.post(
            srv.base_url + "/api/v1/nodes",
            json={"name": f"{prefix}-{i}", "ip": ip},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if resp.status_code != 201:
            raise RuntimeError(f"node create failed: {resp.status_code} {resp.text}")
        out.append((str(resp.json()["node"]["uuid"]), ip))
    return tuple(out)


def _server_breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """What the server's own counters (/metrics) say about the cell's phases 1-3."""

    def d(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    groups, fsync = d("floodwatch_wal_groups_total"), d("floodwatch_wal_fsync_seconds_sum")
    flushes, flush_secs = d("floodwatch_flush_seconds_count"), d("floodwatch_flush_seconds_sum")
    flush_rows = d("floodwatch_flush_rows_sum")
    accepted = sum(v for k, v in _delta(after, before, "floodwatch_ingest_rows_accepted").items())
    return {
        "rejected": _delta(after, before, "floodwatch_ingest_batches_rejected_total"),
        "wal_groups": int(groups),
        "wal_mean_write_fsync_ms": round(fsync / groups * 1000, 2) if groups else None,
        "lake_files": int(flushes),
        "lake_rows_per_file": round(flush_rows / flushes) if flushes else None,
        "lake_mean_write_secs": round(flush_secs / flushes, 3) if flushes else None,
        # rows per second of the lake writer while it was writing (its own speed, one thread)
        "lake_writer_rows_per_s": round(flush_rows / flush_secs) if flush_secs else None,
        "rows_accepted": int(accepted),
    }


# --- the run -------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "commit": commit or None,
    }


def run(plan: Plan, keep_data: bool = False, log: Any = None) -> dict[str, Any]:
    """Run ``plan``; returns the report (see the README for the meaning of each field)."""

    def say(msg: str) -> None:
        if log is not None:
            print(msg, file=log, flush=True)

    started = time.monotonic()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "plan": {**asdict(plan), "distinct_rows": DISTINCT_ROWS},
        "settings_changed": {
            "FLOODWATCH_INGEST__FLUSH_AGE_SECS": str(plan.flush_age_secs),
            "FLOODWATCH_LAKE__MAINTENANCE_INTERVAL_SECS": "86400",
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix="floodwatch-bench-"))
    (tmp / "cache").mkdir()
    modes = ("off", "on") if plan.detect == "both" else (plan.detect,)
    servers: dict[str, ServerProcess] = {}
    for mode in modes:
        env = dict(report["settings_changed"])
        if mode != "default":
            env["FLOODWATCH_DETECT__ENABLED"] = "true" if mode == "on" else "false"
        # one directory per server: each logs beside its data directory
        home = tmp if mode == "default" else tmp / f"detect-{mode}"
        servers[mode] = ServerProcess(home / "data", env=env)
    report["detect_modes"] = {
        m: srv.env.get("FLOODWATCH_DETECT__ENABLED") for m, srv in servers.items()
    }
    report["data_dir"] = str(tmp) if keep_data else None
    cells: list[dict[str, Any]] = []
    try:
        for srv in servers.values():
            srv.start()
        report["server_idle_rss_bytes"] = max(_rss(srv.pid) for srv in servers.values())
        with BareServer() as bare, LoadGenerator() as gen:
            for i, (kind, rows, comp, shape) in enumerate(plan.cells):
                for mode, srv in servers.items():
                    tag = "" if mode == "default" else f", detection {mode}"
                    say(f"cell {i + 1}/{len(plan.cells)}: {kind} {rows} rows {comp} {shape}{tag}")
                    runner = _Cell(srv, gen, bare, plan, i, kind, rows, comp, shape, mode)
                    runner.cache = tmp / "cache"
                    cell = runner.run()
                    ratios(cell)
                    cells.append(cell)
                    say(cell_line(cell))
            report["loadgen_pid_cpu_secs"] = round(cpu_secs(gen.pid), 2)
    finally:
        for srv in servers.values():
            srv.stop()
        report["server_log_tail"] = {
            m: srv.stderr_tail(5).splitlines() for m, srv in servers.items()
        }
        if not keep_data:
            shutil.rmtree(tmp, ignore_errors=True)
    report["cells"] = cells
    report["parquet_ceiling"] = parquet_summary(cells)
    report["targets"] = targets(cells)
    report["detection"] = detection_ratios(cells)
    report["machine"]["load_average_end"] = os.getloadavg()
    report["elapsed_secs"] = round(time.monotonic() - started, 1)
    return report


def _rss(pid: int) -> int:
    from .harness import read_status_kib

    return (read_status_kib(pid, "VmRSS") or 0) * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_telemetry")
    parser.add_argument("--quick", action="store_true", help="7 cells, shorter phases (~3 min)")
    parser.add_argument("--out", type=Path, help="write the full report as JSON here")
    parser.add_argument(
        "--cell",
        action="append",
        metavar="KIND:ROWS:WIRE[:SENDER]",
        help="run only these cells (e.g. metrics:10000:lz4, metrics:10000:lz4:collector-node_ip;"
        f" SENDER one of {', '.join(SHAPES)}); repeatable",
    )
    parser.add_argument("--connections", type=int, help="closed-loop connections (default 8)")
    parser.add_argument("--keep-data", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--detect",
        choices=DETECT_MODES,
        default="default",
        help="[detect] enabled for the run: off, on, or both (every cell on a server with "
        "detection off, then on one with it on; the report gives the ratio). default: the "
        "server's own setting",
    )
    parser.add_argument(
        "--flush-age-secs",
        type=float,
        help="ingest.flush_age_secs for the run (default 1). The last rows of a phase wait this "
        "long in the buffer, so it adds to every cell's drain and lowers e2e rows/s",
    )
    parser.add_argument(
        "--max-secs",
        type=float,
        help="length of the max-rate phase (quick 4 s, full 6 s). e2e counts the drain after "
        "the last ack (at least the flush age), so a longer phase reads closer to the "
        "steady-state rate",
    )
    parser.add_argument(
        "--fleet-traffic",
        choices=FLEET_TRAFFIC,
        default="noise",
        help="what the collector cells' rows hold: noise (every counter drawn on its own, which "
        "the detector reads as 60 nodes under attack) or coherent (traffic a node can have). "
        "default: noise",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(**{**asdict(plan), "fleet_traffic": args.fleet_traffic})
    if args.cell:
        cells = []
        for spec in args.cell:
            kind, rows, comp, *rest = spec.split(":")
            shape = rest[0] if rest else "node-key"
            if shape not in SHAPES or len(rest) > 1:
                parser.error(f"--cell {spec}: sender must be one of {', '.join(SHAPES)}")
            cells.append((kind, int(rows), comp, shape))
        plan = Plan(**{**asdict(plan), "cells": tuple(cells)})
    if args.connections:
        plan = Plan(**{**asdict(plan), "connections": args.connections})
    if args.flush_age_secs:
        plan = Plan(**{**asdict(plan), "flush_age_secs": args.flush_age_secs})
    if args.max_secs:
        plan = Plan(**{**asdict(plan), "max_secs": args.max_secs})
    if args.detect != "default":
        plan = Plan(**{**asdict(plan), "detect": args.detect})
    report = run(plan, keep_data=args.keep_data, log=sys.stderr)
    print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
