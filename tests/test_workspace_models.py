"""The workspaces' typed models (``api/models/workspaces.py``, issue 12): a refused create body is
answered as the hand-written checks answered it, the document's workspace schemas are the
models', and the live server's answers fit the models."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.errors import ApiError
from api.models import component_schemas, validate
from api.models.workspaces import (
    Workspace,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspaceDetail,
    WorkspaceUser,
)
from api.openapi import openapi_document
from store.errors import InvalidValue
from store.plans import PLANS
from store.validate import check_text

from .conftest import Client, Server, new_workspace
from .helpers_seed import assert_invalid

PLAN_WORDS = f"plan must be one of {', '.join(PLANS)}"


def refused(body: dict[str, Any]) -> tuple[str | None, str]:
    with pytest.raises(ApiError) as caught:
        validate(WorkspaceCreate, body)
    err = caught.value
    assert (err.status, err.code) == (400, "invalid_parameter")
    return err.field, err.message


@pytest.mark.parametrize("name", [None, "", "   ", 3, True, "n" * 101, "a\x9bb", "a\nb", []])
def test_a_bad_name_is_refused_with_the_store_check_message(name: Any) -> None:
    with pytest.raises(InvalidValue) as expected:
        check_text(name, "name")
    assert refused({"name": name}) == ("name", str(expected.value))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", "email is not an e-mail address"),
        ("email", "a@b", "email is not an e-mail address"),
        ("email", 7, "email must be a string"),
        ("email", "a" * 250 + "@b.example", "email must be at most 254 characters"),
        ("send_welcome_email", "yes", "send_welcome_email must be true or false"),
        ("send_welcome_email", None, "send_welcome_email must be true or false"),
        ("send_welcome_email", 1, "send_welcome_email must be true or false"),
        ("plan", "platinum", PLAN_WORDS),
        ("plan", None, PLAN_WORDS),
        ("node_limit", "ten", "node_limit must be an integer or null"),
        ("node_limit", True, "node_limit must be an integer or null"),
        ("node_limit", 1.5, "node_limit must be an integer or null"),
    ],
)
def test_a_bad_field_is_refused_as_before(field: str, value: Any, message: str) -> None:
    assert refused({"name": "c", field: value}) == (field, message)


def test_precedence_unknown_first_then_field_order() -> None:
    assert refused({"name": None, "zeta": 1, "deploy_token": 2}) == (
        "deploy_token",
        "unknown field deploy_token",
    )
    assert refused({}) == ("name", "name is required")
    bad = {"name": "", "email": 7, "send_welcome_email": 0, "plan": "x", "node_limit": "y"}
    good = {"name": "c", "email": None, "send_welcome_email": False, "plan": "free"}
    for field, value in good.items():
        assert refused(bad)[0] == field
        bad[field] = value
    assert refused(bad)[0] == "node_limit"


def test_fields_left_out_stay_absent() -> None:
    assert validate(WorkspaceCreate, {"name": "  edge  "}) == {"name": "edge"}
    body = {"name": "c", "email": "   ", "password": {"any": "thing"}, "node_limit": None}
    assert validate(WorkspaceCreate, body) == {**body, "email": None}
    got = validate(WorkspaceCreate, {"name": "c", "email": " noc@a.example ", "plan": "free"})
    assert (got["email"], got["plan"]) == ("noc@a.example", "free")


def test_document_takes_the_workspace_schemas_from_the_models() -> None:
    components = openapi_document()["components"]["schemas"]
    generated = component_schemas(
        {
            "Workspace": (Workspace, "serialization"),
            "WorkspaceCreated": (WorkspaceCreated, "serialization"),
            "WorkspaceDetail": (WorkspaceDetail, "serialization"),
            "WorkspaceUser": (WorkspaceUser, "serialization"),
            "WorkspaceCreate": (WorkspaceCreate, "validation"),
        }
    )
    assert set(generated) == {
        "Workspace",
        "WorkspaceCreated",
        "WorkspaceDetail",
        "WorkspaceUser",
        "WorkspaceCreate",
    }
    for name, schema in generated.items():
        assert components[name] == schema, name
    created = components["WorkspaceCreated"]
    assert created["required"][-1] == "deploy_token"
    assert created["additionalProperties"] is False
    detail = components["WorkspaceDetail"]["properties"]["nodes"]
    assert detail["items"]["$ref"].endswith("/Node")
    create = components["WorkspaceCreate"]
    assert create["required"] == ["name"]
    assert list(create["properties"]) == [
        "name",
        "email",
        "send_welcome_email",
        "password",
        "plan",
        "node_limit",
    ]
    assert create["properties"]["email"]["anyOf"][0]["$ref"].endswith("/Email")


def test_live_answers_fit_the_models(server: Server) -> None:
    ws = new_workspace(server)
    top = Workspace.model_validate(ws.client.get("/api/v1/workspace").json()["workspace"])
    assert (top.white_label, top.parent_uuid) == (True, None)
    r = ws.client.post("/api/v1/workspaces", json={"name": "c", "node_limit": -1})
    body = assert_invalid(r, "node_limit")  # the range stays the store's check
    assert body["error"]["message"] == "node_limit must be an integer between 0 and 1000000"
    email = f"noc-{uuid.uuid4().hex[:12]}@customer.example"
    r = ws.client.post("/api/v1/workspaces", json={"name": "  c  ", "email": email})
    assert r.status_code == 201, r.text
    created = WorkspaceCreated.model_validate(r.json()["workspace"])
    assert (created.name, created.email, created.parent_uuid) == ("c", email, ws.id)
    assert WorkspaceUser.model_validate(r.json()["user"]).email == email
    sub = Client(ws.client.server, created.deploy_token)
    assert sub.post("/api/deploy", json={"name": "n", "ip": "192.0.2.7"}).status_code == 200
    listed = ws.client.get("/api/v1/workspaces").json()["workspaces"]
    assert [Workspace.model_validate(w).uuid for w in listed] == [created.uuid]
    one = ws.client.get(f"/api/v1/workspaces/{created.uuid}").json()["workspace"]
    detail = WorkspaceDetail.model_validate(one)
    assert (detail.nodes_total, [n["name"] for n in detail.nodes]) == (1, ["n"])
