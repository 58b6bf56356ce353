"""The Agent API: what Floodwatch serves to ftagent, a third-party agent (docs/agent-api.md is the
contract, endpoint by endpoint), and the REST endpoints operators use to steer it. One entry,
:func:`setup`, which ``api/app.py`` calls once.

* ``agent.py``: ``AgentApi``, authentication, body reading and the ftagent endpoints; ``guard``;
* ``hotpath.py``: the config cache, the metrics group commit, the replay watch, the metrics
  reading;
* ``defaults.py``: the config answer: built-in defaults, overrides overlaid, bulk loads;
* ``models.py``: the payload models (pydantic v2);
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
from ..ratelimit import FixedWindowLimiter
from . import admin, pcap, report_repo
from .agent import AGENT, PREFIX, AgentApi, guard
from .models import report_path

__all__ = ["AGENT", "AgentApi", "setup"]


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
    r.add_routes(admin.routes)
    return api
