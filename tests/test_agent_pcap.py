"""PCAP uploads of the ftagent Agent API (docs/agent-api.md §9) and their REST listing and
download, against the real server; the capture files are built here."""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from api.agentapi import pcap_repo
from store.migrations import MIGRATIONS

from .conftest import Client, Server, assert_error, new_workspace, start_server

MIB = 1024 * 1024


# --------------------------------------------------------------------------- capture files


def classic_pcap(packets: int = 3, *, endian: str = "<", nanos: bool = False) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(f"{endian}IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for i in range(packets):
        frame = bytes([i % 256]) * 60
        out += struct.pack(f"{endian}IIII", 1_773_480_000 + i, i, len(frame), len(frame)) + frame
    return out


def pcapng(packets: int = 3) -> bytes:
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb = struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body
    shb += struct.pack("<I", 12 + len(shb_body))
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 65535, 20)
    out = shb + idb
    for i in range(packets):
        frame = bytes([i % 256]) * 60
        body = struct.pack("<IIIII", 0, 0, i, len(frame), len(frame)) + frame
        length = 12 + len(body)
        out += struct.pack("<II", 6, length) + body + struct.pack("<I", length)
    return out


def big_pcap(size: int) -> bytes:
    """A classic pcap of exactly ``size`` bytes, the last record cut short (as the agent's
    500 MiB truncation may leave it)."""
    frame = bytes(range(256)) * 6
    record = struct.pack("<IIII", 1_773_480_000, 0, len(frame), len(frame)) + frame
    head = classic_pcap(0)
    body = record * ((size - len(head)) // len(record) + 1)
    return (head + body)[:size]


def test_magic_numbers() -> None:
    assert pcap_repo.pcap_format(classic_pcap()) == "pcap"
    assert pcap_repo.pcap_format(classic_pcap(endian=">")) == "pcap"
    assert pcap_repo.pcap_format(classic_pcap(nanos=True)) == "pcap"
    assert pcap_repo.pcap_format(classic_pcap(endian=">", nanos=True)) == "pcap"
    assert pcap_repo.pcap_format(pcapng()) == "pcapng"
    big_endian_ng = struct.pack(">II", 0x0A0D0D0A, 28) + struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1)
    assert pcap_repo.pcap_format(big_endian_ng) == "pcapng"
    assert pcap_repo.pcap_format(b"GIF89a" + bytes(30)) is None
    assert pcap_repo.pcap_format(classic_pcap()[:10]) is None  # no complete global header
    assert pcap_repo.pcap_format(b"") is None


# --------------------------------------------------------------------------- the agent


@pytest.fixture(scope="module")
def pserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("pcap") / "data")
    yield srv
    srv.stop()


class Agent:
    def __init__(self, server: Server, node: dict[str, Any]) -> None:
        self.server = server
        self.node = node
        self.ws_id = ""
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {node['api_key']}",
                "X-Node-UUID": node["uuid"],
                "User-Agent": "ftagent/1.9.65",
            }
        )

    def url(self, inc: str) -> str:
        return self.server.url(f"/api/v1/agent/incidents/{inc}/pcap")

    def multipart(self, inc: str, data: bytes, name: str | None = None) -> requests.Response:
        filename = name or f"{inc}_20260314T092653Z.pcap"
        files = {"pcap": (filename, data, "application/octet-stream")}
        return self.session.post(self.url(inc), files=files, timeout=60, allow_redirects=False)

    def chunk(
        self, inc: str, data: bytes, index: int, total: int, upload_id: str
    ) -> requests.Response:
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Chunk-Index": str(index),
            "X-Chunk-Total": str(total),
            "X-Upload-Id": upload_id,
        }
        return self.session.post(
            self.url(inc), data=data, headers=headers, timeout=60, allow_redirects=False
        )

    def post_json(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(
            self.server.url("/api/v1/agent" + path), json=body, timeout=30, allow_redirects=False
        )


def _setup(srv: Server) -> tuple[Client, Agent]:
    ws = new_workspace(srv)
    r = ws.client.post(
        "/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:8]}", "ip": "203.0.113.10"}
    )
    assert r.status_code == 201, r.text
    agent = Agent(srv, r.json()["node"])
    agent.ws_id = ws.id
    return ws.client, agent


def _ok(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict) and body["ok"] is True
    return body


def _open(agent: Agent) -> str:
    body = {
        "peak_pps": 250000,
        "peak_bps": 1.2e9,
        "started_at": datetime.now(UTC).isoformat(),
        "attack_family": "udp_flood",
    }
    inc: str = _ok(agent.post_json("/incidents", body))["uuid"]
    return inc


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _listed(client: Client, inc: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/incidents/{inc}/pcaps")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["total"] == len(body["pcaps"])
    out: list[dict[str, Any]] = body["pcaps"]
    return out


def _download(client: Client, inc: str, pcap_id: str) -> requests.Response:
    r = client.get(f"/api/v1/incidents/{inc}/pcaps/{pcap_id}")
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/vnd.tcpdump.pcap"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=")
    return r


def _no_leftovers(srv: Server) -> None:
    root = srv.data_dir / "pcaps"
    assert not [p for p in root.rglob("*.tmp")]
    partial = root / ".partial"
    assert not partial.exists() or not [p for p in partial.rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- tests


def test_multipart_upload_list_and_download(pserver: Server) -> None:
    client, agent = _setup(pserver)
    inc = _open(agent)
    data = classic_pcap(5)
    answer = _ok(agent.multipart(inc, data))
    assert answer["uuid"] == inc and answer["created"] is False
    stored = answer["pcap"]
    assert stored["size"] == len(data)
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["name"] == f"{inc}_20260314T092653Z.pcap"

    listed = _listed(client, inc)
    assert [p["id"] for p in listed] == [stored["id"]]
    item = listed[0]
    assert set(item) == {"id", "name", "size", "created_at", "sha256"}
    assert item["size"] == len(data) and item["sha256"] == stored["sha256"]
    assert item["created_at"].endswith("Z")

    r = _download(client, inc, item["id"])
    assert r.content == data
    assert f'filename="{item["name"]}"' in r.headers["Content-Disposition"]

    # <data_dir>/pcaps/<workspace>/<incident>/<id>.pcap
    stored_file = pserver.data_dir / "pcaps" / agent.ws_id / inc / f"{item['id']}.pcap"
    assert stored_file.read_bytes() == data
    _no_leftovers(pserver)


def test_several_formats_per_incident_and_after_resolve(pserver: Server) -> None:
    client, agent = _setup(pserver)
    inc = _open(agent)
    early = classic_pcap(2)
    _ok(agent.multipart(inc, early, f"{inc}_20260314T092653Z_chunk1.pcap"))
    _ok(agent.post_json(f"/incidents/{inc}/resolve", {"duration_seconds": 30, "confidence": 80}))
    files = {
        "ng": pcapng(4),
        "be": classic_pcap(3, endian=">"),
        "ns": classic_pcap(3, nanos=True),
        "same": early,  # an overlapping upload is its own file too
    }
    for data in files.values():
        _ok(agent.multipart(inc, data))
    listed = _listed(client, inc)
    assert len(listed) == 5
    by_hash = {p["sha256"]: p for p in listed}
    for data in files.values():
        item = by_hash[hashlib.sha256(data).hexdigest()]
        assert _download(client, inc, item["id"]).content == data
    ng = by_hash[hashlib.sha256(files["ng"]).hexdigest()]
    assert ng["name"].endswith(".pcapng")
    assert client.get(f"/api/v1/incidents/{inc}").json()["incident"]["status"] == "resolved"


def test_chunked_upload_with_whole_file_retry(pserver: Server) -> None:
    """§9.2: a 5 000 000-byte file in 2 MiB chunks; then the agent's retry resends it all."""
    client, agent = _setup(pserver)
    inc = _open(agent)
    data = big_pcap(5_000_000)
    parts = _chunks(data, 2 * MIB)
    assert [len(p) for p in parts] == [2 * MIB, 2 * MIB, 805_696]
    upload = "9c2e41f07ab35d18"
    answers = [_ok(agent.chunk(inc, part, i, 3, upload)) for i, part in enumerate(parts)]
    assert [(a["chunk_received"], a["of"], a["complete"]) for a in answers] == [
        (0, 3, False),
        (1, 3, False),
        (2, 3, True),
    ]
    assert answers[2]["pcap"]["size"] == len(data)
    # whole-file retry: the same upload id from chunk 0 again; accepted, not stored twice
    for i, part in enumerate(parts):
        again = _ok(agent.chunk(inc, part, i, 3, upload))
        assert again["complete"] is True
    listed = _listed(client, inc)
    assert len(listed) == 1
    assert listed[0]["size"] == len(data)
    assert listed[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert _download(client, inc, listed[0]["id"]).content == data
    _no_leftovers(pserver)


def test_chunks_out_of_order_and_resent(pserver: Server) -> None:
    client, agent = _setup(pserver)
    inc = _open(agent)
    data = pcapng(40)
    parts = _chunks(data, 1000)
    total = len(parts)
    assert total >= 3
    upload = uuid.uuid4().hex[:16]
    order = [total - 1, 0, 0, *range(1, total - 1)]
    held = []
    for i in order:
        answer = _ok(agent.chunk(inc, parts[i], i, total, upload))
        held.append(answer["received"])
    assert held[:3] == [1, 2, 2]  # the re-sent chunk 0 replaced its copy
    assert answer["complete"] is True
    # a second file for the same incident under another upload id
    other = classic_pcap(30)
    other_parts = _chunks(other, 700)
    other_id = uuid.uuid4().hex[:16]
    for i in reversed(range(len(other_parts))):
        _ok(agent.chunk(inc, other_parts[i], i, len(other_parts), other_id))
    listed = _listed(client, inc)
    assert len(listed) == 2
    contents = {_download(client, inc, p["id"]).content for p in listed}
    assert contents == {data, other}
    _no_leftovers(pserver)


def test_bad_magic_is_400_and_nothing_stored(pserver: Server) -> None:
    client, agent = _setup(pserver)
    inc = _open(agent)
    junk = b"<html>not a capture</html>" + bytes(100)
    assert_error(agent.multipart(inc, junk), 400, "invalid_parameter")
    assert_error(agent.chunk(inc, junk, 0, 2, "aaaaaaaaaaaaaaaa"), 400, "invalid_parameter")
    # chunk 0 arriving last with bad magic is refused too; the upload never completes
    _ok(agent.chunk(inc, b"tail bytes", 1, 2, "bbbbbbbbbbbbbbbb"))
    assert_error(agent.chunk(inc, junk, 0, 2, "bbbbbbbbbbbbbbbb"), 400, "invalid_parameter")
    assert_error(agent.multipart(inc, b""), 400, "invalid_parameter")
    assert _listed(client, inc) == []


def test_chunk_headers_are_checked(pserver: Server) -> None:
    _, agent = _setup(pserver)
    inc = _open(agent)
    head = classic_pcap(1)
    assert_error(agent.chunk(inc, head, 3, 3, "cccccccccccccccc"), 400, "invalid_parameter")
    assert_error(agent.chunk(inc, head, 0, 251, "cccccccccccccccc"), 400, "invalid_parameter")
    assert_error(agent.chunk(inc, head, 0, 2, "bad id!"), 400, "invalid_parameter")
    _ok(agent.chunk(inc, head, 0, 2, "dddddddddddddddd"))
    assert_error(agent.chunk(inc, b"more", 1, 3, "dddddddddddddddd"), 409, "conflict")


def test_over_cap_is_413(pserver: Server) -> None:
    client, agent = _setup(pserver)
    inc = _open(agent)
    too_big = big_pcap(pcap_repo.MAX_PCAP_CHUNK_BYTES + 1)
    assert_error(agent.chunk(inc, too_big, 0, 2, "eeeeeeeeeeeeeeee"), 413, "payload_too_large")
    assert_error(agent.multipart(inc, too_big), 413, "payload_too_large")
    # exactly the cap is fine
    exact = big_pcap(pcap_repo.MAX_PCAP_SINGLE_BYTES)
    _ok(agent.multipart(inc, exact))
    assert [p["size"] for p in _listed(client, inc)] == [len(exact)]


def test_unknown_incident_is_created(pserver: Server) -> None:
    client, agent = _setup(pserver)
    local = str(uuid.uuid4())
    data = classic_pcap(2)
    answer = _ok(agent.multipart(local, data, f"mirror_{local}.pcap"))
    assert answer["uuid"] == local and answer["created"] is True
    incident = client.get(f"/api/v1/incidents/{local}")
    assert incident.status_code == 200, incident.text
    assert incident.json()["incident"]["node_uuid"] == agent.node["uuid"]
    # the later resolve folds into the same incident
    resolved = _ok(agent.post_json(f"/incidents/{local}/resolve", {"duration_seconds": 5}))
    assert resolved["uuid"] == local and resolved["created"] is False
    # a chunked upload for another unknown, non-UUID reference
    chunked = _ok(agent.chunk("local-9", data, 0, 1, "ffffffffffffffff"))
    assert chunked["created"] is True and chunked["complete"] is True
    created = chunked["uuid"]
    assert [p["sha256"] for p in _listed(client, created)] == [hashlib.sha256(data).hexdigest()]
    assert _listed(client, local)[0]["name"] == f"mirror_{local}.pcap"


def test_authentication_and_workspace_scoping(pserver: Server) -> None:
    client, agent = _setup(pserver)
    other_client, other_agent = _setup(pserver)
    inc = _open(agent)
    pcap_id = _ok(agent.multipart(inc, classic_pcap(1)))["pcap"]["id"]

    # agent side: key and X-Node-UUID as for every agent call
    r = requests.post(agent.url(inc), files={"pcap": ("x.pcap", classic_pcap(1))}, timeout=30)
    assert_error(r, 401, "unauthorized")
    mismatch = requests.post(
        agent.url(inc),
        files={"pcap": ("x.pcap", classic_pcap(1))},
        headers={
            "Authorization": f"Bearer {agent.node['api_key']}",
            "X-Node-UUID": other_agent.node["uuid"],
        },
        timeout=30,
    )
    assert_error(mismatch, 403, "forbidden")

    # REST side: another workspace sees nothing
    assert_error(other_client.get(f"/api/v1/incidents/{inc}/pcaps"), 404, "not_found")
    assert_error(other_client.get(f"/api/v1/incidents/{inc}/pcaps/{pcap_id}"), 404, "not_found")
    anonymous = requests.get(pserver.url(f"/api/v1/incidents/{inc}/pcaps"), timeout=30)
    assert_error(anonymous, 401, "unauthorized")
    missing = f"/api/v1/incidents/{inc}/pcaps/{uuid.uuid4()}"
    assert_error(client.get(missing), 404, "not_found")
    assert_error(client.get(f"/api/v1/incidents/{inc}/pcaps/nope"), 404, "not_found")
    assert_error(client.get(f"/api/v1/incidents/{uuid.uuid4()}/pcaps"), 404, "not_found")
    # the other node's agent uploading to this incident's uuid makes its own incident
    theirs = _ok(other_agent.multipart(inc, classic_pcap(2)))
    assert theirs["uuid"] != inc
    assert len(_listed(client, inc)) == 1
    # the integer id names the incident too
    number = client.get(f"/api/v1/incidents/{inc}").json()["incident"]["id"]
    assert [p["id"] for p in _listed(client, str(number))] == [pcap_id]


# --------------------------------------------------------------------------- retention


def test_retention_deletes_old_captures(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    for _, sql in sorted(MIGRATIONS):
        con.execute(sql)
    now = datetime.now(UTC)
    ws, node = uuid.uuid4(), uuid.uuid4()
    kept_inc, old_inc = uuid.uuid4(), uuid.uuid4()
    rows = []
    for inc, age in ((kept_inc, 1), (old_inc, pcap_repo.PCAP_RETENTION_DAYS + 1)):
        pcap_id = str(uuid.uuid4())
        path = pcap_repo.pcap_path(tmp_path, ws, inc, pcap_id, "pcap")
        size, digest = pcap_repo.write_atomic(path, [classic_pcap(1)])
        pcap_repo.insert_pcap(
            con,
            pcap_id=pcap_id,
            ws_uuid=ws,
            incident=inc,
            node_uuid=node,
            name="x.pcap",
            size=size,
            sha256=digest,
            fmt="pcap",
            path=str(path.relative_to(tmp_path)),
            upload_id=None,
            now=now - timedelta(days=age),
        )
        rows.append(path)
    assert pcap_repo.delete_expired_pcaps(con, tmp_path, now) == 1
    assert rows[0].is_file() and not rows[1].exists()
    assert not rows[1].parent.exists()  # the emptied incident directory goes too
    assert [len(pcap_repo.list_pcaps(con, ws, i)) for i in (kept_inc, old_inc)] == [1, 0]
    assert pcap_repo.delete_expired_pcaps(con, tmp_path, now) == 0
    con.close()
