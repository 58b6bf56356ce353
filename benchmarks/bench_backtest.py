"""``floodwatch backtest`` on a bigger lake: wall time and peak memory against the range.

Builds the lake through the real server (N nodes, H hours of per-second metrics sent through a
collector key at full speed, then the server is stopped), then runs the backtest CLI over 1 hour
and over all H hours of the workspace, each in a process of its own, and prints wall seconds,
node-seconds per second and the process's peak RSS. Bounded memory shows as a peak RSS that
does not grow with the range.

    .venv/bin/python -m benchmarks.bench_backtest --nodes 100 --hours 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import requests

PY = sys.executable
_WRAP = (
    "import resource, sys\n"
    "from api.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "raise SystemExit(rc)\n"
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(data: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [PY, "-m", "api", *args, "--data", str(data), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _batch(ips: list[str], start: datetime, secs: int) -> pa.Table:
    rng = random.Random(0)  # the same level per node in every batch
    n = len(ips)
    levels = pl.DataFrame({"node_ip": ips, "level": [rng.uniform(1_000, 20_000) for _ in ips]})
    t0 = int(start.timestamp())
    grid = pl.DataFrame({"s": list(range(secs))}).join(levels, how="cross")
    ripple = 1.0 + 0.05 * ((pl.col("s") + t0) / 37.0 + pl.col("level")).sin()
    df = grid.with_columns((pl.col("level") * ripple).alias("pps")).with_columns(
        ((pl.col("s") + t0) * 1_000_000).cast(pl.Datetime("us", "UTC")).alias("time"),
        (pl.col("pps") * 8 * 600).alias("bps"),
        (pl.col("pps") * 0.95).alias("tcp_pps"),
        (pl.col("pps") * 0.05).alias("udp_pps"),
        pl.lit(0.0).alias("icmp_pps"),
        pl.lit(0.0).alias("other_pps"),
        (pl.col("pps") * 0.95 * 0.03).alias("syn_pps"),
        (pl.col("pps") * 0.95 * 0.9).alias("ack_pps"),
        (pl.col("pps") * 0.95 * 0.01).alias("rst_pps"),
        (pl.col("pps") * 0.95 * 0.02).alias("fin_pps"),
        pl.lit(0.0).alias("frag_pps"),
        pl.lit(600.0).alias("avg_pkt_len"),
        (pl.col("pps") / 20).cast(pl.Int64).alias("distinct_sources"),
    )
    assert df.height == n * secs
    return df.sort("time").drop("s", "level").to_arrow()


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    opts = ipc.IpcWriteOptions(compression="lz4")
    with ipc.new_stream(sink, table.schema, options=opts) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _backtest(data: Path, ws: str, start: datetime, end: datetime) -> dict[str, float]:
    args = ["backtest", "--workspace", ws, "--from", _z(start), "--to", _z(end), "--json"]
    began = time.perf_counter()
    proc = subprocess.run(
        [PY, "-c", _WRAP, *args, "--data", str(data)], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - began
    result = json.loads(proc.stdout)
    rss = int(proc.stderr.split("maxrss_kib")[-1].split()[0])
    secs = float(result["stats"]["node_seconds"])
    return {
        "hours": float(result["stats"]["hours"]),
        "node_seconds": secs,
        "wall_s": round(wall, 2),
        "node_seconds_per_s": round(secs / wall),
        "peak_rss_mib": round(rss / 1024, 1),
        "would_be": float(result["totals"]["backtest"]),
    }


def _z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--hours", type=int, default=3)
    ap.add_argument("--keep-data", action="store_true")
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    data = tmp / "data"
    data.mkdir()
    port = _free_port()
    env = {**os.environ, "FLOODWATCH_INGEST__FLUSH_AGE_SECS": "1"}
    server = subprocess.Popen(
        [PY, "-m", "api", "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("w"),
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        ws = _cli(data, "workspace", "create", "bench", "--node-limit", "unlimited")
        auth = {"Authorization": f"Bearer {ws['deploy_token']}"}
        ips = []
        for i in range(opts.nodes):
            ip = f"10.{i // 250}.{i % 250}.1"
            r = requests.post(
                base + "/api/v1/nodes", json={"name": f"n{i}", "ip": ip}, headers=auth, timeout=30
            )
            r.raise_for_status()
            ips.append(ip)
        r = requests.post(base + "/api/v1/collectors", json={"name": "b"}, headers=auth, timeout=30)
        r.raise_for_status()
        key = r.json()["collector"]["key"]
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(hours=opts.hours)
        step = max(1, 50_000 // opts.nodes)
        total = opts.hours * 3600
        sent_at = time.perf_counter()
        for k in range(math.ceil(total / step)):
            secs = min(step, total - k * step)
            body = _ipc(_batch(ips, start + timedelta(seconds=k * step), secs))
            for _ in range(100):
                r = requests.post(
                    base + "/api/v1/telemetry/metrics",
                    data=body,
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Content-Type": "application/vnd.apache.arrow.stream",
                    },
                    timeout=60,
                )
                if r.status_code != 503:
                    break
                time.sleep(float(r.headers.get("Retry-After", "1")))
            r.raise_for_status()
        print(
            f"sent {opts.nodes} nodes x {opts.hours} h in {time.perf_counter() - sent_at:.1f} s",
            file=sys.stderr,
        )
    finally:
        server.terminate()
        server.wait(timeout=120)
    rows = [_backtest(data, str(ws["workspace_id"]), start, start + timedelta(hours=1))]
    rows.append(_backtest(data, str(ws["workspace_id"]), start, end))
    print("| hours | node-seconds | wall s | node-seconds/s | peak RSS MiB | would-be |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['hours']:.0f} | {r['node_seconds']:.0f} | {r['wall_s']} | "
            f"{r['node_seconds_per_s']} | {r['peak_rss_mib']} | {r['would_be']:.0f} |"
        )
    if opts.keep_data:
        print(f"data kept in {data}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
