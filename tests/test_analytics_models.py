"""The aggregates' answer models (``api/models/analytics.py``, issue 12): their keys are the ones
the store fills, the document's ``AnalyticsSummary`` and ``StatusOverview`` are the models', and
the live answers, on an empty workspace and on the seeded one, fit them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.models import component_schemas
from api.models.analytics import (
    AnalyticsDay,
    AnalyticsSummary,
    IncidentStatusCounts,
    NodeStatusCounts,
    SeverityCounts,
    StatusNode,
    StatusOverview,
)
from api.openapi import openapi_document
from store.analytics import RANGES
from store.incidents import INCIDENT_STATUSES, SEVERITIES
from store.nodes import NODE_STATUSES, PRIORITIES

from .conftest import Server, new_workspace
from .helpers_seed import Seed, seed_client, seeded_server


def test_the_counts_name_the_stores_keys() -> None:
    assert tuple(SeverityCounts.model_fields) == SEVERITIES
    assert tuple(IncidentStatusCounts.model_fields) == INCIDENT_STATUSES
    assert tuple(NodeStatusCounts.model_fields) == ("total", *NODE_STATUSES)
    assert tuple(AnalyticsDay.model_fields) == ("date", "total", *SEVERITIES, "peak_pps")


def test_document_takes_the_aggregates_from_the_models() -> None:
    doc = openapi_document()
    components = doc["components"]["schemas"]
    generated = component_schemas(
        {
            "AnalyticsSummary": (AnalyticsSummary, "serialization"),
            "StatusOverview": (StatusOverview, "serialization"),
        }
    )
    for name, schema in generated.items():
        assert components[name] == schema, name
    summary = components["AnalyticsSummary"]
    assert summary["properties"]["range"]["enum"] == list(RANGES)
    assert summary["additionalProperties"] is False
    node = components["StatusNode"]["properties"]
    assert node["priority"]["enum"] == list(PRIORITIES)
    assert node["status"]["enum"] == list(NODE_STATUSES)
    for path, model in (
        ("/api/v1/analytics/summary", "AnalyticsSummary"),
        ("/api/v1/status", "StatusOverview"),
    ):
        answer = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert answer["schema"] == {"$ref": f"#/components/schemas/{model}"}
    (param,) = doc["paths"]["/api/v1/analytics/summary"]["get"]["parameters"]
    assert (param["name"], param["schema"]["default"]) == ("range", "30d")


def test_an_empty_workspace_fits(server: Server) -> None:
    ws = new_workspace(server)
    for range_key in RANGES:
        r = ws.client.get("/api/v1/analytics/summary", params={"range": range_key})
        assert r.status_code == 200, r.text
        summary = AnalyticsSummary.model_validate(r.json())
        assert (summary.range, summary.mttr_seconds, summary.top_nodes) == (range_key, None, [])
    r = ws.client.get("/api/v1/status")
    assert r.status_code == 200, r.text
    overview = StatusOverview.model_validate(r.json())
    assert (overview.status, overview.nodes, overview.truncated) == ("operational", [], False)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    with seeded_server(tmp_path_factory) as pair:
        yield pair


def test_the_seeded_workspace_fits(seeded: tuple[Server, Seed]) -> None:
    srv, seed = seeded
    client = seed_client(srv, seed, "alpha")
    for range_key in RANGES:
        r = client.get("/api/v1/analytics/summary", params={"range": range_key})
        assert r.status_code == 200, r.text
        summary = AnalyticsSummary.model_validate(r.json())
        assert summary.incidents.total > 0 and summary.top_nodes
    r = client.get("/api/v1/status")
    assert r.status_code == 200, r.text
    overview = StatusOverview.model_validate(r.json())
    assert overview.nodes and {n.status for n in overview.nodes} <= set(NODE_STATUSES)
    assert all(isinstance(n, StatusNode) for n in overview.nodes)
