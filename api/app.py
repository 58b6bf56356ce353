"""The application factory: wiring happens here, once."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from store import Store
from store import workspaces as ws_repo

from .config import Config
from .errors import error_middleware
from .http import rate_headers_middleware
from .ratelimit import FixedWindowLimiter
from .routes import ROUTE_TABLES
from .state import STATE, AppState

__all__ = ["AccessLogger", "create_app"]

log = logging.getLogger("floodwatch")


class AccessLogger(AbstractAccessLogger):
    """Method, path without the query string (it may carry a token), status, bytes, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )


def bootstrap_default_workspace(con: object, cfg: Config) -> str | None:
    """On an empty database, create the default workspace; returns its token or None."""
    _, total = ws_repo.list_workspaces(con, None, limit=1)  # type: ignore[arg-type]
    if total:
        return None
    _, token = ws_repo.create_workspace(con, "default", cfg.api.default_plan)  # type: ignore[arg-type]
    return token


def create_app(cfg: Config, store: Store | None = None) -> web.Application:
    store = store or Store(cfg.database_path, cfg.store.threads, cfg.store.memory_limit)
    app = web.Application(
        middlewares=[rate_headers_middleware, error_middleware],
        client_max_size=cfg.api.max_body_bytes,
    )
    app[STATE] = AppState(
        config=cfg,
        store=store,
        token_limiter=FixedWindowLimiter(cfg.api.rate_limit_per_minute),
        auth_failure_limiter=FixedWindowLimiter(cfg.api.auth_failures_per_minute),
    )
    for table in ROUTE_TABLES:
        app.router.add_routes(table)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        await store.start()
        if cfg.api.bootstrap_workspace:
            token = await store.run(bootstrap_default_workspace, cfg)
            if token is not None:
                # straight to the terminal, never through logging (which may go to a file)
                print(
                    "\nCreated the default workspace. Its deploy token, shown once:\n\n"
                    f"    {token}\n\n"
                    "Use it as 'Authorization: Bearer <token>'. More tokens: "
                    "floodwatch token create\n",
                    file=sys.stdout,
                    flush=True,
                )
        yield
        await store.stop()

    app.cleanup_ctx.append(store_ctx)
    return app
