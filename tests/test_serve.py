"""``floodwatch serve``: first start, restarts, signals, and a second server on the same data."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .conftest import FLOODWATCH, Server, free_port, run_cli, start_server

HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def start(data: Path, env: dict[str, str] | None = None) -> Server:
    """Start a server and wait until it has logged its URL and installed its signal handlers
    (a request answered after the log line proves the loop reached its wait)."""
    srv = start_server(data, env=env)
    for _ in range(600):
        if "listening on" in srv.stderr():
            break
        time.sleep(0.05)
    else:  # pragma: no cover - reported by the assertion below
        srv.stop(signal.SIGKILL)
    assert "listening on" in srv.stderr(), srv.stderr()
    assert requests.get(srv.url("/api/health"), timeout=10).status_code == 200
    return srv


def get(srv: Server, path: str, token: str, **kw: object) -> requests.Response:
    return requests.get(
        srv.url(path),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kw,  # type: ignore[arg-type]
    )


def printed_tokens(srv: Server) -> list[str]:
    """The tokens on the server's stdout. ``start`` returns after the bootstrap has run (it is
    queued on the database thread before the health check that ``start`` makes last)."""
    return HEX64.findall(srv.stdout())


def test_first_start_prints_the_default_token_once(tmp_path: Path) -> None:
    srv = start(tmp_path / "data")
    try:
        tokens = printed_tokens(srv)
        assert len(tokens) == 1, srv.stdout()
        (token,) = tokens
        assert srv.stdout().count(token) == 1

        r = get(srv, "/api/v1/workspace", token)
        assert r.status_code == 200, r.text
        ws = r.json()["workspace"]
        assert ws["name"] == "default"
        assert ws["plan"] == "self-hosted"

        # exactly one log line with the URL, on stderr (not stdout)
        url = f"http://127.0.0.1:{srv.port}"
        lines = [ln for ln in srv.stderr().splitlines() if url in ln]
        assert len(lines) == 1, srv.stderr()
        assert url not in srv.stdout()

        # use the token in every way a client might, then make sure no log line holds it
        assert get(srv, "/api/v1/nodes", token, params={"token": token}).status_code == 200
        assert get(srv, f"/api/v1/nodes?api_key={token}&x=1", token).status_code == 200
        r = requests.post(
            srv.url("/api/deploy"),
            json={"name": "edge", "ip": "198.51.100.1", "token": token},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        wrong = token[:-1] + ("1" if token.endswith("0") else "0")
        assert get(srv, "/api/v1/workspace", wrong).status_code == 401
        assert get(srv, "/api/v1/nodes", token, params={"limit": "zz"}).status_code == 400
    finally:
        assert srv.stop() == 0
    log = srv.stderr()
    assert token not in log
    assert wrong not in log
    assert "floodwatch stopped" in log
    assert "/api/v1/nodes" in log  # the access log is on, so the check above means something


def test_token_never_logged_at_debug_level(tmp_path: Path) -> None:
    srv = start(tmp_path / "data", env={"FLOODWATCH_SERVER__LOG_LEVEL": "debug"})
    try:
        (token,) = printed_tokens(srv)
        created = json.loads(srv.cli("token", "create", "--name", "dbg", "--json").stdout)
        new_token = created["deploy_token"]
        for t in (token, new_token):
            assert get(srv, "/api/v1/workspace", t, params={"t": t}).status_code == 200
        assert srv.cli("token", "revoke", new_token).returncode == 0
        assert get(srv, "/api/v1/workspace", new_token).status_code == 401
    finally:
        assert srv.stop() == 0
    log = srv.stderr()
    assert token not in log
    assert new_token not in log
    assert new_token not in srv.stdout()


def test_second_start_prints_no_token_and_keeps_the_workspace(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start(data)
    (token,) = printed_tokens(srv)
    assert srv.stop() == 0

    srv2 = start(data)
    try:
        assert printed_tokens(srv2) == [], srv2.stdout()
        assert "token" not in srv2.stdout().lower()
        assert get(srv2, "/api/v1/workspace", token).json()["workspace"]["name"] == "default"
        listed = json.loads(srv2.cli("workspace", "list", "--json").stdout)["workspaces"]
        assert [w["name"] for w in listed] == ["default"]  # not bootstrapped a second time
    finally:
        assert srv2.stop() == 0


def test_bootstrap_can_be_disabled(tmp_path: Path) -> None:
    srv = start(tmp_path / "data", env={"FLOODWATCH_API__BOOTSTRAP_WORKSPACE": "false"})
    try:
        assert printed_tokens(srv) == []
        assert json.loads(srv.cli("workspace", "list", "--json").stdout) == {"workspaces": []}
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    srv = start(tmp_path / "data")
    sock = srv.data_dir / "admin.sock"
    assert sock.exists()
    assert srv.stop(sig) == 0
    assert not sock.exists()
    log = srv.stderr()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert "floodwatch stopping" in log and "floodwatch stopped" in log
    # the database lock is released: the CLI can open the file directly
    listed = json.loads(run_cli(srv.data_dir, "workspace", "list", "--json").stdout)
    assert [w["name"] for w in listed["workspaces"]] == ["default"]


def test_data_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start(data)
    (token,) = printed_tokens(srv)
    auth = {"Authorization": f"Bearer {token}"}
    node = requests.post(
        srv.url("/api/v1/nodes"),
        json={"name": "db-1", "ip": "203.0.113.9", "location": "FRA", "priority": "staging"},
        headers=auth,
        timeout=30,
    )
    assert node.status_code == 201, node.text
    node_uuid = node.json()["node"]["uuid"]
    channel = requests.post(
        srv.url("/api/v1/channels"),
        json={"name": "ops", "type": "email", "config": {"email": "ops@example.com"}},
        headers=auth,
        timeout=30,
    )
    assert channel.status_code == 201, channel.text
    other = json.loads(srv.cli("workspace", "create", "other", "--plan", "pro", "--json").stdout)
    revoked = json.loads(srv.cli("token", "create", "--workspace", "default", "--json").stdout)
    srv.cli("token", "revoke", revoked["token_id"])
    before_node = get(srv, f"/api/v1/nodes/{node_uuid}", token).json()["node"]
    before_channels = get(srv, "/api/v1/channels", token).json()["channels"]
    assert srv.stop() == 0

    srv2 = start(data)
    try:
        after_node = get(srv2, f"/api/v1/nodes/{node_uuid}", token).json()["node"]
        assert after_node == before_node
        assert get(srv2, "/api/v1/channels", token).json()["channels"] == before_channels
        ws = get(srv2, "/api/v1/workspace", other["deploy_token"]).json()["workspace"]
        assert (ws["name"], ws["plan"]) == ("other", "pro")
        assert get(srv2, "/api/v1/workspace", revoked["deploy_token"]).status_code == 401
        dup = requests.post(
            srv2.url("/api/deploy"),
            json={"name": "db-1", "ip": "203.0.113.10"},
            headers=auth,
            timeout=30,
        )
        assert dup.status_code == 409, dup.text
    finally:
        assert srv2.stop() == 0


def test_second_server_on_the_same_data_dir_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start(data)
    try:
        (token,) = printed_tokens(srv)
        p = subprocess.run(
            [*FLOODWATCH, "serve", "--data", str(data), "--port", str(free_port())],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode != 0
        assert p.returncode == 1, p.stderr
        assert "in use" in p.stderr, p.stderr
        assert "floodwatch.duckdb" in p.stderr
        assert "Traceback" not in p.stderr
        assert not HEX64.search(p.stdout)

        # the first server is unharmed: its HTTP port, its data and its admin socket
        assert (data / "admin.sock").exists()
        assert get(srv, "/api/v1/workspace", token).status_code == 200
        created = json.loads(srv.cli("workspace", "create", "after", "--json").stdout)
        assert get(srv, "/api/v1/workspace", created["deploy_token"]).status_code == 200
    finally:
        assert srv.stop() == 0


def test_port_in_use_fails_and_releases_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run(
            [*FLOODWATCH, "serve", "--data", str(data), "--port", str(port)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "cannot start" in p.stderr
    assert "Traceback" not in p.stderr
    assert not (data / "admin.sock").exists()
    # the one-time token was not spent on a server that never listened...
    assert not HEX64.search(p.stdout), p.stdout
    # ...and the database is not left locked
    listed = json.loads(run_cli(data, "workspace", "list", "--json").stdout)
    assert listed == {"workspaces": []}
    srv = start(data)
    try:
        (token,) = printed_tokens(srv)
        assert get(srv, "/api/v1/workspace", token).status_code == 200
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize(
    ("port", "code", "message"),
    [("70000", 1, "server.port"), ("-1", 1, "server.port"), ("http", 2, "usage:")],
)
def test_bad_port_flag(tmp_path: Path, port: str, code: int, message: str) -> None:
    p = subprocess.run(
        [*FLOODWATCH, "serve", "--data", str(tmp_path / "data"), "--port", port],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == code, (p.stdout, p.stderr)
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "data" / "floodwatch.duckdb").exists()


def test_restart_after_a_crash_replaces_the_stale_socket(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start(data)
    (token,) = printed_tokens(srv)
    srv.stop(signal.SIGKILL)
    assert (data / "admin.sock").exists()  # left behind by the crash

    srv2 = start(data)
    try:
        assert printed_tokens(srv2) == []
        assert get(srv2, "/api/v1/workspace", token).status_code == 200
        out = json.loads(srv2.cli("token", "create", "--json").stdout)  # via the new socket
        assert get(srv2, "/api/v1/workspace", out["deploy_token"]).status_code == 200
    finally:
        assert srv2.stop() == 0
    assert not (data / "admin.sock").exists()
