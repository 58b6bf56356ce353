"""Incidents (``/api/v1/incidents``): the objects answers hold, declared once for the OpenAPI
document and the tests. Incidents are read-only through REST (agents and detection create
them), so there is no request body here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, create_model

from store.incidents import FORENSIC_FIELDS, INCIDENT_STATUSES, SEVERITIES

from . import ResponseModel
from .envelopes import Count, envelope, page
from .types import Timestamp, Uuid, one_of

__all__ = [
    "Incident",
    "IncidentAnswer",
    "IncidentDetail",
    "IncidentDetection",
    "IncidentPage",
]


class IncidentDetection(ResponseModel):
    """Why the incident fired. For incidents only the agent saw, the figures come from the
    agent's open report (threshold and samples unknown: null)."""

    model_config = ConfigDict(extra="allow")

    onset_at: Annotated[
        Timestamp,
        Field(description="First anomalous second (event time); `started_at` is this."),
    ]
    fired_at: Annotated[
        Timestamp, Field(description="Event time of the second that confirmed the incident.")
    ]
    metric: Annotated[
        str,
        Field(description="The wire column that fired: `pps`, `bps`, `syn_pps`, `udp_pps`..."),
    ]
    observed: float | None
    baseline: Annotated[float | None, Field(description="Expected value of `metric` at onset.")]
    threshold: Annotated[
        float | None, Field(description="Incident threshold of `metric` at onset.")
    ]
    multiplier: Annotated[float | None, Field(description="observed / baseline.")]
    samples_above: Count | None
    source: Annotated[Literal["floodwatch", "ftagent"], Field(description="Who fired first.")]
    detector: Annotated[str, Field(description="Detector name and version.")]


class Incident(ResponseModel):
    """One attack on one node."""

    uuid: Uuid
    id: Annotated[int, Field(ge=1, description="Integer id, unique on this server.")]
    node_uuid: Uuid
    node_name: str
    node_ip: str
    status: Annotated[str, one_of(*INCIDENT_STATUSES)]
    severity: Annotated[str, one_of(*SEVERITIES)]
    attack_family: Annotated[str, Field(description="For example `udp_flood`, `tcp_syn`.")]
    family: Annotated[str, Field(description="Same as `attack_family` (compatibility).")]
    attack_subtype: str | None
    title: str | None
    started_at: Timestamp
    updated_at: Timestamp
    resolved_at: Timestamp | None
    peak_pps: float
    peak_bps: float
    source_ip_count: Count
    confidence: int | None
    duration_seconds: Annotated[
        int, Field(description="Seconds from start to resolution, or to now while active.")
    ]
    source: Annotated[
        str,
        Field(
            description="Who opened the incident: `floodwatch` (the server's own detector) or "
            "`ftagent` (the node's agent). One attack seen by both is one incident."
        ),
    ]
    campaign_id: Annotated[
        str | None,
        Field(
            description="Shared by the incidents of three or more nodes of the workspace hit by "
            "the same attack family within a minute; null otherwise."
        ),
    ]
    detection: IncidentDetection


def _left_out_without_default(schema: dict[str, Any]) -> None:
    """The forensic keys are absent when no report had them: no ``default`` in the schema."""
    for name in FORENSIC_FIELDS:
        schema["properties"].get(name, {}).pop("default", None)


class _IncidentDetail(Incident):
    model_config = ConfigDict(json_schema_extra=_left_out_without_default)

    protocol_breakdown: dict[str, Any] | None
    geo_origin: dict[str, Any] | list[Any] | None
    top_sources: list[Any] | None
    top_dst_ports: list[Any] | None
    summary: Annotated[str | None, Field(description="Written summary of the attack.")]
    ai_summary: Annotated[str | None, Field(description="Same as `summary`.")]
    detail: Annotated[dict[str, Any] | None, Field(description="Detection's raw findings.")]


def _forensic_field() -> Any:
    return (
        Any,
        Field(
            default=None,
            description="As the agent reported it (docs/agent-api.md §8.7), from its newest "
            "report that has it; present only if one did.",
        ),
    )


IncidentDetail: type[_IncidentDetail] = create_model(
    "IncidentDetail",
    __base__=_IncidentDetail,
    __module__=__name__,
    __doc__="An incident with its forensic detail. Agent incidents also carry, at the top "
    "level, what the agent reported beyond the incident's own columns (TCP flags, TTL and length "
    "histograms, velocity curve, L7 status codes, ...); `detail` keeps every report as sent.",
    **{name: _forensic_field() for name in FORENSIC_FIELDS},
)

IncidentPage = page("IncidentPage", "incidents", Incident, "Incidents, newest first.")
IncidentAnswer = envelope("IncidentAnswer", incident=IncidentDetail)
