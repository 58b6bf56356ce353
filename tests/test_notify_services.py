"""Alert senders against real local receivers that check each service's documented request:
the webhook (and its signature), the filters, Slack, Discord, Teams, Telegram, PagerDuty and
Opsgenie. Each receiver is a real aiohttp server on a free loopback port that checks method,
path, auth and body shape the way the service documents them, and answers as that service does
(success and error shapes). More services in ``test_notify_monitoring.py``, e-mail and the
properties in ``test_notify_email.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiohttp import web

from notify.events import AlertEvent, passes_filters

from .notify_support import (
    NOW,
    Handler,
    Seen,
    answer,
    assert_no_secret,
    event,
    incident,
    run,
    send_to,
)

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
