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
from datetime import UTC, datetime, timedelta
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


# ---------------------------------------------------------------- shared checks


def assert_no_secret(attempt: Attempt, *secrets: str) -> None:
    for text in (attempt.error or "", attempt.smtp_reply or ""):
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked in {text!r}"


def bad_request(status: int, error: Any) -> Handler:
    return answer(status, error)


# ---------------------------------------------------------------- Slack

SLACK_PATH = "/services/T0001/B0001/SlackSecretPart0123"


def slack_receiver(problems: list[str]) -> Handler:
    """Checks an incoming-webhook message as Slack does; answers ``ok`` or Slack's errors."""

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.method != "POST" or request.path != SLACK_PATH:
            return web.Response(status=404, text="no_service")
        try:
            body = seen.json()
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        blocks = body.get("blocks", [])
        if not isinstance(body.get("text"), str) or not body["text"]:
            problems.append("no text fallback")
        if len(blocks) > 50:
            problems.append("more than 50 blocks")
        for block in blocks:
            kind = block.get("type")
            if kind == "header" and (
                block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150
            ):
                problems.append("bad header")
            if kind == "section":
                if "text" in block and len(block["text"]["text"]) > 3000:
                    problems.append("section text over 3000")
                fields = block.get("fields", [])
                if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                    problems.append("bad fields")
            if kind == "actions":
                for el in block["elements"]:
                    if len(el["text"]["text"]) > 75 or len(el["url"]) > 3000:
                        problems.append("bad button")
        if problems:
            return web.Response(status=400, text="invalid_blocks")
        return web.Response(text="ok")

    return handler


def test_slack_blocks_and_fallback_text() -> None:
    problems: list[str] = []
    attempt, seen = run(
        send_to(
            slack_receiver(problems),
            "slack",
            lambda b: {
                "webhook_url": b + SLACK_PATH,
                "channel": "#noc",
                "username": "floodwatch",
                "icon": ":rotating_light:",
                "mention_everyone": True,
            },
        )
    )
    assert problems == [] and attempt.ok and attempt.http_status == 200, attempt
    body = seen[0].json()
    assert body["text"].startswith("<!channel> [HIGH] UDP flood (DNS amplification) on edge-1")
    assert (body["channel"], body["username"], body["icon_emoji"]) == (
        "#noc",
        "floodwatch",
        ":rotating_light:",
    )
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "actions" in kinds
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    for fact in ("198.51.100.7", "31x", "40 kpps", "5 min", "US 48%", "AS64500"):
        assert fact in fields, fact
    assert body["blocks"][-1]["elements"][0]["url"].endswith("0c6f0e2f9a11")


def test_slack_escapes_control_characters_of_mrkdwn() -> None:
    ev = event(incident=incident(summary="<!everyone> & <http://evil|click>"))
    _, seen = run(
        send_to(answer(200, "ok"), "slack", lambda b: {"webhook_url": b + SLACK_PATH}, ev)
    )
    text = orjson.dumps(seen[0].json()).decode()
    assert "<!everyone>" not in text and "&lt;!everyone&gt; &amp; &lt;http://evil|click&gt;" in text


def test_slack_invalid_payload_is_not_retried_and_hides_the_url() -> None:
    attempt, _ = run(
        send_to(answer(400, "invalid_payload"), "slack", lambda b: {"webhook_url": b + SLACK_PATH})
    )
    assert not attempt.ok and not attempt.retryable and attempt.http_status == 400
    assert attempt.error == "HTTP 400: invalid_payload"
    assert_no_secret(attempt, "SlackSecretPart0123", SLACK_PATH)


# ---------------------------------------------------------------- Discord

DISCORD_PATH = "/api/webhooks/1234567890/DiscordSecretToken_abcXYZ"


def discord_receiver(problems: list[str]) -> Handler:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.path != DISCORD_PATH:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        body = seen.json()
        if len(body.get("content", "")) > 2000:
            problems.append("content over 2000")
        embeds = body.get("embeds", [])
        if len(embeds) > 10:
            problems.append("more than 10 embeds")
        for e in embeds:
            total = len(e.get("title", "")) + len(e.get("description", ""))
            total += len(e.get("footer", {}).get("text", ""))
            if len(e.get("title", "")) > 256 or len(e.get("description", "")) > 4096:
                problems.append("title/description too long")
            if len(e.get("fields", [])) > 25:
                problems.append("more than 25 fields")
            for fld in e.get("fields", []):
                total += len(fld["name"]) + len(fld["value"])
                if len(fld["name"]) > 256 or len(fld["value"]) > 1024 or not fld["value"]:
                    problems.append("bad field")
            if total > 6000:
                problems.append("embed over 6000")
            if not isinstance(e.get("color"), int) or not 0 <= e["color"] <= 0xFFFFFF:
                problems.append("bad colour")
        if problems:
            return web.json_response(
                {"code": 50035, "message": "Invalid Form Body", "errors": {}}, status=400
            )
        if request.query.get("wait") == "true":
            return web.json_response({"id": "1111", "channel_id": "2222", "embeds": embeds})
        return web.Response(status=204)

    return handler


def test_discord_embed_colour_by_severity_and_no_pings() -> None:
    problems: list[str] = []
    cfg = {"webhook_url": "", "username": "fw"}

    def config(b: str) -> dict[str, Any]:
        return {**cfg, "webhook_url": b + DISCORD_PATH}

    for ev, colour in (
        (event(), 0xE67E22),
        (event(incident=incident(severity="critical")), 0xE74C3C),
        (event("attack_end"), 0x2ECC71),
    ):
        attempt, seen = run(send_to(discord_receiver(problems), "discord", config, ev))
        assert problems == [] and attempt.ok and attempt.http_status == 200, attempt
        assert seen[0].query == {"wait": "true"}
        body = seen[0].json()
        (embed,) = body["embeds"]
        assert embed["color"] == colour
        assert body["allowed_mentions"] == {"parse": []} and "content" not in body
        assert body["username"] == "fw"
    assert "Ended because" in [f["name"] for f in embed["fields"]]


def test_discord_rate_limit_from_json_body_and_unknown_webhook() -> None:
    limited = answer(
        429, {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
    )
    attempt, _ = run(send_to(limited, "discord", lambda b: {"webhook_url": b + DISCORD_PATH}))
    assert not attempt.ok and attempt.retryable and attempt.retry_after == 1.5
    attempt, _ = run(
        send_to(discord_receiver([]), "discord", lambda b: {"webhook_url": b + "/api/webhooks/9/x"})
    )
    assert attempt.http_status == 404 and not attempt.retryable
    assert attempt.error is not None and "Unknown Webhook" in attempt.error


# ---------------------------------------------------------------- Teams

TEAMS_PATH = "/workflows/abc/triggers/manual/paths/invoke"


def test_teams_adaptive_card_envelope() -> None:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        body = seen.json()
        ok = (
            body.get("type") == "message"
            and len(body.get("attachments", [])) == 1
            and body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
            and body["attachments"][0]["content"]["type"] == "AdaptiveCard"
        )
        return web.Response(status=202 if ok else 400)

    attempt, seen = run(
        send_to(handler, "teams", lambda b: {"webhook_url": b + TEAMS_PATH + "?sig=TeamsSig0001"})
    )
    assert attempt.ok and attempt.http_status == 202, attempt
    assert seen[0].query == {"sig": "TeamsSig0001"}
    card = seen[0].json()["attachments"][0]["content"]
    assert card["version"] and card["body"][0]["color"] == "Attention"
    facts_shown = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts_shown["Node"] == "edge-1 (198.51.100.7)"
    assert card["actions"][0]["type"] == "Action.OpenUrl"


# ---------------------------------------------------------------- Telegram

BOT_TOKEN = "123456789:AAETelegramSecretTokenValue_xyz0"


def telegram_receiver(problems: list[str]) -> Handler:
    """Bot API sendMessage: checks the token path, parse mode and that the HTML parses."""
    from html.parser import HTMLParser

    class Check(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.stack: list[str] = []
            self.text = ""

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in ("b", "a"):
                problems.append(f"unsupported tag {tag}")
            self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if not self.stack or self.stack.pop() != tag:
                problems.append("unbalanced tags")

        def handle_data(self, data: str) -> None:
            self.text += data

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.path != f"/bot{BOT_TOKEN}/sendMessage":
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        body = seen.json()
        check = Check()
        check.feed(body["text"])
        check.close()
        if body.get("parse_mode") != "HTML" or check.stack:
            problems.append("bad parse mode or unclosed tag")
        if not 1 <= len(check.text) <= 4096:
            problems.append(f"text length {len(check.text)}")
        if problems:
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: can't parse entities",
                },
                status=400,
            )
        return web.json_response({"ok": True, "result": {"message_id": 77, "text": check.text}})

    return handler


def test_telegram_html_is_escaped_and_parses() -> None:
    problems: list[str] = []
    ev = event(incident=incident(summary="<script>alert(1)</script> & <b>bold</b>"))
    attempt, seen = run(
        send_to(
            telegram_receiver(problems),
            "telegram",
            lambda b: {"bot_token": BOT_TOKEN, "chat_id": "-1001234567890", "api_url": b},
            ev,
        )
    )
    assert problems == [] and attempt.ok, (problems, attempt)
    body = seen[0].json()
    assert body["chat_id"] == "-1001234567890"
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in body["text"]
    assert '<a href="https://fw.example.net/incidents/' in body["text"]


def test_telegram_errors_keep_the_token_out() -> None:
    chat_missing = answer(
        400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    )
    attempt, _ = run(
        send_to(
            chat_missing,
            "telegram",
            lambda b: {"bot_token": BOT_TOKEN, "chat_id": "42", "api_url": b},
        )
    )
    assert not attempt.ok and not attempt.retryable
    assert attempt.error is not None and "chat not found" in attempt.error
    assert_no_secret(attempt, BOT_TOKEN, "AAETelegramSecretTokenValue_xyz0")
    flood = answer(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
    )
    attempt, _ = run(
        send_to(
            flood, "telegram", lambda b: {"bot_token": BOT_TOKEN, "chat_id": "42", "api_url": b}
        )
    )
    assert attempt.retryable and attempt.retry_after == 7.0


# ---------------------------------------------------------------- PagerDuty

ROUTING_KEY = "R0utingKeySecret0123456789abcdef"


def pagerduty_receiver() -> Handler:
    """Events API v2: validates like PagerDuty and answers 202 or its error shape."""

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.path != "/v2/enqueue":
            return web.json_response({"status": "not found"}, status=404)
        body = seen.json()
        errors = []
        if len(body.get("routing_key", "")) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if body.get("event_action") == "trigger":
            p = body.get("payload") or {}
            if not p.get("summary") or len(p["summary"]) > 1024:
                errors.append("'payload.summary' is missing or too long")
            if not p.get("source"):
                errors.append("'payload.source' is missing")
            if p.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
        elif not body.get("dedup_key"):
            errors.append("'dedup_key' is required for resolve")
        if errors:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]},
            status=202,
        )

    return handler


def test_pagerduty_trigger_then_resolve_on_the_incident_uuid() -> None:
    def cfg(b: str) -> dict[str, Any]:
        return {"routing_key": ROUTING_KEY, "api_url": b}

    attempt, seen = run(send_to(pagerduty_receiver(), "pagerduty", cfg))
    assert attempt.ok and attempt.http_status == 202, attempt
    body = seen[0].json()
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11"
    p = body["payload"]
    assert (p["severity"], p["source"], p["component"], p["class"]) == (
        "error",
        "198.51.100.7",
        "edge-1",
        "udp_flood",
    )
    assert p["custom_details"]["origin"].startswith("US 48%")
    assert body["links"][0]["href"].endswith("0c6f0e2f9a11")

    attempt, seen = run(send_to(pagerduty_receiver(), "pagerduty", cfg, event("attack_end")))
    assert attempt.ok
    assert seen[0].json() == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11",
        "event_action": "resolve",
    }


def test_pagerduty_severity_map_and_invalid_key() -> None:
    def cfg(b: str) -> dict[str, Any]:
        return {"routing_key": ROUTING_KEY, "api_url": b, "severity_map": "high=critical"}

    _, seen = run(send_to(pagerduty_receiver(), "pagerduty", cfg))
    assert seen[0].json()["payload"]["severity"] == "critical"
    attempt, _ = run(
        send_to(
            pagerduty_receiver(),
            "pagerduty",
            lambda b: {"routing_key": "short-key-value", "api_url": b},
        )
    )
    assert attempt.http_status == 400 and not attempt.retryable
    assert attempt.error is not None and "Event object is invalid" in attempt.error


def test_secret_echoed_by_a_service_is_redacted() -> None:
    echo = answer(400, {"status": "invalid event", "message": f"unknown key {ROUTING_KEY}"})
    attempt, _ = run(
        send_to(echo, "pagerduty", lambda b: {"routing_key": ROUTING_KEY, "api_url": b})
    )
    assert attempt.error is not None and "unknown key ****" in attempt.error
    assert_no_secret(attempt, ROUTING_KEY)


# ---------------------------------------------------------------- Opsgenie

GENIE_KEY = "opsgenie-secret-key-0123456789"


def opsgenie_receiver() -> Handler:
    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"GenieKey {GENIE_KEY}":
            return web.json_response(
                {"message": "Could not authenticate", "took": 0.0, "requestId": "r1"},
                status=401,
            )
        body = seen.json()
        if request.path == "/v2/alerts":
            errors = {}
            if not body.get("message") or len(body["message"]) > 130:
                errors["message"] = "Message can not be empty or longer than 130."
            if len(body.get("alias", "")) > 512:
                errors["alias"] = "Alias too long."
            if body.get("priority") not in ("P1", "P2", "P3", "P4", "P5"):
                errors["priority"] = "Priority should be one of P1..P5."
            if errors:
                return web.json_response(
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": errors,
                        "took": 0.01,
                        "requestId": "r2",
                    },
                    status=422,
                )
        elif not (
            request.path.startswith("/v2/alerts/")
            and request.path.endswith("/close")
            and request.query.get("identifierType") == "alias"
        ):
            return web.json_response({"message": "Not found"}, status=404)
        return web.json_response(
            {"result": "Request will be processed", "took": 0.2, "requestId": "r3"}, status=202
        )

    return handler


def test_opsgenie_create_then_close_by_alias() -> None:
    def cfg(b: str) -> dict[str, Any]:
        return {"api_key": GENIE_KEY, "api_url": b, "responders": "noc, netops", "tags": ["edge"]}

    attempt, seen = run(send_to(opsgenie_receiver(), "opsgenie", cfg))
    assert attempt.ok and attempt.http_status == 202, attempt
    body = seen[0].json()
    assert body["alias"] == "7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11"
    assert body["priority"] == "P2" and len(body["message"]) <= 130
    assert body["responders"] == [
        {"type": "team", "name": "noc"},
        {"type": "team", "name": "netops"},
    ]
    assert "edge" in body["tags"] and body["entity"] == "edge-1 (198.51.100.7)"
    attempt, seen = run(send_to(opsgenie_receiver(), "opsgenie", cfg, event("attack_end")))
    assert attempt.ok
    assert seen[0].path == "/v2/alerts/7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11/close"
    assert seen[0].query == {"identifierType": "alias"}
    assert "traffic is back to normal" in seen[0].json()["note"]


def test_opsgenie_bad_key_and_regions() -> None:
    from notify.services.oncall import opsgenie_base

    attempt, _ = run(
        send_to(
            opsgenie_receiver(),
            "opsgenie",
            lambda b: {"api_key": "wrong-key-0000000", "api_url": b},
        )
    )
    assert attempt.http_status == 401 and not attempt.retryable
    assert attempt.error == "HTTP 401: message: Could not authenticate"
    assert opsgenie_base({"region": "eu"}) == "https://api.eu.opsgenie.com"
    assert opsgenie_base({}) == "https://api.opsgenie.com"
    assert opsgenie_base({"region": "eu", "api_url": "http://127.0.0.1:1/"}) == "http://127.0.0.1:1"


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
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    attempt, _ = run(
        send_to(
            answer(503, "busy", {"Retry-After": format_datetime(later, usegmt=True)}),
            "webhook",
            lambda b: {"url": b + "/h"},
        )
    )
    assert attempt.retryable and attempt.retry_after is not None
    assert 60 < attempt.retry_after <= 120
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


def test_untrusted_https_certificate_is_not_retried(certs: Any) -> None:
    import ssl

    _, cert = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def scenario() -> tuple[Attempt, int]:
        app = web.Application()
        seen: list[int] = []

        async def any_request(request: web.Request) -> web.Response:
            seen.append(1)
            return web.Response()

        app.router.add_route("*", "/{tail:.*}", any_request)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as s:
                # the session trusts only the system's CAs, not the test CA
                attempt = await deliver(
                    s,
                    target("webhook", {"url": f"https://127.0.0.1:{port}/h/SecretPath0001"}),
                    event(),
                    delivery_id="d",
                    timeout=5,
                )
        finally:
            await runner.cleanup()
        return attempt, len(seen)

    attempt, requests_seen = run(scenario())
    assert requests_seen == 0 and not attempt.ok and not attempt.retryable
    assert attempt.error is not None and "certificate" in attempt.error
    assert_no_secret(attempt, "SecretPath0001")


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


# ---------------------------------------------------------------- e-mail (aiosmtpd)

SMTP_USER, SMTP_PASSWORD = "alerts@example.net", "smtp-secret-password-5"


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued as FW1"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (
        isinstance(data, LoginPassword)
        and data.login.decode() == SMTP_USER
        and data.password.decode() == SMTP_PASSWORD
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certs() -> Any:
    import trustme

    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


def smtp_server(certs: Any, *, implicit_tls: bool) -> tuple[Any, Mailbox]:
    import ssl

    from aiosmtpd.controller import Controller

    from .conftest import free_port

    _, cert = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    box = Mailbox()
    kwargs: dict[str, Any] = {
        "authenticator": authenticator,
        "auth_required": True,
        "auth_require_tls": True,
    }
    if implicit_tls:
        kwargs["ssl_context"] = server_ctx
        # aiosmtpd counts only STARTTLS as TLS for AUTH; this connection is TLS from the start
        kwargs["auth_require_tls"] = False
    else:
        kwargs["tls_context"] = server_ctx
        kwargs["require_starttls"] = True
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller, box


def mail_config(controller: Any, ca: Any, security: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "email": "noc@example.com, oncall@example.org",
        "smtp_host": "127.0.0.1",
        "smtp_port": controller.port,
        "security": security,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "from": "floodwatch@example.net",
        "ca_cert": ca.cert_pem.bytes().decode(),
    }
    cfg.update(over)
    return cfg


async def mail(config: dict[str, Any], ev: AlertEvent, delivery_id: str = "dlv-7") -> Attempt:
    async with aiohttp.ClientSession() as s:
        return await deliver(s, target("email", config), ev, delivery_id=delivery_id, timeout=10)


# aiosmtpd warns of AUTH without STARTTLS; on the implicit-TLS server the connection is TLS
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls_with_auth(certs: Any, security: str) -> None:
    import email
    from email import policy

    controller, box = smtp_server(certs, implicit_tls=security == "tls")
    try:
        attempt = run(mail(mail_config(controller, certs[0], security), event()))
    finally:
        controller.stop()
    assert attempt.ok, attempt
    assert attempt.smtp_reply == "250 2.0.0 Ok: queued as FW1"
    ((sender, rcpts, raw),) = box.messages
    assert sender == "floodwatch@example.net"
    assert rcpts == ["noc@example.com", "oncall@example.org"]
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Message-ID"] == "<dlv-7@example.net>"
    assert msg["Subject"].startswith("[HIGH] UDP flood (DNS amplification) on edge-1")
    assert msg["References"] == "<incident-7b0c7a52-2f0e-4d8e-9b43-0c6f0e2f9a11@example.net>"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    rich = msg.get_body(("html",))
    assert plain is not None and rich is not None
    text, html_part = plain.get_content(), rich.get_content()
    for fact in ("198.51.100.7", "40 kpps", "31x", "US 48%", "DNS reflection", "/incidents/"):
        assert fact in text and fact in html_part, fact


def test_email_end_says_why_and_threads(certs: Any) -> None:
    import email
    from email import policy

    controller, box = smtp_server(certs, implicit_tls=False)
    try:
        ev = event("attack_end", end_reason="false_positive")
        attempt = run(mail(mail_config(controller, certs[0], "starttls"), ev, "dlv-8"))
    finally:
        controller.stop()
    assert attempt.ok
    msg = email.message_from_bytes(box.messages[0][2], policy=policy.default)
    assert msg["In-Reply-To"] == msg["References"]
    body = msg.get_body(("plain",))
    assert body is not None and "marked as a false positive" in body.get_content()


def test_email_failures_classified_without_the_password(certs: Any) -> None:
    controller, box = smtp_server(certs, implicit_tls=False)
    ca = certs[0]
    try:
        wrong = run(
            mail(mail_config(controller, ca, "starttls", password="not-the-pass-1"), event())
        )
        untrusted = run(mail(mail_config(controller, ca, "starttls", ca_cert=None), event()))
        refused = run(
            mail(mail_config(controller, ca, "starttls", email="x@refused.example"), event())
        )
        # the server requires STARTTLS; plain AUTH is refused before it
        plain = run(mail(mail_config(controller, ca, "none"), event()))
    finally:
        controller.stop()
    assert box.messages == []
    assert not wrong.ok and not wrong.retryable
    assert wrong.smtp_reply is not None and wrong.smtp_reply.startswith("535")
    assert not untrusted.ok and not untrusted.retryable
    assert untrusted.error == "the SMTP server's TLS certificate is not trusted"
    assert not refused.ok and not refused.retryable
    assert refused.smtp_reply is not None and refused.smtp_reply.startswith("550")
    assert not plain.ok and not plain.retryable
    for attempt in (wrong, untrusted, refused, plain):
        assert_no_secret(attempt, SMTP_PASSWORD, "not-the-pass-1")


def test_email_server_down_is_retryable() -> None:
    from .conftest import free_port

    cfg = {
        "email": "noc@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": free_port(),
        "security": "none",
    }
    attempt = run(mail(cfg, event()))
    assert not attempt.ok and attempt.retryable
    assert attempt.error is not None and "127.0.0.1" in attempt.error


def test_email_without_server_is_a_config_error() -> None:
    attempt = run(mail({"email": "noc@example.com"}, event()))
    assert not attempt.ok and not attempt.retryable and attempt.error is not None
    assert "smtp_host" in attempt.error


# ---------------------------------------------------------------- property: arbitrary incidents

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_huge_text = st.builds(
    lambda c, n: c * n,
    st.characters() | st.sampled_from(["x", "é", "🙂", "<", "&", "_", "\u200b"]),
    st.integers(0, 20_000),
)
_texts = st.one_of(st.text(max_size=40), _huge_text)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    _texts,
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_INCIDENT_KEYS = [
    "id",
    "uuid",
    "title",
    "status",
    "attack_family",
    "attack_subtype",
    "severity",
    "peak_pps",
    "peak_bps",
    "source_ip_count",
    "started_at",
    "resolved_at",
    "summary",
    "ai_summary",
    "detection",
    "geo_origin",
    "top_sources",
    "breakdown",
    "detail",
    "node_name",
    "node_ip",
]
_incidents = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            **dict.fromkeys(_INCIDENT_KEYS, _json),
            "severity": st.sampled_from(["low", "medium", "high", "critical"]) | _json,
            "started_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()) | _json,
            "detection": st.fixed_dictionaries(
                {}, optional={k: _json for k in ("metric", "observed", "baseline", "multiplier")}
            ),
            "geo_origin": st.lists(
                st.fixed_dictionaries({}, optional={"country": _json, "share": _json}), max_size=5
            ),
        },
    ),
)
_nodes = st.one_of(
    st.none(), st.fixed_dictionaries({}, optional={k: _json for k in ("id", "uuid", "name", "ip")})
)
_events = st.builds(
    lambda kind, inc, node, reason, link, ws: AlertEvent(
        event_id="e1",
        kind=kind,
        occurred_at=NOW,
        workspace=ws,
        node=node,
        incident=inc,
        end_reason=reason if kind == "attack_end" else None,
        changes=("peak", "severity") if kind == "attack_update" else (),
        dashboard_url=link,
    ),
    st.sampled_from(["attack_start", "attack_update", "attack_end", "test"]),
    _incidents,
    _nodes,
    st.sampled_from(["resolved", "expired", "false_positive", "node_deleted"]),
    st.none() | st.just("https://fw.example.net/i/1") | _texts.map(lambda t: "https://x/" + t),
    st.fixed_dictionaries({}, optional={"uuid": _json, "name": _json}),
)


_LONGEST = event(
    "attack_update",
    changes=("peak", "family", "severity"),
    node={"name": "n" * 5000, "ip": "i" * 5000},
    incident=incident(
        attack_family="f" * 5000,
        attack_subtype="s_" * 5000,
        severity="critical",
        summary="<&>🙂" * 5000,
        title="t" * 5000,
    ),
    dashboard_url="https://fw.example.net/" + "p" * 5000,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=_events)
@example(ev=_LONGEST)
@example(ev=event(incident=incident(title="\ud800", summary="\udfff" * 3, x={"\ud801": 1})))
def test_payloads_stay_within_service_limits(ev: AlertEvent) -> None:
    from notify.http import dumps
    from notify.message import short_text
    from notify.services import chat, mail, observability, oncall, webhook

    slack = chat.slack_payload(ev, {})
    assert len(slack["text"]) <= 3000 and len(slack["blocks"]) <= 50
    for block in slack["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        for fld in block.get("fields", []):
            assert len(fld["text"]) <= 2000
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    (embed,) = chat.discord_payload(ev, {})["embeds"]
    total = len(embed["title"]) + len(embed.get("description", "")) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= 6000 and len(embed["title"]) <= 256 and len(embed["fields"]) <= 25
    assert all(0 < len(f["value"]) <= 1024 for f in embed["fields"])
    assert len(chat.telegram_payload(ev, {"chat_id": "1"})["text"]) <= 4096
    assert len(short_text(ev)) <= 160
    pd = oncall.pagerduty_event(ev, {"routing_key": "k" * 32})
    assert len(pd.get("payload", {}).get("summary", "")) <= 1024
    assert len(oncall.opsgenie_alert(ev, {})["message"]) <= 130
    dd = observability.datadog_event(ev, {})
    assert len(dd["title"]) <= 100 and len(dd["text"]) <= 4000
    assert len(dd["aggregation_key"]) <= 100
    for body in (
        slack,
        pd,
        dd,
        webhook.payload(ev, "d"),
        chat.teams_payload(ev),
        observability.grafana_annotation(ev, {}),
        observability.alertmanager_alerts(ev, {}),
    ):
        orjson.loads(dumps(body))  # valid JSON whatever the incident held
    mail.build_message(ev, {"email": "noc@example.com"}, "dlv").as_bytes()


@dataclass
class LiveReceiver:
    """A receiver on its own thread's loop, shared by many hypothesis examples."""

    problems: list[str] = field(default_factory=list)
    base: str = ""


@pytest.fixture(scope="module")
def live() -> Any:
    import threading

    state = LiveReceiver()
    routes = {
        "/services": slack_receiver(state.problems),
        "/api/webhooks": discord_receiver(state.problems),
        "/bot": telegram_receiver(state.problems),
        "/2010-04-01": twilio_receiver(),
    }

    async def dispatch(request: web.Request, seen: Seen) -> web.StreamResponse:
        for prefix, handler in routes.items():
            if request.path.startswith(prefix):
                return await handler(request, seen)
        return await answer(200)(request, seen)

    loop = asyncio.new_event_loop()
    rx = Receiver(dispatch)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(rx.__aenter__())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(rx.__aexit__())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    state.base = rx.base
    yield state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ev=_events)
@example(ev=_LONGEST)
def test_deliver_never_raises_and_services_accept(live: LiveReceiver, ev: AlertEvent) -> None:
    configs = {
        "slack": {"webhook_url": live.base + SLACK_PATH},
        "discord": {"webhook_url": live.base + DISCORD_PATH},
        "telegram": {"bot_token": BOT_TOKEN, "chat_id": "1", "api_url": live.base},
        "sms": {
            "phone": "+15551234567",
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from": "+15557654321",
            "api_url": live.base,
        },
        "webhook": {"url": live.base + "/h", "secret": WEBHOOK_SECRET},
    }

    async def scenario() -> list[Attempt]:
        async with aiohttp.ClientSession() as s:
            return [
                await deliver(s, target(t, c), ev, delivery_id="d", timeout=10)
                for t, c in configs.items()
            ]

    attempts = run(scenario())
    assert live.problems == []
    assert all(a.ok for a in attempts), attempts
