"""Operations still written by hand (issue 12 moves each next to its route)."""

from __future__ import annotations

from typing import Any

from ingest.receiver import CONTENT_TYPE as ARROW_STREAM
from ingest.schema import KINDS, WIRE_VERSION
from store.incidents import INCIDENT_STATUSES, SEVERITIES
from store.nodes import (
    NODE_STATUSES,
)

from .build import (
    HEX64,
    Schema,
    envelope,
    error_answer,
    error_answers,
    json_body,
    nullable,
    obj,
    ok_answer,
    page,
    param_ref,
    query_filter,
    ref,
)
from .legacy_agent import agent_admin_paths, agent_paths


def legacy_paths() -> dict[str, Any]:
    node_answer = envelope({"node": ref("NodeDetail")})
    deleted = envelope({"deleted": {"const": True}, "uuid": ref("Uuid")})

    paths: dict[str, Any] = {
        "/api/deploy": {
            "post": {
                "tags": ["Deploy"],
                "operationId": "deployNode",
                "summary": "Register a node (Deploy API)",
                "description": "Registers a node with the workspace's deploy token and returns "
                "its agent API key. Answers 200, not 201, as the hosted service does.",
                "requestBody": json_body("DeployRequest", "The new node."),
                "responses": {
                    "200": ok_answer(
                        "The node was registered.",
                        envelope(
                            {
                                "node_uuid": ref("Uuid"),
                                "api_key": {**HEX64, "description": "Shown only here."},
                                "name": {"type": "string"},
                                "ip": {"type": "string"},
                            }
                        ),
                    ),
                    **error_answers(400, 402, 409, 413),
                },
            }
        },
        "/api/v1/nodes": {
            "get": {
                "tags": ["Nodes"],
                "operationId": "listNodes",
                "summary": "List nodes",
                "description": "The workspace's nodes, oldest first.",
                "parameters": [
                    param_ref("Limit"),
                    param_ref("Offset"),
                    query_filter("status", NODE_STATUSES, "Only nodes in this state."),
                ],
                "responses": {
                    "200": ok_answer(
                        "A page of nodes.", page("nodes", "Node", "Nodes, oldest first.")
                    ),
                    **error_answers(400),
                },
            },
            "post": {
                "tags": ["Nodes"],
                "operationId": "createNode",
                "summary": "Create a node",
                "description": "Like the Deploy API, but answers with the full node.",
                "requestBody": json_body("NodeCreate", "The new node."),
                "responses": {
                    "201": ok_answer(
                        "The node was created.", envelope({"node": ref("NodeCreated")})
                    ),
                    **error_answers(400, 402, 409, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}": {
            "parameters": [param_ref("NodeUuid")],
            "get": {
                "tags": ["Nodes"],
                "operationId": "getNode",
                "summary": "Get a node",
                "description": "One node with its baseline traffic and protocol breakdown.",
                "responses": {"200": ok_answer("The node.", node_answer), **error_answers(404)},
            },
            "patch": {
                "tags": ["Nodes"],
                "operationId": "updateNode",
                "summary": "Update a node",
                "requestBody": json_body("NodeUpdate", "The fields to change."),
                "responses": {
                    "200": ok_answer("The updated node.", node_answer),
                    **error_answers(400, 402, 404, 409, 413),
                },
            },
            "delete": {
                "tags": ["Nodes"],
                "operationId": "deleteNode",
                "summary": "Delete a node",
                "description": "Soft delete: the node disappears from listings and its API key "
                "stops working; its incidents stay readable. Cannot be undone through the API.",
                "responses": {
                    "200": ok_answer("The node was deleted.", deleted),
                    **error_answers(402, 404),
                },
            },
        },
        "/api/v1/incidents": {
            "get": {
                "tags": ["Incidents"],
                "operationId": "listIncidents",
                "summary": "List incidents",
                "description": "Incidents of every node, newest first.",
                "parameters": [
                    param_ref("Limit"),
                    param_ref("Offset"),
                    query_filter("status", INCIDENT_STATUSES, "Only incidents in this state."),
                    query_filter("severity", SEVERITIES, "Only incidents of this severity."),
                    {
                        "name": "node",
                        "in": "query",
                        "required": False,
                        "allowEmptyValue": True,
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "Only incidents of this node. An empty value means no "
                        "filter.",
                    },
                ],
                "responses": {
                    "200": ok_answer(
                        "A page of incidents.",
                        page("incidents", "Incident", "Incidents, newest first."),
                    ),
                    **error_answers(400),
                },
            }
        },
        "/api/v1/incidents/{ref}": {
            "parameters": [param_ref("IncidentRef")],
            "get": {
                "tags": ["Incidents"],
                "operationId": "getIncident",
                "summary": "Get an incident",
                "description": "Full detail: protocol breakdown, origin, top sources and ports, "
                "summary.",
                "responses": {
                    "200": ok_answer(
                        "The incident.", envelope({"incident": ref("IncidentDetail")})
                    ),
                    **error_answers(404),
                },
            },
        },
        "/api/v1/telemetry/{kind}": {
            "post": {
                "tags": ["Telemetry"],
                "operationId": "sendTelemetry",
                "summary": "Send a binary telemetry batch",
                "description": "One Arrow IPC stream of `kind` rows (see docs/wire-format.md). "
                "Answers 202 once the batch is durable. The path, Content-Type and headers are "
                "checked before the key, so 400, 404 and 415 may come first. Keys have no request "
                "limit (under load the answer is 503 with `Retry-After`), but failed keys count "
                "towards the address's failed authentications, as on the REST API.",
                "security": [{"ingestKey": []}],
                "parameters": [
                    {
                        "name": "kind",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(KINDS)},
                        "description": "What one row is: a node's second (`metrics`) or a "
                        "sampled packet (`flows`).",
                    },
                    {
                        "name": "X-Batch-Id",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                        "description": "Unique per batch of the sender; a batch re-sent with the "
                        "same id by the same key is stored once.",
                    },
                    {
                        "name": "X-Floodwatch-Wire-Version",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "enum": [str(WIRE_VERSION)]},
                        "description": "Wire format version; others are refused.",
                    },
                    {
                        "name": "X-Node-UUID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "With a node key: must be that key's node (else 403).",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "description": "An Arrow IPC stream (schema, record batches, end marker).",
                    "content": {
                        ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "202": {
                        "description": "Stored, or recognised as a re-sent batch.",
                        "content": {"application/json": {"schema": ref("TelemetryAccepted")}},
                    },
                    **{
                        str(status): {"$ref": f"#/components/responses/{name}"}
                        for status, name in [
                            (400, "InvalidBatch"),
                            (401, "Unauthorized"),
                            (403, "Forbidden"),
                            (404, "NotFound"),
                            (413, "PayloadTooLarge"),
                            (415, "UnsupportedMediaType"),
                            (429, "RateLimited"),
                            (500, "InternalError"),
                            (503, "Unavailable"),
                        ]
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["Health"],
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "description": "The server's own counters, gauges and histograms (ingest "
                "pipeline, Agent API, alerts) in the Prometheus text format; labels never "
                "carry node ids or addresses. Answered without a token when the connection "
                "comes from a loopback address (127.0.0.0/8, ::1) and carries no proxy header "
                "(`Forwarded`, `X-Forwarded-For`, `X-Real-IP`). Any other request needs "
                "`Authorization: Bearer <server.metrics_token>`: 401 without it or with a "
                "wrong one, 403 when no `server.metrics_token` is configured. The address is "
                "the connection's, never a forwarding header's.",
                "security": [{}, {"metricsToken": []}],
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": error_answer(
                        "Not from a loopback address (or through a proxy), and no "
                        "`server.metrics_token` is configured: nothing the caller sends helps.",
                        ("forbidden",),
                    ),
                    "429": {"$ref": "#/components/responses/RateLimited"},
                },
            }
        },
    }
    paths.update(agent_paths())
    paths.update(agent_admin_paths())
    paths.update(_detection_paths())
    from ..agentapi.pcap import OPENAPI_PATHS  # local import: the route module imports us

    paths.update(OPENAPI_PATHS)
    return paths


# ------------------------------------------------------------------- detection settings (REST)


def _detection_settings_schema(*, partial: bool) -> Schema:
    from detect.settings import (
        FLOAT_BOUNDS,
        INT_BOUNDS,
        SENSITIVITY,
        SERIES_NAMES,
        DetectionSettings,
    )

    defaults = DetectionSettings()
    props: dict[str, Schema] = {
        "enabled": {
            "type": "boolean",
            "description": "Detect on this workspace's or node's traffic at all.",
        },
        "sensitivity": {
            "enum": list(SENSITIVITY),
            "description": "Scales every relative threshold: low asks for more excess over "
            "the baseline, high for less.",
        },
    }
    docs = {
        "multiplier": "Smallest over-baseline factor that counts as attack evidence when the "
        "traffic mix changed too (a same-mix rise needs twice this).",
        "floor_pps": "Absolute floor: seconds below this pps (and below floor_bps) never count.",
        "floor_bps": "Absolute floor in bits per second.",
        "confirm_seconds": "Most consecutive anomalous seconds a moderate excess needs before "
        "an incident opens (large excesses open sooner).",
        "hold_down_secs": "Normal seconds needed before an incident resolves.",
        "bridge_secs": "An incident stays open this long after its last attack second, so a "
        "pulsed attack is one incident.",
        "cooldown_secs": "After a resolve, a new incident on the node needs full confirmation "
        "for this long.",
        "late_window_secs": "How late (event time) a row may arrive and still be counted.",
        "silence_expiry_secs": "An incident whose node sends nothing this long resolves "
        "(ended_reason no_data).",
        "update_interval_secs": "Fewest seconds between two updates of one incident.",
    }
    for name, (lo, hi) in INT_BOUNDS.items():
        props[name] = {
            "type": "integer",
            "minimum": lo,
            "maximum": hi,
            "description": docs.get(name, ""),
        }
    for name, (flo, fhi) in FLOAT_BOUNDS.items():
        props[name] = {
            "type": "number",
            "minimum": flo,
            "maximum": fhi,
            "description": docs.get(name, ""),
        }
    series_value: Schema = {"type": ["boolean", "null"]} if partial else {"type": "boolean"}
    props["series"] = {
        "type": "object",
        "description": "Series on (true) or off (false); pps and bps cannot both be off.",
        "propertyNames": {"enum": list(SERIES_NAMES)},
        "additionalProperties": series_value,
    }
    for name, schema in props.items():
        if hasattr(defaults, name) and name != "series":
            schema["default"] = getattr(defaults, name)
    if partial:
        props = {
            k: nullable(v) if k != "series" else {**v, "type": ["object", "null"]}
            for k, v in props.items()
        }
        return {"type": "object", "properties": props, "additionalProperties": False}
    return obj(props)


def _detection_paths() -> dict[str, Any]:
    full = _detection_settings_schema(partial=False)
    partial = _detection_settings_schema(partial=True)
    answer = envelope(
        {
            "detection": {**full, "description": "The effective settings."},
            "overrides": {**partial, "description": "What is set at this level."},
            "inherited": {
                **full,
                "description": "What applies without this level's "
                "overrides (the defaults, or the workspace's settings for a node).",
            },
        }
    )
    body = {
        "required": True,
        "description": "Settings to override; null removes an override (inside series too). "
        "Unknown keys, wrong types and values out of bounds are 400 naming the field. Takes "
        "effect at once.",
        "content": {"application/json": {"schema": partial}},
    }
    tags = ["Detection"]
    return {
        "/api/v1/workspace/detection": {
            "get": {
                "tags": tags,
                "operationId": "getWorkspaceDetection",
                "summary": "Detection settings of the workspace",
                "responses": {"200": ok_answer("The settings.", answer), **error_answers()},
            },
            "patch": {
                "tags": tags,
                "operationId": "patchWorkspaceDetection",
                "summary": "Change the workspace's detection settings",
                "requestBody": body,
                "responses": {
                    "200": ok_answer("The settings.", answer),
                    **error_answers(400, 402, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}/detection": {
            "parameters": [param_ref("NodeUuid")],
            "get": {
                "tags": tags,
                "operationId": "getNodeDetection",
                "summary": "Detection settings of one node",
                "responses": {"200": ok_answer("The settings.", answer), **error_answers(404)},
            },
            "patch": {
                "tags": tags,
                "operationId": "patchNodeDetection",
                "summary": "Change one node's detection settings",
                "requestBody": body,
                "responses": {
                    "200": ok_answer("The settings.", answer),
                    **error_answers(400, 402, 404, 413),
                },
            },
        },
    }
