"""The detector's incidents in the database: lifecycle, the merge with ftagent's incidents (both
orders), campaigns, and the settings overrides (store/detections.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.agentapi import incident_repo as agent_incidents
from store import detections
from store import incidents as incident_repo
from store import nodes as node_repo
from store import workspaces as ws_repo
from store.db import Connection, Store

T0 = datetime(2026, 11, 3, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Connection]:
    store = Store(tmp_path / "d.duckdb")
    store.open()
    yield store.con
    store.close()


def _ws(con: Connection) -> dict[str, Any]:
    row, _ = ws_repo.create_workspace(con, f"ws-{uuid.uuid4().hex[:6]}", "self-hosted")
    return row


def _node(con: Connection, ws: dict[str, Any], n: int) -> str:
    fields = node_repo.validate_node_fields({"name": f"n{n}", "ip": f"203.0.113.{n}"})
    node, _ = node_repo.create_node(con, ws, fields)
    return str(node["uuid"])


def _t(kind: str, ws: dict[str, Any], node: str, onset: datetime, **kw: Any) -> dict[str, Any]:
    fired = onset + timedelta(seconds=1)
    t: dict[str, Any] = {
        "kind": kind,
        "workspace": str(ws["uuid"]),
        "node": node,
        "incident": f"{node}:{int(onset.timestamp())}",
        "at": kw.pop("at", fired),
        "detection": {
            "onset_at": onset,
            "fired_at": fired,
            "metric": "udp_pps",
            "observed": 90_000.0,
            "baseline": 3_000.0,
            "threshold": 12_000.0,
            "multiplier": 30.0,
            "samples_above": 2,
            "detector": "floodwatch-test",
        },
        "attack_family": "udp_flood",
        "attack_subtype": "ntp_amplification",
        "confidence": 70,
        "severity": "medium",
        "peak_pps": 90_000.0,
        "peak_bps": 9e8,
        "timeline": [{"t": onset.isoformat(), "pps": 90_000.0}],
        "breakdown": {"protocol_breakdown": {"udp": 95.0, "tcp": 5.0, "icmp": 0.0, "other": 0.0}},
        "summary": "UDP flood",
    }
    t.update(kw)
    return t


def _get(con: Connection, ws: dict[str, Any], ref: str) -> dict[str, Any]:
    return incident_repo.get_incident(con, ws["uuid"], uuid.UUID(ref), now=T0 + timedelta(hours=1))


def test_open_update_resolve_lifecycle(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    [(inc, what)] = detections.apply_transitions(con, [_t("open", ws, node, T0)], now=T0)
    assert what == "open"
    row = _get(con, ws, inc)
    assert row["status"] == "active" and row["source"] == "floodwatch"
    assert row["started_at"] == T0 and row["attack_family"] == "udp_flood"
    assert row["detection"]["onset_at"] == "2026-11-03T12:00:00Z"
    assert row["detection"]["fired_at"] == "2026-11-03T12:00:01Z"
    assert row["detection"]["source"] == "floodwatch" and row["detection"]["multiplier"] == 30.0
    assert row["campaign_id"] is None
    up = _t(
        "update", ws, node, T0, peak_pps=250_000.0, severity="high", at=T0 + timedelta(seconds=6)
    )
    detections.apply_transitions(con, [up], now=T0)
    low = _t("update", ws, node, T0, peak_pps=10.0, severity="low", at=T0 + timedelta(seconds=11))
    detections.apply_transitions(con, [low], now=T0)
    row = _get(con, ws, inc)
    assert row["peak_pps"] == 250_000.0 and row["severity"] == "high"  # neither goes down
    assert len(row["detail"]["floodwatch"]["timeline"]) == 3
    end = T0 + timedelta(seconds=40)
    detections.apply_transitions(con, [_t("resolve", ws, node, T0, at=end)], now=T0)
    row = _get(con, ws, inc)
    assert row["status"] == "resolved" and row["resolved_at"] == end
    assert detections.open_detector_refs(con) == {}


def test_replayed_open_lands_on_the_same_incident(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    first = detections.apply_transitions(con, [_t("open", ws, node, T0)], now=T0)
    again = detections.apply_transitions(con, [_t("open", ws, node, T0)], now=T0)
    assert first[0][0] == again[0][0]
    total = incident_repo.list_incidents(con, ws["uuid"], now=T0)[1]
    assert total == 1


def test_detector_joins_an_agent_incident(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    body = {"attack_family": "syn_flood", "peak_pps": 50_000.0, "baseline_pps": 1_000.0}
    body["started_at"] = (T0 - timedelta(seconds=10)).isoformat()
    agent_uuid, _ = agent_incidents.open_incident(
        con, ws["uuid"], uuid.UUID(node), body, T0 - timedelta(seconds=10)
    )
    [(inc, what)] = detections.apply_transitions(con, [_t("open", ws, node, T0)], now=T0)
    assert (inc, what) == (str(agent_uuid), "merged")
    row = _get(con, ws, inc)
    assert row["attack_family"] == "syn_flood"  # the agent's analysis stands
    assert row["detection"]["source"] == "ftagent"
    assert row["detection"]["metric"] == "udp_pps"  # ...with the detector's view added
    detections.apply_transitions(con, [_t("resolve", ws, node, T0)], now=T0)
    assert _get(con, ws, inc)["status"] == "active"  # the agent resolves its own incident
    assert incident_repo.list_incidents(con, ws["uuid"], now=T0)[1] == 1


def test_agent_joins_a_detector_incident(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    [(inc, _)] = detections.apply_transitions(con, [_t("open", ws, node, T0)], now=T0)
    later = T0 + timedelta(seconds=20)
    body = {"attack_family": "udp_flood", "peak_pps": 95_000.0, "started_at": later.isoformat()}
    agent_uuid, merged = agent_incidents.open_incident(
        con, ws["uuid"], uuid.UUID(node), body, later
    )
    assert merged and str(agent_uuid) == inc
    row = _get(con, ws, inc)
    assert row["source"] == "floodwatch" and row["detection"]["source"] == "floodwatch"
    assert row["started_at"] == T0 and row["peak_pps"] == 95_000.0
    # the agent's resolve (by the uuid it was answered) ends it
    agent_incidents.report_incident(
        con, ws["uuid"], uuid.UUID(node), inc, "resolve", {"duration_seconds": 30}, later
    )
    assert _get(con, ws, inc)["status"] == "resolved"
    assert incident_repo.list_incidents(con, ws["uuid"], now=T0)[1] == 1


def test_agent_incident_without_detection_explains_itself(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    body = {"attack_family": "udp_flood", "peak_pps": 40_000.0, "baseline_pps": 2_000.0}
    body["started_at"] = T0.isoformat()
    inc, _ = agent_incidents.open_incident(con, ws["uuid"], uuid.UUID(node), body, T0)
    row = _get(con, ws, str(inc))
    assert row["detection"]["source"] == "ftagent"
    assert row["detection"]["observed"] == 40_000.0 and row["detection"]["multiplier"] == 20.0


def test_three_nodes_same_family_within_a_minute_share_a_campaign(con: Connection) -> None:
    ws, other = _ws(con), _ws(con)
    nodes = [_node(con, ws, i) for i in range(1, 5)]
    far = _node(con, other, 9)
    ts = [
        _t("open", ws, nodes[0], T0),
        _t("open", ws, nodes[1], T0 + timedelta(seconds=20)),
        _t("open", other, far, T0 + timedelta(seconds=5)),
    ]
    done = detections.apply_transitions(con, ts, now=T0)
    assert all(
        _get(con, w, i)["campaign_id"] is None
        for w, (i, _) in zip((ws, ws, other), done, strict=True)
    )
    done += detections.apply_transitions(
        con, [_t("open", ws, nodes[2], T0 + timedelta(seconds=50))], now=T0
    )
    done += detections.apply_transitions(
        con,
        [
            _t("open", ws, nodes[3], T0 + timedelta(seconds=55), attack_family="syn_flood"),
        ],
        now=T0,
    )
    ids = [_get(con, ws, done[i][0])["campaign_id"] for i in (0, 1, 3)]
    assert ids[0] is not None and ids[0].startswith("cmp_") and len(set(ids)) == 1
    assert _get(con, other, done[2][0])["campaign_id"] is None  # another workspace
    assert _get(con, ws, done[4][0])["campaign_id"] is None  # another family


def test_transitions_of_a_deleted_node_are_skipped(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    node_repo.delete_node(con, ws["uuid"], uuid.UUID(node))
    assert detections.apply_transitions(con, [_t("open", ws, node, T0)], now=T0) == []


def test_settings_overrides_round_trip(con: Connection) -> None:
    ws = _ws(con)
    node = _node(con, ws, 1)
    assert detections.get_detection_overrides(con, ws["uuid"], None) == {}
    detections.put_detection_overrides(con, ws["uuid"], None, {"sensitivity": "high"})
    detections.put_detection_overrides(con, ws["uuid"], uuid.UUID(node), {"floor_pps": 5000})
    assert detections.get_detection_overrides(con, ws["uuid"], None) == {"sensitivity": "high"}
    got = sorted(detections.all_detection_overrides(con), key=lambda r: r[1] or "")
    assert got == [
        (str(ws["uuid"]), None, {"sensitivity": "high"}),
        (str(ws["uuid"]), node, {"floor_pps": 5000}),
    ]
    detections.put_detection_overrides(con, ws["uuid"], uuid.UUID(node), {})
    assert detections.get_detection_overrides(con, ws["uuid"], uuid.UUID(node)) == {}
