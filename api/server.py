"""``floodwatch serve``: run the HTTP server and the admin socket until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time

import uvloop
from aiohttp import web

from ingest.metrics import METRICS

from .admin import admin_socket_path, create_admin_app
from .app import access_logger_class, bootstrap, create_app
from .config import Config

__all__ = ["run_server"]

log = logging.getLogger("floodwatch")

LISTEN_BACKLOG = 4096
"""Pending connections the kernel queues for us (capped by net.core.somaxconn). A fleet of
agents reconnects all at once after a restart; with aiohttp's default of 128 the overflow's
SYNs are dropped and those agents wait out a 1 s, then 3 s retransmit."""


async def _serve(cfg: Config) -> None:
    data = cfg.data_path
    data.mkdir(parents=True, exist_ok=True, mode=0o750)
    app = create_app(cfg)
    runner = web.AppRunner(
        app,
        access_log_class=access_logger_class(cfg.server.access_log),
        access_log=logging.getLogger("floodwatch.access"),
        shutdown_timeout=cfg.server.shutdown_timeout_secs,
        handle_signals=False,
        keepalive_timeout=75,
    )
    await runner.setup()  # opens the database, applies migrations, replays the WAL
    admin_runner: web.AppRunner | None = None
    sock_path = admin_socket_path(cfg)
    try:
        site = web.TCPSite(
            runner,
            cfg.server.host,
            cfg.server.port,
            reuse_address=True,
            backlog=LISTEN_BACKLOG,
        )
        await site.start()
        if cfg.server.admin_socket:
            with contextlib.suppress(FileNotFoundError):
                sock_path.unlink()  # a stale socket of a server that died; we hold the DB lock
            admin_runner = web.AppRunner(create_admin_app(app), access_log=None)
            await admin_runner.setup()
            old_umask = os.umask(0o177)
            try:
                await web.UnixSite(admin_runner, str(sock_path)).start()
            finally:
                os.umask(old_umask)
            os.chmod(sock_path, 0o600)
        port = cfg.server.port
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            port = server.sockets[0].getsockname()[1]
        host = cfg.server.host
        url_host = f"[{host}]" if ":" in host else host
        log.info("floodwatch listening on http://%s:%s data=%s", url_host, port, data)
        await bootstrap(app)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("floodwatch stopping")
    finally:
        if admin_runner is not None:
            await admin_runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                sock_path.unlink()
        await runner.cleanup()
    log.info("floodwatch stopped")


def _watch_gc() -> None:
    """Every garbage-collector pause into ``floodwatch_gc_pause_seconds``."""
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif started[0]:
            METRICS.gc_pause_seconds.observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)


def run_server(cfg: Config) -> None:
    _watch_gc()
    uvloop.run(_serve(cfg))
