"""Ceilings: what the pipeline's two ends can do on their own, measured in the same run.

- ``http``: a bare aiohttp server (uvloop, no access log) whose one handler reads the whole body
  and answers 202 with a small JSON document. Driven by the same load generator with the same
  bodies and connections, it gives the rows/s that HTTP alone allows on this machine.
- ``parquet``: pyarrow writing the same rows, in lake form, to Parquet with the settings of the
  files the ingest path writes (``lake.fresh_compression`` of the default configuration, with
  ``lake.compression_level`` for zstd; statistics for ``node_uuid`` and ``time`` only; no
  dictionaries for float and time columns), pinned to one core, in files of
  ``ingest.flush_rows`` rows (the most one lake write takes). One lake writer thread runs on one
  core, so this is the rows/s that the Parquet stage allows per writer (the server runs
  ``lake_writers`` of them). Also measured, as a breakdown: ``Lake.write_part`` itself given
  the rows as 10k-row batches of one node, as the server gets them (the lake writer's ordering
  by node and time, write, fsync, rename), and pyarrow's defaults (zstd level 3, a dictionary
  tried for every column: the ceiling of the first benchmark runs).

Run as ``python -m benchmarks.ceilings http --port N`` (serves until SIGTERM or ``--max-secs``)
or ``python -m benchmarks.ceilings parquet --kind metrics`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from pyarrow import ipc

from .harness import free_port

__all__ = ["BareServer", "parquet_ceiling", "serve_until_stopped"]

_ANSWER = b'{"ok": true, "accepted": 0, "duplicate": false, "ignored_columns": []}'


# --- the bare HTTP server ----------------------------------------------------------------------


async def serve_until_stopped(app: Any, port: int, max_secs: float) -> None:
    """Serve the aiohttp ``app`` on 127.0.0.1:``port`` (no access log) until SIGTERM or SIGINT,
    or ``max_secs`` at most: the bare handlers' processes."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max_secs)
    await runner.cleanup()


async def _serve_bare(port: int, max_secs: float) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_ANSWER, status=202, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/v1/telemetry/{kind}", handle)
    app.router.add_get("/health", health)
    await serve_until_stopped(app, port, max_secs)


class BareServer:
    """The bare HTTP ceiling in its own process. Use as a context manager."""

    def __init__(self, max_secs: float = 3600) -> None:
        self.port = 0
        self.max_secs = max_secs
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BareServer:
        self.port = free_port()
        cmd = [sys.executable, "-m", "benchmarks.ceilings", "http", "--port", str(self.port)]
        self.proc = subprocess.Popen([*cmd, "--max-secs", str(self.max_secs)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("bare HTTP server exited early")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("bare HTTP server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# --- the Parquet writer ------------------------------------------------------------------------


def _lake_rows(kind: str, rows: int, seed: int) -> pa.Table:
    """``rows`` rows of the benchmark's pool in lake form (decoded, checked, routed)."""
    from ingest.decode import decode_body
    from ingest.routing import to_lake_table
    from ingest.schema import KINDS

    from .batches import encode, row_pool

    pool = row_pool(kind, seed)
    k = KINDS[kind]
    node = str(uuid.UUID(int=seed))
    parts = []
    for start in range(0, rows, 100_000):
        wire = pool.slice(start % pool.num_rows, min(100_000, rows - start))
        decoded = decode_body(
            encode(wire, "none"),
            k,
            max_rows=1_000_000,
            now=datetime.now(UTC),
            max_age=timedelta(days=15),
            max_skew=timedelta(minutes=5),
        )
        parts.append(to_lake_table(k, decoded.table, source="arrow", node=node))
    return pa.concat_tables(parts).combine_chunks()


def _cached_lake_rows(kind: str, rows: int, seed: int, cache: Path | None) -> pa.Table:
    if cache is None:
        return _lake_rows(kind, rows, seed)
    path = cache / f"lake-{kind}-{rows}-{seed}.arrow"
    if not path.exists():
        table = _lake_rows(kind, rows, seed)
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp.replace(path)
    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).read_all()


def lake_settings() -> tuple[str, int, int]:
    """(codec, level, rows per file) of the files the ingest path writes with the default
    configuration."""
    from api.config import IngestConfig, LakeConfig

    lake, ingest = LakeConfig(), IngestConfig()
    return lake.fresh_compression, lake.compression_level, ingest.flush_rows


def parquet_ceiling(
    kind: str,
    seed: int = 1,
    file_rows: int | None = None,
    files: int = 4,
    cpu: int | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    """rows/s of pyarrow writing ``files`` files of ``file_rows`` lake rows (in this process).

    With ``cpu`` the process is pinned to that core and Arrow to one thread first; with
    ``cache`` the lake rows are kept there between runs (an Arrow file)."""
    from ingest.pipeline import FRESH_STATISTICS
    from ingest.schema import KINDS, METRICS
    from store.lake import Lake, PartitionKey

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    compression, level, default_rows = lake_settings()
    file_rows = file_rows or default_rows
    table = _cached_lake_rows(kind, file_rows, seed, cache)
    # the lake's choice of dictionary columns (store/lake.py)
    dictionary = [
        f.name
        for f in table.schema
        if not (pa.types.is_floating(f.type) or pa.types.is_temporal(f.type))
    ]
    out: dict[str, Any] = {
        "kind": kind,
        "file_rows": file_rows,
        "files": files,
        "compression": compression,
        "level": level,
    }
    with tempfile.TemporaryDirectory(prefix="floodwatch-parquet-ceiling-") as tmp:
        plain_secs = 0.0
        for i in range(files):
            path = Path(tmp) / f"plain-{i}.parquet"
            t = time.perf_counter()
            pq.write_table(
                table,
                path,
                use_dictionary=dictionary,
                compression=compression,
                compression_level=level if compression == "zstd" else None,
                write_statistics=list(FRESH_STATISTICS),
                row_group_size=1_000_000,
            )
            plain_secs += time.perf_counter() - t
        out["bytes_per_row"] = (Path(tmp) / "plain-0.parquet").stat().st_size / file_rows
        # the lake writer's own call: sort by node and time, write, fsync, rename, fsync dir
        lake = Lake(
            Path(tmp) / "lake",
            {k.name: k.lake_schema for k in KINDS.values()},
            METRICS.name,
            (),
            (),
            "zstd",
            level,
            fresh_compression=compression,
            fresh_statistics=FRESH_STATISTICS,
        )
        key = PartitionKey(kind, str(uuid.UUID(int=seed)), datetime.now(UTC).date(), 0)
        batches = [table.slice(i, 10_000) for i in range(0, file_rows, 10_000)]
        lake_secs = 0.0
        for i in range(files):
            path = lake.new_part_path(key, i + 1)
            t = time.perf_counter()
            lake.write_part(key, batches, path, [i + 1])
            lake_secs += time.perf_counter() - t
        # Breakdown, not a ceiling: pyarrow's defaults, as the first runs of this benchmark used
        # (zstd 3, a dictionary tried for every column, dropped for nearly distinct floats)
        default_secs = 0.0
        for i in range(files):
            path = Path(tmp) / f"default-{i}.parquet"
            t = time.perf_counter()
            pq.write_table(
                table, path, compression="zstd", compression_level=3, row_group_size=1_000_000
            )
            default_secs += time.perf_counter() - t
        out["pyarrow_default_bytes_per_row"] = (
            Path(tmp) / "default-0.parquet"
        ).stat().st_size / file_rows
    out["rows_per_s"] = files * file_rows / plain_secs
    out["lake_write_part_rows_per_s"] = files * file_rows / lake_secs
    out["pyarrow_default_rows_per_s"] = files * file_rows / default_secs
    return out


def run_parquet_ceiling(
    kind: str, seed: int, files: int, cpu: int = 0, cache: Path | None = None
) -> dict[str, Any]:
    """``parquet_ceiling`` in a fresh process pinned to core ``cpu``."""
    cmd = [sys.executable, "-m", "benchmarks.ceilings", "parquet", "--kind", kind]
    cmd += ["--seed", str(seed), "--files", str(files), "--cpu", str(cpu)]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"parquet ceiling failed: {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceilings")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("http", help="serve the bare HTTP ceiling on 127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-secs", type=float, default=3600, help="exit after this long")
    p = sub.add_parser("parquet", help="measure the Parquet ceiling; prints JSON")
    p.add_argument("--kind", choices=("metrics", "flows"), required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--cache", type=Path, help="keep the generated lake rows here")
    args = parser.parse_args(argv)
    if args.what == "http":
        import uvloop

        uvloop.run(_serve_bare(args.port, args.max_secs))
    else:
        result = parquet_ceiling(
            args.kind, args.seed, files=args.files, cpu=args.cpu, cache=args.cache
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
