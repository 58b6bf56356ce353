"""The OpenAPI 3.1 document of REST v1, the Deploy API, the Agent API, binary telemetry, metrics and
the health check, generated from the route table and the typed models of ``api/models``.

Each operation is declared next to the route that serves it (:mod:`.operations`): the handler's
docstring gives its summary and description, its request body and answers name models, whose
schemas become the components. The shared pieces (error answers, rate-limit headers, page
parameters, the error envelope and the value types models refer to by name) are in
:mod:`.build`.
``tests/test_openapi.py`` compares the documented operations with the router and fuzzes the
live server against this document.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..models import component_schemas
from . import build
from .operations import ModelRegistry, Route, document_operations

__all__ = ["openapi_document"]

_DESCRIPTION = """\
REST v1, the Deploy API, binary telemetry, metrics and the health check of a Floodwatch server.

REST v1 and the Deploy API take a workspace deploy token, `Authorization: Bearer <token>`;
binary telemetry takes a node API key or a collector key the same way, and `/metrics` the
server's `server.metrics_token` (from addresses other than loopback only). Answers are JSON
(except `/metrics`). Success answers carry `"ok": true` next to their payload; failures carry
`{"ok": false, "error": {"code", "message", "field"?}}` with the status listed per operation.
Any other method on a documented path gets 405 `method_not_allowed` with an `Allow` header; an
unknown path gets 404 `not_found`. Malformed HTTP, or a request line or header over 8190 bytes,
is refused by the HTTP layer before any of this, with a plain-text 400.

Each deploy token may make `api.rate_limit_per_minute` requests (1000 by default) per wall-clock
minute; its answers carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
An address with too many failed authentications (`api.auth_failures_per_minute`, 600 by default)
gets 429 for the rest of the minute. Writes (POST, PATCH, DELETE) need an active subscription.
Timestamps are UTC in ISO 8601 with a `Z` suffix."""


def _declared_routes() -> list[Route]:
    """The ``OPERATIONS`` of the modules that declare theirs beside imperatively added routes."""
    from .. import agentapi, metrics
    from ..routes import health, telemetry

    return [
        *health.OPERATIONS,
        *telemetry.OPERATIONS,
        *metrics.OPERATIONS,
        *agentapi.OPERATIONS,
    ]


def openapi_document(public_url: str = "") -> dict[str, Any]:
    # imported here: the route modules import this package for their declarations
    from .. import agentapi
    from ..routes import ROUTE_TABLES

    models: ModelRegistry = {}
    tables = [*ROUTE_TABLES, *agentapi.ROUTE_TABLES]
    paths = document_operations(tables, _declared_routes(), models)
    schemas = build.shared_schemas()
    for name, schema in component_schemas(models).items():
        schemas.setdefault(name, schema)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Floodwatch API",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "Deploy", "description": "Node registration with a deploy token."},
            {"name": "Nodes", "description": "Monitored servers."},
            {"name": "Incidents", "description": "Attacks, from start to resolution."},
            {"name": "Channels", "description": "Where alerts are sent."},
            {"name": "Workspaces", "description": "The caller's workspace and sub-workspaces."},
            {"name": "Analytics", "description": "Aggregates for dashboards and status pages."},
            {"name": "Telemetry", "description": "Binary telemetry and its collector keys."},
            {"name": "Health", "description": "Unauthenticated checks and this document."},
            {"name": "Agent", "description": "The ftagent Agent API (node API key)."},
            {
                "name": "Agent control",
                "description": "Steering ftagent agents: config overrides, remote commands.",
            },
            {"name": "Detection", "description": "Floodwatch's own detector: its settings."},
        ],
        "security": [{"deployToken": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "deployToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A workspace deploy token (64 hex characters). Create one "
                    "with `floodwatch token create`.",
                },
                "nodeKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A node's API key, sent with that node's `X-Node-UUID`.",
                },
                "tokenQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "A workspace deploy token in the query string (only "
                    "`GET /api/metrics` accepts it).",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's `server.metrics_token`; `/metrics` asks for it "
                    "only of connections that are not from a loopback address.",
                },
                "ingestKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A node's API key (sends that node's rows) or a collector key "
                    "(sends rows of any node of its workspace).",
                },
            },
            "schemas": schemas,
            "parameters": build.parameters(),
            "headers": build.headers(),
            "responses": build.responses(),
        },
    }
    if public_url:
        doc["servers"] = [{"url": public_url}]
    return doc
