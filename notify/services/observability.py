"""Monitoring services: Grafana annotations, Datadog events, Prometheus Alertmanager.

Grafana gets one region annotation per incident: created at the start (its id comes back as
the attempt's ``remote_ref``), given its end with a PATCH. Alertmanager gets the alert firing
with an ``endsAt`` some hours ahead (so a lost end cannot leave it firing for ever, and an
attack longer than Alertmanager's resolve timeout does not look resolved), then the same
labels with ``endsAt`` at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..events import AlertEvent, Attempt, ChannelTarget, event_timestamp, parse_time
from ..http import dumps, request, secret_values
from ..message import facts, headline, plain_text, truncate

__all__ = [
    "alertmanager_alerts",
    "datadog_base",
    "datadog_event",
    "grafana_annotation",
    "root_url",
    "send_datadog",
    "send_grafana",
    "send_prometheus",
]

DATADOG_TITLE_MAX = 100
DATADOG_TEXT_MAX = 4000
DATADOG_KEY_MAX = 100
GRAFANA_TEXT_MAX = 10000
ALERTMANAGER_VALUE_MAX = 1024


def root_url(url: str, marker: str = "/api/") -> str:
    """``url`` cut back before ``/api/`` (people paste an endpoint's URL), no trailing slash."""
    parts = urlsplit(url)
    path = parts.path
    cut = path.find(marker)
    if cut >= 0:
        path = path[:cut]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def _ms(value: Any) -> int | None:
    when = parse_time(value)
    return int(when.timestamp() * 1000) if when is not None else None


def _bearer(config: Mapping[str, Any], key: str) -> dict[str, str]:
    token = config.get(key)
    return {"Authorization": f"Bearer {token}"} if isinstance(token, str) and token else {}


# ---------------------------------------------------------------- Grafana


def grafana_annotation(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """A Create Annotation body: a point at the start, a region when the end is known."""
    f = facts(event)
    incident = event.incident or {}
    tags = ["floodwatch", *(config.get("tags") or [])]
    if f.family:
        tags.append(f.family)
    if f.severity:
        tags.append(f"severity:{f.severity}")
    if f.node_name:
        tags.append(f"node:{f.node_name}")
    if event.kind == "test":
        tags.append("test")
    start = _ms(incident.get("started_at")) or int(event.occurred_at.timestamp() * 1000)
    body: dict[str, Any] = {
        "time": start,
        "tags": [truncate(t, 100, "") for t in tags],
        "text": truncate(plain_text(event), GRAFANA_TEXT_MAX),
    }
    if event.kind == "attack_end":
        end = _ms(incident.get("resolved_at")) or int(event.occurred_at.timestamp() * 1000)
        body["timeEnd"] = max(end, start)
    if config.get("dashboard_uid"):
        body["dashboardUID"] = config["dashboard_uid"]
        if config.get("panel_id") is not None:
            body["panelId"] = config["panel_id"]
    return body


async def send_grafana(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    base = root_url(str(config["url"]))
    headers = _bearer(config, "api_key")
    secrets = secret_values(channel.type, config)
    body = grafana_annotation(event, config)
    if remote_ref and remote_ref.isdigit() and event.kind != "test":
        patch = {"text": body["text"], "tags": body["tags"]}
        if "timeEnd" in body:
            patch["time"] = body["time"]
            patch["timeEnd"] = body["timeEnd"]
        result = await request(
            session,
            "PATCH",
            f"{base}/api/annotations/{remote_ref}",
            secrets,
            body=dumps(patch),
            headers=headers,
        )
        if result.attempt.ok:
            return replace(result.attempt, remote_ref=remote_ref)
        if result.attempt.http_status != 404:
            return result.attempt
        # the annotation was deleted in Grafana: make a new one below
    result = await request(
        session,
        "POST",
        f"{base}/api/annotations",
        secrets,
        body=dumps(body),
        headers=headers,
    )
    attempt = result.attempt
    if attempt.ok:
        new_id = result.data.get("id") if isinstance(result.data, dict) else None
        if isinstance(new_id, int) and not isinstance(new_id, bool):
            attempt = replace(attempt, remote_ref=str(new_id))
        else:
            attempt = replace(
                attempt, ok=False, retryable=True, error="Grafana answered without an id"
            )
    return attempt


# ---------------------------------------------------------------- Datadog


def datadog_event(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 Post an Event body, aggregated per incident."""
    f = facts(event)
    alert_type = {"critical": "error", "high": "error", "medium": "warning"}.get(
        f.severity or "", "info"
    )
    if event.kind == "attack_end":
        alert_type = "success"
    elif event.kind == "test":
        alert_type = "info"
    tags = ["source:floodwatch", f"event:{event.kind}", *(config.get("tags") or [])]
    if f.family:
        tags.append(f"attack_family:{f.family}")
    if f.severity:
        tags.append(f"severity:{f.severity}")
    if f.node_name:
        tags.append(f"node:{f.node_name}")
    if f.node_ip:
        tags.append(f"node_ip:{f.node_ip}")
    body = plain_text(event)
    # markdown between %%% markers; the text's limit counts the markers too
    text = "%%% \n" + truncate(body, DATADOG_TEXT_MAX - 12) + "\n %%%"
    out: dict[str, Any] = {
        "title": truncate(headline(event, f), DATADOG_TITLE_MAX),
        "text": text,
        "alert_type": alert_type,
        "priority": "low" if event.kind == "test" else "normal",
        "aggregation_key": truncate(
            f.incident_uuid or f"floodwatch-test-{event.event_id}", DATADOG_KEY_MAX, ""
        ),
        "date_happened": int(event.occurred_at.timestamp()),
        "tags": [truncate(t, 200, "") for t in tags],
    }
    if f.node_name:
        out["host"] = truncate(f.node_name, 255, "")
    return out


def datadog_base(config: Mapping[str, Any]) -> str:
    """``api_url`` when set, else ``https://api.<site>`` (site default ``datadoghq.com``)."""
    if config.get("api_url"):
        return str(config["api_url"]).rstrip("/")
    return f"https://api.{config.get('site') or 'datadoghq.com'}"


async def send_datadog(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    result = await request(
        session,
        "POST",
        f"{datadog_base(config)}/api/v1/events",
        secret_values(channel.type, config),
        body=dumps(datadog_event(event, config)),
        headers={"DD-API-KEY": str(config["api_key"])},
    )
    return result.attempt


# ---------------------------------------------------------------- Alertmanager


def alertmanager_alerts(event: AlertEvent, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``POST /api/v2/alerts`` body: one alert, identified by its labels."""
    f = facts(event)
    incident = event.incident or {}
    if event.kind == "test":
        labels = {
            "alertname": "FloodwatchTest",
            "severity": "info",
            "event_id": event.event_id,
        }
    else:
        labels = {
            "alertname": "FloodwatchAttack",
            "node": f.node_name or "unknown",
            "severity": f.severity or "unknown",
            "attack_family": f.family or "unknown",
            "incident": f.incident_uuid or event.event_id,
        }
        if f.node_ip:
            labels["instance"] = f.node_ip
    labels = {k: truncate(v, ALERTMANAGER_VALUE_MAX) for k, v in labels.items()}
    if isinstance(event.workspace, Mapping) and isinstance(event.workspace.get("name"), str):
        labels["workspace"] = truncate(str(event.workspace["name"]), ALERTMANAGER_VALUE_MAX)
    started = parse_time(incident.get("started_at")) or event.occurred_at
    if event.kind == "attack_end":
        ends = parse_time(incident.get("resolved_at")) or event.occurred_at
        ends = max(ends, started)
    elif event.kind == "test":
        ends = event.occurred_at + timedelta(minutes=5)
    else:
        ends = event.occurred_at + timedelta(hours=int(config.get("firing_hours") or 24))
    annotations = {
        "summary": truncate(headline(event, f), ALERTMANAGER_VALUE_MAX),
        "description": truncate(plain_text(event), 8000),
    }
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": started.strftime("%Y-%m-%dT%H:%M:%SZ")
        if event.kind != "test"
        else event_timestamp(event),
        "endsAt": ends.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if f.link:
        alert["generatorURL"] = f.link
    return [alert]


async def send_prometheus(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    headers = _bearer(config, "bearer_token")
    if config.get("username"):
        headers["Authorization"] = aiohttp.encode_basic_auth(
            str(config["username"]), str(config.get("password") or "")
        )
    result = await request(
        session,
        "POST",
        f"{root_url(str(config['url']))}/api/v2/alerts",
        secret_values(channel.type, config),
        body=dumps(alertmanager_alerts(event, config)),
        headers=headers,
    )
    return result.attempt
