"""The real server under test, and what the scenario reads about it from outside.

``ServerProcess`` runs ``python -m api serve`` on a free loopback port with a fresh data
directory (the same way ``tests/conftest.py`` does), creates workspaces with the CLI and nodes
over REST. Memory and CPU are read from ``/proc/<pid>``; ``LakeCounter`` counts the rows that
readers can see in the Parquet lake.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import requests

__all__ = [
    "GaugePeaks",
    "LakeCounter",
    "PeakRss",
    "ServerProcess",
    "cpu_secs",
    "free_port",
    "read_status_kib",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), None when gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_secs(pid: int) -> float:
    """User plus system CPU seconds the process has used (all of its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class PeakRss:
    """Peak resident memory of a process over a ``with`` block, in bytes.

    Resets the kernel's high-water mark (``/proc/<pid>/clear_refs`` ``5``) on entry and reads
    ``VmHWM`` on exit; a sampler thread (every 20 ms) backs it up where the reset is refused."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reset_ok = False
        self.sampled_kib = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            rss = read_status_kib(self.pid, "VmRSS") or 0
            self.sampled_kib = max(self.sampled_kib, rss)

    def __enter__(self) -> PeakRss:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as fh:
                fh.write("5")
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.sampled_kib = read_status_kib(self.pid, "VmRSS") or 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        hwm = read_status_kib(self.pid, "VmHWM") if self.reset_ok else None
        self.peak_bytes = max(hwm or 0, self.sampled_kib) * 1024


class GaugePeaks:
    """Highest value of some of the server's /metrics gauges over a ``with`` block (polled every
    ``interval`` seconds on a keep-alive connection of its own)."""

    def __init__(self, base_url: str, names: tuple[str, ...], interval: float = 0.1) -> None:
        self.url = base_url + "/metrics"
        self.names = names
        self.interval = interval
        self.peaks: dict[str, float] = dict.fromkeys(names, 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        with requests.Session() as http:
            while not self._stop.wait(self.interval):
                try:
                    text = http.get(self.url, timeout=5).text
                except requests.RequestException:
                    continue
                for line in text.splitlines():
                    name, _, value = line.partition(" ")
                    if name in self.peaks:
                        self.peaks[name] = max(self.peaks[name], float(value))

    def __enter__(self) -> GaugePeaks:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class ServerProcess:
    """``floodwatch serve`` in a subprocess; stop() sends SIGTERM (SIGKILL after 30 s)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def lake_root(self) -> Path:
        return self.data_dir / "lake"

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log_dir = self.data_dir.parent
        cmd = [sys.executable, "-m", "api", "serve", "--data", str(self.data_dir)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port)],
            stdout=(log_dir / "server.stdout").open("wb"),
            stderr=(log_dir / "server.stderr").open("wb"),
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.stderr_tail()}")
            with contextlib.suppress(requests.ConnectionError):
                ok = self.http.get(self.base_url + "/api/health", timeout=1).status_code == 200
                if ok and (self.data_dir / "admin.sock").exists():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become ready: {self.stderr_tail()}")

    def stderr_tail(self, lines: int = 20) -> str:
        path = self.data_dir.parent / "server.stderr"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cli_json(self, *args: str) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "api", *args, "--json", "--data", str(self.data_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"floodwatch {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    def create_workspace(self, name: str) -> tuple[str, str]:
        """(workspace id, deploy token) of a new workspace."""
        info = self.cli_json("workspace", "create", name)
        return str(info["workspace_id"]), str(info["deploy_token"])

    def create_nodes(self, token: str, count: int, prefix: str) -> list[str]:
        """Node API keys of ``count`` new nodes (``POST /api/v1/nodes``)."""
        keys = []
        for i in range(count):
            resp = self.http.post(
                self.base_url + "/api/v1/nodes",
                json={"name": f"{prefix}-{i}", "ip": f"203.0.113.{10 + i}"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            if resp.status_code != 201:
                raise RuntimeError(f"node create failed: {resp.status_code} {resp.text}")
            keys.append(str(resp.json()["node"]["api_key"]))
        return keys

    def cpu_secs(self) -> float:
        return cpu_secs(self.pid)


class LakeCounter:
    """Rows and bytes of one kind and workspace that are readable in the lake.

    Lake files are immutable and appear by rename (maintenance, which compacts, is kept out of
    the run), so each file's row count is read from its footer once."""

    def __init__(self, lake_root: Path, kind: str, workspace: str) -> None:
        self.dir = lake_root / kind / f"workspace={workspace}"
        self._rows: dict[Path, tuple[int, int]] = {}

    @property
    def glob(self) -> str:
        return str(self.dir / "*" / "*" / "*.parquet")

    def scan(self) -> tuple[int, int]:
        """(rows, bytes) of the published files."""
        if self.dir.exists():
            for path in self.dir.glob("*/*/*.parquet"):
                if path not in self._rows:
                    with contextlib.suppress(FileNotFoundError):
                        rows = pq.read_metadata(path).num_rows
                        self._rows[path] = (rows, path.stat().st_size)
        rows = sum(r for r, _ in self._rows.values())
        size = sum(s for _, s in self._rows.values())
        return rows, size

    def wait_for(self, rows: int, timeout: float, interval: float = 0.02) -> float | None:
        """time.monotonic() at which at least ``rows`` rows were readable; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.scan()[0]
            now = time.monotonic()
            if seen >= rows:
                return now
            if now >= deadline:
                return None
            time.sleep(interval)

    def duckdb_count(self) -> int:
        """Rows as a reader sees them: ``read_parquet`` over the lake glob."""
        if not self.dir.exists():
            return 0
        con = duckdb.connect()
        try:
            row = con.execute("SELECT count(*) FROM read_parquet(?)", [self.glob]).fetchone()
        finally:
            con.close()
        return int(row[0]) if row else 0
