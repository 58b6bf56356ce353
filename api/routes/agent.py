"""The ftagent Agent API: ``/api/v1/agent/{config,heartbeat,metrics,incidents,commands/ack}``
and the reports ``gre-tunnels``, ``vm-stats``, ``sp/metrics``, ``sp/blocks``, ``l7/detect``,
``l7/metrics``, ``mirror-metrics`` (described in docs/agent-api.md; the rules it keeps, §12),
plus the REST views of those reports (deploy token): ``GET /api/v1/reports`` (paged, filters
``node`` and ``kind``) and ``GET /api/v1/nodes/{uuid}/reports`` (the newest of each kind).

Answers follow the agent's reading of status codes: 2xx always with a JSON object; 4xx only for
what must be dropped for good (bad key: 401; missing ``X-Node-UUID``: 401; ``X-Node-UUID`` of
another node than the key's: 403; a body that is not a JSON object, or metrics without numeric
``pps``/``bps``: 400; over 4 MiB: 413); overload is 503 with a small integer ``Retry-After``.

Metrics bodies become one METRICS lake row (source ``ftagent``, or ``ftagent-replay`` for the
posts of a retry-queue flush, which never set the node's live pps; see ``ReplayWatch``) stamped
with the arrival time:
``pps``, ``bps``, ``conn_count``, and ``tcp_pps``/``udp_pps``/``icmp_pps`` estimated as the
reported share of ``pps``. ``avg_pps``, ``threshold`` and ``samples`` have no lake column.

Reports (§10) are validated tolerantly and stored as they came (``store/agent_reports.py``;
400 only for a known field of an impossible type, e.g. ``"tunnels": "gre0"``). Each answers
``{"ok": true}``; ``gre-tunnels`` adds ``whitelisted``, the tunnels' remote endpoints (§10.1).
``l7/detect`` and ``l7/metrics`` open no incident: L7 incidents come only from the agent's own
incident calls (§8.4); ``l7/detect`` is the web-server discovery result.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import duckdb
import orjson
from aiohttp import web

from ingest.errors import Backpressure
from ingest.metrics import METRICS as INGEST_METRICS
from ingest.pipeline import Pipeline
from ingest.receiver import CachedCredentials
from store import Connection, Store, agent_settings, utcnow
from store import agent_incidents as repo
from store import agent_reports as reports
from store import errors as store_errors

from ..activity import ActivityTracker, heartbeat_status
from ..agent_hotpath import ConfigCache, MetricsBatcher
from ..errors import ApiError, json_bytes, json_response
from ..http import authenticate as authenticate_deploy_token
from ..http import choice_param, count_auth_failure, int_param, parse_uuid, path_uuid, state
from ..ratelimit import FixedWindowLimiter

__all__ = ["AGENT", "MAX_AGENT_BODY", "AgentApi", "config_body", "guard", "metrics_row", "setup"]

log = logging.getLogger("floodwatch.agent")

PREFIX = "/api/v1/agent"
MAX_AGENT_BODY = 4 * 1024 * 1024
RETRY_AFTER = "2"
_OK = b'{"ok":true}'


@dataclass(frozen=True)
class AgentTraits:
    """What the node's newest heartbeat says about how its agent runs (§6.2): whether a flow
    collector exists (``flow_active``, or a flow-only mirror) and whether it is a mirror."""

    flow: bool = False
    mirror: bool = False

    @classmethod
    def of(cls, heartbeat: dict[str, Any] | None) -> AgentTraits:
        hb = heartbeat or {}
        return cls(
            flow=hb.get("flow_active") is True or hb.get("mirror_flow_only") is True,
            mirror=hb.get("mirror_mode") is True,
        )


def config_body(node: dict[str, Any], traits: AgentTraits | None = None) -> dict[str, Any]:
    """The config object (§4.1): every key the agent reads with its documented type, except
    those its local file also sets where absent means "unchanged".

    ``flow.enabled`` defaults to what the node's heartbeat reported (§4.4: a node that
    runs a collector, enabled in its local file or a flow-only mirror, must keep getting
    ``enabled: true`` or it stops using it); an operator's override decides over it."""
    traits = traits or AgentTraits()
    ports = [
        {"protocol": str(p.get("protocol") or "both"), "port_value": str(p.get("port_value"))}
        for p in node.get("service_ports") or []
        if isinstance(p, dict) and p.get("port_value")
    ]
    return {
        # ``pcap_enabled`` and ``velocity_detection`` are also set in the agent's local file
        # and absent means "unchanged" (§4.2): they go out only once an operator sets them, so
        # a node with capture turned off locally is not switched on by a default
        "pps_threshold": 0,
        "dynamic_threshold": True,
        "ioc_patterns": [],
        "ip_blocklist": [],
        "attack_holddown": 10,
        "attack_cooldown": 120,
        "confirm_ticks": 5,
        "flow": {
            "enabled": traits.flow,
            "protocol": "auto",
            "port": 0,
            "sample_rate": 0,
            "source_ips": [],
            "node_ip": "",
        },
        "l7": {
            "enabled": False,
            "sensitivity": "medium",
            "rps_threshold": None,
            "error_rate_threshold": 50,
        },
        "service_ports": {
            "enabled": bool(node.get("sp_enabled")),
            "ports": ports,
            "pps_threshold": 100,
            "response_mode": str(node.get("sp_response_mode") or "full"),
            "block_cooldown": 300,
            "block_scope": "non_service",
            "ip_safelist": [],
            "sensitivity": str(node.get("sp_sensitivity") or "standard"),
        },
        "pending_commands": [],
    }


def _stored_traits(row: dict[str, Any]) -> AgentTraits:
    status = row.get("agent_status")
    return AgentTraits.of(orjson.loads(status) if isinstance(status, str) else None)


def config_answer(
    row: dict[str, Any],
    layers: tuple[dict[str, Any], dict[str, Any]],
    pending: list[dict[str, Any]],
    traits: AgentTraits,
) -> dict[str, Any]:
    """The config answer of a node: its defaults (``config_body``) overlaid by the workspace's
    and then the node's overrides (``layers``), with its unacknowledged commands. ``mirror_*``
    keys only go to mirror nodes (§4.2: a non-mirror agent errors on
    ``mirror_ip_limit``)."""
    body = agent_settings.overlay(config_body(row, traits), layers)
    if not traits.mirror:
        body = {k: v for k, v in body.items() if not k.startswith("mirror_")}
    body["pending_commands"] = pending
    return body


def load_config(
    con: Connection, ws: uuid.UUID, node: uuid.UUID, traits: AgentTraits | None = None
) -> tuple[dict[str, Any], AgentTraits] | None:
    """The node's config answer and the traits it was built with; None when the node is gone.
    ``traits`` are the newest heartbeat's when this process holds one not yet written; else
    they come from the stored heartbeat."""
    row = repo.node_config_row(con, node)
    if row is None:
        return None
    traits = traits or _stored_traits(row)
    layers = (
        agent_settings.get_overrides(con, ws, None),
        agent_settings.get_overrides(con, ws, node),
    )
    return config_answer(row, layers, agent_settings.pending_commands(con, node), traits), traits


def load_all_configs(
    con: Connection, limit: int, known: dict[str, AgentTraits]
) -> list[tuple[str, dict[str, Any], AgentTraits]]:
    """(node, answer, traits) of up to ``limit`` live nodes in four queries, for a server that
    starts with a fleet about to poll (``known``: traits this process holds)."""
    overrides = agent_settings.all_overrides(con)
    pending = agent_settings.all_pending_commands(con)
    out = []
    for row in repo.all_node_config_rows(con, limit):
        node, ws = row["uuid"], row["workspace_uuid"]
        traits = known.get(node) or _stored_traits(row)
        layers = (overrides.get((ws, None), {}), overrides.get((ws, node), {}))
        out.append((node, config_answer(row, layers, pending.get(node, []), traits), traits))
    return out


def load_all_answers(
    con: Connection, limit: int, known: dict[str, AgentTraits]
) -> list[tuple[str, bytes, AgentTraits]]:
    """``load_all_configs`` with the answers already serialized (on the reader thread: for a
    large fleet that is too much work for the event loop in one go)."""
    return [(node, json_bytes(body), t) for node, body, t in load_all_configs(con, limit, known)]


def _record_report(
    con: Connection,
    ws: uuid.UUID,
    node: uuid.UUID,
    kind: str,
    body: dict[str, Any],
    now: datetime,
) -> bool:
    """Store a report; an ``l7-detect`` one also ends the node's web-server discovery
    (``agent_settings.clear_l7_action``). Returns whether the node's config changed."""
    reports.record_report(con, ws, node, kind, body, now)
    return kind == "l7-detect" and agent_settings.clear_l7_action(con, ws, node)


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

REPLAY_GAP_SECS = 0.5
"""How close together the posts of one retry-queue flush arrive (they go back to back)."""


class ReplayWatch:
    """Tells the metrics of a retry-queue flush from current ones (§7.2).

    Replayed metrics carry no time of their own. ftagent flushes its queue only right after a
    heartbeat was answered 2xx, and that heartbeat says how many posts it holds
    (``retry_queue_size``). So after a heartbeat announcing ``n > 0`` posts, the node's metrics
    that follow it back to back (each within ``REPLAY_GAP_SECS`` of the heartbeat or of the
    previous one, at most ``n`` of them) are the flush; the first gap, or ``n`` posts, ends it.
    A node whose heartbeat announced an empty queue never has its metrics taken for replays,
    however close together they come (an attack's start flushes metrics early, §1.4)."""

    def __init__(self, max_nodes: int = 1_000_000) -> None:
        self.max_nodes = max_nodes
        self._flushing: dict[str, tuple[float, int]] = {}
        """node -> (when the flush's last post or its heartbeat came, posts still expected)"""

    def heartbeat(self, node: str, queued: Any, now: float) -> None:
        if isinstance(queued, int) and not isinstance(queued, bool) and queued > 0:
            if len(self._flushing) >= self.max_nodes:
                self._flushing.clear()
            self._flushing[node] = (now, min(queued, 100_000))
        else:
            self._flushing.pop(node, None)

    def is_replay(self, node: str, now: float) -> bool:
        flush = self._flushing.get(node)
        if flush is None:
            return False
        last, left = flush
        if now - last >= REPLAY_GAP_SECS or left <= 0:
            del self._flushing[node]
            return False
        if left > 1:
            self._flushing[node] = (now, left - 1)
        else:
            del self._flushing[node]
        return True


def metrics_row(
    body: dict[str, Any], node: str, now: datetime, source: str = "ftagent"
) -> dict[str, Any]:
    """One lake row from an ftagent metrics body; 400 when ``pps`` or ``bps`` is unusable."""
    pps, bps = repo.num(body.get("pps")), repo.num(body.get("bps"))
    for name, value in (("pps", pps), ("bps", bps)):
        if value is None:
            raise ApiError(
                400, "invalid_parameter", f"{name} must be a non-negative number", field=name
            )
    assert pps is not None and bps is not None
    row: dict[str, Any] = {"node_uuid": node, "source": source, "time": now}
    row["pps"], row["bps"] = pps, bps
    for proto in ("tcp", "udp", "icmp"):
        share = repo.num(body.get(f"{proto}_pct"))
        row[f"{proto}_pps"] = None if share is None else pps * (min(share, 100.0) / 100.0)
    conn = repo.num(body.get("conn_count"))
    row["conn_count"] = None if conn is None else int(min(conn, 2**62))
    return row


Handler = Callable[[web.Request], Awaitable[web.Response]]


async def list_reports(request: web.Request) -> web.Response:
    """REST: reports of the caller's nodes, newest first, optionally of one node and kind."""
    caller = await authenticate_deploy_token(request)
    limit = int_param(request, "limit", 50, 1, 100)
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    kind = choice_param(request, "kind", reports.REPORT_KINDS)
    node = request.query.get("node")
    node_uuid = None
    if node:
        node_uuid = parse_uuid(node)
        if node_uuid is None:
            raise ApiError(400, "invalid_parameter", "node must be a node UUID", field="node")
    rows, total = await state(request).store.run(
        reports.list_reports, caller.ws_uuid, node_uuid, kind, limit, offset
    )
    return json_response(
        {"ok": True, "reports": rows, "total": total, "limit": limit, "offset": offset}
    )


async def latest_node_reports(request: web.Request) -> web.Response:
    """REST: the newest report of each kind of one of the caller's nodes (404 otherwise)."""
    caller = await authenticate_deploy_token(request)
    node_uuid = path_uuid(request, "uuid", "node")
    latest = await state(request).store.run(reports.latest_reports, caller.ws_uuid, node_uuid)
    return json_response({"ok": True, "node_uuid": node_uuid, "reports": latest})


class AgentApi:
    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        credentials: CachedCredentials,
        activity: ActivityTracker,
        auth_failures: FixedWindowLimiter,
        config_cache_secs: float = 600.0,
        incident_expiry_secs: float = repo.INCIDENT_IDLE_EXPIRY_SECS,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.credentials = credentials
        self.activity = activity
        self.auth_failures = auth_failures
        self.configs = ConfigCache(self._load_config, ttl_secs=config_cache_secs)
        self.batcher = MetricsBatcher(pipeline)
        self.incident_expiry_secs = incident_expiry_secs
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
            count_auth_failure(self.auth_failures, request.remote or "unknown", time.time())
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
            self.replays.heartbeat(node, body.get("retry_queue_size"), time.monotonic())
            traits = AgentTraits.of(body)
            known = self.traits.get(node)
            self.traits[node] = traits
            if known != traits:  # the flow default and the mirror keys follow the traits
                # (with nothing known there is no entry to drop, but a load in flight that
                # used the stored heartbeat must not be cached)
                self.configs.invalidate(node)
        return web.Response(body=_OK, content_type="application/json")

    def report(self, kind: str) -> Handler:
        """The handler of one report endpoint (``kind`` in ``agent_reports.REPORT_KINDS``)."""

        async def handler(request: web.Request) -> web.Response:
            ws, node = await self.authenticate(request)
            body = await self.body(request)
            reports.validate_report(kind, body)
            cleared = await self.store.run(_record_report, ws, node, kind, body, utcnow())
            if cleared:  # the node's config lost its l7.action
                self.configs.invalidate(str(node))
            answer: dict[str, Any] = {"ok": True}
            if kind == "gre-tunnels":
                answer["whitelisted"] = reports.whitelisted(body)
            return json_response(answer)

        return handler

    async def metrics(self, request: web.Request) -> web.Response:
        ws, node = await self.authenticate_ids(request)
        body = await self.body(request)
        now = utcnow()
        # Replays carry no time of their own and would pass for current traffic: they are kept
        # (source ftagent-replay, stamped on arrival) but never set the node's live pps.
        replay = self.replays.is_replay(node, time.monotonic())
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
        inc, merged = await self.store.run(
            repo.open_incident, ws, node, body, utcnow(), self.incident_expiry_secs
        )
        # an open first expires the node's silent incidents, whose mitigations' undo commands
        # then wait in the config answer (docs/agent-api.md §8.10)
        self.configs.invalidate(str(node))
        return json_response({"ok": True, "uuid": str(inc), "merged": merged})

    async def _report(self, request: web.Request, kind: str) -> web.Response:
        ws, node = await self.authenticate(request)
        body = await self.body(request)
        ref = request.match_info["uuid"].strip()
        if not ref or len(ref) > 128:
            raise ApiError(404, "not_found", "incident not found")
        inc, created = await self.store.run(
            repo.report_incident, ws, node, ref, kind, body, utcnow(), self.incident_expiry_secs
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
        body = await self.body(request)
        raw_id = body.get("command_id")
        if isinstance(raw_id, str) and raw_id.strip().isdigit():
            raw_id = int(raw_id.strip())
        if isinstance(raw_id, bool) or not isinstance(raw_id, int) or abs(raw_id) >= 2**63:
            raise ApiError(
                400, "invalid_parameter", "command_id must be an integer", field="command_id"
            )
        status = body.get("status")
        status = status[:32] if isinstance(status, str) and status else "unknown"
        error = body.get("error")
        error = error[:4000] if isinstance(error, str) else None
        await self.store.run(repo.record_ack, node, raw_id, status, error, utcnow())
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


def setup(app: web.Application, api: AgentApi) -> None:
    app[AGENT] = api
    r = app.router
    r.add_get(f"{PREFIX}/config", guard("config", api.config), allow_head=False)
    r.add_post(f"{PREFIX}/heartbeat", guard("heartbeat", api.heartbeat))
    r.add_post(f"{PREFIX}/metrics", guard("metrics", api.metrics))
    w = api.store  # these calls write before they answer
    r.add_post(f"{PREFIX}/incidents", guard("incident_open", api.open_incident, w))
    r.add_post(f"{PREFIX}/incidents/{{uuid}}", guard("incident_update", api.update_incident, w))
    r.add_post(
        f"{PREFIX}/incidents/{{uuid}}/resolve",
        guard("incident_resolve", api.resolve_incident, w),
    )
    r.add_post(f"{PREFIX}/commands/ack", guard("command_ack", api.command_ack, w))
    for kind in reports.REPORT_KINDS:
        path = kind.replace("sp-", "sp/").replace("l7-", "l7/")
        r.add_post(f"{PREFIX}/{path}", guard(kind, api.report(kind), w))
    r.add_get("/api/v1/reports", list_reports)
    r.add_get("/api/v1/nodes/{uuid}/reports", latest_node_reports)
