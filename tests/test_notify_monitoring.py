"""Alert senders to monitoring and paging services against real local receivers (Grafana
annotations, Datadog events, Alertmanager, Twilio SMS), and the failures every HTTP sender
shares: retryable or not, Retry-After, timeouts, refused connections, huge answers, redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from notify.events import Attempt, deliver
from store.clock import ManualClock

from .notify_support import (
    CLOSING,
    Handler,
    Receiver,
    Seen,
    answer,
    assert_no_secret,
    event,
    run,
    send_to,
    target,
)

# ---------------------------------------------------------------- Grafana

GRAFANA_TOKEN = "glsa_GrafanaSecretKey0123"


def grafana_receiver(store: dict[int, dict[str, Any]]) -> Handler:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {GRAFANA_TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        if request.method == "POST" and request.path == "/grafana/api/annotations":
            body = seen.json()
            if not isinstance(body.get("time"), int) or not isinstance(body.get("tags"), list):
                return web.json_response({"message": "bad request data"}, status=400)
            new_id = len(store) + 1
            store[new_id] = body
            return web.json_response({"message": "Annotation added", "id": new_id})
        if request.method == "PATCH" and request.path.startswith("/grafana/api/annotations/"):
            ann = store.get(int(request.path.rsplit("/", 1)[1]))
            if ann is None:
                return web.json_response({"message": "Annotation not found"}, status=404)
            ann.update(seen.json())
            return web.json_response({"message": "Annotation patched"})
        return web.json_response({"message": "Not found"}, status=404)

    return handler


def test_grafana_region_from_start_to_end() -> None:
    store: dict[int, dict[str, Any]] = {}

    def cfg(b: str) -> dict[str, Any]:
        # a pasted endpoint URL is cut back to Grafana's root
        return {
            "url": b + "/grafana/api/annotations",
            "api_key": GRAFANA_TOKEN,
            "dashboard_uid": "ddos",
            "panel_id": 4,
            "tags": ["prod"],
        }

    async def scenario() -> tuple[Attempt, Attempt, Attempt]:
        async with Receiver(grafana_receiver(store)) as rx, aiohttp.ClientSession() as s:
            start = await deliver(
                s, target("grafana", cfg(rx.base)), event(), delivery_id="d1", timeout=5
            )
            end = await deliver(
                s,
                target("grafana", cfg(rx.base)),
                event("attack_end"),
                delivery_id="d2",
                timeout=5,
                remote_ref=start.remote_ref,
            )
            # without an earlier annotation: one region with both ends at once
            alone = await deliver(
                s, target("grafana", cfg(rx.base)), event("attack_end"), delivery_id="d3", timeout=5
            )
            return start, end, alone

    start, end, alone = run(scenario())
    assert start.ok and start.remote_ref == "1"
    assert end.ok and end.remote_ref == "1"
    assert alone.ok and alone.remote_ref == "2"
    first = store[1]
    assert first["time"] == 1785574860000  # 2026-08-01T09:01:00Z
    assert first["timeEnd"] == 1785575160000  # resolved 09:06:00Z
    assert (first["dashboardUID"], first["panelId"]) == ("ddos", 4)
    assert {"floodwatch", "prod", "udp_flood", "severity:high"} <= set(first["tags"])
    assert store[2]["timeEnd"] - store[2]["time"] == 300_000


def test_grafana_deleted_annotation_is_made_again() -> None:
    store: dict[int, dict[str, Any]] = {}
    attempt, seen = run(
        send_to(
            grafana_receiver(store),
            "grafana",
            lambda b: {"url": b + "/grafana", "api_key": GRAFANA_TOKEN},
            event("attack_end"),
            remote_ref="999",
        )
    )
    assert attempt.ok and attempt.remote_ref == "1"
    assert [s.method for s in seen] == ["PATCH", "POST"]


# ---------------------------------------------------------------- Datadog

DD_KEY = "dd-secret-api-key-0123456789"


def datadog_receiver() -> Handler:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.headers.get("DD-API-KEY") != DD_KEY:
            return web.json_response({"errors": ["Forbidden"]}, status=403)
        if request.path != "/api/v1/events":
            return web.json_response({"errors": ["Not found"]}, status=404)
        body = seen.json()
        if (
            not body.get("title")
            or len(body["title"]) > 100
            or len(body.get("text", "")) > 4000
            or body.get("alert_type")
            not in (
                "error",
                "warning",
                "info",
                "success",
                "user_update",
                "recommendation",
                "snapshot",
            )
            or len(body.get("aggregation_key", "")) > 100
        ):
            return web.json_response({"errors": ["Event payload is invalid"]}, status=400)
        return web.json_response(
            {"status": "ok", "event": {"id": 123, "title": body["title"]}}, status=202
        )

    return handler


def test_datadog_event_and_forbidden_key() -> None:
    from notify.services.observability import datadog_base

    attempt, seen = run(
        send_to(
            datadog_receiver(),
            "datadog",
            lambda b: {"api_key": DD_KEY, "api_url": b, "tags": ["env:prod"]},
        )
    )
    assert attempt.ok and attempt.http_status == 202, attempt
    body = seen[0].json()
    assert body["alert_type"] == "error" and body["priority"] == "normal"
    assert body["aggregation_key"] == "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11"
    assert {"env:prod", "attack_family:udp_flood", "node:edge-1"} <= set(body["tags"])
    assert body["text"].startswith("%%% \n") and body["host"] == "edge-1"
    _, seen = run(
        send_to(
            datadog_receiver(),
            "datadog",
            lambda b: {"api_key": DD_KEY, "api_url": b},
            event("attack_end"),
        )
    )
    assert seen[0].json()["alert_type"] == "success"
    attempt, _ = run(
        send_to(
            datadog_receiver(),
            "datadog",
            lambda b: {"api_key": "dd-wrong-key-000000", "api_url": b},
        )
    )
    assert attempt.http_status == 403 and not attempt.retryable
    assert_no_secret(attempt, "dd-wrong-key-000000")
    assert datadog_base({"site": "datadoghq.eu"}) == "https://api.datadoghq.eu"
    assert datadog_base({}) == "https://api.datadoghq.com"


# ---------------------------------------------------------------- Alertmanager


def alertmanager_receiver(auth: str) -> Handler:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.headers.get("Authorization") != auth:
            return web.Response(status=401, text="Unauthorized")
        if request.method != "POST" or request.path != "/am/api/v2/alerts":
            return web.Response(status=404, text="not found")
        alerts = seen.json()
        valid = (
            isinstance(alerts, list)
            and alerts
            and all(
                isinstance(a.get("labels"), dict)
                and a["labels"].get("alertname")
                and all(isinstance(v, str) for v in a["labels"].values())
                and all(isinstance(v, str) for v in a.get("annotations", {}).values())
                and datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00"))
                <= datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00"))
                for a in alerts
            )
        )
        if not valid:
            return web.json_response("invalid alerts", status=400)
        return web.Response(status=200)

    return handler


def test_alertmanager_firing_then_resolved_with_same_labels() -> None:
    import base64

    auth = "Basic " + base64.b64encode(b"fw:prom-secret-password-9").decode()

    def cfg(b: str) -> dict[str, Any]:
        return {"url": b + "/am", "username": "fw", "password": "prom-secret-password-9"}

    attempt, seen = run(send_to(alertmanager_receiver(auth), "prometheus", cfg))
    assert attempt.ok, attempt
    (firing,) = seen[0].json()
    assert firing["labels"] == {
        "alertname": "FloodwatchAttack",
        "node": "edge-1",
        "severity": "high",
        "attack_family": "udp_flood",
        "incident": "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11",
        "instance": "198.51.100.7",
        "workspace": "acme",
    }
    assert firing["startsAt"] == "2026-08-01T09:01:00Z"
    assert firing["endsAt"] == "2026-08-02T09:06:10Z"  # held 24 h unless ended
    assert firing["generatorURL"].endswith("0c6f0e2f9a11")
    assert firing["annotations"]["summary"].startswith("[HIGH]")
    attempt, seen = run(
        send_to(alertmanager_receiver(auth), "prometheus", cfg, event("attack_end"))
    )
    (resolved,) = seen[0].json()
    assert attempt.ok and resolved["labels"] == firing["labels"]
    assert resolved["endsAt"] == "2026-08-01T09:06:00Z"


def test_alertmanager_bearer_and_refused_body() -> None:
    attempt, _ = run(
        send_to(
            alertmanager_receiver("Bearer am-token-0123456"),
            "prometheus",
            lambda b: {"url": b + "/am/", "bearer_token": "am-token-0123456"},
        )
    )
    assert attempt.ok
    attempt, _ = run(
        send_to(answer(400, "invalid alerts"), "prometheus", lambda b: {"url": b + "/am"})
    )
    assert attempt.http_status == 400 and not attempt.retryable


# ---------------------------------------------------------------- Twilio SMS

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-secret-77"


def twilio_receiver() -> Handler:
    import base64
    import urllib.parse

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response(
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
                status=401,
            )
        if request.path != f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
            return web.json_response(
                {"code": 20404, "message": "Not found", "status": 404}, status=404
            )
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response(
                {"code": 21000, "message": "bad type", "status": 400}, status=400
            )
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        if not form.get("To", "").startswith("+") or not (
            form.get("From") or form.get("MessagingServiceSid")
        ):
            return web.json_response(
                {
                    "code": 21211,
                    "message": f"The 'To' number {form.get('To')} is not valid.",
                    "status": 400,
                },
                status=400,
            )
        if not 1 <= len(form.get("Body", "")) <= 1600:
            return web.json_response(
                {"code": 21617, "message": "Body too long", "status": 400}, status=400
            )
        return web.json_response(
            {"sid": "SM" + "0" * 32, "status": "queued", "to": form["To"], "body": form["Body"]},
            status=201,
        )

    return handler


def test_twilio_message_form_and_auth() -> None:
    import urllib.parse

    def cfg(b: str) -> dict[str, Any]:
        return {
            "phone": "+15551234567",
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from": "+15557654321",
            "api_url": b,
        }

    attempt, seen = run(send_to(twilio_receiver(), "sms", cfg))
    assert attempt.ok and attempt.http_status == 201, attempt
    form = dict(urllib.parse.parse_qsl(seen[0].body.decode()))
    assert (form["To"], form["From"]) == ("+15551234567", "+15557654321")
    assert len(form["Body"]) <= 160 and "edge-1" in form["Body"] and "31x" in form["Body"]
    assert form["Body"].endswith("/incidents/7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11")

    mg = "MG" + "f" * 32
    _, seen = run(
        send_to(
            twilio_receiver(),
            "sms",
            lambda b: {**cfg(b), "from": None, "messaging_service_sid": mg},
        )
    )
    form = dict(urllib.parse.parse_qsl(seen[0].body.decode()))
    assert form["MessagingServiceSid"] == mg and "From" not in form

    attempt, _ = run(
        send_to(twilio_receiver(), "sms", lambda b: {**cfg(b), "auth_token": "wrong-token-000000"})
    )
    assert attempt.http_status == 401 and not attempt.retryable
    assert attempt.error is not None and "Authenticate" in attempt.error
    assert_no_secret(attempt, "wrong-token-000000", TWILIO_TOKEN)


def test_sms_without_twilio_account_is_a_config_error() -> None:
    attempt, seen = run(send_to(twilio_receiver(), "sms", lambda b: {"phone": "+15551234567"}))
    assert not attempt.ok and not attempt.retryable and seen == []
    assert attempt.error is not None and "account_sid" in attempt.error


# ---------------------------------------------------------------- failures common to HTTP


def test_server_errors_are_retryable_and_client_errors_not() -> None:
    for status, retryable in (
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
    ):
        attempt, _ = run(
            send_to(answer(status, {"message": "nope"}), "webhook", lambda b: {"url": b + "/h"})
        )
        assert not attempt.ok and attempt.http_status == status
        assert attempt.retryable is retryable, status


def test_retry_after_in_seconds_and_as_http_date() -> None:
    from email.utils import format_datetime

    attempt, _ = run(
        send_to(
            answer(429, {"message": "slow down"}, {"Retry-After": "12"}),
            "webhook",
            lambda b: {"url": b + "/h"},
        )
    )
    assert attempt.retryable and attempt.retry_after == 12.0
    # an HTTP-date counts from the attempt's clock (not the machine's): exactly 120 s ahead
    clock = ManualClock(datetime(2020, 5, 1, 12, 0, tzinfo=UTC))
    later = clock.now() + timedelta(seconds=120)
    attempt, _ = run(
        send_to(
            answer(503, "busy", {"Retry-After": format_datetime(later, usegmt=True)}),
            "webhook",
            lambda b: {"url": b + "/h"},
            clock=clock,
        )
    )
    assert attempt.retryable and attempt.retry_after == 120.0
    # Retry-After on a 500 is not a rate-limit hint
    attempt, _ = run(
        send_to(answer(500, "x", {"Retry-After": "5"}), "webhook", lambda b: {"url": b + "/h"})
    )
    assert attempt.retry_after is None


def test_parse_retry_after() -> None:
    from notify.http import parse_retry_after

    now = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
    assert parse_retry_after("0", now) == 0.0
    assert parse_retry_after("Sat, 01 Aug 2026 09:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sat, 01 Aug 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


def test_timeout_is_retryable_and_bounded() -> None:
    async def hang(request: web.Request, seen: Seen) -> web.StreamResponse:
        await request.app[CLOSING].wait()  # answers only when the test is over
        return web.Response()

    attempt, _ = run(send_to(hang, "webhook", lambda b: {"url": b + "/h"}, budget=0.3))
    assert not attempt.ok and attempt.retryable and attempt.error == "timed out after 0.3 s"
    assert attempt.http_status is None


def test_refused_connection_is_retryable_without_the_url() -> None:
    from .conftest import free_port

    port = free_port()
    secret_path = "/api/webhooks/1/DiscordSecretToken_refused"

    async def scenario() -> Attempt:
        async with aiohttp.ClientSession() as s:
            return await deliver(
                s,
                target("discord", {"webhook_url": f"http://127.0.0.1:{port}{secret_path}"}),
                event(),
                delivery_id="d",
                timeout=5,
            )

    attempt = run(scenario())
    assert not attempt.ok and attempt.retryable
    assert attempt.error == f"connection refused to 127.0.0.1:{port}"
    assert_no_secret(attempt, secret_path, "DiscordSecretToken_refused")


def test_huge_error_answer_is_cut() -> None:
    attempt, _ = run(
        send_to(answer(500, {"message": "x" * 5_000_000}), "webhook", lambda b: {"url": b + "/h"})
    )
    assert not attempt.ok and attempt.retryable and attempt.http_status == 500
    assert attempt.error is not None and len(attempt.error) <= 320


def test_redirect_is_not_followed() -> None:
    attempt, seen = run(
        send_to(
            answer(302, None, {"Location": "http://127.0.0.1:1/elsewhere"}),
            "webhook",
            lambda b: {"url": b + "/h", "secret": "s3cret-val"},
        )
    )
    assert len(seen) == 1 and not attempt.ok and not attempt.retryable
    assert attempt.http_status == 302


def test_unknown_type_is_a_programming_error() -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            await deliver(s, target("irc", {}), event(), delivery_id="d", timeout=1)

    with pytest.raises(ValueError, match="irc"):
        run(scenario())
