"""The domain types of nodes and incidents (``store/types.py``, issue 12): each ``TypedDict`` has
the keys its query returns, in their order, and the keys the answer models declare, so that
what mypy checks against is what runs and what the OpenAPI document promises."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from api.models import incidents as incident_models
from api.models import nodes as node_models
from api.routes import nodes as node_routes
from store import incidents as incident_repo
from store import nodes as node_repo
from store import types
from store import workspaces as ws_repo
from store.db import Connection, Store

T0 = datetime(2026, 11, 3, 12, 0, 0, tzinfo=UTC)


def typed_keys(typed: Any) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)


def fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


@pytest.mark.parametrize(
    ("typed", "model"),
    [
        (types.ServicePort, node_models.ServicePort),
        (types.Node, node_models.Node),
        (types.ProtocolShares, node_models.ProtocolBreakdown),
        (node_routes.DetectorBaseline, node_models.NodeBaseline),
        (node_routes.NodeDetail, node_models.NodeDetail),
        (types.IncidentDetection, incident_models.IncidentDetection),
        (types.ListedIncident, incident_models.Incident),
        (types.RenderedIncident, incident_models.IncidentDetail),
    ],
    ids=lambda v: v.__name__,
)
def test_types_have_the_keys_the_answer_models_declare(typed: Any, model: type[BaseModel]) -> None:
    assert typed_keys(typed) == fields(model)


def test_only_the_forensic_keys_of_an_incident_are_optional() -> None:
    assert types.RenderedIncident.__optional_keys__ == set(incident_repo.FORENSIC_FIELDS)
    assert not types.ListedIncident.__optional_keys__
    assert not types.Node.__optional_keys__


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Connection]:
    store = Store(tmp_path / "d.duckdb")
    store.open()
    yield store.con
    store.close()


def _node(con: Connection) -> tuple[types.Workspace, types.Node]:
    ws, _ = ws_repo.create_workspace(con, f"ws-{uuid.uuid4().hex[:6]}", "self-hosted")
    fields = node_repo.validate_node_fields({"name": "edge-1", "ip": "203.0.113.7"})
    node, _ = node_repo.create_node(con, ws, fields)
    return ws, node


def test_a_node_row_has_the_keys_of_node_in_order(con: Connection) -> None:
    ws, node = _node(con)
    assert list(node) == list(types.Node.__annotations__)
    listed, _ = node_repo.list_nodes(con, ws["uuid"])
    assert [list(n) for n in listed] == [list(types.Node.__annotations__)]
    stats = node_repo.node_traffic_stats(con, ws["uuid"], node["uuid"], None)
    assert list(stats) == list(types.NodeTraffic.__annotations__)
    assert list(stats["baseline"]) == list(types.TrafficBaseline.__annotations__)
    assert list(stats["protocol_breakdown"]) == list(types.ProtocolShares.__annotations__)


def test_incident_rows_have_the_keys_of_their_types(con: Connection) -> None:
    ws, node = _node(con)
    inc = incident_repo.insert_incident(
        con,
        ws["uuid"],
        node["uuid"],
        attack_family="udp_flood",
        severity="high",
        started_at=T0,
        peak_pps=5e4,
        detail={"open": {"baseline_pps": 100, "ttl_distribution": {"64": 90}, "rps": 3}},
    )
    now = T0 + timedelta(minutes=5)
    (row,), _ = incident_repo.list_incidents(con, ws["uuid"], now=now)
    assert list(row) == list(types.Incident.__annotations__)
    assert list(row["detection"]) == list(types.IncidentDetection.__annotations__)
    assert list(incident_repo.listed(row)) == [*types.Incident.__annotations__, "family"]

    detail = incident_repo.get_incident(con, ws["uuid"], inc, now=now)
    reported = ["ttl_distribution", "baseline_pps", "rps"]
    assert set(detail) == typed_keys(types.IncidentDetail) - (
        set(incident_repo.FORENSIC_FIELDS) - set(reported)
    )
    assert [k for k in detail if k in incident_repo.FORENSIC_FIELDS] == [
        k for k in incident_repo.FORENSIC_FIELDS if k in reported
    ]
    shown = incident_repo.rendered(detail)
    assert list(shown)[-2:] == ["family", "ai_summary"]
    assert shown["family"] == "udp_flood" and shown["ai_summary"] is None
