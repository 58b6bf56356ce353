"""Property tests (hypothesis) of the live HTTP API: it answers arbitrary bodies and queries with
a 2xx or a 4xx JSON envelope, never a 5xx, without touching data that existed before.

Split from ``test_properties.py``; the shared settings and strategies are in
``properties_support.py``.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from .conftest import Server, new_workspace
from .properties_support import (
    LIVE,
    NODE_KEYS,
    assert_envelope,
    channel_configs,
    channel_types,
    json_values,
    node_values,
    text,
    tricky_text,
)

# --- the live HTTP API ------------------------------------------------------------------------


def _send(
    server: Server, method: str, path: str, token: str, body: bytes | None = None
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


class Seeded:
    """A fresh workspace with a node, a channel and a sub-workspace, and a snapshot of them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        ws = new_workspace(server)
        self.token = ws.token
        self.node = self.call("POST", "/api/v1/nodes", {"name": "seed", "ip": "192.0.2.50"})[
            "node"
        ]["uuid"]
        self.target = self.call("POST", "/api/v1/nodes", {"name": "target", "ip": "192.0.2.51"})[
            "node"
        ]["uuid"]
        self.call(
            "POST",
            "/api/v1/channels",
            {"name": "seed", "type": "email", "config": {"email": "ops@example.com"}},
        )
        self.call("POST", "/api/v1/workspaces", {"name": "seed-child"})
        self.before = self.snapshot()

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        status, _, raw = _send(self.server, method, path, self.token, body)
        assert 200 <= status < 300, (method, path, status, raw)
        return json.loads(raw)

    def snapshot(self) -> dict[str, Any]:
        return {
            "seed": self.call("GET", f"/api/v1/nodes/{self.node}")["node"],
            "channels": self.call("GET", "/api/v1/channels?limit=1")["channels"],
            "workspaces": self.call("GET", "/api/v1/workspaces?limit=1")["workspaces"],
            "workspace": {
                k: v
                for k, v in self.call("GET", "/api/v1/workspace")["workspace"].items()
                if k not in ("node_count", "sub_workspace_count")
            },
        }

    def send(self, method: str, path: str, body: bytes | None = None) -> Any:
        status, ctype, raw = _send(self.server, method, path, self.token, body)
        return status, assert_envelope(status, ctype, raw, f"{method} {path} {body!r:.200}")

    def assert_unchanged(self) -> None:
        assert self.snapshot() == self.before


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def bodies(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(_dumps),
        st.dictionaries(st.one_of(st.sampled_from(keys), text), values, max_size=7).map(_dumps),
    )


NODE_BODY_BYTES = bodies(NODE_KEYS, node_values)


def test_http_deploy_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(body=NODE_BODY_BYTES)
    @example(body=b"")
    @example(body=b"[]")
    @example(body=b'{"name": "x", "ip": "192.0.2.1", "interface": 5}')
    def prop(body: bytes) -> None:
        seeded.send("POST", "/api/deploy", body)

    prop()
    seeded.assert_unchanged()


def test_http_create_node_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(body=NODE_BODY_BYTES)
    @example(body=b'{"name": "seed", "ip": "192.0.2.1"}')  # duplicate name: 409
    def prop(body: bytes) -> None:
        status, _ = seeded.send("POST", "/api/v1/nodes", body)
        if body == b'{"name": "seed", "ip": "192.0.2.1"}':
            assert status == 409

    prop()
    seeded.assert_unchanged()


def test_http_patch_node_never_5xx_and_rejections_change_nothing(server: Server) -> None:
    seeded = Seeded(server)
    path = f"/api/v1/nodes/{seeded.target}"
    state = {"node": seeded.call("GET", path)["node"]}

    @LIVE
    @given(body=NODE_BODY_BYTES)
    @example(body=b'{"name": "seed"}')  # the other node's name: 409
    @example(body=b'{"uuid": "00000000-0000-0000-0000-000000000000"}')
    @example(body=b'{"service_ports": [{"port_value": "70000"}]}')
    def prop(body: bytes) -> None:
        status, _ = seeded.send("PATCH", path, body)
        now = seeded.call("GET", path)["node"]
        if status >= 400:
            assert now == state["node"], body  # a refused change changes nothing
        state["node"] = now

    prop()
    seeded.assert_unchanged()


CHANNEL_FIELDS = ["name", "type", "config", "enabled"]
channel_body_values = st.one_of(json_values, channel_types, channel_configs)


def test_http_create_channel_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(body=bodies(CHANNEL_FIELDS, channel_body_values))
    @example(body=b'{"name": "a", "type": "TELEGRAM", "config": {"chat_id": 1}}')
    @example(body=b'{"name": "a", "type": 5, "config": {}}')
    def prop(body: bytes) -> None:
        seeded.send("POST", "/api/v1/channels", body)

    prop()
    seeded.assert_unchanged()


SUB_FIELDS = ["name", "email", "send_welcome_email", "password", "plan", "node_limit"]


def test_http_create_sub_workspace_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(
        body=bodies(
            SUB_FIELDS,
            st.one_of(
                json_values, st.integers(-(2**64), 2**64), st.sampled_from(["pro", "x@y.zz"])
            ),
        )
    )
    @example(body=b'{"name": "a", "node_limit": 18446744073709551615}')
    @example(body=b'{"name": "a", "email": "not-an-email"}')
    def prop(body: bytes) -> None:
        seeded.send("POST", "/api/v1/workspaces", body)

    prop()
    seeded.assert_unchanged()


LIST_PATHS = [
    "/api/v1/nodes",
    "/api/v1/incidents",
    "/api/v1/channels",
    "/api/v1/workspaces",
    "/api/v1/analytics/summary",
    "/api/v1/status",
]
QUERY_KEYS = ["limit", "offset", "status", "severity", "node", "range", "type", "q"]
query_parts = st.one_of(
    st.tuples(
        st.one_of(st.sampled_from(QUERY_KEYS), text),
        st.one_of(text, st.integers().map(str), tricky_text),
    ).map(lambda kv: urllib.parse.quote(kv[0], safe="") + "=" + urllib.parse.quote(kv[1], safe="")),
    st.sampled_from(["%", "%zz", "%ff", "%c3", "limit=%ff", "=", "&", "==", ";", "+", "a=b=c"]),
    st.text(alphabet="abcdefghilmnorstu0123456789=&%+-_.~", max_size=20),
)
query_strings = st.lists(query_parts, max_size=5).map("&".join)


def test_http_list_endpoints_never_5xx_on_any_query(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(path=st.sampled_from(LIST_PATHS), query=query_strings)
    @example(path="/api/v1/nodes", query="limit=100&offset=1000000000")
    @example(path="/api/v1/incidents", query="node=%ff")
    def prop(path: str, query: str) -> None:
        status, body = seeded.send("GET", f"{path}?{query}")
        if status == 200 and "limit" in body:
            assert isinstance(body["limit"], int) and 1 <= body["limit"] <= 100

    prop()
    seeded.assert_unchanged()
