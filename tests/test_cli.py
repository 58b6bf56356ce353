"""The ``floodwatch`` command line: workspaces and deploy tokens, with and without a server.

Every data-changing command is exercised in two modes: ``server`` (a server holds the DuckDB file,
so the CLI must go through the admin socket; a direct open would fail with "in use") and
``offline`` (no server: the CLI opens the database itself; a server started afterwards must see
the data).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import FLOODWATCH, Server, run_cli, spawn_server, start_server

HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
NO_BOOTSTRAP = {"FLOODWATCH_API__BOOTSTRAP_WORKSPACE": "false"}


def one_json(stdout: str) -> dict[str, Any]:
    """--json prints exactly one JSON object on one line."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict), obj
    return obj


def http_get(server: Server, path: str, token: str) -> requests.Response:
    return requests.get(server.url(path), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def workspace_of(server: Server, token: str) -> dict[str, Any]:
    r = http_get(server, "/api/v1/workspace", token)
    assert r.status_code == 200, r.text
    ws: dict[str, Any] = r.json()["workspace"]
    return ws


def assert_unauthorized(server: Server, token: str) -> None:
    r = http_get(server, "/api/v1/workspace", token)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"


@dataclass
class Env:
    """A data directory, with a server running on it (mode ``server``) or not (``offline``)."""

    mode: str
    data_dir: Path
    _server: Server | None = None
    _started: list[Server] = field(default_factory=list)

    @property
    def offline(self) -> bool:
        return self.mode == "offline"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.data_dir, *args, check=check)

    def js(self, *args: str) -> dict[str, Any]:
        return one_json(self.cli(*args, "--json").stdout)

    def fail(self, *args: str, plain: bool = False) -> dict[str, Any]:
        """Run a command that must fail: exit 1, a JSON error object on stdout (--json) and the
        message on stderr. With ``plain``, also check the run without --json."""
        p = self.cli(*args, "--json", check=False)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        body = one_json(p.stdout)
        assert body["ok"] is False, body
        err: dict[str, Any] = body["error"]
        assert isinstance(err["code"], str) and err["code"], err
        assert isinstance(err["message"], str) and err["message"], err
        assert p.stderr == f"floodwatch: error: {err['message']}\n", p.stderr
        if plain:
            q = self.cli(*args, check=False)
            assert q.returncode == 1, (q.stdout, q.stderr)
            assert q.stdout == ""
            assert q.stderr == f"floodwatch: error: {err['message']}\n", q.stderr
        return err

    def server(self) -> Server:
        """The running server (in ``offline`` mode: started now, after the CLI did its work)."""
        if self._server is None:
            assert self.offline
            assert not (self.data_dir / "admin.sock").exists()
            self._server = start_server(self.data_dir, env=NO_BOOTSTRAP)
            self._started.append(self._server)
        return self._server


@pytest.fixture(params=["server", "offline"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    data = tmp_path / "data"
    e = Env(request.param, data)
    if request.param == "server":
        e._server = start_server(data, env=NO_BOOTSTRAP)
        e._started.append(e._server)
    else:
        data.mkdir()
    yield e
    for srv in e._started:
        assert srv.stop() == 0, srv.stderr()


# --- workspace create -------------------------------------------------------------------------


def test_workspace_create_json(env: Env) -> None:
    out = env.js("workspace", "create", "acme")
    assert set(out) >= {"workspace_id", "deploy_token", "name", "plan", "node_limit"}
    assert str(uuid.UUID(out["workspace_id"])) == out["workspace_id"]
    assert HEX64.fullmatch(out["deploy_token"]), out["deploy_token"]
    assert out["name"] == "acme"
    assert out["plan"] == "self-hosted"
    assert out["node_limit"] is None
    assert out["subscription_status"] == "active"
    assert out["parent_id"] is None

    ws = workspace_of(env.server(), out["deploy_token"])
    assert ws["uuid"] == out["workspace_id"]
    assert ws["name"] == "acme"
    assert ws["plan"] == "self-hosted"


def test_workspace_create_human_output_shows_token(env: Env) -> None:
    p = env.cli("workspace", "create", "human-ws")
    assert p.returncode == 0
    tokens = HEX64.findall(p.stdout)
    assert len(tokens) == 1, p.stdout
    assert "human-ws" in p.stdout
    assert "{" not in p.stdout  # not JSON
    ws_ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", p.stdout)
    assert len(ws_ids) == 1
    ws = workspace_of(env.server(), tokens[0])
    assert ws["uuid"] == ws_ids[0]
    assert ws["name"] == "human-ws"


def test_workspace_create_plan_and_node_limit(env: Env) -> None:
    pro = env.js("workspace", "create", "pro-ws", "--plan", "pro")
    assert (pro["plan"], pro["node_limit"]) == ("pro", 25)
    free3 = env.js("workspace", "create", "free-ws", "--plan", "free", "--node-limit", "3")
    assert (free3["plan"], free3["node_limit"]) == ("free", 3)
    unl = env.js("workspace", "create", "unl-ws", "--plan", "starter", "--node-limit", "unlimited")
    assert (unl["plan"], unl["node_limit"]) == ("starter", None)
    zero = env.js("workspace", "create", "zero-ws", "--node-limit", "0")
    assert zero["node_limit"] == 0

    srv = env.server()
    for created in (pro, free3, unl, zero):
        ws = workspace_of(srv, created["deploy_token"])
        assert (ws["plan"], ws["node_limit"]) == (created["plan"], created["node_limit"])
    # the limit is enforced: a workspace with node limit 0 cannot register a node
    r = requests.post(
        srv.url("/api/deploy"),
        json={"name": "n1", "ip": "192.0.2.1"},
        headers={"Authorization": f"Bearer {zero['deploy_token']}"},
        timeout=30,
    )
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "payment_required"


# --- workspace list / update / delete ---------------------------------------------------------


def test_workspace_list(env: Env) -> None:
    assert env.js("workspace", "list") == {"workspaces": []}
    assert env.cli("workspace", "list").stdout.strip() == "no workspaces"
    a = env.js("workspace", "create", "alpha", "--plan", "business")
    b = env.js("workspace", "create", "bravo", "--plan", "free")

    listed = env.js("workspace", "list")["workspaces"]
    by_id = {w["workspace_id"]: w for w in listed}
    assert set(by_id) == {a["workspace_id"], b["workspace_id"]}
    assert by_id[a["workspace_id"]]["name"] == "alpha"
    assert by_id[a["workspace_id"]]["plan"] == "business"
    assert by_id[a["workspace_id"]]["node_limit"] == 100
    assert by_id[b["workspace_id"]]["plan"] == "free"
    assert by_id[b["workspace_id"]]["node_count"] == 0
    for w in listed:
        assert "deploy_token" not in w

    human = env.cli("workspace", "list").stdout
    assert "alpha" in human and "bravo" in human
    assert a["workspace_id"] in human and b["workspace_id"] in human
    assert not HEX64.search(human)

    if env.offline:  # the server started afterwards sees the same workspaces
        srv = env.server()
        assert workspace_of(srv, a["deploy_token"])["name"] == "alpha"
        assert {w["workspace_id"] for w in env.js("workspace", "list")["workspaces"]} == set(by_id)


def test_workspace_update(env: Env) -> None:
    ws = env.js("workspace", "create", "upd", "--plan", "free")
    env.js("workspace", "create", "other")

    out = env.js("workspace", "update", "upd", "--plan", "pro")
    assert out["workspace_id"] == ws["workspace_id"]
    assert (out["plan"], out["node_limit"]) == ("pro", 25)  # the plan's default limit

    out = env.js("workspace", "update", ws["workspace_id"][:8], "--node-limit", "7")
    assert (out["plan"], out["node_limit"]) == ("pro", 7)

    out = env.js(
        "workspace", "update", ws["workspace_id"], "--name", "renamed", "--node-limit", "unlimited"
    )
    assert (out["name"], out["node_limit"]) == ("renamed", None)

    human = env.cli("workspace", "update", "renamed", "--subscription-status", "canceled").stdout
    assert ws["workspace_id"] in human and "canceled" in human
    # --workspace, as the other commands take it
    out = env.js(
        "workspace", "update", "--workspace", "renamed", "--subscription-status", "canceled"
    )
    assert out["workspace_id"] == ws["workspace_id"]
    clash = env.fail("workspace", "update", "renamed", "--workspace", "other", "--plan", "pro")
    assert clash["code"] == "invalid_parameter", clash

    listed = {w["workspace_id"]: w for w in env.js("workspace", "list")["workspaces"]}
    mine = listed[ws["workspace_id"]]
    assert (mine["name"], mine["plan"], mine["node_limit"], mine["subscription_status"]) == (
        "renamed",
        "pro",
        None,
        "canceled",
    )
    assert listed.keys() - {ws["workspace_id"]}  # the other workspace is untouched
    (other,) = (w for k, w in listed.items() if k != ws["workspace_id"])
    assert (other["name"], other["plan"], other["subscription_status"]) == (
        "other",
        "self-hosted",
        "active",
    )

    srv = env.server()
    info = workspace_of(srv, ws["deploy_token"])
    assert (info["name"], info["plan"], info["subscription_status"]) == (
        "renamed",
        "pro",
        "canceled",
    )
    # a canceled subscription refuses writes with 402
    r = requests.post(
        srv.url("/api/deploy"),
        json={"name": "n1", "ip": "192.0.2.1"},
        headers={"Authorization": f"Bearer {ws['deploy_token']}"},
        timeout=30,
    )
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "payment_required"


def test_workspace_delete(env: Env) -> None:
    keep = env.js("workspace", "create", "keep")
    gone = env.js("workspace", "create", "gone")
    extra = env.js("token", "create", "--workspace", "gone")

    out = env.js("workspace", "delete", gone["workspace_id"][:13])
    assert out == {"workspace_id": gone["workspace_id"], "deleted": True}
    ids = [w["workspace_id"] for w in env.js("workspace", "list")["workspaces"]]
    assert ids == [keep["workspace_id"]]

    err = env.fail("workspace", "delete", "gone")  # no longer there
    assert err["code"] == "not_found"

    srv = env.server()
    assert_unauthorized(srv, gone["deploy_token"])
    assert_unauthorized(srv, extra["deploy_token"])
    assert workspace_of(srv, keep["deploy_token"])["name"] == "keep"


# --- tokens -----------------------------------------------------------------------------------


def test_token_create(env: Env) -> None:
    ws = env.js("workspace", "create", "tok-ws")
    env.js("workspace", "create", "second")
    out = env.js("token", "create", "--workspace", "tok-ws", "--name", "ci-runner")
    assert HEX64.fullmatch(out["deploy_token"])
    assert out["deploy_token"] != ws["deploy_token"]
    assert out["workspace_id"] == ws["workspace_id"]
    assert out["name"] == "ci-runner"
    assert out["prefix"] == out["deploy_token"][:8]
    assert out["revoked_at"] is None
    uuid.UUID(out["token_id"])

    human = env.cli("token", "create", "--workspace", ws["workspace_id"]).stdout
    (human_token,) = HEX64.findall(human)
    assert human_token not in (out["deploy_token"], ws["deploy_token"])

    if not env.offline:
        # through the admin socket the token works at once
        assert workspace_of(env.server(), out["deploy_token"])["uuid"] == ws["workspace_id"]
    srv = env.server()
    for token in (ws["deploy_token"], out["deploy_token"], human_token):
        assert workspace_of(srv, token)["uuid"] == ws["workspace_id"]
    names = [t["name"] for t in env.js("token", "list", "--workspace", "tok-ws")["tokens"]]
    assert names == ["default", "ci-runner", "cli"]


def test_token_commands_default_to_the_only_workspace(env: Env) -> None:
    ws = env.js("workspace", "create", "solo")
    out = env.js("token", "create")
    assert out["workspace_id"] == ws["workspace_id"]
    assert len(env.js("token", "list")["tokens"]) == 2

    env.js("workspace", "create", "duo")
    err = env.fail("token", "create")
    assert err["code"] == "invalid_parameter"
    assert "--workspace" in err["message"]
    err = env.fail("token", "list")
    assert "--workspace" in err["message"]

    assert workspace_of(env.server(), out["deploy_token"])["uuid"] == ws["workspace_id"]


def test_token_list_never_prints_secrets(env: Env) -> None:
    ws = env.js("workspace", "create", "secretive")
    t2 = env.js("token", "create", "--workspace", "secretive", "--name", "second")
    secrets = [ws["deploy_token"], t2["deploy_token"]]

    p_json = env.cli("token", "list", "--workspace", "secretive", "--json")
    p_text = env.cli("token", "list", "--workspace", "secretive")
    for p in (p_json, p_text):
        for secret in secrets:
            assert secret not in p.stdout and secret not in p.stderr
        assert not HEX64.search(p.stdout), p.stdout

    tokens = one_json(p_json.stdout)["tokens"]
    assert [t["name"] for t in tokens] == ["default", "second"]
    assert [t["prefix"] for t in tokens] == [s[:8] for s in secrets]
    assert tokens[1]["token_id"] == t2["token_id"]
    for t in tokens:
        assert set(t) == {
            "token_id",
            "workspace_id",
            "name",
            "prefix",
            "created_at",
            "revoked_at",
            "last_used_at",
        }
        assert t["workspace_id"] == ws["workspace_id"]
    assert "second" in p_text.stdout and t2["token_id"] in p_text.stdout

    # workspace list does not print them either
    listing = env.cli("workspace", "list", "--json").stdout + env.cli("workspace", "list").stdout
    for secret in secrets:
        assert secret not in listing


def test_token_revoke(env: Env) -> None:
    ws = env.js("workspace", "create", "rev")
    by_id = env.js("token", "create", "--name", "by-id")
    by_prefix = env.js("token", "create", "--name", "by-prefix")
    by_value = env.js("token", "create", "--name", "by-value")
    survivor = env.js("token", "create", "--name", "survivor")

    srv_live = None if env.offline else env.server()
    if srv_live is not None:
        for t in (by_id, by_prefix, by_value):
            assert workspace_of(srv_live, t["deploy_token"])["uuid"] == ws["workspace_id"]

    first = env.js("token", "revoke", by_id["token_id"])
    assert first["token_id"] == by_id["token_id"]
    assert first["revoked_at"] is not None
    if srv_live is not None:
        assert_unauthorized(srv_live, by_id["deploy_token"])  # at once

    human = env.cli("token", "revoke", by_prefix["token_id"][:12]).stdout
    assert by_prefix["token_id"] in human and "revoked" in human
    out = env.js("token", "revoke", by_value["deploy_token"])
    assert out["token_id"] == by_value["token_id"]
    assert by_value["deploy_token"] not in json.dumps(out)

    # revoking twice is harmless and keeps the first revocation time
    again = env.js("token", "revoke", by_id["token_id"])
    assert again["revoked_at"] == first["revoked_at"]

    listed = {t["name"]: t for t in env.js("token", "list")["tokens"]}
    assert listed["by-id"]["revoked_at"] == first["revoked_at"]
    assert listed["by-prefix"]["revoked_at"] is not None
    assert listed["by-value"]["revoked_at"] is not None
    assert listed["survivor"]["revoked_at"] is None
    assert listed["default"]["revoked_at"] is None
    assert "REVOKED" in env.cli("token", "list").stdout

    srv = env.server()
    for t in (by_id, by_prefix, by_value):
        assert_unauthorized(srv, t["deploy_token"])
    for token in (survivor["deploy_token"], ws["deploy_token"]):
        assert workspace_of(srv, token)["uuid"] == ws["workspace_id"]


# --- errors -----------------------------------------------------------------------------------


def test_operation_errors_exit_1(env: Env) -> None:
    env.js("workspace", "create", "exists")

    err = env.fail("workspace", "delete", "no-such-workspace", plain=True)
    assert err["code"] == "not_found"
    err = env.fail("workspace", "update", str(uuid.uuid4()), "--plan", "pro")
    assert err["code"] == "not_found"
    err = env.fail("token", "list", "--workspace", "no-such-workspace")
    assert err["code"] == "not_found"
    err = env.fail("token", "revoke", "0" * 64)
    assert err["code"] == "not_found"
    err = env.fail("token", "revoke", "abc")
    assert err["code"] == "invalid_parameter"
    err = env.fail("workspace", "create", "", plain=True)
    assert err["code"] == "invalid_parameter"
    assert "name" in err["message"]
    err = env.fail("workspace", "create", "big", "--node-limit", "2000000")
    assert err["code"] == "invalid_parameter"
    assert "node_limit" in err["message"]
    err = env.fail("workspace", "update", "exists", "--name", "bad\tname")
    assert err["code"] == "invalid_parameter"

    # nothing was changed by the failures
    if env.offline:
        env.server()
    listed = env.js("workspace", "list")["workspaces"]
    assert [(w["name"], w["plan"]) for w in listed] == [("exists", "self-hosted")]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nonsense"],
        ["workspace"],
        ["workspace", "create"],
        ["workspace", "create", "x", "--plan", "platinum"],
        ["workspace", "create", "x", "--node-limit", "-1"],
        ["workspace", "create", "x", "--node-limit", "many"],
        ["workspace", "update", "x", "--subscription-status", "unpaid"],
        ["workspace", "delete"],
        ["workspace", "frobnicate"],
        ["token"],
        ["token", "revoke"],
        ["token", "create", "--bogus-flag"],
        ["serve", "--port", "eighty"],
        ["config"],
        ["config", "--dump", "--check"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    p = subprocess.run(
        [*FLOODWATCH, *args], check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "usage: floodwatch" in p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""
    assert not (tmp_path / "var").exists()  # nothing was created


@pytest.mark.parametrize(
    "args",
    [
        ["workspace", "list", "--json"],
        ["token", "list", "--json"],
        ["collector", "list", "--json"],
        ["sql", "select 1"],
        ["backtest", "--from", "-1h", "--to", "-30m", "--json"],
    ],
)
def test_a_missing_data_directory_is_an_error_not_created(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "mistyped"
    p = run_cli(missing, *args, check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"data directory {missing} does not exist" in p.stderr
    assert "Traceback" not in p.stderr
    if "--json" in args:
        assert one_json(p.stdout)["error"]["code"] == "config_error"
    assert not missing.exists()


def test_workspace_create_makes_a_new_data_directory(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    info = one_json(run_cli(fresh, "workspace", "create", "acme", "--json").stdout)
    assert info["name"] == "acme" and fresh.is_dir()
    listed = one_json(run_cli(fresh, "workspace", "list", "--json").stdout)
    assert [w["name"] for w in listed["workspaces"]] == ["acme"]


def test_version_and_help(tmp_path: Path) -> None:
    p = subprocess.run(
        [*FLOODWATCH, "--version"], check=False, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0
    assert re.fullmatch(r"floodwatch \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout
    p = subprocess.run(
        [*FLOODWATCH, "token", "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0
    for action in ("create", "list", "revoke"):
        assert action in p.stdout


# --- transport --------------------------------------------------------------------------------


def test_admin_socket_is_private(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", env=NO_BOOTSTRAP)
    try:
        sock = srv.data_dir / "admin.sock"
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.getuid()
        # and the CLI works through it while the server holds the database
        out = one_json(run_cli(srv.data_dir, "workspace", "create", "via-sock", "--json").stdout)
        assert workspace_of(srv, out["deploy_token"])["name"] == "via-sock"
    finally:
        assert srv.stop() == 0
    assert not (srv.data_dir / "admin.sock").exists()


def test_cli_while_server_runs_without_admin_socket(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**NO_BOOTSTRAP, "FLOODWATCH_SERVER__ADMIN_SOCKET": "false"}
    srv = start_server_no_socket(data, env)
    try:
        assert not (data / "admin.sock").exists()
        p = run_cli(data, "workspace", "create", "x", "--json", check=False)
        assert p.returncode == 1, (p.stdout, p.stderr)
        err = one_json(p.stdout)["error"]
        assert err["code"] == "database_locked"
        assert "in use" in err["message"]
        p = run_cli(data, "workspace", "list", check=False)
        assert p.returncode == 1
        assert "in use" in p.stderr and "Traceback" not in p.stderr
    finally:
        assert srv.stop() == 0
    # once the server is gone the CLI opens the database itself
    assert one_json(run_cli(data, "workspace", "list", "--json").stdout) == {"workspaces": []}


def start_server_no_socket(data: Path, env: dict[str, str]) -> Server:
    """``start_server`` waits for admin.sock, which this configuration never creates."""
    data.mkdir(parents=True, exist_ok=True)
    srv = spawn_server(data, {**os.environ, **env}, env=env, name="nosock")
    proc, err = srv.proc, srv.stderr_path
    for _ in range(600):
        assert proc.poll() is None, err.read_text()
        if "listening on" in err.read_text():
            break
        time.sleep(0.05)
    else:
        srv.stop(signal.SIGKILL)
        raise AssertionError("server did not start: " + err.read_text())
    assert requests.get(srv.url("/api/health"), timeout=10).status_code == 200
    return srv


def test_stale_admin_socket_falls_back_to_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, env=NO_BOOTSTRAP)
    created = one_json(run_cli(data, "workspace", "create", "before", "--json").stdout)
    srv.stop(signal.SIGKILL)  # dies without cleaning up: the socket file stays behind
    assert (data / "admin.sock").exists()

    listed = one_json(run_cli(data, "workspace", "list", "--json").stdout)["workspaces"]
    assert [w["workspace_id"] for w in listed] == [created["workspace_id"]]
    tok = one_json(run_cli(data, "token", "create", "--json").stdout)

    srv2 = start_server(data, env=NO_BOOTSTRAP)
    try:
        assert workspace_of(srv2, tok["deploy_token"])["uuid"] == created["workspace_id"]
        assert workspace_of(srv2, created["deploy_token"])["name"] == "before"
    finally:
        assert srv2.stop() == 0


def test_collector_revoke_by_unique_prefix(env: Env) -> None:
    env.js("workspace", "create", "collectors")
    keys = [env.js("collector", "create", "--name", f"c{i}") for i in range(3)]
    target = keys[0]
    out = env.js("collector", "revoke", target["key_id"][:10])
    assert out["key_id"] == target["key_id"] and out["revoked_at"] is not None
    # the full id still works, and revoking twice keeps the first time
    again = env.js("collector", "revoke", target["key_id"].upper())
    assert again["revoked_at"] == out["revoked_at"]
    too_short = env.fail("collector", "revoke", target["key_id"][:3])
    assert too_short["code"] == "invalid_parameter" and too_short.get("field") == "key_id"
    assert env.fail("collector", "revoke", "ffffffff-0000")["code"] == "not_found"
    listed = {c["name"]: c for c in env.js("collector", "list")["collectors"]}
    assert listed["c0"]["revoked_at"] is not None
    assert listed["c1"]["revoked_at"] is None and listed["c2"]["revoked_at"] is None


def _share_an_id_prefix(data_dir: Path, table: str, ids: list[str], prefix: str) -> list[str]:
    """Give the rows ``ids`` of ``table`` new ids that all start with ``prefix`` (padded with
    zeros to the first dash) and differ right after that dash: random ids share 4+ leading
    characters too rarely to test with. No server may hold the database."""
    from store import Store

    new = [str(uuid.UUID(f"{prefix:0<8}{i:x}".ljust(32, "0"))) for i in range(len(ids))]
    store = Store(data_dir / "floodwatch.duckdb")
    store.open()
    try:
        for old, fresh in zip(ids, new, strict=True):
            store.con.execute(f"UPDATE {table} SET id = ? WHERE id = ?", [fresh, old])
    finally:
        store.close()
    return new


@pytest.mark.parametrize("mode", ["server", "offline"])
def test_revoke_refuses_an_ambiguous_or_unknown_prefix(tmp_path: Path, mode: str) -> None:
    """``collector revoke`` and ``token revoke`` resolve an id prefix the same way: a prefix
    two ids share is refused (exit 1, nothing revoked), a longer one picks one of them."""
    env = Env(mode, tmp_path / "data")
    env.data_dir.mkdir()
    env.js("workspace", "create", "prefixes")
    keys = [env.js("collector", "create", "--name", f"k{i}")["key_id"] for i in range(2)]
    tokens = [env.js("token", "create", "--name", f"t{i}")["token_id"] for i in range(2)]
    keys = _share_an_id_prefix(env.data_dir, "collector_keys", keys, "abcd0")
    tokens = _share_an_id_prefix(env.data_dir, "deploy_tokens", tokens, "abcd0")
    if mode == "server":
        env._server = start_server(env.data_dir, env=NO_BOOTSTRAP)
        env._started.append(env._server)
    try:
        for command, ids, what in (
            ("collector", keys, "collector keys"),
            ("token", tokens, "tokens"),
        ):
            for ambiguous in ("abcd", "ABCD0", ids[0][:8]):
                err = env.fail(command, "revoke", ambiguous, plain=True)
                assert err["code"] == "conflict", err
                assert f"matches 2 {what}" in err["message"], err
            for unknown in ("abce", "%%%%", "____", ids[0][:9] + "f"):
                err = env.fail(command, "revoke", unknown, plain=True)
                assert err["code"] == "not_found", err
            assert env.fail(command, "revoke", "abc")["code"] == "invalid_parameter"

        listed = env.js("collector", "list")["collectors"]
        assert [c["revoked_at"] for c in listed] == [None, None]  # the failures revoked nothing
        listed = env.js("token", "list")["tokens"]
        assert [t["revoked_at"] for t in listed] == [None, None, None]

        out = env.js("collector", "revoke", keys[1][:10])  # past the dash they differ
        assert out["key_id"] == keys[1] and out["revoked_at"] is not None
        out = env.js("token", "revoke", tokens[0][:10].upper())
        assert out["token_id"] == tokens[0] and out["revoked_at"] is not None
        revoked = {c["key_id"]: c["revoked_at"] for c in env.js("collector", "list")["collectors"]}
        assert revoked[keys[0]] is None and revoked[keys[1]] is not None
        revoked = {t["token_id"]: t["revoked_at"] for t in env.js("token", "list")["tokens"]}
        assert revoked[tokens[0]] is not None and revoked[tokens[1]] is None
    finally:
        for srv in env._started:
            assert srv.stop() == 0, srv.stderr()
