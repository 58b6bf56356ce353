"""Property tests of the Agent API: whatever an agent (or anyone holding a node key) sends, the
server answers 2xx or a clean 4xx in the JSON envelope, never a 5xx, and the parsers and stores
behind it accept every JSON object an agent could send.

The keys are the fields ftagent sends (docs/agent-api.md §6, §7, §8 and §10), so the values land
where the code looks; the values are arbitrary JSON: ints for floats and the other way round,
strings, nulls, lists, objects."""

from __future__ import annotations

import http.client
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.activity import heartbeat_status
from api.agentapi import incident_repo as incidents
from api.agentapi import overrides
from api.agentapi import report_repo as reports
from api.agentapi.defaults import AgentTraits, config_body
from api.agentapi.hotpath import metrics_row
from api.agentapi.models import REPORT_FIELDS, REPORT_MODELS
from api.errors import ApiError
from api.models import validate
from store import Store
from store.errors import InvalidValue

from .conftest import Server
from .properties_support import assert_envelope, json_values, tricky_text
from .test_agent_api import HOST_HEARTBEAT, OPEN, Agent, _ok, _setup

LIVE = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
UNIT = settings(max_examples=150, deadline=None, derandomize=True, database=None)

# the fields the agent sends, by endpoint
INCIDENT_KEYS = [
    "attack_family",
    "attack_subtype",
    "started_at",
    "peak_pps",
    "peak_bps",
    "pps",
    "bps",
    "rps",
    "inner_ip",
    "mirror_mode",
    "protocol_breakdown",
    "tcp_flags",
    "top_src_ips",
    "top_dst_ports",
    "ttl_distribution",
    "pkt_len_distribution",
    "velocity_curve",
    "duration_seconds",
    "analysis",
    "dns_query_stats",
    "status_codes",
    "threshold",
    "baseline_pps",
]
METRICS_KEYS = ["pps", "bps", "tcp_pct", "udp_pct", "icmp_pct", "conn_count", "avg_pps", "samples"]
HEARTBEAT_KEYS = [*HOST_HEARTBEAT, "update_error", "current_version", "mirror_mode"]
REPORT_KEYS = [
    "tunnels",
    "vms",
    "ports",
    "blocks",
    "ips",
    "server",
    "log_path",
    "requests",
    "rps",
    "error_rate",
    "top_paths",
    "top_user_agents",
    "timestamp",
]
ACK_KEYS = ["command_id", "status", "error"]


def objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(keys), tricky_text), json_values, max_size=8)


def raw_bodies(keys: list[str]) -> st.SearchStrategy[bytes]:
    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")

    return st.one_of(
        st.binary(max_size=200),
        json_values.map(dumps),
        objects(keys).map(dumps),
    )


# --- units: the parsers and stores accept any JSON object ---------------------------------------


@UNIT
@given(body=objects(METRICS_KEYS))
@example(body={"pps": 1e308, "bps": 1e308, "tcp_pct": 1e308})
@example(body={"pps": -1, "bps": 0})
@example(body={"pps": True, "bps": 1})
def test_metrics_row_is_a_row_or_a_400(body: dict[str, Any]) -> None:
    try:
        row = metrics_row(body, str(uuid.uuid4()), datetime.now(UTC))
    except ApiError as err:
        assert err.status == 400 and err.field in ("pps", "bps")
        return
    for key in ("pps", "bps", "tcp_pps", "udp_pps", "icmp_pps"):
        value = row[key]
        assert value is None or (isinstance(value, float) and 0 <= value < float("inf")), row
    assert row["conn_count"] is None or 0 <= row["conn_count"] <= 2**62


@UNIT
@given(body=st.dictionaries(tricky_text, json_values, max_size=8) | objects(HEARTBEAT_KEYS))
def test_heartbeat_status_and_traits_never_fail(body: dict[str, Any]) -> None:
    text = heartbeat_status(body)
    stored = json.loads(text)
    assert isinstance(stored, dict) and len(text.encode()) <= 16 * 1024 + 64
    traits = AgentTraits.of(body)
    cfg = config_body({"service_ports": body.get("ports")}, traits)
    assert isinstance(cfg["flow"], dict) and cfg["flow"]["enabled"] is traits.flow


@UNIT
@given(kind=st.sampled_from(reports.REPORT_KINDS), body=objects(REPORT_KEYS))
def test_report_validation_raises_only_invalid_parameter(kind: str, body: dict[str, Any]) -> None:
    try:
        validate(REPORT_MODELS[kind], body)
    except ApiError as err:
        assert (err.status, err.code) == (400, "invalid_parameter")
        assert err.field in REPORT_FIELDS[kind]


@UNIT
@given(
    patch=st.dictionaries(
        st.one_of(st.sampled_from(sorted(overrides.SETTINGS)), tricky_text),
        json_values,
        max_size=4,
    )
)
def test_override_checks_raise_only_invalid_value(patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        setting = overrides.SETTINGS.get(key)
        if setting is None or value is None:
            continue
        try:
            setting.check(key, value)
        except InvalidValue as err:
            assert err.field == key or (err.field or "").startswith(key)
    # the PATCH's check, through the model: a 400 naming a key sent, or the values to store
    try:
        checked = overrides.check_patch(patch)
    except ApiError as err:
        assert (err.status, err.code) == (400, "invalid_parameter")
        assert any(err.field == key or (err.field or "").startswith(f"{key}.") for key in patch)
    else:
        assert checked.keys() == patch.keys()


@pytest.fixture(scope="module")
def incident_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = Store(Path(tmp_path_factory.mktemp("incprops")) / "p.duckdb")
    store.open()
    yield store
    store.close()


@UNIT
@given(
    opened=objects(INCIDENT_KEYS),
    update=objects(INCIDENT_KEYS),
    resolved=objects(INCIDENT_KEYS),
)
@example(opened={"started_at": "not a time"}, update={"top_dst_ports": {"/": 3}}, resolved={})
@example(
    opened={"peak_pps": 1e308, "rps": -5}, update={"velocity_curve": [{"rps": 1}]}, resolved={}
)
def test_incident_calls_accept_any_object(
    incident_store: Store,
    opened: dict[str, Any],
    update: dict[str, Any],
    resolved: dict[str, Any],
) -> None:
    con = incident_store.con
    ws, node = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    inc, merged = incidents.open_incident(con, ws, node, opened, now)
    assert merged is False
    again, merged = incidents.open_incident(con, ws, node, opened, now)
    assert (again, merged) == (inc, True)  # a replayed open is merged
    incidents.report_incident(con, ws, node, str(inc), "update", update, now)
    unknown = str(uuid.uuid4())
    made, created = incidents.report_incident(con, ws, node, unknown, "resolve", resolved, now)
    assert created is True and made != inc
    done, created = incidents.report_incident(con, ws, node, str(inc), "resolve", resolved, now)
    assert (done, created) == (inc, False)
    row = con.execute(
        "SELECT status, severity FROM incidents WHERE uuid = ?", [str(inc)]
    ).fetchone()
    assert row is not None and row[0] == "resolved"
    assert row[1] in ("low", "medium", "high", "critical")


# --- the live server ------------------------------------------------------------------------------

ENDPOINTS: list[tuple[str, list[str]]] = [
    ("/heartbeat", HEARTBEAT_KEYS),
    ("/metrics", METRICS_KEYS),
    ("/incidents", INCIDENT_KEYS),
    ("/incidents/{inc}", INCIDENT_KEYS),
    ("/incidents/{inc}/resolve", INCIDENT_KEYS),
    ("/commands/ack", ACK_KEYS),
    ("/gre-tunnels", REPORT_KEYS),
    ("/vm-stats", REPORT_KEYS),
    ("/sp/metrics", REPORT_KEYS),
    ("/sp/blocks", REPORT_KEYS),
    ("/l7/detect", REPORT_KEYS),
    ("/l7/metrics", REPORT_KEYS),
    ("/mirror-metrics", REPORT_KEYS),
]


def _post(server: Server, agent: Agent, path: str, body: bytes) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/api/v1/agent" + path,
            body=body,
            headers={
                "Authorization": f"Bearer {agent.node['api_key']}",
                "X-Node-UUID": agent.node["uuid"],
                "Content-Type": "application/json",
            },
        )
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(("path", "keys"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
def test_agent_endpoints_never_5xx(server: Server, path: str, keys: list[str]) -> None:
    client, agent = _setup(server)
    inc = _ok(agent.post("/incidents", OPEN))["uuid"]
    target = path.replace("{inc}", inc)

    @LIVE
    @given(body=raw_bodies(keys))
    @example(body=b"")
    @example(body=b"null")
    @example(body=b"[1, 2]")
    @example(body=b'{"pps": "1e400", "bps": null}')
    def prop(body: bytes) -> None:
        status, ctype, raw = _post(server, agent, target, body)
        assert status in (200, 400, 413), (target, status, raw[:300])
        answer = assert_envelope(status, ctype, raw, f"POST {target} {body!r:.200}")
        assert isinstance(answer, dict)

    prop()
    # the node is still served, and its incident still reads
    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))
    got = client.get(f"/api/v1/incidents/{inc}")
    assert got.status_code == 200, got.text
