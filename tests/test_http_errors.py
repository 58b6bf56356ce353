"""Transport-level errors: unknown paths, wrong methods, oversized bodies; the JSON envelope of
every error; the X-RateLimit-* headers on authenticated answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .conftest import Server, Workspace, new_workspace
from .helpers_seed import assert_envelope

MAX_BODY = 1_048_576  # api.max_body_bytes default (1 MiB)


@pytest.fixture(scope="module")
def shared_ws(server: Server) -> Workspace:
    """A workspace with exactly one node, named "edge-1"; tests only read it or get refused."""
    w = new_workspace(server)
    r = w.client.post("/api/v1/nodes", json={"name": "edge-1", "ip": "192.0.2.1"})
    assert r.status_code == 201, r.text
    return w


def node_uuid(w: Workspace) -> str:
    nodes = w.client.get("/api/v1/nodes").json()["nodes"]
    assert len(nodes) == 1
    value: str = nodes[0]["uuid"]
    return value


# --- 404 / 405 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/api"),
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v2/nodes"),
        ("POST", "/api/v1/node"),
        ("GET", "/api/v1/nodes/x/y"),
        ("DELETE", "/api/v1/no-such-resource/1"),
        ("GET", "/api/deploy/extra"),
        ("GET", "/.env"),
    ],
)
@pytest.mark.parametrize("authenticated", [False, True], ids=["anon", "token"])
def test_unknown_path_is_404_envelope(
    server: Server, shared_ws: Workspace, method: str, path: str, authenticated: bool
) -> None:
    headers = {"Authorization": f"Bearer {shared_ws.token}"} if authenticated else {}
    r = requests.request(method, server.url(path), headers=headers, timeout=30)
    assert_envelope(r, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/nodes", {"GET", "POST"}),
        ("DELETE", "/api/v1/nodes", {"GET", "POST"}),
        ("PATCH", "/api/v1/nodes", {"GET", "POST"}),
        ("GET", "/api/deploy", {"POST"}),
        ("PUT", "/api/deploy", {"POST"}),
        ("POST", "/api/v1/workspace", {"GET"}),
        ("DELETE", "/api/v1/workspace", {"GET"}),
        ("PUT", "/api/v1/nodes/00000000-0000-0000-0000-000000000000", {"GET", "PATCH", "DELETE"}),
        ("POST", "/api/v1/nodes/00000000-0000-0000-0000-000000000000", {"GET", "PATCH", "DELETE"}),
        ("DELETE", "/api/v1/incidents", {"GET"}),
        ("POST", "/api/v1/incidents", {"GET"}),
        ("DELETE", "/api/v1/incidents/1", {"GET"}),
        ("PUT", "/api/v1/channels", {"GET", "POST"}),
        ("PUT", "/api/v1/channels/1", {"GET", "PATCH", "DELETE"}),
        ("PATCH", "/api/v1/workspaces/00000000-0000-0000-0000-000000000000", {"GET", "DELETE"}),
        ("POST", "/api/v1/analytics/summary", {"GET"}),
        ("POST", "/api/v1/status", {"GET"}),
        ("POST", "/api/health", {"GET"}),
    ],
)
def test_wrong_method_is_405_envelope(
    server: Server, shared_ws: Workspace, method: str, path: str, allowed: set[str]
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {shared_ws.token}"}):
        r = requests.request(method, server.url(path), headers=headers, json={}, timeout=30)
        assert_envelope(r, 405, "method_not_allowed")
        allow = {m.strip() for m in r.headers["Allow"].split(",")} - {"HEAD"}
        assert allow == allowed, r.headers["Allow"]


# --- 413 ---------------------------------------------------------------------------------------


def _padded(obj: bytes, size: int) -> bytes:
    """``obj`` (a JSON object) padded with whitespace to exactly ``size`` bytes."""
    assert obj.endswith(b"}")
    return obj[:-1] + b" " * (size - len(obj)) + b"}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/deploy"),
        ("POST", "/api/v1/nodes"),
        ("PATCH", "/api/v1/nodes/{node}"),
        ("POST", "/api/v1/channels"),
        ("POST", "/api/v1/workspaces"),
    ],
)
def test_body_over_the_cap_is_413(shared_ws: Workspace, method: str, path: str) -> None:
    url = path.format(node=node_uuid(shared_ws))
    body = _padded(b'{"name": "big", "ip": "192.0.2.9"}', MAX_BODY + 1)
    r = shared_ws.client.request(
        method, url, data=body, headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 413, "payload_too_large")
    # nothing was created or changed
    nodes = shared_ws.client.get("/api/v1/nodes").json()["nodes"]
    assert [n["name"] for n in nodes] == ["edge-1"]
    assert shared_ws.client.get("/api/v1/workspaces").json()["total"] == 0
    assert shared_ws.client.get("/api/v1/channels").json()["total"] == 0


def test_chunked_body_over_the_cap_is_413(shared_ws: Workspace) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "ip": "192.0.2.9", "os": "'
        for _ in range(MAX_BODY // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    r = shared_ws.client.post(
        "/api/v1/nodes", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 413, "payload_too_large")
    assert shared_ws.client.get("/api/v1/nodes").json()["total"] == 1


def test_body_of_exactly_the_cap_is_accepted(ws: Workspace) -> None:
    body = _padded(b'{"name": "exactly-1mib", "ip": "192.0.2.9"}', MAX_BODY)
    assert len(body) == MAX_BODY
    r = ws.client.post("/api/v1/nodes", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["node"]["name"] == "exactly-1mib"


# --- the envelope of every error ---------------------------------------------------------------


def _cases(w: Workspace) -> list[tuple[str, str, dict[str, Any], int, str]]:
    nid = node_uuid(w)
    zero = "00000000-0000-0000-0000-000000000000"
    auth = {"Authorization": f"Bearer {w.token}"}
    bad = {"Authorization": "Bearer " + "0" * 64}
    return [
        ("GET", "/api/v1/nodes", {}, 401, "unauthorized"),
        ("GET", "/api/v1/nodes", {"headers": bad}, 401, "unauthorized"),
        ("POST", "/api/deploy", {"headers": bad, "json": {}}, 401, "unauthorized"),
        ("GET", "/api/v1/nodes?limit=0", {"headers": auth}, 400, "invalid_parameter"),
        ("GET", "/api/v1/incidents?severity=x", {"headers": auth}, 400, "invalid_parameter"),
        ("GET", "/api/v1/analytics/summary?range=1y", {"headers": auth}, 400, "invalid_parameter"),
        (
            "POST",
            "/api/deploy",
            {"headers": auth, "json": {"ip": "1.2.3.4"}},
            400,
            "invalid_parameter",
        ),
        ("POST", "/api/deploy", {"headers": auth, "data": b"{"}, 400, "invalid_json"),
        ("POST", "/api/v1/channels", {"headers": auth, "json": []}, 400, "invalid_json"),
        (
            "PATCH",
            f"/api/v1/nodes/{nid}",
            {"headers": auth, "json": {"uuid": "x"}},
            400,
            "invalid_parameter",
        ),
        ("GET", f"/api/v1/nodes/{zero}", {"headers": auth}, 404, "not_found"),
        ("DELETE", f"/api/v1/nodes/{zero}", {"headers": auth}, 404, "not_found"),
        ("GET", f"/api/v1/incidents/{zero}", {"headers": auth}, 404, "not_found"),
        ("GET", "/api/v1/channels/123456789", {"headers": auth}, 404, "not_found"),
        ("GET", f"/api/v1/workspaces/{zero}", {"headers": auth}, 404, "not_found"),
        (
            "POST",
            "/api/deploy",
            {"headers": auth, "json": {"name": "edge-1", "ip": "1.2.3.4"}},
            409,
            "conflict",
        ),
        ("GET", "/missing", {}, 404, "not_found"),
        ("PUT", "/api/v1/nodes", {"headers": auth}, 405, "method_not_allowed"),
    ]


def test_every_error_is_a_json_envelope(server: Server, shared_ws: Workspace) -> None:
    for method, path, kw, status, code in _cases(shared_ws):
        r = requests.request(method, server.url(path), timeout=30, **kw)
        try:
            assert_envelope(r, status, code)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from None


# --- rate-limit headers ------------------------------------------------------------------------


def _rate(resp: requests.Response) -> tuple[int, int, int]:
    for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert h in resp.headers, (resp.request.method, resp.url, resp.status_code, h)
        assert resp.headers[h].isdigit(), (h, resp.headers[h])
    limit = int(resp.headers["X-RateLimit-Limit"])
    remaining = int(resp.headers["X-RateLimit-Remaining"])
    reset = int(resp.headers["X-RateLimit-Reset"])
    assert limit == 1000  # api.rate_limit_per_minute default
    assert 0 <= remaining < limit
    assert reset > 1_600_000_000  # a Unix timestamp, not a number of seconds
    return limit, remaining, reset


def test_rate_limit_headers_on_authenticated_answers(shared_ws: Workspace) -> None:
    c = shared_ws.client
    nid = node_uuid(shared_ws)
    zero = "00000000-0000-0000-0000-000000000000"
    answers = [
        c.get("/api/v1/nodes"),
        c.get(f"/api/v1/nodes/{nid}"),
        c.get("/api/v1/incidents"),
        c.get("/api/v1/channels"),
        c.get("/api/v1/workspace"),
        c.get("/api/v1/workspaces"),
        c.get("/api/v1/analytics/summary"),
        c.get("/api/v1/status"),
        c.patch(f"/api/v1/nodes/{nid}", json={}),
        # errors raised after authentication carry them as well
        c.get(f"/api/v1/nodes/{zero}"),
        c.get("/api/v1/nodes?limit=0"),
        c.post("/api/deploy", json={"name": "edge-1", "ip": "192.0.2.1"}),
        c.post("/api/v1/nodes", data=b"{", headers={"Content-Type": "application/json"}),
    ]
    for r in answers:
        assert r.status_code in (200, 400, 404, 409), r.text
        _rate(r)


def test_rate_limit_remaining_counts_down(shared_ws: Workspace) -> None:
    first = _rate(shared_ws.client.get("/api/v1/workspace"))
    second = _rate(shared_ws.client.get("/api/v1/workspace"))
    if first[2] == second[2]:  # same window: exactly one request was counted in between
        assert second[1] == first[1] - 1
    else:  # a new window started in between
        assert second[2] > first[2]


def test_health_and_unauthenticated_errors_need_no_token(server: Server) -> None:
    r = requests.get(server.url("/api/health"), timeout=30)
    assert r.status_code == 200 and r.json()["ok"] is True
    assert_envelope(requests.get(server.url("/api/v1/nodes"), timeout=30), 401, "unauthorized")


def test_rate_limit_headers_on_403_413_and_not_on_health(server: Server, ws: Workspace) -> None:
    sub = ws.client.post("/api/v1/workspaces", json={"name": "sub"})
    assert sub.status_code == 201, sub.text
    _rate(sub)
    sub_token = sub.json()["workspace"]["deploy_token"]
    forbidden = requests.get(
        server.url("/api/v1/workspaces"),
        headers={"Authorization": f"Bearer {sub_token}"},
        timeout=30,
    )
    assert_envelope(forbidden, 403, "forbidden")
    _rate(forbidden)
    too_big = ws.client.post(
        "/api/v1/nodes",
        data=_padded(b'{"name": "x", "ip": "192.0.2.1"}', MAX_BODY + 1),
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(too_big, 413, "payload_too_large")
    _rate(too_big)
    health = requests.get(server.url("/api/health"), timeout=30)
    assert not [h for h in health.headers if h.lower().startswith("x-ratelimit")]


def test_body_is_not_read_before_authentication(server: Server) -> None:
    big = _padded(b'{"name": "x", "ip": "192.0.2.1"}', MAX_BODY + 1)
    for headers in ({}, {"Authorization": "Bearer " + "0" * 64}):
        r = requests.post(server.url("/api/deploy"), data=big, headers=headers, timeout=30)
        assert_envelope(r, 401, "unauthorized")


# --- 429 ---------------------------------------------------------------------------------------


@pytest.fixture
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own with tiny limits: 5 requests per token, 3 failed logins per minute."""
    from .conftest import start_server

    srv = start_server(
        tmp_path_factory.mktemp("strict") / "data",
        env={
            "FLOODWATCH_API__RATE_LIMIT_PER_MINUTE": "5",
            "FLOODWATCH_API__AUTH_FAILURES_PER_MINUTE": "3",
        },
    )
    yield srv
    srv.stop()


def test_rate_limits_answer_429(strict_server: Server) -> None:
    a = new_workspace(strict_server)
    b = new_workspace(strict_server)

    # per token: within at most three windows' worth of requests, one must be refused
    refused = None
    for _ in range(18):
        r = a.client.get("/api/v1/nodes")
        if r.status_code == 429:
            refused = r
            break
        assert r.status_code == 200, r.text
        assert int(r.headers["X-RateLimit-Limit"]) == 5
    assert refused is not None, "no 429 after 18 requests with a limit of 5 per minute"
    assert_envelope(refused, 429, "rate_limited")
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # another token has its own counter (b has not made a request yet)
    other = b.client.get("/api/v1/nodes")
    assert other.status_code == 200, other.text

    # per address, failed authentications: after the third, even a good token gets 429
    bad = {"Authorization": "Bearer " + "f" * 64}
    limited = None
    for _ in range(12):
        r = requests.get(strict_server.url("/api/v1/nodes"), headers=bad, timeout=30)
        if r.status_code == 429:
            limited = r
            break
        assert_envelope(r, 401, "unauthorized")
    assert limited is not None, "no 429 after 12 failed authentications with a limit of 3"
    assert_envelope(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    good = b.client.get("/api/v1/workspace")
    assert good.status_code in (429, 200)
    if good.status_code == 200:
        # the failure window ended between the two requests; then the next failures must
        # again end in 429 within another window's worth of attempts
        statuses = [
            requests.get(strict_server.url("/api/v1/nodes"), headers=bad, timeout=30).status_code
            for _ in range(4)
        ]
        assert statuses[-1] == 429, statuses
    else:
        assert_envelope(good, 429, "rate_limited")
