"""Answers of the aggregates (``GET /api/v1/analytics/summary``, ``GET /api/v1/status``), computed
by ``store.analytics``; the routes are in ``api/routes/workspaces.py``.

The per-severity and per-status counts name their keys one by one, as the store fills them from
``SEVERITIES``, ``INCIDENT_STATUSES`` and ``NODE_STATUSES``; ``tests/test_analytics_models.py``
checks that the two stay the same.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import Field

from store.analytics import RANGES, STATUS_PAGE_MAX_NODES
from store.nodes import NODE_STATUSES, PRIORITIES

from . import ResponseModel
from .envelopes import Count
from .types import Timestamp, Uuid, one_of

__all__ = [
    "AnalyticsDay",
    "AnalyticsIncidents",
    "AnalyticsSummary",
    "AnalyticsTopNode",
    "IncidentStatusCounts",
    "NodeStatusCounts",
    "SeverityCounts",
    "StatusIncidents",
    "StatusNode",
    "StatusOverview",
]

Figure = float
"""A traffic figure (packets or bits per second)."""


# --------------------------------------------------------------------------- analytics summary


class SeverityCounts(ResponseModel):
    critical: Count
    high: Count
    medium: Count
    low: Count


class IncidentStatusCounts(ResponseModel):
    active: Count
    resolved: Count
    false_positive: Count


class AnalyticsIncidents(ResponseModel):
    total: Count
    by_severity: SeverityCounts
    by_family: Annotated[
        dict[str, Annotated[int, Field(ge=1)]],
        Field(description="Incident count per attack family, largest first."),
    ]
    by_status: IncidentStatusCounts


class AnalyticsDay(ResponseModel):
    """One UTC day: its incidents (all, then per severity) and their highest pps."""

    date: datetime.date
    total: Count
    critical: Count
    high: Count
    medium: Count
    low: Count
    peak_pps: Figure


class AnalyticsTopNode(ResponseModel):
    node_uuid: Uuid
    name: str
    incidents: Annotated[int, Field(ge=1)]
    peak_pps: Figure
    peak_bps: Figure


class AnalyticsSummary(ResponseModel):
    """Incident analytics over `range`, counted by start time."""

    ok: Literal[True]
    range: Annotated[str, one_of(*RANGES)]
    since: Timestamp
    until: Timestamp
    incidents: AnalyticsIncidents
    series: Annotated[
        list[AnalyticsDay],
        Field(description="One entry per UTC day of the range, oldest first."),
    ]
    top_nodes: Annotated[
        list[AnalyticsTopNode],
        Field(max_length=10, description="Nodes with the most incidents in the range."),
    ]
    peak_pps: Figure
    peak_bps: Figure
    total_attack_seconds: Annotated[
        Count, Field(description="Summed incident durations, false positives excluded.")
    ]
    mttr_seconds: Annotated[
        float | None, Field(description="Mean time to resolve; null without data.")
    ]


# --------------------------------------------------------------------------- status overview


class NodeStatusCounts(ResponseModel):
    """`total` counts every node; the others, the nodes listed in `nodes`."""

    total: Count
    online: Count
    offline: Count
    attack: Count
    elevated: Count


class StatusIncidents(ResponseModel):
    active: Count
    last_24h: Annotated[Count, Field(description="Incidents started in the last 24 hours.")]


class StatusNode(ResponseModel):
    """A node as the status page shows it (fields of the node object)."""

    uuid: Uuid
    name: Annotated[str, Field(max_length=100)]
    ip: Annotated[str, Field(description="IPv4 or IPv6 address, in compressed form.")]
    location: Annotated[str | None, Field(max_length=100)]
    priority: Annotated[str, one_of(*PRIORITIES)]
    status: Annotated[str, one_of(*NODE_STATUSES, description="As the node object says it.")]
    last_seen: Timestamp | None
    last_pps: Figure | None
    last_bps: Figure | None
    active_incidents: Count


class StatusOverview(ResponseModel):
    """Every node's state at a glance, for status pages and NOC screens."""

    ok: Literal[True]
    status: Annotated[
        str,
        one_of(
            "operational",
            "degraded",
            "under_attack",
            description="`under_attack` if any node is, `degraded` if any is offline or elevated.",
        ),
    ]
    generated_at: Timestamp
    counts: NodeStatusCounts
    incidents: StatusIncidents
    nodes: Annotated[list[StatusNode], Field(max_length=STATUS_PAGE_MAX_NODES)]
    truncated: Annotated[
        bool,
        Field(description=f"True when `nodes` holds only the first {STATUS_PAGE_MAX_NODES} nodes."),
    ]
