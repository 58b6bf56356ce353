"""The incidents' typed models (``api/models/incidents.py``, issue 12): the document's incident
schemas are the models', and every incident a seeded server answers, listed or one by one, fits
them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.models import component_schemas
from api.models.incidents import IncidentAnswer, IncidentPage
from api.openapi import openapi_document
from api.openapi.operations import operation_of
from api.routes import incidents as incident_routes
from store.incidents import FORENSIC_FIELDS

from .conftest import Server
from .helpers_seed import Seed, seed_client, seeded_server


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    with seeded_server(tmp_path_factory) as pair:
        yield pair


def test_document_takes_the_incident_schemas_from_the_models() -> None:
    components = openapi_document()["components"]["schemas"]
    models = {
        "IncidentPage": (IncidentPage, "serialization"),
        "IncidentAnswer": (IncidentAnswer, "serialization"),
    }
    generated = component_schemas(models)  # type: ignore[arg-type]
    assert {"Incident", "IncidentDetail", "IncidentDetection"} <= set(generated)
    for name, schema in generated.items():
        assert components[name] == schema, name
    detail = components["IncidentDetail"]
    assert detail["additionalProperties"] is False
    assert not set(FORENSIC_FIELDS) & set(detail["required"]), "present only when reported"
    assert all("default" not in detail["properties"][name] for name in FORENSIC_FIELDS)
    assert components["IncidentDetection"]["additionalProperties"] is True
    for handler in (incident_routes.list_incidents, incident_routes.get_incident):
        assert operation_of(handler) is not None, "declared beside its handler"


def test_live_answers_fit_the_models(seeded: tuple[Server, Seed]) -> None:
    server, seed = seeded
    seen = 0
    for key in ("alpha", "bravo"):
        client = seed_client(server, seed, key)
        r = client.get("/api/v1/incidents?limit=100")
        assert r.status_code == 200, r.text
        page = IncidentPage.model_validate(r.json())
        listed = page.incidents  # type: ignore[attr-defined]
        assert len(listed) == len(seed.ws(key).incidents)
        for inc in listed:
            one = client.get(f"/api/v1/incidents/{inc.id}").json()
            detail = IncidentAnswer.model_validate(one).incident  # type: ignore[attr-defined]
            assert (detail.uuid, detail.detection.source) == (inc.uuid, inc.detection.source)
            seen += 1
    assert seen > 0
