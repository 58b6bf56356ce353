"""Floodwatch's own detector end to end: history through a collector key at full speed, then a
live flood, read back through GET /api/v1/incidents; the settings endpoints; Get Node's baseline."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from aiohttp import web

from .conftest import Client, Server, Workspace, assert_error, new_workspace, start_server
from .telemetry import ipc_bytes, post_batch, wait_for


@pytest.fixture(scope="module")
def dserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("detect") / "data",
        env={"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.5"},
    )
    yield srv
    srv.stop()


def _node(client: Client, ip: str) -> dict[str, Any]:
    r = client.post("/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:6]}", "ip": ip})
    assert r.status_code == 201, r.text
    node: dict[str, Any] = r.json()["node"]
    return node


def _collector(client: Client) -> str:
    r = client.post("/api/v1/collectors", json={"name": "history"})
    assert r.status_code == 201, r.text
    key: str = r.json()["collector"]["key"]
    return key


def _rows(ip: str, start: datetime, secs: int, pps: float, udp_share: float) -> pa.Table:
    """Web-server-like seconds (TCP-heavy) with a mild ripple; ``udp_share`` of the packets UDP."""
    times = [start + timedelta(seconds=i) for i in range(secs)]
    base = [pps * (1.0 + 0.05 * math.sin(i / 37.0)) for i in range(secs)]
    udp = [b * udp_share for b in base]
    tcp = [b - u for b, u in zip(base, udp, strict=True)]
    return pa.table(
        {
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "node_ip": [ip] * secs,
            "pps": base,
            "bps": [b * 8 * (600 if udp_share < 0.5 else 1200) for b in base],
            "tcp_pps": tcp,
            "udp_pps": udp,
            "icmp_pps": [0.0] * secs,
            "other_pps": [0.0] * secs,
            "syn_pps": [t * 0.03 for t in tcp],
            "ack_pps": [t * 0.9 for t in tcp],
            "rst_pps": [t * 0.01 for t in tcp],
            "fin_pps": [t * 0.02 for t in tcp],
            "frag_pps": [0.0] * secs,
            "avg_pkt_len": [600.0 if udp_share < 0.5 else 1200.0] * secs,
            "distinct_sources": pa.array([int(b / 20) for b in base], pa.int64()),
        }
    )


def _send(srv: Server, key: str, table: pa.Table) -> None:
    for off in range(0, table.num_rows, 20_000):
        part = table.slice(off, 20_000)
        for _ in range(50):
            r = post_batch(srv.base_url, key, ipc_bytes(part, "lz4"))
            if r.status_code != 503:
                break
            time.sleep(float(r.headers.get("Retry-After", "1")))
        assert r.status_code == 202, r.text


def _incidents(ws: Workspace, node: str) -> list[dict[str, Any]]:
    r = ws.client.get(f"/api/v1/incidents?node={node}")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["incidents"]
    return found


def test_history_then_live_flood_opens_one_explained_incident(dserver: Server) -> None:
    ws = new_workspace(dserver)
    node = _node(ws.client, "203.0.113.50")
    key = _collector(ws.client)
    now = datetime.now(UTC).replace(microsecond=0)
    history_start = now - timedelta(hours=2, minutes=5)
    _send(dserver, key, _rows(node["ip"], history_start, 7200, 2000.0, 0.05))
    # quiet history: nothing opened
    assert _incidents(ws, node["uuid"]) == []
    # live: normal seconds, then a UDP flood at ~25x baseline, sent as it happens
    live = now - timedelta(seconds=30)
    _send(dserver, key, _rows(node["ip"], live, 20, 2000.0, 0.05))
    flood = _rows(node["ip"], live + timedelta(seconds=20), 6, 50_000.0, 0.97)
    sent_at = time.monotonic()
    _send(dserver, key, flood)

    def opened() -> bool:
        return bool(_incidents(ws, node["uuid"]))

    assert wait_for(opened, timeout=20, interval=0.1)
    latency = time.monotonic() - sent_at
    [inc] = _incidents(ws, node["uuid"])
    assert inc["source"] == "floodwatch" and inc["status"] == "active"
    assert inc["attack_family"] == "udp_flood"
    det = inc["detection"]
    onset = live + timedelta(seconds=20)
    assert det["onset_at"] == onset.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert inc["started_at"] == det["onset_at"]
    fired = datetime.fromisoformat(det["fired_at"])
    assert onset <= fired <= onset + timedelta(seconds=2)
    assert det["source"] == "floodwatch" and det["observed"] > det["threshold"] > det["baseline"]
    assert det["multiplier"] >= 10 and det["samples_above"] >= 1
    assert det["metric"] in ("pps", "udp_pps", "bps")
    got = ws.client.get(f"/api/v1/incidents/{inc['uuid']}").json()["incident"]
    assert got["detection"] == det
    assert "UDP" in got["summary"] and "Check first" in got["summary"], got["summary"]
    # Get Node shows the detector's baseline
    node_now = ws.client.get(f"/api/v1/nodes/{node['uuid']}").json()["node"]
    base = node_now["baseline"]
    assert 1500 <= base["expected_pps"] <= 2600, base
    assert base["threshold_pps"] > base["expected_pps"]
    # the flood ends: normal traffic for a few minutes resolves it
    after = onset + timedelta(seconds=6)
    _send(dserver, key, _rows(node["ip"], after, 240, 2000.0, 0.05))

    def resolved() -> bool:
        return bool(_incidents(ws, node["uuid"])[0]["status"] == "resolved")

    assert wait_for(resolved, timeout=20)
    assert len(_incidents(ws, node["uuid"])) == 1
    print(f"incident visible {latency:.2f} s after the flood was sent")


def test_settings_endpoints_validate_and_merge(dserver: Server) -> None:
    ws = new_workspace(dserver)
    node = _node(ws.client, "203.0.113.51")
    got = ws.client.get("/api/v1/workspace/detection").json()
    assert got["overrides"] == {} and got["detection"] == got["inherited"]
    r = ws.client.patch("/api/v1/workspace/detection", json={"sensitivity": "high"})
    assert r.status_code == 200, r.text
    assert r.json()["detection"]["sensitivity"] == "high"
    assert r.json()["overrides"] == {"sensitivity": "high"}
    path = f"/api/v1/nodes/{node['uuid']}/detection"
    r = ws.client.patch(path, json={"floor_pps": 5000, "series": {"syn_pps": False}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["inherited"]["sensitivity"] == "high"
    assert body["detection"]["sensitivity"] == "high" and body["detection"]["floor_pps"] == 5000
    assert body["detection"]["series"]["syn_pps"] is False
    for bad, field in (
        ({"floor_pps": -1}, "floor_pps"),
        ({"sensitivity": "extreme"}, "sensitivity"),
        ({"hold_down": 3}, "hold_down"),
        ({"series": {"nope": True}}, "series.nope"),
        ({"confirm_seconds": "3"}, "confirm_seconds"),
    ):
        err = assert_error(ws.client.patch(path, json=bad), 400, "invalid_parameter")
        assert err["error"]["field"] == field, (bad, err)
    # null removes an override
    r = ws.client.patch(path, json={"floor_pps": None})
    assert r.json()["overrides"] == {"series": {"syn_pps": False}}
    other = new_workspace(dserver)
    assert other.client.get(path).status_code == 404


class _FakeModel:
    """An OpenAI-compatible chat completions endpoint on loopback, in a thread of its own."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.requests.append({"auth": request.headers.get("Authorization"), **body})
            text = "Model summary: a UDP flood, check upstream filtering first."
            return web.json_response({"choices": [{"message": {"content": text}}]})

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            await asyncio.Event().wait()

        self._loop = asyncio.new_event_loop()
        with contextlib.suppress(RuntimeError):
            self._loop.run_until_complete(main())


def test_a_configured_model_writes_the_summary(tmp_path_factory: pytest.TempPathFactory) -> None:
    model = _FakeModel()
    srv = start_server(
        tmp_path_factory.mktemp("llm") / "data",
        env={
            "FLOODWATCH_DETECT__SUMMARY_LLM_URL": f"http://127.0.0.1:{model.port}/v1",
            "FLOODWATCH_DETECT__SUMMARY_LLM_API_KEY": "sk-test-secret",
        },
    )
    try:
        ws = new_workspace(srv)
        node = _node(ws.client, "203.0.113.52")
        key = _collector(ws.client)
        now = datetime.now(UTC).replace(microsecond=0)
        _send(srv, key, _rows(node["ip"], now - timedelta(hours=1, minutes=10), 3600, 2000.0, 0.05))
        live = now - timedelta(seconds=10)
        _send(srv, key, _rows(node["ip"], live, 6, 60_000.0, 0.97))

        def summarized() -> bool:
            found = _incidents(ws, node["uuid"])
            if not found:
                return False
            inc = ws.client.get(f"/api/v1/incidents/{found[0]['uuid']}").json()["incident"]
            return str(inc["summary"]).startswith("Model summary")

        assert wait_for(summarized, timeout=20)
        req = model.requests[0]
        assert req["auth"] == "Bearer sk-test-secret" and req["model"] == "gpt-4o-mini"
        assert "udp_flood" in str(req["messages"])
        assert "sk-test-secret" not in srv.stderr() + srv.stdout()
    finally:
        srv.stop()


@pytest.mark.slow
def test_baselines_are_rebuilt_from_rollups_when_the_state_is_lost(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A node's detector baseline comes back at start from the lake's 1-minute rollups when the
    saved state does not know it (here: the state file is gone), before any new telemetry."""
    data = tmp_path_factory.mktemp("seed") / "data"
    env = {"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.5"}
    srv = start_server(data, env=env)
    try:
        ws = new_workspace(srv)
        node = _node(ws.client, "203.0.113.53")
        key = _collector(ws.client)
        now = datetime.now(UTC).replace(microsecond=0)
        _send(srv, key, _rows(node["ip"], now - timedelta(hours=1, minutes=40), 5400, 3000.0, 0.05))
        rollups = data / "lake" / "metrics_1m" / f"workspace={ws.id}"
        assert wait_for(lambda: any(rollups.glob("date=*/hour=*/rollup.parquet")), timeout=60)
    finally:
        srv.stop()
    (data / "detect" / "state.bin").unlink()
    srv = start_server(data, env=env)
    try:
        base = Client(srv, ws.token).get(f"/api/v1/nodes/{node['uuid']}")
        assert base.status_code == 200, base.text
        baseline = base.json()["node"]["baseline"]
        assert baseline["expected_pps"] is not None, baseline
        assert 2400 <= baseline["expected_pps"] <= 3600, baseline
        assert "seeding from rollups failed" not in srv.stderr() + srv.stdout()
    finally:
        srv.stop()
