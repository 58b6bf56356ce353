from __future__ import annotations

from .conftest import Server, Workspace, assert_error


def test_health_needs_no_auth(server: Server) -> None:
    import requests

    for path in ("/api/health", "/api/v1/health", "/health"):
        body = requests.get(server.url(path), timeout=10).json()
        assert body["status"] == "ok"
        assert body["ok"] is True


def test_deploy_then_list(ws: Workspace) -> None:
    r = ws.client.post("/api/deploy", json={"name": "edge-1", "ip": "198.51.100.7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and len(body["api_key"]) == 64
    nodes = ws.client.get("/api/v1/nodes").json()
    assert [n["uuid"] for n in nodes["nodes"]] == [body["node_uuid"]]
    assert_error(
        ws.client.post("/api/deploy", json={"name": "edge-1", "ip": "1.2.3.4"}), 409, "conflict"
    )
