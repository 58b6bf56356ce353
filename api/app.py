"""The application factory: wiring happens here, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ingest.metrics import METRICS
from ingest.pipeline import Pipeline, PipelineSettings
from ingest.receiver import CachedCredentials, Credential, Receiver, ReceiverSettings
from store import Connection, Store, outbox
from store import collectors as collectors_repo
from store import nodes as nodes_repo
from store import workspaces as ws_repo
from store.catalog import export_snapshots, write_catalog
from store.clock import SYSTEM_CLOCK, Clock

from . import agentapi, metrics
from .activity import ActivityTracker, ElevationRule
from .config import Config
from .detection import DetectionService
from .dispatcher import DISPATCHER, Dispatcher, dispatcher_ctx
from .http import HOT_PATH_PREFIXES, api_middleware
from .ratelimit import FixedWindowLimiter
from .routes import ROUTE_TABLES, telemetry
from .state import STATE, AppState

__all__ = ["AccessLogger", "access_logger_class", "bootstrap", "create_app", "pipeline_settings"]

log = logging.getLogger("floodwatch")


class AccessLogger(AbstractAccessLogger):
    """Method, path without the query string (it may carry a token), status, bytes, time.

    ``mode`` (setting ``server.access_log``): ``all``; ``rest``, every request except the
    successful (2xx) calls of agents and telemetry senders, which are machine traffic counted on
    ``/metrics`` (thousands of nodes would otherwise write thousands of lines a second); ``off``."""

    mode = "rest"

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self.mode == "off":
            return
        hot = request.path.startswith(HOT_PATH_PREFIXES)
        if self.mode == "rest" and response.status < 300 and hot:
            return
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )


def access_logger_class(mode: str) -> type[AccessLogger]:
    return type("AccessLogger_" + mode, (AccessLogger,), {"mode": mode})


def bootstrap_default_workspace(con: Connection, cfg: Config) -> str | None:
    """On a database that never held a workspace, create the default one; returns its token."""
    row = con.execute("SELECT count(*) FROM workspaces").fetchone()
    if row is not None and row[0]:
        return None
    _, token = ws_repo.create_workspace(con, "default", cfg.api.default_plan)
    return token


async def bootstrap(app: web.Application) -> None:
    """Called once the server listens (so a busy port never eats the one-time token)."""
    st = app[STATE]
    if not st.config.api.bootstrap_workspace:
        return
    token = await st.store.run(bootstrap_default_workspace, st.config)
    if token is not None:
        # straight to the terminal, never through logging (which may go to a file)
        print(
            "\nCreated the default workspace. Its deploy token, shown once:\n\n"
            f"    {token}\n\n"
            "Use it as 'Authorization: Bearer <token>'. More tokens: floodwatch token create "
            "(.venv/bin/floodwatch after make run)\n",
            file=sys.stdout,
            flush=True,
        )


def pipeline_settings(cfg: Config) -> PipelineSettings:
    ing, lk = cfg.ingest, cfg.lake
    return PipelineSettings(
        flush_rows=ing.flush_rows,
        flush_age_secs=ing.flush_age_secs,
        max_buffer_bytes=ing.max_buffer_bytes,
        wal_segment_bytes=ing.wal_segment_bytes,
        wal_compression="" if ing.wal_compression == "none" else ing.wal_compression,
        dedup_window_secs=ing.dedup_window_secs,
        dedup_max_ids=ing.dedup_max_ids,
        compression=lk.compression,
        fresh_compression=lk.fresh_compression,
        compression_level=lk.compression_level,
        lake_writers=lk.writers,
        compact_after_secs=lk.compact_after_secs,
        maintenance_interval_secs=lk.maintenance_interval_secs,
        retention_days=(
            ("metrics", lk.raw_retention_days),
            ("flows", lk.flows_retention_days),
            ("metrics_1m", lk.rollup_1m_retention_days),
            ("metrics_5m", lk.rollup_5m_retention_days),
            ("metrics_1h", lk.rollup_1h_retention_days),
        ),
    )


def _resolve_key(con: Connection, key: str) -> Credential | None:
    node = collectors_repo.authenticate_node_key(con, key)
    if node is not None:
        return Credential(id=f"n:{node[1]}", workspace=str(node[0]), node=str(node[1]))
    collector = collectors_repo.authenticate_collector(con, key)
    if collector is not None:
        # the dedupe scope of the key's batch ids: the key itself, never its whole workspace
        ws, key_id = collector
        return Credential(id=f"k:{key_id}", workspace=str(ws), node=None)
    return None


class Reloader:
    """Runs ``job`` (an async bulk load into a hot-path cache) at start and again after each
    write that cleared that cache: one run at a time, and requests during a run ask for exactly
    one more, so a burst of writes (a script creating 200 nodes) costs a few runs, not one
    per write. A failed run is logged; the cache then fills one entry at a time."""

    def __init__(
        self, name: str, job: Callable[[], Awaitable[object]], min_gap_secs: float = 0.0
    ) -> None:
        self.name = name
        self.job = job
        self.min_gap_secs = min_gap_secs
        """Pause between a run and the next one it owes (writes that came during it)."""
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                result = await self.job()
            except Exception:
                log.exception("%s failed", self.name)
                return
            self.runs += 1
            level = logging.INFO if self.runs == 1 else logging.DEBUG  # at start, then quietly
            log.log(level, "%s nodes=%s run=%d", self.name, result, self.runs)
            if not self._again:
                return
            await asyncio.sleep(self.min_gap_secs)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def key_preload(store: Store, credentials: CachedCredentials) -> Callable[[], Awaitable[int]]:
    """Every live node's key hash into the credential cache in one query, so a fleet
    reconnecting after a restart (or after a write cleared the cache) needs no per-key lookups.
    Returns how many were cached."""

    async def job() -> int:
        generation = credentials.generation
        rows = await store.read(collectors_repo.live_node_key_hashes, credentials.max_entries)
        return credentials.prime(
            {
                digest: Credential(id=f"n:{node}", workspace=str(ws), node=str(node))
                for digest, ws, node in rows
            },
            generation,
        )

    return job


def _node_index(con: Connection, workspace: str) -> dict[str, str]:
    return collectors_repo.workspace_node_index(con, uuid.UUID(workspace))


class LimiterGuard:
    """The REST API's failed-authentication limiter, offered to the telemetry receiver (on the
    app's clock, like the REST API's own counting)."""

    def __init__(self, limiter: FixedWindowLimiter, clock: Clock = SYSTEM_CLOCK) -> None:
        self.limiter = limiter
        self.clock = clock

    def failed(self, client: str) -> int | None:
        now = self.clock.time()
        verdict = self.limiter.hit(client, now)
        return None if verdict.allowed else verdict.retry_after(now)


PCAP_RETENTION_EVERY_SECS = 3600.0
BASELINE_REFRESH_EVERY_SECS = 300.0


async def _housekeeping(store: Store, pipeline: Pipeline, cfg: Config) -> None:
    """Every maintenance interval: refresh the analysts' snapshots."""
    while True:
        await asyncio.sleep(cfg.lake.maintenance_interval_secs)
        try:
            await store.run(export_snapshots, pipeline.lake.root)
        except Exception:
            log.exception("snapshot export failed")


LOOP_LAG_TICK_SECS = 0.1
LOOP_LAG_WARN_SECS = 1.0


async def _watch_loop_lag() -> None:
    """Measures how late a short timer fires: the time every request waits behind whatever
    holds the event loop (or the GIL). Exposed on /metrics; a stall over a second is logged."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LOOP_LAG_TICK_SECS
        await asyncio.sleep(LOOP_LAG_TICK_SECS)
        lag = max(0.0, loop.time() - due)
        METRICS.loop_lag_seconds.observe(lag)
        if lag >= LOOP_LAG_WARN_SECS:
            log.warning("event loop stalled for %.2f s", lag)


async def _agent_housekeeping(
    store: Store,
    pipeline: Pipeline,
    activity: ActivityTracker,
    agent: agentapi.AgentApi,
    cfg: Config,
    on_expired: Callable[[], None],
) -> None:
    """Expire agent incidents that stopped getting reports (every few seconds), refresh node
    baselines for ``elevated`` (every 5 minutes) and apply PCAP retention (about hourly)."""
    expiry = cfg.api.agent_incident_expiry_secs
    every = min(15.0, max(1.0, expiry / 20))
    last_pcap_sweep = last_baselines = float("-inf")
    while True:
        try:
            if await agent.expire_idle_incidents():
                on_expired()  # their mitigations' undo commands are due in configs
        except Exception:
            log.exception("incident expiry failed")
        if time.monotonic() - last_baselines >= BASELINE_REFRESH_EVERY_SECS:
            last_baselines = time.monotonic()
            try:
                activity.baselines = await store.query(
                    nodes_repo.node_baselines, pipeline.lake.root
                )
            except Exception:
                log.exception("baseline refresh failed")
        if time.monotonic() - last_pcap_sweep >= PCAP_RETENTION_EVERY_SECS:
            last_pcap_sweep = time.monotonic()
            try:
                await agent.delete_expired_pcaps()
            except Exception:
                log.exception("pcap retention failed")
            try:
                await store.run(outbox.purge_log, datetime.now(UTC), cfg.alerts.log_retention_days)
            except Exception:
                log.exception("alert log retention failed")
        await asyncio.sleep(every)


def _flow_enricher(cfg: Config) -> Callable[[pl.DataFrame], dict[str, Any]] | None:
    """Breakdown, top sources and ports, and origin of an incident's flows."""
    try:
        from detect.enrich import flow_breakdown
        from detect.geo import GeoLookup
    except ImportError:  # pragma: no cover - shipped together
        return None
    d = cfg.detect
    geo = None
    if d.geo != "off":
        try:
            geo = GeoLookup.open(
                mode=d.geo, country_db=d.maxmind_country_db or None, asn_db=d.maxmind_asn_db or None
            )
        except Exception:
            log.exception("geo database not available; origins are left out")

    def enrich(flows: pl.DataFrame) -> dict[str, Any]:
        found: dict[str, Any] = flow_breakdown(flows, geo)
        return found

    return enrich


def create_app(
    cfg: Config, store: Store | None = None, clock: Clock = SYSTEM_CLOCK
) -> web.Application:
    """The application: every route, its state and its background tasks. ``clock`` is where
    the API's time-based decisions read the time (a ``ManualClock`` in tests)."""
    store = store or Store(cfg.database_path, cfg.store.threads, cfg.store.memory_limit)
    app = web.Application(
        middlewares=[api_middleware],
        client_max_size=cfg.api.max_body_bytes,
    )
    pipeline = Pipeline(cfg.data_path, pipeline_settings(cfg), clock)

    async def resolve(key: str) -> Credential | None:
        return await store.read(_resolve_key, key)

    async def index(workspace: str) -> dict[str, str]:
        return await store.read(_node_index, workspace)

    credentials = CachedCredentials(
        resolve, index, ttl_secs=cfg.ingest.auth_cache_secs, clock=clock
    )
    activity = ActivityTracker(
        store,
        rule=ElevationRule(cfg.api.elevated_factor, cfg.api.elevated_floor_pps),
        clock=clock,
    )
    auth_failures = FixedWindowLimiter(cfg.api.auth_failures_per_minute)
    receiver = Receiver(
        pipeline,
        credentials,
        ReceiverSettings(
            max_body_bytes=cfg.ingest.max_body_bytes,
            max_batch_rows=cfg.ingest.max_batch_rows,
            max_age=timedelta(days=cfg.lake.raw_retention_days),
            flows_max_age=timedelta(days=cfg.lake.flows_retention_days),
            max_skew=timedelta(seconds=cfg.ingest.max_clock_skew_secs),
            decode_threads=cfg.ingest.decode_threads,
            max_concurrent_decodes=cfg.ingest.max_concurrent_decodes,
        ),
        on_activity=activity.record,
        auth_guard=LimiterGuard(auth_failures, clock),
        clock=clock,
    )
    app[STATE] = AppState(
        config=cfg,
        store=store,
        token_limiter=FixedWindowLimiter(cfg.api.rate_limit_per_minute),
        auth_failure_limiter=auth_failures,
        pipeline=pipeline,
        receiver=receiver,
        credentials=credentials,
        activity=activity,
        clock=clock,
    )
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    telemetry.setup(app, receiver)
    agent = agentapi.setup(app, cfg, store, pipeline, credentials, activity, auth_failures, clock)
    keys = Reloader("node keys preloaded", key_preload(store, credentials))
    # building every node's answer is Python work on the reader thread, which shares the GIL
    # with the event loop: a script making hundreds of writes gets a reload a second at most
    configs = Reloader("agent config answers preloaded", agent.preload_configs, 1.0)

    def control_write() -> None:
        agent.configs.clear()
        keys.request()
        configs.request()

    def incidents_expired() -> None:  # their mitigations' undo commands are due in configs
        agent.configs.clear()
        configs.request()

    detection = None
    if cfg.detect.enabled:
        detection = DetectionService(
            cfg.detect,
            store,
            pipeline,
            cfg.data_path,
            activity,
            enrich=_flow_enricher(cfg),
            clock=clock,
        )
        app[STATE].detection = detection
    app[STATE].on_control_write.append(control_write)
    app.router.add_get(metrics.PATH, metrics.metrics_handler)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        await store.start()
        yield
        await store.stop()

    async def pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
        await pipeline.start()
        if detection is not None:
            await detection.start()  # before the receiver: no acknowledged batch goes unseen
        await receiver.start()
        await activity.start()
        keys.request()
        configs.request()
        await store.run(export_snapshots, pipeline.lake.root)
        try:
            await asyncio.to_thread(write_catalog, cfg.data_path, pipeline.lake.root)
        except duckdb.Error as exc:  # an old catalog held open elsewhere stays usable
            log.warning("catalog not rewritten: %s", exc)
        tasks = [
            asyncio.create_task(_watch_loop_lag(), name="loop-lag"),
            asyncio.create_task(_housekeeping(store, pipeline, cfg), name="housekeeping"),
            asyncio.create_task(
                _agent_housekeeping(store, pipeline, activity, agent, cfg, incidents_expired),
                name="agent-housekeeping",
            ),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await keys.stop()
        await configs.stop()
        await receiver.stop()
        await agent.batcher.drain()
        if detection is not None:
            await detection.stop()
        await activity.stop()
        await pipeline.stop()

    al = cfg.alerts
    outbox.configure(
        outbox.AlertSettings(
            enabled=al.enabled,
            public_url=al.public_url or cfg.server.public_url,
            update_interval_secs=al.update_interval_secs,
            update_peak_factor=al.update_peak_factor,
        )
    )
    app[DISPATCHER] = Dispatcher(store, al, clock=clock)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(pipeline_ctx)
    app.cleanup_ctx.append(dispatcher_ctx)
    return app
