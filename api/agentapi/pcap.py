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
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from ..errors import ApiError, json_response
from ..http import authenticate, parse_uuid, path_uuid, state
from ..openapi.build import param_ref, rate_headers
from ..openapi.operations import Route, answer, operation
from ..state import STATE
from . import pcap_repo as repo
from .agent import AGENT, PREFIX, agent_operation, guard, incident_ref
from .answers import PcapList, PcapUploaded

__all__ = [
    "MAX_MULTIPART_BODY_BYTES",
    "OPERATIONS",
    "PCAP_CONTENT_TYPE",
    "UPLOAD_PATH",
    "routes",
    "setup",
]

MAX_MULTIPART_BODY_BYTES = repo.MAX_PCAP_SINGLE_BYTES + 64 * 1024
"""Largest multipart request: one file of up to 2 MiB plus the form framing."""
PCAP_CONTENT_TYPE = "application/vnd.tcpdump.pcap"

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,6}")
_INT_ID = re.compile(r"[0-9]{1,18}")
_MAX_PARTS = 8


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
        now = st.clock.now()
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

routes = web.RouteTableDef()
"""The REST routes (deploy token); ``api.agentapi.setup`` adds them."""
_REF = param_ref("IncidentRef")


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


@routes.get("/api/v1/incidents/{ref}/pcaps", allow_head=False)
@operation(
    "listIncidentPcaps",
    tag="Incidents",
    parameters=(_REF,),
    answers={200: answer("The captures.", PcapList)},
    errors=(404,),
)
async def list_incident_pcaps(request: web.Request) -> web.Response:
    """List an incident's packet captures

    Every capture the agent uploaded for the incident, oldest first."""
    ws, inc = await _incident(request)
    rows = await state(request).store.run(repo.list_pcaps, ws, inc)
    return json_response({"ok": True, "pcaps": rows, "total": len(rows)})


@routes.get("/api/v1/incidents/{ref}/pcaps/{id}", allow_head=False)
@operation(
    "downloadIncidentPcap",
    tag="Incidents",
    parameters=(
        _REF,
        {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
            "description": "The capture's `id`.",
        },
    ),
    answers={
        200: answer(
            "The capture file.",
            {"type": "string", "contentMediaType": PCAP_CONTENT_TYPE},
            content_type=PCAP_CONTENT_TYPE,
            headers={
                **rate_headers(),
                "Content-Disposition": {
                    "description": 'attachment; filename="<name>"',
                    "required": True,
                    "schema": {"type": "string"},
                },
            },
        )
    },
    errors=(404,),
)
async def download_pcap(request: web.Request) -> web.StreamResponse:
    """Download a packet capture

    The file as uploaded (pcap or pcapng), as an attachment."""
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


UPLOAD_PATH = f"{PREFIX}/incidents/{{uuid}}/pcap"


def setup(app: web.Application) -> None:
    """The upload's route (the REST ones are :data:`routes`); it authenticates through the
    ``AgentApi`` in ``app``."""
    uploads = PcapUploads(app)
    app.router.add_post(UPLOAD_PATH, guard("pcap", uploads.upload))


def _chunk_header(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": pattern},
        "description": f"Raw chunks only: {description}",
    }


_PCAP_FILE = {"type": "string", "contentMediaType": PCAP_CONTENT_TYPE}

OPERATIONS = [
    Route(
        "POST",
        UPLOAD_PATH,
        agent_operation(
            "agentUploadPcap",
            "Upload a packet capture (ftagent)",
            "Stores a pcap or pcapng file for the node's incident; an unknown uuid creates the "
            "incident, uploads after the resolve are accepted and every upload is kept as its "
            "own file. Either one multipart request (file part `pcap`, at most 2 MiB), or raw "
            "chunks of at most 2 MiB with `X-Chunk-Index`, `X-Chunk-Total` (at most 250) and "
            "`X-Upload-Id`: the file is put together once all chunks are held; re-sent chunks "
            "are accepted idempotently. A file that is neither pcap nor pcapng is 400 (`field: "
            "pcap`); too large is 413.",
            PcapUploaded,
            errors=(404, 409),
            parameters=(
                incident_ref("created"),
                _chunk_header("X-Chunk-Index", "^[0-9]{1,6}$", "this chunk's 0-based index."),
                _chunk_header("X-Chunk-Total", "^[0-9]{1,6}$", "the number of chunks, 1 to 250."),
                _chunk_header(
                    "X-Upload-Id",
                    "^[A-Za-z0-9_-]{1,64}$",
                    "one value per file, kept across retries.",
                ),
            ),
            requestBody={
                "required": True,
                "description": "The capture: multipart with one file part `pcap`, or raw bytes.",
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["pcap"],
                            "properties": {"pcap": _PCAP_FILE},
                        }
                    },
                    "application/octet-stream": {"schema": _PCAP_FILE},
                },
            },
        ),
    )
]
"""The upload, added by :func:`setup`; ``api.agentapi.OPERATIONS`` lists it."""
