"""The OpenAPI 3.1 document of REST v1, the Deploy API, binary telemetry and the health check.

Written by hand from the handlers in ``api/routes``, except the schemas of the resources already
declared as typed models in ``api/models`` (issue 12; so far the notification channels, the
collector keys and the workspaces), which are generated from those models. Enumerations are taken
from the modules that enforce them, so they cannot drift; everything else is checked by
``tests/test_openapi.py``, which compares the documented operations with the router and fuzzes the
live server against this document.
"""

from __future__ import annotations

from typing import Any

from ingest.receiver import CONTENT_TYPE as ARROW_STREAM
from ingest.schema import KINDS, WIRE_VERSION
from store.agent_reports import REPORT_KINDS
from store.analytics import RANGES
from store.incidents import FORENSIC_FIELDS, INCIDENT_STATUSES, SEVERITIES
from store.nodes import (
    MAX_SERVICE_PORTS,
    NODE_STATUSES,
    PRIORITIES,
    SERVICE_PORT_PROTOCOLS,
    SP_RESPONSE_MODES,
    SP_SENSITIVITIES,
)

from . import __version__
from .models import channels as channel_models
from .models import collectors as collector_models
from .models import workspaces as workspace_models

__all__ = ["openapi_document"]

Schema = dict[str, Any]

MAX_OFFSET = 1_000_000_000

# --------------------------------------------------------------------------- schema helpers


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_UUID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}
_TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
    "description": "UTC, ISO 8601, whole seconds.",
    "examples": ["2026-08-01T09:00:00Z"],
}
# components that nullable fields copy inline, so that null is a plain type-array member
_INLINE = {"Uuid": _UUID, "Timestamp": _TIMESTAMP}


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null, as a type array (``["string", "null"]``) wherever possible."""
    name = schema.get("$ref", "").rpartition("/")[2]
    if name in _INLINE:
        schema = _INLINE[name]
    if "type" not in schema or "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    out = {**schema, "type": [*([kind] if isinstance(kind, str) else kind), "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def _obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), **extra: Any) -> Schema:
    """A closed object whose properties are all required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _envelope(properties: dict[str, Schema], **extra: Any) -> Schema:
    return _obj({"ok": {"const": True}, **properties}, **extra)


def _int(minimum: int = 0, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, **extra}


_NUMBER: Schema = {"type": "number"}
_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
_HEX64: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _page(key: str, item: str, description: str) -> Schema:
    return _envelope(
        {
            key: {"type": "array", "items": _ref(item), "description": description},
            "total": _int(description="Number of matching items across all pages."),
            "limit": _int(1, maximum=100, description="The page size used."),
            "offset": _int(maximum=MAX_OFFSET, description="The offset used."),
        }
    )


# --------------------------------------------------------------------------- component schemas


def _node_properties() -> dict[str, Schema]:
    return {
        "uuid": _ref("Uuid"),
        "name": {"type": "string", "maxLength": 100},
        "ip": {"type": "string", "description": "IPv4 or IPv6 address, in compressed form."},
        "location": _nullable({"type": "string", "maxLength": 100}),
        "os": _nullable({"type": "string", "maxLength": 100}),
        "interface": {"type": "string", "description": "Network interface the agent watches."},
        "priority": _ref("Priority"),
        "status": {
            "type": "string",
            "enum": list(NODE_STATUSES),
            "description": "Derived on read: `attack` while an incident is active, `offline` when "
            "nothing was heard within `api.offline_after_secs`, `elevated` while the newest "
            "sample's pps is above `api.elevated_factor` times the node's baseline (and above "
            "`api.elevated_floor_pps`), else `online`.",
        },
        "last_seen": _nullable(_ref("Timestamp")),
        "last_pps": _nullable(_NUMBER),
        "last_bps": _nullable(_NUMBER),
        "agent_version": _nullable({"type": "string"}),
        "last_heartbeat_at": _nullable(_ref("Timestamp")),
        "agent_status": _nullable(
            {
                "type": "object",
                "description": "The newest ftagent heartbeat body as the agent sent it (baseline "
                "state, circuit breaker, retry queue, interfaces, ...); scalar fields only when "
                "it was over 16 KiB.",
            }
        ),
        "agent_update_error": _nullable(
            {"type": "string", "description": "The agent's last self-update failure report."}
        ),
        "agent_update_error_at": _nullable(_ref("Timestamp")),
        "sp_enabled": {"type": "boolean", "description": "Service-port protection on or off."},
        "sp_sensitivity": {"type": "string", "enum": list(SP_SENSITIVITIES)},
        "sp_response_mode": {"type": "string", "enum": list(SP_RESPONSE_MODES)},
        "service_ports": {"type": "array", "items": _ref("ServicePort")},
        "active_incidents": _int(),
        "created_at": _ref("Timestamp"),
        "updated_at": _ref("Timestamp"),
    }


def _node_stats_properties() -> dict[str, Schema]:
    figure = _nullable(_NUMBER)
    return {
        "baseline": _obj(
            {
                "avg_pps": figure,
                "p95_pps": figure,
                "p99_pps": figure,
                "avg_bps": figure,
                "p95_bps": figure,
                "p99_bps": figure,
                "samples": _int(),
                "window_secs": _int(1),
                "expected_pps": {
                    **figure,
                    "description": "The detector's expected pps for this node now (its daily "
                    "and weekly rhythm included).",
                },
                "threshold_pps": {
                    **figure,
                    "description": "The pps above which the detector counts a second as attack "
                    "evidence now.",
                },
                "expected_bps": figure,
                "threshold_bps": figure,
                "detector": _nullable(
                    {
                        "type": "object",
                        "description": "The detector's baseline now: per series (`pps`, `bps`, "
                        "`udp_pps`, `syn_pps`...) its expected value and threshold, and how "
                        "much the node has been learned.",
                    }
                ),
            },
            description="Baseline traffic; every figure is null until the node sent telemetry. "
            "avg/p95/p99 describe the last 24 hours in the lake; expected/threshold are the "
            "detector's own baseline.",
        ),
        "protocol_breakdown": _obj(
            {"tcp": figure, "udp": figure, "icmp": figure, "other": figure},
            description="Traffic per protocol; every figure is null until telemetry arrives.",
        ),
        "conn_count": _nullable(_int()),
    }


def _incident_properties() -> dict[str, Schema]:
    return {
        "uuid": _ref("Uuid"),
        "id": _int(1, description="Integer id, unique on this server."),
        "node_uuid": _ref("Uuid"),
        "node_name": {"type": "string"},
        "node_ip": {"type": "string"},
        "status": {"type": "string", "enum": list(INCIDENT_STATUSES)},
        "severity": _ref("Severity"),
        "attack_family": {"type": "string", "description": "For example `udp_flood`, `tcp_syn`."},
        "family": {"type": "string", "description": "Same as `attack_family` (compatibility)."},
        "attack_subtype": _nullable({"type": "string"}),
        "title": _nullable({"type": "string"}),
        "started_at": _ref("Timestamp"),
        "updated_at": _ref("Timestamp"),
        "resolved_at": _nullable(_ref("Timestamp")),
        "peak_pps": _NUMBER,
        "peak_bps": _NUMBER,
        "source_ip_count": _int(),
        "confidence": _nullable({"type": "integer"}),
        "duration_seconds": {
            "type": "integer",
            "description": "Seconds from start to resolution, or to now while active.",
        },
        "source": {
            "type": "string",
            "description": "Who opened the incident: `floodwatch` (the server's own detector) "
            "or `ftagent` (the node's agent). One attack seen by both is one incident.",
        },
        "campaign_id": _nullable(
            {
                "type": "string",
                "description": "Shared by the incidents of three or more nodes of the workspace "
                "hit by the same attack family within a minute; null otherwise.",
            }
        ),
        "detection": _detection_schema(),
    }


def _detection_schema() -> Schema:
    figure = _nullable(_NUMBER)
    return _obj(
        {
            "onset_at": {
                **_TIMESTAMP,
                "description": "First anomalous second (event time); `started_at` is this.",
            },
            "fired_at": {
                **_TIMESTAMP,
                "description": "Event time of the second that confirmed the incident.",
            },
            "metric": {
                "type": "string",
                "description": "The wire column that fired: `pps`, `bps`, `syn_pps`, `udp_pps`...",
            },
            "observed": figure,
            "baseline": {**figure, "description": "Expected value of `metric` at onset."},
            "threshold": {**figure, "description": "Incident threshold of `metric` at onset."},
            "multiplier": {**figure, "description": "observed / baseline."},
            "samples_above": _nullable(_int()),
            "source": {"enum": ["floodwatch", "ftagent"], "description": "Who fired first."},
            "detector": {"type": "string", "description": "Detector name and version."},
        },
        description="Why the incident fired. For incidents only the agent saw, the figures come "
        "from the agent's open report (threshold and samples unknown: null).",
        additionalProperties=True,
    )


def _incident_detail_properties() -> dict[str, Schema]:
    return {
        **_incident_properties(),
        "protocol_breakdown": _nullable({"type": "object"}),
        "geo_origin": {"type": ["object", "array", "null"]},
        "top_sources": _nullable({"type": "array"}),
        "top_dst_ports": _nullable({"type": "array"}),
        "summary": _nullable({"type": "string", "description": "Written summary of the attack."}),
        "ai_summary": _nullable({"type": "string", "description": "Same as `summary`."}),
        "detail": _nullable({"type": "object", "description": "Detection's raw findings."}),
    }


def _node_create_properties() -> dict[str, Schema]:
    return {
        "name": _ref("Name"),
        "ip": _ref("IpAddress"),
        "location": _ref("OptionalText"),
        "os": _ref("OptionalText"),
        "interface": {
            "type": ["string", "null"],
            "pattern": "^([A-Za-z0-9_.:@-]{1,15})?$",
            "default": "eth0",
            "description": "Network interface; empty or null means `eth0`.",
        },
        "priority": {
            "enum": [*PRIORITIES, None],
            "default": "production",
            "description": "Null means `production`.",
        },
    }


_BOOL: Schema = {"type": "boolean"}


def _schemas() -> dict[str, Schema]:
    node = _node_properties()
    stats = _node_stats_properties()
    return {
        "Error": _obj(
            {
                "ok": {"const": False},
                "error": _obj(
                    {
                        "code": {"type": "string", "description": "Stable machine-readable code."},
                        "message": {"type": "string", "minLength": 1},
                        "field": {
                            "type": "string",
                            "description": "The parameter or body field at fault.",
                        },
                    },
                    optional=("field",),
                ),
            },
            description="The one error envelope of every failed request.",
        ),
        "Uuid": _UUID,
        "Timestamp": _TIMESTAMP,
        "Name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
            "description": "Surrounding whitespace is trimmed; at most 100 characters after "
            "that; no control characters.",
        },
        "OptionalText": {
            "type": ["string", "null"],
            "maxLength": 100,
            "pattern": _TEXT_PATTERN,
            "description": "Trimmed; empty or null means unset.",
        },
        "IpAddress": {
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
            "type": "string",
            "description": "IPv4 or IPv6 address (no zone index).",
        },
        "Email": {
            "type": "string",
            "maxLength": 254,
            "pattern": r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$",
        },
        "Priority": {"type": "string", "enum": list(PRIORITIES)},
        "Severity": {"type": "string", "enum": list(SEVERITIES)},
        "ServicePort": _obj(
            {
                "protocol": {"type": "string", "enum": list(SERVICE_PORT_PROTOCOLS)},
                "port_value": {"type": "string", "examples": ["27015-27017,27020"]},
                "label": {"type": "string"},
            }
        ),
        "ServicePortInput": _obj(
            {
                "protocol": {
                    "type": "string",
                    "enum": list(SERVICE_PORT_PROTOCOLS),
                    "default": "tcp",
                },
                "port_value": {
                    "oneOf": [
                        {
                            "type": "string",
                            "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$",
                        },
                        {"type": "integer", "minimum": 1, "maximum": 65535},
                    ],
                    "description": "Ports and ascending ranges within 1-65535, comma separated; "
                    "spaces are removed.",
                },
                "label": _ref("OptionalText"),
            },
            optional=("protocol", "label"),
        ),
        "Node": _obj(node, description="A monitored server."),
        "NodeDetail": _obj({**node, **stats}, description="A node with its traffic figures."),
        "NodeCreated": _obj(
            {
                **node,
                **stats,
                "api_key": {
                    **_HEX64,
                    "description": "The node's agent API key; shown only in this answer.",
                },
            }
        ),
        "NodeCreate": {
            "type": "object",
            "required": ["name", "ip"],
            "properties": _node_create_properties(),
            "additionalProperties": False,
            "description": "Names are unique within a workspace, regardless of case. Unknown "
            "fields are refused.",
        },
        "DeployRequest": {
            "type": "object",
            "required": ["name", "ip"],
            "properties": _node_create_properties(),
            "description": "As NodeCreate, but other fields are ignored: installers in the wild "
            "send extras.",
        },
        "NodeUpdate": {
            "type": "object",
            "properties": {
                "name": _ref("Name"),
                "ip": _ref("IpAddress"),
                "location": _ref("OptionalText"),
                "os": _ref("OptionalText"),
                "interface": {
                    "type": ["string", "null"],
                    "pattern": "^([A-Za-z0-9_.:@-]{1,15})?$",
                    "description": "Empty or null means `eth0`.",
                },
                "priority": _ref("Priority"),
                "sp_enabled": _BOOL,
                "sp_sensitivity": {"type": "string", "enum": list(SP_SENSITIVITIES)},
                "sp_response_mode": {"type": "string", "enum": list(SP_RESPONSE_MODES)},
                "service_ports": {
                    "type": "array",
                    "maxItems": MAX_SERVICE_PORTS,
                    "items": _ref("ServicePortInput"),
                    "description": "Replaces the whole list.",
                },
            },
            "additionalProperties": False,
            "description": "Only the fields sent change. Read-only fields (`uuid`, `status`, "
            "`api_key`, timestamps, traffic figures) and unknown fields are refused.",
        },
        "Incident": _obj(_incident_properties(), description="One attack on one node."),
        "IncidentDetail": _obj(
            {
                **_incident_detail_properties(),
                **{
                    name: {
                        "description": "As the agent reported it (docs/agent-api.md §8.7), "
                        "from its newest report that has it; present only if one did."
                    }
                    for name in FORENSIC_FIELDS
                },
            },
            optional=FORENSIC_FIELDS,
            description="An incident with its forensic detail. Agent incidents also carry, at "
            "the top level, what the agent reported beyond the incident's own columns "
            "(TCP flags, TTL and length histograms, velocity curve, L7 status codes, ...); "
            "`detail` keeps every report as sent.",
        ),
        **channel_models.schemas(),
        **workspace_models.schemas(),
        **collector_models.schemas(),
        "TelemetryAccepted": _envelope(
            {
                "accepted": _int(description="Rows stored; 0 for a duplicate."),
                "batch_id": _nullable({"type": "string", "description": "The X-Batch-Id sent."}),
                "duplicate": {
                    "type": "boolean",
                    "description": "True when a batch with this X-Batch-Id was stored before.",
                },
                "ignored_columns": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Columns this server does not know; they were not stored.",
                },
            },
            description="The batch is durable (fsynced).",
        ),
        "AnalyticsSummary": _envelope(
            {
                "range": {"type": "string", "enum": list(RANGES)},
                "since": _ref("Timestamp"),
                "until": _ref("Timestamp"),
                "incidents": _obj(
                    {
                        "total": _int(),
                        "by_severity": _obj({s: _int() for s in SEVERITIES}),
                        "by_family": {
                            "type": "object",
                            "additionalProperties": _int(1),
                            "description": "Incident count per attack family, largest first.",
                        },
                        "by_status": _obj({s: _int() for s in INCIDENT_STATUSES}),
                    }
                ),
                "series": {
                    "type": "array",
                    "description": "One entry per UTC day of the range, oldest first.",
                    "items": _obj(
                        {
                            "date": {"type": "string", "format": "date"},
                            "total": _int(),
                            **{s: _int() for s in SEVERITIES},
                            "peak_pps": _NUMBER,
                        }
                    ),
                },
                "top_nodes": {
                    "type": "array",
                    "maxItems": 10,
                    "description": "Nodes with the most incidents in the range.",
                    "items": _obj(
                        {
                            "node_uuid": _ref("Uuid"),
                            "name": {"type": "string"},
                            "incidents": _int(1),
                            "peak_pps": _NUMBER,
                            "peak_bps": _NUMBER,
                        }
                    ),
                },
                "peak_pps": _NUMBER,
                "peak_bps": _NUMBER,
                "total_attack_seconds": _int(
                    description="Summed incident durations, false positives excluded."
                ),
                "mttr_seconds": _nullable(
                    {"type": "number", "description": "Mean time to resolve; null without data."}
                ),
            },
            description="Incident analytics over `range`, counted by start time.",
        ),
        "StatusOverview": _envelope(
            {
                "status": {
                    "type": "string",
                    "enum": ["operational", "degraded", "under_attack"],
                    "description": "`under_attack` if any node is, `degraded` if any is offline "
                    "or elevated.",
                },
                "generated_at": _ref("Timestamp"),
                "counts": _obj({"total": _int(), **{s: _int() for s in NODE_STATUSES}}),
                "incidents": _obj(
                    {
                        "active": _int(),
                        "last_24h": _int(description="Incidents started in the last 24 hours."),
                    }
                ),
                "nodes": {
                    "type": "array",
                    "items": _obj(
                        {
                            k: node[k]
                            for k in (
                                "uuid",
                                "name",
                                "ip",
                                "location",
                                "priority",
                                "status",
                                "last_seen",
                                "last_pps",
                                "last_bps",
                                "active_incidents",
                            )
                        }
                    ),
                },
                "truncated": {
                    "type": "boolean",
                    "description": "True when `nodes` holds only the first 5000 nodes.",
                },
            },
            description="Every node's state at a glance, for status pages and NOC screens.",
        ),
        "Health": _obj(
            {
                "ok": _BOOL,
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "version": {"type": "string"},
                "time": _ref("Timestamp"),
                "checks": _obj({"database": {"type": "string", "enum": ["ok", "error"]}}),
            }
        ),
    }


# --------------------------------------------------------------------------- parameters, headers


def _parameters() -> dict[str, Any]:
    def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": description,
        }

    def path(name: str, schema: Schema, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schema,
            "description": description,
        }

    either_id: Schema = {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
            {"type": "string", "format": "uuid"},
        ]
    }
    return {
        "Limit": query("limit", _int(1, maximum=100, default=50), "Page size."),
        "ChannelLimit": query("limit", _int(1, maximum=100, default=100), "Page size."),
        "Offset": query("offset", _int(maximum=MAX_OFFSET, default=0), "Items to skip."),
        "NodeUuid": path("uuid", {"type": "string", "format": "uuid"}, "The node's UUID."),
        "WorkspaceUuid": path(
            "uuid", {"type": "string", "format": "uuid"}, "The sub-workspace's UUID."
        ),
        "CollectorId": path("id", {"type": "string", "format": "uuid"}, "The key's `id`."),
        "IncidentRef": path("ref", either_id, "The incident's integer `id` or its UUID."),
        "ChannelRef": path("id", either_id, "The channel's integer `id` or its UUID."),
    }


_RATE_HEADERS: dict[str, tuple[str, Schema]] = {
    "X-RateLimit-Limit": ("Requests allowed per minute for this deploy token.", _int(1)),
    "X-RateLimit-Remaining": ("Requests left in the current one-minute window.", _int()),
    "X-RateLimit-Reset": ("Unix time at which the current window ends.", _int()),
}


def _headers() -> dict[str, Any]:
    headers: dict[str, Any] = {
        name: {"description": text, "required": True, "schema": schema}
        for name, (text, schema) in _RATE_HEADERS.items()
    }
    headers["Retry-After"] = {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": _int(1),
    }
    headers["Allow"] = {
        "description": "The methods the path supports.",
        "required": True,
        "schema": {"type": "string"},
    }
    return headers


def _rate_headers(*, required: bool = True) -> dict[str, Any]:
    """The X-RateLimit-* headers. Every answer to a request whose deploy token was recognised
    carries them: always on success, on an error only if it came after that check."""
    if required:
        return {name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS}
    return {
        name: {
            "description": f"{text} Present once the deploy token was checked.",
            "schema": schema,
        }
        for name, (text, schema) in _RATE_HEADERS.items()
    }


# --------------------------------------------------------------------------- responses


def _error(description: str, codes: tuple[str, ...], **headers: Any) -> dict[str, Any]:
    code: Schema = {"const": codes[0]} if len(codes) == 1 else {"enum": list(codes)}
    schema = {
        "allOf": [
            _ref("Error"),
            {"properties": {"error": {"properties": {"code": code}}}},
        ]
    }
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _responses() -> dict[str, Any]:
    rate = _rate_headers(required=False)

    def header(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/headers/{name}"}

    return {
        "BadRequest": _error(
            "A query parameter or body field is missing or wrong (`invalid_parameter`, with "
            "`field`), or the body is not a JSON object (`invalid_json`).",
            ("invalid_parameter", "invalid_json"),
            **rate,
        ),
        "InvalidBatch": _error(
            "The batch or a telemetry header is malformed; `field` names the bad column when "
            "there is one. Do not resend it.",
            ("invalid_batch",),
        ),
        "Unauthorized": _error("The token or key is missing, wrong or revoked.", ("unauthorized",)),
        "PaymentRequired": _error(
            "Writes need an active (or trialing) subscription; creating a node also needs a free "
            "slot under the plan's node limit.",
            ("payment_required",),
            **rate,
        ),
        "Forbidden": _error(
            "Authenticated but not allowed: sub-workspaces are managed with a top-level "
            "workspace's token only; a node key may only send its own node's rows.",
            ("forbidden",),
            **rate,
        ),
        "NotFound": _error(
            "No such resource in the caller's workspace.",
            ("not_found",),
            **rate,
        ),
        "MethodNotAllowed": _error(
            "The path exists but not with this method; `Allow` lists the methods it has.",
            ("method_not_allowed",),
            Allow=header("Allow"),
        ),
        "Conflict": _error(
            'The name (or e-mail) is already in use; the message says "already exists".',
            ("conflict",),
            **rate,
        ),
        "PayloadTooLarge": _error(
            "The body is too large: over `api.max_body_bytes` (1 MiB) for JSON; over "
            "`ingest.max_body_bytes` (64 MiB) or `ingest.max_batch_rows` rows for telemetry.",
            ("payload_too_large",),
            **rate,
        ),
        "UnsupportedMediaType": _error(
            "The Content-Type is not the one the operation takes.",
            ("unsupported_media_type",),
        ),
        "RateLimited": _error(
            "Too many requests for this token (X-RateLimit-* tell the window), or too many "
            "failed authentications from this address.",
            ("rate_limited",),
            **{"Retry-After": header("Retry-After"), **rate},
        ),
        "InternalError": _error(
            "A bug. The message carries a request id that the server's log also records.",
            ("internal_error",),
            **rate,
        ),
        "Unavailable": _error(
            "Overloaded, or the database is not available. Retry later; after `Retry-After` "
            "seconds when given.",
            ("unavailable",),
            **{
                "Retry-After": {
                    "description": "Seconds to wait; sent when the server sheds load.",
                    "schema": _int(1),
                },
                **rate,
            },
        ),
    }


def _ok(description: str, schema: Schema, *, authenticated: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if authenticated:
        response["headers"] = _rate_headers()
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    """Error answers of a deploy-token operation: ``statuses`` plus those every one can give."""
    wanted = sorted({*statuses, 401, 429, 500, 503})
    return {str(s): {"$ref": f"#/components/responses/{_ERROR_RESPONSES[s]}"} for s in wanted}


_ERROR_RESPONSES = {
    400: "BadRequest",
    401: "Unauthorized",
    402: "PaymentRequired",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "RateLimited",
    500: "InternalError",
    503: "Unavailable",
}


# --------------------------------------------------------------------------- paths


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _body(schema: str, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }


def _filter(name: str, values: tuple[str, ...] | list[str], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": {"type": "string", "enum": list(values)},
        "description": f"{description} An empty value means no filter.",
    }


def _paths() -> dict[str, Any]:
    node_answer = _envelope({"node": _ref("NodeDetail")})
    deleted = _envelope({"deleted": {"const": True}, "uuid": _ref("Uuid")})

    def health(operation_id: str) -> dict[str, Any]:
        return {
            "get": {
                "tags": ["Health"],
                "operationId": operation_id,
                "summary": "Health check",
                "description": "Needs no token. 503 when the database does not answer.",
                "security": [],
                "responses": {
                    "200": _ok("Healthy.", _ref("Health"), authenticated=False),
                    "503": _ok("Degraded.", _ref("Health"), authenticated=False),
                },
            }
        }

    paths: dict[str, Any] = {
        "/api/deploy": {
            "post": {
                "tags": ["Deploy"],
                "operationId": "deployNode",
                "summary": "Register a node (Deploy API)",
                "description": "Registers a node with the workspace's deploy token and returns "
                "its agent API key. Answers 200, not 201, as the hosted service does.",
                "requestBody": _body("DeployRequest", "The new node."),
                "responses": {
                    "200": _ok(
                        "The node was registered.",
                        _envelope(
                            {
                                "node_uuid": _ref("Uuid"),
                                "api_key": {**_HEX64, "description": "Shown only here."},
                                "name": {"type": "string"},
                                "ip": {"type": "string"},
                            }
                        ),
                    ),
                    **_errors(400, 402, 409, 413),
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
                    _param("Limit"),
                    _param("Offset"),
                    _filter("status", NODE_STATUSES, "Only nodes in this state."),
                ],
                "responses": {
                    "200": _ok("A page of nodes.", _page("nodes", "Node", "Nodes, oldest first.")),
                    **_errors(400),
                },
            },
            "post": {
                "tags": ["Nodes"],
                "operationId": "createNode",
                "summary": "Create a node",
                "description": "Like the Deploy API, but answers with the full node.",
                "requestBody": _body("NodeCreate", "The new node."),
                "responses": {
                    "201": _ok("The node was created.", _envelope({"node": _ref("NodeCreated")})),
                    **_errors(400, 402, 409, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}": {
            "parameters": [_param("NodeUuid")],
            "get": {
                "tags": ["Nodes"],
                "operationId": "getNode",
                "summary": "Get a node",
                "description": "One node with its baseline traffic and protocol breakdown.",
                "responses": {"200": _ok("The node.", node_answer), **_errors(404)},
            },
            "patch": {
                "tags": ["Nodes"],
                "operationId": "updateNode",
                "summary": "Update a node",
                "requestBody": _body("NodeUpdate", "The fields to change."),
                "responses": {
                    "200": _ok("The updated node.", node_answer),
                    **_errors(400, 402, 404, 409, 413),
                },
            },
            "delete": {
                "tags": ["Nodes"],
                "operationId": "deleteNode",
                "summary": "Delete a node",
                "description": "Soft delete: the node disappears from listings and its API key "
                "stops working; its incidents stay readable. Cannot be undone through the API.",
                "responses": {"200": _ok("The node was deleted.", deleted), **_errors(402, 404)},
            },
        },
        "/api/v1/incidents": {
            "get": {
                "tags": ["Incidents"],
                "operationId": "listIncidents",
                "summary": "List incidents",
                "description": "Incidents of every node, newest first.",
                "parameters": [
                    _param("Limit"),
                    _param("Offset"),
                    _filter("status", INCIDENT_STATUSES, "Only incidents in this state."),
                    _filter("severity", SEVERITIES, "Only incidents of this severity."),
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
                    "200": _ok(
                        "A page of incidents.",
                        _page("incidents", "Incident", "Incidents, newest first."),
                    ),
                    **_errors(400),
                },
            }
        },
        "/api/v1/incidents/{ref}": {
            "parameters": [_param("IncidentRef")],
            "get": {
                "tags": ["Incidents"],
                "operationId": "getIncident",
                "summary": "Get an incident",
                "description": "Full detail: protocol breakdown, origin, top sources and ports, "
                "summary.",
                "responses": {
                    "200": _ok("The incident.", _envelope({"incident": _ref("IncidentDetail")})),
                    **_errors(404),
                },
            },
        },
        "/api/v1/channels": {
            "get": {
                "tags": ["Channels"],
                "operationId": "listChannels",
                "summary": "List notification channels",
                "parameters": [_param("ChannelLimit"), _param("Offset")],
                "responses": {
                    "200": _ok(
                        "A page of channels.",
                        _page("channels", "Channel", "Channels, oldest first."),
                    ),
                    **_errors(400),
                },
            },
            "post": {
                "tags": ["Channels"],
                "operationId": "createChannel",
                "summary": "Create a notification channel",
                "requestBody": _body("ChannelCreate", "The new channel."),
                "responses": {
                    "201": _ok("The channel was created.", _envelope({"channel": _ref("Channel")})),
                    **_errors(400, 402, 413),
                },
            },
        },
        "/api/v1/channels/{id}": {
            "parameters": [_param("ChannelRef")],
            "get": {
                "tags": ["Channels"],
                "operationId": "getChannel",
                "summary": "Get a notification channel",
                "responses": {
                    "200": _ok("The channel.", _envelope({"channel": _ref("Channel")})),
                    **_errors(404),
                },
            },
            "delete": {
                "tags": ["Channels"],
                "operationId": "deleteChannel",
                "summary": "Delete a notification channel",
                "description": "Permanent.",
                "responses": {
                    "200": _ok(
                        "The channel was deleted.",
                        _envelope(
                            {"deleted": {"const": True}, "id": _int(1), "uuid": _ref("Uuid")}
                        ),
                    ),
                    **_errors(402, 404),
                },
            },
            "patch": {
                "tags": ["Channels"],
                "operationId": "updateChannel",
                "summary": "Change a notification channel",
                "description": "Enable or disable it, rename it, change its config or filters. "
                "Errors name the field (`config.url`, `name`, ...).",
                "requestBody": _body("ChannelUpdate", "What to change."),
                "responses": {
                    "200": _ok(
                        "The channel as it is now.", _envelope({"channel": _ref("Channel")})
                    ),
                    **_errors(400, 402, 404, 413),
                },
            },
        },
        "/api/v1/channels/{id}/deliveries": {
            "parameters": [_param("ChannelRef")],
            "get": {
                "tags": ["Channels"],
                "operationId": "listChannelDeliveries",
                "summary": "The channel's delivery log",
                "description": "Every attempt to deliver an alert to this channel, newest "
                "first: when, the outcome, the HTTP status or SMTP reply, the error and the "
                "latency.",
                "parameters": [_param("Limit"), _param("Offset")],
                "responses": {
                    "200": _ok(
                        "A page of the delivery log.",
                        _envelope(
                            {
                                "channel_id": _int(1),
                                "deliveries": {"type": "array", "items": _ref("Delivery")},
                                "total": _int(description="Attempts logged for the channel."),
                                "limit": _int(1, maximum=100),
                                "offset": _int(maximum=MAX_OFFSET),
                            }
                        ),
                    ),
                    **_errors(400, 404),
                },
            },
        },
        "/api/v1/channels/{id}/test": {
            "parameters": [_param("ChannelRef")],
            "post": {
                "tags": ["Channels"],
                "operationId": "testChannel",
                "summary": "Send a test alert now",
                "description": "One `test` event, sent at once (enabled or not, whatever its "
                "filters), never retried, logged like any delivery. The answer is `200` "
                "whether the service accepted it or not: `test.delivered` says which.",
                "responses": {
                    "200": _ok(
                        "What the attempt did.",
                        _envelope({"channel_id": _int(1), "test": _ref("ChannelTestResult")}),
                    ),
                    **_errors(402, 404),
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
                    "200": _ok(
                        "The collector keys.",
                        _envelope(
                            {
                                "collectors": {"type": "array", "items": _ref("Collector")},
                                "total": _int(),
                            }
                        ),
                    ),
                    **_errors(),
                },
            },
            "post": {
                "tags": ["Telemetry"],
                "operationId": "createCollector",
                "summary": "Create a collector key",
                "requestBody": _body("CollectorCreate", "The new key's label."),
                "responses": {
                    "201": _ok(
                        "The key was created.", _envelope({"collector": _ref("CollectorCreated")})
                    ),
                    **_errors(400, 402, 413),
                },
            },
        },
        "/api/v1/collectors/{id}": {
            "parameters": [_param("CollectorId")],
            "delete": {
                "tags": ["Telemetry"],
                "operationId": "revokeCollector",
                "summary": "Revoke a collector key",
                "description": "The key stops working within `ingest.auth_cache_secs`. Revoking "
                "a revoked key changes nothing.",
                "responses": {
                    "200": _ok("The revoked key.", _envelope({"collector": _ref("Collector")})),
                    **_errors(402, 404),
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
                    "200": _ok("The workspace.", _envelope({"workspace": _ref("Workspace")})),
                    **_errors(),
                },
            }
        },
        "/api/v1/workspaces": {
            "get": {
                "tags": ["Workspaces"],
                "operationId": "listSubWorkspaces",
                "summary": "List sub-workspaces",
                "description": "The caller's sub-workspaces, oldest first (top-level tokens only).",
                "parameters": [_param("Limit"), _param("Offset")],
                "responses": {
                    "200": _ok(
                        "A page of sub-workspaces.",
                        _page("workspaces", "Workspace", "Sub-workspaces, oldest first."),
                    ),
                    **_errors(400, 403),
                },
            },
            "post": {
                "tags": ["Workspaces"],
                "operationId": "createSubWorkspace",
                "summary": "Create a sub-workspace",
                "description": "For MSPs and resellers (top-level tokens only). Manage the new "
                "workspace's nodes with its own `deploy_token`.",
                "requestBody": _body("WorkspaceCreate", "The new sub-workspace."),
                "responses": {
                    "201": _ok(
                        "The sub-workspace was created.",
                        _envelope(
                            {
                                "workspace": _ref("WorkspaceCreated"),
                                "user": _ref("WorkspaceUser"),
                            },
                            optional=("user",),
                        ),
                    ),
                    **_errors(400, 402, 403, 409, 413),
                },
            },
        },
        "/api/v1/workspaces/{uuid}": {
            "parameters": [_param("WorkspaceUuid")],
            "get": {
                "tags": ["Workspaces"],
                "operationId": "getSubWorkspace",
                "summary": "Get a sub-workspace",
                "description": "A sub-workspace with its first 100 nodes.",
                "responses": {
                    "200": _ok(
                        "The sub-workspace.", _envelope({"workspace": _ref("WorkspaceDetail")})
                    ),
                    **_errors(403, 404),
                },
            },
            "delete": {
                "tags": ["Workspaces"],
                "operationId": "deleteSubWorkspace",
                "summary": "Delete a sub-workspace",
                "description": "Deactivates the sub-workspace with its nodes, deploy tokens and "
                "collector keys.",
                "responses": {
                    "200": _ok("The sub-workspace was deleted.", deleted),
                    **_errors(402, 403, 404),
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
                    "200": _ok("The summary.", _ref("AnalyticsSummary")),
                    **_errors(400),
                },
            }
        },
        "/api/v1/status": {
            "get": {
                "tags": ["Analytics"],
                "operationId": "statusOverview",
                "summary": "Status overview",
                "responses": {"200": _ok("The overview.", _ref("StatusOverview")), **_errors()},
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
                        "content": {"application/json": {"schema": _ref("TelemetryAccepted")}},
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
                    "403": _error(
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
                    **_errors(),
                },
            }
        },
        "/api/health": health("health"),
        "/api/v1/health": health("healthV1"),
        "/health": health("healthRoot"),
        "/api/v1/openapi.json": {
            "get": {
                "tags": ["Health"],
                "operationId": "openapiDocument",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": _ok(
                        "The OpenAPI 3.1 document.",
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                        authenticated=False,
                    )
                },
            }
        },
    }
    paths.update(_agent_paths())
    paths.update(_agent_admin_paths())
    paths.update(_detection_paths())
    from .routes.agent_pcap import OPENAPI_PATHS  # local import: the route module imports us

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
            k: _nullable(v) if k != "series" else {**v, "type": ["object", "null"]}
            for k, v in props.items()
        }
        return {"type": "object", "properties": props, "additionalProperties": False}
    return _obj(props)


def _detection_paths() -> dict[str, Any]:
    full = _detection_settings_schema(partial=False)
    partial = _detection_settings_schema(partial=True)
    answer = _envelope(
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
                "responses": {"200": _ok("The settings.", answer), **_errors()},
            },
            "patch": {
                "tags": tags,
                "operationId": "patchWorkspaceDetection",
                "summary": "Change the workspace's detection settings",
                "requestBody": body,
                "responses": {"200": _ok("The settings.", answer), **_errors(400, 402, 413)},
            },
        },
        "/api/v1/nodes/{uuid}/detection": {
            "parameters": [_param("NodeUuid")],
            "get": {
                "tags": tags,
                "operationId": "getNodeDetection",
                "summary": "Detection settings of one node",
                "responses": {"200": _ok("The settings.", answer), **_errors(404)},
            },
            "patch": {
                "tags": tags,
                "operationId": "patchNodeDetection",
                "summary": "Change one node's detection settings",
                "requestBody": body,
                "responses": {
                    "200": _ok("The settings.", answer),
                    **_errors(400, 402, 404, 413),
                },
            },
        },
    }


# ------------------------------------------------------- operators steering agents (REST, token)
def _agent_admin_paths() -> dict[str, Any]:
    from store.agent_settings import COMMAND_TYPES, SETTINGS

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
            "id": _int(1),
            "node_uuid": _ref("Uuid"),
            "command_type": {"enum": list(COMMAND_TYPES)},
            "command_text": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "status": {
                "enum": ["pending", "applied", "failed", "cancelled"],
                "description": "pending until the agent acks (applied or failed); cancelled: a "
                "mitigation withdrawn, unacknowledged, when its incident ended.",
            },
            "incident_uuid": {"anyOf": [_ref("Uuid"), {"type": "null"}]},
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
            "cancelled_at": {"anyOf": [_ref("Timestamp"), {"type": "null"}]},
            "ack_status": {"type": ["string", "null"]},
            "ack_error": {"type": ["string", "null"]},
            "acked_at": {"anyOf": [_ref("Timestamp"), {"type": "null"}]},
            "created_at": _ref("Timestamp"),
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
                            **_ref("Uuid"),
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
                "responses": {"200": _ok("The workspace's overrides.", answer), **_errors()},
            },
            "patch": {
                "tags": tags,
                "operationId": "patchWorkspaceAgentConfig",
                "summary": "Change the workspace's agent config defaults",
                "requestBody": patch_body,
                "responses": {
                    "200": _ok("The stored overrides.", answer),
                    **_errors(400, 402, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}/agent-config": {
            "parameters": [_param("NodeUuid")],
            "get": {
                "tags": tags,
                "operationId": "getNodeAgentConfig",
                "summary": "Agent config overrides of one node",
                "responses": {"200": _ok("The node's overrides.", answer), **_errors(404)},
            },
            "patch": {
                "tags": tags,
                "operationId": "patchNodeAgentConfig",
                "summary": "Change one node's agent config overrides",
                "requestBody": patch_body,
                "responses": {
                    "200": _ok("The stored overrides.", answer),
                    **_errors(400, 402, 404, 413),
                },
            },
        },
        "/api/v1/nodes/{uuid}/commands": {
            "parameters": [_param("NodeUuid")],
            "get": {
                "tags": tags,
                "operationId": "listNodeCommands",
                "summary": "The node's newest 100 remote commands, with their acks",
                "responses": {
                    "200": _ok(
                        "The commands.",
                        {
                            "type": "object",
                            "required": ["ok", "commands", "total"],
                            "properties": {
                                "ok": {"const": True},
                                "commands": {"type": "array", "items": command, "maxItems": 100},
                                "total": _int(0),
                            },
                        },
                    ),
                    **_errors(404),
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
                    "201": _ok(
                        "The queued command.",
                        {
                            "type": "object",
                            "required": ["ok", "command"],
                            "properties": {"ok": {"const": True}, "command": command},
                        },
                    ),
                    **_errors(400, 402, 404, 409, 413),
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
            **{str(s): {"$ref": f"#/components/responses/{_ERROR_RESPONSES[s]}"} for s in statuses},
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "description": "The agent's JSON object; unknown fields are kept or ignored.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


def _agent_paths() -> dict[str, Any]:
    ok: Schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}
    with_uuid: Schema = {
        "type": "object",
        "required": ["ok", "uuid"],
        "properties": {"ok": {"const": True}, "uuid": _ref("Uuid")},
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
                    _param("Limit"),
                    _param("Offset"),
                    _filter("kind", REPORT_KINDS, "Only reports of this kind."),
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
                    "200": _ok(
                        "A page of reports.",
                        _envelope(
                            {
                                "reports": {
                                    "type": "array",
                                    "items": _AGENT_REPORT,
                                    "description": "Reports, newest first.",
                                },
                                "total": _int(
                                    description="Number of matching items across all pages."
                                ),
                                "limit": _int(1, maximum=100, description="The page size used."),
                                "offset": _int(maximum=MAX_OFFSET, description="The offset used."),
                            }
                        ),
                    ),
                    **_errors(400),
                },
            }
        },
        "/api/v1/nodes/{uuid}/reports": {
            "parameters": [_param("NodeUuid")],
            "get": {
                "tags": ["Nodes"],
                "operationId": "latestNodeReports",
                "summary": "A node's latest agent reports",
                "description": "The newest report of each kind the node's ftagent sent, null "
                "for a kind it never sent. A node of another workspace is 404.",
                "responses": {
                    "200": _ok(
                        "The newest report of each kind.",
                        _envelope(
                            {
                                "node_uuid": _ref("Uuid"),
                                "reports": _obj(
                                    {kind: _nullable(_AGENT_REPORT) for kind in REPORT_KINDS}
                                ),
                            }
                        ),
                    ),
                    **_errors(404),
                },
            },
        },
    }


_AGENT_REPORT: Schema = _obj(
    {
        "id": _int(1, description="The report's id, increasing with arrival."),
        "node_uuid": _ref("Uuid"),
        "kind": {"type": "string", "enum": list(REPORT_KINDS)},
        "received_at": {**_TIMESTAMP, "description": "When the report first arrived."},
        "last_received_at": {
            **_TIMESTAMP,
            "description": "When an identical report last arrived (replays, frozen totals).",
        },
        "repeats": _int(1, description="How many times this identical report arrived in a row."),
        "incident_ref": _nullable(
            {"type": "string", "description": "`sp-blocks`: the agent's incident uuid."}
        ),
        "item_count": _nullable(
            _int(description="Length of the report's main list (tunnels, vms, blocks, ...).")
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


def openapi_document(public_url: str = "") -> dict[str, Any]:
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
            {"name": "Detection", "description": "Floodwatch's own detector: its settings."},
        ],
        "security": [{"deployToken": []}],
        "paths": _paths(),
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
            "schemas": _schemas(),
            "parameters": _parameters(),
            "headers": _headers(),
            "responses": _responses(),
        },
    }
    if public_url:
        doc["servers"] = [{"url": public_url}]
    return doc
