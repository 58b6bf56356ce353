"""The collector keys' typed models (``api/models/collectors.py``, issue 12): a refused create
body is answered as the hand-written checks answered it, the document's collector schemas are the
models', and the live server's answers fit the models."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import ApiError
from api.models import component_schemas, validate
from api.models.collectors import Collector, CollectorCreate, CollectorCreated
from api.openapi import openapi_document
from store.errors import InvalidValue
from store.validate import check_text

from .conftest import Server, new_workspace
from .helpers_seed import assert_invalid


@pytest.mark.parametrize("name", [None, "", "   ", 3, True, "n" * 101, "a\x9bb", "a\nb", []])
def test_a_bad_name_is_refused_with_the_store_check_message(name: Any) -> None:
    with pytest.raises(InvalidValue) as expected:
        check_text(name, "name")
    with pytest.raises(ApiError) as caught:
        validate(CollectorCreate, {"name": name})
    err = caught.value
    assert (err.status, err.code, err.field) == (400, "invalid_parameter", "name")
    assert err.message == str(expected.value)


def test_unknown_fields_first_the_alphabetically_first() -> None:
    with pytest.raises(ApiError) as caught:
        validate(CollectorCreate, {"name": None, "zeta": 1, "alpha": 2})
    assert (caught.value.field, caught.value.message) == ("alpha", "unknown field alpha")
    with pytest.raises(ApiError) as caught:
        validate(CollectorCreate, {})
    assert (caught.value.field, caught.value.message) == ("name", "name is required")
    assert validate(CollectorCreate, {"name": "  edge  "}).name == "edge"


def test_document_takes_the_collector_schemas_from_the_models() -> None:
    components = openapi_document()["components"]["schemas"]
    generated = component_schemas(
        {
            "Collector": (Collector, "serialization"),
            "CollectorCreated": (CollectorCreated, "serialization"),
            "CollectorCreate": (CollectorCreate, "validation"),
        }
    )
    assert set(generated) == {"Collector", "CollectorCreated", "CollectorCreate"}
    for name, schema in generated.items():
        assert components[name] == schema, name
    created = components["CollectorCreated"]
    assert created["required"] == ["id", "name", "prefix", "created_at", "revoked_at", "key"]
    assert created["additionalProperties"] is False
    assert components["CollectorCreate"]["properties"]["name"]["$ref"].endswith("/Name")


def test_live_answers_fit_the_models(server: Server) -> None:
    ws = new_workspace(server)
    assert_invalid(ws.client.post("/api/v1/collectors", json={"name": "c", "key": "x"}), "key")
    assert_invalid(ws.client.post("/api/v1/collectors", json={"name": " "}), "name")
    r = ws.client.post("/api/v1/collectors", json={"name": "  history  "})
    assert r.status_code == 201, r.text
    created = CollectorCreated.model_validate(r.json()["collector"])
    assert (created.name, created.revoked_at) == ("history", None)
    assert created.key.startswith(created.prefix)
    listed = ws.client.get("/api/v1/collectors").json()["collectors"]
    assert [Collector.model_validate(c).id for c in listed] == [created.id]
    r = ws.client.delete(f"/api/v1/collectors/{created.id}")
    assert r.status_code == 200, r.text
    assert Collector.model_validate(r.json()["collector"]).revoked_at is not None
