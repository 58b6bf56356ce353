"""An async client for the binary telemetry endpoints (docs/wire-format.md).

``Sender`` collects rows, seals them into batches of at most ``batch_rows`` rows (or whatever is
buffered once the oldest row is ``max_age_secs`` old, whichever comes first), encodes each batch
as one Arrow IPC stream and delivers the batches in order from one background task:

======================  ================================================================
answer                  what the sender does
======================  ================================================================
2xx                     done (``duplicate: true`` counts as ``duplicate_rows``)
413                     split in two halves (ids ``<id>.0`` and ``<id>.1``), send each
503 / 429               wait exactly ``Retry-After`` seconds, resend with the same id
other 5xx, 408, network exponential backoff with jitter (capped), resend with the same id
400 401 403 415, other  drop for good: a typed ``RejectedBatch`` is logged, counted and
4xx                     raised by the next ``flush``; after 401 the sender stops sending
======================  ================================================================

Every batch keeps its id (``<sender-uuid>-<sequence>``) across retries and spooling, so a
batch that reached the server before a timeout is stored once. Retries are bounded by
``max_attempts`` and ``max_total_wait_secs``; a batch that cannot be delivered within them, or
that does not fit in the bounded queue, goes to the spool if there is one (else it is counted
in ``failed_rows``). After a delivery succeeds, spooled batches of the same kind are replayed,
oldest first, with their original ids.

Row accounting: every added row ends in exactly one of ``acked_rows``, ``duplicate_rows``,
``failed_rows`` and ``spooled_rows`` (a replayed batch is counted again when it is acked, and
in ``replayed_rows``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import aiohttp
import orjson
import pyarrow as pa
from pyarrow import ipc

from ingest.schema import KINDS, WIRE_VERSION, RecordKind

from .errors import (
    BadBatch,
    Forbidden,
    RejectedBatch,
    SpoolError,
    Unauthorized,
    UnsupportedMediaType,
)
from .spool import Spool

__all__ = [
    "CONTENT_TYPE",
    "Compression",
    "Sender",
    "SenderStats",
    "decode_stream",
    "encode_stream",
    "rows_to_table",
]

log = logging.getLogger("floodwatch.agent")

CONTENT_TYPE = "application/vnd.apache.arrow.stream"
Compression = Literal["zstd", "lz4"] | None
_COMPRESSIONS = ("zstd", "lz4", None)
_PERMANENT = {400: BadBatch, 401: Unauthorized, 403: Forbidden, 415: UnsupportedMediaType}
_RETRY_AFTER = frozenset({429, 503})
_THREAD_ROWS = 20_000  # encode bigger batches in a worker thread, off the event loop
_MAX_ANSWER_BYTES = 1 << 20
_KEPT_REJECTIONS = 100
# leaves room in the 128-character X-Batch-Id for "-<sequence>" and ".0"/".1" split suffixes
_SENDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,80}")


def encode_stream(table: pa.Table, compression: Compression = "zstd") -> bytes:
    """``table`` as one Arrow IPC stream (schema, batches, end-of-stream marker)."""
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=compression)
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_stream(body: bytes) -> pa.Table:
    """The inverse of ``encode_stream``."""
    return ipc.open_stream(pa.py_buffer(body)).read_all()


def rows_to_table(kind: RecordKind, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Dict rows to a table with the wire types of ``kind``; only the columns that some row
    names are included (absent keys are null). Raises ValueError for unknown columns, missing
    required columns, or values of the wrong type."""
    rows = list(rows)
    names: set[str] = set()
    for row in rows:
        names.update(row)
    unknown = names - kind.wire_names
    if unknown:
        raise ValueError(f"unknown {kind.name} column(s): {', '.join(sorted(unknown))}")
    schema = pa.schema([pa.field(c.name, c.arrow) for c in kind.columns if c.name in names])
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ValueError(f"rows do not fit the {kind.name} columns: {exc}") from None
    _check_required(kind, table)
    return table


def _check_required(kind: RecordKind, table: pa.Table) -> None:
    if table.num_rows == 0:
        return
    missing = [c.name for c in kind.columns if c.required and c.name not in table.column_names]
    if missing:
        raise ValueError(f"required {kind.name} column(s) missing: {', '.join(missing)}")


@dataclass
class SenderStats:
    """Counters; see the module doc for how rows are accounted."""

    batches_sent: int = 0  # distinct batch ids posted at least once
    requests: int = 0
    retries: int = 0  # requests that re-sent a batch id
    sent_rows: int = 0  # rows of first posts (halves of a split batch count again)
    retried_rows: int = 0
    acked_rows: int = 0
    duplicate_rows: int = 0
    failed_rows: int = 0
    spooled_rows: int = 0
    replayed_rows: int = 0
    split_batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Outcome(enum.Enum):
    ACKED = "acked"
    DUPLICATE = "duplicate"
    SPLIT = "split"
    REJECTED = "rejected"
    GAVE_UP = "gave_up"


@dataclass
class _Batch:
    batch_id: str
    rows: int
    body: bytes
    table: pa.Table | None  # None for a batch read back from the spool


class Sender:
    """See the module doc. The constructor does no I/O; background tasks start with the first
    ``add``. Use ``async with Sender(...)`` or call ``close``."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        kind: str,
        batch_rows: int = 10_000,
        max_age_secs: float = 5.0,
        compression: Compression = "zstd",
        max_attempts: int = 8,
        max_total_wait_secs: float = 120.0,
        backoff_base_secs: float = 0.5,
        backoff_max_secs: float = 30.0,
        request_timeout_secs: float = 30.0,
        max_pending_batches: int = 64,
        close_timeout_secs: float = 10.0,
        spool: Spool | None = None,
        session: aiohttp.ClientSession | None = None,
        sender_id: str | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if compression not in _COMPRESSIONS:
            raise ValueError("compression must be 'zstd', 'lz4' or None")
        if batch_rows < 1 or max_attempts < 1 or max_pending_batches < 1:
            raise ValueError("batch_rows, max_attempts and max_pending_batches must be >= 1")
        if max_age_secs <= 0 or backoff_base_secs <= 0 or backoff_max_secs < backoff_base_secs:
            raise ValueError("max_age_secs and backoff times must be positive")
        if sender_id is not None and not _SENDER_ID.fullmatch(sender_id):
            raise ValueError("sender_id must be 1-80 characters of A-Z a-z 0-9 . _ : -")
        self.kind = KINDS[kind]
        self.url = base_url.rstrip("/") + f"/api/v1/telemetry/{kind}"
        self._key = key
        self.batch_rows = batch_rows
        self.max_age_secs = max_age_secs
        self.compression = compression
        self.max_attempts = max_attempts
        self.max_total_wait_secs = max_total_wait_secs
        self.backoff_base_secs = backoff_base_secs
        self.backoff_max_secs = backoff_max_secs
        self.request_timeout_secs = request_timeout_secs
        self.max_pending_batches = max_pending_batches
        self.close_timeout_secs = close_timeout_secs
        self.spool = spool
        self.sender_id = sender_id or uuid.uuid4().hex
        self.stats = SenderStats()
        self.rejections: deque[RejectedBatch] = deque(maxlen=_KEPT_REJECTIONS)
        self._session = session
        self._own_session = session is None
        self._sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._seq = 0
        self._buffer: list[pa.Table] = []
        self._buffer_rows = 0
        self._buffer_since = 0.0
        self._has_rows = asyncio.Event()
        self._seal_lock = asyncio.Lock()
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self._inflight: _Batch | None = None
        self._worker: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._unflushed_errors: list[RejectedBatch] = []
        self._unauthorized: Unauthorized | None = None
        self._maybe_spooled = spool is not None
        self._closed = False

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- adding and sealing ------------------------------------------------------------------

    async def add(self, data: Iterable[Mapping[str, Any]] | pa.Table | pa.RecordBatch) -> None:
        """Buffer rows (dicts with wire column names, or a Table / RecordBatch). Raises
        ValueError for rows that do not fit the kind, ``Unauthorized`` once the server refused
        the key, RuntimeError after ``close``."""
        if self._closed:
            raise RuntimeError("sender is closed")
        if self._unauthorized is not None:
            raise self._unauthorized
        if isinstance(data, pa.RecordBatch):
            table = pa.Table.from_batches([data])
        elif isinstance(data, pa.Table):
            table = data
        else:
            table = rows_to_table(self.kind, data)
        _check_required(self.kind, table)
        if table.num_rows == 0:
            return
        self._start()
        if not self._buffer:
            self._buffer_since = time.monotonic()
            self._has_rows.set()
        self._buffer.append(table)
        self._buffer_rows += table.num_rows
        while self._buffer_rows >= self.batch_rows:
            await self._seal(self.batch_rows)

    async def _seal(self, limit: int | None = None) -> None:
        """Cut up to ``limit`` buffered rows (all when None) into one queued batch."""
        async with self._seal_lock:
            if not self._buffer:
                return
            combined = (
                self._buffer[0]
                if len(self._buffer) == 1
                else pa.concat_tables(self._buffer, promote_options="permissive")
            )
            n = combined.num_rows if limit is None else min(limit, combined.num_rows)
            table, rest = combined.slice(0, n), combined.slice(n)
            self._buffer = [rest] if rest.num_rows else []
            self._buffer_rows = rest.num_rows
            if not self._buffer:
                self._has_rows.clear()
            else:
                self._buffer_since = time.monotonic()
            self._seq += 1
            batch_id = f"{self.sender_id}-{self._seq}"
            body = await self._encode(table)
            if self._queue.qsize() >= self.max_pending_batches:
                oldest = self._queue.get_nowait()
                self._queue.task_done()
                log.warning("send queue full batch_id=%s rows=%d", oldest.batch_id, oldest.rows)
                await self._give_up(oldest)
            self._queue.put_nowait(_Batch(batch_id, n, body, table))

    async def _encode(self, table: pa.Table) -> bytes:
        if table.num_rows >= _THREAD_ROWS:
            return await asyncio.to_thread(encode_stream, table, self.compression)
        return encode_stream(table, self.compression)

    def _start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"sender-{self.kind.name}")
            self._timer = asyncio.create_task(self._age_loop(), name=f"age-{self.kind.name}")

    async def _age_loop(self) -> None:
        while True:
            await self._has_rows.wait()
            delay = self._buffer_since + self.max_age_secs - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            await self._seal()

    # -- flushing and closing ----------------------------------------------------------------

    async def flush(self) -> None:
        """Seal what is buffered and wait until every queued batch is done (acked, rejected,
        spooled or failed). Raises the first ``RejectedBatch`` seen since the previous flush."""
        while self._buffer:
            await self._seal(self.batch_rows)
        if self._worker is not None:
            await self._queue.join()
        if self._unflushed_errors:
            first = self._unflushed_errors[0]
            self._unflushed_errors.clear()
            raise first

    async def close(self) -> None:
        """Flush for at most ``close_timeout_secs``, then put what is still undelivered in the
        spool (or count it failed) and stop. Never raises a RejectedBatch (they are logged)."""
        if self._closed:
            return
        self._closed = True
        while self._buffer:
            await self._seal(self.batch_rows)
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout_secs):
                    await self._queue.join()
            for task in (self._worker, self._timer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            left: list[_Batch] = [self._inflight] if self._inflight is not None else []
            while not self._queue.empty():
                left.append(self._queue.get_nowait())
                self._queue.task_done()
            self._inflight = None
            for batch in left:
                await self._give_up(batch)
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    # -- delivery ------------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            await self._replay_spool()
        except Exception:
            log.exception("spool replay failed")
        while True:
            batch = await self._queue.get()
            self._inflight = batch
            outcome = _Outcome.GAVE_UP
            try:
                if self._unauthorized is not None:
                    outcome = await self._give_up(batch)
                else:
                    outcome = await self._deliver(batch, spool_on_give_up=True)
            except Exception:  # a bug must not wedge flush() forever: count, log, go on
                log.exception("batch delivery failed batch_id=%s", batch.batch_id)
                self.stats.failed_rows += batch.rows
            self._inflight = None
            self._queue.task_done()
            if outcome in (_Outcome.ACKED, _Outcome.DUPLICATE):
                try:
                    await self._replay_spool()
                except Exception:
                    log.exception("spool replay failed")

    async def _replay_spool(self) -> None:
        spool = self.spool
        if spool is None or not self._maybe_spooled:
            return
        while self._unauthorized is None:
            entry = await asyncio.to_thread(spool.oldest, self.kind.name)
            if entry is None:
                self._maybe_spooled = False
                return
            try:
                body = await asyncio.to_thread(spool.read, entry)
            except SpoolError as exc:
                log.warning("spooled batch unreadable, dropped error=%s", exc)
                self.stats.failed_rows += entry.rows
                await asyncio.to_thread(spool.remove, entry)
                continue
            batch = _Batch(entry.batch_id, entry.rows, body, None)
            outcome = await self._deliver(batch, spool_on_give_up=False)
            if outcome is _Outcome.GAVE_UP:
                return  # still there; tried again after the next successful delivery
            if outcome in (_Outcome.ACKED, _Outcome.DUPLICATE):
                self.stats.replayed_rows += entry.rows
            await asyncio.to_thread(spool.remove, entry)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_secs, self.backoff_base_secs * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + self._rng.random() / 2)

    async def _deliver(self, batch: _Batch, *, spool_on_give_up: bool) -> _Outcome:
        attempts = 0
        waited = 0.0
        while True:
            if attempts == 0:
                self.stats.batches_sent += 1
                self.stats.sent_rows += batch.rows
            else:
                self.stats.retries += 1
                self.stats.retried_rows += batch.rows
            attempts += 1
            status: int | None = None
            retry_after: str | None = None
            payload: dict[str, Any] = {}
            problem = ""
            try:
                status, retry_after, payload = await self._post(batch)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                if payload.get("duplicate") is True:
                    self.stats.duplicate_rows += batch.rows
                    return _Outcome.DUPLICATE
                self.stats.acked_rows += batch.rows
                return _Outcome.ACKED
            if status == 413:
                return await self._split(batch)
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                self._reject(batch, status, payload)
                return _Outcome.REJECTED
            delay: float | None = None
            if status in _RETRY_AFTER and retry_after is not None:
                text = retry_after.strip()
                if text.isdigit():
                    delay = float(int(text))
            if delay is None:
                delay = self._backoff(attempts)
            if status is not None:
                problem = f"status {status}"
            if attempts >= self.max_attempts or waited + delay > self.max_total_wait_secs:
                log.warning(
                    "batch undeliverable batch_id=%s rows=%d attempts=%d last=%s",
                    batch.batch_id,
                    batch.rows,
                    attempts,
                    problem,
                )
                if spool_on_give_up:
                    return await self._give_up(batch)
                return _Outcome.GAVE_UP
            log.info(
                "batch retry batch_id=%s attempt=%d wait_secs=%.2f last=%s",
                batch.batch_id,
                attempts,
                delay,
                problem,
            )
            await self._sleep(delay)
            waited += delay

    async def _post(self, batch: _Batch) -> tuple[int, str | None, dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Authorization": f"Bearer {self._key}",
            "Content-Type": CONTENT_TYPE,
            "X-Batch-Id": batch.batch_id,
            "X-Floodwatch-Wire-Version": str(WIRE_VERSION),
        }
        self.stats.requests += 1
        timeout = aiohttp.ClientTimeout(total=self.request_timeout_secs)
        async with self._session.post(
            self.url, data=batch.body, headers=headers, timeout=timeout
        ) as resp:
            raw = await resp.content.read(_MAX_ANSWER_BYTES)
            payload: dict[str, Any] = {}
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(raw) if raw else {}
                if isinstance(parsed, dict):
                    payload = parsed
            return resp.status, resp.headers.get("Retry-After"), payload

    async def _split(self, batch: _Batch) -> _Outcome:
        table = batch.table
        if table is None:
            try:
                table = await asyncio.to_thread(decode_stream, batch.body)
            except (pa.ArrowException, ValueError, OSError):
                table = None
        if table is None or table.num_rows < 2:
            what = "a single row" if table is not None else "an unreadable body"
            self._reject(batch, 413, {"error": {"code": "payload_too_large", "message": what}})
            return _Outcome.REJECTED
        self.stats.split_batches += 1
        mid = table.num_rows // 2
        log.info("batch too large, split batch_id=%s rows=%d", batch.batch_id, table.num_rows)
        for i, half in enumerate((table.slice(0, mid), table.slice(mid))):
            body = await self._encode(half)
            await self._deliver(
                _Batch(f"{batch.batch_id}.{i}", half.num_rows, body, half), spool_on_give_up=True
            )
        return _Outcome.SPLIT

    def _reject(self, batch: _Batch, status: int, payload: Mapping[str, Any]) -> None:
        err_obj = payload.get("error")
        err: Mapping[str, Any] = err_obj if isinstance(err_obj, Mapping) else {}
        cls = _PERMANENT.get(status, RejectedBatch)
        field = err.get("field")
        exc = cls(
            status,
            str(err.get("message") or "no message"),
            code=str(err.get("code") or ""),
            field=field if isinstance(field, str) else None,
            batch_id=batch.batch_id,
            rows=batch.rows,
        )
        self.stats.failed_rows += batch.rows
        self.rejections.append(exc)
        self._unflushed_errors.append(exc)
        if isinstance(exc, Unauthorized):
            self._unauthorized = exc
        log.warning("batch rejected status=%d %s", status, exc)

    async def _give_up(self, batch: _Batch) -> _Outcome:
        if self.spool is not None:
            try:
                entry = await asyncio.to_thread(
                    self.spool.put, self.kind.name, batch.batch_id, batch.rows, batch.body
                )
            except SpoolError as exc:
                log.error("spool write failed batch_id=%s error=%s", batch.batch_id, exc)
            else:
                if entry is not None:
                    self.stats.spooled_rows += batch.rows
                    self._maybe_spooled = True
                    return _Outcome.GAVE_UP
        self.stats.failed_rows += batch.rows
        return _Outcome.GAVE_UP
