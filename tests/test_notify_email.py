"""E-mail alerts through a real aiosmtpd server (STARTTLS and implicit TLS with certificates from
trustme, AUTH), an HTTPS sender refusing an untrusted certificate, and the properties every
sender keeps on arbitrary incidents (payloads within the services' limits, ``deliver`` never
raising)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from notify.events import AlertEvent, Attempt, deliver

from .notify_support import (
    NOW,
    Receiver,
    Seen,
    answer,
    assert_no_secret,
    event,
    incident,
    run,
    target,
)
from .test_notify_monitoring import TWILIO_SID, TWILIO_TOKEN, twilio_receiver
from .test_notify_services import (
    BOT_TOKEN,
    DISCORD_PATH,
    SLACK_PATH,
    WEBHOOK_SECRET,
    discord_receiver,
    slack_receiver,
    telegram_receiver,
)

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


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)


_json = st.recursive(_scalars, _containers, max_leaves=12)
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
