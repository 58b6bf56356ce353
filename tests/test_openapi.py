"""The OpenAPI document: valid OpenAPI 3.1, true to the router, and true to the live server.

The evidence:

* the served document passes the OpenAPI 3.1 meta-schema, every schema in it is a valid JSON
  Schema 2020-12 and every ``$ref`` resolves;
* the documented operations are exactly the router's (so a new route fails here until it is
  documented), security is as documented, and the documented bounds, enums and defaults of every
  query parameter are the ones the server enforces;
* error answers provoked on purpose (402, 403, 409, 413, 415, 429, ...) and answers full of data
  (incidents, analytics, every channel type, telemetry) from a seeded server match the document;
* schemathesis fuzzes every operation of a live server, positive and negative inputs, and every
  answer must be documented: no 5xx, a documented status, content type, headers and body.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema_rs
import pyarrow as pa
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from api.app import create_app
from api.config import Config
from api.openapi import openapi_document
from ingest.receiver import CONTENT_TYPE as ARROW_STREAM
from store import Store
from store import incidents as incident_repo
from store import nodes as node_repo
from store import workspaces as ws_repo

from .conftest import Server, new_workspace, start_server

OPENAPI_PATH = "/api/v1/openapi.json"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

CONFORMANCE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# the coverage phase also sends undocumented methods: they must get 405 with an Allow header
FUZZ_CHECKS = [*CONFORMANCE_CHECKS, unsupported_method, allow_header_conformance]

# one token serves at most this many requests, well under the 1000 per minute limit
REQUESTS_PER_TOKEN = 700
MAX_QUERY_BYTES = 4096


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _query_parameters(doc: dict[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    item = doc["paths"][path]
    params = [*item.get("parameters", []), *item[method].get("parameters", [])]
    return [p for p in (_resolve(doc, p) for p in params) if p["in"] == "query"]


@pytest.fixture(scope="module")
def served_doc(server: Server) -> dict[str, Any]:
    resp = requests.get(server.url(OPENAPI_PATH), timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    doc: dict[str, Any] = resp.json()
    return doc


def _st_config(server: Server | None) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 20260801,
            **({"base-url": server.base_url} if server else {}),
            "request-timeout": 30,
            "generation": {
                "max-examples": 20,
                "deterministic": True,
                "database": "none",
                # the deploy token is sent by the test itself (see TokenPool)
                "with-security-parameters": False,
            },
            "checks": {"response_schema_conformance": {"validate-formats": True}},
            "operations": [
                {
                    # twelve config variants make hundreds of coverage cases; fuzzing still
                    # sends invalid bodies to this operation
                    "include-operation-id": "createChannel",
                    "phases": {"coverage": {"generation": {"mode": "positive"}}},
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    return schemathesis.openapi.from_url(server.url(OPENAPI_PATH), config=_st_config(server))


# --------------------------------------------------------------------------- (a) validity


def test_served_document_is_valid_openapi_31(served_doc: dict[str, Any], api_schema: Any) -> None:
    assert served_doc["openapi"] == "3.1.0"
    assert served_doc == openapi_document(), "the server must serve openapi_document()"
    # the OpenAPI 3.1 meta-schema, as bundled with schemathesis; raises on the first violation
    api_schema.validate()
    assert api_schema.specification.version == "3.1.0"

    for name, schema in served_doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), f"components.schemas.{name}"
        # compiling resolves every reference the schema makes
        jsonschema_rs.Draft202012Validator({**schema, "components": served_doc["components"]})

    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(served_doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        assert _resolve(served_doc, {"$ref": ref}), ref

    op_ids = [op["operationId"] for _, _, op in _operations(served_doc)]
    assert len(op_ids) == len(set(op_ids)), "operationId values must be unique"
    for path, method, operation in _operations(served_doc):
        declared = {
            _resolve(served_doc, p)["name"]
            for p in [
                *served_doc["paths"][path].get("parameters", []),
                *operation.get("parameters", []),
            ]
            if _resolve(served_doc, p)["in"] == "path"
        }
        assert declared == set(re.findall(r"{([^}]+)}", path)), (method, path)
        # every failure is documented as the one JSON error envelope (health has its own body)
        for status, answer in operation["responses"].items():
            if status.startswith(("4", "5")) and "/health" not in path:
                content = _resolve(served_doc, answer)["content"]
                assert list(content) == ["application/json"], (method, path, status)
                error = {"$ref": "#/components/schemas/Error"}
                assert error in content["application/json"]["schema"]["allOf"], (path, status)


def test_public_url_becomes_the_server() -> None:
    assert "servers" not in openapi_document()
    assert openapi_document("https://ddos.example.net")["servers"] == [
        {"url": "https://ddos.example.net"}
    ]


# --------------------------------------------------------------------------- (b) true to the code


def test_documented_operations_are_exactly_the_routes() -> None:
    app = create_app(Config())
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method, path) for path, method, _ in _operations(openapi_document())}
    assert routed - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented operations that no route serves"


def _example_path(doc: dict[str, Any], path: str, method: str) -> str:
    """``path`` with each parameter filled: an enum's first value, else a fresh UUID."""
    operation = doc["paths"][path][method]
    params = [*doc["paths"][path].get("parameters", []), *operation.get("parameters", [])]
    for param in (_resolve(doc, p) for p in params):
        if param["in"] == "path":
            value = param["schema"].get("enum", [str(uuid.uuid4())])[0]
            path = path.replace("{" + param["name"] + "}", value)
    return path


def test_security_is_as_documented(server: Server, served_doc: dict[str, Any]) -> None:
    """Without a token, operations that require one answer 401; the others do not ask. (An
    optional token, ``{}`` among the alternatives, is /metrics': not asked of this loopback
    client; tests/test_metrics_endpoint.py covers the other addresses.)"""
    optional = 0
    for path, method, operation in _operations(served_doc):
        headers = {}
        if "requestBody" in operation:
            headers["Content-Type"] = next(iter(operation["requestBody"]["content"]))
        url = server.url(_example_path(served_doc, path, method))
        resp = requests.request(method, url, headers=headers, timeout=30)
        security = operation.get("security", served_doc["security"])
        if {} in security:
            optional += 1
            assert (method, path) == ("get", "/metrics")
            assert resp.status_code == 200, (method, path, resp.status_code)
            assert {"401", "403"} <= operation["responses"].keys()
        elif security:
            assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
            assert resp.json()["error"]["code"] == "unauthorized"
            assert "X-RateLimit-Limit" not in resp.headers
            assert "401" in operation["responses"], (method, path)
        else:
            assert resp.status_code == 200, (method, path, resp.status_code)
    assert optional == 1


def test_query_parameters_are_enforced_as_documented(
    server: Server, served_doc: dict[str, Any]
) -> None:
    """Every documented bound, enum value and default of every query parameter, probed live."""
    client = new_workspace(server).client
    made = client.post(
        "/api/v1/channels",
        json={"name": "probe", "type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
    )
    assert made.status_code == 201, made.text
    # a real entity of this workspace for every path parameter of an operation with queries
    path_values = {"id": str(made.json()["channel"]["id"])}
    probed = 0
    for template, method, _ in _operations(served_doc):
        path = template
        for key, value in path_values.items():
            path = path.replace("{" + key + "}", value)
        for param in _query_parameters(served_doc, template, method):
            assert "{" not in path, f"no example value for a parameter of {template}"
            name, schema = param["name"], param["schema"]
            good: list[str] = []
            bad: list[str] = []
            if schema.get("type") == "integer":
                good = [str(schema["minimum"]), str(schema["maximum"])]
                bad = [str(schema["minimum"] - 1), str(schema["maximum"] + 1), "x"]
            elif "enum" in schema:
                good = list(schema["enum"])
                bad = ["not-a-choice"]
            elif schema.get("format") == "uuid":
                good = [str(uuid.uuid4())]
                bad = ["not-a-uuid"]
            assert good and bad, f"no probe for {method} {path} ?{name}"
            # an empty value is "not given" exactly where the document says so
            (good if param.get("allowEmptyValue") else bad).append("")
            for value in good:
                resp = client.request(method, path, params={name: value})
                assert resp.status_code == 200, (path, name, value, resp.text)
                body = resp.json()
                if name in body:
                    expected = value or str(schema.get("default"))
                    assert str(body[name]) == expected, (path, name, body[name])
            for value in bad:
                resp = client.request(method, path, params={name: value})
                assert resp.status_code == 400, (path, name, value, resp.text)
                assert resp.json()["error"] == {
                    "code": "invalid_parameter",
                    "message": resp.json()["error"]["message"],
                    "field": name,
                }, (path, name, value)
            if "default" in schema:
                body = client.request(method, path).json()
                assert body[name] == schema["default"], (path, name, body[name])
            probed += 1
    assert probed >= 10


# --------------------------------------------------------------------------- error answers


def _conforms(schema: Any, method: str, template: str, resp: requests.Response) -> dict[str, Any]:
    """``resp`` is documented for the operation: status, content type, headers and body."""
    schema[template][method.upper()].Case().validate_response(resp, checks=CONFORMANCE_CHECKS)
    body: dict[str, Any] = resp.json()
    return body


def _error_code(schema: Any, method: str, template: str, resp: requests.Response) -> str:
    body = _conforms(schema, method, template, resp)
    assert body["ok"] is False, body
    code: str = body["error"]["code"]
    return code


def test_error_answers_match_the_document(server: Server, api_schema: Any) -> None:
    """The error paths a fuzzer cannot reach by itself, each checked against the document."""
    ws = new_workspace(server)
    edge = {"name": "edge-1", "ip": "192.0.2.1"}
    assert ws.client.post("/api/v1/nodes", json=edge).status_code == 201
    created = ws.client.post("/api/v1/workspaces", json={"name": "a", "email": "noc@a.example"})
    assert created.status_code == 201, created.text
    sub_ws = _conforms(api_schema, "post", "/api/v1/workspaces", created)["workspace"]
    missing = str(uuid.uuid4())
    too_big = b" " * (1024 * 1024 + 1)
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("post", "/api/v1/nodes", {"json": {**edge, "name": "EDGE-1"}}, 409, "conflict"),
        ("post", "/api/v1/nodes", {"data": b"[1]"}, 400, "invalid_json"),
        ("post", "/api/v1/nodes", {"data": b"{"}, 400, "invalid_json"),
        ("post", "/api/v1/nodes", {"data": too_big}, 413, "payload_too_large"),
        ("patch", "/api/v1/nodes/{uuid}", {"json": {}}, 404, "not_found"),
        ("get", "/api/v1/incidents/{ref}", {}, 404, "not_found"),
        (
            "post",
            "/api/v1/workspaces",
            {"json": {"name": "b", "email": "NOC@a.example"}},
            409,
            "conflict",
        ),
    ]
    for method, template, kwargs, status, code in cases:
        path = re.sub(r"{[^}]+}", missing, template)
        resp = ws.client.request(method, path, **kwargs)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        assert _error_code(api_schema, method, template, resp) == code
        assert "X-RateLimit-Remaining" in resp.headers, "the token was checked"

    # a sub-workspace's token may not manage sub-workspaces
    sub = requests.get(
        server.url("/api/v1/workspaces"),
        headers={"Authorization": f"Bearer {sub_ws['deploy_token']}"},
        timeout=30,
    )
    assert _error_code(api_schema, "get", "/api/v1/workspaces", sub) == "forbidden"

    # the plan's node limit, then an inactive subscription
    free = new_workspace(server, "--plan", "free")
    body = {"name": "only", "ip": "198.51.100.1"}
    assert free.client.post("/api/deploy", json=body).status_code == 200
    full = free.client.post("/api/deploy", json={**body, "name": "second"})
    assert _error_code(api_schema, "post", "/api/deploy", full) == "payment_required"
    server.cli("workspace", "update", free.id, "--subscription-status", "canceled")
    for method, template, path in [
        ("post", "/api/v1/channels", "/api/v1/channels"),
        ("delete", "/api/v1/nodes/{uuid}", f"/api/v1/nodes/{uuid.uuid4()}"),
        ("post", "/api/v1/collectors", "/api/v1/collectors"),
    ]:
        resp = free.client.request(method, path, json={"name": "x"} if method == "post" else None)
        assert _error_code(api_schema, method, template, resp) == "payment_required", path
    assert free.client.get("/api/v1/nodes").status_code == 200, "reads stay allowed"

    # telemetry: media type, then the key; no rate-limit headers on that path
    url = server.url("/api/v1/telemetry/metrics")
    for headers, status, code in [
        ({"Content-Type": "application/json"}, 415, "unsupported_media_type"),
        ({"Content-Type": ARROW_STREAM, "X-Batch-Id": "not valid!"}, 400, "invalid_batch"),
        (
            {"Content-Type": ARROW_STREAM, "Authorization": "Bearer " + "0" * 64},
            401,
            "unauthorized",
        ),
        (
            {"Content-Type": ARROW_STREAM, "Authorization": f"Bearer {ws.token}"},
            401,
            "unauthorized",
        ),
    ]:
        resp = requests.post(url, data=b"\xff", headers=headers, timeout=30)
        assert resp.status_code == status, (headers, resp.text)
        assert _error_code(api_schema, "post", "/api/v1/telemetry/{kind}", resp) == code


def test_rate_limit_answers_match_the_document(tmp_path: Path, served_doc: dict[str, Any]) -> None:
    """429 for a token over its limit and for an address with too many failed logins; the
    limits are tiny here, and each probe repeats until it hits, whatever the minute boundary."""
    srv = start_server(
        tmp_path / "data",
        env={
            "FLOODWATCH_API__RATE_LIMIT_PER_MINUTE": "3",
            "FLOODWATCH_API__AUTH_FAILURES_PER_MINUTE": "2",
        },
    )
    try:
        schema = schemathesis.openapi.from_url(srv.url(OPENAPI_PATH), config=_st_config(srv))
        ws = new_workspace(srv)
        limit = {"X-RateLimit-Limit": "3"}
        for _ in range(10):
            resp = ws.client.get("/api/v1/status")
            if resp.status_code == 200:
                _conforms(schema, "get", "/api/v1/status", resp)
                assert limit.items() <= resp.headers.items()
            else:
                break
        assert _error_code(schema, "get", "/api/v1/status", resp) == "rate_limited"
        assert int(resp.headers["Retry-After"]) >= 1
        assert (
            limit.items() <= resp.headers.items() and resp.headers["X-RateLimit-Remaining"] == "0"
        )

        wrong = {"Authorization": "Bearer " + "f" * 64}
        for _ in range(10):
            resp = requests.get(srv.url("/api/v1/nodes"), headers=wrong, timeout=30)
            if resp.status_code != 401:
                break
            assert _error_code(schema, "get", "/api/v1/nodes", resp) == "unauthorized"
        assert _error_code(schema, "get", "/api/v1/nodes", resp) == "rate_limited"
        assert int(resp.headers["Retry-After"]) >= 1
        assert "X-RateLimit-Limit" not in resp.headers
    finally:
        srv.stop()


# --------------------------------------------------------------------------- answers full of data

# One valid config per channel type, with every optional setting, as an operator would send it.
CHANNEL_CONFIGS: dict[str, dict[str, Any]] = {
    "discord": {
        "webhook_url": "https://discord.example.com/api/webhooks/1/abcdef",
        "username": "floodwatch",
        "avatar_url": "https://cdn.example.com/a.png",
        "mention_everyone": True,
    },
    "slack": {
        "webhook_url": "https://hooks.slack.example/services/T0/B0/xyzw",
        "username": "floodwatch",
        "icon": ":rotating_light:",
        "channel": "#noc",
        "mention_everyone": False,
    },
    "email": {"email": "noc@example.com", "name": "NOC"},
    "sms": {"phone": "+15551234567"},
    "pagerduty": {"routing_key": "R0UTINGKEY1234567890", "severity_map": "default"},
    "opsgenie": {"api_key": "0123456789abcdef", "region": "eu", "responders": "noc-team"},
    "webhook": {
        "url": "https://hooks.example.net/floodwatch",
        "secret": "s3cr3t-signing-key",
        "headers": {"X-Tenant": "acme"},
    },
    "teams": {"webhook_url": "https://example.webhook.office.com/webhookb2/abc/def"},
    "telegram": {"bot_token": "123456789:AAbbCCddEEffGGhhIIjjKKll", "chat_id": -1001234567},
    "grafana": {"url": "http://grafana.internal:3000/api/alerts", "api_key": "glsa_abcdef123456"},
    "datadog": {"api_key": "dd0123456789abcdef", "site": "datadoghq.eu"},
    "prometheus": {
        "url": "http://alertmanager.internal:9093",
        "username": "fw",
        "password": "hunter2hunter2",
    },
}


def _seed(data_dir: Path) -> tuple[str, str]:
    """A workspace with nodes in every state, incidents of every status and a sub-workspace.

    Returns (deploy token, sub-workspace uuid). Written with the store's functions before any
    server opens the database, because only agents create incidents."""
    data_dir.mkdir(parents=True)
    store = Store(data_dir / Config().store.database_file)
    store.open()
    try:
        con = store.con
        ws, token = ws_repo.create_workspace(con, "seeded", "business")
        sub, _ = ws_repo.create_workspace(
            con, "customer-a", "starter", parent_uuid=ws["uuid"], email="ops@customer-a.example"
        )
        now = datetime.now(UTC)
        nodes = []
        for i, (name, ip) in enumerate(
            [("edge-1", "198.51.100.7"), ("edge-2", "2001:db8::7"), ("edge-3", "203.0.113.9")]
        ):
            node, _ = node_repo.create_node(
                con, ws, node_repo.validate_node_fields({"name": name, "ip": ip, "location": "fra"})
            )
            nodes.append(node["uuid"])
            con.execute(
                "UPDATE nodes SET last_seen = ?, last_pps = ?, last_bps = ?, agent_version = ?, "
                "elevated = ?, service_ports = ? WHERE uuid = ?",
                [
                    now,
                    1000.0 * (i + 1),
                    8e6 * (i + 1),
                    "1.4.2",
                    i == 2,
                    '[{"protocol": "udp", "port_value": "27015-27017", "label": "game"}]',
                    str(node["uuid"]),
                ],
            )
        sub_node, _ = node_repo.create_node(
            con, sub, node_repo.validate_node_fields({"name": "cust-1", "ip": "192.0.2.1"})
        )
        del sub_node
        incident_repo.insert_incident(
            con,
            ws["uuid"],
            nodes[0],
            attack_family="udp_flood",
            severity="critical",
            started_at=now - timedelta(minutes=5),
            peak_pps=480_000.0,
            peak_bps=3.9e9,
            source_ip_count=812,
            title="UDP flood on edge-1",
            confidence=93,
        )
        incident_repo.insert_incident(
            con,
            ws["uuid"],
            nodes[1],
            attack_family="dns_amplification",
            attack_subtype="ANY",
            severity="high",
            status="resolved",
            started_at=now - timedelta(days=2, minutes=30),
            resolved_at=now - timedelta(days=2),
            peak_pps=90_000.0,
            peak_bps=4.6e8,
            source_ip_count=40,
            confidence=71,
            protocol_breakdown={"udp": 97.5, "tcp": 2.5},
            geo_origin=[{"country": "NL", "pct": 60}],
            top_sources=[{"ip": "192.0.2.50", "pps": 1200}],
            top_dst_ports=[{"port": 53, "count": 9000}],
            summary="Reflected DNS ANY answers from 40 resolvers.",
            detail={"spoofing_detected": True},
        )
        incident_repo.insert_incident(
            con,
            ws["uuid"],
            nodes[1],
            attack_family="tcp_syn",
            severity="low",
            status="false_positive",
            started_at=now - timedelta(days=20),
            resolved_at=now - timedelta(days=20) + timedelta(seconds=30),
        )
    finally:
        store.close()
    return token, str(sub["uuid"])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    data_dir = tmp_path_factory.mktemp("openapi-seeded") / "data"
    token, sub_uuid = _seed(data_dir)
    srv = start_server(data_dir, env={"FLOODWATCH_API__OFFLINE_AFTER_SECS": "86400"})
    try:
        yield srv, token, sub_uuid
    finally:
        srv.stop()


def test_answers_full_of_data_match_the_document(seeded: tuple[Server, str, str]) -> None:
    srv, token, sub_uuid = seeded
    schema = schemathesis.openapi.from_url(srv.url(OPENAPI_PATH), config=_st_config(srv))
    doc = openapi_document()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def call(method: str, template: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = session.request(method, srv.url(path), timeout=30, **kw)
        operation = schema[template][method.upper()]
        operation.Case().validate_response(resp, checks=CONFORMANCE_CHECKS)
        body: dict[str, Any] = resp.json()
        return body

    incidents = call("GET", "/api/v1/incidents", "/api/v1/incidents")["incidents"]
    assert {i["status"] for i in incidents} == set(incident_repo.INCIDENT_STATUSES)
    for incident in incidents:
        for ref in (incident["id"], incident["uuid"]):
            detail = call("GET", "/api/v1/incidents/{ref}", f"/api/v1/incidents/{ref}")
            assert detail["incident"]["uuid"] == incident["uuid"]
    nodes = call("GET", "/api/v1/nodes", "/api/v1/nodes")["nodes"]
    assert {n["status"] for n in nodes} == {"attack", "online", "elevated"}
    for node in nodes:
        call("GET", "/api/v1/nodes/{uuid}", f"/api/v1/nodes/{node['uuid']}")
    for range_key in ("7d", "365d"):
        summary = call(
            "GET",
            "/api/v1/analytics/summary",
            "/api/v1/analytics/summary",
            params={"range": range_key},
        )
        assert summary["incidents"]["total"] >= 2 and summary["top_nodes"]
    assert summary["mttr_seconds"] is not None
    status = call("GET", "/api/v1/status", "/api/v1/status")
    assert status["status"] == "under_attack"
    call("GET", "/api/v1/workspace", "/api/v1/workspace")
    assert call("GET", "/api/v1/workspaces", "/api/v1/workspaces")["total"] == 1
    sub = call("GET", "/api/v1/workspaces/{uuid}", f"/api/v1/workspaces/{sub_uuid}")
    assert sub["workspace"]["nodes_total"] == 1

    # every channel type: the documented request schema accepts the config, the server too
    request_schema = {
        **doc["components"]["schemas"]["ChannelCreate"],
        "components": doc["components"],
    }
    validator = jsonschema_rs.Draft202012Validator(request_schema)
    for kind, config in CHANNEL_CONFIGS.items():
        body = {"name": f"{kind} alerts", "type": kind, "config": config}
        assert validator.is_valid(body), list(validator.iter_errors(body))
        created = call("POST", "/api/v1/channels", "/api/v1/channels", json=body)
        channel = created["channel"]
        assert channel["type"] == kind
        call("GET", "/api/v1/channels/{id}", f"/api/v1/channels/{channel['id']}")
        call("GET", "/api/v1/channels/{id}", f"/api/v1/channels/{channel['uuid']}")
    listed = call("GET", "/api/v1/channels", "/api/v1/channels")
    assert {c["type"] for c in listed["channels"]} == set(CHANNEL_CONFIGS)
    assert set(CHANNEL_CONFIGS) == set(
        doc["components"]["schemas"]["Channel"]["properties"]["type"]["enum"]
    )

    # telemetry with a node key and with a collector key; collector keys listed and revoked
    deployed = call(
        "POST", "/api/deploy", "/api/deploy", json={"name": "edge-9", "ip": "198.51.100.99"}
    )
    collector = call("POST", "/api/v1/collectors", "/api/v1/collectors", json={"name": "router-1"})[
        "collector"
    ]
    now = datetime.now(UTC)
    metrics = pa.table(
        {
            "time": pa.array([now - timedelta(seconds=2), now], pa.timestamp("us", tz="UTC")),
            "pps": [1200.0, 1500.0],
            "bps": [9.6e6, 1.2e7],
            "brand_new_column": [1, 2],
        }
    )
    flows = pa.table(
        {
            "time": pa.array([now], pa.timestamp("us", tz="UTC")),
            "node": [deployed["node_uuid"]],
            "src_ip": ["192.0.2.50"],
            "dst_ip": ["198.51.100.99"],
            "protocol": pa.array([17], pa.int16()),
            "packets": [1],
            "bytes": [512],
        }
    )
    sent = [
        ("metrics", deployed["api_key"], metrics, "batch-1"),
        ("metrics", deployed["api_key"], metrics, "batch-1"),  # re-sent: stored once
        ("flows", collector["key"], flows, None),
    ]
    answers = []
    for kind, key, table, batch_id in sent:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": ARROW_STREAM}
        if batch_id:
            headers["X-Batch-Id"] = batch_id
        resp = requests.post(
            srv.url(f"/api/v1/telemetry/{kind}"),
            data=sink.getvalue().to_pybytes(),
            headers=headers,
            timeout=30,
        )
        schema["/api/v1/telemetry/{kind}"]["POST"].Case().validate_response(
            resp, checks=CONFORMANCE_CHECKS
        )
        assert resp.status_code == 202, resp.text
        answers.append(resp.json())
    assert answers[0]["accepted"] == 2 and answers[0]["ignored_columns"] == ["brand_new_column"]
    assert answers[1]["duplicate"] is True and answers[1]["accepted"] == 0
    assert answers[2]["batch_id"] is None and answers[2]["accepted"] == 1

    revoked = call("DELETE", "/api/v1/collectors/{id}", f"/api/v1/collectors/{collector['id']}")
    assert revoked["collector"]["revoked_at"] is not None
    assert call("GET", "/api/v1/collectors", "/api/v1/collectors")["total"] == 1
    call("DELETE", "/api/v1/nodes/{uuid}", f"/api/v1/nodes/{deployed['node_uuid']}")

    resp = requests.get(srv.url("/metrics"), timeout=30)
    schema["/metrics"]["GET"].Case().validate_response(resp, checks=CONFORMANCE_CHECKS)
    assert resp.status_code == 200
    # through a proxy, with no server.metrics_token configured: the documented refusal
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    resp = requests.get(srv.url("/metrics"), headers=proxied, timeout=30)
    schema["/metrics"]["GET"].Case().validate_response(resp, checks=CONFORMANCE_CHECKS)
    assert resp.status_code == 403


# --------------------------------------------------------------------------- (c) fuzzing


class TokenPool:
    """Credentials for the fuzzer. A workspace's token (and its collector key, for operations
    that take an ingest key) serves REQUESTS_PER_TOKEN requests, then a fresh workspace takes
    over, so the per-token rate limit is never what the fuzzer sees."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._used = REQUESTS_PER_TOKEN
        self._token = ""
        self._collector_key = ""

    def header(self, operation: Any) -> dict[str, str]:
        security = operation.definition.raw.get("security", [{"deployToken": []}])
        if not security or {} in security:  # none, or optional (/metrics, for loopback)
            return {}
        if self._used >= REQUESTS_PER_TOKEN:
            ws = new_workspace(self.server)
            resp = ws.client.post("/api/v1/collectors", json={"name": "fuzzer"})
            assert resp.status_code == 201, resp.text
            self._token, self._collector_key = ws.token, resp.json()["collector"]["key"]
            self._used = 1  # the collector key's creation
        self._used += 1
        key = self._token if "deployToken" in security[0] else self._collector_key
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def token_pool(server: Server) -> TokenPool:
    return TokenPool(server)


# Built from openapi_document() at import, since the server's port is known only at run time;
# test_served_document_is_valid_openapi_31 checks that the server serves exactly this document.
# (schemathesis.pytest.from_fixture would load it from the server, but schemathesis 4.32.5's
# lazy loader sets ``request.node._nodeid``, which pytest 9 no longer has.)
fuzzed = schemathesis.openapi.from_dict(openapi_document(), config=_st_config(None))
# telemetry bodies are opaque bytes to the fuzzer (random bytes are a malformed batch: 400)
schemathesis.serializer.alias(ARROW_STREAM, "application/octet-stream")


@fuzzed.hook
def filter_query(context: Any, query: dict[str, Any] | None) -> bool:
    """Keep request lines under aiohttp's 8190-byte limit: longer ones never reach the
    application (the HTTP layer answers a plain-text 400, as the document's description says)."""
    return len(urlencode(query or {}, doseq=True)) <= MAX_QUERY_BYTES


@fuzzed.parametrize()
def test_live_server_conforms_to_the_document(
    case: Any, server: Server, token_pool: TokenPool
) -> None:
    headers = token_pool.header(case.operation)
    response = case.call(base_url=server.base_url, headers=headers)
    case.validate_response(
        response,
        checks=FUZZ_CHECKS,
        headers=headers,
        transport_kwargs={"base_url": server.base_url, "headers": headers},
    )


def test_an_agent_incident_conforms_with_its_forensic_fields(
    server: Server, api_schema: Any
) -> None:
    """Get Incident of an incident an ftagent reported (open, update, resolve; host and L7)
    matches the document, the top-level forensic fields included."""
    from .test_agent_api import OPEN, RESOLVE, SPARSE_UPDATE, _setup

    client, agent = _setup(server)
    host = agent.post("/incidents", OPEN).json()["uuid"]
    assert agent.post(f"/incidents/{host}", SPARSE_UPDATE).status_code == 200
    assert agent.post(f"/incidents/{host}/resolve", RESOLVE).status_code == 200
    l7 = str(uuid.uuid4())
    l7_resolve = {
        "duration_seconds": 30,
        "peak_rps": 2400,
        "attack_family": "http_flood",
        "top_dst_ports": {"/login": 900},
        "velocity_curve": [{"t": 0, "rps": 1200}],
        "l7_status_codes": {"2xx": 100, "4xx": 900},
    }
    assert agent.post(f"/incidents/{l7}/resolve", l7_resolve).status_code == 200
    for ref, field in ((host, "tcp_flag_breakdown"), (l7, "l7_status_codes")):
        resp = client.get(f"/api/v1/incidents/{ref}")
        body = _conforms(api_schema, "get", "/api/v1/incidents/{ref}", resp)
        assert field in body["incident"], (ref, field)
