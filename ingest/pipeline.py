"""The telemetry pipeline: WAL → buffer → Parquet lake, with batch de-duplication.

``submit()`` is the only way in. It returns once the batch is durable in the WAL (the caller then
answers 202). The flusher task moves buffered rows into the lake and advances the WAL checkpoint;
the maintenance task compacts closed hours, writes rollups and applies retention.

Exactly once, across crashes: before a Parquet file is written, its path and the WAL sequence
numbers it holds are appended to a journal (``wal/published.jsonl``). Files appear by rename, so
on restart a journalled file that exists holds all of its rows; replay skips exactly those
(sequence, partition) pairs and re-buffers everything else after the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from store.clock import SYSTEM_CLOCK, Clock
from store.lake import Lake, PartitionKey

from .buffer import Buffer, Group, split_by_hour
from .decode import decode_body
from .errors import Backpressure, DecodeError
from .metrics import METRICS
from .routing import to_lake_table
from .schema import KINDS, ROUTING_COLUMNS
from .schema import METRICS as METRICS_KIND
from .wal import Wal, write_atomic

__all__ = [
    "FRESH_STATISTICS",
    "FlushHook",
    "Pipeline",
    "PipelineSettings",
    "WireBatch",
    "lake_table_of",
]

log = logging.getLogger("floodwatch.ingest")

_PLACEHOLDER_NODE = "00000000-0000-0000-0000-000000000000"
_CHECKPOINT_EVERY_SECS = 1.0
# Parquet statistics of fresh parts: what readers prune on before compaction writes them all
FRESH_STATISTICS = ("node_uuid", "time")

# Called on a lake writer thread with each group just written (kind, workspace, rows): the seam
# where detection plugs in. With ``lake_writers`` > 1 hooks run on several threads at once.
FlushHook = Callable[[str, str, pa.Table], None]


@dataclass(frozen=True)
class PipelineSettings:
    flush_rows: int = 250_000
    flush_age_secs: float = 10.0
    max_buffer_bytes: int = 256 * 1024 * 1024
    wal_segment_bytes: int = 64 * 1024 * 1024
    wal_compression: str = "lz4"
    dedup_window_secs: int = 86_400
    dedup_max_ids: int = 1_000_000
    compression: str = "zstd"
    compression_level: int = 1
    # codec of the files the ingest path writes, until compaction rewrites their hour
    fresh_compression: str = "lz4"
    lake_writers: int = 2
    compact_after_secs: int = 300
    maintenance_interval_secs: float = 60.0
    retention_days: tuple[tuple[str, int], ...] = (
        ("metrics", 15),
        ("flows", 15),
        ("metrics_1m", 30),
        ("metrics_5m", 90),
        ("metrics_1h", 400),
    )


@dataclass(frozen=True)
class WireBatch:
    """A batch as it arrived, logged in the WAL instead of its lake form (no re-encoding).

    ``payload`` is the request body (``wire_len`` bytes) followed, for a collector key, by how
    its rows were routed; with a node key ``node`` names the node of every row and ``payload`` is
    the body itself. Replay decodes the body again (without the time window, which it passed on
    arrival) and routes it the same way, giving the same rows, whatever happened to the
    workspace's nodes since.

    A collector batch's routing is logged as a JSON object ``{"routes": {...}}``: the entries of
    the workspace's node index that routing used (``<uuid>`` and ``ip:<address>`` keys, a few per
    node named in the batch), from which routing the body again gives the same ``node_uuid`` of
    every row. Entries written before (and batches made without ``routes``) carry an Arrow IPC
    stream of the routed ``node_uuid`` column instead; both replay.

    ``crc`` is ``zlib.crc32(payload)``, computed where the batch is made (a decode thread) so
    that the WAL's one thread only hashes the entry's small header (``Wal.append``)."""

    payload: bytes
    wire_len: int
    source: str
    node: str | None = None
    crc: int | None = None

    @classmethod
    def of(
        cls,
        body: bytes,
        source: str,
        node: str | None,
        lake: pa.Table | None = None,
        routes: dict[str, str] | None = None,
    ) -> WireBatch:
        """For a node key (``node``) the body alone; else the body and its ``routes`` (the
        index entries ``to_lake_table`` used), or without them ``lake``'s node column."""
        if node is not None:
            return cls(body, len(body), source, node, zlib.crc32(body))
        if routes is not None:
            trailer = orjson.dumps({"routes": routes})
        else:
            assert lake is not None, "a collector batch needs its routes or its lake rows"
            nodes = pa.table({"node_uuid": pc.dictionary_encode(lake.column("node_uuid"))})
            trailer = encode_ipc(nodes, None)
        payload = body + trailer
        return cls(payload, len(body), source, None, zlib.crc32(trailer, zlib.crc32(body)))


def lake_table_of(kind: str, header: dict[str, Any], payload: bytes) -> pa.Table:
    """The lake-form rows of a WAL entry (either form). Raises DecodeError for a body that no
    longer decodes (only possible across a server upgrade that narrowed the checks)."""
    if header.get("form", "lake") == "lake":
        return decode_ipc(payload)
    n = int(header["wire_len"])
    k = KINDS[kind]
    zero = timedelta(0)
    decoded = decode_body(payload[:n], k, max_rows=1 << 62, now=None, max_age=zero, max_skew=zero)
    node = header.get("node")
    if node is not None:
        return to_lake_table(k, decoded.table, source=header["src"], node=node)
    trailer = memoryview(payload)[n:]
    if payload[n : n + 1] == b"{":  # the index entries routing used on arrival
        routes = orjson.loads(trailer)["routes"]
        return to_lake_table(k, decoded.table, source=header["src"], index=routes)
    nodes = decode_ipc(bytes(trailer)).column("node_uuid").cast(pa.string())
    wire = decoded.table
    wire = wire.drop_columns([c for c in wire.column_names if c in ROUTING_COLUMNS])
    # routed on arrival: any node will do here, its column is replaced by the logged one
    lake = to_lake_table(k, wire, source=header["src"], node=_PLACEHOLDER_NODE)
    i = lake.schema.get_field_index("node_uuid")
    return lake.set_column(i, lake.schema.field(i), nodes)


def encode_ipc(table: pa.Table, compression: str | None) -> bytes:
    sink = pa.BufferOutputStream()
    opts = ipc.IpcWriteOptions(compression=compression or None)
    with ipc.new_stream(sink, table.schema, options=opts) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_ipc(payload: bytes) -> pa.Table:
    return ipc.open_stream(pa.py_buffer(payload)).read_all()


class _Dedup:
    """Recently seen batch keys with the time they were seen; bounded in count and age."""

    def __init__(self, window_secs: int, max_ids: int) -> None:
        self.window_secs = window_secs
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._seen

    def add(self, key: str, when: float) -> None:
        self._seen[key] = when
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)

    def expire(self, now: float) -> None:
        cutoff = now - self.window_secs
        while self._seen:
            _, when = next(iter(self._seen.items()))
            if when >= cutoff:
                break
            self._seen.popitem(last=False)

    def items(self) -> Iterator[tuple[str, float]]:
        return iter(self._seen.items())

    def snapshot(self) -> list[tuple[str, float]]:
        """A copy of the entries, for another thread to read while this one goes on adding."""
        return list(self._seen.items())

    def __len__(self) -> int:
        return len(self._seen)


class Pipeline:
    """``clock`` is where the pipeline reads the time: the buffer's flush ages, the checkpoint
    interval, a batch's arrival time (its WAL header and the de-duplication window) and the
    ``now`` of maintenance. The lake's own retire/sweep deadlines stay on the machine's clock."""

    def __init__(
        self,
        data_dir: Path,
        settings: PipelineSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = s = settings or PipelineSettings()
        self.clock = clock
        self.wal_dir = data_dir / "wal"
        self.lake = Lake(
            data_dir / "lake",
            {k.name: k.lake_schema for k in KINDS.values()},
            METRICS_KIND.name,
            tuple(c.name for c in METRICS_KIND.columns if c.kind == "float"),
            tuple(c.name for c in METRICS_KIND.columns if c.kind == "int"),
            s.compression,
            s.compression_level,
            fresh_compression=s.fresh_compression,
            fresh_statistics=FRESH_STATISTICS,
        )
        self.wal = Wal(self.wal_dir, s.wal_segment_bytes)
        self.buffer = Buffer(s.flush_rows, s.flush_age_secs, s.max_buffer_bytes)
        self.hooks: list[FlushHook] = []
        # Called on the event loop with each batch the moment it is durable, before its 2xx
        # (kind, workspace, lake-form rows): where detection takes the rows, long before they
        # reach the lake. Must only hand the rows on (no blocking work).
        self.durable_hooks: list[FlushHook] = []
        # Each says whether a consumer of durable batches is too far behind: ingest then
        # answers 503 (Retry-After) instead of letting its backlog grow without bound.
        self.pressure: list[Callable[[], bool]] = []
        self._dedup = _Dedup(s.dedup_window_secs, s.dedup_max_ids)
        self._inflight_keys: dict[str, asyncio.Future[tuple[int, bool]]] = {}
        # (seq, batch key, wall time) of durable entries not yet checkpointed
        self._unretired: list[tuple[int, str, float]] = []
        self._journal: list[dict[str, Any]] = []
        self._last_durable = 0
        self._reserved = 0  # bytes of admitted batches not yet in the buffer
        self._lake_executor: ThreadPoolExecutor | None = None
        # Lake writes run on up to ``lake_writers`` threads at once ("shared"); maintenance and
        # checkpoints need the lake to themselves ("exclusive", all the slots).
        self._lake_slots: asyncio.Semaphore | None = None
        self._checkpoint_lock: asyncio.Lock | None = None
        # the journal file and list are touched from several writer threads
        self._journal_lock = threading.Lock()
        self._writes: set[asyncio.Task[int]] = set()
        self._checkpoint_at = float("-inf")  # never yet: the first one is not held back
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._wake_flusher: asyncio.Event | None = None
        self.accepting = False

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def _journal_path(self) -> Path:
        return self.wal_dir / "published.jsonl"

    @property
    def _ledger_path(self) -> Path:
        return self.wal_dir / "batch-ids.log"

    def _recover(self) -> int:
        """Blocking start-up work: lake layout, journal, WAL replay, dedup ledger."""
        self.lake.prepare()
        self.wal.open()
        present: set[tuple[int, PartitionKey]] = set()
        if self._journal_path.exists():
            for line in self._journal_path.read_bytes().splitlines():
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line: its file was never renamed into place
                self._journal.append(rec)
                if (self.lake.root / rec["path"]).exists():
                    k = rec["key"]
                    key = PartitionKey(k[0], k[1], date.fromisoformat(k[2]), int(k[3]))
                    present.update((int(seq), key) for seq in rec["seqs"])
        now = self.clock.time()
        if self._ledger_path.exists():
            for text in self._ledger_path.read_text().splitlines():
                batch_key, _, when = text.rpartition(" ")
                with contextlib.suppress(ValueError):
                    if float(when) >= now - self.settings.dedup_window_secs:
                        self._dedup.add(batch_key, float(when))
        replayed = 0
        mono = self.clock.monotonic()
        for entry in self.wal.replay():
            h = entry.header
            try:
                table = lake_table_of(h["kind"], h, entry.payload)
            except DecodeError:
                log.exception("wal entry no longer decodes; its rows are skipped seq=%d", entry.seq)
                continue
            if h.get("key"):
                self._dedup.add(h["key"], float(h.get("t", now)))
                self._unretired.append((entry.seq, h["key"], float(h.get("t", now))))
            for key, part in split_by_hour(h["kind"], h["ws"], table):
                if (entry.seq, key) in present:
                    continue
                self.buffer.add(key, part, entry.seq, mono)
                replayed += part.num_rows
            self._last_durable = max(self._last_durable, entry.seq)
        self._last_durable = max(self._last_durable, self.wal.checkpoint_seq)
        METRICS.wal_replayed_rows.inc(replayed)
        return replayed

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._lake_executor = ThreadPoolExecutor(
            max_workers=max(1, self.settings.lake_writers),
            thread_name_prefix="lake",
        )
        self._lake_slots = asyncio.Semaphore(max(1, self.settings.lake_writers))
        self._checkpoint_lock = asyncio.Lock()
        replayed = await loop.run_in_executor(self._lake_executor, self._recover)
        if replayed:
            log.info("wal replayed rows=%d", replayed)
        await self.wal.start()
        METRICS.buffer_rows.bind(lambda: self.buffer.rows)
        METRICS.buffer_bytes.bind(lambda: self.buffer.nbytes)
        METRICS.wal_pending_bytes.bind(lambda: self._reserved)
        self._wake_flusher = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._flusher(), name="lake-flusher"),
            asyncio.create_task(self._maintenance(), name="lake-maintenance"),
        ]
        self.accepting = True

    async def stop(self) -> None:
        """Stop accepting, flush every buffered row to the lake, checkpoint, close the WAL."""
        self.accepting = False
        self._stopping = True
        if self._wake_flusher is not None:
            self._wake_flusher.set()
        # The flusher is not cancelled: a flush cut off between writing a file and marking its
        # group done would leave the group neither in the buffer nor accounted as written. It
        # sees _stopping after its current pass and returns; writes in flight are awaited.
        for task in list(self._tasks):
            if task.get_name() not in ("lake-flusher", "lake-write"):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush(force=True)
        await self.wal.stop()
        if self._lake_executor is not None:
            self._lake_executor.shutdown(wait=True)

    # --- accepting -----------------------------------------------------------------------------

    def has_room(self, incoming_bytes: int = 0) -> bool:
        return self.refusal(incoming_bytes) is None

    def refusal(self, incoming_bytes: int = 0) -> str | None:
        """Why a batch of ``incoming_bytes`` would be refused now (the 503's message), or None
        when there is room: the buffer and the consumers of durable batches are told apart, so
        that a sender (and the benchmark) sees which one is behind."""
        if not self.accepting:
            return "the server is starting or stopping"
        if not self.buffer.has_room(incoming_bytes + self._reserved):
            return "ingest buffer is full"
        if any(behind() for behind in self.pressure):
            return "detection is catching up"
        return None

    async def submit(
        self,
        kind: str,
        workspace: str,
        table: pa.Table,
        batch_key: str | None,
        wire: WireBatch | None = None,
        parts: list[tuple[PartitionKey, pa.Table]] | None = None,
    ) -> tuple[int, bool]:
        """Make ``table`` (lake form, one workspace) durable. Returns (rows accepted, duplicate).

        With ``wire`` (the batch as it arrived, from which ``table`` was made) the WAL logs that
        rather than an Arrow encoding of ``table``. ``parts``, if given, must be
        ``split_by_hour(kind, workspace, table)``, made by the caller off the event loop.
        Raises Backpressure when the buffer or the WAL queue is full."""
        if not self.accepting:
            raise Backpressure("the server is starting or stopping", 2)
        if batch_key is not None:
            if batch_key in self._dedup:
                METRICS.batches_duplicate.inc(1, kind)
                return 0, True
            pending = self._inflight_keys.get(batch_key)
            if pending is not None:
                await asyncio.shield(pending)
                METRICS.batches_duplicate.inc(1, kind)
                return 0, True
        incoming = table.nbytes
        if not self.buffer.has_room(incoming + self._reserved):
            METRICS.batches_rejected.inc(1, kind, "backpressure")
            raise Backpressure("ingest buffer is full", 1)
        if any(behind() for behind in self.pressure):
            METRICS.batches_rejected.inc(1, kind, "backpressure")
            raise Backpressure("detection is catching up", 1)
        # counted from admission until the rows sit in the buffer, so that concurrent requests
        # cannot all pass the room check at once
        self._reserved += incoming
        held = [incoming]

        def release() -> None:
            self._reserved -= held.pop() if held else 0

        fut: asyncio.Future[tuple[int, bool]] | None = None
        if batch_key is not None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight_keys[batch_key] = fut
        try:
            header: dict[str, Any] = {
                "kind": kind,
                "ws": workspace,
                "rows": table.num_rows,
                "t": self.clock.time(),
            }
            payload_crc = None
            if wire is not None:
                payload, payload_crc = wire.payload, wire.crc
                header.update(form="wire", wire_len=wire.wire_len, src=wire.source)
                if wire.node is not None:
                    header["node"] = wire.node
            else:
                payload = await asyncio.get_running_loop().run_in_executor(
                    None, encode_ipc, table, self.settings.wal_compression
                )
            if batch_key is not None:
                header["key"] = batch_key

            def on_durable(seq: int) -> None:
                release()
                self._on_durable(seq, kind, workspace, table, batch_key, header["t"], parts)

            await self.wal.append(header, payload, on_durable, payload_crc)
        except BaseException as exc:
            release()
            if fut is not None:
                fut.set_exception(exc)
                fut.exception()  # retrieved here so a lone future does not warn
            raise
        finally:
            if batch_key is not None:
                self._inflight_keys.pop(batch_key, None)
        if fut is not None:
            fut.set_result((table.num_rows, False))
        METRICS.rows_accepted.inc(table.num_rows, kind)
        return table.num_rows, False

    def _on_durable(
        self,
        seq: int,
        kind: str,
        workspace: str,
        table: pa.Table,
        batch_key: str | None,
        when: float,
        parts: list[tuple[PartitionKey, pa.Table]] | None = None,
    ) -> None:
        # Runs on the event loop, inside the WAL committer, before any ack is sent: the buffer
        # therefore always holds every durable row that is not yet in the lake.
        now = self.clock.monotonic()
        if parts is None:
            parts = split_by_hour(kind, workspace, table)
        for key, part in parts:
            self.buffer.add(key, part, seq, now)
        if batch_key is not None:
            self._dedup.add(batch_key, when)
            self._unretired.append((seq, batch_key, when))
        self._last_durable = max(self._last_durable, seq)
        if self.buffer.rows >= self.settings.flush_rows and self._wake_flusher is not None:
            self._wake_flusher.set()
        for hook in self.durable_hooks:
            try:
                hook(kind, workspace, table)
            except Exception:
                log.exception("durable hook failed kind=%s", kind)

    # --- flushing ------------------------------------------------------------------------------

    def _write_group(self, group: Group) -> None:
        path = self.lake.new_part_path(group.key, min(group.seqs))
        rec = {
            "path": str(path.relative_to(self.lake.root)),
            "key": [group.key.kind, group.key.workspace, group.key.day.isoformat(), group.key.hour],
            "seqs": sorted(set(group.seqs)),
        }
        line = orjson.dumps(rec) + b"\n"
        with self._journal_lock:
            with open(self._journal_path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._journal.append(rec)
        with METRICS.flush_seconds.time():
            # the batches as they arrived: the lake orders them without copying rows when it can
            self.lake.write_part(group.key, group.tables, path, group.seqs)
        METRICS.flush_rows.observe(group.rows)
        # hand the copies made while writing back to the system, so RSS follows the buffer
        pa.default_memory_pool().release_unused()
        if not self.hooks:
            return
        table = pa.concat_tables(group.tables) if len(group.tables) > 1 else group.tables[0]
        for hook in self.hooks:
            try:
                hook(group.key.kind, group.key.workspace, table)
            except Exception:
                log.exception("flush hook failed kind=%s", group.key.kind)

    async def flush(self, force: bool = False) -> int:
        """Write due groups (all with ``force``, after the writes in flight) and advance the
        checkpoint; returns rows."""
        if force and self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        groups = self.buffer.take_due(self.clock.monotonic(), force=force)
        written = sum(await asyncio.gather(*(self._write(g) for g in groups)))
        await self._advance_checkpoint(now=True)
        return written

    async def _write(self, group: Group) -> int:
        """Write one group on a lake writer thread; on failure its rows go back to the buffer."""
        assert self._lake_slots is not None
        loop = asyncio.get_running_loop()
        async with self._lake_slots:
            try:
                await loop.run_in_executor(self._lake_executor, self._write_group, group)
            except Exception:
                log.exception("lake write failed; rows stay buffered key=%s", group.key.relpath())
                self.buffer.restore(group)
                return 0
        self.buffer.done(group)
        return group.rows

    async def _write_and_checkpoint(self, group: Group) -> int:
        rows = await self._write(group)
        await self._advance_checkpoint()
        if self._wake_flusher is not None:
            self._wake_flusher.set()  # a writer is free: due groups may be waiting
        return rows

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Every lake writer slot: no Parquet file is being written meanwhile."""
        assert self._lake_slots is not None
        held = 0
        try:
            for _ in range(max(1, self.settings.lake_writers)):
                await self._lake_slots.acquire()
                held += 1
            yield
        finally:
            for _ in range(held):
                self._lake_slots.release()

    async def _advance_checkpoint(self, now: bool = False) -> None:
        """Move the WAL checkpoint up to the lake; unless ``now``, at most once per
        ``_CHECKPOINT_EVERY_SECS`` (each costs fsyncs on the WAL's thread, which acks wait on).

        Groups finish in any order: the checkpoint is below the lowest sequence number still
        buffered or being written, so it only covers entries whose rows are all in the lake."""
        assert self._checkpoint_lock is not None
        if not now and self.clock.monotonic() - self._checkpoint_at < _CHECKPOINT_EVERY_SECS:
            return
        async with self._checkpoint_lock:
            self._checkpoint_at = self.clock.monotonic()
            lowest = self.buffer.lowest_seq()
            cp = self._last_durable if lowest is None else lowest - 1
            if cp <= self.wal.checkpoint_seq:
                return
            retired = [r for r in self._unretired if r[0] <= cp]
            self._unretired = [r for r in self._unretired if r[0] > cp]
            loop = asyncio.get_running_loop()
            # Order matters for crash safety: the batch ids must be in the ledger before the WAL
            # forgets their entries, and journal lines may only go once the checkpoint is on
            # disk (replay of entries after an older checkpoint still needs them).
            await loop.run_in_executor(self._lake_executor, self._remember_ids, retired)
            await self.wal.checkpoint(cp)
            await loop.run_in_executor(self._lake_executor, self._prune_journal, cp)

    def _remember_ids(self, retired: list[tuple[int, str, float]]) -> None:
        if retired:
            with open(self._ledger_path, "a") as fh:
                fh.write("".join(f"{key} {when:.3f}\n" for _, key, when in retired))
                fh.flush()
                os.fsync(fh.fileno())

    def _prune_journal(self, cp: int) -> None:
        with self._journal_lock:  # a writer appending meanwhile would lose its line
            keep = [r for r in self._journal if max(r["seqs"]) > cp]
            if len(keep) != len(self._journal):
                self._journal = keep
                write_atomic(self._journal_path, b"".join(orjson.dumps(r) + b"\n" for r in keep))

    def protected_paths(self) -> set[Path]:
        with self._journal_lock:
            return {self.lake.root / r["path"] for r in self._journal}

    async def _flusher(self) -> None:
        """Hands due groups to the lake writers as they free up. A group is taken only when a
        writer is free, so rows that arrive while all are busy gather into larger files."""
        assert self._wake_flusher is not None
        while not self._stopping:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation that
            # arrives as its timeout fires, and stop() would then wait for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await self._wake_flusher.wait()
            self._wake_flusher.clear()
            free = max(1, self.settings.lake_writers) - len(self._writes)
            if free <= 0:
                continue
            groups = self.buffer.take_due(self.clock.monotonic())
            for i, group in enumerate(groups):
                if i >= free:  # the rest waits for a writer in the buffer, where it can grow
                    self.buffer.restore(group)
                    continue
                task = asyncio.create_task(self._write_and_checkpoint(group), name="lake-write")
                self._writes.add(task)
                self._tasks.append(task)
                task.add_done_callback(self._write_done)
            if not groups:
                await self._advance_checkpoint()

    def _write_done(self, task: asyncio.Task[int]) -> None:
        self._writes.discard(task)
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    # --- maintenance ---------------------------------------------------------------------------

    def _compact_one(self, key: PartitionKey, hour_dir: Path, protected: set[Path]) -> bool:
        return self.lake.compact_hour(key, hour_dir, protected)

    def _rewrite_ledger(self, entries: list[tuple[str, float]]) -> None:
        lines = "".join(f"{k} {w:.3f}\n" for k, w in entries)
        write_atomic(self._ledger_path, lines.encode())

    async def maintain(self, now: datetime | None = None) -> int:
        """Compact closed hours, write rollups, apply retention. Returns partitions compacted."""
        loop = asyncio.get_running_loop()
        now = now or self.clock.now()
        done = 0
        for kind in ("metrics", "flows"):
            partitions = await loop.run_in_executor(
                self._lake_executor, self.lake.hour_partitions, kind
            )
            for key, hour_dir in partitions:
                closed = (
                    now - key.start
                ).total_seconds() >= 3600 + self.settings.compact_after_secs
                if not closed:
                    continue
                try:
                    # a file renamed into the hour while it is swapped would be lost
                    async with self._exclusive():
                        changed = await loop.run_in_executor(
                            self._lake_executor,
                            self._compact_one,
                            key,
                            hour_dir,
                            self.protected_paths(),
                        )
                except Exception:
                    log.exception("compaction failed partition=%s", key.relpath())
                    continue
                if changed:
                    done += 1
                    METRICS.compactions.inc()
        async with self._exclusive():
            removed = await loop.run_in_executor(
                self._lake_executor,
                self.lake.apply_retention,
                dict(self.settings.retention_days),
                now.date(),
            )
        METRICS.retention_deleted.inc(removed)
        assert self._checkpoint_lock is not None
        async with self._checkpoint_lock:  # not while a checkpoint appends to the ledger
            # expired and copied here, on the loop: the dedup table is the loop's, and a writer
            # thread iterating it while a request adds a key would fail
            self._dedup.expire(self.clock.time())
            entries = self._dedup.snapshot()
            await loop.run_in_executor(self._lake_executor, self._rewrite_ledger, entries)
        return done

    async def _maintenance(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.maintenance_interval_secs)
            try:
                await self.maintain()
            except Exception:
                log.exception("lake maintenance failed")
