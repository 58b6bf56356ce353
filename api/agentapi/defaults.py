"""The config answer of ``GET /agent/config`` (docs/agent-api.md §4): the built-in defaults
of every key the agent reads (``config_body``), how the workspace's and the node's overrides
overlay them (``config_answer``; the overrides themselves are checked and stored by
``settings_repo``), and how answers are loaded, one node at a time or for every live node at
once (``load_config``, ``load_all_answers``) for the config cache of ``hotpath``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from store import Connection

from ..errors import json_bytes
from . import settings_repo

__all__ = [
    "AgentTraits",
    "config_answer",
    "config_body",
    "load_all_answers",
    "load_all_configs",
    "load_config",
]


@dataclass(frozen=True)
class AgentTraits:
    """What the node's newest heartbeat says about how its agent runs (§6.2): whether a flow
    collector exists (``flow_active``, or a flow-only mirror) and whether it is a mirror."""

    flow: bool = False
    mirror: bool = False

    @classmethod
    def of(cls, heartbeat: dict[str, Any] | None) -> AgentTraits:
        hb = heartbeat or {}
        return cls(
            flow=hb.get("flow_active") is True or hb.get("mirror_flow_only") is True,
            mirror=hb.get("mirror_mode") is True,
        )


def config_body(node: dict[str, Any], traits: AgentTraits | None = None) -> dict[str, Any]:
    """The config object (§4.1): every key the agent reads with its documented type, except
    those its local file also sets where absent means "unchanged".

    ``flow.enabled`` defaults to what the node's heartbeat reported (§4.4: a node that
    runs a collector, enabled in its local file or a flow-only mirror, must keep getting
    ``enabled: true`` or it stops using it); an operator's override decides over it."""
    traits = traits or AgentTraits()
    ports = [
        {"protocol": str(p.get("protocol") or "both"), "port_value": str(p.get("port_value"))}
        for p in node.get("service_ports") or []
        if isinstance(p, dict) and p.get("port_value")
    ]
    return {
        # ``pcap_enabled`` and ``velocity_detection`` are also set in the agent's local file
        # and absent means "unchanged" (§4.2): they go out only once an operator sets them, so
        # a node with capture turned off locally is not switched on by a default
        "pps_threshold": 0,
        "dynamic_threshold": True,
        "ioc_patterns": [],
        "ip_blocklist": [],
        "attack_holddown": 10,
        "attack_cooldown": 120,
        "confirm_ticks": 5,
        "flow": {
            "enabled": traits.flow,
            "protocol": "auto",
            "port": 0,
            "sample_rate": 0,
            "source_ips": [],
            "node_ip": "",
        },
        "l7": {
            "enabled": False,
            "sensitivity": "medium",
            "rps_threshold": None,
            "error_rate_threshold": 50,
        },
        "service_ports": {
            "enabled": bool(node.get("sp_enabled")),
            "ports": ports,
            "pps_threshold": 100,
            "response_mode": str(node.get("sp_response_mode") or "full"),
            "block_cooldown": 300,
            "block_scope": "non_service",
            "ip_safelist": [],
            "sensitivity": str(node.get("sp_sensitivity") or "standard"),
        },
        "pending_commands": [],
    }


def _stored_traits(row: dict[str, Any]) -> AgentTraits:
    status = row.get("agent_status")
    return AgentTraits.of(orjson.loads(status) if isinstance(status, str) else None)


def config_answer(
    row: dict[str, Any],
    layers: tuple[dict[str, Any], dict[str, Any]],
    pending: list[dict[str, Any]],
    traits: AgentTraits,
) -> dict[str, Any]:
    """The config answer of a node: its defaults (``config_body``) overlaid by the workspace's
    and then the node's overrides (``layers``), with its unacknowledged commands. ``mirror_*``
    keys only go to mirror nodes (§4.2: a non-mirror agent errors on
    ``mirror_ip_limit``)."""
    body = settings_repo.overlay(config_body(row, traits), layers)
    if not traits.mirror:
        body = {k: v for k, v in body.items() if not k.startswith("mirror_")}
    body["pending_commands"] = pending
    return body


def load_config(
    con: Connection, ws: uuid.UUID, node: uuid.UUID, traits: AgentTraits | None = None
) -> tuple[dict[str, Any], AgentTraits] | None:
    """The node's config answer and the traits it was built with; None when the node is gone.
    ``traits`` are the newest heartbeat's when this process holds one not yet written; else
    they come from the stored heartbeat."""
    row = settings_repo.node_config_row(con, node)
    if row is None:
        return None
    traits = traits or _stored_traits(row)
    layers = (
        settings_repo.get_overrides(con, ws, None),
        settings_repo.get_overrides(con, ws, node),
    )
    return config_answer(row, layers, settings_repo.pending_commands(con, node), traits), traits


def load_all_configs(
    con: Connection, limit: int, known: dict[str, AgentTraits]
) -> list[tuple[str, dict[str, Any], AgentTraits]]:
    """(node, answer, traits) of up to ``limit`` live nodes in four queries, for a server that
    starts with a fleet about to poll (``known``: traits this process holds)."""
    overrides = settings_repo.all_overrides(con)
    pending = settings_repo.all_pending_commands(con)
    out = []
    for row in settings_repo.all_node_config_rows(con, limit):
        node, ws = row["uuid"], row["workspace_uuid"]
        traits = known.get(node) or _stored_traits(row)
        layers = (overrides.get((ws, None), {}), overrides.get((ws, node), {}))
        out.append((node, config_answer(row, layers, pending.get(node, []), traits), traits))
    return out


def load_all_answers(
    con: Connection, limit: int, known: dict[str, AgentTraits]
) -> list[tuple[str, bytes, AgentTraits]]:
    """``load_all_configs`` with the answers already serialized (on the reader thread: for a
    large fleet that is too much work for the event loop in one go)."""
    return [(node, json_bytes(body), t) for node, body, t in load_all_configs(con, limit, known)]
