"""Shared pieces of the alert-sender tests (``test_notify_*.py``): the real local receiver,
sample incidents and events, and the checks every sender test makes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web

from notify.events import MACHINE_CLOCK, AlertEvent, Attempt, ChannelTarget, NowClock, deliver

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
CLOSING = web.AppKey("closing", asyncio.Event)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers via ``handler``."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)

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
        app[CLOSING] = self.closing
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
        self.closing.set()
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
    clock: NowClock = MACHINE_CLOCK,
) -> tuple[Attempt, list[Seen]]:
    async with Receiver(handler) as rx, aiohttp.ClientSession() as session:
        attempt = await deliver(
            session,
            target(channel_type, config_for(rx.base)),
            ev or event(),
            delivery_id=delivery_id,
            timeout=budget,
            remote_ref=remote_ref,
            clock=clock,
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


# ---------------------------------------------------------------- shared checks


def assert_no_secret(attempt: Attempt, *secrets: str) -> None:
    for text in (attempt.error or "", attempt.smtp_reply or ""):
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked in {text!r}"


def bad_request(status: int, error: Any) -> Handler:
    return answer(status, error)
