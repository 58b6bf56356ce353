"""Operations declared next to the routes that serve them.

A handler of a ``web.RouteTableDef`` carries its operation as a decorator, written under the
route decorator::

    @routes.get("/api/v1/incidents")
    @operation("listIncidents", tag="Incidents", answers={200: answer("A page.", IncidentPage)},
               errors=(400,), parameters=(param_ref("Limit"), param_ref("Offset")))
    async def list_incidents(request: web.Request) -> web.Response:
        \"\"\"List incidents

        The workspace's incidents, newest first.\"\"\"

The handler's docstring gives the summary (its first line) and the description (the rest)
unless the operation names them. Routes added imperatively (the Agent API, the telemetry
receiver, ``/metrics``) list theirs as :class:`Route` entries in a module-level ``OPERATIONS``
beside the code that adds them. Request bodies and answers name a model of ``api/models``
(a pydantic model or a ``TypedDict``), or give a JSON Schema where no model fits (an Arrow
stream, a free-form agent report); a model becomes a ``#/components/schemas`` entry under its
class name, in ``validation`` mode for a body and ``serialization`` mode for an answer.

:func:`document_operations` turns the declarations into ``paths``; ``tests/test_openapi.py``
checks that the document and the router name the same operations.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

from aiohttp import web
from pydantic.json_schema import JsonSchemaMode

from .build import Schema, error_answers, rate_headers, ref

__all__ = [
    "Answer",
    "Body",
    "ModelRegistry",
    "Operation",
    "Route",
    "answer",
    "body",
    "document_operations",
    "operation",
    "operation_of",
    "schema_of",
]

H = TypeVar("H", bound=Callable[..., Any])

_ATTRIBUTE = "__floodwatch_operation__"

ModelRegistry = dict[str, tuple[type[Any], JsonSchemaMode]]
"""Component name -> (model, mode): the models the documented operations use."""


def schema_of(value: Any, mode: JsonSchemaMode, models: ModelRegistry) -> Schema:
    """``value`` as a schema: a model class becomes a reference to its component (recorded in
    ``models``); a JSON Schema (a dict) is used as it is, its nested models resolved too."""
    if isinstance(value, dict):
        resolved: Schema = _resolve(value, mode, models)
        return resolved
    if isinstance(value, type):
        name = value.__name__
        known = models.get(name)
        if known is not None and known != (value, mode):
            raise ValueError(
                f"component {name} is used as two schemas ({known[1]} of {known[0]!r} and "
                f"{mode} of {value!r}): declare one model per direction"
            )
        models[name] = (value, mode)
        return ref(name)
    raise TypeError(f"not a model or a schema: {value!r}")


def _resolve(item: Any, mode: JsonSchemaMode, models: ModelRegistry) -> Any:
    if isinstance(item, type):
        return schema_of(item, mode, models)
    if isinstance(item, dict):
        return {key: _resolve(value, mode, models) for key, value in item.items()}
    if isinstance(item, list):
        return [_resolve(value, mode, models) for value in item]
    return item


@dataclass(frozen=True)
class Answer:
    """One success answer: its description and its body (a model or a JSON Schema)."""

    description: str
    schema: Any
    content_type: str = "application/json"
    headers: Mapping[str, Any] | None = None
    """``None``: the rate-limit headers of a deploy-token answer when the operation is
    authenticated by one; otherwise these headers (``{}`` for none)."""


def answer(
    description: str,
    schema: Any,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, Any] | None = None,
) -> Answer:
    return Answer(description, schema, content_type, headers)


@dataclass(frozen=True)
class Body:
    """A request body: a model or a JSON Schema, and what it is."""

    description: str
    schema: Any
    content_type: str = "application/json"
    required: bool = True


def body(
    description: str, schema: Any, *, content_type: str = "application/json", required: bool = True
) -> Body:
    return Body(description, schema, content_type, required)


@dataclass(frozen=True)
class Operation:
    """One operation of the document; use it as a decorator on the handler that serves it."""

    operation_id: str
    tag: str
    answers: Mapping[int, Answer]
    errors: Mapping[str, Any]
    summary: str = ""
    description: str = ""
    request_body: Body | None = None
    parameters: tuple[Any, ...] = ()
    security: list[dict[str, list[str]]] | None = None
    """``None``: the document's default (a deploy token)."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, handler: H) -> H:
        summary, description = _from_docstring(handler)
        declared = replace(
            self,
            summary=self.summary or summary,
            description=self.description or description,
        )
        setattr(handler, _ATTRIBUTE, declared)
        return handler

    def document(self, models: ModelRegistry) -> dict[str, Any]:
        if not self.summary:
            raise ValueError(f"{self.operation_id}: no summary (give one or a docstring)")
        out: dict[str, Any] = {
            "tags": [self.tag],
            "operationId": self.operation_id,
            "summary": self.summary,
        }
        if self.description:
            out["description"] = self.description
        if self.security is not None:
            out["security"] = self.security
        if self.parameters:
            out["parameters"] = [_resolve(p, "validation", models) for p in self.parameters]
        if self.request_body is not None:
            b = self.request_body
            out["requestBody"] = {
                "required": b.required,
                "description": b.description,
                "content": {b.content_type: {"schema": schema_of(b.schema, "validation", models)}},
            }
        responses: dict[str, Any] = {}
        deploy_token = self.security is None
        for status, a in sorted(self.answers.items()):
            response: dict[str, Any] = {
                "description": a.description,
                "content": {
                    a.content_type: {"schema": schema_of(a.schema, "serialization", models)}
                },
            }
            headers = (
                a.headers if a.headers is not None else (rate_headers() if deploy_token else {})
            )
            if headers:
                response["headers"] = dict(headers)
            responses[str(status)] = response
        responses.update(self.errors)
        out["responses"] = dict(sorted(responses.items()))
        out.update(self.extra)
        return out


def operation(
    operation_id: str,
    *,
    tag: str,
    answers: Mapping[int, Answer],
    errors: Iterable[int] = (),
    standard_errors: bool = True,
    error_overrides: Mapping[int, Mapping[str, Any]] | None = None,
    summary: str = "",
    description: str = "",
    request_body: Body | None = None,
    parameters: Iterable[Any] = (),
    security: list[dict[str, list[str]]] | None = None,
    **extra: Any,
) -> Operation:
    """An operation. ``errors`` are its error statuses; with ``standard_errors`` (a deploy-token
    operation) 401, 429, 500 and 503 are added, as every such operation can answer them.
    ``error_overrides`` gives a status its own answer instead of the shared one (a 400 that is
    ``InvalidBatch``, a 403 with its own description)."""
    statuses = tuple(errors)
    if standard_errors:
        error_map = error_answers(*statuses)
    else:
        error_map = {s: v for s, v in error_answers(*statuses).items() if int(s) in statuses}
    for status, response in (error_overrides or {}).items():
        error_map[str(status)] = dict(response)
    return Operation(
        operation_id=operation_id,
        tag=tag,
        answers=answers,
        errors=error_map,
        summary=summary,
        description=description,
        request_body=request_body,
        parameters=tuple(parameters),
        security=security,
        extra=extra,
    )


def _from_docstring(handler: Callable[..., Any]) -> tuple[str, str]:
    text = inspect.getdoc(handler) or ""
    first, _, rest = text.partition("\n")
    paragraphs = (" ".join(part.split()) for part in rest.split("\n\n"))
    return first.strip(), "\n\n".join(p for p in paragraphs if p)


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    return getattr(handler, _ATTRIBUTE, None)


class Route(NamedTuple):
    """An operation of a route added imperatively (``router.add_post``), declared beside it."""

    method: str
    path: str
    operation: Operation


def document_operations(
    tables: Iterable[web.RouteTableDef], routes: Iterable[Route], models: ModelRegistry
) -> dict[str, dict[str, Any]]:
    """``paths`` of the document: every decorated handler of ``tables`` and every ``routes``
    entry, in the order declared."""
    found: list[Route] = []
    for table in tables:
        for definition in table:
            if not isinstance(definition, web.RouteDef):
                continue
            declared = operation_of(definition.handler)
            if declared is not None:
                found.append(Route(definition.method, definition.path, declared))
    found.extend(routes)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, declared in found:
        item = paths.setdefault(path, {})
        key = method.lower()
        if key in item:
            raise ValueError(f"{method} {path} is declared twice")
        item[key] = declared.document(models)
    return paths
