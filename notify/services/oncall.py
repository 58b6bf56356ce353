"""On-call services: PagerDuty Events API v2 and the Opsgenie Alert API.

Both key the alert on the incident's uuid (PagerDuty ``dedup_key``, Opsgenie ``alias``), so a
resent start, or an update, folds into the same alert, and the end resolves or closes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from ..events import AlertEvent, Attempt, ChannelTarget, event_timestamp
from ..http import dumps, request, secret_values
from ..message import facts, headline, plain_text, truncate

__all__ = [
    "opsgenie_alert",
    "opsgenie_base",
    "pagerduty_event",
    "pagerduty_severity",
    "send_opsgenie",
    "send_pagerduty",
]

PAGERDUTY_SUMMARY_MAX = 1024
OPSGENIE_MESSAGE_MAX = 130
OPSGENIE_DESCRIPTION_MAX = 15000
OPSGENIE_DETAIL_VALUE_MAX = 8000
_PD_DEFAULT = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
_OPSGENIE_REGIONS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
_OPSGENIE_PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}


def _dedup_key(event: AlertEvent) -> str:
    uuid = (event.incident or {}).get("uuid")
    if isinstance(uuid, str) and uuid:
        return truncate(uuid, 255, "")
    return f"floodwatch-{event.kind}-{event.event_id}"[:255]


def _details(event: AlertEvent) -> dict[str, Any]:
    """Facts as a flat string map (custom details / Opsgenie details)."""
    f = facts(event)
    out = {label.lower().replace(" ", "_"): value for label, value in f.rows()}
    if f.summary:
        out["summary"] = f.summary
    if f.incident_uuid:
        out["incident_uuid"] = f.incident_uuid
    if f.started_at:
        out["started_at"] = f.started_at
    out["event"] = event.kind
    return out


# ---------------------------------------------------------------- PagerDuty


def pagerduty_severity(severity: str | None, mapping: str | None = None) -> str:
    """Our severity as PagerDuty's (critical, error, warning, info); ``mapping`` like
    ``high=critical,medium=error`` overrides the default per severity."""
    table = dict(_PD_DEFAULT)
    for pair in (mapping or "").split(","):
        ours, _, theirs = pair.partition("=")
        if ours.strip() in table and theirs.strip():
            table[ours.strip()] = theirs.strip()
    return table.get(severity or "", "warning")


def pagerduty_event(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """An Events API v2 event: trigger for start/update/test, resolve for an end."""
    body: dict[str, Any] = {
        "routing_key": config["routing_key"],
        "dedup_key": _dedup_key(event),
    }
    if event.kind == "attack_end":
        body["event_action"] = "resolve"
        return body
    f = facts(event)
    source = f.node_ip or f.node_name or "floodwatch"
    payload: dict[str, Any] = {
        "summary": truncate(headline(event, f), PAGERDUTY_SUMMARY_MAX),
        "source": truncate(source, 255),
        "severity": "info"
        if event.kind == "test"
        else pagerduty_severity(f.severity, config.get("severity_map")),
        "timestamp": event_timestamp(event),
        "class": f.family or ("test" if event.kind == "test" else "unknown"),
        "custom_details": _details(event),
    }
    if f.node_name:
        payload["component"] = truncate(f.node_name, 255)
    if f.workspace_name:
        payload["group"] = truncate(f.workspace_name, 255)
    body["event_action"] = "trigger"
    body["payload"] = payload
    body["client"] = "Floodwatch"
    if f.link:
        body["client_url"] = f.link
        body["links"] = [{"href": f.link, "text": "Open incident in Floodwatch"}]
    return body


async def send_pagerduty(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    base = str(config.get("api_url") or "https://events.pagerduty.com").rstrip("/")
    result = await request(
        session,
        "POST",
        f"{base}/v2/enqueue",
        secret_values(channel.type, config),
        body=dumps(pagerduty_event(event, config)),
    )
    return result.attempt


# ---------------------------------------------------------------- Opsgenie


def opsgenie_base(config: Mapping[str, Any]) -> str:
    if config.get("api_url"):
        return str(config["api_url"]).rstrip("/")
    return _OPSGENIE_REGIONS.get(str(config.get("region") or "us"), _OPSGENIE_REGIONS["us"])


def opsgenie_alert(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """A Create Alert request body (alias = the incident uuid)."""
    f = facts(event)
    tags = ["floodwatch", *(config.get("tags") or [])]
    if f.family:
        tags.append(truncate(f.family, 50, ""))
    if f.severity:
        tags.append(f"severity:{f.severity}")
    if event.kind == "test":
        tags.append("test")
    body: dict[str, Any] = {
        "message": truncate(headline(event, f), OPSGENIE_MESSAGE_MAX),
        "alias": _dedup_key(event)[:512],
        "description": truncate(plain_text(event), OPSGENIE_DESCRIPTION_MAX),
        "tags": tags[:20],
        "details": {k: truncate(v, OPSGENIE_DETAIL_VALUE_MAX) for k, v in _details(event).items()},
        "source": "Floodwatch",
        "priority": "P5"
        if event.kind == "test"
        else _OPSGENIE_PRIORITY.get(f.severity or "", "P3"),
    }
    if f.node_name or f.node_ip:
        body["entity"] = truncate(f.node_text, 512)
    responders = [
        {"type": "team", "name": name.strip()}
        for name in str(config.get("responders") or "").split(",")
        if name.strip()
    ]
    if responders:
        body["responders"] = responders[:50]
    return body


async def send_opsgenie(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    base = opsgenie_base(config)
    headers = {"Authorization": f"GenieKey {config['api_key']}"}
    secrets = secret_values(channel.type, config)
    if event.kind == "attack_end":
        f = facts(event)
        note = f"Ended: {f.end_reason_text}" if f.end_reason_text else "Ended"
        alias = quote(_dedup_key(event), safe="")
        result = await request(
            session,
            "POST",
            f"{base}/v2/alerts/{alias}/close",
            secrets,
            body=dumps({"source": "Floodwatch", "user": "Floodwatch", "note": note}),
            headers=headers,
            params={"identifierType": "alias"},
        )
    else:
        result = await request(
            session,
            "POST",
            f"{base}/v2/alerts",
            secrets,
            body=dumps(opsgenie_alert(event, config)),
            headers=headers,
        )
    return result.attempt
