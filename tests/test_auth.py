"""Deploy tokens (format, hashed storage, revocation) and the abuse controls: the per-token rate
limit and the per-address limit on failed authentications."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from .conftest import Server, assert_error, new_workspace, run_cli, start_server

HEX64 = re.compile(r"[0-9a-f]{64}")


def one_json(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    out: dict[str, Any] = json.loads(lines[0])
    return out


def wait_for_token(srv: Server, timeout: float = 30) -> str:
    """The one deploy token the server prints on a first start (printed once it listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(r"\b[0-9a-f]{64}\b", srv.stdout())
        if found:
            assert len(found) == 1, srv.stdout()
            return str(found[0])
        time.sleep(0.05)
    raise AssertionError("no token printed: " + srv.stdout() + srv.stderr())


def get(server: Server, token: str | None, path: str = "/api/v1/workspace") -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(server.url(path), headers=headers, timeout=30)


# --- token format and storage -----------------------------------------------------------------


def test_tokens_are_64_lowercase_hex(server: Server) -> None:
    ws = new_workspace(server)
    extra = server.cli_json("token", "create", "--workspace", ws.id, "--name", "second")
    sub = ws.client.post("/api/v1/workspaces", json={"name": "child"})
    assert sub.status_code == 201, sub.text
    node = ws.client.post("/api/deploy", json={"name": "n1", "ip": "192.0.2.10"})
    assert node.status_code == 200, node.text
    secrets = [
        ws.token,
        extra["deploy_token"],
        sub.json()["workspace"]["deploy_token"],
        node.json()["api_key"],
    ]
    for secret in secrets:
        assert HEX64.fullmatch(secret), secret
    assert len(set(secrets)) == len(secrets)
    assert extra["prefix"] == extra["deploy_token"][:8]


def _scan_files(data_dir: Path, secrets: list[str]) -> list[str]:
    """Every (file, secret) where the secret's text or raw bytes occur in a file's bytes."""
    hits = []
    files = [p for p in data_dir.rglob("*") if p.is_file() and not p.is_socket()]
    assert any(p.name == "floodwatch.duckdb" for p in files), files
    for path in files:
        blob = path.read_bytes()
        for secret in secrets:
            for needle in (secret.encode(), secret.upper().encode(), bytes.fromhex(secret)):
                if needle in blob:
                    hits.append(f"{path.name}: {secret[:8]}")
    return hits


def _check_database(db_file: Path, tokens: list[str]) -> None:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        rows = con.execute("SELECT prefix, token_hash FROM deploy_tokens").fetchall()
        stored = {h: p for p, h in rows}
        for token in tokens:
            digest = hashlib.sha256(token.encode()).hexdigest()
            assert digest in stored, "the token's hash is what identifies it"
            assert stored[digest] == token[:8]
        # no text column of any table holds a token, whole or as the bulk of one
        cols = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') AND table_schema = 'main'"
        ).fetchall()
        assert ("deploy_tokens", "token_hash") in cols
        for table, column in cols:
            for token in tokens:
                n = con.execute(
                    f'SELECT count(*) FROM "{table}" WHERE strpos(lower("{column}"), ?) > 0',
                    [token[:16]],
                ).fetchone()
                assert n is not None
                assert n[0] == 0, f"{table}.{column} holds part of a token"
    finally:
        con.close()


def test_tokens_are_stored_hashed_server_less(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ws = one_json(run_cli(data, "workspace", "create", "hashed", "--json").stdout)
    tok = one_json(run_cli(data, "token", "create", "--json").stdout)
    revoked = one_json(run_cli(data, "token", "create", "--json").stdout)
    run_cli(data, "token", "revoke", revoked["deploy_token"])
    tokens = [ws["deploy_token"], tok["deploy_token"], revoked["deploy_token"]]

    _check_database(data / "floodwatch.duckdb", tokens)
    assert _scan_files(data, tokens) == []


def test_tokens_are_stored_hashed_by_a_stopped_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        bootstrap = wait_for_token(srv)
        made = srv.cli_json("workspace", "create", "ws2")
        extra = srv.cli_json("token", "create", "--workspace", "ws2")
        node = requests.post(
            srv.url("/api/deploy"),
            json={"name": "edge", "ip": "198.51.100.3"},
            headers={"Authorization": f"Bearer {bootstrap}"},
            timeout=30,
        )
        assert node.status_code == 200, node.text
        tokens = [bootstrap, made["deploy_token"], extra["deploy_token"]]
        for token in tokens:  # used, so last_used_at etc. were written too
            assert get(srv, token).status_code == 200
    finally:
        assert srv.stop() == 0
    _check_database(data / "floodwatch.duckdb", tokens)
    assert _scan_files(data, [*tokens, node.json()["api_key"]]) == []


# --- revocation and bad credentials -----------------------------------------------------------


def test_revoked_token_is_refused_at_once(server: Server) -> None:
    ws = new_workspace(server)
    second = server.cli_json("token", "create", "--workspace", ws.id, "--name", "second")
    third = server.cli_json("token", "create", "--workspace", ws.id, "--name", "third")
    for token in (ws.token, second["deploy_token"], third["deploy_token"]):
        assert get(server, token).status_code == 200

    server.cli("token", "revoke", second["token_id"])
    assert_error(get(server, second["deploy_token"]), 401, "unauthorized")
    assert_error(get(server, second["deploy_token"], "/api/v1/nodes"), 401, "unauthorized")
    r = requests.post(
        server.url("/api/deploy"),
        json={"name": "x", "ip": "192.0.2.1"},
        headers={"Authorization": f"Bearer {second['deploy_token']}"},
        timeout=30,
    )
    assert_error(r, 401, "unauthorized")

    server.cli("token", "revoke", third["deploy_token"])  # by the token itself
    assert_error(get(server, third["deploy_token"]), 401, "unauthorized")

    # the workspace's other token is unaffected
    assert get(server, ws.token).json()["workspace"]["uuid"] == ws.id


def test_deleted_workspace_tokens_are_refused(server: Server) -> None:
    ws = new_workspace(server)
    assert get(server, ws.token).status_code == 200
    server.cli("workspace", "delete", ws.id)
    assert_error(get(server, ws.token), 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token 0123",
        "Bearer " + "0" * 64,
        "Bearer " + "a" * 300,
        "Bearer not-a-token",
    ],
)
def test_bad_credentials_get_401(server: Server, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("GET", "/api/v1/nodes"), ("POST", "/api/deploy")):
        r = requests.request(method, server.url(path), headers=headers, json={}, timeout=30)
        body = assert_error(r, 401, "unauthorized")
        assert "X-RateLimit-Limit" not in r.headers
        assert "token" in body["error"]["message"]


def test_token_in_another_case_or_with_whitespace(server: Server) -> None:
    ws = new_workspace(server)
    assert_error(get(server, ws.token.upper()), 401, "unauthorized")
    assert_error(get(server, ws.token[:-1]), 401, "unauthorized")
    r = requests.get(
        server.url("/api/v1/workspace"),
        headers={"Authorization": f"bearer   {ws.token}  "},
        timeout=30,
    )
    assert r.status_code == 200, r.text  # the scheme is case-insensitive, padding is trimmed


# --- rate limits ------------------------------------------------------------------------------

_source_hosts = itertools.count(2)


class SourceClient:
    """Plain HTTP from a chosen loopback address (127.0.0.N), so that each test of the
    per-address limit has its own client address."""

    def __init__(self, server: Server) -> None:
        self.server = server
        n = next(_source_hosts)
        assert n < 255, "out of loopback source addresses"
        self.host = f"127.0.0.{n}"

    def get(
        self, token: str | None, path: str = "/api/v1/workspace"
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.server.port, timeout=30, source_address=(self.host, 0)
        )
        try:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            return resp.status, dict(resp.getheaders()), body
        finally:
            conn.close()


def _window() -> int:
    return int(time.time() // 60)


def within_one_window(attempt: Callable[[], Any], tries: int = 3) -> Any:
    """Run ``attempt`` until one run starts and ends in the same one-minute window (the limiters'
    windows are aligned to the wall-clock minute, and a roll-over resets the counters). Each
    attempt must use fresh keys (a new token, a new client address)."""
    for _ in range(tries):
        before = _window()
        result = attempt()
        if _window() == before:
            return result
    raise AssertionError("could not run inside one rate-limit window")  # pragma: no cover


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("limited") / "data",
        env={
            "FLOODWATCH_API__RATE_LIMIT_PER_MINUTE": "20",
            "FLOODWATCH_API__AUTH_FAILURES_PER_MINUTE": "5",
        },
    )
    yield srv
    assert srv.stop() == 0


def test_rate_limit_counts_down_then_429(limited_server: Server) -> None:
    srv = limited_server

    def attempt() -> tuple[list[requests.Response], requests.Response, requests.Response]:
        a = new_workspace(srv)
        b = new_workspace(srv)
        responses = [a.client.get("/api/v1/workspace") for _ in range(22)]
        return responses, b.client.get("/api/v1/workspace"), b.client.get("/api/v1/nodes")

    responses, other, other2 = within_one_window(attempt)

    ok, limited = responses[:20], responses[20:]
    for i, r in enumerate(ok):
        assert r.status_code == 200, (i, r.text)
        assert r.headers["X-RateLimit-Limit"] == "20"
        assert r.headers["X-RateLimit-Remaining"] == str(19 - i)
    resets = {r.headers["X-RateLimit-Reset"] for r in responses}
    assert len(resets) == 1, resets
    reset = int(resets.pop())
    assert reset % 60 == 0  # the end of a wall-clock minute

    for r in limited:
        body = assert_error(r, 429, "rate_limited")
        assert "20" in body["error"]["message"]
        assert r.headers["X-RateLimit-Limit"] == "20"
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert r.headers["X-RateLimit-Reset"] == str(reset)
        retry = r.headers["Retry-After"]
        assert re.fullmatch(r"[0-9]+", retry), retry
        assert 1 <= int(retry) <= 60

    # per token: another workspace's token has its own budget
    assert other.status_code == 200, other.text
    assert other.headers["X-RateLimit-Remaining"] == "19"
    assert other2.status_code == 200, other2.text
    assert other2.headers["X-RateLimit-Remaining"] == "18"
    assert other.headers["X-RateLimit-Reset"] == str(reset)


def test_rate_limit_is_per_token_within_a_workspace(limited_server: Server) -> None:
    srv = limited_server

    def attempt() -> tuple[list[int], requests.Response, requests.Response]:
        ws = new_workspace(srv)
        second = srv.cli_json("token", "create", "--workspace", ws.id)["deploy_token"]
        statuses = [get(srv, ws.token, "/api/v1/nodes").status_code for _ in range(22)]
        return statuses, get(srv, second), get(srv, ws.token)

    statuses, second, first_again = within_one_window(attempt)
    assert statuses == [200] * 20 + [429, 429]
    assert second.status_code == 200
    assert second.headers["X-RateLimit-Remaining"] == "19"
    assert first_again.status_code == 429
    assert re.fullmatch(r"[0-9]+", first_again.headers["Retry-After"])


def test_rate_limit_applies_to_errors_and_writes(limited_server: Server) -> None:
    srv = limited_server

    def attempt() -> tuple[list[requests.Response], requests.Response]:
        ws = new_workspace(srv)
        second = srv.cli_json("token", "create", "--workspace", ws.id)["deploy_token"]
        out = []
        for i in range(10):
            out.append(ws.client.get(f"/api/v1/nodes/00000000-0000-0000-0000-{i:012d}"))
            out.append(ws.client.post("/api/deploy", data=b"not json"))
        out.append(ws.client.post("/api/deploy", json={"name": "late", "ip": "192.0.2.99"}))
        return out, get(srv, second, "/api/v1/nodes")

    responses, nodes = within_one_window(attempt)
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in responses]
    assert remaining == [*range(19, -1, -1), 0]
    assert [r.status_code for r in responses[:20]] == [404, 400] * 10
    assert_error(responses[20], 429, "rate_limited")
    # the refused deploy did not register a node
    assert nodes.status_code == 200, nodes.text
    assert nodes.json()["total"] == 0


def test_failed_authentications_are_limited_per_address(limited_server: Server) -> None:
    srv = limited_server
    good = new_workspace(srv)

    def attempt() -> tuple[list[tuple[int, dict[str, str], Any]], Any, Any, Any]:
        bad_client = SourceClient(srv)
        results = [bad_client.get("f" * 64) for _ in range(5)]
        results.append(bad_client.get("e" * 64))
        results.append(bad_client.get(None))
        locked_out_good = bad_client.get(good.token)
        other_address = SourceClient(srv).get(good.token)
        other_address_bad = SourceClient(srv).get("d" * 64)
        return results, locked_out_good, other_address, other_address_bad

    results, locked_out_good, other_address, other_address_bad = within_one_window(attempt)
    statuses = [status for status, _, _ in results]
    assert statuses == [401] * 5 + [429, 429], statuses
    for status, headers, body in results[5:]:
        assert status == 429
        assert body["ok"] is False and body["error"]["code"] == "rate_limited"
        assert re.fullmatch(r"[0-9]+", headers["Retry-After"])
        assert 1 <= int(headers["Retry-After"]) <= 60
    # a valid token still works from that address (a shared proxy address must not let one
    # guessing client lock everyone out; only failures are limited, see api/http.py)
    assert locked_out_good[0] == 200
    # another address is not affected
    assert other_address[0] == 200
    assert other_address[2]["workspace"]["uuid"] == good.id
    assert other_address_bad[0] == 401


def test_successful_requests_do_not_count_as_failures(limited_server: Server) -> None:
    srv = limited_server

    def attempt() -> list[int]:
        ws = new_workspace(srv)
        client = SourceClient(srv)
        statuses = []
        for _ in range(4):  # 4 failures, 10 successes, 1 more failure: still under 5+1
            statuses.append(client.get("c" * 64)[0])
        statuses.extend(client.get(ws.token)[0] for _ in range(10))
        statuses.append(client.get("c" * 64)[0])
        statuses.append(client.get("c" * 64)[0])
        return statuses

    statuses = within_one_window(attempt)
    assert statuses == [401] * 4 + [200] * 10 + [401, 429]
