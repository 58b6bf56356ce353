"""Component schemas still written by hand (issue 12 moves each into a model of ``api/models``)."""

from __future__ import annotations

from store.incidents import FORENSIC_FIELDS, INCIDENT_STATUSES, SEVERITIES
from store.nodes import (
    MAX_SERVICE_PORTS,
    NODE_STATUSES,
    PRIORITIES,
    SERVICE_PORT_PROTOCOLS,
    SP_RESPONSE_MODES,
    SP_SENSITIVITIES,
)

from .build import (
    HEX64,
    NUMBER,
    TEXT_PATTERN,
    TIMESTAMP,
    UUID,
    Schema,
    envelope,
    integer,
    nullable,
    obj,
    ref,
)


def _node_properties() -> dict[str, Schema]:
    return {
        "uuid": ref("Uuid"),
        "name": {"type": "string", "maxLength": 100},
        "ip": {"type": "string", "description": "IPv4 or IPv6 address, in compressed form."},
        "location": nullable({"type": "string", "maxLength": 100}),
        "os": nullable({"type": "string", "maxLength": 100}),
        "interface": {"type": "string", "description": "Network interface the agent watches."},
        "priority": ref("Priority"),
        "status": {
            "type": "string",
            "enum": list(NODE_STATUSES),
            "description": "Derived on read: `attack` while an incident is active, `offline` when "
            "nothing was heard within `api.offline_after_secs`, `elevated` while the newest "
            "sample's pps is above `api.elevated_factor` times the node's baseline (and above "
            "`api.elevated_floor_pps`), else `online`.",
        },
        "last_seen": nullable(ref("Timestamp")),
        "last_pps": nullable(NUMBER),
        "last_bps": nullable(NUMBER),
        "agent_version": nullable({"type": "string"}),
        "last_heartbeat_at": nullable(ref("Timestamp")),
        "agent_status": nullable(
            {
                "type": "object",
                "description": "The newest ftagent heartbeat body as the agent sent it (baseline "
                "state, circuit breaker, retry queue, interfaces, ...); scalar fields only when "
                "it was over 16 KiB.",
            }
        ),
        "agent_update_error": nullable(
            {"type": "string", "description": "The agent's last self-update failure report."}
        ),
        "agent_update_error_at": nullable(ref("Timestamp")),
        "sp_enabled": {"type": "boolean", "description": "Service-port protection on or off."},
        "sp_sensitivity": {"type": "string", "enum": list(SP_SENSITIVITIES)},
        "sp_response_mode": {"type": "string", "enum": list(SP_RESPONSE_MODES)},
        "service_ports": {"type": "array", "items": ref("ServicePort")},
        "active_incidents": integer(),
        "created_at": ref("Timestamp"),
        "updated_at": ref("Timestamp"),
    }


def _node_stats_properties() -> dict[str, Schema]:
    figure = nullable(NUMBER)
    return {
        "baseline": obj(
            {
                "avg_pps": figure,
                "p95_pps": figure,
                "p99_pps": figure,
                "avg_bps": figure,
                "p95_bps": figure,
                "p99_bps": figure,
                "samples": integer(),
                "window_secs": integer(1),
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
                "detector": nullable(
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
        "protocol_breakdown": obj(
            {"tcp": figure, "udp": figure, "icmp": figure, "other": figure},
            description="Traffic per protocol; every figure is null until telemetry arrives.",
        ),
        "conn_count": nullable(integer()),
    }


def _incident_properties() -> dict[str, Schema]:
    return {
        "uuid": ref("Uuid"),
        "id": integer(1, description="Integer id, unique on this server."),
        "node_uuid": ref("Uuid"),
        "node_name": {"type": "string"},
        "node_ip": {"type": "string"},
        "status": {"type": "string", "enum": list(INCIDENT_STATUSES)},
        "severity": ref("Severity"),
        "attack_family": {"type": "string", "description": "For example `udp_flood`, `tcp_syn`."},
        "family": {"type": "string", "description": "Same as `attack_family` (compatibility)."},
        "attack_subtype": nullable({"type": "string"}),
        "title": nullable({"type": "string"}),
        "started_at": ref("Timestamp"),
        "updated_at": ref("Timestamp"),
        "resolved_at": nullable(ref("Timestamp")),
        "peak_pps": NUMBER,
        "peak_bps": NUMBER,
        "source_ip_count": integer(),
        "confidence": nullable({"type": "integer"}),
        "duration_seconds": {
            "type": "integer",
            "description": "Seconds from start to resolution, or to now while active.",
        },
        "source": {
            "type": "string",
            "description": "Who opened the incident: `floodwatch` (the server's own detector) "
            "or `ftagent` (the node's agent). One attack seen by both is one incident.",
        },
        "campaign_id": nullable(
            {
                "type": "string",
                "description": "Shared by the incidents of three or more nodes of the workspace "
                "hit by the same attack family within a minute; null otherwise.",
            }
        ),
        "detection": _detection_schema(),
    }


def _detection_schema() -> Schema:
    figure = nullable(NUMBER)
    return obj(
        {
            "onset_at": {
                **TIMESTAMP,
                "description": "First anomalous second (event time); `started_at` is this.",
            },
            "fired_at": {
                **TIMESTAMP,
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
            "samples_above": nullable(integer()),
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
        "protocol_breakdown": nullable({"type": "object"}),
        "geo_origin": {"type": ["object", "array", "null"]},
        "top_sources": nullable({"type": "array"}),
        "top_dst_ports": nullable({"type": "array"}),
        "summary": nullable({"type": "string", "description": "Written summary of the attack."}),
        "ai_summary": nullable({"type": "string", "description": "Same as `summary`."}),
        "detail": nullable({"type": "object", "description": "Detection's raw findings."}),
    }


def _node_create_properties() -> dict[str, Schema]:
    return {
        "name": ref("Name"),
        "ip": ref("IpAddress"),
        "location": ref("OptionalText"),
        "os": ref("OptionalText"),
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


def schemas() -> dict[str, Schema]:
    node = _node_properties()
    stats = _node_stats_properties()
    return {
        "Error": obj(
            {
                "ok": {"const": False},
                "error": obj(
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
        "Uuid": UUID,
        "Timestamp": TIMESTAMP,
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
            "pattern": TEXT_PATTERN,
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
        "ServicePort": obj(
            {
                "protocol": {"type": "string", "enum": list(SERVICE_PORT_PROTOCOLS)},
                "port_value": {"type": "string", "examples": ["27015-27017,27020"]},
                "label": {"type": "string"},
            }
        ),
        "ServicePortInput": obj(
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
                "label": ref("OptionalText"),
            },
            optional=("protocol", "label"),
        ),
        "Node": obj(node, description="A monitored server."),
        "NodeDetail": obj({**node, **stats}, description="A node with its traffic figures."),
        "NodeCreated": obj(
            {
                **node,
                **stats,
                "api_key": {
                    **HEX64,
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
                "name": ref("Name"),
                "ip": ref("IpAddress"),
                "location": ref("OptionalText"),
                "os": ref("OptionalText"),
                "interface": {
                    "type": ["string", "null"],
                    "pattern": "^([A-Za-z0-9_.:@-]{1,15})?$",
                    "description": "Empty or null means `eth0`.",
                },
                "priority": ref("Priority"),
                "sp_enabled": _BOOL,
                "sp_sensitivity": {"type": "string", "enum": list(SP_SENSITIVITIES)},
                "sp_response_mode": {"type": "string", "enum": list(SP_RESPONSE_MODES)},
                "service_ports": {
                    "type": "array",
                    "maxItems": MAX_SERVICE_PORTS,
                    "items": ref("ServicePortInput"),
                    "description": "Replaces the whole list.",
                },
            },
            "additionalProperties": False,
            "description": "Only the fields sent change. Read-only fields (`uuid`, `status`, "
            "`api_key`, timestamps, traffic figures) and unknown fields are refused.",
        },
        "Incident": obj(_incident_properties(), description="One attack on one node."),
        "IncidentDetail": obj(
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
        "TelemetryAccepted": envelope(
            {
                "accepted": integer(description="Rows stored; 0 for a duplicate."),
                "batch_id": nullable({"type": "string", "description": "The X-Batch-Id sent."}),
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
    }


# --------------------------------------------------------------------------- parameters, headers
