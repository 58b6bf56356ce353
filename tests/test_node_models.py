"""The nodes' typed models (``api/models/nodes.py``, issue 12): the Deploy API, node create and
node PATCH bodies are refused and accepted exactly as the store's validators do (same message,
same field, same normalised values), the document's node schemas are the models', and the live
server's answers fit the models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given

from api.errors import ApiError
from api.models import component_schemas, validate
from api.models.envelopes import Deleted
from api.models.nodes import (
    Deployed,
    DeployRequest,
    NodeAnswer,
    NodeCreate,
    NodeCreatedAnswer,
    NodePage,
    NodeUpdate,
)
from api.openapi import openapi_document
from api.openapi.operations import operation_of
from api.routes import nodes as node_routes
from store.errors import InvalidValue
from store.nodes import validate_node_changes, validate_node_fields

from .conftest import Server, new_workspace
from .helpers_seed import assert_invalid
from .properties_support import PURE, node_bodies


def _store(fn: Any, body: dict[str, Any]) -> tuple[str | None, str] | dict[str, Any]:
    try:
        out: dict[str, Any] = fn(body)
    except InvalidValue as exc:
        return exc.field, str(exc)
    if isinstance(out.get("service_ports"), str):
        out["service_ports"] = json.loads(out["service_ports"])
    return out


def _model(model: Any, body: dict[str, Any]) -> tuple[str | None, str] | dict[str, Any]:
    try:
        checked = validate(model, body)
    except ApiError as exc:
        assert (exc.status, exc.code) == (400, "invalid_parameter")
        return exc.field, exc.message
    changes: dict[str, Any] = (
        checked.changes() if isinstance(checked, NodeUpdate) else checked.model_dump()
    )
    return changes


@PURE
@given(body=node_bodies)
@example(body={"name": None, "ip": None})
@example(body={"zeta": 1, "alpha": 2, "name": "n", "ip": "192.0.2.1"})
@example(body={"name": "n", "ip": "192.0.2.1", "priority": None, "interface": ""})
@example(body={"location": None, "uuid": 1, "foo": 2})
@example(body={"service_ports": [{"port_value": 53, "label": "dns"}, {"port_value": "80, 443"}]})
@example(body={"service_ports": [{"port_value": "80", "label": ""}], "sp_enabled": 1})
def test_models_answer_as_the_store_validators(body: dict[str, Any]) -> None:
    assert _model(DeployRequest, body) == _store(validate_node_fields, body)
    assert _model(NodeCreate, body) == _store(lambda b: validate_node_fields(b, strict=True), body)
    assert _model(NodeUpdate, body) == _store(validate_node_changes, body)


def test_the_first_bad_key_in_the_order_sent_is_named() -> None:
    with pytest.raises(ApiError) as caught:
        validate(NodeCreate, {"zeta": 1, "alpha": 2, "name": "n", "ip": "192.0.2.1"})
    assert caught.value.field == "zeta"
    assert caught.value.message.startswith("unknown field zeta (known: name, ip,")
    with pytest.raises(ApiError) as caught:
        validate(NodeUpdate, {"location": "x", "status": "online", "foo": 1})
    assert (caught.value.field, caught.value.message) == ("status", "status cannot be changed")


def test_a_patch_holds_only_the_fields_sent() -> None:
    assert validate(NodeUpdate, {}).changes() == {}
    got = validate(NodeUpdate, {"os": "  ", "interface": None}).changes()
    assert got == {"os": None, "interface": "eth0"}


_MODELS = {
    "Deployed": (Deployed, "serialization"),
    "NodePage": (NodePage, "serialization"),
    "NodeAnswer": (NodeAnswer, "serialization"),
    "NodeCreatedAnswer": (NodeCreatedAnswer, "serialization"),
    "DeployRequest": (DeployRequest, "validation"),
    "NodeCreate": (NodeCreate, "validation"),
    "NodeUpdate": (NodeUpdate, "validation"),
}


def test_document_takes_the_node_schemas_from_the_models() -> None:
    doc = openapi_document()
    components = doc["components"]["schemas"]
    generated = component_schemas(_MODELS)  # type: ignore[arg-type]
    assert {"Node", "NodeDetail", "NodeCreated", "ServicePort", "ServicePortInput"} <= set(
        generated
    )
    for name, schema in generated.items():
        assert components[name] == schema, name
    create, deploy = components["NodeCreate"], components["DeployRequest"]
    assert (create["required"], create["additionalProperties"]) == (["name", "ip"], False)
    assert deploy["required"] == ["name", "ip"] and "additionalProperties" not in deploy
    assert create["properties"]["interface"]["default"] == "eth0"
    update = components["NodeUpdate"]
    assert "required" not in update and update["additionalProperties"] is False
    assert all("default" not in p for p in update["properties"].values())
    assert update["properties"]["service_ports"]["maxItems"] == 256
    # each operation is declared beside its handler
    for handler, operation_id in [
        (node_routes.deploy, "deployNode"),
        (node_routes.list_nodes, "listNodes"),
        (node_routes.create_node, "createNode"),
        (node_routes.get_node, "getNode"),
        (node_routes.update_node, "updateNode"),
        (node_routes.delete_node, "deleteNode"),
    ]:
        declared = operation_of(handler)
        assert declared is not None and declared.operation_id == operation_id


def test_live_answers_fit_the_models(server: Server) -> None:
    ws = new_workspace(server)
    c = ws.client
    r = c.post("/api/deploy", json={"name": " edge ", "ip": "2001:DB8::1", "extra": 1})
    assert r.status_code == 200, r.text
    deployed = Deployed.model_validate(r.json())
    assert (deployed.name, deployed.ip) == ("edge", "2001:db8::1")
    r = c.post("/api/v1/nodes", json={"name": "core", "ip": "192.0.2.1", "priority": None})
    assert r.status_code == 201, r.text
    created = NodeCreatedAnswer.model_validate(r.json()).node  # type: ignore[attr-defined]
    assert (created.priority, created.interface, created.baseline.samples) == (
        "production",
        "eth0",
        0,
    )
    body = {"zeta": 1, "api_key": "x"}
    r = c.patch(f"/api/v1/nodes/{created.uuid}", json=body)
    assert assert_invalid(r, "zeta")["error"]["message"] == "unknown field zeta"
    ports = [{"port_value": 53, "protocol": "udp"}]
    r = c.patch(f"/api/v1/nodes/{created.uuid}", json={"service_ports": ports, "os": " "})
    assert r.status_code == 200, r.text
    node = NodeAnswer.model_validate(r.json()).node  # type: ignore[attr-defined]
    assert ([p.model_dump() for p in node.service_ports], node.os) == (
        [{"protocol": "udp", "port_value": "53", "label": ""}],
        None,
    )
    listed = NodePage.model_validate(c.get("/api/v1/nodes").json())
    assert [n.name for n in listed.nodes] == ["edge", "core"]  # type: ignore[attr-defined]
    r = c.delete(f"/api/v1/nodes/{created.uuid}")
    assert Deleted.model_validate(r.json()).uuid == created.uuid  # type: ignore[attr-defined]
