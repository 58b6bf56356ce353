"""Packet captures uploaded by agents (docs/agent-api.md §9): files on disk, rows in
``incident_pcaps``.

Layout under ``<data_dir>/pcaps/``:

* ``<workspace>/<incident>/<pcap id>.pcap|.pcapng``: one finished upload each, written
  atomically (temporary file, fsync, rename, fsync of the directory), never appended to;
* ``.partial/<workspace>/<incident>/<upload id>/<index>.chunk``: the chunks of a raw chunked
  upload until all ``total`` of them are held; then they are put together and removed.

The database row keeps the display name, size, SHA-256, format and, for chunked uploads, the
upload id: chunks of an upload that was already put together are recognised and dropped, so a
whole-file retry (which restarts at chunk 0 with the same id) never stores the file twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from detect import agent_incidents as rules
from store.db import Connection, rows_as_dicts, transaction

from . import incident_repo

__all__ = [
    "MAX_PCAP_CHUNKS",
    "MAX_PCAP_CHUNK_BYTES",
    "MAX_PCAP_FILE_BYTES",
    "MAX_PCAP_SINGLE_BYTES",
    "PARTIAL_UPLOAD_MAX_AGE",
    "PCAP_RETENTION_DAYS",
    "assemble_chunks",
    "completed_upload",
    "delete_expired_pcaps",
    "get_pcap",
    "held_chunks",
    "insert_pcap",
    "list_pcaps",
    "pcap_format",
    "resolve_agent_incident",
    "safe_name",
    "staging_dir",
    "workspace_incident",
    "write_atomic",
    "write_chunk",
]

MAX_PCAP_CHUNK_BYTES = 2 * 1024 * 1024
"""Largest raw chunk: the agent cuts files into 2 MiB pieces (§9.2)."""
MAX_PCAP_CHUNKS = 250
"""Most chunks in one upload (``X-Chunk-Total``)."""
MAX_PCAP_FILE_BYTES = 500 * 1024 * 1024
"""Largest stored file: the agent truncates captures to 500 MiB (524 288 000 bytes)."""
MAX_PCAP_SINGLE_BYTES = 2 * 1024 * 1024
"""Largest file sent in one request (multipart, or a raw body without chunk headers)."""
PCAP_RETENTION_DAYS = 30
"""Stored captures older than this are deleted by :func:`delete_expired_pcaps`."""
PARTIAL_UPLOAD_MAX_AGE = timedelta(days=1)
"""Chunks of an upload that never completed are dropped after this long."""

PCAP_DIR = "pcaps"
PARTIAL_DIR = ".partial"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 128
_COLUMNS = "id, name, size, created_at, sha256, format"


# --------------------------------------------------------------------------- file formats


def pcap_format(head: bytes) -> str | None:
    """``"pcap"`` or ``"pcapng"`` from a file's first bytes, or None when it is neither.

    Classic pcap: the 24-byte global header starting with 0xa1b2c3d4 (microseconds) or
    0xa1b23c4d (nanoseconds), in either byte order. pcapng: a section header block (type
    0x0a0d0d0a) whose byte-order magic 0x1a2b3c4d at offset 8 is in either byte order."""
    if len(head) >= 24 and head[:4] in (
        b"\xa1\xb2\xc3\xd4",
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\x3c\x4d",
        b"\x4d\x3c\xb2\xa1",
    ):
        return "pcap"
    if (
        len(head) >= 12
        and head[:4] == b"\x0a\x0d\x0d\x0a"
        and head[8:12] in (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a")
    ):
        return "pcapng"
    return None


def safe_name(raw: str | None, fmt: str, fallback: str) -> str:
    """A display/download file name: the base name with only ``[A-Za-z0-9._-]``, the
    extension matching the detected format."""
    base = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).strip("._")[:_MAX_NAME]
    if not base:
        base = fallback
    stem, dot, ext = base.rpartition(".")
    if dot and ext.lower() in ("pcap", "pcapng", "cap"):
        base = stem
    return f"{base}.{fmt}"


# --------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, parts: Iterable[bytes]) -> tuple[int, str]:
    """Write ``parts`` to ``path`` through a temporary file, fsync and rename.

    Returns (size, sha256 hex)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    digest, size = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as fh:
            for part in parts:
                fh.write(part)
                digest.update(part)
                size += len(part)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return size, digest.hexdigest()


def pcap_path(data_dir: Path, ws: uuid.UUID, incident: uuid.UUID, pcap_id: str, fmt: str) -> Path:
    return data_dir / PCAP_DIR / str(ws) / str(incident) / f"{pcap_id}.{fmt}"


def staging_dir(data_dir: Path, ws: uuid.UUID, incident: uuid.UUID, upload_id: str) -> Path:
    return data_dir / PCAP_DIR / PARTIAL_DIR / str(ws) / str(incident) / upload_id


def write_chunk(staging: Path, index: int, total: int, data: bytes) -> bool:
    """Keep chunk ``index`` (a re-sent chunk replaces the earlier copy). False when the upload's
    staged chunks were made for another ``total`` (the caller answers 409)."""
    staging.mkdir(parents=True, exist_ok=True)
    marker = staging / "total"
    if marker.exists():
        if marker.read_text().strip() != str(total):
            return False
    else:
        write_atomic(marker, [str(total).encode()])
    write_atomic(staging / f"{index}.chunk", [data])
    return True


def held_chunks(staging: Path, total: int) -> int:
    return sum(1 for i in range(total) if (staging / f"{i}.chunk").is_file())


def _read_chunks(staging: Path, total: int) -> Iterable[bytes]:
    for i in range(total):
        with (staging / f"{i}.chunk").open("rb") as fh:
            while block := fh.read(1 << 20):
                yield block


def assemble_chunks(staging: Path, total: int, target: Path) -> tuple[int, str]:
    """Put chunks 0…total-1 together into ``target`` (atomically); returns (size, sha256)."""
    return write_atomic(target, _read_chunks(staging, total))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- database


def resolve_agent_incident(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID, ref: str, now: datetime
) -> tuple[uuid.UUID, bool]:
    """The node's incident named ``ref`` (as update and resolve find it), created when the
    server never saw it (§9.3). Returns (incident uuid, created).

    A created incident is active with family ``unknown``, like one upserted from an update;
    later updates and the resolve fold into it by the same reference."""
    with transaction(con):
        found = con.execute(
            "SELECT uuid FROM incidents WHERE node_uuid = ? "
            "AND (agent_ref = ? OR CAST(uuid AS VARCHAR) = ?) ORDER BY started_at LIMIT 1",
            [str(node_uuid), ref, ref.lower()],
        ).fetchone()
        if found is not None:
            return uuid.UUID(str(found[0])), False
        state = rules.blank(ref, now)
        state["title"] = state["attack_family"]
        state["detail"]["created_by"] = "pcap"
        inc = incident_repo.save(con, ws_uuid, node_uuid, state, now)
    return inc, True


def completed_upload(con: Connection, incident: uuid.UUID, upload_id: str) -> dict[str, Any] | None:
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COLUMNS} FROM incident_pcaps WHERE incident_uuid = ? AND upload_id = ?",
            [str(incident), upload_id],
        )
    )
    return _public(rows[0]) if rows else None


def insert_pcap(
    con: Connection,
    *,
    pcap_id: str,
    ws_uuid: uuid.UUID,
    incident: uuid.UUID,
    node_uuid: uuid.UUID,
    name: str,
    size: int,
    sha256: str,
    fmt: str,
    path: str,
    upload_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    con.execute(
        "INSERT INTO incident_pcaps (id, workspace_uuid, incident_uuid, node_uuid, name, size, "
        "sha256, format, path, upload_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            pcap_id,
            str(ws_uuid),
            str(incident),
            str(node_uuid),
            name,
            size,
            sha256,
            fmt,
            path,
            upload_id,
            now,
        ],
    )
    return {"id": pcap_id, "name": name, "size": size, "created_at": now, "sha256": sha256}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "size": int(row["size"]),
        "created_at": row["created_at"],
        "sha256": row["sha256"],
    }


def workspace_incident(
    con: Connection, ws_uuid: uuid.UUID, ref: uuid.UUID | int
) -> uuid.UUID | None:
    """The uuid of the workspace's incident with this uuid or integer id, or None."""
    column = "id" if isinstance(ref, int) else "uuid"
    row = con.execute(
        f"SELECT uuid FROM incidents WHERE workspace_uuid = ? AND {column} = ?",
        [str(ws_uuid), ref if isinstance(ref, int) else str(ref)],
    ).fetchone()
    return None if row is None else uuid.UUID(str(row[0]))


def list_pcaps(con: Connection, ws_uuid: uuid.UUID, incident: uuid.UUID) -> list[dict[str, Any]]:
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COLUMNS} FROM incident_pcaps WHERE workspace_uuid = ? "
            "AND incident_uuid = ? ORDER BY created_at, id",
            [str(ws_uuid), str(incident)],
        )
    )
    return [_public(r) for r in rows]


def get_pcap(
    con: Connection, ws_uuid: uuid.UUID, incident: uuid.UUID, pcap_id: uuid.UUID
) -> dict[str, Any] | None:
    """One capture with its stored ``path`` (relative to the data directory) and ``format``."""
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_COLUMNS}, path FROM incident_pcaps WHERE workspace_uuid = ? "
            "AND incident_uuid = ? AND id = ?",
            [str(ws_uuid), str(incident), str(pcap_id)],
        )
    )
    if not rows:
        return None
    out = _public(rows[0])
    out["path"] = rows[0]["path"]
    out["format"] = rows[0]["format"]
    return out


# --------------------------------------------------------------------------- retention


def delete_expired_pcaps(
    con: Connection,
    data_dir: Path,
    now: datetime,
    max_age_days: int = PCAP_RETENTION_DAYS,
) -> int:
    """Delete captures stored more than ``max_age_days`` ago (rows and files), and chunks of
    uploads untouched for :data:`PARTIAL_UPLOAD_MAX_AGE`. Returns the number of captures
    deleted. Meant to run on the store's thread: ``store.run(delete_expired_pcaps, ...)``."""
    cutoff = now - timedelta(days=max_age_days)
    rows = con.execute(
        "SELECT id, path FROM incident_pcaps WHERE created_at < ?", [cutoff]
    ).fetchall()
    root = (data_dir / PCAP_DIR).resolve()
    for pcap_id, rel in rows:
        path = (data_dir / rel).resolve()
        if path.is_relative_to(root):
            path.unlink(missing_ok=True)
            for parent in (path.parent, path.parent.parent):
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty
        con.execute("DELETE FROM incident_pcaps WHERE id = ?", [str(pcap_id)])
    _drop_stale_partials(data_dir / PCAP_DIR / PARTIAL_DIR)
    return len(rows)


def _drop_stale_partials(partial_root: Path) -> None:
    if not partial_root.is_dir():
        return
    limit = time.time() - PARTIAL_UPLOAD_MAX_AGE.total_seconds()
    for upload in partial_root.glob("*/*/*"):
        try:
            newest = max(
                (p.stat().st_mtime for p in upload.iterdir()), default=upload.stat().st_mtime
            )
        except OSError:
            continue
        if newest < limit:
            remove_tree(upload)
            for parent in (upload.parent, upload.parent.parent):
                with contextlib.suppress(OSError):
                    parent.rmdir()
