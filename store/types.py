"""The domain types the repositories hand to ``api/``: one ``TypedDict`` per stored entity,
with the columns its queries select (and the values computed with them), so that a caller's
``row["subscription_status"]`` is checked by mypy instead of being an ``Any``.

They are dicts because the answers are built from them field by field and encoded as JSON
(``api.errors.json_bytes``); a typed dict costs nothing at run time. The typing starts at the
SQL edge: a repository converts ``rows_as_dicts`` once (:func:`typed_rows`), and every function
after it is checked. Entities not typed here yet (the Agent API's rows: commands, reports,
captures, a node's config row) still travel as ``dict[str, Any]``; docs/ARCHITECTURE.md ("Domain
types") lists them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, TypeVar, cast

__all__ = [
    "Channel",
    "CollectorKey",
    "DeployToken",
    "Incident",
    "IncidentDetail",
    "IncidentDetection",
    "IncidentForensics",
    "ListedIncident",
    "Node",
    "NodeTraffic",
    "ProtocolShares",
    "RenderedIncident",
    "ServicePort",
    "TrafficBaseline",
    "Workspace",
    "typed_row",
    "typed_rows",
]

T = TypeVar("T")


class Workspace(TypedDict):
    uuid: uuid.UUID
    name: str
    plan: str
    node_limit: int | None
    """``None``: no limit."""
    subscription_status: str
    parent_uuid: uuid.UUID | None
    """``None`` for a top-level workspace."""
    email: str | None
    created_at: datetime
    updated_at: datetime
    node_count: int
    """Live nodes, counted by the query."""
    sub_workspace_count: int
    """Live sub-workspaces, counted by the query."""


class DeployToken(TypedDict):
    """A deploy token's row; the token itself is never stored (only its hash)."""

    id: uuid.UUID
    workspace_uuid: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CollectorKey(TypedDict):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class Channel(TypedDict):
    id: int
    uuid: uuid.UUID
    name: str
    type: str
    config: dict[str, Any]
    """Decoded from its stored JSON, as ``notify`` validated it (secrets in clear: mask it
    before it leaves the server)."""
    enabled: bool
    created_at: datetime


class ServicePort(TypedDict):
    """One entry of a node's ``service_ports``, as ``store.nodes.check_service_ports`` stored
    it."""

    protocol: str
    port_value: str
    label: str


class Node(TypedDict):
    """A node as ``store.nodes.list_nodes``/``get_node`` select it (``_NODE_SELECT``), its JSON
    columns decoded; never its key hash, its workspace or its deletion time."""

    uuid: uuid.UUID
    name: str
    ip: str
    location: str | None
    os: str | None
    interface: str
    priority: str
    status: str
    """Derived by the query: one of ``store.nodes.NODE_STATUSES``."""
    last_seen: datetime | None
    last_pps: float | None
    last_bps: float | None
    agent_version: str | None
    last_heartbeat_at: datetime | None
    agent_status: dict[str, Any] | None
    """The newest ftagent heartbeat body, decoded, as the agent sent it."""
    agent_update_error: str | None
    agent_update_error_at: datetime | None
    sp_enabled: bool
    sp_sensitivity: str
    sp_response_mode: str
    service_ports: list[ServicePort]
    active_incidents: int
    """Active incidents, counted by the query."""
    created_at: datetime
    updated_at: datetime


class TrafficBaseline(TypedDict):
    """A node's traffic over the last ``window_secs`` of its per-second metrics in the lake;
    every figure ``None`` (and ``samples`` 0) without telemetry."""

    avg_pps: float | None
    p95_pps: float | None
    p99_pps: float | None
    avg_bps: float | None
    p95_bps: float | None
    p99_bps: float | None
    samples: int
    window_secs: int


class ProtocolShares(TypedDict):
    """Percent of packets per protocol; every figure ``None`` without telemetry."""

    tcp: float | None
    udp: float | None
    icmp: float | None
    other: float | None


class NodeTraffic(TypedDict):
    """``store.nodes.node_traffic_stats``: what Get Node adds to the :class:`Node`."""

    baseline: TrafficBaseline
    protocol_breakdown: ProtocolShares
    conn_count: int | None


class IncidentDetection(TypedDict):
    """An incident's ``detection`` object: the detector's own (``detect.engine``, stored as
    JSON), or for an incident only the agent saw, built from the agent's open report."""

    onset_at: str
    fired_at: str
    metric: str
    observed: float | None
    baseline: float | None
    threshold: float | None
    multiplier: float | None
    samples_above: int | None
    source: str
    """``floodwatch`` or ``ftagent``: who fired first."""
    detector: str


class Incident(TypedDict):
    """An incident as ``store.incidents.list_incidents`` selects it (``_LIST_COLUMNS``), with
    its node's name and address."""

    uuid: uuid.UUID
    id: int
    node_uuid: uuid.UUID
    node_name: str
    node_ip: str
    status: str
    """One of ``store.incidents.INCIDENT_STATUSES``."""
    severity: str
    """One of ``store.incidents.SEVERITIES``."""
    attack_family: str
    attack_subtype: str | None
    title: str | None
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    peak_pps: float
    peak_bps: float
    source_ip_count: int
    confidence: int | None
    duration_seconds: int
    """Computed by the query: to the resolution, or to now while active."""
    source: str
    campaign_id: str | None
    detection: IncidentDetection


class IncidentForensics(TypedDict, total=False):
    """What an agent's reports carry beyond the incident's own columns (docs/agent-api.md §8.4),
    each as the agent sent it; a key is present only if one of its reports had it. The order of
    the keys is ``store.incidents.FORENSIC_FIELDS``."""

    # host L3/L4
    top_src_ips: Any
    tcp_flag_breakdown: Any
    pkt_length_histogram: Any
    ttl_distribution: Any
    velocity_curve: Any
    ioc_hits: Any
    spoofing_detected: Any
    botnet_detected: Any
    src_ip_entropy: Any
    avg_pkt_length: Any
    dns_query_stats: Any
    total_packets: Any
    fragment_count: Any
    fragment_pct: Any
    attack_tool: Any
    baseline_pps: Any
    gre_dedup_active: Any
    inner_ip: Any
    inner_ip_label: Any
    vm_breakdown: Any
    mirror_mode: Any
    # service ports
    sp_zone: Any
    sp_service_pps: Any
    sp_non_service_pps: Any
    sp_top_sources: Any
    sp_blocks_deployed: Any
    # L7
    rps: Any
    peak_rps: Any
    baseline_rps: Any
    correlated_l3l4: Any
    l7_error_rate: Any
    l7_status_codes: Any
    l7_top_user_agents: Any
    l7_threat_patterns: Any
    l7_protocol_versions: Any
    l7_targeted_paths: Any


class IncidentDetail(Incident, IncidentForensics):
    """An incident as ``store.incidents.get_incident`` selects it (``_DETAIL_COLUMNS``): the
    list's columns, the forensic ones decoded from JSON, and the agent's forensic fields at the
    top level (:class:`IncidentForensics`)."""

    protocol_breakdown: dict[str, Any] | None
    geo_origin: dict[str, Any] | list[Any] | None
    top_sources: list[Any] | None
    top_dst_ports: list[Any] | None
    summary: str | None
    detail: dict[str, Any] | None
    """Detection's and the agent's raw findings (``open``, ``last_update``, ``resolve``...)."""


class ListedIncident(Incident):
    """An incident as List Incidents answers it (``store.incidents.listed``)."""

    family: str
    """A copy of ``attack_family``, for the hosting-panel modules that read it."""


class RenderedIncident(IncidentDetail):
    """An incident as Get Incident and the alert webhooks render it
    (``store.incidents.rendered``)."""

    family: str
    """A copy of ``attack_family``."""
    ai_summary: str | None
    """A copy of ``summary``, the hosted service's webhook name for it."""


def typed_row(row: Mapping[str, Any], kind: type[T]) -> T:
    """``row`` as the domain type ``kind`` (a ``TypedDict``; no check at run time: the query's
    column list is what makes it one)."""
    return cast(T, row)


def typed_rows(rows: list[dict[str, Any]], kind: type[T]) -> list[T]:
    return cast(list[T], rows)
