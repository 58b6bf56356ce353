"""Workspace names are unique among the live workspaces of one parent (and among the top-level
ones), ignoring case: through REST, through the CLI with and without a server, and on a database
that already held duplicates before the rule."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from store import Store
from store import workspaces as ws_repo
from store.errors import Conflict

from .conftest import Client, Server, Workspace, assert_error, new_workspace, run_cli, start_server

NO_BOOTSTRAP = {"FLOODWATCH_API__BOOTSTRAP_WORKSPACE": "false"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_sub(client: Client, name: str) -> dict[str, Any]:
    r = client.post("/api/v1/workspaces", json={"name": name})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()["workspace"]
    return out


def cli_error(data_dir: Path, *args: str) -> dict[str, Any]:
    """Run a CLI command that must fail; its JSON error object."""
    proc = run_cli(data_dir, *args, "--json", check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    body = json.loads(proc.stdout)
    assert body["ok"] is False, body
    err: dict[str, Any] = body["error"]
    assert proc.stderr == f"floodwatch: error: {err['message']}\n", proc.stderr
    return err


def cli_json(data_dir: Path, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run_cli(data_dir, *args, "--json").stdout)
    return out


# --- REST: sub-workspaces -----------------------------------------------------------------------


def test_a_sub_workspace_name_is_taken_within_its_parent(ws: Workspace) -> None:
    name = unique("Acme")
    create_sub(ws.client, name)
    for again in (name, name.lower(), name.upper(), f"  {name}  "):
        body = assert_error(
            ws.client.post("/api/v1/workspaces", json={"name": again}), 409, "conflict"
        )
        assert body["error"]["message"] == f"a workspace named {again.strip()} already exists"
    assert ws.client.get("/api/v1/workspaces").json()["total"] == 1


def test_the_same_name_under_another_parent_is_fine(ws: Workspace, other_ws: Workspace) -> None:
    name = unique("shared")
    create_sub(ws.client, name)
    create_sub(other_ws.client, name)
    # a sub-workspace may also be named like a top-level workspace: it has another parent
    top = ws.client.get("/api/v1/workspace").json()["workspace"]["name"]
    create_sub(ws.client, top)


def test_a_deleted_sub_workspace_frees_its_name(ws: Workspace) -> None:
    name = unique("gone")
    first = create_sub(ws.client, name)
    assert ws.client.delete(f"/api/v1/workspaces/{first['uuid']}").status_code == 200
    second = create_sub(ws.client, name.upper())
    assert second["uuid"] != first["uuid"]
    assert_error(ws.client.post("/api/v1/workspaces", json={"name": name}), 409, "conflict")


# --- CLI, through the server's admin socket ------------------------------------------------------


def test_cli_refuses_a_taken_top_level_name(server: Server) -> None:
    name = unique("Top")
    made = server.cli_json("workspace", "create", name)
    err = cli_error(server.data_dir, "workspace", "create", name.lower())
    assert err["code"] == "conflict", err
    assert err["message"] == f"a workspace named {name.lower()} already exists"
    plain = server.cli("workspace", "create", name, check=False)
    assert plain.returncode == 1 and "already exists" in plain.stderr, plain
    names = [w["name"].lower() for w in server.cli_json("workspace", "list")["workspaces"]]
    assert names.count(name.lower()) == 1
    # a sub-workspace's name does not block a top-level one
    sub_name = unique("sub")
    create_sub(new_workspace(server).client, sub_name)
    server.cli_json("workspace", "create", sub_name)
    # renaming to a taken name is refused, renaming to the same name in another case is not
    other = server.cli_json("workspace", "create", unique("other"))
    err = cli_error(server.data_dir, "workspace", "update", other["workspace_id"], "--name", name)
    assert err["code"] == "conflict", err
    again = server.cli_json("workspace", "update", made["workspace_id"], "--name", name.upper())
    assert again["name"] == name.upper()


def test_cli_rename_within_a_parent_is_checked(server: Server) -> None:
    parent = new_workspace(server)
    a = create_sub(parent.client, unique("a"))
    b = create_sub(parent.client, unique("b"))
    err = cli_error(server.data_dir, "workspace", "update", b["uuid"], "--name", a["name"])
    assert err["code"] == "conflict", err
    # under another parent the name is free
    elsewhere = create_sub(new_workspace(server).client, unique("c"))
    out = server.cli_json("workspace", "update", elsewhere["uuid"], "--name", a["name"])
    assert out["name"] == a["name"]


def test_a_deleted_top_level_workspace_frees_its_name(server: Server) -> None:
    name = unique("reuse")
    first = server.cli_json("workspace", "create", name)
    server.cli_json("workspace", "delete", first["workspace_id"])
    second = server.cli_json("workspace", "create", name)
    assert second["workspace_id"] != first["workspace_id"]


# --- CLI without a server, and old databases ----------------------------------------------------


def test_cli_offline_refuses_a_taken_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cli_json(data, "workspace", "create", "alpha")
    assert cli_error(data, "workspace", "create", "ALPHA")["code"] == "conflict"
    beta = cli_json(data, "workspace", "create", "beta")
    err = cli_error(data, "workspace", "update", beta["workspace_id"], "--name", "Alpha")
    assert err["code"] == "conflict", err


def test_a_database_holding_duplicate_names_still_starts(tmp_path: Path) -> None:
    """Names were not unique before; such duplicates stay, and stay editable."""
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "floodwatch.duckdb")
    store.open()
    try:
        first, token = ws_repo.create_workspace(store.con, "twin", "self-hosted")
        second, _ = ws_repo.create_workspace(store.con, "twin-2", "self-hosted")
        # what an older version could write
        store.con.execute(
            "UPDATE workspaces SET name = 'TWIN' WHERE uuid = ?", [str(second["uuid"])]
        )
    finally:
        store.close()
    srv = start_server(data, env=NO_BOOTSTRAP)
    try:
        listed = srv.cli_json("workspace", "list")["workspaces"]
        assert sorted(w["name"] for w in listed) == ["TWIN", "twin"]
        # keeping the name (up to case) is not a conflict, even with the old twin there
        out = srv.cli_json(
            "workspace", "update", str(second["uuid"]), "--name", "Twin", "--plan", "pro"
        )
        assert (out["name"], out["plan"]) == ("Twin", "pro")
        err = cli_error(data, "workspace", "create", "twin")
        assert err["code"] == "conflict", err
        # and the workspaces keep working
        r = Client(srv, token).get("/api/v1/workspace")
        assert r.status_code == 200 and r.json()["workspace"]["name"] == "twin", r.text
        # the name is free once neither twin holds it
        srv.cli_json("workspace", "update", str(second["uuid"]), "--name", "solo")
        assert cli_error(data, "workspace", "create", "TWIN")["code"] == "conflict"
        srv.cli_json("workspace", "update", str(first["uuid"]), "--name", "first")
        srv.cli_json("workspace", "create", "twin")
    finally:
        assert srv.stop() == 0, srv.stderr()


@pytest.mark.parametrize("name", ["dup", "Dup", " dup "])
def test_store_refuses_a_taken_name(tmp_path: Path, name: str) -> None:
    store = Store(tmp_path / "floodwatch.duckdb")
    store.open()
    try:
        ws_repo.create_workspace(store.con, "DUP", "self-hosted")
        with pytest.raises(Conflict, match="already exists"):
            ws_repo.create_workspace(store.con, name, "self-hosted")
        # the failed create left nothing behind
        row = store.con.execute("SELECT count(*) FROM workspaces").fetchone()
        assert row is not None and row[0] == 1
        assert store.con.execute("SELECT count(*) FROM deploy_tokens").fetchone() == (1,)
    finally:
        store.close()
