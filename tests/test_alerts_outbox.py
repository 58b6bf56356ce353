"""The alert outbox in the database (store/outbox.py), without a server: a burst of attempts
recorded in one call, the per-channel cap of a read, and the events of agent opens (the merge
rules that pick the incident an open folds into come first, then the outbox)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.agentapi import incident_repo
from store import channels as channel_repo
from store import nodes as node_repo
from store import outbox
from store import workspaces as ws_repo
from store.db import Connection, Store

from .test_agent_api import OPEN

T0 = datetime(2026, 3, 14, 18, 10, 0, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Connection]:
    store = Store(tmp_path / "d.duckdb")
    store.open()
    yield store.con
    store.close()


def _setup(con: Connection, channels: int) -> tuple[uuid.UUID, uuid.UUID, list[int]]:
    ws, _ = ws_repo.create_workspace(con, f"ws-{uuid.uuid4().hex[:6]}", "self-hosted")
    fields = node_repo.validate_node_fields({"name": "edge-1", "ip": "203.0.113.9"})
    node, _ = node_repo.create_node(con, ws, fields)
    ws_uuid = uuid.UUID(str(ws["uuid"]))
    ids = [
        int(
            channel_repo.create_channel(
                con, ws_uuid, f"c{i}", "webhook", {"url": f"http://127.0.0.1:9/{i}"}
            )["id"]
        )
        for i in range(channels)
    ]
    return ws_uuid, uuid.UUID(str(node["uuid"])), ids


def _open(con: Connection, ws: uuid.UUID, node: uuid.UUID, k: int) -> uuid.UUID:
    body = {
        **copy.deepcopy(OPEN),
        "started_at": (T0 + timedelta(minutes=10 * k)).isoformat(),
        "inner_ip": f"10.0.{k}.1",
    }
    inc, merged = incident_repo.open_incident(con, ws, node, body, T0 + timedelta(minutes=k))
    assert not merged
    return inc


def _due(con: Connection, **kw: Any) -> list[dict[str, Any]]:
    rows, _, _ = outbox.due_deliveries(con, T0 + timedelta(days=1), 1000, **kw)
    return rows


def test_an_open_queues_one_start_per_channel_naming_the_node(con: Connection) -> None:
    ws, node, ids = _setup(con, 3)
    inc = _open(con, ws, node, 0)
    rows = _due(con)
    assert sorted(int(r["channel_id"]) for r in rows) == sorted(ids)
    assert {r["kind"] for r in rows} == {"attack_start"}
    assert len({r["event_id"] for r in rows}) == 1  # one event fanned out
    payload = rows[0]["payload"]
    assert payload["incident"]["uuid"] == str(inc)
    assert payload["node"] == {
        "id": None,
        "uuid": str(node),
        "name": "edge-1",
        "ip": "203.0.113.9",
    }
    assert payload["workspace"]["uuid"] == str(ws)
    assert payload["workspace"]["name"].startswith("ws-")


def test_open_merge_rules_still_pick_the_same_incident(con: Connection) -> None:
    ws, node, _ = _setup(con, 1)
    first = _open(con, ws, node, 0)
    # the same open again: the existing incident, no second start
    body = {**copy.deepcopy(OPEN), "started_at": T0.isoformat(), "inner_ip": "10.0.0.1"}
    again, merged = incident_repo.open_incident(con, ws, node, body, T0 + timedelta(seconds=5))
    assert (again, merged) == (first, True)
    # an attack reported by updates alone under the agent's own UUID, then its open replayed
    ref = str(uuid.uuid4())
    upd = {**copy.deepcopy(OPEN), "inner_ip": "10.9.9.9"}
    late = T0 + timedelta(hours=5)
    built, created = incident_repo.report_incident(con, ws, node, ref, "update", upd, late)
    assert created
    replay = {**upd, "started_at": (late - timedelta(seconds=30)).isoformat()}
    got, merged = incident_repo.open_incident(con, ws, node, replay, late + timedelta(seconds=1))
    assert (got, merged) == (built, True)
    started = con.execute("SELECT started_at FROM incidents WHERE uuid = ?", [str(got)]).fetchone()
    assert started is not None and started[0] == late - timedelta(seconds=30)
    starts = con.execute(
        "SELECT count(*) FROM alert_deliveries WHERE kind = 'attack_start'"
    ).fetchone()
    assert starts == (2,)


def test_a_full_read_gives_every_channel_its_turn(con: Connection) -> None:
    ws, node, ids = _setup(con, 3)
    for k in range(5):
        _open(con, ws, node, k)
    every = _due(con)
    assert len(every) == 15
    oldest = {i: [int(r["seq"]) for r in every if int(r["channel_id"]) == i] for i in ids}
    # a short read: each channel's two oldest, in their order
    rows, _, depth = outbox.due_deliveries(con, T0 + timedelta(days=1), 6)
    got = {i: [int(r["seq"]) for r in rows if int(r["channel_id"]) == i] for i in ids}
    assert got == {i: oldest[i][:2] for i in ids}
    assert depth == 15
    # the first channel has a backlog (six due), the others one new delivery each: a read
    # shorter than the backlog still holds every channel (oldest first would be only the
    # first channel's)
    con.execute(
        "UPDATE alert_deliveries SET next_attempt_at = ? WHERE channel_id <> ?",
        [T0 + timedelta(days=2), ids[0]],
    )
    _open(con, ws, node, 9)
    rows, _, _ = outbox.due_deliveries(con, T0 + timedelta(days=1), 4)
    assert {int(r["channel_id"]) for r in rows} == set(ids)


def test_an_incident_first_seen_resolved_queues_start_before_end(con: Connection) -> None:
    ws, node, ids = _setup(con, 3)
    body = {**copy.deepcopy(OPEN), "duration_seconds": 90, "confidence": 80}
    inc, created = incident_repo.report_incident(
        con, ws, node, str(uuid.uuid4()), "resolve", body, T0
    )
    assert created
    got = con.execute(
        "SELECT channel_id, kind, seq FROM alert_deliveries WHERE incident_uuid = ? ORDER BY seq",
        [str(inc)],
    ).fetchall()
    assert [(c, k) for c, k, _ in got] == [
        (i, k) for i in ids for k in ("attack_start", "attack_end")
    ]
    # only the start is due: a channel hears of the end after it heard of the start
    assert {(int(r["channel_id"]), r["kind"]) for r in _due(con)} == {
        (i, "attack_start") for i in ids
    }
    told = con.execute(
        "SELECT channel_id, started_event IS NOT NULL, ended_event IS NOT NULL "
        "FROM alert_channel_incidents WHERE incident_uuid = ? ORDER BY channel_id",
        [str(inc)],
    ).fetchall()
    assert told == [(i, True, True) for i in sorted(ids)]  # ids are random, not increasing


def test_a_read_leaves_out_the_deliveries_the_dispatcher_holds(con: Connection) -> None:
    ws, node, _ = _setup(con, 2)
    for k in range(3):
        _open(con, ws, node, k)
    every = _due(con)
    held = [int(r["seq"]) for r in every[::2]]
    rows, _, depth = outbox.due_deliveries(con, T0 + timedelta(days=1), 1000, held)
    assert sorted(int(r["seq"]) for r in rows) == sorted(
        int(r["seq"]) for r in every if int(r["seq"]) not in held
    )
    assert depth == len(every) == 6  # still pending, still counted


def test_a_burst_of_attempts_is_recorded_each_to_its_delivery(con: Connection) -> None:
    ws, node, ids = _setup(con, 2)
    for k in range(3):
        _open(con, ws, node, k)
    rows = _due(con)
    assert len(rows) == 6
    now = T0 + timedelta(hours=1)
    retry_at = now + timedelta(seconds=30)
    outcomes = ["sent", "retry", "failed", "sent", "cancelled", "retry"]
    records: list[outbox.AttemptRecord] = []
    for i, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
        attempt = {
            "ok": outcome == "sent",
            "latency_ms": 10.0 + i,
            "http_status": 200 if outcome == "sent" else (503 if outcome == "retry" else None),
            "smtp_reply": None,
            "error": None if outcome == "sent" else f"error {i}",
            "retry_after": 30.0 if outcome == "retry" else None,
            "remote_ref": f"ref-{i}" if outcome == "sent" else None,
        }
        records.append((row, attempt, outcome, now, retry_at if outcome == "retry" else None))
    outbox.record_attempts(con, records)
    for i, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
        got = con.execute(
            "SELECT status, attempts, next_attempt_at, done_at, last_error "
            "FROM alert_deliveries WHERE delivery_id = ?",
            [row["delivery_id"]],
        ).fetchone()
        final = outcome != "retry"
        assert got == (
            outcome if final else "pending",
            1,
            now if final else retry_at,
            now if final else None,
            None if outcome == "sent" else f"error {i}",
        )
        logged = con.execute(
            "SELECT attempt, status, http_status, error, latency_ms, retry_after, channel_id "
            "FROM alert_attempts WHERE delivery_id = ?",
            [row["delivery_id"]],
        ).fetchall()
        assert logged == [
            (
                1,
                outcome,
                records[i][1]["http_status"],
                records[i][1]["error"],
                10.0 + i,
                records[i][1]["retry_after"],
                int(row["channel_id"]),
            )
        ]
        ref = con.execute(
            "SELECT remote_ref FROM alert_channel_incidents "
            "WHERE channel_id = ? AND incident_uuid = ?",
            [row["channel_id"], row["incident_uuid"]],
        ).fetchone()
        assert ref == (f"ref-{i}" if outcome == "sent" else None,)
    # the ones retried come back when due, as their second attempt
    later, _, _ = outbox.due_deliveries(con, retry_at, 1000)
    retried = {r["delivery_id"] for r, o in zip(rows, outcomes, strict=True) if o == "retry"}
    assert {r["delivery_id"] for r in later} == retried
    assert {int(r["attempts"]) for r in later} == {1}
    assert sorted(ids) == sorted({int(r["channel_id"]) for r in rows})


def test_a_failing_batch_records_nothing(con: Connection) -> None:
    ws, node, _ = _setup(con, 1)
    _open(con, ws, node, 0)
    (row,) = _due(con)
    good = (row, {"ok": True, "latency_ms": 1.0}, "sent", T0, None)
    bad = ({"delivery_id": "not-a-uuid", "attempts": 0}, {"ok": True}, "sent", T0, None)
    with pytest.raises(Exception):  # noqa: B017 - DuckDB's conversion error
        outbox.record_attempts(con, [good, bad])
    assert con.execute("SELECT count(*) FROM alert_attempts").fetchone() == (0,)
    assert len(_due(con)) == 1


def test_purge_removes_only_old_finished_deliveries(con: Connection) -> None:
    ws, node, _ = _setup(con, 2)
    for k in range(3):
        _open(con, ws, node, k)
    rows = _due(con)
    assert len(rows) == 6
    old, recent = T0 + timedelta(hours=1), T0 + timedelta(days=40)
    attempt = {"ok": True, "latency_ms": 5.0, "http_status": 200, "error": None}
    # two finished long ago, one failed long ago, one retrying since long ago, two finished lately
    plan = [("sent", old), ("sent", old), ("failed", old), ("retry", old), ("sent", recent)]
    records: list[outbox.AttemptRecord] = [
        (row, attempt, outcome, when, when + timedelta(days=60) if outcome == "retry" else None)
        for row, (outcome, when) in zip(rows, plan, strict=False)
    ]
    outbox.record_attempts(con, records)
    now = T0 + timedelta(days=45)
    assert outbox.purge_log(con, now, 30) == 3
    kept = {
        str(r[0]): r[1]
        for r in con.execute("SELECT delivery_id, status FROM alert_deliveries").fetchall()
    }
    expect = {str(rows[i]["delivery_id"]) for i in (3, 4, 5)}
    assert set(kept) == expect  # the pending one (whatever its age) and the recent ones
    attempts = {str(r[0]) for r in con.execute("SELECT delivery_id FROM alert_attempts").fetchall()}
    assert attempts == {str(rows[i]["delivery_id"]) for i in (3, 4)}
    # every event still has a delivery, or is younger than the cut-off
    orphans = con.execute(
        "SELECT count(*) FROM alert_events WHERE event_id NOT IN "
        "(SELECT event_id FROM alert_deliveries)"
    ).fetchone()
    assert orphans == (0,)
    assert outbox.purge_log(con, now, 30) == 0  # nothing more to remove
    assert outbox.purge_log(con, now + timedelta(days=60), 30) == 1  # the recent one, later on
