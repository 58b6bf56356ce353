"""REST v1, Deploy API and health routes; each module owns one resource."""

from aiohttp import web

from . import (
    agent_admin,
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
    agent_admin.routes,
    detection.routes,
    channels.routes,
    collectors.routes,
    workspaces.routes,
    prometheus.routes,
]
