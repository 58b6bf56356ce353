"""The binary telemetry receiver: ``POST /api/v1/telemetry/{kind}`` (docs/wire-format.md).

Work per request: cap and read the body, authenticate (cached), shed load early when the buffer
is full, decode and check in a worker thread, route rows to nodes, hand the batch to the
pipeline, answer 202 once it is durable."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from aiohttp import web

from store.clock import SYSTEM_CLOCK, Clock
from store.lake import PartitionKey

from .buffer import split_by_hour
from .decode import decode_body
from .errors import Backpressure, DecodeError
from .metrics import METRICS
from .pipeline import Pipeline, WireBatch
from .routing import to_lake_table
from .schema import KINDS, WIRE_VERSION

__all__ = ["CachedCredentials", "Credential", "CredentialStore", "Receiver", "ReceiverSettings"]

CONTENT_TYPE = "application/vnd.apache.arrow.stream"
_BATCH_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SOURCE = "arrow"  # the lake's source column for rows of this endpoint


@dataclass(frozen=True)
class Credential:
    """Who sent a batch: a node key (``node`` set) or a collector key (``node`` None)."""

    id: str
    workspace: str
    node: str | None


# Latest (node, time, pps, bps) per node of an accepted metrics batch.
ActivitySink = Callable[[list[tuple[str, datetime, float, float]]], None]


class AuthGuard(Protocol):
    """Failed-authentication accounting per client address (shared with the REST API)."""

    def failed(self, client: str) -> int | None:
        """Count a failure; None while the client may go on trying, else seconds to wait."""


class CredentialStore(Protocol):
    def resolve(self, key: str) -> Awaitable[Credential | None]: ...

    def node_index(self, workspace: str) -> Awaitable[dict[str, str]]: ...


@dataclass(frozen=True)
class ReceiverSettings:
    max_body_bytes: int = 64 * 1024 * 1024
    max_batch_rows: int = 1_000_000
    max_age: timedelta = timedelta(days=15)
    # flows are kept for their own retention; None: the same window as metrics
    flows_max_age: timedelta | None = None
    max_skew: timedelta = timedelta(minutes=5)
    decode_threads: int = 2
    max_concurrent_decodes: int = 8


class Receiver:
    """``clock`` gives the ``now`` a batch's event times are checked against (no older than
    ``max_age``, no later than ``max_skew`` ahead)."""

    def __init__(
        self,
        pipeline: Pipeline,
        credentials: CredentialStore,
        settings: ReceiverSettings,
        on_activity: ActivitySink | None = None,
        auth_guard: AuthGuard | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.credentials = credentials
        self.settings = settings
        self.on_activity = on_activity
        self.auth_guard = auth_guard
        self._executor: ThreadPoolExecutor | None = None
        self._decoding = 0

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.decode_threads, thread_name_prefix="decode"
        )
        METRICS.decode_queue.bind(lambda: self._decoding)

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/telemetry/{kind}", self.handle)

    async def _read_body(self, request: web.Request) -> bytes:
        cap = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > cap:
            raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=request.content_length)
        chunks = []
        size = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            size += len(chunk)
            if size > cap:
                raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=size)
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(self, request: web.Request) -> web.Response:
        kind = KINDS.get(request.match_info["kind"])
        if kind is None:
            raise web.HTTPNotFound()
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            raise web.HTTPUnsupportedMediaType(reason=f"Content-Type must be {CONTENT_TYPE}")
        version = request.headers.get("X-Floodwatch-Wire-Version")
        if version is not None and version.strip() != str(WIRE_VERSION):
            METRICS.batches_rejected.inc(1, kind.name, "version")
            raise DecodeError(f"wire version {version!r} is not supported (1 is)")
        batch_id = request.headers.get("X-Batch-Id")
        if batch_id is not None and not _BATCH_ID.fullmatch(batch_id):
            METRICS.batches_rejected.inc(1, kind.name, "batch_id")
            raise DecodeError(
                "X-Batch-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -", column="X-Batch-Id"
            )
        unrouted = request.headers.get("X-Floodwatch-Unrouted", "refuse").strip().lower()
        if unrouted not in ("refuse", "drop"):
            METRICS.batches_rejected.inc(1, kind.name, "unrouted")
            raise DecodeError(
                "X-Floodwatch-Unrouted must be refuse or drop", column="X-Floodwatch-Unrouted"
            )
        drop_unrouted = unrouted == "drop"
        cred = await self._authenticate(request)
        refusal = self.pipeline.refusal()
        if refusal is not None:
            METRICS.batches_rejected.inc(1, kind.name, "backpressure")
            raise Backpressure(refusal, 2 if not self.pipeline.accepting else 1)
        if self._decoding >= self.settings.max_concurrent_decodes:
            METRICS.batches_rejected.inc(1, kind.name, "backpressure")
            raise Backpressure("too many batches being decoded", 1)
        self._decoding += 1
        try:
            body = await self._read_body(request)
            index = None if cred.node else await self.credentials.node_index(cred.workspace)
            loop = asyncio.get_running_loop()
            try:
                decoded, table, latest, wire, parts, dropped = await loop.run_in_executor(
                    self._executor, self._decode, body, kind.name, cred, index, drop_unrouted
                )
            except DecodeError as exc:
                METRICS.batches_rejected.inc(1, kind.name, "invalid")
                raise exc from None
        finally:
            self._decoding -= 1
        METRICS.rows_received.inc(table.num_rows + dropped, kind.name)
        if dropped:
            METRICS.rows_dropped_unrouted.inc(dropped, kind.name)
        key = f"{cred.id}:{batch_id}" if batch_id else None
        del body  # the WAL holds it from here on, as long as it needs it
        accepted, duplicate = await self.pipeline.submit(
            kind.name, cred.workspace, table, key, wire, parts
        )
        if accepted and self.on_activity is not None and latest:
            self.on_activity(latest)
        payload = {
            "ok": True,
            "accepted": accepted,
            "batch_id": batch_id,
            "duplicate": duplicate,
            "ignored_columns": list(decoded),
        }
        if drop_unrouted:
            payload["dropped_unrouted"] = dropped
        return web.Response(body=orjson.dumps(payload), status=202, content_type="application/json")

    def max_age(self, kind_name: str) -> timedelta:
        """How old a row of ``kind_name`` may be: a row the lake would delete at once is never
        acknowledged."""
        if kind_name == "flows" and self.settings.flows_max_age is not None:
            return self.settings.flows_max_age
        return self.settings.max_age

    def _decode(
        self,
        body: bytes,
        kind_name: str,
        cred: Credential,
        index: dict[str, str] | None,
        drop_unrouted: bool = False,
    ) -> tuple[
        tuple[str, ...],
        pa.Table,
        list[tuple[str, datetime, float, float]],
        WireBatch | None,
        list[tuple[PartitionKey, pa.Table]],
        int,
    ]:
        """Everything a batch needs before the WAL, done here on a decode thread rather than on
        the event loop: each pyarrow call there would hand the GIL away and wait to get it
        back, delaying every other request."""
        kind = KINDS[kind_name]
        decoded = decode_body(
            body,
            kind,
            max_rows=self.settings.max_batch_rows,
            now=self.clock.now(),
            max_age=self.max_age(kind_name),
            max_skew=self.settings.max_skew,
        )
        routes: dict[str, str] | None = None if cred.node else {}
        table = to_lake_table(
            kind,
            decoded.table,
            source=_SOURCE,
            node=cred.node,
            index=index,
            drop_unrouted=drop_unrouted and cred.node is None,
            routes=routes,
        )
        span = decoded.time_span
        if kind_name == "metrics":
            # at most this many nodes: the distinct nodes routing named
            most = 1 if cred.node else len(set(routes.values())) if routes else None
            latest = latest_per_node(table, cred.node, span, most)
        else:
            latest = []
        dropped = decoded.table.num_rows - table.num_rows
        # rows were dropped: the body no longer replays to these rows, so the WAL logs the
        # rows themselves (wire None) instead of the body
        wire = None if dropped else WireBatch.of(body, _SOURCE, cred.node, table, routes)
        parts = split_by_hour(kind_name, cred.workspace, table, span) if table.num_rows else []
        return decoded.ignored_columns, table, latest, wire, parts, dropped

    async def _authenticate(self, request: web.Request) -> Credential:
        client = request.remote or "unknown"
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        cred = None
        if scheme.lower() == "bearer" and key and len(key) <= 256:
            cred = await self.credentials.resolve(key)
        if cred is None:
            if self.auth_guard is not None:
                wait = self.auth_guard.failed(client)
                if wait is not None:
                    raise web.HTTPTooManyRequests(
                        reason="too many failed authentication attempts; slow down",
                        headers={"Retry-After": str(wait)},
                    )
            if not key:
                raise web.HTTPUnauthorized(reason="missing key (Authorization: Bearer <key>)")
            raise web.HTTPUnauthorized(reason="invalid key")
        node_header = request.headers.get("X-Node-UUID")
        if node_header and cred.node and node_header.strip().lower() != cred.node:
            raise web.HTTPForbidden(reason="X-Node-UUID does not match the key's node")
        return cred


def latest_per_node(
    table: pa.Table,
    node: str | None = None,
    span: tuple[int, int] | None = None,
    most: int | None = None,
) -> list[tuple[str, datetime, float, float]]:
    """For each node in a lake-form metrics table: its newest row's time, pps and bps.
    ``node``: every row is known to be that node's (a node key's batch); ``span``: the earliest
    and latest time in microseconds, if known; ``most``: at most this many distinct nodes, if
    known (the routing of a collector's batch knows)."""
    if table.num_rows == 0:
        return []
    nodes = table.column("node_uuid")
    if node is not None or most == 1 or (most is None and _one_value(nodes)):
        # one node: no grouping
        times = table.column("time")
        newest = pc.max(times) if span is None else pa.scalar(span[1], times.type)
        i = pc.index(times, newest).as_py()
        return _rows(table.slice(i, 1), pa.array([0], pa.int64()))
    tail = _tail_of_every_node(table, most)
    if tail is not None:  # times never decrease: each node's last row in the tail is its newest
        last = {n: i for i, n in enumerate(tail.column("node_uuid").to_pylist())}
        return _rows(tail, pa.array(list(last.values()), pa.int64()))
    frame = pl.from_arrow(table.select(["node_uuid", "time", "pps", "bps"]))
    assert isinstance(frame, pl.DataFrame)
    latest = frame.sort("time").group_by("node_uuid").agg(pl.all().last())
    return [(r[0], r[1], float(r[2]), float(r[3])) for r in latest.iter_rows()]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _one_value(column: pa.ChunkedArray) -> bool:
    return bool(pc.all(pc.equal(column, column[0])).as_py())


def _rows(table: pa.Table, rows: pa.Array) -> list[tuple[str, datetime, float, float]]:
    """(node, time, pps, bps) of the ``rows`` of a lake-form metrics table. Times are made here
    from their microseconds: pyarrow's conversion of zoned timestamps costs ~3 µs each."""
    nodes = pc.take(table.column("node_uuid"), rows).to_pylist()
    micros = pc.take(table.column("time"), rows).cast(pa.int64()).to_pylist()
    pps = pc.take(table.column("pps"), rows).to_pylist()
    bps = pc.take(table.column("bps"), rows).to_pylist()
    return [
        (n, _EPOCH + timedelta(microseconds=t), float(p), float(b))
        for n, t, p, b in zip(nodes, micros, pps, bps, strict=True)
    ]


def _tail_of_every_node(table: pa.Table, most: int | None = None) -> pa.Table | None:
    """A suffix of ``table`` holding every node's last row, when its times never decrease (a
    collector's batch in time order: the last few seconds name every node); else None. Polars'
    sort and group-by of a 10k-row batch cost more than the rest of its routing. ``most``: an
    upper bound of the table's distinct nodes, if known (saves counting them)."""
    n = table.num_rows
    times = table.column("time")
    if times.null_count:
        return None
    if n > 1 and not pc.all(pc.less_equal(times.slice(0, n - 1), times.slice(1))).as_py():
        return None
    if most is not None:
        tail = table.slice(n - min(n, 4 * most))
        if len(pc.unique(tail.column("node_uuid"))) == most:  # as many as there can be
            return tail
    nodes = len(pc.unique(table.column("node_uuid")))
    tail = table.slice(n - min(n, 4 * nodes))
    if len(pc.unique(tail.column("node_uuid"))) != nodes:
        return None
    return tail


class CachedCredentials:
    """A ``CredentialStore`` over lookup functions, caching answers for ``ttl_secs`` so that the
    hot path does not queue behind the database (the server also clears it on every write that
    could revoke a key). An entry in the last quarter of its life is refreshed in the background
    while it keeps being served, so a busy node never waits for its own lookup. Entries age on
    ``clock``'s monotonic reading."""

    def __init__(  # type: ignore[no-untyped-def]
        self,
        resolve_fn,
        index_fn,
        ttl_secs: float = 10.0,
        max_entries: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.clock = clock
        self._resolve_fn = resolve_fn
        self._index_fn = index_fn
        self.ttl = ttl_secs
        self.max_entries = max_entries
        self._keys: dict[str, tuple[float, Credential | None]] = {}
        self._indexes: dict[str, tuple[float, dict[str, str]]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._generation = 0

    def clear(self) -> None:
        self._generation += 1  # refreshes already in flight must not bring old answers back
        self._keys.clear()
        self._indexes.clear()

    async def _lookup(self, key: str, digest: str) -> Credential | None:
        generation = self._generation
        cred: Credential | None = await self._resolve_fn(key)
        if generation != self._generation:
            return cred
        if len(self._keys) >= self.max_entries:
            self._keys.clear()
        if cred is not None:  # failures are not cached: a guessing client gains nothing
            # spread over 75-100% of the TTL, so that keys cached together (a fleet connecting
            # after a restart) do not all come due in the same second
            ttl = self.ttl * (0.75 + 0.25 * random.random())  # noqa: S311 (not a secret)
            self._keys[digest] = (self.clock.monotonic() + ttl, cred)
        else:
            self._keys.pop(digest, None)
        return cred

    async def _refresh(self, key: str, digest: str) -> None:
        try:
            await self._lookup(key, digest)
        except Exception:  # the entry simply expires; the next call looks it up itself
            logging.getLogger("floodwatch.ingest").debug("key refresh failed", exc_info=True)
        finally:
            self._refreshing.pop(digest, None)

    def prime(self, entries: dict[str, Credential], generation: int) -> int:
        """Cache answers loaded in bulk (``digest -> credential``, digests as ``resolve`` makes
        them), unless the cache was cleared since ``generation``. Returns how many."""
        if generation != self._generation:
            return 0
        now = self.clock.monotonic()
        room = max(0, self.max_entries - len(self._keys))
        added = 0
        for digest, cred in entries.items():
            if added >= room:
                break
            if digest not in self._keys:
                ttl = self.ttl * (0.75 + 0.25 * random.random())  # noqa: S311 (not a secret)
                self._keys[digest] = (now + ttl, cred)
                added += 1
        return added

    @property
    def generation(self) -> int:
        return self._generation

    async def resolve(self, key: str) -> Credential | None:
        now = self.clock.monotonic()
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        hit = self._keys.get(digest)
        if hit is not None and hit[0] > now:
            if hit[0] - now < self.ttl / 5 and digest not in self._refreshing:
                self._refreshing[digest] = asyncio.create_task(self._refresh(key, digest))
            return hit[1]
        return await self._lookup(key, digest)

    async def node_index(self, workspace: str) -> dict[str, str]:
        now = self.clock.monotonic()
        hit = self._indexes.get(workspace)
        if hit is not None and hit[0] > now:
            return hit[1]
        index: dict[str, str] = await self._index_fn(workspace)
        if len(self._indexes) >= self.max_entries:
            self._indexes.clear()
        self._indexes[workspace] = (now + self.ttl, index)
        return index
