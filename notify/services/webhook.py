"""The generic webhook: the hosted service's documented JSON body, signed with HMAC-SHA256.

Receivers written for the hosted service verify it unchanged: the body keeps every documented
field under its documented name (``event_type``, ``timestamp``, ``incident{...}``,
``node{id, name, ip_address}``) and ``X-Flowtriq-Signature: sha256=<hex>`` is the lowercase
hex HMAC-SHA256 of the raw body keyed by the channel's secret. Floodwatch adds fields (never
renames) and sends the same signature as ``X-Floodwatch-Signature``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import aiohttp

from ..events import AlertEvent, Attempt, ChannelTarget, event_timestamp
from ..http import dumps, request, secret_values

__all__ = ["payload", "send", "signature"]

_INCIDENT_KEYS = (
    "id",
    "uuid",
    "title",
    "attack_family",
    "severity",
    "peak_pps",
    "peak_bps",
    "source_ip_count",
    "started_at",
)
_EXTRA_INCIDENT_KEYS = ("attack_subtype", "status", "resolved_at", "confidence", "campaign_id")


def _incident(event: AlertEvent) -> dict[str, Any]:
    src: Mapping[str, Any] = event.incident or {}
    out: dict[str, Any] = {key: src.get(key) for key in _INCIDENT_KEYS}
    out["ai_summary"] = src.get("ai_summary") or src.get("summary")
    out["dashboard_url"] = event.dashboard_url
    for key in _EXTRA_INCIDENT_KEYS:
        out[key] = src.get(key)
    detection = src.get("detection")
    out["detection"] = dict(detection) if isinstance(detection, Mapping) else None
    if event.kind == "test" and event.incident is None:
        out["title"] = "Floodwatch test alert"
    return out


def _node(event: AlertEvent) -> dict[str, Any]:
    node: Mapping[str, Any] = event.node or {}
    src: Mapping[str, Any] = event.incident or {}
    return {
        "id": node.get("id"),
        "name": node.get("name", src.get("node_name")),
        "ip_address": node.get("ip", src.get("node_ip")),
        "uuid": node.get("uuid", src.get("node_uuid")),
    }


def payload(event: AlertEvent, delivery_id: str) -> dict[str, Any]:
    """The webhook body. ``incident`` and ``node`` always have every key (null when unknown),
    so a test event without an incident has the same shape as a real one."""
    return {
        "event_type": event.kind,
        "timestamp": event_timestamp(event),
        "incident": _incident(event),
        "node": _node(event),
        "event_id": event.event_id,
        "delivery_id": delivery_id,
        "end_reason": event.end_reason,
        "changes": list(event.changes),
        "workspace": {
            "uuid": event.workspace.get("uuid"),
            "name": event.workspace.get("name"),
        },
    }


def signature(secret: str, body: bytes) -> str:
    """``sha256=`` and the lowercase hex HMAC-SHA256 of ``body`` keyed by ``secret``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def send(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    body = dumps(payload(event, delivery_id))
    headers: dict[str, str] = {}
    custom = config.get("headers")
    if isinstance(custom, Mapping):
        headers.update({str(k): str(v) for k, v in custom.items()})
    headers.update(
        {
            "X-Floodwatch-Event": event.kind,
            "X-Flowtriq-Event": event.kind,
            "X-Floodwatch-Delivery": delivery_id,
            "Idempotency-Key": delivery_id,
        }
    )
    secret = config.get("secret")
    if isinstance(secret, str) and secret:
        sig = signature(secret, body)
        headers["X-Flowtriq-Signature"] = sig
        headers["X-Floodwatch-Signature"] = sig
    result = await request(
        session,
        "POST",
        str(config["url"]),
        secret_values(channel.type, config),
        body=body,
        headers=headers,
    )
    return result.attempt
