"""A webhook receiver for alert tests: a real aiohttp server on loopback, in a thread of its own.

Each path has a behaviour that a test can change while the server runs: ``ok`` (200), ``fail``
(500), ``hang`` (never answers), ``limit`` (429 with ``Retry-After``), ``bad`` (400); a
``script`` of behaviours is consumed first, one per request, before the path's steady
behaviour. Every request is recorded with its headers, raw body and whether its signature
verified; ``delivered`` dedupes by delivery id, as a real receiver would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Received", "WebhookReceiver", "wait_until"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    signature_ok: bool | None
    answered: str
    at: float = field(default_factory=time.monotonic)

    @property
    def delivery_id(self) -> str:
        return self.headers.get("X-Floodwatch-Delivery", "")

    @property
    def event(self) -> str:
        return str(self.body.get("event_type"))


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class WebhookReceiver:
    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.behaviour: dict[str, str] = {}
        self.scripts: dict[str, list[str]] = {}
        self.prefixes: dict[str, str] = {}
        self.retry_after = "1"
        self.port = 0
        self._answered = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def set(self, path: str, behaviour: str, script: list[str] | None = None) -> None:
        with self._lock:
            self.behaviour["/" + path.lstrip("/")] = behaviour
            if script is not None:
                self.scripts["/" + path.lstrip("/")] = list(script)

    def set_under(self, path: str, behaviour: str) -> None:
        """``behaviour`` for every path under ``path`` that has none of its own (a service
        whose requests add their own suffix to a base URL)."""
        with self._lock:
            self.prefixes["/" + path.strip("/") + "/"] = behaviour

    def requests_under(self, path: str) -> list[Received]:
        """Requests to ``path`` or to any path under it."""
        base = "/" + path.strip("/")
        with self._lock:
            return [r for r in self.requests if r.path == base or r.path.startswith(base + "/")]

    def got(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == "/" + path.lstrip("/")]

    def delivered(self, path: str) -> list[Received]:
        """Requests answered 200, one per delivery id (the receiver's dedupe)."""
        seen: dict[str, Received] = {}
        for r in self.got(path):
            if r.answered == "ok" and r.delivery_id not in seen:
                seen[r.delivery_id] = r
        return list(seen.values())

    def events(self, path: str) -> list[str]:
        return [r.event for r in self.delivered(path)]

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _next(self, path: str) -> str:
        with self._lock:
            script = self.scripts.get(path)
            if script:
                return script.pop(0)
            if path in self.behaviour:
                return self.behaviour[path]
            for prefix, behaviour in self.prefixes.items():
                if path.startswith(prefix):
                    return behaviour
            return "ok"

    def _serve(self) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            sig_ok = None
            if self.secret:
                want = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
                sig_ok = hmac.compare_digest(want, request.headers.get("X-Flowtriq-Signature", ""))
            what = self._next(request.path)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = {}
            rec = Received(request.path, dict(request.headers), raw, body, sig_ok, what)
            with self._lock:
                self.requests.append(rec)
            if what == "hang":
                await asyncio.sleep(3600)
            if what == "fail":
                return web.Response(status=500, text="boom")
            if what == "bad":
                return web.Response(status=400, text="bad request")
            if what == "limit":
                return web.Response(status=429, headers={"Retry-After": self.retry_after})
            with self._lock:
                self._answered += 1
                number = self._answered
            # "ok" for Telegram, an "id" for Grafana's annotations; any other service only
            # looks at the status
            return web.json_response({"ok": True, "id": number})

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._loop = asyncio.new_event_loop()
        try:
            with contextlib.suppress(RuntimeError):
                self._loop.run_until_complete(main())
                # requests still hanging: end them here rather than leave them to the collector
                left = asyncio.all_tasks(self._loop)
                for task in left:
                    task.cancel()
                self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        finally:
            self._loop.close()  # its selector and wake-up socket pair, not left to the collector
