"""Where the real server spends its time under the benchmark's load (needs py-spy).

    .venv/bin/pip install py-spy          # not a project dependency; remove it afterwards
    python -m benchmarks.profile_server --cell metrics:10000:lz4 --secs 15
    python -m benchmarks.profile_server --cell metrics:10000:lz4:collector-node \
        --env FLOODWATCH_DETECT__ENABLED=false
    python -m benchmarks.profile_server --cell metrics:10000:lz4:collector-node \
        --fleet-traffic coherent

Starts the server as the scenario does, drives it with the closed-loop load generator, samples
every thread of the server with ``py-spy record --threads --format raw`` and prints, per thread,
how many samples it was busy and the functions that took the most of them (inclusive).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .batches import DISTINCT_ROWS, FLEET_TRAFFIC, SHAPES
from .bench_telemetry import QUICK, _create_fleet
from .harness import ServerProcess
from .loadgen import LoadGenerator, Phase

__all__ = ["main", "summarize"]

_SKIP = re.compile(
    r"^(Thread\.|_worker |_WorkItem\.run|_run_module_as_main|_run_code|<module> \(api/__main__"
    r"|main \(api/cli|_cmd_serve|run_server|run \(uvloop|Runner\.run|_bootstrap)"
)


def summarize(raw: Path, top: int = 12, rate: int = 100, secs: float = 1.0) -> str:
    """Per-thread busy share and top inclusive functions of a py-spy ``raw`` file."""
    threads: collections.Counter[str] = collections.Counter()
    incl: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        thread = re.sub(r"_\d+$", "", thread)  # decode_0, decode_1 -> decode
        n = int(count)
        threads[thread] += n
        seen = set()
        for frame in frames[1:]:
            name = re.sub(r":\d+\)$", ")", frame)
            if name not in seen and not _SKIP.match(name):
                incl[thread][name] += n
                seen.add(name)
    per_thread = rate * secs
    out = [f"samples per thread if always busy: {per_thread:.0f}"]
    for thread, n in threads.most_common():
        out.append(f"\n{thread}: {n} samples ({n / per_thread:.0%} of one thread's time)")
        for name, c in incl[thread].most_common(top):
            out.append(f"  {c / n:6.1%}  {name}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_server")
    parser.add_argument(
        "--cell",
        default="metrics:10000:lz4",
        metavar="KIND:ROWS:WIRE[:SENDER]",
        help=f"as bench_telemetry's --cell; SENDER one of {', '.join(SHAPES)}",
    )
    parser.add_argument("--secs", type=float, default=15)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--connections", type=int, default=QUICK.connections)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting to change for the run, e.g. FLOODWATCH_INGEST__DECODE_THREADS=4",
    )
    parser.add_argument(
        "--fleet-traffic",
        choices=FLEET_TRAFFIC,
        default="noise",
        help="what a collector cell's rows hold (as bench_telemetry's --fleet-traffic)",
    )
    parser.add_argument(
        "--gil",
        action="store_true",
        help="count only samples that hold the GIL (how much of the run Python code needed it)",
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    kind, rows, comp, *rest = args.cell.split(":")
    shape = rest[0] if rest else "node-key"
    if shape not in SHAPES or len(rest) > 1:
        parser.error(f"--cell {args.cell}: sender must be one of {', '.join(SHAPES)}")
    tmp = Path(tempfile.mkdtemp(prefix="floodwatch-profile-"))
    raw = args.raw or tmp / "pyspy.txt"
    env = {
        "FLOODWATCH_INGEST__FLUSH_AGE_SECS": str(QUICK.flush_age_secs),
        "FLOODWATCH_LAKE__MAINTENANCE_INTERVAL_SECS": "86400",
    }
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("FLOODWATCH_"):
            parser.error(f"--env wants FLOODWATCH_<SECTION>__<NAME>=VALUE, not {item!r}")
        env[name] = value
    server = ServerProcess(tmp / "data", env=env)
    try:
        server.start()
        ws, token = server.create_workspace("profile")
        with LoadGenerator() as gen:
            if shape == "node-key":
                keys = tuple(server.create_nodes(token, QUICK.nodes, "profile"))
                gen.build(kind, int(rows), comp, QUICK.seed)
            else:
                nodes = _create_fleet(server, token, QUICK.fleet_nodes, "profile")
                info = server.cli_json("collector", "create", "--workspace", ws, "--name", "p")
                keys = (str(info["key"]),)
                arg = {
                    "kind": kind,
                    "rows": int(rows),
                    "compression": comp,
                    "seed": QUICK.seed,
                    "distinct_rows": DISTINCT_ROWS,
                    "shape": shape,
                    "nodes": nodes,
                    "traffic": args.fleet_traffic,
                }
                gen._call("build", arg, timeout=300)
            cmd = [spy, "record", "-p", str(server.pid), "-d", str(int(args.secs))]
            cmd += ["-r", str(args.rate), "--threads", "--nonblocking", "--format", "raw"]
            if args.gil:
                cmd.append("--gil")
            sampler = subprocess.Popen(
                [*cmd, "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(0.5)
            phase = Phase(
                server.base_url,
                kind,
                keys,
                "profile",
                connections=args.connections,
                max_secs=args.secs,
                seed=QUICK.seed,
            )
            result = gen.run(phase)
            sampler.wait(timeout=args.secs + 60)
        print(
            f"{args.cell}: {result.statuses}, ack {result.ack_rows_per_s:,.0f} rows/s over "
            f"{result.duration:.1f} s"
        )
        print(summarize(raw, rate=args.rate, secs=args.secs))
    finally:
        server.stop()
        if args.raw is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
