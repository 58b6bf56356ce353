"""REST v1, Deploy API and health routes; each module owns one resource. The Agent API and its
REST side (agent config overrides, commands, reports, captures) are ``api/agentapi``."""

from aiohttp import web

from . import (
    channels,
    collectors,
    detection,
    health,
    incidents,
    nodes,
    prometheus,
    workspaces,
)

__all__ = ["ROUTE_TABLES"]

ROUTE_TABLES: list[web.RouteTableDef] = [
    health.routes,
    nodes.routes,
    incidents.routes,
    detection.routes,
    channels.routes,
    collectors.routes,
    workspaces.routes,
    prometheus.routes,
]
