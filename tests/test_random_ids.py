"""Integer ids of incidents and channels are random in 1..2^53-1, so that they tell a workspace
nothing about how many incidents and channels the others created; they still fetch, stay
scoped to their workspace, and ids given out before the change keep working."""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

import store.db
from store import Store, detections, ids
from store import channels as channel_repo
from store import incidents as incident_repo
from store import nodes as node_repo
from store import workspaces as ws_repo
from store.db import Connection
from store.errors import StoreError
from store.migrations import MIGRATIONS

from .conftest import Client, Server, Workspace, assert_error, new_workspace, start_server
from .test_detections_store import _t

MAX_ID = 2**53 - 1
WEBHOOK = {"url": "https://example.com/hook"}
OPEN: dict[str, Any] = {
    "peak_pps": 120000.0,
    "peak_bps": 9.6e8,
    "started_at": "2026-03-14T18:10:41+00:00",
    "attack_family": "udp_flood",
    "source_ip_count": 3,
}
T0 = datetime(2026, 11, 3, 12, 0, 0, tzinfo=UTC)


def assert_unrevealing(ids_in_creation_order: list[int]) -> None:
    """Ids in range, distinct, and no +1 (or -1) step between two made one after the other."""
    assert all(isinstance(i, int) and 1 <= i <= MAX_ID for i in ids_in_creation_order)
    assert len(set(ids_in_creation_order)) == len(ids_in_creation_order)
    steps = [b - a for a, b in itertools.pairwise(ids_in_creation_order)]
    assert all(abs(step) != 1 for step in steps), ids_in_creation_order
    # random 53-bit values: the spread is far larger than any count of rows could explain
    assert max(ids_in_creation_order) - min(ids_in_creation_order) > 1_000_000


# --- channels, through REST ---------------------------------------------------------------------


def make_channel(client: Client) -> dict[str, Any]:
    r = client.post(
        "/api/v1/channels",
        json={"name": f"ch-{uuid.uuid4().hex[:6]}", "type": "webhook", "config": WEBHOOK},
    )
    assert r.status_code == 201, r.text
    ch: dict[str, Any] = r.json()["channel"]
    return ch


def test_channel_ids_reveal_nothing_across_workspaces(ws: Workspace, other_ws: Workspace) -> None:
    made: list[tuple[Workspace, dict[str, Any]]] = []
    for _ in range(4):
        for owner in (ws, other_ws):
            made.append((owner, make_channel(owner.client)))
    assert_unrevealing([ch["id"] for _, ch in made])
    for owner, ch in made:
        got = owner.client.get(f"/api/v1/channels/{ch['id']}")
        assert got.status_code == 200, got.text
        assert got.json()["channel"]["uuid"] == ch["uuid"]
        stranger = other_ws if owner is ws else ws
        assert_error(stranger.client.get(f"/api/v1/channels/{ch['id']}"), 404, "not_found")
    # the list keeps creation order, not id order
    for owner in (ws, other_ws):
        listed = owner.client.get("/api/v1/channels").json()["channels"]
        assert [c["id"] for c in listed] == [ch["id"] for o, ch in made if o is owner]


# --- incidents, through the Agent API -----------------------------------------------------------


def open_incident(server: Server, owner: Workspace) -> str:
    r = owner.client.post(
        "/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:8]}", "ip": "203.0.113.10"}
    )
    assert r.status_code == 201, r.text
    node = r.json()["node"]
    opened = requests.post(
        server.url("/api/v1/agent/incidents"),
        json=OPEN,
        headers={"Authorization": f"Bearer {node['api_key']}", "X-Node-UUID": node["uuid"]},
        timeout=30,
    )
    assert opened.status_code == 200, opened.text
    inc_uuid: str = opened.json()["uuid"]
    return inc_uuid


def test_agent_incident_ids_reveal_nothing_across_workspaces(server: Server) -> None:
    a, b = new_workspace(server), new_workspace(server)
    made: list[tuple[Workspace, str]] = []
    for _ in range(4):
        for owner in (a, b):
            made.append((owner, open_incident(server, owner)))
    numbers = []
    for owner, inc in made:
        got = owner.client.get(f"/api/v1/incidents/{inc}")
        assert got.status_code == 200, got.text
        number = got.json()["incident"]["id"]
        numbers.append(number)
        by_id = owner.client.get(f"/api/v1/incidents/{number}")
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["incident"]["uuid"] == inc
        stranger = b if owner is a else a
        assert_error(stranger.client.get(f"/api/v1/incidents/{number}"), 404, "not_found")
    assert_unrevealing(numbers)


# --- incidents written by the store (detection, seeds) ------------------------------------------


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Connection]:
    db = Store(tmp_path / "d.duckdb")
    db.open()
    yield db.con
    db.close()


def _workspace_and_node(con: Connection) -> tuple[dict[str, Any], str]:
    ws, _ = ws_repo.create_workspace(con, f"ws-{uuid.uuid4().hex[:6]}", "self-hosted")
    fields = node_repo.validate_node_fields({"name": "n1", "ip": "203.0.113.1"})
    node, _ = node_repo.create_node(con, ws, fields)
    return ws, str(node["uuid"])


def test_stored_incident_ids_reveal_nothing(con: Connection) -> None:
    pairs = [_workspace_and_node(con) for _ in range(2)]
    numbers = []
    for k in range(4):
        for ws, node in pairs:
            inc = incident_repo.insert_incident(
                con,
                ws["uuid"],
                uuid.UUID(node),
                attack_family="udp_flood",
                severity="low",
                started_at=T0 + timedelta(minutes=k),
            )
            got = incident_repo.get_incident(con, ws["uuid"], inc, now=T0)
            assert incident_repo.get_incident(con, ws["uuid"], got["id"], now=T0)["uuid"] == inc
            numbers.append(got["id"])
    assert_unrevealing(numbers)


def test_detector_incident_ids_reveal_nothing(con: Connection) -> None:
    pairs = [_workspace_and_node(con) for _ in range(2)]
    numbers = []
    for k in range(4):
        for ws, node in pairs:
            onset = T0 + timedelta(minutes=10 * k)
            [(inc, what)] = detections.apply_transitions(
                con, [_t("open", ws, node, onset)], now=onset
            )
            assert what == "open"
            got = incident_repo.get_incident(con, ws["uuid"], uuid.UUID(inc), now=onset)
            numbers.append(got["id"])
            detections.apply_transitions(
                con, [_t("resolve", ws, node, onset, at=onset + timedelta(seconds=30))], now=onset
            )
    assert_unrevealing(numbers)


def test_a_drawn_id_already_taken_is_drawn_again(
    con: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = _workspace_and_node(con)
    first = channel_repo.create_channel(con, ws["uuid"], "a", "webhook", WEBHOOK)
    draws = iter([first["id"] - 1, 41])  # randbelow(n) + 1: the taken id, then 42
    monkeypatch.setattr(secrets, "randbelow", lambda _n: next(draws))
    assert ids.new_channel_id(con) == 42
    draws = iter([MAX_ID - 1])
    assert ids.new_incident_id(con) == MAX_ID


def test_no_free_id_is_an_error_not_a_hang(
    con: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = _workspace_and_node(con)
    first = channel_repo.create_channel(con, ws["uuid"], "a", "webhook", WEBHOOK)
    monkeypatch.setattr(secrets, "randbelow", lambda _n: first["id"] - 1)
    with pytest.raises(StoreError, match="no free id"):
        ids.new_channel_id(con)


# --- a database from before the change ----------------------------------------------------------


def test_ids_given_out_before_the_change_keep_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    before = [m for m in MIGRATIONS if m[0] <= 10]
    monkeypatch.setattr(store.db, "MIGRATIONS", before)
    old = Store(data / "floodwatch.duckdb")
    old.open()
    try:
        con = old.con
        ws, token = ws_repo.create_workspace(con, "old", "self-hosted")
        node, _ = node_repo.create_node(
            con, ws, node_repo.validate_node_fields({"name": "n1", "ip": "203.0.113.1"})
        )
        # what the old code wrote: ids from the sequences
        for k in range(2):
            con.execute(
                "INSERT INTO channels (uuid, workspace_uuid, name, type, config, enabled, "
                "created_at) VALUES (?, ?, ?, 'webhook', ?, true, ?)",
                [str(uuid.uuid4()), str(ws["uuid"]), f"old{k}", '{"url": "https://e.com/x"}', T0],
            )
            con.execute(
                "INSERT INTO incidents (uuid, workspace_uuid, node_uuid, status, severity, "
                "attack_family, started_at, updated_at) "
                "VALUES (?, ?, ?, 'resolved', 'low', 'udp_flood', ?, ?)",
                [str(uuid.uuid4()), str(ws["uuid"]), str(node["uuid"]), T0, T0],
            )
        assert con.execute("SELECT list(id ORDER BY id) FROM channels").fetchone() == ([1, 2],)
        assert con.execute("SELECT list(id ORDER BY id) FROM incidents").fetchone() == ([1, 2],)
    finally:
        old.close()
    monkeypatch.undo()

    srv = start_server(data, env={"FLOODWATCH_API__BOOTSTRAP_WORKSPACE": "false"})
    try:
        client = Client(srv, token)
        for n in (1, 2):
            assert client.get(f"/api/v1/channels/{n}").json()["channel"]["name"] == f"old{n - 1}"
            assert client.get(f"/api/v1/incidents/{n}").json()["incident"]["id"] == n
        new = [make_channel(client)["id"] for _ in range(3)]
        assert_unrevealing([2, *new])
        listed = client.get("/api/v1/channels").json()["channels"]
        assert [c["id"] for c in listed] == [1, 2, *new]
    finally:
        assert srv.stop() == 0, srv.stderr()
    # an insert that leaves the id out gets a random one too (the column default)
    db = Store(data / "floodwatch.duckdb")
    db.open()
    try:
        for k in range(3):
            db.con.execute(
                "INSERT INTO incidents (uuid, workspace_uuid, node_uuid, status, severity, "
                "attack_family, started_at, updated_at) "
                "VALUES (?, ?, ?, 'resolved', 'low', 'udp_flood', ?, ?)",
                [str(uuid.uuid4()), str(ws["uuid"]), str(node["uuid"]), T0, T0 + timedelta(k)],
            )
        row = db.con.execute(
            "SELECT list(id ORDER BY updated_at) FROM incidents WHERE id > 2"
        ).fetchone()
        assert row is not None and len(row[0]) == 3
        assert_unrevealing([2, *row[0]])
    finally:
        db.close()
