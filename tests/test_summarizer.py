"""api/summarizer.py against a real local aiohttp server pretending to be the model's endpoint."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from api.summarizer import SYSTEM_PROMPT, Summarizer, redact_url

KEY = "sk-test-SECRET-key-0123456789"
FALLBACK = "Deterministic summary."
FACTS: dict[str, Any] = {
    "node": "edge-1",
    "attack_family": "udp_flood",
    "attack_subtype": "ntp_amplification",
    "peak_pps": 1_200_000.0,
    "baseline_pps": 4_000.0,
    "onset_at": dt.datetime(2026, 3, 1, 3, 0, tzinfo=dt.UTC),
    "duration_secs": 320,
    "top_sources": [{"ip": "5.5.5.5", "share": 12.5, "country": "DE"}],
    "top_src_ports": [{"port": 123, "share": 97.0}],
    "check_first": "upstream blackholing of UDP source port 123",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(text: Any) -> dict[str, Any]:
    return {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


class Endpoint:
    """A local server; records what it was sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        self.requests.append((request.path, dict(request.headers), parsed))
        return await self.handler(request)

    async def __aenter__(self) -> Endpoint:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def summarize_with(handler: Handler, **kw: Any) -> tuple[str, Endpoint]:
    async with Endpoint(handler) as ep, Summarizer(ep.url, "tiny-model", KEY, **kw) as s:
        text = await s.summarize(FACTS, FALLBACK)
    return text, ep


def test_success_and_request_shape() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(answer("  An NTP reflection flood hits edge-1 at 300x baseline. "))

    text, ep = asyncio.run(summarize_with(ok, max_tokens=222))
    assert text == "An NTP reflection flood hits edge-1 at 300x baseline."
    [(path, headers, body)] = ep.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Type"] == "application/json"
    assert body["model"] == "tiny-model"
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 222
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    facts = json.loads(user["content"].split("\n", 1)[1])
    assert facts["attack_subtype"] == "ntp_amplification"
    assert facts["onset_at"].startswith("2026-03-01T03:00:00")
    assert facts["top_src_ports"] == [{"port": 123, "share": 97.0}]


def test_no_authorization_header_without_a_key() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(answer("Fine."))

    async def run() -> Endpoint:
        async with Endpoint(ok) as ep, Summarizer(ep.url, "m") as s:
            assert await s.summarize(FACTS, FALLBACK) == "Fine."
        return ep

    ep = asyncio.run(run())
    assert "Authorization" not in ep.requests[0][1]


def test_server_error_gives_fallback(caplog: pytest.LogCaptureFixture) -> None:
    async def boom(request: web.Request) -> web.StreamResponse:
        return web.json_response(answer("should not be used"), status=500)

    with caplog.at_level(logging.WARNING, logger="floodwatch.summarizer"):
        text, ep = asyncio.run(summarize_with(boom))
    assert text == FALLBACK
    assert len(ep.requests) == 1
    assert "status 500" in caplog.text
    assert KEY not in caplog.text


def test_slow_endpoint_times_out(caplog: pytest.LogCaptureFixture) -> None:
    release: list[asyncio.Event] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        event = asyncio.Event()
        release.append(event)
        await asyncio.wait_for(event.wait(), 30)  # released once the client has given up
        return web.json_response(answer("too late"))

    async def run() -> str:
        async with Endpoint(slow) as ep:
            async with Summarizer(ep.url, "m", KEY, timeout_secs=0.3) as s:
                text = await s.summarize(FACTS, FALLBACK)
            for event in release:
                event.set()
        assert len(ep.requests) == 1
        return text

    with caplog.at_level(logging.WARNING, logger="floodwatch.summarizer"):
        text = asyncio.run(run())
    assert text == FALLBACK
    assert "no answer within 0.3 s" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"choices": []}',
        b'{"choices": [{"message": {}}]}',
        b'{"choices": [{"message": {"content": 42}}]}',
        b'{"choices": [{"message": {"content": "   "}}]}',
        b'{"choices": [{"message": {"content": "<think>hm</think>  "}}]}',
        b"[1, 2]",
        json.dumps(answer("x" * 5000)).encode(),
    ],
)
def test_malformed_body_gives_fallback(body: bytes) -> None:
    async def bad(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    text, ep = asyncio.run(summarize_with(bad))
    assert text == FALLBACK
    assert len(ep.requests) == 1


def test_think_block_is_removed() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(answer("<think>\nreasoning\n</think>\nThe summary."))

    text, _ = asyncio.run(summarize_with(ok))
    assert text == "The summary."


def test_connection_refused_gives_fallback(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def run() -> str:
        async with Summarizer(f"http://127.0.0.1:{port}/v1", "m", KEY) as s:
            return await s.summarize(FACTS, FALLBACK)

    with caplog.at_level(logging.WARNING, logger="floodwatch.summarizer"):
        assert asyncio.run(run()) == FALLBACK
    assert "request failed" in caplog.text
    assert KEY not in caplog.text


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_unconfigured_or_unserializable_gives_fallback() -> None:
    async def run() -> tuple[str, str, str]:
        async with Summarizer("", "m", KEY) as off, Summarizer("http://127.0.0.1:9/v1", "") as s2:
            a = await off.summarize(FACTS, FALLBACK)
            b = await s2.summarize(FACTS, FALLBACK)
        async with Summarizer("http://127.0.0.1:9/v1", "m") as s3:
            c = await s3.summarize({"x": float("nan"), "y": Unprintable()}, FALLBACK)
        return a, b, c

    assert asyncio.run(run()) == (FALLBACK, FALLBACK, FALLBACK)


def test_config_and_key_hiding() -> None:
    cfg = SimpleNamespace(
        summary_llm_url="https://user:pw@llm.example/v1/",
        summary_llm_model="m",
        summary_llm_api_key=KEY,
        summary_llm_timeout_secs=2.5,
    )
    s = Summarizer.from_config(cfg)
    assert s.enabled
    assert s.endpoint == "https://user:pw@llm.example/v1/chat/completions"
    assert s.timeout_secs == 2.5
    assert KEY not in repr(s) and "pw" not in repr(s)
    off = SimpleNamespace(
        summary_llm_url="",
        summary_llm_model="gpt-4o-mini",
        summary_llm_api_key="",
        summary_llm_timeout_secs=5.0,
    )
    assert not Summarizer.from_config(off).enabled
    assert redact_url("https://user:pw@llm.example:8443/v1") == "https://llm.example:8443/v1"
    with pytest.raises(ValueError):
        Summarizer("http://x", "m", timeout_secs=0)


def test_shared_session_is_not_closed() -> None:
    import aiohttp

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(answer("Shared."))

    async def run() -> bool:
        async with Endpoint(ok) as ep, aiohttp.ClientSession() as session:
            s = Summarizer(ep.url, "m", session=session)
            assert await s.summarize(FACTS, FALLBACK) == "Shared."
            await s.close()
            return session.closed

    assert asyncio.run(run()) is False
