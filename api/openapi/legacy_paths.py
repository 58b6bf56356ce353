"""Operations still written by hand (issue 12 moves each next to its route)."""

from __future__ import annotations

from typing import Any

from .legacy_agent import agent_admin_paths, agent_paths


def legacy_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    paths.update(agent_paths())
    paths.update(agent_admin_paths())
    from ..agentapi.pcap import OPENAPI_PATHS  # local import: the route module imports us

    paths.update(OPENAPI_PATHS)
    return paths
