"""Nodes (``/api/v1/nodes``) and the Deploy API (``POST /api/deploy``): the bodies that create
and change a node and the objects answers hold, declared once; ``api/routes/nodes.py`` validates
with them and the OpenAPI document takes their schemas from the operations declared there.

The rules are the store's (``store.nodes``, ``store.validate``): each field runs the store's own
check through :func:`~api.models.reuse_check`, so its message and field reach the answer as
before, and a body's keys are checked first, in the order sent, by the store's key checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from store.nodes import (
    MAX_SERVICE_PORTS,
    NODE_STATUSES,
    PRIORITIES,
    SERVICE_PORT_PROTOCOLS,
    SP_RESPONSE_MODES,
    SP_SENSITIVITIES,
    check_create_keys,
    check_interface,
    check_priority,
    check_service_ports,
    check_update_keys,
)
from store.validate import check_bool, check_choice, check_ip, check_optional_text

from . import RequestModel, ResponseModel, component, reuse_check
from .envelopes import Count, envelope, page
from .types import Name, Timestamp, Uuid, one_of

__all__ = [
    "DeployRequest",
    "Deployed",
    "Node",
    "NodeAnswer",
    "NodeBaseline",
    "NodeCreate",
    "NodeCreated",
    "NodeCreatedAnswer",
    "NodeDetail",
    "NodePage",
    "NodeUpdate",
    "ProtocolBreakdown",
    "ServicePort",
    "ServicePortInput",
    "no_null_default",
]


def _per_field(check: Callable[[Any, str], Any]) -> BeforeValidator:
    """The store's ``check(value, field)`` on the field it annotates, named as the field."""

    def run(value: Any, info: ValidationInfo) -> Any:
        return reuse_check(lambda v: check(v, str(info.field_name)))(value)

    return BeforeValidator(run)


IpAddress = Annotated[str, _per_field(check_ip), WithJsonSchema(component("IpAddress"))]
"""IPv4 or IPv6, stored in compressed form: ``store.validate.check_ip``."""
OptionalText = Annotated[
    str | None, _per_field(check_optional_text), WithJsonSchema(component("OptionalText"))
]
"""Trimmed; empty or null is unset: ``store.validate.check_optional_text``."""
_INTERFACE_SCHEMA = {"type": ["string", "null"], "pattern": "^([A-Za-z0-9_.:@-]{1,15})?$"}
Interface = Annotated[str, BeforeValidator(reuse_check(check_interface))]


def _choice(*choices: str) -> BeforeValidator:
    return _per_field(lambda v, name: check_choice(v, name, choices))


# --------------------------------------------------------------------------- answers


class ServicePort(ResponseModel):
    protocol: Annotated[str, one_of(*SERVICE_PORT_PROTOCOLS)]
    port_value: Annotated[str, Field(examples=["27015-27017,27020"])]
    label: str


class Node(ResponseModel):
    """A monitored server."""

    uuid: Uuid
    name: Annotated[str, Field(max_length=100)]
    ip: Annotated[str, Field(description="IPv4 or IPv6 address, in compressed form.")]
    location: Annotated[str, Field(max_length=100)] | None
    os: Annotated[str, Field(max_length=100)] | None
    interface: Annotated[str, Field(description="Network interface the agent watches.")]
    priority: Annotated[str, one_of(*PRIORITIES)]
    status: Annotated[
        str,
        one_of(
            *NODE_STATUSES,
            description="Derived on read: `attack` while an incident is active, `offline` when "
            "nothing was heard within `api.offline_after_secs`, `elevated` while the newest "
            "sample's pps is above `api.elevated_factor` times the node's baseline (and above "
            "`api.elevated_floor_pps`), else `online`.",
        ),
    ]
    last_seen: Timestamp | None
    last_pps: float | None
    last_bps: float | None
    agent_version: str | None
    last_heartbeat_at: Timestamp | None
    agent_status: Annotated[
        dict[str, Any] | None,
        Field(
            description="The newest ftagent heartbeat body as the agent sent it (baseline "
            "state, circuit breaker, retry queue, interfaces, ...); scalar fields only when it "
            "was over 16 KiB."
        ),
    ]
    agent_update_error: Annotated[
        str | None, Field(description="The agent's last self-update failure report.")
    ]
    agent_update_error_at: Timestamp | None
    sp_enabled: Annotated[bool, Field(description="Service-port protection on or off.")]
    sp_sensitivity: Annotated[str, one_of(*SP_SENSITIVITIES)]
    sp_response_mode: Annotated[str, one_of(*SP_RESPONSE_MODES)]
    service_ports: list[ServicePort]
    active_incidents: Count
    created_at: Timestamp
    updated_at: Timestamp


class NodeBaseline(ResponseModel):
    """Baseline traffic; every figure is null until the node sent telemetry. avg/p95/p99
    describe the last 24 hours in the lake; expected/threshold are the detector's own
    baseline."""

    avg_pps: float | None
    p95_pps: float | None
    p99_pps: float | None
    avg_bps: float | None
    p95_bps: float | None
    p99_bps: float | None
    samples: Count
    window_secs: Annotated[int, Field(ge=1)]
    expected_pps: Annotated[
        float | None,
        Field(
            description="The detector's expected pps for this node now (its daily and weekly "
            "rhythm included)."
        ),
    ]
    threshold_pps: Annotated[
        float | None,
        Field(
            description="The pps above which the detector counts a second as attack evidence now."
        ),
    ]
    expected_bps: float | None
    threshold_bps: float | None
    detector: Annotated[
        dict[str, Any] | None,
        Field(
            description="The detector's baseline now: per series (`pps`, `bps`, `udp_pps`, "
            "`syn_pps`...) its expected value and threshold, and how much the node has been "
            "learned."
        ),
    ]


class ProtocolBreakdown(ResponseModel):
    """Traffic per protocol, in percent of packets; every figure is null until telemetry
    arrives."""

    tcp: float | None
    udp: float | None
    icmp: float | None
    other: float | None


class NodeDetail(Node):
    """A node with its traffic figures."""

    baseline: NodeBaseline
    protocol_breakdown: ProtocolBreakdown
    conn_count: Count | None


class NodeCreated(NodeDetail):
    """The new node, with its agent API key."""

    api_key: Annotated[
        str,
        Field(
            pattern="^[0-9a-f]{64}$",
            description="The node's agent API key; shown only in this answer.",
        ),
    ]


class Deployed(ResponseModel):  # not envelope(): a field is called ``name``, as its argument
    """The node was registered."""

    ok: Literal[True]
    node_uuid: Uuid
    api_key: Annotated[str, Field(pattern="^[0-9a-f]{64}$", description="Shown only here.")]
    name: str
    ip: str


NodePage = page("NodePage", "nodes", Node, "Nodes, oldest first.")
NodeAnswer = envelope("NodeAnswer", node=NodeDetail)
NodeCreatedAnswer = envelope("NodeCreatedAnswer", node=NodeCreated)


# --------------------------------------------------------------------------- requests


def no_null_default(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of a body whose fields may be left out without a value of their
    own (``None`` in the model): their schemas name no ``default``."""
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class DeployRequest(RequestModel):
    """As NodeCreate, but other fields are ignored: installers in the wild send extras."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=no_null_default)

    name: Name
    ip: IpAddress
    location: OptionalText = None
    os: OptionalText = None
    interface: Annotated[
        Interface,
        WithJsonSchema(_INTERFACE_SCHEMA),
        Field(description="Network interface; empty or null means `eth0`."),
    ] = "eth0"
    priority: Annotated[
        str,
        BeforeValidator(reuse_check(check_priority)),
        WithJsonSchema({"enum": [*PRIORITIES, None]}),
        Field(description="Null means `production`."),
    ] = "production"


class NodeCreate(DeployRequest):
    """Names are unique within a workspace, regardless of case. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def known_fields(cls, body: Any) -> Any:
        return reuse_check(check_create_keys)(body)


class ServicePortInput(RequestModel):
    """One entry of a node's service ports."""

    # the list is checked and normalised as a whole (store.nodes.check_service_ports) before
    # its entries reach this model, so the fields hold the normalised values

    model_config = ConfigDict(json_schema_extra=no_null_default)

    protocol: Annotated[str, one_of(*SERVICE_PORT_PROTOCOLS)] = "tcp"
    port_value: Annotated[
        str,
        WithJsonSchema(
            {
                "oneOf": [
                    {
                        "type": "string",
                        "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$",
                    },
                    {"type": "integer", "minimum": 1, "maximum": 65535},
                ],
            }
        ),
        Field(
            description="Ports and ascending ranges within 1-65535, comma separated; spaces are "
            "removed."
        ),
    ]
    label: Annotated[str | None, WithJsonSchema(component("OptionalText"))] = None


_Priority = Annotated[str, _choice(*PRIORITIES), one_of(*PRIORITIES)]
_SpSensitivity = Annotated[str, _choice(*SP_SENSITIVITIES), one_of(*SP_SENSITIVITIES)]
_SpResponseMode = Annotated[str, _choice(*SP_RESPONSE_MODES), one_of(*SP_RESPONSE_MODES)]
_ServicePorts = Annotated[
    list[ServicePortInput],
    BeforeValidator(reuse_check(check_service_ports)),
    Field(max_length=MAX_SERVICE_PORTS, description="Replaces the whole list."),
]


class NodeUpdate(RequestModel):
    """Only the fields sent change. Read-only fields (`uuid`, `status`, `api_key`, timestamps,
    traffic figures) and unknown fields are refused."""

    model_config = ConfigDict(json_schema_extra=no_null_default)

    @model_validator(mode="before")
    @classmethod
    def changeable_fields(cls, body: Any) -> Any:
        return reuse_check(check_update_keys)(body)

    # None stands for "not sent" (see changes()): a value sent is never None after its check
    name: Name = None  # type: ignore[assignment]
    ip: IpAddress = None  # type: ignore[assignment]
    location: OptionalText = None
    os: OptionalText = None
    interface: Annotated[
        Interface,
        WithJsonSchema(_INTERFACE_SCHEMA),
        Field(description="Empty or null means `eth0`."),
    ] = None  # type: ignore[assignment]
    priority: _Priority = None  # type: ignore[assignment]
    sp_enabled: Annotated[bool, _per_field(check_bool)] = None  # type: ignore[assignment]
    sp_sensitivity: _SpSensitivity = None  # type: ignore[assignment]
    sp_response_mode: _SpResponseMode = None  # type: ignore[assignment]
    service_ports: _ServicePorts = None  # type: ignore[assignment]

    def changes(self) -> dict[str, Any]:
        """The fields sent, checked and normalised, for ``store.nodes.update_node``."""
        return self.model_dump(exclude_unset=True)
