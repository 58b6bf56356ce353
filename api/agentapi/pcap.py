"""Packet captures: the agent's upload ``POST /api/v1/agent/incidents/{uuid}/pcap``
(docs/agent-api.md §9) and their REST listing and download.

Upload forms (node key + ``X-Node-UUID``, as the rest of the Agent API):

* ``multipart/form-data`` with one file part ``pcap`` (any part with a file name is taken when
  none is called ``pcap``), at most :data:`~api.agentapi.pcap_repo.MAX_PCAP_SINGLE_BYTES`;
* raw chunks (``X-Chunk-Index`` 0-based, ``X-Chunk-Total`` ≤ 250, ``X-Upload-Id``; the same
  names as query parameters ``chunk_index``, ``chunk_total``, ``upload_id`` are accepted too),
  each at most 2 MiB, in any order, re-sent chunks replacing earlier copies. Once chunks
  0…total-1 of an ``(incident, upload id)`` are held the file is put together and stored; chunks
  of an upload already stored are answered 200 and dropped (a whole-file retry restarts at 0);
* a raw body without chunk headers is taken as a whole file (same cap as multipart).

Every stored file must start as classic pcap (either byte order, micro- or nanosecond) or
pcapng (section header block); anything else is 400 ``invalid_parameter`` (``field: pcap``).
Too large: 413. An unknown incident uuid creates the incident (as an update would). Answers are
JSON objects: ``{"ok": true, "uuid", "pcap": {...}}`` for a stored file, ``{"ok": true, "uuid",
"chunk_received": index, "of": total, "received": held, "complete": bool}`` per chunk.

REST (deploy token, workspace-scoped, another workspace's incident is 404):
``GET /api/v1/incidents/{ref}/pcaps`` lists ``id, name, size, created_at, sha256``;
``GET /api/v1/incidents/{ref}/pcaps/{id}`` downloads the file
(``application/vnd.tcpdump.pcap``, ``Content-Disposition: attachment``).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from ..errors import ApiError, json_response
from ..http import authenticate, parse_uuid, path_uuid, state
from ..state import STATE
from . import pcap_repo as repo
from .agent import AGENT, PREFIX, guard

__all__ = ["MAX_MULTIPART_BODY_BYTES", "OPENAPI_PATHS", "PCAP_CONTENT_TYPE", "setup"]

MAX_MULTIPART_BODY_BYTES = repo.MAX_PCAP_SINGLE_BYTES + 64 * 1024
"""Largest multipart request: one file of up to 2 MiB plus the form framing."""
PCAP_CONTENT_TYPE = "application/vnd.tcpdump.pcap"

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,6}")
_INT_ID = re.compile(r"[0-9]{1,18}")
_MAX_PARTS = 8


def utcnow() -> datetime:
    return datetime.now(UTC)


def _too_large(what: str) -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} is too large")


def _bad_pcap() -> ApiError:
    return ApiError(400, "invalid_parameter", "the file is neither pcap nor pcapng", field="pcap")


async def _read_limited(request: web.Request, limit: int, what: str) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(what)
    chunks, size = [], 0
    async for block in request.content.iter_chunked(1 << 16):
        size += len(block)
        if size > limit:
            raise _too_large(what)
        chunks.append(block)
    return b"".join(chunks)


async def _read_part(part: BodyPartReader, limit: int, keep: bool) -> bytes:
    chunks, size = [], 0
    while block := await part.read_chunk(1 << 16):
        size += len(block)
        if size > limit:
            raise _too_large("the pcap file")
        if keep:
            chunks.append(block)
    return b"".join(chunks)


async def _multipart_file(request: web.Request) -> tuple[bytes, str | None]:
    """The file part named ``pcap`` (else the first part with a file name) and its file name;
    other parts are read and dropped."""
    if request.content_length is not None and request.content_length > MAX_MULTIPART_BODY_BYTES:
        raise _too_large("request body")
    chosen: tuple[bytes, str | None] | None = None
    chosen_is_pcap = False
    parts = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            if not isinstance(part, BodyPartReader) or parts > _MAX_PARTS:
                raise ApiError(400, "invalid_parameter", "unexpected form parts", field="pcap")
            is_pcap = part.name == "pcap"
            keep = (is_pcap and not chosen_is_pcap) or (chosen is None and bool(part.filename))
            data = await _read_part(part, repo.MAX_PCAP_SINGLE_BYTES, keep)
            if keep:
                chosen, chosen_is_pcap = (data, part.filename), is_pcap
    except ValueError as exc:
        raise ApiError(
            400, "invalid_parameter", f"malformed multipart body: {exc}", field="pcap"
        ) from None
    if chosen is None:
        raise ApiError(400, "invalid_parameter", "no file part named pcap", field="pcap")
    return chosen


def _chunk_params(request: web.Request) -> tuple[int, int, str] | None:
    """(index, total, upload id) of a raw chunk, None for a body without any of them."""
    names = (
        ("X-Chunk-Index", "chunk_index"),
        ("X-Chunk-Total", "chunk_total"),
        ("X-Upload-Id", "upload_id"),
    )
    raw = [(request.headers.get(h) or request.query.get(q) or "").strip() for h, q in names]
    if not any(raw):
        return None
    index_text, total_text, upload_id = raw
    if not _DIGITS.fullmatch(total_text) or not 1 <= int(total_text) <= repo.MAX_PCAP_CHUNKS:
        raise ApiError(
            400,
            "invalid_parameter",
            f"X-Chunk-Total must be an integer from 1 to {repo.MAX_PCAP_CHUNKS}",
            field="X-Chunk-Total",
        )
    total = int(total_text)
    if not _DIGITS.fullmatch(index_text) or int(index_text) >= total:
        raise ApiError(
            400,
            "invalid_parameter",
            "X-Chunk-Index must be an integer from 0 to X-Chunk-Total - 1",
            field="X-Chunk-Index",
        )
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ApiError(
            400,
            "invalid_parameter",
            "X-Upload-Id must be 1 to 64 characters of [A-Za-z0-9_-]",
            field="X-Upload-Id",
        )
    return int(index_text), total, upload_id


class PcapUploads:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        # one lock per (incident, upload id) while requests for it are in flight
        self.locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @property
    def data_dir(self) -> Path:
        return self.app[STATE].config.data_path

    async def upload(self, request: web.Request) -> web.Response:
        ws, node = await request.app[AGENT].authenticate(request)
        ref = request.match_info["uuid"].strip()
        if not ref or len(ref) > 128:
            raise ApiError(404, "not_found", "incident not found")
        ctype = request.content_type.lower()
        chunk = None if ctype.startswith("multipart/") else _chunk_params(request)
        if ctype.startswith("multipart/"):
            data, filename = await _multipart_file(request)
        elif chunk is not None:
            data, filename = await _read_limited(request, repo.MAX_PCAP_CHUNK_BYTES, "chunk"), None
        else:
            data = await _read_limited(request, repo.MAX_PCAP_SINGLE_BYTES, "request body")
            filename = None
        if chunk is None or chunk[0] == 0:
            if repo.pcap_format(data) is None:
                raise _bad_pcap()
        elif not data:
            raise ApiError(400, "invalid_parameter", "the chunk is empty", field="pcap")
        st = state(request)
        now = utcnow()
        inc, created = await st.store.run(repo.resolve_agent_incident, ws, node, ref, now)
        if chunk is None:
            row = await self._store(ws, inc, node, data, filename, None, now)
            return json_response({"ok": True, "uuid": str(inc), "created": created, "pcap": row})
        return await self._chunk(ws, inc, node, created, chunk, data, now)

    async def _store(
        self,
        ws: uuid.UUID,
        inc: uuid.UUID,
        node: uuid.UUID,
        data: bytes | Path,
        filename: str | None,
        upload_id: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Write one capture (bytes, or the staged chunks of ``data``) and record it."""
        if isinstance(data, Path):
            head = await asyncio.to_thread(_head, data / "0.chunk")
        else:
            head = data[:64]
        fmt = repo.pcap_format(head)
        if fmt is None:
            raise _bad_pcap()
        pcap_id = str(uuid.uuid4())
        target = repo.pcap_path(self.data_dir, ws, inc, pcap_id, fmt)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        fallback = f"{inc}_{upload_id}" if upload_id else f"{inc}_{stamp}"
        name = repo.safe_name(filename, fmt, fallback)
        if isinstance(data, Path):
            total = int((data / "total").read_text())
            size, digest = await asyncio.to_thread(repo.assemble_chunks, data, total, target)
        else:
            size, digest = await asyncio.to_thread(repo.write_atomic, target, [data])
        if size > repo.MAX_PCAP_FILE_BYTES:
            target.unlink(missing_ok=True)
            raise _too_large("the pcap file")
        try:
            return await self.app[STATE].store.run(
                repo.insert_pcap,
                pcap_id=pcap_id,
                ws_uuid=ws,
                incident=inc,
                node_uuid=node,
                name=name,
                size=size,
                sha256=digest,
                fmt=fmt,
                path=str(target.relative_to(self.data_dir)),
                upload_id=upload_id,
                now=now,
            )
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    async def _chunk(
        self,
        ws: uuid.UUID,
        inc: uuid.UUID,
        node: uuid.UUID,
        created: bool,
        chunk: tuple[int, int, str],
        data: bytes,
        now: datetime,
    ) -> web.Response:
        index, total, upload_id = chunk
        store = self.app[STATE].store
        answer: dict[str, Any] = {
            "ok": True,
            "uuid": str(inc),
            "created": created,
            "chunk_received": index,
            "of": total,
        }
        key = (str(inc), upload_id)
        lock, users = self.locks.get(key, (asyncio.Lock(), 0))
        self.locks[key] = (lock, users + 1)
        try:
            async with lock:
                done = await store.run(repo.completed_upload, inc, upload_id)
                if done is not None:  # a whole-file retry of an upload already stored
                    return json_response(
                        {**answer, "received": total, "complete": True, "pcap": done}
                    )
                staging = repo.staging_dir(self.data_dir, ws, inc, upload_id)
                if not await asyncio.to_thread(repo.write_chunk, staging, index, total, data):
                    raise ApiError(
                        409,
                        "conflict",
                        "X-Chunk-Total differs from earlier chunks of this upload",
                        field="X-Chunk-Total",
                    )
                held = await asyncio.to_thread(repo.held_chunks, staging, total)
                if held < total:
                    return json_response({**answer, "received": held, "complete": False})
                try:
                    row = await self._store(ws, inc, node, staging, None, upload_id, now)
                finally:
                    await asyncio.to_thread(repo.remove_tree, staging)
                return json_response({**answer, "received": total, "complete": True, "pcap": row})
        finally:
            lock, users = self.locks[key]
            if users <= 1:
                del self.locks[key]
            else:
                self.locks[key] = (lock, users - 1)


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(64)


# --------------------------------------------------------------------------- REST


async def _incident(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
    caller = await authenticate(request)
    raw = request.match_info["ref"]
    ref: Any = int(raw) if _INT_ID.fullmatch(raw) else parse_uuid(raw)
    inc = None
    if ref is not None:
        inc = await state(request).store.run(repo.workspace_incident, caller.ws_uuid, ref)
    if inc is None:
        raise ApiError(404, "not_found", "incident not found")
    return caller.ws_uuid, inc


async def list_incident_pcaps(request: web.Request) -> web.Response:
    ws, inc = await _incident(request)
    rows = await state(request).store.run(repo.list_pcaps, ws, inc)
    return json_response({"ok": True, "pcaps": rows, "total": len(rows)})


async def download_pcap(request: web.Request) -> web.StreamResponse:
    ws, inc = await _incident(request)
    pcap_id = path_uuid(request, "id", "pcap")
    st = state(request)
    row = await st.store.run(repo.get_pcap, ws, inc, pcap_id)
    path = None if row is None else st.config.data_path / row["path"]
    if row is None or path is None or not path.is_file():
        raise ApiError(404, "not_found", "pcap not found")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": PCAP_CONTENT_TYPE,
            "Content-Disposition": f'attachment; filename="{row["name"]}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def setup(app: web.Application) -> None:
    """Routes of this module; the upload authenticates through the ``AgentApi`` in ``app``."""
    uploads = PcapUploads(app)
    r = app.router
    r.add_post(f"{PREFIX}/incidents/{{uuid}}/pcap", guard("pcap", uploads.upload))
    r.add_get("/api/v1/incidents/{ref}/pcaps", list_incident_pcaps, allow_head=False)
    r.add_get("/api/v1/incidents/{ref}/pcaps/{id}", download_pcap, allow_head=False)


# --------------------------------------------------------------------------- OpenAPI

_RATE = {
    name: {"$ref": f"#/components/headers/{name}"}
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
}


def _error_refs(*statuses: int) -> dict[str, Any]:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        413: "PayloadTooLarge",
        429: "RateLimited",
        500: "InternalError",
        503: "Unavailable",
    }
    return {str(s): {"$ref": f"#/components/responses/{names[s]}"} for s in sorted(statuses)}


_PCAP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "size", "created_at", "sha256"],
    "properties": {
        "id": {"$ref": "#/components/schemas/Uuid"},
        "name": {"type": "string", "description": "File name for downloads."},
        "size": {"type": "integer", "minimum": 0, "description": "Bytes."},
        "created_at": {"$ref": "#/components/schemas/Timestamp"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
    "additionalProperties": False,
}

_UPLOAD_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "uuid"],
    "properties": {
        "ok": {"const": True},
        "uuid": {"$ref": "#/components/schemas/Uuid"},
        "created": {"type": "boolean", "description": "The incident was unknown and created."},
        "pcap": _PCAP_SCHEMA,
        "chunk_received": {"type": "integer", "minimum": 0, "description": "This chunk's index."},
        "of": {"type": "integer", "minimum": 1, "description": "X-Chunk-Total."},
        "received": {"type": "integer", "minimum": 0, "description": "Chunks held so far."},
        "complete": {"type": "boolean", "description": "The file was put together and stored."},
    },
}


def _chunk_header(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": schema,
        "description": description,
    }


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/agent/incidents/{uuid}/pcap": {
        "post": {
            "tags": ["Agent"],
            "operationId": "agentUploadPcap",
            "summary": "Upload a packet capture (ftagent)",
            "description": "Stores a pcap or pcapng file for the node's incident; an unknown uuid "
            "creates the incident, uploads after the resolve are accepted and every upload is "
            "kept as its own file. Either one multipart request (file part `pcap`, at most "
            "2 MiB), or raw chunks of at most 2 MiB with `X-Chunk-Index`, `X-Chunk-Total` (at "
            "most 250) and `X-Upload-Id`: the file is put together once all chunks are held; "
            "re-sent chunks are accepted idempotently. A file that is neither pcap nor pcapng "
            "is 400 (`field: pcap`); too large is 413. Authenticated by the node's API key "
            "(`Authorization: Bearer`) plus `X-Node-UUID`, which must name that key's node "
            "(missing: 401, another node: 403). Overload is 503 with an integer `Retry-After`.",
            "security": [{"nodeKey": []}],
            "parameters": [
                {
                    "name": "X-Node-UUID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The node's UUID; required in practice (401 without it).",
                },
                {
                    "name": "uuid",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    "description": "The incident uuid from the open, or one the agent made up "
                    "(created).",
                },
                _chunk_header(
                    "X-Chunk-Index",
                    {"type": "string", "pattern": "^[0-9]{1,6}$"},
                    "Raw chunks only: this chunk's 0-based index.",
                ),
                _chunk_header(
                    "X-Chunk-Total",
                    {"type": "string", "pattern": "^[0-9]{1,6}$"},
                    "Raw chunks only: the number of chunks, 1 to 250.",
                ),
                _chunk_header(
                    "X-Upload-Id",
                    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "Raw chunks only: one value per file, kept across retries.",
                ),
            ],
            "requestBody": {
                "required": True,
                "description": "The capture: multipart with one file part `pcap`, or raw bytes.",
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["pcap"],
                            "properties": {
                                "pcap": {"type": "string", "contentMediaType": PCAP_CONTENT_TYPE}
                            },
                        }
                    },
                    "application/octet-stream": {
                        "schema": {"type": "string", "contentMediaType": PCAP_CONTENT_TYPE}
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "The file, or the chunk, was accepted.",
                    "content": {"application/json": {"schema": _UPLOAD_ANSWER}},
                },
                **_error_refs(400, 401, 403, 409, 413, 429, 500, 503),
            },
        }
    },
    "/api/v1/incidents/{ref}/pcaps": {
        "parameters": [{"$ref": "#/components/parameters/IncidentRef"}],
        "get": {
            "tags": ["Incidents"],
            "operationId": "listIncidentPcaps",
            "summary": "List an incident's packet captures",
            "description": "Every capture the agent uploaded for the incident, oldest first.",
            "responses": {
                "200": {
                    "description": "The captures.",
                    "headers": _RATE,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["ok", "pcaps", "total"],
                                "properties": {
                                    "ok": {"const": True},
                                    "pcaps": {"type": "array", "items": _PCAP_SCHEMA},
                                    "total": {"type": "integer", "minimum": 0},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                **_error_refs(401, 404, 429, 500, 503),
            },
        },
    },
    "/api/v1/incidents/{ref}/pcaps/{id}": {
        "parameters": [
            {"$ref": "#/components/parameters/IncidentRef"},
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
                "description": "The capture's `id`.",
            },
        ],
        "get": {
            "tags": ["Incidents"],
            "operationId": "downloadIncidentPcap",
            "summary": "Download a packet capture",
            "description": "The file as uploaded (pcap or pcapng), as an attachment.",
            "responses": {
                "200": {
                    "description": "The capture file.",
                    "headers": {
                        **_RATE,
                        "Content-Disposition": {
                            "description": 'attachment; filename="<name>"',
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    },
                    "content": {
                        PCAP_CONTENT_TYPE: {
                            "schema": {"type": "string", "contentMediaType": PCAP_CONTENT_TYPE}
                        }
                    },
                },
                **_error_refs(401, 404, 429, 500, 503),
            },
        },
    },
}
