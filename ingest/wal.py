"""The write-ahead log: acknowledged means on disk.

A segment file holds entries, each framed as::

    magic "FWAL" | u32 header length | u32 payload length | u32 crc32(header + payload)
    | header (JSON) | payload (bytes; the header's ``form`` says what they are, see
                               ingest/pipeline.py: the request body as received, or the batch
                               in lake form as an Arrow IPC stream)

``append()`` queues an entry and returns once it is fsynced. One writer thread takes every
entry queued so far, writes them all and fsyncs once (group commit), so concurrent requests share
fsyncs; it goes on to the next group at once, while the event loop acknowledges the last one.
On start, ``replay()`` yields every intact entry after the checkpoint; a torn tail (a crash in
the middle of a write) is cut off. ``checkpoint(seq)`` records that every entry up to ``seq``
is in the lake and deletes the segments that hold nothing newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from store.lake import fsync_dir

from .metrics import METRICS

__all__ = ["Wal", "WalEntry", "crc32_combine", "write_atomic"]

_MAGIC = b"FWAL"
_FRAME = struct.Struct("<4sIII")
_SEGMENT_SUFFIX = ".wal"
_CHECKPOINT = "checkpoint.json"
_IOV_MAX = 512  # parts per writev (Linux allows 1024)


# --- CRC-32 of a concatenation from the CRCs of its parts -----------------------------------------
# Frames are checked with zlib's CRC-32 of header + payload. The payload's CRC (0.3-0.9 ms per MB)
# can then be computed in parallel, by whoever made the payload (a decode thread), and only the
# small header is hashed on the WAL's one thread, which every acknowledgement waits for. The
# arithmetic is that of zlib's crc32_combine (polynomials over GF(2), reflected), which Python's
# zlib module does not expose.

_POLY = 0xEDB88320
_TOP = 1 << 31  # x^0 in the reflected representation


def _mulmod(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC-32 polynomial."""
    product = 0
    m = _TOP
    while a:
        if a & m:
            product ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _powers() -> list[int]:
    """x^(2^k) modulo the polynomial, k = 0..63."""
    out = [_TOP >> 1]  # x^1
    for _ in range(63):
        out.append(_mulmod(out[-1], out[-1]))
    return out


_X2N = _powers()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib.crc32(a + b) from crc1 = zlib.crc32(a), crc2 = zlib.crc32(b) and len2 = len(b)."""
    shift = _TOP  # x^(8 * len2): appending len2 zero bytes to a
    k = 3
    n = len2
    while n:
        if n & 1:
            shift = _mulmod(_X2N[k & 63], shift)
        n >>= 1
        k += 1
    return _mulmod(shift, crc1) ^ crc2


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_all(fd: int, parts: list[bytes]) -> int:
    """Write every part, in order, with as few system calls as the kernel allows."""
    total = 0
    view = [memoryview(p) for p in parts if p]
    while view:
        batch = view[:_IOV_MAX]
        n = os.writev(fd, batch)
        total += n
        while n:  # drop what was written; a part may have been written in part
            if n >= len(view[0]):
                n -= len(view[0])
                view.pop(0)
            else:
                view[0] = view[0][n:]
                n = 0
    return total


@dataclass
class WalEntry:
    seq: int
    header: dict[str, Any]
    payload: bytes


@dataclass
class _Pending:
    header: dict[str, Any]
    payload: bytes
    future: asyncio.Future[int] = field(repr=False)
    on_durable: Callable[[int], None] | None = None
    payload_crc: int | None = None


class Wal:
    def __init__(self, directory: Path, segment_max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        # ``_pending``, ``_pending_bytes``, ``_next_seq`` and ``_closing`` are shared by the event
        # loop (append) and the writer thread, under ``_cond``; segment state is touched by the
        # writer thread and by checkpoints, under ``_io``
        self._cond = threading.Condition()
        self._io = threading.Lock()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._fd: int | None = None
        self._segment_path: Path | None = None
        self._segment_size = 0
        self._next_seq = 1
        self._checkpoint = 0
        self._closing = False
        # segment path -> highest seq it holds
        self._segments: dict[Path, int] = {}

    # --- start-up ------------------------------------------------------------------------------

    @property
    def checkpoint_seq(self) -> int:
        return self._checkpoint

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def _segment_files(self) -> list[Path]:
        return sorted(self.directory.glob("*" + _SEGMENT_SUFFIX))

    def open(self) -> None:
        """Read the checkpoint and find where the log ends (no entry is yielded here)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        cp = self.directory / _CHECKPOINT
        if cp.exists():
            self._checkpoint = int(orjson.loads(cp.read_bytes())["seq"])
        self._next_seq = self._checkpoint + 1

    def replay(self) -> Iterator[WalEntry]:
        """Every intact entry with a sequence number above the checkpoint, in order. Cuts off a
        torn tail. Call after ``open()`` and before ``start()``."""
        for path in self._segment_files():
            good_end = 0
            last_seq = 0
            with open(path, "rb") as fh:
                data = fh.read()
            pos = 0
            while pos + _FRAME.size <= len(data):
                magic, hlen, plen, crc = _FRAME.unpack_from(data, pos)
                end = pos + _FRAME.size + hlen + plen
                if magic != _MAGIC or end > len(data):
                    break
                body = data[pos + _FRAME.size : end]
                if zlib.crc32(body) != crc:
                    break
                header = orjson.loads(body[:hlen])
                seq = int(header["seq"])
                last_seq = seq
                self._next_seq = max(self._next_seq, seq + 1)
                if seq > self._checkpoint:
                    yield WalEntry(seq, header, bytes(body[hlen:]))
                pos = good_end = end
            if good_end < len(data):
                METRICS.wal_torn_tails.inc()
                with open(path, "r+b") as fh:
                    fh.truncate(good_end)
                    os.fsync(fh.fileno())
            if good_end == 0:
                path.unlink()
            else:
                self._segments[path] = last_seq

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal")
        self._loop = asyncio.get_running_loop()
        self._writer = threading.Thread(target=self._write_loop, name="wal-writer", daemon=True)
        self._writer.start()

    async def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)  # it writes what is queued first
            self._writer = None
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_segment)
            self._executor.shutdown(wait=True)

    # --- appending -----------------------------------------------------------------------------

    async def append(
        self,
        header: dict[str, Any],
        payload: bytes,
        on_durable: Callable[[int], None] | None = None,
        payload_crc: int | None = None,
    ) -> int:
        """Durably log one entry; returns its sequence number once it is fsynced.

        ``on_durable(seq)`` runs on the event loop right after the fsync, before any caller of
        the group resumes. ``payload_crc``, if given, must be ``zlib.crc32(payload)``: the
        caller computed it off the WAL's thread."""
        if self._writer is None or self._closing:
            raise RuntimeError("wal is not running")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with self._cond:
            header["seq"] = self._next_seq
            self._next_seq += 1
            self._pending.append(_Pending(header, payload, fut, on_durable, payload_crc))
            self._pending_bytes += len(payload)
            self._cond.notify()
        return await fut

    def _write_loop(self) -> None:
        """The writer thread: takes every entry queued so far, writes them with one ``writev``
        and one fsync (group commit), hands the outcome to the event loop and goes straight on
        to the next group; the loop's turn-around is not on the path of the next fsync."""
        assert self._loop is not None
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:  # stopping, and everything queued is written
                    return
                group, self._pending = self._pending, []
                self._pending_bytes -= sum(len(p.payload) for p in group)
            error: Exception | None = None
            try:
                with self._io:
                    self._write_group([(p.header, p.payload, p.payload_crc) for p in group])
            except Exception as exc:  # disk full, I/O error: nobody in the group gets an ack
                error = exc
            self._loop.call_soon_threadsafe(self._settle, group, error)

    @staticmethod
    def _settle(group: list[_Pending], error: Exception | None) -> None:
        for p in group:
            if error is not None:
                if not p.future.done():
                    p.future.set_exception(error)
                continue
            seq = int(p.header["seq"])
            if p.on_durable is not None:
                p.on_durable(seq)
            if not p.future.done():
                p.future.set_result(seq)

    def _open_segment(self, first_seq: int) -> None:
        self._segment_path = self.directory / f"{first_seq:020d}{_SEGMENT_SUFFIX}"
        self._fd = os.open(self._segment_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._segment_size = os.lseek(self._fd, 0, os.SEEK_END)
        fsync_dir(self.directory)

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write_group(self, frames: list[tuple[dict[str, Any], bytes, int | None]]) -> None:
        if self._fd is None or self._segment_size >= self.segment_max_bytes:
            self._close_segment()
            self._open_segment(int(frames[0][0]["seq"]))
        assert self._segment_path is not None and self._fd is not None
        parts = []
        for header, payload, payload_crc in frames:
            hbytes = orjson.dumps(header)
            if payload_crc is None:
                crc = zlib.crc32(payload, zlib.crc32(hbytes))
            else:
                crc = crc32_combine(zlib.crc32(hbytes), payload_crc, len(payload))
            parts.append(_FRAME.pack(_MAGIC, len(hbytes), len(payload), crc))
            parts.append(hbytes)
            parts.append(payload)
        try:
            with METRICS.wal_fsync_seconds.time():
                size = _write_all(self._fd, parts)  # gathered: payloads are not copied
                os.fdatasync(self._fd)
        except OSError:
            # Nobody is acknowledged. Cut what may have been written and go on in a new segment,
            # so that no later entry ever sits behind a torn one in the same file.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._segment_size)
            self._close_segment()
            raise
        self._segment_size += size
        self._segments[self._segment_path] = int(frames[-1][0]["seq"])
        METRICS.wal_groups.inc()
        METRICS.wal_bytes.inc(size)

    # --- checkpoints ---------------------------------------------------------------------------

    async def checkpoint(self, seq: int) -> None:
        """Every entry up to ``seq`` is in the lake: record it and drop the segments it frees.
        Runs under the lock the writer thread holds while it writes a group, so it never races
        one."""
        if seq <= self._checkpoint:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint_io, seq)

    def _checkpoint_io(self, seq: int) -> None:
        with self._io:  # never while the writer thread has a group half written
            self._checkpoint_sync(seq)

    def _checkpoint_sync(self, seq: int) -> None:
        if seq <= self._checkpoint:
            return
        write_atomic(self.directory / _CHECKPOINT, orjson.dumps({"seq": seq}))
        self._checkpoint = seq
        for path, last in sorted(self._segments.items()):
            if last <= seq and path != self._segment_path:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                del self._segments[path]

    def segment_count(self) -> int:
        return len(self._segments)
