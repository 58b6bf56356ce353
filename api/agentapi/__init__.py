"""The Agent API: what Floodwatch serves to ftagent, a third-party agent (docs/agent-api.md is the
contract, endpoint by endpoint), and the REST endpoints operators use to steer it. One entry,
:func:`setup`, which ``api/app.py`` calls once. The operations of the routes it adds are
declared beside it (:data:`OPERATIONS`) and on the handlers of :data:`ROUTE_TABLES`.

* ``agent.py``: ``AgentApi``, authentication, body reading and the ftagent endpoints; ``guard``;
* ``hotpath.py``: the config cache, the metrics group commit, the replay watch, the metrics
  reading;
* ``defaults.py``: the config answer: built-in defaults, overrides overlaid, bulk loads;
* ``models.py``: the payload models (pydantic v2), ``answers.py`` the answers, ``overrides.py``
  the agent-config overrides operators set (their checks and models);
* ``pcap.py``: packet capture uploads, their REST listing and download;
* ``admin.py``: REST for operators: config overrides, commands, report views;
* ``incident_repo.py``, ``settings_repo.py``, ``report_repo.py``, ``pcap_repo.py``: the
  database and the capture files.

The incident rules (folding reports, severity, merge windows, expiry) are detection and live in
``detect/agent_incidents.py``.
"""

from __future__ import annotations

from aiohttp import web

from ingest.pipeline import Pipeline
from ingest.receiver import CachedCredentials
from store import Store
from store.clock import SYSTEM_CLOCK, Clock

from ..activity import ActivityTracker
from ..config import Config
from ..openapi.operations import Route
from ..ratelimit import FixedWindowLimiter
from . import admin, pcap, report_repo
from .agent import AGENT, PREFIX, AgentApi, agent_operation, guard, incident_ref
from .answers import (
    AgentConfig,
    AgentIncidentOpened,
    AgentIncidentReported,
    AgentOk,
    GreTunnelsAccepted,
)
from .models import (
    REPORT_MODELS,
    CommandAck,
    Heartbeat,
    IncidentOpen,
    IncidentReport,
    Metrics,
    report_path,
)

__all__ = ["AGENT", "OPERATIONS", "ROUTE_TABLES", "AgentApi", "setup"]

ROUTE_TABLES: list[web.RouteTableDef] = [admin.routes, pcap.routes]
"""The REST routes of the package (deploy token), added by :func:`setup`."""


def setup(
    app: web.Application,
    cfg: Config,
    store: Store,
    pipeline: Pipeline,
    credentials: CachedCredentials,
    activity: ActivityTracker,
    auth_failures: FixedWindowLimiter,
    clock: Clock = SYSTEM_CLOCK,
) -> AgentApi:
    """Register every route of the Agent API and of its REST side on ``app``; returns the
    ``AgentApi`` whose caches the application clears after writes and whose metrics batcher
    it drains on shutdown."""
    api = AgentApi(
        store,
        pipeline,
        credentials,
        activity,
        auth_failures,
        config_cache_secs=cfg.api.agent_config_cache_secs,
        incident_expiry_secs=cfg.api.agent_incident_expiry_secs,
        data_path=cfg.data_path,
        pcap_retention_days=cfg.api.pcap_retention_days,
        clock=clock,
    )
    app[AGENT] = api
    r = app.router
    r.add_get(f"{PREFIX}/config", guard("config", api.config), allow_head=False)
    r.add_post(f"{PREFIX}/heartbeat", guard("heartbeat", api.heartbeat))
    r.add_post(f"{PREFIX}/metrics", guard("metrics", api.metrics))
    w = api.store  # these calls write before they answer
    r.add_post(f"{PREFIX}/incidents", guard("incident_open", api.open_incident, w))
    r.add_post(f"{PREFIX}/incidents/{{uuid}}", guard("incident_update", api.update_incident, w))
    r.add_post(
        f"{PREFIX}/incidents/{{uuid}}/resolve",
        guard("incident_resolve", api.resolve_incident, w),
    )
    r.add_post(f"{PREFIX}/commands/ack", guard("command_ack", api.command_ack, w))
    for kind in report_repo.REPORT_KINDS:
        r.add_post(f"{PREFIX}/{report_path(kind)}", guard(kind, api.report(kind), w))
    pcap.setup(app)
    for table in ROUTE_TABLES:
        r.add_routes(table)
    return api


# --------------------------------------------------------------------------- OpenAPI


_TOLERANT = (
    " Any JSON object is accepted (sparse, unknown fields kept, ints for floats); a known "
    "field of an impossible type is 400. An identical consecutive report counts as a repeat."
)

_REPORTS: dict[str, tuple[str, str, str]] = {
    "gre-tunnels": (
        "agentGreTunnels",
        "GRE tunnels (ftagent)",
        "Stores the node's tunnel inventory; answers the tunnels' remote endpoints as "
        "`whitelisted`.",
    ),
    "vm-stats": ("agentVmStats", "Per-VM traffic (ftagent)", "Stores the hypervisor VM totals."),
    "sp-metrics": (
        "agentSpMetrics",
        "Service-port metrics (ftagent)",
        "Stores the service-port traffic split.",
    ),
    "sp-blocks": (
        "agentSpBlocks",
        "Service-port blocks (ftagent)",
        "Stores the source blocks the agent just installed.",
    ),
    "l7-detect": (
        "agentL7Detect",
        "Web-server detection (ftagent)",
        "Stores the web-server discovery result or the log path now tailed; opens no incident.",
    ),
    "l7-metrics": (
        "agentL7Metrics",
        "HTTP metrics (ftagent)",
        "Stores the statistics of a 10 s window of access-log lines; opens no incident.",
    ),
    "mirror-metrics": (
        "agentMirrorMetrics",
        "Mirror metrics (ftagent)",
        "Stores the per-destination-IP snapshot of a mirror node.",
    ),
}
"""report kind -> operation id, summary, description."""

OPERATIONS: list[Route] = [
    Route(
        "GET",
        f"{PREFIX}/config",
        agent_operation(
            "agentConfig",
            "Agent configuration (ftagent)",
            "The complete configuration object, not wrapped in an envelope.",
            AgentConfig,
        ),
    ),
    Route(
        "POST",
        f"{PREFIX}/heartbeat",
        agent_operation(
            "agentHeartbeat",
            "Heartbeat (ftagent)",
            "Marks the node as seen now and records the agent version.",
            AgentOk,
            request=Heartbeat,
        ),
    ),
    Route(
        "POST",
        f"{PREFIX}/metrics",
        agent_operation(
            "agentMetrics",
            "Traffic metrics (ftagent)",
            "One metrics row, stamped on arrival, into the lake (source `ftagent`).",
            AgentOk,
            request=Metrics,
        ),
    ),
    Route(
        "POST",
        f"{PREFIX}/incidents",
        agent_operation(
            "agentOpenIncident",
            "Open an incident (ftagent)",
            "Opens an incident; a replayed open (same `started_at`, family and `inner_ip`) "
            "answers the existing uuid.",
            AgentIncidentOpened,
            request=IncidentOpen,
        ),
    ),
    *(
        Route(
            "POST",
            f"{PREFIX}/incidents/{{uuid}}{suffix}",
            agent_operation(
                operation_id,
                summary,
                description,
                AgentIncidentReported,
                request=IncidentReport,
                errors=(404,),
                parameters=(incident_ref("upserted"),),
            ),
        )
        for suffix, operation_id, summary, description in (
            (
                "",
                "agentUpdateIncident",
                "Update an incident (ftagent)",
                "Merges the update into the node's incident; an unknown uuid creates it.",
            ),
            (
                "/resolve",
                "agentResolveIncident",
                "Resolve an incident (ftagent)",
                "Resolves the node's incident (creating it when unknown); replays are merged.",
            ),
        )
    ),
    Route(
        "POST",
        f"{PREFIX}/commands/ack",
        agent_operation(
            "agentCommandAck",
            "Acknowledge a remote command (ftagent)",
            "Records the outcome of a command; duplicate acks are accepted.",
            AgentOk,
            request=CommandAck,
        ),
    ),
    *(
        Route(
            "POST",
            f"{PREFIX}/{report_path(kind)}",
            agent_operation(
                operation_id,
                summary,
                description + _TOLERANT,
                GreTunnelsAccepted if kind == "gre-tunnels" else AgentOk,
                request=REPORT_MODELS[kind],
            ),
        )
        for kind, (operation_id, summary, description) in _REPORTS.items()
    ),
    *pcap.OPERATIONS,
]
"""The ftagent endpoints, which ``setup`` adds imperatively (the report endpoints from
``report_repo.REPORT_KINDS``, whose every kind ``_REPORTS`` describes)."""
