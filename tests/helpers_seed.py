"""Seeded data directories and small shared helpers for the REST v1 integration tests.

Incidents can only be created by agents (a later feature), so tests that read incidents build a
data directory with the store's own repository functions *before* a server is started on it,
then talk to that server over real HTTP.

The seed is described by plain tables (``NODES``, ``INCIDENTS``) so that a test can compute the
expected answer of an endpoint itself, independently of the server's SQL.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from store import Store
from store import incidents as incident_repo
from store import nodes as node_repo
from store import workspaces as ws_repo

from .conftest import Client, Server, start_server

# A node that reported during seeding stays "online" for the whole session: the seeded server
# runs with an offline threshold of ten years, so no assertion depends on the clock.
OFFLINE_AFTER_SECS = 10 * 365 * 86400
SEED_ENV = {"FLOODWATCH_API__OFFLINE_AFTER_SECS": str(OFFLINE_AFTER_SECS)}

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_ts(text: str) -> datetime:
    """An ISO 8601 timestamp of an answer ("...Z") as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_uuid(text: Any) -> str:
    assert isinstance(text, str), text
    assert str(uuid.UUID(text)) == text, text
    return text


def assert_envelope(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The strict error envelope: exactly ``ok`` and ``error``; ``error`` holds a code, a
    message and at most a ``field``; the answer is JSON."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].split(";")[0].strip() == "application/json", resp.headers
    body = resp.json()
    assert set(body) == {"ok", "error"}, body
    assert body["ok"] is False, body
    err = body["error"]
    assert isinstance(err, dict), body
    assert set(err) <= {"code", "message", "field"}, body
    assert {"code", "message"} <= set(err), body
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"].strip(), body
    return body


def assert_invalid(resp: requests.Response, field_name: str | None) -> dict[str, Any]:
    """400 invalid_parameter naming ``field_name`` (when given)."""
    body = assert_envelope(resp, 400, "invalid_parameter")
    if field_name is not None:
        assert body["error"].get("field") == field_name, body
    return body


# --- the seed ----------------------------------------------------------------------------------

# charlie exists for the one test that deletes a node (test_incidents.py); nothing else reads it
WORKSPACES = ("alpha", "bravo", "charlie")


@dataclass(frozen=True)
class NodeSpec:
    ws: str
    key: str
    ip: str
    location: str | None
    priority: str
    seen: bool  # reported during seeding (last_seen = seed time)
    elevated: bool
    last_pps: float | None
    last_bps: float | None
    status: str  # the status the server must derive


NODES: tuple[NodeSpec, ...] = (
    NodeSpec("alpha", "a1", "198.51.100.1", "fra1", "production", True, False, 1500.0, 1.2e7, "attack"),  # noqa: E501
    NodeSpec("alpha", "a2", "2001:db8::2", "ams1", "staging", True, False, 900.0, 7.2e6, "online"),
    NodeSpec("alpha", "a3", "198.51.100.3", None, "development", True, True, 5.0e4, 4.0e8, "elevated"),  # noqa: E501
    NodeSpec("alpha", "a4", "198.51.100.4", "nyc1", "production", False, False, None, None, "offline"),  # noqa: E501
    NodeSpec("bravo", "b1", "203.0.113.1", "sfo1", "production", True, False, 10.0, 8.0e3, "attack"),  # noqa: E501
    NodeSpec("charlie", "c1", "192.0.2.77", None, "staging", True, False, 1.0, 8.0, "attack"),
    NodeSpec("charlie", "c2", "192.0.2.78", None, "staging", True, False, 1.0, 8.0, "online"),
)  # fmt: skip


@dataclass(frozen=True)
class IncidentSpec:
    key: str
    node: str
    status: str
    severity: str
    family: str
    started_ago: timedelta
    duration_secs: int | None  # None: still active
    peak_pps: float
    peak_bps: float
    sources: int


H = timedelta(hours=1)
D = timedelta(days=1)

INCIDENTS: tuple[IncidentSpec, ...] = (
    IncidentSpec("i1", "a1", "active", "critical", "udp_flood", 2 * H, None, 480_000.0, 3.9e9, 812),
    IncidentSpec("i2", "a1", "resolved", "high", "syn_flood", 20 * H, 370, 90_000.0, 4.6e7, 40),
    IncidentSpec("i3", "a2", "resolved", "medium", "udp_flood", 3 * D, 600, 120_000.0, 9.0e8, 300),
    IncidentSpec("i4", "a2", "false_positive", "low", "dns_amplification", 5 * D, 60, 2_000.0, 1.6e7, 3),  # noqa: E501
    IncidentSpec("i5", "a3", "resolved", "low", "udp_flood", 20 * D, 1200, 30_000.0, 2.4e8, 25),
    IncidentSpec("i6", "a2", "resolved", "high", "ntp_amplification", 60 * D, 3600, 700_000.0, 5.6e9, 1500),  # noqa: E501
    IncidentSpec("i7", "a1", "resolved", "critical", "syn_flood", 200 * D, 7200, 950_000.0, 7.6e9, 2200),  # noqa: E501
    IncidentSpec("i8", "a4", "resolved", "medium", "udp_flood", 400 * D, 300, 10_000.0, 8.0e7, 12),
    IncidentSpec("j1", "b1", "active", "high", "udp_flood", 1 * H, None, 60_000.0, 4.8e8, 90),
    IncidentSpec("j2", "b1", "resolved", "low", "icmp_flood", 2 * D, 120, 5_000.0, 4.0e7, 4),
    IncidentSpec("k1", "c1", "active", "medium", "tcp_ack", 3 * H, None, 7_000.0, 5.0e7, 20),
    IncidentSpec("k2", "c1", "resolved", "low", "tcp_rst", 4 * D, 90, 3_000.0, 2.0e7, 8),
)  # fmt: skip

# forensic detail stored on i1 only, to check the detail answer field by field
I1_DETAIL: dict[str, Any] = {
    "title": "UDP flood on alpha-a1",
    "attack_subtype": "udp_generic",
    "confidence": 92,
    "protocol_breakdown": {"tcp": 2.1, "udp": 97.4, "icmp": 0.5},
    "geo_origin": {"NL": 41.5, "US": 30.25, "BR": 28.25},
    "top_sources": [{"ip": "192.0.2.10", "pps": 12000}, {"ip": "192.0.2.11", "pps": 9000}],
    "top_dst_ports": [{"port": 27015, "count": 9000}],
    "summary": "A UDP flood from 812 sources aimed at port 27015.",
}


@dataclass
class SeededNode:
    spec: NodeSpec
    uuid: str
    name: str


@dataclass
class SeededIncident:
    spec: IncidentSpec
    ws: str
    uuid: str
    id: int
    node_uuid: str
    node_name: str
    started_at: datetime
    resolved_at: datetime | None


@dataclass
class SeededWorkspace:
    key: str
    uuid: str
    name: str
    token: str
    nodes: dict[str, SeededNode] = field(default_factory=dict)
    incidents: dict[str, SeededIncident] = field(default_factory=dict)


@dataclass
class Seed:
    now: datetime
    workspaces: dict[str, SeededWorkspace]

    def ws(self, key: str) -> SeededWorkspace:
        return self.workspaces[key]


def build_seed(data_dir: Path) -> Seed:
    """Write the seed into ``data_dir`` (no server may hold it)."""
    now = datetime.now(UTC).replace(microsecond=0)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "floodwatch.duckdb")
    store.open()
    try:
        con = store.con
        seeded: dict[str, SeededWorkspace] = {}
        ws_rows: dict[str, dict[str, Any]] = {}
        for key in WORKSPACES:
            name = f"seed-{key}"
            row, token = ws_repo.create_workspace(con, name, "self-hosted")
            ws_rows[key] = row
            seeded[key] = SeededWorkspace(key, str(row["uuid"]), name, token)
        for spec in NODES:
            name = f"{spec.ws}-{spec.key}"
            fields = node_repo.validate_node_fields(
                {"name": name, "ip": spec.ip, "location": spec.location, "priority": spec.priority}
            )
            node, _api_key = node_repo.create_node(con, ws_rows[spec.ws], fields)
            if spec.seen:
                # what an agent heartbeat will do once the agent API exists
                con.execute(
                    "UPDATE nodes SET last_seen = ?, last_pps = ?, last_bps = ?, elevated = ? "
                    "WHERE uuid = ?",
                    [now, spec.last_pps, spec.last_bps, spec.elevated, str(node["uuid"])],
                )
            seeded[spec.ws].nodes[spec.key] = SeededNode(spec, str(node["uuid"]), name)
        node_ws = {spec.key: spec.ws for spec in NODES}
        for inc in INCIDENTS:
            ws_key = node_ws[inc.node]
            node = seeded[ws_key].nodes[inc.node]
            started = now - inc.started_ago
            resolved = (
                None
                if inc.duration_secs is None
                else started + timedelta(seconds=inc.duration_secs)
            )
            extra = I1_DETAIL if inc.key == "i1" else {}
            inc_uuid = incident_repo.insert_incident(
                con,
                uuid.UUID(seeded[ws_key].uuid),
                uuid.UUID(node.uuid),
                attack_family=inc.family,
                severity=inc.severity,
                started_at=started,
                status=inc.status,
                resolved_at=resolved,
                peak_pps=inc.peak_pps,
                peak_bps=inc.peak_bps,
                source_ip_count=inc.sources,
                **extra,
            )
            row = con.execute("SELECT id FROM incidents WHERE uuid = ?", [str(inc_uuid)]).fetchone()
            assert row is not None
            seeded[ws_key].incidents[inc.key] = SeededIncident(
                inc, ws_key, str(inc_uuid), int(row[0]), node.uuid, node.name, started, resolved
            )
    finally:
        store.close()
    return Seed(now, seeded)


@contextlib.contextmanager
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seed]]:
    data_dir = tmp_path_factory.mktemp("seeded") / "data"
    seed = build_seed(data_dir)
    srv = start_server(data_dir, env=SEED_ENV)
    try:
        yield srv, seed
    finally:
        srv.stop()


def seed_client(srv: Server, seed: Seed, ws_key: str) -> Client:
    return Client(srv, seed.ws(ws_key).token)
