"""The declarations the OpenAPI document is generated from (``api/openapi/operations.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from api.models import RequestModel, ResponseModel
from api.openapi.operations import (
    ModelRegistry,
    Route,
    answer,
    body,
    document_operations,
    operation,
)


class Thing(ResponseModel):
    name: str


class ThingCreate(RequestModel):
    name: str


def _table() -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.post("/things")
    @operation(
        "createThing",
        tag="Things",
        request_body=body("The new thing.", ThingCreate),
        answers={201: answer("Created.", {"type": "object", "properties": {"thing": Thing}})},
        errors=(400, 409),
    )
    async def create(request: web.Request) -> web.Response:
        """Create a thing

        Makes one.

        Twice, if asked."""
        raise AssertionError("never served here")

    @routes.get("/undocumented")
    async def plain(request: web.Request) -> web.Response:
        raise AssertionError("never served here")

    return routes


def test_a_decorated_handler_becomes_its_operation() -> None:
    models: ModelRegistry = {}
    paths = document_operations([_table()], [], models)
    assert list(paths) == ["/things"], "an undecorated handler is left to the hand-written part"
    op: dict[str, Any] = paths["/things"]["post"]
    assert op["summary"] == "Create a thing"
    assert op["description"] == "Makes one.\n\nTwice, if asked."
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ThingCreate"
    }
    created = op["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["properties"]["thing"] == {"$ref": "#/components/schemas/Thing"}
    # a deploy-token operation: its own errors plus those every such operation can answer
    assert set(op["responses"]) == {"201", "400", "401", "409", "429", "500", "503"}
    assert "X-RateLimit-Limit" in op["responses"]["201"]["headers"]
    assert models == {
        "ThingCreate": (ThingCreate, "validation"),
        "Thing": (Thing, "serialization"),
    }


def test_an_operation_without_token_has_no_rate_headers_and_only_its_errors() -> None:
    declared = operation(
        "ping",
        tag="Health",
        summary="Ping",
        security=[],
        answers={200: answer("Pong.", Thing)},
        errors=(503,),
        standard_errors=False,
    )
    paths = document_operations([], [Route("GET", "/ping", declared)], {})
    op = paths["/ping"]["get"]
    assert op["security"] == []
    assert set(op["responses"]) == {"200", "503"}
    assert "headers" not in op["responses"]["200"]


def test_one_model_cannot_document_a_body_and_an_answer() -> None:
    declared = operation(
        "echo",
        tag="Things",
        summary="Echo",
        request_body=body("In.", Thing),
        answers={200: answer("Out.", Thing)},
    )
    with pytest.raises(ValueError, match="two schemas"):
        document_operations([], [Route("POST", "/echo", declared)], {})


def test_a_path_and_method_declared_twice_is_refused() -> None:
    declared = operation("a", tag="Things", summary="A", answers={200: answer("A.", Thing)})
    twice = [Route("GET", "/a", declared), Route("GET", "/a", declared)]
    with pytest.raises(ValueError, match="declared twice"):
        document_operations([], twice, {})


def test_an_operation_needs_a_summary() -> None:
    declared = operation("b", tag="Things", answers={200: answer("B.", Thing)})
    with pytest.raises(ValueError, match="no summary"):
        document_operations([], [Route("GET", "/b", declared)], {})


def test_every_503_code_the_server_raises_is_documented() -> None:
    """The shared ``Unavailable`` answer lists every ``error.code`` a 503 can carry: the codes
    are read from the ``ApiError(503, "<code>", ...)`` calls in the source, so a new one that
    is not documented fails here."""
    import re
    from pathlib import Path

    from api.openapi.build import responses

    root = Path(__file__).resolve().parents[1]
    raised: set[str] = set()
    for package in ("api", "ingest", "notify", "store"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            raised |= set(re.findall(r'ApiError\(\s*503,\s*"([a-z_]+)"', text))
    assert {"unavailable", "overloaded"} <= raised
    schema = responses()["Unavailable"]["content"]["application/json"]["schema"]
    code = schema["allOf"][1]["properties"]["error"]["properties"]["code"]
    documented = set(code.get("enum", [code.get("const")]))
    assert raised <= documented, sorted(raised - documented)
