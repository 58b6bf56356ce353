"""Operations still written by hand (issue 12 moves each next to its route)."""

from __future__ import annotations

from typing import Any

from ingest.receiver import CONTENT_TYPE as ARROW_STREAM
from ingest.schema import KINDS, WIRE_VERSION
from store.analytics import RANGES
from store.incidents import INCIDENT_STATUSES, SEVERITIES
from store.nodes import (
    NODE_STATUSES,
)

from .build import (
    HEX64,
    MAX_OFFSET,
    Schema,
    envelope,
    error_answer,
    error_answers,
    integer,
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
        "/api/v1/channels": {
            "get": {
                "tags": ["Channels"],
                "operationId": "listChannels",
                "summary": "List notification channels",
                "parameters": [param_ref("ChannelLimit"), param_ref("Offset")],
                "responses": {
                    "200": ok_answer(
                        "A page of channels.",
                        page("channels", "Channel", "Channels, oldest first."),
                    ),
                    **error_answers(400),
                },
            },
            "post": {
                "tags": ["Channels"],
                "operationId": "createChannel",
                "summary": "Create a notification channel",
                "requestBody": json_body("ChannelCreate", "The new channel."),
                "responses": {
                    "201": ok_answer(
                        "The channel was created.", envelope({"channel": ref("Channel")})
                    ),
                    **error_answers(400, 402, 413),
                },
            },
        },
        "/api/v1/channels/{id}": {
            "parameters": [param_ref("ChannelRef")],
            "get": {
                "tags": ["Channels"],
                "operationId": "getChannel",
                "summary": "Get a notification channel",
                "responses": {
                    "200": ok_answer("The channel.", envelope({"channel": ref("Channel")})),
                    **error_answers(404),
                },
            },
            "delete": {
                "tags": ["Channels"],
                "operationId": "deleteChannel",
                "summary": "Delete a notification channel",
                "description": "Permanent.",
                "responses": {
                    "200": ok_answer(
                        "The channel was deleted.",
                        envelope(
                            {"deleted": {"const": True}, "id": integer(1), "uuid": ref("Uuid")}
                        ),
                    ),
                    **error_answers(402, 404),
                },
            },
            "patch": {
                "tags": ["Channels"],
                "operationId": "updateChannel",
                "summary": "Change a notification channel",
                "description": "Enable or disable it, rename it, change its config or filters. "
                "Errors name the field (`config.url`, `name`, ...).",
                "requestBody": json_body("ChannelUpdate", "What to change."),
                "responses": {
                    "200": ok_answer(
                        "The channel as it is now.", envelope({"channel": ref("Channel")})
                    ),
                    **error_answers(400, 402, 404, 413),
                },
            },
        },
        "/api/v1/channels/{id}/deliveries": {
            "parameters": [param_ref("ChannelRef")],
            "get": {
                "tags": ["Channels"],
                "operationId": "listChannelDeliveries",
                "summary": "The channel's delivery log",
                "description": "Every attempt to deliver an alert to this channel, newest "
                "first: when, the outcome, the HTTP status or SMTP reply, the error and the "
                "latency.",
                "parameters": [param_ref("Limit"), param_ref("Offset")],
                "responses": {
                    "200": ok_answer(
                        "A page of the delivery log.",
                        envelope(
                            {
                                "channel_id": integer(1),
                                "deliveries": {"type": "array", "items": ref("Delivery")},
                                "total": integer(description="Attempts logged for the channel."),
                                "limit": integer(1, maximum=100),
                                "offset": integer(maximum=MAX_OFFSET),
                            }
                        ),
                    ),
                    **error_answers(400, 404),
                },
            },
        },
        "/api/v1/channels/{id}/test": {
            "parameters": [param_ref("ChannelRef")],
            "post": {
                "tags": ["Channels"],
                "operationId": "testChannel",
                "summary": "Send a test alert now",
                "description": "One `test` event, sent at once (enabled or not, whatever its "
                "filters), never retried, logged like any delivery. The answer is `200` "
                "whether the service accepted it or not: `test.delivered` says which.",
                "responses": {
                    "200": ok_answer(
                        "What the attempt did.",
                        envelope({"channel_id": integer(1), "test": ref("ChannelTestResult")}),
                    ),
                    **error_answers(402, 404),
                },
            },
        },
        "/api/v1/collectors": {
            "get": {
                "tags": ["Telemetry"],
                "operationId": "listCollectors",
                "summary": "List collector keys",
                "description": "All of the workspace's collector keys, revoked ones too, oldest "
                "first. The keys themselves are never shown again.",
                "responses": {
                    "200": ok_answer(
                        "The collector keys.",
                        envelope(
                            {
                                "collectors": {"type": "array", "items": ref("Collector")},
                                "total": integer(),
                            }
                        ),
                    ),
                    **error_answers(),
                },
            },
            "post": {
                "tags": ["Telemetry"],
                "operationId": "createCollector",
                "summary": "Create a collector key",
                "requestBody": json_body("CollectorCreate", "The new key's label."),
                "responses": {
                    "201": ok_answer(
                        "The key was created.", envelope({"collector": ref("CollectorCreated")})
                    ),
                    **error_answers(400, 402, 413),
                },
            },
        },
        "/api/v1/collectors/{id}": {
            "parameters": [param_ref("CollectorId")],
            "delete": {
                "tags": ["Telemetry"],
                "operationId": "revokeCollector",
                "summary": "Revoke a collector key",
                "description": "The key stops working within `ingest.auth_cache_secs`. Revoking "
                "a revoked key changes nothing.",
                "responses": {
                    "200": ok_answer("The revoked key.", envelope({"collector": ref("Collector")})),
                    **error_answers(402, 404),
                },
            },
        },
        "/api/v1/workspace": {
            "get": {
                "tags": ["Workspaces"],
                "operationId": "getWorkspace",
                "summary": "Workspace info",
                "description": "The workspace the token belongs to.",
                "responses": {
                    "200": ok_answer("The workspace.", envelope({"workspace": ref("Workspace")})),
                    **error_answers(),
                },
            }
        },
        "/api/v1/workspaces": {
            "get": {
                "tags": ["Workspaces"],
                "operationId": "listSubWorkspaces",
                "summary": "List sub-workspaces",
                "description": "The caller's sub-workspaces, oldest first (top-level tokens only).",
                "parameters": [param_ref("Limit"), param_ref("Offset")],
                "responses": {
                    "200": ok_answer(
                        "A page of sub-workspaces.",
                        page("workspaces", "Workspace", "Sub-workspaces, oldest first."),
                    ),
                    **error_answers(400, 403),
                },
            },
            "post": {
                "tags": ["Workspaces"],
                "operationId": "createSubWorkspace",
                "summary": "Create a sub-workspace",
                "description": "For MSPs and resellers (top-level tokens only). Manage the new "
                "workspace's nodes with its own `deploy_token`. A `name` or `email` that a live "
                "sub-workspace of the caller already has (ignoring case) is `409 conflict`.",
                "requestBody": json_body("WorkspaceCreate", "The new sub-workspace."),
                "responses": {
                    "201": ok_answer(
                        "The sub-workspace was created.",
                        envelope(
                            {
                                "workspace": ref("WorkspaceCreated"),
                                "user": ref("WorkspaceUser"),
                            },
                            optional=("user",),
                        ),
                    ),
                    **error_answers(400, 402, 403, 409, 413),
                },
            },
        },
        "/api/v1/workspaces/{uuid}": {
            "parameters": [param_ref("WorkspaceUuid")],
            "get": {
                "tags": ["Workspaces"],
                "operationId": "getSubWorkspace",
                "summary": "Get a sub-workspace",
                "description": "A sub-workspace with its first 100 nodes.",
                "responses": {
                    "200": ok_answer(
                        "The sub-workspace.", envelope({"workspace": ref("WorkspaceDetail")})
                    ),
                    **error_answers(403, 404),
                },
            },
            "delete": {
                "tags": ["Workspaces"],
                "operationId": "deleteSubWorkspace",
                "summary": "Delete a sub-workspace",
                "description": "Deactivates the sub-workspace with its nodes, deploy tokens and "
                "collector keys.",
                "responses": {
                    "200": ok_answer("The sub-workspace was deleted.", deleted),
                    **error_answers(402, 403, 404),
                },
            },
        },
        "/api/v1/analytics/summary": {
            "get": {
                "tags": ["Analytics"],
                "operationId": "analyticsSummary",
                "summary": "Analytics summary",
                "parameters": [
                    {
                        "name": "range",
                        "in": "query",
                        "required": False,
                        "allowEmptyValue": True,
                        "schema": {"type": "string", "enum": list(RANGES), "default": "30d"},
                        "description": "Time range ending now. An empty value means `30d`.",
                    }
                ],
                "responses": {
                    "200": ok_answer("The summary.", ref("AnalyticsSummary")),
                    **error_answers(400),
                },
            }
        },
        "/api/v1/status": {
            "get": {
                "tags": ["Analytics"],
                "operationId": "statusOverview",
                "summary": "Status overview",
                "responses": {
                    "200": ok_answer("The overview.", ref("StatusOverview")),
                    **error_answers(),
                },
            }
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
        "/api/metrics": {
            "get": {
                "tags": ["Analytics"],
                "operationId": "workspaceMetrics",
                "summary": "Prometheus scrape of a workspace",
                "description": "The workspace's node counts, incidents and per-node gauges "
                "(`flowtriq_node_pps`, `_bps`, `_tcp_pct`, `_udp_pct`, `_icmp_pct`, "
                "`_connections`, `_baseline_avg_pps`, `_baseline_p95_pps`, `_baseline_p99_pps`, "
                "labels `node`, `ip`, `node_uuid`) in the Prometheus text format, from live "
                "state. The deploy token goes in the Authorization header or, for scrapers that "
                "cannot set one, in `?token=`.",
                "security": [{"deployToken": []}, {"tokenQuery": []}],
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **error_answers(),
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
