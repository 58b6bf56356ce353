"""The ftagent endpoints: ``/api/v1/agent/{config,heartbeat,metrics,incidents,commands/ack}``
and the reports ``gre-tunnels``, ``vm-stats``, ``sp/metrics``, ``sp/blocks``, ``l7/detect``,
``l7/metrics``, ``mirror-metrics`` (described in docs/agent-api.md; the rules it keeps, §12).

Answers follow the agent's reading of status codes (§3): 2xx always with a JSON object; 4xx only
for what must be dropped for good (bad key: 401; missing ``X-Node-UUID``: 401; ``X-Node-UUID``
of another node than the key's: 403; a body that is not a JSON object, metrics without numeric
``pps``/``bps``, a report's known field of an impossible type, a non-integer ``command_id``:
400; over 4 MiB: 413); overload is 503 with a small integer ``Retry-After`` (``guard``).

Metrics bodies become one METRICS lake row (source ``ftagent``, or ``ftagent-replay`` for the
posts of a retry-queue flush, which never set the node's live pps; see ``hotpath.ReplayWatch``)
stamped with the arrival time: ``pps``, ``bps``, ``conn_count``, and
``tcp_pps``/``udp_pps``/``icmp_pps`` estimated as the reported share of ``pps``. ``avg_pps``,
``threshold`` and ``samples`` have no lake column.

Incident bodies, acks and reports are checked by their models (``models``) and stored by the
repository modules (``incident_repo``, ``settings_repo``, ``report_repo``). Reports are stored
as they came; each answers ``{"ok": true}``; ``gre-tunnels`` adds ``whitelisted``, the tunnels'
remote endpoints (§10.1). ``l7/detect`` and ``l7/metrics`` open no incident: L7 incidents come
only from the agent's own incident calls (§8.4); ``l7/detect`` is the web-server discovery
result.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import orjson
from aiohttp import web

from ingest.errors import Backpressure
from ingest.metrics import METRICS as INGEST_METRICS
from ingest.pipeline import Pipeline
from ingest.receiver import CachedCredentials
from store import Connection, Store
from store import errors as store_errors
from store.clock import SYSTEM_CLOCK, Clock

from ..activity import ActivityTracker, heartbeat_status
from ..errors import ApiError, json_bytes, json_response
from ..http import count_auth_failure
from ..models import validate
from ..openapi import operations as oa
from ..ratelimit import FixedWindowLimiter
from . import incident_repo, pcap_repo, report_repo, settings_repo
from .defaults import AgentTraits, load_all_answers, load_config
from .hotpath import ConfigCache, MetricsBatcher, ReplayWatch, metrics_row
from .models import REPORT_MODELS, CommandAck, IncidentOpen, IncidentReport

__all__ = [
    "AGENT",
    "MAX_AGENT_BODY",
    "PREFIX",
    "TEST_HEARTBEAT_FIELDS",
    "WRITER_BACKLOG_LIMIT",
    "AgentApi",
    "agent_operation",
    "guard",
    "incident_ref",
]

log = logging.getLogger("floodwatch.agent")

PREFIX = "/api/v1/agent"
MAX_AGENT_BODY = 4 * 1024 * 1024
RETRY_AFTER = "2"
_OK = b'{"ok":true}'


def _record_report(
    con: Connection,
    ws: uuid.UUID,
    node: uuid.UUID,
    kind: str,
    body: dict[str, Any],
    now: datetime,
) -> bool:
    """Store a report; an ``l7-detect`` one also ends the node's web-server discovery
    (``settings_repo.clear_l7_action``). Returns whether the node's config changed."""
    report_repo.record_report(con, ws, node, kind, body, now)
    return kind == "l7-detect" and settings_repo.clear_l7_action(con, ws, node)


TEST_HEARTBEAT_FIELDS = frozenset(
    {
        "version",
        "baseline_ready",
        "baseline_avg_pps",
        "baseline_p99_pps",
        "baseline_hourly_ready",
        "baseline_current_hour_p99",
    }
)
"""The whole body of ``ftagent --test`` (§6.3); a real heartbeat has many more fields."""

Handler = Callable[[web.Request], Awaitable[web.Response]]


class AgentApi:
    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        credentials: CachedCredentials,
        activity: ActivityTracker,
        auth_failures: FixedWindowLimiter,
        config_cache_secs: float = 600.0,
        incident_expiry_secs: float = incident_repo.INCIDENT_IDLE_EXPIRY_SECS,
        data_path: Path | None = None,
        pcap_retention_days: int = pcap_repo.PCAP_RETENTION_DAYS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.store = store
        self.pipeline = pipeline
        self.credentials = credentials
        self.activity = activity
        self.auth_failures = auth_failures
        self.configs = ConfigCache(self._load_config, ttl_secs=config_cache_secs, clock=clock)
        self.batcher = MetricsBatcher(pipeline)
        self.incident_expiry_secs = incident_expiry_secs
        self.data_path = data_path
        self.pcap_retention_days = pcap_retention_days
        self.replays = ReplayWatch()
        self.traits: dict[str, AgentTraits] = {}
        """node -> traits of its newest heartbeat seen by this process."""

    async def preload_configs(self) -> int:
        """Fill the config cache for every live node (up to its size) in one pass: at start, so
        that a fleet's first polls need no database. Returns how many were cached."""
        epoch = self.configs.epoch()
        loaded = await self.store.read(
            load_all_answers, self.configs.max_entries, dict(self.traits)
        )
        answers = {}
        for node, body, traits in loaded:
            self.traits.setdefault(node, traits)
            answers[node] = body
        return self.configs.prime(answers, epoch)

    async def _load_config(self, ws: str, node: str) -> bytes | None:
        loaded = await self.store.read(
            load_config, uuid.UUID(ws), uuid.UUID(node), self.traits.get(node)
        )
        if loaded is None:
            return None
        body, traits = loaded
        self.traits.setdefault(node, traits)
        return json_bytes(body)

    # --- housekeeping -------------------------------------------------------------------------

    async def expire_idle_incidents(self) -> int:
        """Expire every node's incidents the agent fell silent about (§8.10); returns how many.
        Their mitigations' undo commands then wait in the config answers."""
        return await self.store.run(
            incident_repo.expire_idle_incidents, self.clock.now(), self.incident_expiry_secs
        )

    async def delete_expired_pcaps(self) -> int:
        """Apply the capture retention (§9.4); returns how many captures were deleted."""
        if self.data_path is None:
            return 0
        return await self.store.run(
            pcap_repo.delete_expired_pcaps,
            self.data_path,
            self.clock.now(),
            self.pcap_retention_days,
        )

    # --- helpers ------------------------------------------------------------------------------

    async def authenticate(self, request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
        """(workspace, node) from the bearer node key plus a matching ``X-Node-UUID``."""
        ws, node = await self.authenticate_ids(request)
        return uuid.UUID(ws), uuid.UUID(node)

    async def authenticate_ids(self, request: web.Request) -> tuple[str, str]:
        """``authenticate`` as canonical strings, for the hot path (no UUID objects)."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        cred = None
        if scheme.lower() == "bearer" and key and len(key) <= 256:
            cred = await self.credentials.resolve(key)
        if cred is None or cred.node is None:
            count_auth_failure(self.auth_failures, request.remote or "unknown", self.clock.time())
            if not key:
                raise ApiError(401, "unauthorized", "missing node key (Authorization: Bearer)")
            raise ApiError(401, "unauthorized", "invalid node key")
        header = request.headers.get("X-Node-UUID", "").strip().lower()
        if not header:
            raise ApiError(401, "unauthorized", "missing X-Node-UUID header")
        if header != cred.node:
            raise ApiError(403, "forbidden", "X-Node-UUID does not match the key's node")
        return cred.workspace, cred.node

    async def body(self, request: web.Request) -> dict[str, Any]:
        length = request.content_length
        if length is not None and length > MAX_AGENT_BODY:
            raise ApiError(413, "payload_too_large", "request body is too large")
        if length is not None:  # the usual case: one read of a known size
            try:
                raw = await request.content.readexactly(length)
            except asyncio.IncompleteReadError:
                raise ApiError(400, "invalid_json", "request body ended early") from None
        else:  # chunked: read up to the cap
            chunks, size = [], 0
            async for chunk in request.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > MAX_AGENT_BODY:
                    raise ApiError(413, "payload_too_large", "request body is too large")
                chunks.append(chunk)
            raw = b"".join(chunks)
        if not raw.strip():
            raise ApiError(400, "invalid_json", "request body is empty; expected a JSON object")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "request body must be a JSON object")
        return body

    # --- handlers -----------------------------------------------------------------------------

    async def config(self, request: web.Request) -> web.Response:
        ws, node = await self.authenticate_ids(request)
        body = await self.configs.get(ws, node)
        if body is None:  # deleted within the credential cache's lifetime
            raise ApiError(401, "unauthorized", "invalid node key")
        return web.Response(body=body, content_type="application/json")

    async def heartbeat(self, request: web.Request) -> web.Response:
        _, node = await self.authenticate_ids(request)
        body = await self.body(request)
        version = body.get("version", body.get("current_version"))
        if not isinstance(version, str) or not version.strip() or len(version) > 64:
            version = None
        error = body.get("update_error")
        if "version" not in body and isinstance(error, str):  # the self-update report (§6.4)
            self.activity.heartbeat(node, version, None, error[:1000] or "unknown error")
        elif body.keys() <= TEST_HEARTBEAT_FIELDS:
            # ``ftagent --test`` (§6.3): six fixed fields that say nothing about how the agent
            # runs. Alive, but neither the stored heartbeat nor the traits (flow, mirror) change:
            # a config built from it would stop a running flow collector.
            self.activity.heartbeat(node, version, None)
        else:
            self.activity.heartbeat(node, version, heartbeat_status(body))
            self.replays.heartbeat(node, body.get("retry_queue_size"), self.clock.monotonic())
            traits = AgentTraits.of(body)
            known = self.traits.get(node)
            self.traits[node] = traits
            if known != traits:  # the flow default and the mirror keys follow the traits
                # (with nothing known there is no entry to drop, but a load in flight that
                # used the stored heartbeat must not be cached)
                self.configs.invalidate(node)
        return web.Response(body=_OK, content_type="application/json")

    def report(self, kind: str) -> Handler:
        """The handler of one report endpoint (``kind`` in ``report_repo.REPORT_KINDS``)."""

        model = REPORT_MODELS[kind]

        async def handler(request: web.Request) -> web.Response:
            ws, node = await self.authenticate(request)
            body = await self.body(request)
            validate(model, body)
            cleared = await self.store.run(_record_report, ws, node, kind, body, self.clock.now())
            if cleared:  # the node's config lost its l7.action
                self.configs.invalidate(str(node))
            answer: dict[str, Any] = {"ok": True}
            if kind == "gre-tunnels":
                answer["whitelisted"] = report_repo.whitelisted(body)
            return json_response(answer)

        return handler

    async def metrics(self, request: web.Request) -> web.Response:
        ws, node = await self.authenticate_ids(request)
        body = await self.body(request)
        now = self.clock.now()
        # Replays carry no time of their own and would pass for current traffic: they are kept
        # (source ftagent-replay, stamped on arrival) but never set the node's live pps.
        replay = self.replays.is_replay(node, self.clock.monotonic())
        row = metrics_row(body, node, now, "ftagent-replay" if replay else "ftagent")
        await self.batcher.submit(ws, row)
        if not replay:
            self.activity.record([(node, now, row["pps"], row["bps"])])
        else:
            self.activity.heartbeat(node, None, None)  # alive all the same
        return web.Response(body=_OK, content_type="application/json")

    async def open_incident(self, request: web.Request) -> web.Response:
        ws, node = await self.authenticate(request)
        body = await self.body(request)
        validate(IncidentOpen, body)  # refuses nothing today; the body is kept as sent
        inc, merged = await self.store.run(
            incident_repo.open_incident, ws, node, body, self.clock.now(), self.incident_expiry_secs
        )
        # an open first expires the node's silent incidents, whose mitigations' undo commands
        # then wait in the config answer (docs/agent-api.md §8.10)
        self.configs.invalidate(str(node))
        return json_response({"ok": True, "uuid": str(inc), "merged": merged})

    async def _report(self, request: web.Request, kind: str) -> web.Response:
        ws, node = await self.authenticate(request)
        body = await self.body(request)
        validate(IncidentReport, body)  # refuses nothing today; the body is kept as sent
        ref = request.match_info["uuid"].strip()
        if not ref or len(ref) > 128:
            raise ApiError(404, "not_found", "incident not found")
        inc, created = await self.store.run(
            incident_repo.report_incident,
            ws,
            node,
            ref,
            kind,
            body,
            self.clock.now(),
            self.incident_expiry_secs,
        )
        # a resolve withdraws the incident's mitigations and queues their undo commands; an
        # update may have found the incident expired first, which does the same (§8.10)
        self.configs.invalidate(str(node))
        return json_response({"ok": True, "uuid": str(inc), "created": created})

    async def update_incident(self, request: web.Request) -> web.Response:
        return await self._report(request, "update")

    async def resolve_incident(self, request: web.Request) -> web.Response:
        return await self._report(request, "resolve")

    async def command_ack(self, request: web.Request) -> web.Response:
        _, node = await self.authenticate(request)
        ack = validate(CommandAck, await self.body(request))
        await self.store.run(
            settings_repo.record_ack, node, ack.command_id, ack.status, ack.error, self.clock.now()
        )
        self.configs.invalidate(str(node))
        return json_response({"ok": True})


WRITER_BACKLOG_LIMIT = 256
"""Calls queued for the database writer beyond which an agent call that needs it is answered
503 with ``Retry-After`` (§3.5) instead of waiting: at ~4 ms an incident report, a
quarter of the agent's 5-10 s client timeout, and the agent retries and then queues."""


class Backlogged(Protocol):
    backlog: int


def guard(endpoint: str, handler: Handler, writer: Backlogged | None = None) -> Handler:
    """Counts each call by endpoint and status (``/metrics``), and turns a database or disk that
    is not available, or a ``writer`` too far behind, into overload for the agent: 503 with
    Retry-After."""

    async def wrapped(request: web.Request) -> web.Response:
        status = 500
        started = time.perf_counter()
        try:
            if writer is not None and writer.backlog > WRITER_BACKLOG_LIMIT:
                raise ApiError(
                    503,
                    "overloaded",
                    "the server is busy; retry shortly",
                    headers={"Retry-After": RETRY_AFTER},
                )
            response = await handler(request)
            status = response.status
            return response
        except ApiError as err:
            status = err.status
            raise
        except store_errors.StoreError as exc:
            if isinstance(
                exc,
                store_errors.NotFound
                | store_errors.Conflict
                | store_errors.InvalidValue
                | store_errors.Forbidden,
            ):
                status = 400
                raise
            status = 503
            raise ApiError(
                503,
                "unavailable",
                "the database is not available",
                headers={"Retry-After": RETRY_AFTER},
            ) from None
        except Backpressure:
            status = 503
            raise
        except (duckdb.Error, OSError):
            # the database or the disk failed (full, I/O error): the agent should come back
            # later (503: it retries, then queues), not drop its data (4xx)
            log.exception("agent call failed on storage endpoint=%s", endpoint)
            status = 503
            raise ApiError(
                503,
                "unavailable",
                "storage is not available",
                headers={"Retry-After": RETRY_AFTER},
            ) from None
        finally:
            INGEST_METRICS.agent_requests.inc(1, endpoint, str(status))
            INGEST_METRICS.agent_request_seconds.observe(time.perf_counter() - started)

    return wrapped


AGENT = web.AppKey("floodwatch_agent_api", AgentApi)


# --------------------------------------------------------------------------- OpenAPI


def agent_operation(
    operation_id: str,
    summary: str,
    description: str,
    ok: Any,
    *,
    request: Any = None,
    errors: tuple[int, ...] = (),
    parameters: tuple[Any, ...] = (),
    **extra: Any,
) -> oa.Operation:
    """The operation of an ftagent endpoint: node key plus ``X-Node-UUID``, ``ok`` the 200's
    body, ``request`` the model of the JSON body; the errors any call can answer (and 400,
    413 with a body) besides ``errors``. ``extra`` reaches the operation as it is (a
    ``requestBody`` of another content type)."""
    statuses = {401, 403, 429, 500, 503, *errors}
    if request is not None or "requestBody" in extra:
        statuses |= {400, 413}
    return oa.operation(
        operation_id,
        tag="Agent",
        summary=summary,
        description=description
        + " Authenticated by the node's API key (`Authorization: Bearer`) plus `X-Node-UUID`, "
        "which must name that key's node (missing: 401, another node: 403). Overload is 503 "
        "with an integer `Retry-After`.",
        security=[{"nodeKey": []}],
        parameters=(
            {
                "name": "X-Node-UUID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The node's UUID; required in practice (401 without it).",
            },
            *parameters,
        ),
        request_body=None
        if request is None
        else oa.body("The agent's JSON object; unknown fields are kept or ignored.", request),
        answers={200: oa.answer("Accepted.", ok)},
        errors=sorted(statuses),
        standard_errors=False,
        **extra,
    )


def incident_ref(unknown: str) -> dict[str, Any]:
    """The path parameter of a call about an incident: the uuid the open answered, or one the
    agent made up (``unknown``: what then happens)."""
    return {
        "name": "uuid",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        "description": f"The incident uuid from the open, or one the agent made up ({unknown}); "
        "blank: 404.",
    }
