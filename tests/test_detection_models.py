"""The detection settings' typed models (``api/models/detection.py``, issue 12): built from
``detect.settings`` (names, bounds, defaults), they accept exactly the patches the domain
validator accepts (but the one rule a schema cannot say: pps and bps not both off), the
document's detection schemas are the models', and live answers fit them."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from api.detection import patch_overrides
from api.models import component_schemas
from api.models.detection import DetectionAnswer, DetectionPatch
from api.openapi import openapi_document
from api.openapi.operations import operation_of
from api.routes import detection as detection_routes
from detect.settings import (
    FLOAT_BOUNDS,
    INT_BOUNDS,
    SENSITIVITY,
    SERIES_NAMES,
    DetectionSettings,
    SettingsError,
)

from .conftest import Server, new_workspace
from .properties_support import PURE

NAMES = [*DetectionSettings().to_dict(), "colour"]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 100_000),
    st.floats(-10.0, 2e15, allow_nan=False, allow_infinity=False),
    st.sampled_from([*SENSITIVITY, "extreme", ""]),
    st.dictionaries(
        st.sampled_from([*SERIES_NAMES, "bogus"]), st.one_of(st.none(), st.booleans(), st.just(1))
    ),
)
patches = st.dictionaries(st.sampled_from(NAMES), values, max_size=5)


def _model_accepts(body: dict[str, Any]) -> bool:
    try:
        TypeAdapter(DetectionPatch).validate_python(body)
    except ValidationError:
        return False
    return True


def _domain_accepts(body: dict[str, Any]) -> bool:
    try:
        patch_overrides(DetectionSettings().to_dict(), {}, body)
    except SettingsError as exc:
        return exc.message == "pps and bps cannot both be disabled"
    return True


@PURE
@given(body=patches)
@example(body={"multiplier": 1.2, "floor_bps": 1e15, "confirm_seconds": 30})
@example(body={"multiplier": 1.19})
@example(body={"confirm_seconds": True})
@example(body={"floor_pps": 5})
@example(body={"series": {"pps": None, "syn_pps": False}, "enabled": None})
@example(body={"colour": None, "series": {"bogus": None}})
def test_model_and_domain_validator_agree(body: dict[str, Any]) -> None:
    assert _model_accepts(body) == _domain_accepts(body)


def test_schemas_carry_the_bounds_and_defaults_of_detect_settings() -> None:
    components = openapi_document()["components"]["schemas"]
    generated = component_schemas(
        {
            "DetectionAnswer": (DetectionAnswer, "serialization"),
            "DetectionPatch": (DetectionPatch, "validation"),
        }
    )
    for name, schema in generated.items():
        assert components[name] == schema, name
    full, patch = components["DetectionSettings"], components["DetectionPatch"]
    defaults = DetectionSettings().to_dict()
    assert full["required"] == list(defaults)
    bounds: dict[str, tuple[float, float]] = {**INT_BOUNDS, **FLOAT_BOUNDS}
    for name, (lo, hi) in bounds.items():
        prop = full["properties"][name]
        assert (prop["minimum"], prop["maximum"], prop["default"]) == (lo, hi, defaults[name])
        nullable = patch["properties"][name]["anyOf"]
        assert nullable[0]["minimum"] == lo and nullable[1] == {"type": "null"}
    assert full["properties"]["sensitivity"]["enum"] == list(SENSITIVITY)
    assert full["properties"]["series"]["propertyNames"]["enum"] == list(SERIES_NAMES)
    assert "required" not in patch and patch["additionalProperties"] is False
    for handler in (
        detection_routes.get_workspace_detection,
        detection_routes.patch_workspace_detection,
        detection_routes.get_node_detection,
        detection_routes.patch_node_detection,
    ):
        assert operation_of(handler) is not None, "declared beside its handler"


def test_live_answers_fit_the_models(server: Server) -> None:
    ws = new_workspace(server)
    r = ws.client.get("/api/v1/workspace/detection")
    assert (
        DetectionAnswer.model_validate(r.json()).overrides.model_dump(  # type: ignore[attr-defined]
            exclude_unset=True
        )
        == {}
    )
    r = ws.client.patch(
        "/api/v1/workspace/detection", json={"floor_pps": 100, "series": {"syn_pps": False}}
    )
    assert r.status_code == 200, r.text
    got = DetectionAnswer.model_validate(r.json())
    assert got.detection.floor_pps == 100.0  # type: ignore[attr-defined]
    node = ws.client.post("/api/v1/nodes", json={"name": "n", "ip": "192.0.2.1"}).json()["node"]
    path = f"/api/v1/nodes/{node['uuid']}/detection"
    r = ws.client.patch(path, json={"sensitivity": "high", "floor_pps": None})
    assert r.status_code == 200, r.text
    answer = DetectionAnswer.model_validate(r.json())
    assert answer.inherited.floor_pps == 100.0  # type: ignore[attr-defined]
    assert answer.overrides.model_dump(exclude_unset=True) == {"sensitivity": "high"}  # type: ignore[attr-defined]
