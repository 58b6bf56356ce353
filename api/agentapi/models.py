"""The bodies ftagent posts, declared once with pydantic v2 (docs/agent-api.md §6, §7, §8, §5.3,
§10), following the conventions of ``api/models``: :func:`api.models.validate` checks a body and
answers 400 ``invalid_parameter`` naming the ``field``, as the Agent API always has.

The agent's bodies differ from REST bodies in one way: they are read tolerantly (§2.4). Unknown
fields are allowed (a newer agent sends more, and the incident and heartbeat bodies are kept as
sent), and a field the server reads is refused only where the agent could never send that value
and a retry would not help: ``pps``/``bps`` of a metrics post, a non-integer ``command_id``, a
report's known field of an impossible type. Everywhere else an unusable value is read as absent
(:data:`Tolerant`).

Where the models run: the incident calls, the ack and the reports validate through them. The
metrics post and the heartbeat, which every node makes every 5 and 30 s, keep their hand-written
reading (``hotpath.metrics_row``, ``agent.AgentApi.heartbeat``): docs/ARCHITECTURE.md ("Typed
models: library choice") has the figures, and ``tests/test_agent_models.py`` proves that the
model and the hand check accept and refuse the same bodies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from detect.agent_incidents import num

from ..models import RequestModel, invalid
from ..models.types import Uuid
from .settings_repo import COMMAND_TYPES, MAX_COMMAND_TEXT

__all__ = [
    "REPORT_FIELDS",
    "REPORT_MODELS",
    "AgentPayload",
    "CommandAck",
    "CommandCreate",
    "Heartbeat",
    "IncidentOpen",
    "IncidentReport",
    "Metrics",
    "Tolerant",
    "is_number",
    "report_path",
]


class AgentPayload(RequestModel):
    """Strict where a field is checked at all, and unknown fields allowed."""

    model_config = ConfigDict(extra="allow")


def _tolerant(read: Callable[[Any], Any]) -> Any:
    return BeforeValidator(read)


def _schema(description: str | None = None, **schema: Any) -> Any:
    """The schema a body field shows; a tolerant field's takes any value (no ``type``): the
    document must not refuse what the server reads as absent."""
    if description is not None:
        schema["description"] = description
    return WithJsonSchema(schema, mode="validation")


_ANY_NUMBER = _schema("A finite non-negative number; anything else reads as absent.")
_ANY_TEXT = _schema("A string; anything else reads as absent.")


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> bool:
    return value is True


TolerantNumber = Annotated[float | None, _tolerant(num), _ANY_NUMBER]
"""A finite non-negative number (an int too); anything else reads as null."""
TolerantText = Annotated[str | None, _tolerant(_text_or_none), _ANY_TEXT]
"""A string; anything else reads as null."""
TolerantFlag = Annotated[bool, _tolerant(_flag), _schema("true; anything else reads as false.")]
"""``true``; anything else reads as ``false``."""
Tolerant = Annotated[Any, Field(description="Kept as sent; never refused.")]


def _required(*names: str) -> Callable[[dict[str, Any]], None]:
    """The schema of a model whose ``names`` are checked on a field left out too (their
    ``default`` only makes the check run): required."""

    def edit(schema: dict[str, Any]) -> None:
        schema["required"] = list(names)
        for name in names:
            schema["properties"][name].pop("default", None)

    return edit


def _measure(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        out = num(value)
        if out is None:
            raise invalid(f"{name} must be a non-negative number", name)
        return out

    return check


# The check runs on a field left out too (``validate_default``), so that a missing pps answers
# as an unusable one always has.
class Metrics(AgentPayload):
    """``POST /agent/metrics`` (§7.1): one sample of the node's traffic. ``pps`` and ``bps``
    must be usable (400 otherwise, the agent drops the post); the rest is read when usable."""

    model_config = ConfigDict(json_schema_extra=_required("pps", "bps"))

    pps: Annotated[float, BeforeValidator(_measure("pps"))] = Field(
        default=None, validate_default=True, ge=0, description="Packets per second."
    )
    bps: Annotated[float, BeforeValidator(_measure("bps"))] = Field(
        default=None, validate_default=True, ge=0, description="Bits per second."
    )
    tcp_pct: TolerantNumber = Field(default=None, description="TCP's share of pps, 0-100.")
    udp_pct: TolerantNumber = Field(default=None, description="UDP's share of pps, 0-100.")
    icmp_pct: TolerantNumber = Field(default=None, description="ICMP's share of pps, 0-100.")
    conn_count: TolerantNumber = Field(default=None, description="Open connections.")
    avg_pps: TolerantNumber = Field(default=None, description="No lake column; not kept.")
    threshold: TolerantNumber = Field(default=None, description="No lake column; not kept.")
    samples: TolerantNumber = Field(default=None, description="No lake column; not kept.")


def _version(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    return value


class Heartbeat(AgentPayload):
    """``POST /agent/heartbeat`` (§6.1): never refused; kept as sent (§6.2). The fields the
    server reads itself are declared; a body of only the six fields of ``ftagent --test``
    (§6.3) and a body with ``update_error`` but no ``version`` (§6.4) are told apart by the
    handler."""

    version: Annotated[
        str | None,
        _tolerant(_version),
        _schema("The agent's version, at most 64 characters; anything else reads as absent."),
    ] = None
    current_version: Annotated[str | None, _tolerant(_version), _ANY_TEXT] = Field(
        default=None, description="Read when version is absent."
    )
    update_error: TolerantText = Field(default=None, description="A self-update failure (§6.4).")
    retry_queue_size: Annotated[
        int | None,
        _tolerant(lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None),
        _ANY_NUMBER,
    ] = Field(default=None, description="Posts the agent's retry queue holds (§7.2).")
    flow_active: TolerantFlag = False
    mirror_flow_only: TolerantFlag = False
    mirror_mode: TolerantFlag = False


class IncidentReport(AgentPayload):
    """An update or resolve (§8.2, §8.3), also the base of the open: every field is read when
    usable and the whole body is kept in the incident's ``detail`` (§8.7); nothing is
    refused."""

    attack_family: TolerantText = None
    attack_subtype: TolerantText = None
    inner_ip: TolerantText = None
    peak_pps: TolerantNumber = None
    peak_bps: TolerantNumber = None
    rps: TolerantNumber = None
    peak_rps: TolerantNumber = None
    source_ip_count: TolerantNumber = None
    protocol_breakdown: Tolerant = None
    top_src_ips: Tolerant = None
    top_dst_ports: Tolerant = None
    confidence: TolerantNumber = Field(default=None, description="Read from the resolve.")
    duration_seconds: TolerantNumber = Field(default=None, description="Read from the resolve.")


class IncidentOpen(IncidentReport):
    """``POST /agent/incidents`` (§8.1)."""

    started_at: TolerantText = Field(
        default=None, description="ISO 8601 with a zone; the arrival time when unusable."
    )


def _command_id(value: Any) -> int:
    # isdecimal, not isdigit: a superscript two is a digit that int() does not read
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise invalid("command_id must be an integer", "command_id")
    return value


class CommandAck(AgentPayload):
    """``POST /agent/commands/ack`` (§5.3). ``command_id`` is an integer (digits in a string
    too); ``status`` and ``error`` are cut to 32 and 4000 characters."""

    model_config = ConfigDict(json_schema_extra=_required("command_id"))

    command_id: Annotated[
        int,
        BeforeValidator(_command_id),
        _schema(
            "The command's id: an integer, or its digits in a string.",
            anyOf=[
                {"type": "integer", "minimum": -(2**63) + 1, "maximum": 2**63 - 1},
                {"type": "string"},
            ],
        ),
    ] = Field(default=None, validate_default=True)
    status: Annotated[
        str,
        _tolerant(lambda v: v[:32] if isinstance(v, str) and v else "unknown"),
        _schema("applied, failed, ...; anything but a non-empty string reads as unknown."),
    ] = "unknown"
    error: Annotated[
        str | None, _tolerant(lambda v: v[:4000] if isinstance(v, str) else None), _ANY_TEXT
    ] = None


# --------------------------------------------------------------------------- reports (§10)

_NUMBER, _LIST, _OBJECT, _STRING = "number", "list", "object", "string"

REPORT_FIELDS: dict[str, dict[str, str]] = {
    "gre-tunnels": {"tunnels": _LIST},
    "vm-stats": {"vms": _LIST},
    "sp-metrics": {
        "service_pps": _NUMBER,
        "service_bps": _NUMBER,
        "non_service_pps": _NUMBER,
        "non_service_bps": _NUMBER,
        "blocked_pps": _NUMBER,
        "active_blocks": _NUMBER,
    },
    "sp-blocks": {"incident_uuid": _STRING, "blocks": _LIST},
    "l7-detect": {
        "web_server": _STRING,
        "server_version": _STRING,
        "detected_paths": _LIST,
        "active_log_path": _STRING,
    },
    "l7-metrics": {
        "rps": _NUMBER,
        "error_rate": _NUMBER,
        "unique_ips": _NUMBER,
        "total_requests": _NUMBER,
        "top_paths": _OBJECT,
        "top_ips": _OBJECT,
        "status_codes": _OBJECT,
        "window_seconds": _NUMBER,
        "top_user_agents": _OBJECT,
        "threat_patterns": _OBJECT,
        "bot_request_pct": _NUMBER,
        "avg_response_ms": _NUMBER,
        "status_5xx": _NUMBER,
        "status_4xx": _NUMBER,
        "status_499": _NUMBER,
        "protocol_versions": _OBJECT,
        "rps_per_ip": _NUMBER,
        "h2_pct": _NUMBER,
        "h3_pct": _NUMBER,
    },
    "mirror-metrics": {
        "ips": _LIST,
        "total_pps": _NUMBER,
        "total_bps": _NUMBER,
        "tracked_ip_count": _NUMBER,
        "active_attacks": _NUMBER,
        "mirror_engine": _OBJECT,
    },
}
"""Each report kind's known top-level fields and the JSON type each must have when present and
not null (§10.6); the path of the report's endpoint with ``/`` turned into ``-``."""


def is_number(value: Any) -> bool:
    """A finite number, an int too, never a bool."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(float(value))
    )


_TYPES: dict[str, tuple[Any, Callable[[Any], bool]]] = {
    _NUMBER: (float, is_number),
    _LIST: (list[Any], lambda v: isinstance(v, list)),
    _OBJECT: (dict[str, Any], lambda v: isinstance(v, dict)),
    _STRING: (str, lambda v: isinstance(v, str)),
}


def _report_field(name: str, want: str) -> Any:
    kind, matches = _TYPES[want]
    article = "an" if want == _OBJECT else "a"

    def check(value: Any) -> Any:
        if value is None or matches(value):
            return value
        raise invalid(f"{name} must be {article} {want} or null", name)

    return (Annotated[kind | None, BeforeValidator(check)], None)


def report_path(kind: str) -> str:
    """The endpoint of a report kind under ``/api/v1/agent/``: ``sp-metrics`` is ``sp/metrics``."""
    return kind.replace("sp-", "sp/").replace("l7-", "l7/")


def _report_model(kind: str) -> type[AgentPayload]:
    name = "".join(part.capitalize() for part in kind.split("-")) + "Report"
    fields = {field: _report_field(field, want) for field, want in REPORT_FIELDS[kind].items()}
    model: type[AgentPayload] = create_model(name, __base__=AgentPayload, **fields)
    model.__doc__ = f"``POST /agent/{report_path(kind)}``: any object (§10.6)."
    return model


REPORT_MODELS: dict[str, type[AgentPayload]] = {kind: _report_model(kind) for kind in REPORT_FIELDS}
"""report kind -> its model."""


# --------------------------------------------------------------------------- operators (§5.2)


class CommandCreate(RequestModel):
    """A remote command for the node's agent (docs/agent-api.md §5.2); unknown fields are
    refused."""

    # the handler refuses unknown fields through this model; settings_repo.create_command
    # checks the values, as it needs the database for the incident

    command_type: Literal[COMMAND_TYPES] = "iptables"  # type: ignore[valid-type]
    command_text: Annotated[
        str, Field(min_length=1, max_length=MAX_COMMAND_TEXT, pattern=r"\S")
    ] = Field(
        description='An xdp command is a JSON object of type "xdp_filter" or "xdp_filter_remove".'
    )
    title: Annotated[str | None, Field(max_length=200)] = None
    incident_uuid: Uuid | None = Field(
        default=None,
        description="Makes the command a mitigation of this active incident of the node: when "
        "the incident ends, its undo is queued and, if the agent never acknowledged it, the "
        "command is withdrawn.",
    )
    undo_command_text: Annotated[
        str | None, Field(min_length=1, max_length=MAX_COMMAND_TEXT, pattern=r"\S")
    ] = Field(
        default=None,
        description="The lines that take the mitigation back. For iptables/ip6tables rules "
        "added with -A or -I it is derived (-D) when omitted; ftagent itself only cleans up "
        "nft and xdp rules.",
    )
