"""Alert senders against real local receivers that check each service's documented request.

Each receiver is a real aiohttp server on a free loopback port that checks method, path, auth
and body shape the way the service documents them, and answers as that service does (success
and error shapes). E-mail goes to a real aiosmtpd server (STARTTLS and implicit TLS with
certificates from trustme, AUTH).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp import web

from notify.events import AlertEvent, Attempt, ChannelTarget, deliver, passes_filters

T = TypeVar("T")

NOW = datetime(2026, 8, 1, 9, 6, 10, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Handler = Callable[[web.Request, Seen], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers via ``handler``."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def __aenter__(self) -> Receiver:
        async def any_request(request: web.Request) -> web.StreamResponse:
            seen = Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
            self.seen.append(seen)
            return await self.handler(request, seen)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", any_request)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def incident(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 148,
        "uuid": "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11",
        "title": "UDP flood on edge-1",
        "status": "active",
        "attack_family": "udp_flood",
        "attack_subtype": "dns_amplification",
        "severity": "high",
        "peak_pps": 1_250_000,
        "peak_bps": 9_600_000_000,
        "source_ip_count": 812,
        "started_at": "2026-08-01T09:01:00Z",
        "resolved_at": None,
        "node_uuid": "5a1d1e7e-8a1c-4c55-9f55-2a8a4c7a0c01",
        "node_name": "edge-1",
        "node_ip": "198.51.100.7",
        "summary": "DNS reflection from 812 sources, mostly port 53; check upstream filtering.",
        "detection": {
            "metric": "pps",
            "observed": 1_250_000.0,
            "baseline": 40_000.0,
            "threshold": 72_000.0,
            "multiplier": 31.25,
            "source": "floodwatch",
        },
        "geo_origin": [
            {"country": "US", "packets": 600, "share": 48.0},
            {"country": "DE", "packets": 300, "share": 24.0},
            {"country": None, "packets": 100, "share": 8.0},
        ],
        "detail": {
            "floodwatch": {
                "breakdown": {
                    "flows": {
                        "asns": [
                            {"asn": 64500, "as_org": "Example Transit", "share": 40.0},
                            {"asn": 64501, "as_org": "Hosting Co", "share": 20.0},
                        ]
                    }
                }
            }
        },
    }
    base.update(over)
    return base


def event(kind: str = "attack_start", **over: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "event_id": "0d5f5b8e-7a4e-4c33-8a0e-111111111111",
        "kind": kind,
        "occurred_at": NOW,
        "workspace": {"uuid": "9f0e0000-0000-4000-8000-000000000001", "name": "acme"},
        "node": {
            "id": 3,
            "uuid": "5a1d1e7e-8a1c-4c55-9f55-2a8a4c7a0c01",
            "name": "edge-1",
            "ip": "198.51.100.7",
        },
        "incident": incident(),
        "dashboard_url": "https://fw.example.net/incidents/7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11",
    }
    if kind == "attack_end":
        fields["end_reason"] = "resolved"
        fields["incident"] = incident(status="resolved", resolved_at="2026-08-01T09:06:00Z")
    fields.update(over)
    return AlertEvent(**fields)


def target(channel_type: str, config: dict[str, Any]) -> ChannelTarget:
    return ChannelTarget(
        id=1,
        uuid="c0ffee00-0000-4000-8000-000000000001",
        name="t",
        type=channel_type,
        config=config,
    )


async def send_to(
    handler: Handler,
    channel_type: str,
    config_for: Callable[[str], dict[str, Any]],
    ev: AlertEvent | None = None,
    *,
    delivery_id: str = "dlv-1",
    budget: float = 5.0,
    remote_ref: str | None = None,
) -> tuple[Attempt, list[Seen]]:
    async with Receiver(handler) as rx, aiohttp.ClientSession() as session:
        attempt = await deliver(
            session,
            target(channel_type, config_for(rx.base)),
            ev or event(),
            delivery_id=delivery_id,
            timeout=budget,
            remote_ref=remote_ref,
        )
        return attempt, rx.seen


def answer(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


# ---------------------------------------------------------------- webhook

WEBHOOK_SECRET = "hmac-signing-secret-value-42"


def test_webhook_body_and_signature_verify_like_a_receiver() -> None:
    attempt, seen = run(
        send_to(
            answer(204),
            "webhook",
            lambda base: {
                "url": f"{base}/hooks/fw",
                "secret": WEBHOOK_SECRET,
                "headers": {"X-Auth-Token": "header-secret-value-77"},
            },
            delivery_id="dlv-42",
        )
    )
    assert attempt.ok and attempt.http_status == 204 and attempt.error is None
    assert attempt.latency_ms > 0
    (req,) = seen
    assert (req.method, req.path) == ("POST", "/hooks/fw")
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Auth-Token"] == "header-secret-value-77"
    assert req.headers["X-Floodwatch-Delivery"] == "dlv-42"
    assert req.headers["X-Floodwatch-Event"] == "attack_start"
    # verified the way a receiver written for the hosted service does it
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Flowtriq-Signature"], expected)
    assert hmac.compare_digest(req.headers["X-Floodwatch-Signature"], expected)
    body = req.json()
    assert body["event_type"] == "attack_start"
    assert body["timestamp"] == "2026-08-01T09:06:10Z"
    inc = body["incident"]
    assert {
        "id",
        "uuid",
        "title",
        "attack_family",
        "severity",
        "peak_pps",
        "peak_bps",
        "source_ip_count",
        "started_at",
        "ai_summary",
        "dashboard_url",
    } <= set(inc)
    assert (inc["id"], inc["uuid"], inc["severity"]) == (
        148,
        "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11",
        "high",
    )
    assert (inc["peak_pps"], inc["peak_bps"], inc["source_ip_count"]) == (
        1_250_000,
        9_600_000_000,
        812,
    )
    assert inc["ai_summary"].startswith("DNS reflection")
    assert inc["dashboard_url"].startswith("https://fw.example.net/incidents/")
    assert body["node"] == {
        "id": 3,
        "name": "edge-1",
        "ip_address": "198.51.100.7",
        "uuid": "5a1d1e7e-8a1c-4c55-9f55-2a8a4c7a0c01",
    }


def test_webhook_tampered_body_fails_verification() -> None:
    _, seen = run(
        send_to(answer(200), "webhook", lambda b: {"url": b + "/h", "secret": WEBHOOK_SECRET})
    )
    (req,) = seen
    tampered = req.body.replace(b'"high"', b'"low"')
    assert tampered != req.body
    forged = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), tampered, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(req.headers["X-Flowtriq-Signature"], forged)


def test_webhook_without_secret_is_unsigned_and_test_event_has_full_shape() -> None:
    ev = event("test", incident=None, node=None, dashboard_url=None)
    attempt, seen = run(send_to(answer(200), "webhook", lambda b: {"url": b + "/h"}, ev))
    assert attempt.ok
    (req,) = seen
    assert "X-Flowtriq-Signature" not in req.headers
    body = req.json()
    assert body["event_type"] == "test"
    assert body["incident"]["id"] is None and body["incident"]["title"]
    assert set(body["node"]) >= {"id", "name", "ip_address"}


def test_event_json_round_trip() -> None:
    ev = event("attack_update", changes=("peak", "severity"))
    again = AlertEvent.from_json(orjson.loads(orjson.dumps(ev.to_json())))
    assert again == ev


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("config", "ev", "now", "expected"),
    [
        ({}, event(), NOW, True),
        ({"min_severity": "critical"}, event(), NOW, False),
        ({"min_severity": "high"}, event(), NOW, True),
        ({"min_severity": "critical"}, event("test", incident=None), NOW, True),
        ({"events": ["attack_end"]}, event(), NOW, False),
        ({"events": ["attack_end"]}, event("attack_end"), NOW, True),
        ({"events": []}, event("test"), NOW, True),
        ({"nodes": ["5a1d1e7e-8a1c-4c55-9f55-2a8a4c7a0c01"]}, event(), NOW, True),
        ({"nodes": ["00000000-0000-4000-8000-000000000000"]}, event(), NOW, False),
        ({"nodes": []}, event(), NOW, True),
        # a window wrapping midnight, in a zone seven hours behind UTC in August
        (
            {"mute": {"from": "22:00", "to": "03:00", "tz": "America/Los_Angeles"}},
            event(),
            NOW.replace(hour=4),
            True,
        ),
        (
            {"mute": {"from": "22:00", "to": "03:00", "tz": "America/Los_Angeles"}},
            event(),
            NOW.replace(hour=7),
            False,
        ),
        ({"mute": {"from": "09:00", "to": "10:00", "tz": "UTC"}}, event(), NOW, False),
        (
            {"mute": {"from": "09:00", "to": "10:00", "tz": "UTC"}},
            event(),
            NOW.replace(hour=10),
            True,
        ),
        # an end during the mute: sent when its start (08:55, outside the window) was sent
        (
            {"mute": {"from": "09:00", "to": "10:00", "tz": "UTC"}},
            event("attack_end", incident=incident(started_at="2026-08-01T08:55:00Z")),
            NOW,
            True,
        ),
        # ... and muted when the start itself fell in the window
        ({"mute": {"from": "09:00", "to": "10:00", "tz": "UTC"}}, event("attack_end"), NOW, False),
        ({"mute": {"from": "09:00", "to": "10:00", "tz": "UTC"}}, event("test"), NOW, True),
    ],
)
def test_passes_filters(
    config: dict[str, Any], ev: AlertEvent, now: datetime, expected: bool
) -> None:
    assert passes_filters(config, ev, now) is expected


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        event(occurred_at=datetime(2026, 1, 1))
