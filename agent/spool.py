"""An on-disk buffer of undeliverable batches, replayed with their original batch ids.

One file per batch, ``<seq>.batch`` with a 20-digit sequence number (so names sort in write
order): a header line ``FWSPOOL1 <kind> <batch_id> <rows> <body_bytes>`` then the Arrow IPC
body exactly as it was (or would have been) sent. Files are written to a ``.tmp`` name, fsynced,
renamed into place and the directory fsynced, so a crash leaves either the whole batch or a
``.tmp`` leftover, which ``open`` deletes and which is never replayed.

Bounded: when a new batch would take the spool over ``max_bytes``, the oldest batches are
deleted first (counted in ``dropped_batches`` / ``dropped_rows``). The methods do blocking file
I/O; async callers run them in a worker thread. One lock makes them safe across threads; one
directory must be used by one process at a time.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import SpoolError

__all__ = ["Spool", "SpoolEntry"]

log = logging.getLogger("floodwatch.agent")

_MAGIC = b"FWSPOOL1"
_NAME = re.compile(r"^(\d{20})\.batch$")
_BATCH_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_HEADER = 256


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    kind: str
    batch_id: str
    rows: int
    size: int  # bytes on disk, header included
    path: Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse_header(line: bytes) -> tuple[str, str, int, int] | None:
    parts = line.split(b" ")
    if len(parts) != 5 or parts[0] != _MAGIC:
        return None
    try:
        kind, batch_id = parts[1].decode("ascii"), parts[2].decode("ascii")
        rows, body_len = int(parts[3]), int(parts[4])
    except (UnicodeDecodeError, ValueError):
        return None
    if not _KIND.match(kind) or not _BATCH_ID.match(batch_id) or rows < 0 or body_len < 0:
        return None
    return kind, batch_id, rows, body_len


class Spool:
    """See the module doc. The constructor does no I/O; ``open`` (called by every method when
    needed) creates the directory and indexes what a previous run left."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._entries: list[SpoolEntry] | None = None
        self._next_seq = 1
        self.written_batches = 0
        self.written_rows = 0
        self.dropped_batches = 0
        self.dropped_rows = 0
        self.removed_batches = 0

    def open(self) -> None:
        with self._lock:
            if self._entries is not None:
                return
            try:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                names = sorted(os.listdir(self.directory))
            except OSError as exc:
                raise SpoolError(f"cannot use spool {self.directory}: {exc.strerror}") from None
            entries: list[SpoolEntry] = []
            for name in names:
                path = self.directory / name
                if name.endswith(".tmp"):
                    path.unlink(missing_ok=True)  # a write that never completed
                    continue
                m = _NAME.match(name)
                if m is None:
                    continue
                seq = int(m.group(1))
                self._next_seq = max(self._next_seq, seq + 1)
                entry = self._index(path, seq)
                if entry is None:
                    log.warning("spool file unreadable, set aside path=%s", path)
                    path.rename(path.with_name(name + ".bad"))
                    continue
                entries.append(entry)
            self._entries = entries

    def _index(self, path: Path, seq: int) -> SpoolEntry | None:
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                line = fh.readline(_MAX_HEADER)
        except OSError:
            return None
        header = _parse_header(line.rstrip(b"\n")) if line.endswith(b"\n") else None
        if header is None or len(line) + header[3] != size:
            return None
        kind, batch_id, rows, _ = header
        return SpoolEntry(seq, kind, batch_id, rows, size, path)

    def _loaded(self) -> list[SpoolEntry]:
        self.open()
        assert self._entries is not None
        return self._entries

    @property
    def bytes_used(self) -> int:
        with self._lock:
            return sum(e.size for e in self._loaded())

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded())

    def entries(self, kind: str | None = None) -> list[SpoolEntry]:
        """Spooled batches, oldest first."""
        with self._lock:
            return [e for e in self._loaded() if kind is None or e.kind == kind]

    def oldest(self, kind: str | None = None) -> SpoolEntry | None:
        with self._lock:
            return next((e for e in self._loaded() if kind is None or e.kind == kind), None)

    def put(self, kind: str, batch_id: str, rows: int, body: bytes) -> SpoolEntry | None:
        """Store one batch durably; returns None (and counts it dropped) when the batch alone is
        larger than ``max_bytes``. Raises SpoolError when the disk refuses."""
        if not _KIND.match(kind) or not _BATCH_ID.match(batch_id) or rows < 0:
            raise ValueError("bad kind, batch id or row count")
        header = b" ".join(
            [_MAGIC, kind.encode(), batch_id.encode(), b"%d" % rows, b"%d" % len(body)]
        )
        size = len(header) + 1 + len(body)
        with self._lock:
            entries = self._loaded()
            if size > self.max_bytes:
                self.dropped_batches += 1
                self.dropped_rows += rows
                log.warning(
                    "batch larger than the spool, dropped batch_id=%s rows=%d", batch_id, rows
                )
                return None
            used = sum(e.size for e in entries)
            while entries and used + size > self.max_bytes:
                old = entries[0]
                self._delete(old)
                used -= old.size
                self.dropped_batches += 1
                self.dropped_rows += old.rows
                log.warning(
                    "spool full, oldest batch dropped batch_id=%s rows=%d", old.batch_id, old.rows
                )
            seq = self._next_seq
            self._next_seq += 1
            path = self.directory / f"{seq:020d}.batch"
            tmp = self.directory / f".{seq:020d}.batch.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    with os.fdopen(fd, "wb", closefd=False) as fh:
                        fh.write(header + b"\n")
                        fh.write(body)
                        fh.flush()
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
                _fsync_dir(self.directory)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise SpoolError(
                    f"cannot write to spool {self.directory}: {exc.strerror}"
                ) from None
            entry = SpoolEntry(seq, kind, batch_id, rows, size, path)
            entries.append(entry)
            self.written_batches += 1
            self.written_rows += rows
            return entry

    def read(self, entry: SpoolEntry) -> bytes:
        """The body of a spooled batch. Raises SpoolError when the file is gone or damaged."""
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            raise SpoolError(f"cannot read {entry.path}: {exc.strerror}") from None
        line, sep, body = data.partition(b"\n")
        header = _parse_header(line) if sep else None
        if header is None or header[3] != len(body) or header[1] != entry.batch_id:
            raise SpoolError(f"spool file {entry.path} is damaged")
        return body

    def remove(self, entry: SpoolEntry) -> None:
        """Forget a batch (delivered, rejected for good, or damaged)."""
        with self._lock:
            self._delete(entry)
            self.removed_batches += 1

    def _delete(self, entry: SpoolEntry) -> None:
        entries = self._loaded()
        if entry in entries:
            entries.remove(entry)
        entry.path.unlink(missing_ok=True)
