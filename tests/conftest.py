"""Fixtures that run the real thing: ``floodwatch serve`` in a subprocess on a free port with a
temporary data directory, and the real CLI (which reaches the server over its admin socket)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

FLOODWATCH = [sys.executable, "-m", "api"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*FLOODWATCH, *args, "--data", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"floodwatch {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc


@dataclass
class Server:
    data_dir: Path
    port: int
    proc: subprocess.Popen[str]
    stdout_path: Path
    stderr_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.data_dir, *args, check=check)

    def cli_json(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.cli(*args, "--json").stdout)
        return out

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()


# Every server a test starts, so that none outlives the session even when a test fails midway.
_STARTED: list[Server] = []


@pytest.fixture(scope="session", autouse=True)
def _stop_leftover_servers() -> Iterator[None]:
    yield
    for srv in _STARTED:
        if srv.proc.poll() is None:
            srv.stop(signal.SIGKILL)


def spawn_server(
    data_dir: Path,
    full_env: dict[str, str],
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    name: str | None = None,
) -> Server:
    """Start ``floodwatch serve`` on a free port with ``full_env`` as its whole environment
    (``env``: the overrides to remember on the Server), its output in ``<name>.stdout`` and
    ``.stderr`` beside the data directory; does not wait for it."""
    port = free_port()
    stem = name or data_dir.name
    out = data_dir.parent / f"{stem}.stdout"
    err = data_dir.parent / f"{stem}.stderr"
    # the child keeps its own copies of the two descriptors; ours are closed at once
    with out.open("w") as out_f, err.open("w") as err_f:
        proc = subprocess.Popen(
            [*FLOODWATCH, "serve", *extra, "--data", str(data_dir), "--port", str(port)],
            stdout=out_f,
            stderr=err_f,
            text=True,
            env=full_env,
        )
    return Server(data_dir, port, proc, out, err, env or {})


def start_server(data_dir: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    server = spawn_server(data_dir, {**os.environ, **(env or {})}, env=env)
    proc, err = server.proc, server.stderr_path
    _STARTED.append(server)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {err.read_text()}")
        try:
            healthy = requests.get(server.url("/api/health"), timeout=5).status_code == 200
            if healthy and (data_dir / "admin.sock").exists():
                return server
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or slow to answer on a loaded machine
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become ready: {err.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("srv") / "data")
    yield srv
    srv.stop()


class Client:
    """A deploy-token-authenticated HTTP client for one workspace."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.token = token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.session.request(method, self.server.url(path), **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


@dataclass
class Workspace:
    id: str
    token: str
    client: Client


_counter = iter(range(1_000_000))


def new_workspace(server: Server, *extra: str) -> Workspace:
    name = f"ws-{os.getpid()}-{next(_counter)}"
    info = server.cli_json("workspace", "create", name, *extra)
    return Workspace(
        info["workspace_id"], info["deploy_token"], Client(server, info["deploy_token"])
    )


@pytest.fixture
def ws(server: Server) -> Workspace:
    return new_workspace(server)


@pytest.fixture
def other_ws(server: Server) -> Workspace:
    return new_workspace(server)


def assert_error(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["ok"] is False, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body
