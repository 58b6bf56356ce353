"""The Agent API operations and the agent settings operators change, still written by hand."""

from __future__ import annotations

from typing import Any

from ..agentapi.report_repo import REPORT_KINDS
from .build import (
    ERROR_RESPONSES,
    MAX_OFFSET,
    TIMESTAMP,
    Schema,
    envelope,
    error_answers,
    integer,
    nullable,
    obj,
    ok_answer,
    param_ref,
    query_filter,
    ref,
)


def agent_admin_paths() -> dict[str, Any]:
    from ..agentapi.settings_repo import COMMAND_TYPES, SETTINGS

    overrides: Schema = {
        "type": "object",
        "description": "Agent config overrides (keys of GET /api/v1/agent/config).",
        "propertyNames": {"enum": sorted(SETTINGS)},
    }
    answer: Schema = {
        "type": "object",
        "required": ["ok", "agent_config"],
        "properties": {"ok": {"const": True}, "agent_config": overrides},
    }
    patch_body = {
        "required": True,
        "description": "Overrides to set; null removes one; objects (flow, l7) merge by key, "
        'and null for a key inside one removes that key (`{"l7": {"action": null}}`).',
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    command: Schema = {
        "type": "object",
        "required": ["id", "command_type", "command_text", "status", "created_at"],
        "properties": {
            "id": integer(1),
            "node_uuid": ref("Uuid"),
            "command_type": {"enum": list(COMMAND_TYPES)},
            "command_text": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "status": {
                "enum": ["pending", "applied", "failed", "cancelled"],
                "description": "pending until the agent acks (applied or failed); cancelled: a "
                "mitigation withdrawn, unacknowledged, when its incident ended.",
            },
            "incident_uuid": {"anyOf": [ref("Uuid"), {"type": "null"}]},
            "undo_command_text": {
                "type": ["string", "null"],
                "description": "Queued as a command of its own when the incident ends.",
            },
            "undo_command_id": {
                "type": ["integer", "null"],
                "description": "The id of that undo command once queued.",
            },
            "undo_of": {
                "type": ["integer", "null"],
                "description": "On an undo command: the mitigation it takes back.",
            },
            "cancelled_at": {"anyOf": [ref("Timestamp"), {"type": "null"}]},
            "ack_status": {"type": ["string", "null"]},
            "ack_error": {"type": ["string", "null"]},
            "acked_at": {"anyOf": [ref("Timestamp"), {"type": "null"}]},
            "created_at": ref("Timestamp"),
        },
    }
    command_body = {
        "required": True,
        "description": "A remote command for the node's agent (docs/agent-api.md §5.2).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["command_text"],
                    "additionalProperties": False,
                    "properties": {
                        "command_type": {"enum": list(COMMAND_TYPES), "default": "iptables"},
                        "command_text": {"type": "string", "minLength": 1, "maxLength": 16384},
                        "title": {"type": "string", "maxLength": 200},
                        "incident_uuid": {
                            **ref("Uuid"),
                            "description": "Makes the command a mitigation of this active "
                            "incident of the node: when the incident ends, its undo is queued "
                            "and, if the agent never acknowledged it, the command is withdrawn.",
                        },
                        "undo_command_text": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 16384,
                            "description": "The lines that take the mitigation back. For "
                            "iptables/ip6tables rules added with -A or -I it is derived (-D) "
                            "when omitted; ftagent itself only cleans up nft and xdp rules.",
                        },
                    },
                }
            }
        },
    }
    tags = ["Agent control"]
    return {
        "/api/v1/workspace/agent-config": {
            "get": {
                "tags": tags,
                "operationId": "getWorkspaceAgentConfig",
                "summary": "Agent config defaults of the workspace",
                "responses": {
                    "200": ok_answer("The workspace's overrides.", answer),
                    **error_answers(),
                },
            },
            "patch": {
                "tags": tags,
                "operationId": "patchWorkspaceAgentConfig",
                "summary": "Change the workspace's agent config defaults",
                "requestBody": patch_body,
                "responses": {
                    "200": ok_answer("The stored overrides.", answer),
                    **error_answers(400, 402, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}/agent-config": {
            "parameters": [param_ref("NodeUuid")],
            "get": {
                "tags": tags,
                "operationId": "getNodeAgentConfig",
                "summary": "Agent config overrides of one node",
                "responses": {
                    "200": ok_answer("The node's overrides.", answer),
                    **error_answers(404),
                },
            },
            "patch": {
                "tags": tags,
                "operationId": "patchNodeAgentConfig",
                "summary": "Change one node's agent config overrides",
                "requestBody": patch_body,
                "responses": {
                    "200": ok_answer("The stored overrides.", answer),
                    **error_answers(400, 402, 404, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}/commands": {
            "parameters": [param_ref("NodeUuid")],
            "get": {
                "tags": tags,
                "operationId": "listNodeCommands",
                "summary": "The node's newest 100 remote commands, with their acks",
                "responses": {
                    "200": ok_answer(
                        "The commands.",
                        {
                            "type": "object",
                            "required": ["ok", "commands", "total"],
                            "properties": {
                                "ok": {"const": True},
                                "commands": {"type": "array", "items": command, "maxItems": 100},
                                "total": integer(0),
                            },
                        },
                    ),
                    **error_answers(404),
                },
            },
            "post": {
                "tags": tags,
                "operationId": "createNodeCommand",
                "summary": "Queue a remote command for the node's agent",
                "description": "Delivered in pending_commands of GET /api/v1/agent/config until "
                "the agent acknowledges it.",
                "requestBody": command_body,
                "responses": {
                    "201": ok_answer(
                        "The queued command.",
                        {
                            "type": "object",
                            "required": ["ok", "command"],
                            "properties": {"ok": {"const": True}, "command": command},
                        },
                    ),
                    **error_answers(400, 402, 404, 409, 413),
                },
            },
        },
    }


# --------------------------------------------------------------------------- ftagent Agent API

_AGENT_ERRORS = (400, 401, 403, 413, 429, 500, 503)


def _agent_operation(
    operation_id: str, summary: str, description: str, ok: Schema, *, body: bool = True
) -> dict[str, Any]:
    statuses = _AGENT_ERRORS if body else (401, 403, 429, 500, 503)
    operation: dict[str, Any] = {
        "tags": ["Agent"],
        "operationId": operation_id,
        "summary": summary,
        "description": description
        + " Authenticated by the node's API key (`Authorization: Bearer`) plus `X-Node-UUID`, "
        "which must name that key's node (missing: 401, another node: 403). Overload is 503 "
        "with an integer `Retry-After`.",
        "security": [{"nodeKey": []}],
        "parameters": [
            {
                "name": "X-Node-UUID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The node's UUID; required in practice (401 without it).",
            }
        ],
        "responses": {
            "200": {
                "description": "Accepted.",
                "content": {"application/json": {"schema": ok}},
            },
            **{str(s): {"$ref": f"#/components/responses/{ERROR_RESPONSES[s]}"} for s in statuses},
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "description": "The agent's JSON object; unknown fields are kept or ignored.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


def agent_paths() -> dict[str, Any]:
    ok: Schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}
    with_uuid: Schema = {
        "type": "object",
        "required": ["ok", "uuid"],
        "properties": {"ok": {"const": True}, "uuid": ref("Uuid")},
    }
    config: Schema = {
        "type": "object",
        "required": ["flow", "l7", "service_ports", "pending_commands"],
        "properties": {
            "flow": {"type": "object"},
            "l7": {"type": "object"},
            "service_ports": {"type": "object"},
            "pending_commands": {"type": "array"},
        },
    }
    ref_param = {
        "name": "uuid",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        "description": "The incident uuid from the open, or one the agent made up (upserted).",
    }
    update = _agent_operation(
        "agentUpdateIncident",
        "Update an incident (ftagent)",
        "Merges the update into the node's incident; an unknown uuid creates it.",
        with_uuid,
    )
    update["parameters"] = [*update["parameters"], ref_param]
    resolve = _agent_operation(
        "agentResolveIncident",
        "Resolve an incident (ftagent)",
        "Resolves the node's incident (creating it when unknown); replays are merged.",
        with_uuid,
    )
    resolve["parameters"] = [*resolve["parameters"], ref_param]
    return {
        "/api/v1/agent/config": {
            "get": _agent_operation(
                "agentConfig",
                "Agent configuration (ftagent)",
                "The complete configuration object, not wrapped in an envelope.",
                config,
                body=False,
            )
        },
        "/api/v1/agent/heartbeat": {
            "post": _agent_operation(
                "agentHeartbeat",
                "Heartbeat (ftagent)",
                "Marks the node as seen now and records the agent version.",
                ok,
            )
        },
        "/api/v1/agent/metrics": {
            "post": _agent_operation(
                "agentMetrics",
                "Traffic metrics (ftagent)",
                "One metrics row, stamped on arrival, into the lake (source `ftagent`).",
                ok,
            )
        },
        "/api/v1/agent/incidents": {
            "post": _agent_operation(
                "agentOpenIncident",
                "Open an incident (ftagent)",
                "Opens an incident; a replayed open (same `started_at`, family and `inner_ip`) "
                "answers the existing uuid.",
                with_uuid,
            )
        },
        "/api/v1/agent/incidents/{uuid}": {"post": update},
        "/api/v1/agent/incidents/{uuid}/resolve": {"post": resolve},
        "/api/v1/agent/commands/ack": {
            "post": _agent_operation(
                "agentCommandAck",
                "Acknowledge a remote command (ftagent)",
                "Records the outcome of a command; duplicate acks are accepted.",
                ok,
            )
        },
        **_agent_report_paths(ok),
        "/api/v1/reports": {
            "get": {
                "tags": ["Nodes"],
                "operationId": "listAgentReports",
                "summary": "List agent reports",
                "description": "The reports the workspace's ftagent agents sent (GRE tunnels, VM "
                "stats, service-port metrics and blocks, L7 detection and metrics, mirror "
                "metrics), newest first. Identical consecutive reports of a node are one item "
                "with `repeats` counted; only the newest 500 of each kind are kept per node.",
                "parameters": [
                    param_ref("Limit"),
                    param_ref("Offset"),
                    query_filter("kind", REPORT_KINDS, "Only reports of this kind."),
                    {
                        "name": "node",
                        "in": "query",
                        "required": False,
                        "allowEmptyValue": True,
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "Only reports of this node. An empty value means no filter.",
                    },
                ],
                "responses": {
                    "200": ok_answer(
                        "A page of reports.",
                        envelope(
                            {
                                "reports": {
                                    "type": "array",
                                    "items": _AGENT_REPORT,
                                    "description": "Reports, newest first.",
                                },
                                "total": integer(
                                    description="Number of matching items across all pages."
                                ),
                                "limit": integer(1, maximum=100, description="The page size used."),
                                "offset": integer(
                                    maximum=MAX_OFFSET, description="The offset used."
                                ),
                            }
                        ),
                    ),
                    **error_answers(400),
                },
            }
        },
        "/api/v1/nodes/{uuid}/reports": {
            "parameters": [param_ref("NodeUuid")],
            "get": {
                "tags": ["Nodes"],
                "operationId": "latestNodeReports",
                "summary": "A node's latest agent reports",
                "description": "The newest report of each kind the node's ftagent sent, null "
                "for a kind it never sent. A node of another workspace is 404.",
                "responses": {
                    "200": ok_answer(
                        "The newest report of each kind.",
                        envelope(
                            {
                                "node_uuid": ref("Uuid"),
                                "reports": obj(
                                    {kind: nullable(_AGENT_REPORT) for kind in REPORT_KINDS}
                                ),
                            }
                        ),
                    ),
                    **error_answers(404),
                },
            },
        },
    }


_AGENT_REPORT: Schema = obj(
    {
        "id": integer(1, description="The report's id, increasing with arrival."),
        "node_uuid": ref("Uuid"),
        "kind": {"type": "string", "enum": list(REPORT_KINDS)},
        "received_at": {**TIMESTAMP, "description": "When the report first arrived."},
        "last_received_at": {
            **TIMESTAMP,
            "description": "When an identical report last arrived (replays, frozen totals).",
        },
        "repeats": integer(1, description="How many times this identical report arrived in a row."),
        "incident_ref": nullable(
            {"type": "string", "description": "`sp-blocks`: the agent's incident uuid."}
        ),
        "item_count": nullable(
            integer(description="Length of the report's main list (tunnels, vms, blocks, ...).")
        ),
        "summary": {
            "type": "object",
            "description": "The report's typed essentials, by kind (unusable values are null).",
        },
        "body": {"type": "object", "description": "The report as the agent sent it."},
    }
)

_REPORT_ENDPOINTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "gre-tunnels",
        "agentGreTunnels",
        "GRE tunnels (ftagent)",
        "Stores the node's tunnel inventory; answers the tunnels' remote endpoints as "
        "`whitelisted`.",
    ),
    ("vm-stats", "agentVmStats", "Per-VM traffic (ftagent)", "Stores the hypervisor VM totals."),
    (
        "sp/metrics",
        "agentSpMetrics",
        "Service-port metrics (ftagent)",
        "Stores the service-port traffic split.",
    ),
    (
        "sp/blocks",
        "agentSpBlocks",
        "Service-port blocks (ftagent)",
        "Stores the source blocks the agent just installed.",
    ),
    (
        "l7/detect",
        "agentL7Detect",
        "Web-server detection (ftagent)",
        "Stores the web-server discovery result or the log path now tailed; opens no incident.",
    ),
    (
        "l7/metrics",
        "agentL7Metrics",
        "HTTP metrics (ftagent)",
        "Stores the statistics of a 10 s window of access-log lines; opens no incident.",
    ),
    (
        "mirror-metrics",
        "agentMirrorMetrics",
        "Mirror metrics (ftagent)",
        "Stores the per-destination-IP snapshot of a mirror node.",
    ),
)


def _agent_report_paths(ok: Schema) -> dict[str, Any]:
    tolerance = (
        " Any JSON object is accepted (sparse, unknown fields kept, ints for floats); a known "
        "field of an impossible type is 400. An identical consecutive report counts as a repeat."
    )
    out: dict[str, Any] = {}
    for path, operation_id, summary, description in _REPORT_ENDPOINTS:
        answer = ok
        if path == "gre-tunnels":
            answer = {
                "type": "object",
                "required": ["ok", "whitelisted"],
                "properties": {
                    "ok": {"const": True},
                    "whitelisted": {"type": "array", "items": {"type": "string"}},
                },
            }
        out[f"/api/v1/agent/{path}"] = {
            "post": _agent_operation(operation_id, summary, description + tolerance, answer)
        }
    return out
