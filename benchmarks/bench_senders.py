"""What one attempt costs per channel type: building the message, and a delivery to a local
receiver that answers at once (so the figure is Floodwatch's own share of a delivery).

    .venv/bin/python -m benchmarks.bench_senders [--count 300]

The receiver (aiohttp, and aiosmtpd for e-mail) runs on its own thread and loop on 127.0.0.1;
deliveries are sequential on one keep-alive session. Bounded in count; stops by itself.
Prints a markdown table: build µs per message, delivery latency p50/p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from notify.events import AlertEvent, ChannelTarget, deliver
from notify.message import plain_text, short_text
from notify.services import chat, observability, oncall, webhook
from notify.services.mail import build_message

SID = "AC" + "0123456789abcdef" * 2


def _event() -> AlertEvent:
    return AlertEvent(
        event_id="e",
        kind="attack_start",
        occurred_at=datetime(2026, 8, 1, 9, 6, 10, tzinfo=UTC),
        workspace={"uuid": "w", "name": "acme"},
        node={"id": 3, "uuid": "n", "name": "edge-1", "ip": "198.51.100.7"},
        incident={
            "id": 148,
            "uuid": "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11",
            "attack_family": "udp_flood",
            "attack_subtype": "dns_amplification",
            "severity": "high",
            "peak_pps": 1_250_000,
            "peak_bps": 9_600_000_000,
            "source_ip_count": 812,
            "started_at": "2026-08-01T09:01:00Z",
            "summary": "DNS reflection from 812 sources; check upstream filtering. " * 4,
            "detection": {"metric": "pps", "observed": 1.25e6, "baseline": 4e4, "multiplier": 31},
            "geo_origin": [{"country": c, "share": 10.0} for c in ("US", "DE", "BR", "CN")],
        },
        dashboard_url="https://fw.example.net/incidents/7b0c7a52",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_http(port: int, ready: threading.Event, stop: threading.Event) -> None:
    async def main() -> None:
        async def ok(request: web.Request) -> web.Response:
            await request.read()
            if request.path.endswith("/api/annotations"):
                return web.json_response({"message": "Annotation added", "id": 1})
            if "sendMessage" in request.path:
                return web.json_response({"ok": True, "result": {"message_id": 1}})
            return web.json_response({"ok": True}, status=202)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await runner.cleanup()

    asyncio.run(main())


def _configs(base: str, smtp_port: int) -> dict[str, dict[str, Any]]:
    return {
        "webhook": {"url": base + "/h", "secret": "bench-secret"},
        "slack": {"webhook_url": base + "/services/T/B/x"},
        "discord": {"webhook_url": base + "/api/webhooks/1/x"},
        "teams": {"webhook_url": base + "/teams"},
        "telegram": {"bot_token": "1:x", "chat_id": "1", "api_url": base},
        "pagerduty": {"routing_key": "k" * 32, "api_url": base},
        "opsgenie": {"api_key": "k", "api_url": base},
        "grafana": {"url": base, "api_key": "k"},
        "datadog": {"api_key": "k", "api_url": base},
        "prometheus": {"url": base},
        "sms": {
            "phone": "+15551234567",
            "account_sid": SID,
            "auth_token": "t",
            "from": "+15557654321",
            "api_url": base,
        },
        "email": {
            "email": "noc@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "security": "none",
        },
    }


def _builders() -> dict[str, Callable[[AlertEvent], object]]:
    return {
        "webhook": lambda e: webhook.payload(e, "d"),
        "slack": lambda e: chat.slack_payload(e, {}),
        "discord": lambda e: chat.discord_payload(e, {}),
        "teams": chat.teams_payload,
        "telegram": lambda e: chat.telegram_payload(e, {"chat_id": "1"}),
        "pagerduty": lambda e: oncall.pagerduty_event(e, {"routing_key": "k"}),
        "opsgenie": lambda e: oncall.opsgenie_alert(e, {}),
        "grafana": lambda e: observability.grafana_annotation(e, {}),
        "datadog": lambda e: observability.datadog_event(e, {}),
        "prometheus": lambda e: observability.alertmanager_alerts(e, {}),
        "sms": short_text,
        "email": lambda e: build_message(e, {"email": "noc@example.com"}, "d").as_bytes(),
        "(plain text)": plain_text,
    }


async def _deliveries(configs: dict[str, dict[str, Any]], count: int) -> dict[str, list[float]]:
    ev = _event()
    out: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for kind, config in configs.items():
            target = ChannelTarget(1, "c", kind, kind, config)
            times = []
            for i in range(count):
                attempt = await deliver(session, target, ev, delivery_id=f"d{i}", timeout=10)
                if not attempt.ok:
                    raise SystemExit(f"{kind}: {attempt.error}")
                times.append(attempt.latency_ms)
            out[kind] = times
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()

    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 Ok"

    smtp_port = _free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    port, ready, stop = _free_port(), threading.Event(), threading.Event()
    thread = threading.Thread(target=_serve_http, args=(port, ready, stop), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        ev = _event()
        build_us = {}
        for kind, build in _builders().items():
            started = time.perf_counter()
            for _ in range(args.count):
                build(ev)
            build_us[kind] = (time.perf_counter() - started) / args.count * 1e6
        latencies = asyncio.run(
            _deliveries(_configs(f"http://127.0.0.1:{port}", smtp_port), args.count)
        )
    finally:
        stop.set()
        thread.join(10)
        smtp.stop()

    print(f"| type | build µs | delivery p50 ms | delivery p99 ms |  (n={args.count})")
    print("| --- | ---: | ---: | ---: |")
    for kind, us in build_us.items():
        lat = latencies.get(kind)
        if lat:
            q = statistics.quantiles(lat, n=100)
            print(f"| {kind} | {us:.0f} | {statistics.median(lat):.2f} | {q[98]:.2f} |")
        else:
            print(f"| {kind} | {us:.0f} | | |")


if __name__ == "__main__":
    main()
