"""The answer envelopes (``api/models/envelopes.py``, issue 12) of the channels, collector keys
and workspaces: the operations declared beside their handlers name them, the document's
schemas are theirs, and every live answer of those routes fits its envelope model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from api.models import ResponseModel, component_schemas
from api.models.channels import (
    ChannelAnswer,
    ChannelDeleted,
    ChannelPage,
    ChannelTestAnswer,
    DeliveryPage,
)
from api.models.collectors import CollectorAnswer, CollectorCreatedAnswer, CollectorList
from api.models.envelopes import MAX_OFFSET, Deleted, envelope, page
from api.models.workspaces import (
    WorkspaceAnswer,
    WorkspaceCreatedAnswer,
    WorkspaceDetailAnswer,
    WorkspacePage,
)
from api.openapi import openapi_document

from .alert_receivers import WebhookReceiver
from .conftest import Server, new_workspace
from .test_alerts_dispatch import SECRET, channel

# operation -> (status, the model its answer is)
ANSWERS: dict[tuple[str, str], tuple[int, type[BaseModel]]] = {
    ("get", "/api/v1/channels"): (200, ChannelPage),
    ("post", "/api/v1/channels"): (201, ChannelAnswer),
    ("get", "/api/v1/channels/{id}"): (200, ChannelAnswer),
    ("patch", "/api/v1/channels/{id}"): (200, ChannelAnswer),
    ("delete", "/api/v1/channels/{id}"): (200, ChannelDeleted),
    ("get", "/api/v1/channels/{id}/deliveries"): (200, DeliveryPage),
    ("post", "/api/v1/channels/{id}/test"): (200, ChannelTestAnswer),
    ("get", "/api/v1/collectors"): (200, CollectorList),
    ("post", "/api/v1/collectors"): (201, CollectorCreatedAnswer),
    ("delete", "/api/v1/collectors/{id}"): (200, CollectorAnswer),
    ("get", "/api/v1/workspace"): (200, WorkspaceAnswer),
    ("get", "/api/v1/workspaces"): (200, WorkspacePage),
    ("post", "/api/v1/workspaces"): (201, WorkspaceCreatedAnswer),
    ("get", "/api/v1/workspaces/{uuid}"): (200, WorkspaceDetailAnswer),
    ("delete", "/api/v1/workspaces/{uuid}"): (200, Deleted),
}


def test_the_operations_answer_with_the_envelope_models() -> None:
    doc = openapi_document()
    components = doc["components"]["schemas"]
    for (method, path), (status, model) in ANSWERS.items():
        op = doc["paths"][path][method]
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
        name = model.__name__
        assert schema == {"$ref": f"#/components/schemas/{name}"}, (method, path)
        assert components[name] == component_schemas({name: (model, "serialization")})[name]
        assert "X-RateLimit-Limit" in op["responses"][str(status)]["headers"]


def test_a_page_is_ok_items_total_limit_offset() -> None:
    schema = component_schemas({"WorkspacePage": (WorkspacePage, "serialization")})
    got = schema["WorkspacePage"]
    assert got["required"] == ["ok", "workspaces", "total", "limit", "offset"]
    assert got["additionalProperties"] is False
    assert got["properties"]["ok"]["const"] is True
    assert got["properties"]["workspaces"]["items"] == {"$ref": "#/components/schemas/Workspace"}
    assert (got["properties"]["limit"]["minimum"], got["properties"]["limit"]["maximum"]) == (
        1,
        100,
    )
    assert got["properties"]["offset"]["maximum"] == MAX_OFFSET
    deliveries = component_schemas({"DeliveryPage": (DeliveryPage, "serialization")})
    assert deliveries["DeliveryPage"]["required"][:3] == ["ok", "channel_id", "deliveries"]


def test_envelope_fields_and_the_optional_user() -> None:
    class Thing(ResponseModel):
        name: str

    model = envelope("ThingAnswer", "One thing.", thing=Thing, note=(str, "none"))
    assert model.model_validate({"ok": True, "thing": {"name": "x"}}).model_dump() == {
        "ok": True,
        "thing": {"name": "x"},
        "note": "none",
    }
    with pytest.raises(ValidationError):
        model.model_validate({"ok": False, "thing": {"name": "x"}})
    with pytest.raises(ValidationError):  # no field the envelope does not declare
        model.model_validate({"ok": True, "thing": {"name": "x"}, "extra": 1})
    schema = component_schemas({"ThingAnswer": (model, "serialization")})["ThingAnswer"]
    assert schema["description"] == "One thing."
    assert page("ThingPage", "things", Thing, "Things.").model_fields["things"].is_required()
    created = component_schemas({"W": (WorkspaceCreatedAnswer, "serialization")})["W"]
    assert created["required"] == ["ok", "workspace"]
    assert created["properties"]["user"] == {"$ref": "#/components/schemas/WorkspaceUser"}


def _fits(model: type[BaseModel], resp: Any, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    model.model_validate(body)
    return body


@pytest.fixture(scope="module")
def rx() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=SECRET)
    yield receiver
    receiver.close()


def test_live_channel_answers_fit(server: Server, rx: WebhookReceiver) -> None:
    ws = new_workspace(server)
    c = ws.client
    email = {"name": "m", "type": "email", "config": {"email": "noc@example.com"}}
    _fits(ChannelAnswer, c.post("/api/v1/channels", json=email), 201)
    ref = f"/api/v1/channels/{channel(c, rx.url('envelopes'))['id']}"
    _fits(ChannelPage, c.get("/api/v1/channels"))
    _fits(ChannelAnswer, c.get(ref))
    _fits(ChannelAnswer, c.patch(ref, json={"enabled": False}))
    test = _fits(ChannelTestAnswer, c.post(f"{ref}/test"))
    assert test["test"]["delivered"] is True
    log = _fits(DeliveryPage, c.get(f"{ref}/deliveries"))
    assert log["total"] == 1
    _fits(ChannelDeleted, c.delete(ref))


def test_live_collector_and_workspace_answers_fit(server: Server) -> None:
    ws = new_workspace(server)
    c = ws.client
    key = _fits(CollectorCreatedAnswer, c.post("/api/v1/collectors", json={"name": "k"}), 201)
    _fits(CollectorList, c.get("/api/v1/collectors"))
    _fits(CollectorAnswer, c.delete(f"/api/v1/collectors/{key['collector']['id']}"))
    _fits(WorkspaceAnswer, c.get("/api/v1/workspace"))
    plain = _fits(WorkspaceCreatedAnswer, c.post("/api/v1/workspaces", json={"name": "a"}), 201)
    assert "user" not in plain
    with_user = {"name": "b", "email": "noc@b.example"}
    sub = _fits(WorkspaceCreatedAnswer, c.post("/api/v1/workspaces", json=with_user), 201)
    assert WorkspaceCreatedAnswer.model_validate(sub).model_dump()["user"] == {
        "email": "noc@b.example",
        "welcome_email_sent": False,
    }
    _fits(WorkspacePage, c.get("/api/v1/workspaces"))
    uuid = sub["workspace"]["uuid"]
    _fits(WorkspaceDetailAnswer, c.get(f"/api/v1/workspaces/{uuid}"))
    gone = _fits(Deleted, c.delete(f"/api/v1/workspaces/{uuid}"))
    assert gone["deleted"] is True


def test_deleted_is_true_only() -> None:
    with pytest.raises(ValidationError):
        Deleted.model_validate({"ok": True, "deleted": False, "uuid": "x"})
    assert Deleted.model_fields["deleted"].annotation == Literal[True]
