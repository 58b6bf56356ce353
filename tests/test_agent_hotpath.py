"""The Agent API's hot path: keys and configs served from memory yet never stale after a REST
write, metrics rows group-committed, liveness and heartbeats written in batches, ``elevated``
from the node baseline, incident expiry and the access log driven by settings."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from api.activity import ActivityTracker, ElevationRule, heartbeat_status
from api.agentapi.hotpath import ConfigCache, MetricsBatcher, ReplayWatch
from ingest.errors import Backpressure
from store import Store
from store import nodes as nodes_repo

from .conftest import Server, assert_error, new_workspace, start_server
from .telemetry import lake_query, wait_for
from .test_agent_api import HOST_HEARTBEAT, OPEN, Agent, _ok, _setup

# --- against the real server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2",
        "FLOODWATCH_API__AGENT_INCIDENT_EXPIRY_SECS": "10",
    }
    srv = start_server(tmp_path_factory.mktemp("hot") / "data", env=env)
    yield srv
    srv.stop()


def test_a_deleted_node_is_refused_on_its_very_next_call(hserver: Server) -> None:
    client, agent = _setup(hserver)
    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))  # the key is now cached
    _ok(agent.get("/config"))  # and so is the config answer
    assert client.delete(f"/api/v1/nodes/{agent.node['uuid']}").status_code == 200
    assert_error(agent.post("/heartbeat", HOST_HEARTBEAT), 401, "unauthorized")
    assert_error(agent.get("/config"), 401, "unauthorized")


def test_a_node_change_reaches_the_cached_config_at_once(hserver: Server) -> None:
    client, agent = _setup(hserver)
    assert _ok(agent.get("/config"))["service_ports"]["enabled"] is False
    r = client.patch(
        f"/api/v1/nodes/{agent.node['uuid']}",
        json={"sp_enabled": True, "service_ports": [{"protocol": "tcp", "port_value": "443"}]},
    )
    assert r.status_code == 200, r.text
    sp = _ok(agent.get("/config"))["service_ports"]
    assert sp["enabled"] is True
    assert sp["ports"] == [{"protocol": "tcp", "port_value": "443"}]


@pytest.mark.slow
def test_an_idle_incident_expires_after_the_configured_time(hserver: Server) -> None:
    client, agent = _setup(hserver)
    inc = _ok(agent.post("/incidents", OPEN))["uuid"]
    got = client.get(f"/api/v1/incidents/{inc}").json()["incident"]
    assert got["status"] == "active"
    block = client.post(
        f"/api/v1/nodes/{agent.node['uuid']}/commands",
        json={"command_text": "iptables -A INPUT -s 192.0.2.9 -j DROP", "incident_uuid": inc},
    ).json()["command"]
    _ok(agent.post("/commands/ack", {"command_id": block["id"], "status": "applied"}))
    assert _ok(agent.get("/config"))["pending_commands"] == []
    # api.agent_incident_expiry_secs = 10 here; the housekeeping task checks every second

    def expired() -> bool:
        return client.get(f"/api/v1/incidents/{inc}").json()["incident"]["status"] == "resolved"

    assert wait_for(expired, timeout=40, interval=0.5)
    detail = client.get(f"/api/v1/incidents/{inc}").json()["incident"]["detail"]
    assert detail["expired"]["by"] == "server" and detail["expired"]["idle_secs"] == 10
    # the expired incident's mitigation is taken back, and the cached config knows it
    undo = _ok(agent.get("/config"))["pending_commands"]
    assert [c["command_text"] for c in undo] == ["iptables -D INPUT -s 192.0.2.9 -j DROP"]


def test_agent_calls_are_counted_and_only_failures_logged(hserver: Server) -> None:
    _, agent = _setup(hserver)
    marker = uuid.uuid4().hex
    _ok(agent.post("/heartbeat", {**HOST_HEARTBEAT, "interface": marker}))
    _ok(agent.get("/config"))
    _ok(agent.get("/config"))  # the second answer comes from memory
    intruder = Agent(hserver, {**agent.node, "api_key": "f" * 64})
    assert_error(intruder.post("/heartbeat", HOST_HEARTBEAT), 401, "unauthorized")
    text = requests.get(hserver.url("/metrics"), timeout=30).text
    counts = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("floodwatch_agent_requests_total{", "floodwatch_agent_config_cache"))
    }
    assert counts['floodwatch_agent_requests_total{endpoint="heartbeat",status="200"}'] >= 1
    assert counts['floodwatch_agent_requests_total{endpoint="heartbeat",status="401"}'] >= 1
    assert "floodwatch_event_loop_lag_seconds_count" in text
    gc_line = next(
        x for x in text.splitlines() if x.startswith("floodwatch_gc_pause_seconds_count")
    )
    assert float(gc_line.split(" ")[1]) >= 1  # a server that did work has collected garbage
    assert counts.get('floodwatch_agent_config_cache_total{result="hit"}', 0) >= 1
    took = next(
        x for x in text.splitlines() if x.startswith("floodwatch_agent_request_seconds_count")
    )
    assert float(took.split(" ")[1]) >= 4  # every agent call is timed

    def logged() -> bool:
        return "POST /api/v1/agent/heartbeat 401" in hserver.stderr()

    assert wait_for(logged, timeout=10)
    assert "POST /api/v1/agent/heartbeat 200" not in hserver.stderr()


def test_a_huge_heartbeat_keeps_only_its_scalars(hserver: Server) -> None:
    client, agent = _setup(hserver)
    huge = {**HOST_HEARTBEAT, "available_interfaces": [{"name": "x" * 100}] * 400}
    _ok(agent.post("/heartbeat", huge))
    url = f"/api/v1/nodes/{agent.node['uuid']}"
    assert wait_for(lambda: client.get(url).json()["node"]["agent_status"] is not None, 10)
    status = client.get(url).json()["node"]["agent_status"]
    assert "available_interfaces" not in status
    assert status["version"] == "1.9.65" and status["retry_queue_size"] == 0


def test_workspaces_see_only_their_own_nodes_status(hserver: Server) -> None:
    client, agent = _setup(hserver)
    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))
    other = new_workspace(hserver)
    url = f"/api/v1/nodes/{agent.node['uuid']}"
    assert wait_for(lambda: client.get(url).json()["node"]["status"] == "online", 10)
    assert_error(other.client.get(url), 404, "not_found")


# --- units -----------------------------------------------------------------------------------


def test_heartbeat_status_is_the_body_or_its_scalars() -> None:
    small = {"version": "1.9.65", "available_interfaces": [{"name": "eth0"}]}
    assert (
        heartbeat_status(small) == '{"version":"1.9.65","available_interfaces":[{"name":"eth0"}]}'
    )
    big = {"version": "1.9.65", "n": 3, "ok": True, "blob": "y" * 20_000, "list": [1] * 9000}
    assert orjson.loads(heartbeat_status(big)) == {
        "version": "1.9.65",
        "n": 3,
        "ok": True,
        "truncated": True,
    }
    # so many scalars that even they are too big: only ftagent's own fields are kept, and the
    # text is still valid JSON (a cut-off text failed the liveness write of every node)
    many = {f"extra_{i}": "x" * 200 for i in range(200)} | {"flow_active": True, "version": "v"}
    stored = heartbeat_status(many)
    assert len(stored) <= 16 * 1024
    assert orjson.loads(stored) == {"version": "v", "flow_active": True, "truncated": True}


def test_elevation_rule() -> None:
    rule = ElevationRule(factor=2.0, floor_pps=1000.0)
    assert rule.elevated(5000.0, None) is False  # no baseline yet
    assert rule.elevated(5000.0, 2000.0) is True
    assert rule.elevated(4000.0, 2000.0) is False  # not above twice the baseline
    assert rule.elevated(900.0, 10.0) is False  # under the floor
    assert rule.elevated(float("nan"), 10.0) is False


def _node_row(con: Any, ws: uuid.UUID, node: uuid.UUID) -> None:
    now = datetime.now(UTC)
    con.execute(
        "INSERT INTO nodes (uuid, workspace_uuid, name, ip, interface, priority, api_key_hash, "
        "api_key_prefix, created_at, updated_at) VALUES (?, ?, 'n', '192.0.2.1', 'eth0', "
        "'normal', 'h', 'p', ?, ?)",
        [str(node), str(ws), now, now],
    )


def _node_state(con: Any, node: uuid.UUID) -> tuple[Any, ...]:
    row = con.execute(
        "SELECT elevated, last_pps, agent_version, agent_status, last_seen, last_heartbeat_at, "
        "agent_update_error FROM nodes WHERE uuid = ?",
        [str(node)],
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_activity_tracker_writes_liveness_heartbeats_and_elevated(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "t.duckdb")
        await store.start()
        try:
            ws, hot, calm, quiet = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            for node in (hot, calm, quiet):
                await store.run(_node_row, ws, node)
            tracker = ActivityTracker(store, rule=ElevationRule(2.0, 1000.0))
            tracker.baselines = {str(hot): 1500.0, str(calm): 1500.0}
            t = datetime.now(UTC)
            tracker.record([(str(hot), t, 9000.0, 1e6), (str(calm), t, 2000.0, 1e5)])
            tracker.heartbeat(str(quiet), "1.9.65", heartbeat_status({"version": "1.9.65"}))
            await tracker.flush()
            hot_row = await store.run(_node_state, hot)
            calm_row = await store.run(_node_state, calm)
            quiet_row = await store.run(_node_state, quiet)
            assert hot_row[0] is True and hot_row[1] == 9000.0
            assert calm_row[0] is False and calm_row[1] == 2000.0
            assert calm_row[5] is None  # traffic is not a heartbeat
            assert quiet_row[0] is False and quiet_row[1] is None
            assert quiet_row[2] == "1.9.65" and quiet_row[4] is not None
            assert quiet_row[5] is not None and '"1.9.65"' in quiet_row[3]
            # the attack ends; a self-update error keeps the stored status
            tracker.record([(str(hot), t + timedelta(seconds=5), 1200.0, 1e5)])
            tracker.heartbeat(str(quiet), None, None, "no network")
            await tracker.flush()
            hot_row = await store.run(_node_state, hot)
            quiet_row = await store.run(_node_state, quiet)
            assert hot_row[0] is False and hot_row[1] == 1200.0
            assert quiet_row[6] == "no network" and '"1.9.65"' in quiet_row[3]
            assert quiet_row[2] == "1.9.65"
            # an older sample than the one held never wins
            tracker.record([(str(hot), t + timedelta(seconds=9), 50.0, 1.0)])
            tracker.record([(str(hot), t + timedelta(seconds=8), 99999.0, 1.0)])
            await tracker.flush()
            assert (await store.run(_node_state, hot))[1] == 50.0
        finally:
            await store.stop()

    asyncio.run(scenario())


def test_node_baselines_from_one_minute_rollups(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    busy, sparse = str(uuid.uuid4()), str(uuid.uuid4())
    times, nodes, pps = [], [], []
    for i in range(120):
        times.append(now - timedelta(minutes=i + 1))
        nodes.append(busy)
        pps.append(float(i))  # 0..119: the p99 is 117.81
    for i in range(10):  # too little history for a baseline
        times.append(now - timedelta(minutes=i + 1))
        nodes.append(sparse)
        pps.append(1.0)
    table = pa.table(
        {
            "node_uuid": pa.array(nodes, pa.string()),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "samples": pa.array([60] * len(nodes), pa.int64()),
            "pps_avg": pa.array(pps, pa.float64()),
            "pps_max": pa.array(pps, pa.float64()),
        }
    )
    d = now.date().isoformat()
    part = tmp_path / f"metrics_1m/workspace={uuid.uuid4()}/date={d}/hour=00/rollup.parquet"
    part.parent.mkdir(parents=True)
    pq.write_table(table, part)
    store = Store(tmp_path / "b.duckdb")
    store.open()
    try:
        got = nodes_repo.node_baselines(store.con, tmp_path, now=now)
        assert nodes_repo.node_baselines(store.con, tmp_path / "none", now=now) == {}
        later = now + timedelta(days=2)  # all of it older than the 24 h window
        assert nodes_repo.node_baselines(store.con, tmp_path, now=later) == {}
    finally:
        store.close()
    assert set(got) == {busy}
    assert got[busy] == pytest.approx(117.81)


class _FakePipeline:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.tables: list[tuple[str, pa.Table]] = []
        self.fail = fail

    async def submit(self, kind: str, workspace: str, table: pa.Table, key: str | None) -> Any:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.tables.append((workspace, table))
        return table.num_rows, False


def _row(node: str, pps: float) -> dict[str, Any]:
    return {"node_uuid": node, "source": "ftagent", "time": datetime.now(UTC), "pps": pps}


def test_metrics_batcher_commits_concurrent_rows_together() -> None:
    async def scenario() -> list[tuple[str, pa.Table]]:
        fake = _FakePipeline()
        batcher = MetricsBatcher(fake, window_secs=0.01)  # type: ignore[arg-type]
        await asyncio.gather(
            *(batcher.submit("ws-a", _row(f"n{i}", float(i))) for i in range(50)),
            *(batcher.submit("ws-b", _row(f"m{i}", float(i))) for i in range(7)),
        )
        await batcher.drain()
        return fake.tables

    tables = asyncio.run(scenario())
    by_ws = {ws: t for ws, t in tables}
    assert len(tables) == 2  # one table per workspace for the whole window
    assert by_ws["ws-a"].num_rows == 50 and by_ws["ws-b"].num_rows == 7
    assert sorted(by_ws["ws-a"].column("pps").to_pylist()) == [float(i) for i in range(50)]


def test_metrics_batcher_holds_the_next_batch_while_one_is_on_its_way_to_disk() -> None:
    """Group commit: rows that arrive while a batch waits for its fsync wait past their window
    and go together the moment it is durable, instead of as one small batch per window."""

    class SlowDisk(_FakePipeline):
        def __init__(self) -> None:
            super().__init__()
            self.durable = asyncio.Event()

        async def submit(self, kind: str, workspace: str, table: pa.Table, key: str | None) -> Any:
            await self.durable.wait()
            return await super().submit(kind, workspace, table, key)

    async def scenario() -> tuple[list[int], int, int]:
        disk = SlowDisk()
        batcher = MetricsBatcher(disk, window_secs=0.005)  # type: ignore[arg-type]
        first = asyncio.ensure_future(batcher.submit("ws", _row("n0", 0.0)))
        await asyncio.sleep(0.02)  # the first batch is out, waiting for the disk
        later = [asyncio.ensure_future(batcher.submit("ws", _row(f"n{i}", 1.0))) for i in (1, 2)]
        await asyncio.sleep(0.02)
        await asyncio.sleep(0.02)  # four windows passed: still held, not a batch each
        held = batcher.batches
        disk.durable.set()
        await asyncio.gather(first, *later)
        await batcher.drain()
        return [t.num_rows for _, t in disk.tables], held, batcher.batches

    sizes, held, total = asyncio.run(scenario())
    assert held == 1 and total == 2
    assert sizes == [1, 2]


def test_metrics_batcher_sheds_every_waiter_on_backpressure() -> None:
    async def scenario() -> list[BaseException | None]:
        batcher = MetricsBatcher(_FakePipeline(Backpressure("full", 3)))  # type: ignore[arg-type]
        results = await asyncio.gather(
            *(batcher.submit("ws", _row(f"n{i}", 1.0)) for i in range(5)),
            return_exceptions=True,
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    errors = asyncio.run(scenario())
    assert all(isinstance(e, Backpressure) and e.retry_after_secs == 3 for e in errors)


def test_config_cache_invalidation_and_generation() -> None:
    calls: list[str] = []
    answers = {"n1": b"one", "n2": b"two"}

    async def loader(ws: str, node: str) -> bytes | None:
        calls.append(node)
        await asyncio.sleep(0)
        return answers.get(node)

    async def scenario() -> None:
        cache = ConfigCache(loader, ttl_secs=600)
        assert await cache.get("w", "n1") == b"one"
        assert await cache.get("w", "n1") == b"one"
        assert calls == ["n1"]
        answers["n1"] = b"ONE"
        cache.invalidate("n1")
        assert await cache.get("w", "n1") == b"ONE"
        assert await cache.get("w", "n2") == b"two"
        cache.invalidate("n1")  # another node's change keeps this one's answer
        assert await cache.get("w", "n2") == b"two"
        assert calls == ["n1", "n1", "n2"]
        cache.clear()
        assert await cache.get("w", "n2") == b"two"
        assert calls == ["n1", "n1", "n2", "n2"]
        assert await cache.get("w", "gone") is None
        assert await cache.get("w", "gone") is None  # misses are not cached
        assert calls[-2:] == ["gone", "gone"]
        # a load that raced with a write is served once but not kept
        for forget in (cache.clear, lambda: cache.invalidate("n1")):
            slow = asyncio.ensure_future(cache.get("w", "n1"))
            await asyncio.sleep(0)
            forget()
            assert await slow == b"ONE"
            before = len(calls)
            await cache.get("w", "n1")
            assert len(calls) == before + 1
        # ... but a load for another node is
        slow = asyncio.ensure_future(cache.get("w", "n2"))
        await asyncio.sleep(0)
        cache.invalidate("n1")
        assert await slow == b"two"
        before = len(calls)
        await cache.get("w", "n2")
        assert len(calls) == before

    asyncio.run(scenario())


def test_store_reader_sees_committed_writes(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "r.duckdb")
        await store.start()
        try:
            ws, node = uuid.uuid4(), uuid.uuid4()
            await store.run(_node_row, ws, node)
            row = await store.read(
                lambda con: con.execute(
                    "SELECT name FROM nodes WHERE uuid = ?", [str(node)]
                ).fetchone()
            )
            assert row == ("n",)
        finally:
            await store.stop()

    asyncio.run(scenario())


def test_flow_follows_the_heartbeat_unless_an_operator_decides(hserver: Server) -> None:
    client, agent = _setup(hserver)
    assert _ok(agent.get("/config"))["flow"]["enabled"] is False  # nothing known yet
    _ok(agent.post("/heartbeat", {**HOST_HEARTBEAT, "flow_active": True}))
    cfg = _ok(agent.get("/config"))
    assert cfg["flow"]["enabled"] is True  # docs/agent-api.md §4.4: keep its collector running
    assert cfg["flow"]["port"] == 0 and cfg["flow"]["protocol"] == "auto"
    node = agent.node["uuid"]
    r = client.patch(f"/api/v1/nodes/{node}/agent-config", json={"flow": {"enabled": False}})
    assert r.status_code == 200, r.text
    assert _ok(agent.get("/config"))["flow"]["enabled"] is False  # the operator's word wins
    client.patch(f"/api/v1/nodes/{node}/agent-config", json={"flow": None})
    assert _ok(agent.get("/config"))["flow"]["enabled"] is True
    # the node restarts without a collector: the next heartbeat says so
    _ok(agent.post("/heartbeat", {**HOST_HEARTBEAT, "flow_active": False}))
    assert _ok(agent.get("/config"))["flow"]["enabled"] is False


def test_mirror_keys_go_to_mirror_nodes_only(hserver: Server) -> None:
    client, host = _setup(hserver)
    r = client.post(
        "/api/v1/nodes", json={"name": f"m-{uuid.uuid4().hex[:8]}", "ip": "203.0.113.11"}
    )
    assert r.status_code == 201, r.text
    mirror = Agent(hserver, r.json()["node"])
    r = client.patch(
        "/api/v1/workspace/agent-config",
        json={"mirror_subnets": ["198.51.100.7/24"], "mirror_ip_limit": 5000},
    )
    assert r.status_code == 200, r.text
    mirror_hb = {
        **HOST_HEARTBEAT,
        "mirror_mode": True,
        "mirror_flow_only": True,
        "flow_active": False,
    }
    _ok(mirror.post("/heartbeat", mirror_hb))
    _ok(host.post("/heartbeat", HOST_HEARTBEAT))
    got = _ok(mirror.get("/config"))
    assert got["mirror_subnets"] == ["198.51.100.0/24"] and got["mirror_ip_limit"] == 5000
    assert got["flow"]["enabled"] is True  # a flow-only mirror lives on its collector
    plain = _ok(host.get("/config"))
    assert not [k for k in plain if k.startswith("mirror_")]
    bad = client.patch("/api/v1/workspace/agent-config", json={"mirror_subnets": ["nope"]})
    assert_error(bad, 400, "invalid_parameter")


def test_bulk_primed_keys_and_clears() -> None:
    from ingest.receiver import CachedCredentials, Credential
    from store.secrets import hash_secret

    looked_up: list[str] = []

    async def resolve(key: str) -> Credential | None:
        looked_up.append(key)
        return None

    async def index(ws: str) -> dict[str, str]:
        return {}

    async def scenario() -> None:
        cache = CachedCredentials(resolve, index, ttl_secs=300)
        cred = Credential(id="n:x", workspace="w", node="x")
        stale = cache.generation
        cache.clear()  # a write happened while that load ran: its rows must not be used
        assert cache.prime({hash_secret("k1"): cred}, stale) == 0
        assert await cache.resolve("k1") is None and looked_up == ["k1"]
        assert cache.prime({hash_secret("k1"): cred}, cache.generation) == 1
        assert await cache.resolve("k1") == cred and looked_up == ["k1"]  # no lookup now
        assert await cache.resolve("k2") is None and looked_up == ["k1", "k2"]
        cache.clear()
        assert await cache.resolve("k1") is None  # gone with the clear, asked again
        assert looked_up == ["k1", "k2", "k1"]

    asyncio.run(scenario())


def test_chunked_agent_bodies_are_read_and_capped(hserver: Server) -> None:
    _, agent = _setup(hserver)

    def chunks(body: bytes, size: int) -> Iterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    ok = agent.session.post(
        hserver.url("/api/v1/agent/metrics"),
        data=chunks(orjson.dumps({"pps": 10, "bps": 80}), 3),
        timeout=30,
    )
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    huge = b'{"pps": 1, "bps": 1, "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = agent.session.post(
        hserver.url("/api/v1/agent/heartbeat"), data=chunks(huge, 1 << 20), timeout=60
    )
    assert_error(r, 413, "payload_too_large")


def test_a_retry_queue_flush_is_kept_as_replays(hserver: Server) -> None:
    client, agent = _setup(hserver)
    node = agent.node["uuid"]
    # with an empty queue, metrics close together are all current (an attack's early flush)
    _ok(agent.post("/heartbeat", HOST_HEARTBEAT))
    _ok(agent.post("/metrics", {"pps": 500, "bps": 4000}))
    _ok(agent.post("/metrics", {"pps": 1000, "bps": 8000}))
    assert client.get(f"/api/v1/nodes/{node}").json()["node"]["last_pps"] == 1000.0
    # after an outage: the heartbeat announces three queued posts, then the flush sends
    # their stale bodies back to back
    _ok(agent.post("/heartbeat", {**HOST_HEARTBEAT, "retry_queue_size": 3}))
    for pps in (900000, 800000, 700000):
        _ok(agent.post("/metrics", {"pps": pps, "bps": 1}))
    got = client.get(f"/api/v1/nodes/{node}").json()["node"]
    assert got["last_pps"] == 1000.0  # a replay never passes for the current rate
    _ok(agent.post("/metrics", {"pps": 1500, "bps": 1}))  # the flush held three: current
    assert client.get(f"/api/v1/nodes/{node}").json()["node"]["last_pps"] == 1500.0
    where = f"node_uuid = '{node}'"

    def stored() -> list[tuple[Any, ...]]:
        return lake_query(
            hserver.data_dir, f"SELECT source, pps FROM metrics WHERE {where} ORDER BY pps"
        )

    assert wait_for(lambda: len(stored()) == 6, timeout=30)
    assert stored() == [
        ("ftagent", 500.0),
        ("ftagent", 1000.0),
        ("ftagent", 1500.0),
        ("ftagent-replay", 700000.0),
        ("ftagent-replay", 800000.0),
        ("ftagent-replay", 900000.0),
    ]


def test_replay_watch_follows_the_announced_flush() -> None:
    watch = ReplayWatch()
    assert not watch.is_replay("n", 0.0)  # nothing announced
    watch.heartbeat("n", 2, 10.0)
    assert watch.is_replay("n", 10.1) and watch.is_replay("n", 10.3)
    assert not watch.is_replay("n", 10.4)  # only two were queued
    watch.heartbeat("n", 5, 20.0)
    assert watch.is_replay("n", 20.2)
    assert not watch.is_replay("n", 21.0)  # a gap: the flush is over
    assert not watch.is_replay("n", 21.1)
    watch.heartbeat("n", 4, 30.0)
    watch.heartbeat("n", 0, 30.1)  # a newer heartbeat with an empty queue
    assert not watch.is_replay("n", 30.2)
    for odd in (True, "3", -1, None, 2.5):
        watch.heartbeat("n", odd, 40.0)
        assert not watch.is_replay("n", 40.1)


@pytest.mark.parametrize(
    "failure",
    [OSError(28, "No space left on device"), duckdb.IOException("disk I/O error")],
    ids=["disk-full", "duckdb-io"],
)
def test_storage_failures_are_overload_for_the_agent(failure: Exception) -> None:
    from api.agentapi.agent import guard
    from api.errors import ApiError
    from ingest.metrics import METRICS as COUNTERS

    async def broken(request: Any) -> Any:
        raise failure

    before = COUNTERS.agent_requests.value("vm-stats", "503")
    with pytest.raises(ApiError) as caught:
        asyncio.run(guard("vm-stats", broken)(None))  # type: ignore[arg-type]
    assert caught.value.status == 503  # retried and queued by the agent, never dropped
    assert caught.value.headers == {"Retry-After": "2"}
    assert COUNTERS.agent_requests.value("vm-stats", "503") == before + 1


def test_config_cache_prime_keeps_to_invalidations() -> None:
    async def loader(ws: str, node: str) -> bytes | None:
        return b"loaded"

    cache = ConfigCache(loader, ttl_secs=600)
    epoch = cache.epoch()
    cache.invalidate("n2")  # a write for n2 came while the bulk load ran
    assert cache.prime({"n1": b"one", "n2": b"stale"}, epoch) == 1
    assert asyncio.run(cache.get("w", "n1")) == b"one"
    assert asyncio.run(cache.get("w", "n2")) == b"loaded"
    epoch = cache.epoch()
    cache.clear()
    assert cache.prime({"n3": b"three"}, epoch) == 0  # a clear voids the whole load
    assert cache.prime({"n1": b"newer?"}, cache.epoch()) == 1
    assert cache.prime({"n1": b"never"}, cache.epoch()) == 0  # an entry is never replaced


def test_a_restarted_server_answers_configs_from_memory(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", env={"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2"})
    try:
        client, agent = _setup(srv)
        node = agent.node["uuid"]
        client.patch("/api/v1/workspace/agent-config", json={"confirm_ticks": 9})
        client.patch(f"/api/v1/nodes/{node}/agent-config", json={"pps_threshold": 5000})
        client.post(f"/api/v1/nodes/{node}/commands", json={"command_text": "iptables -L -n"})
        _ok(agent.post("/heartbeat", {**HOST_HEARTBEAT, "flow_active": True}))
        assert client.get(f"/api/v1/nodes/{node}").status_code == 200  # heartbeat written
        expected = _ok(agent.get("/config"))
    finally:
        srv.stop()
    srv = start_server(tmp_path / "data", env={"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2"})
    try:

        def cache(result: str) -> float:
            text = requests.get(srv.url("/metrics"), timeout=30).text
            key = f'floodwatch_agent_config_cache_total{{result="{result}"}}'
            return next((float(x.split(" ")[1]) for x in text.splitlines() if x.startswith(key)), 0)

        assert wait_for(lambda: "preloaded nodes=1" in srv.stderr(), timeout=30)
        agent = Agent(srv, agent.node)
        assert _ok(agent.get("/config")) == expected  # the same answer, loaded in bulk
        assert cache("hit") == 1 and cache("miss") == 0
        assert expected["flow"]["enabled"] is True and expected["confirm_ticks"] == 9
        assert expected["pps_threshold"] == 5000 and len(expected["pending_commands"]) == 1
    finally:
        srv.stop()


def test_configs_are_reloaded_in_bulk_after_a_rest_write(tmp_path: Path) -> None:
    """A node registered (or reconfigured) while the server runs gets its config answer from
    memory: each REST write clears the cache and a bulk reload fills it again, with the
    change. (Without the reload, the first poll after a write is always a miss.)"""
    srv = start_server(tmp_path / "data")
    try:

        def cache(result: str) -> float:
            text = requests.get(srv.url("/metrics"), timeout=30).text
            key = f'floodwatch_agent_config_cache_total{{result="{result}"}}'
            return next((float(x.split(" ")[1]) for x in text.splitlines() if x.startswith(key)), 0)

        client, agent = _setup(srv)  # workspace and node created through the REST API
        threshold = [4000]

        def first_poll_after_a_write_hits() -> bool:
            threshold[0] += 1
            url = f"/api/v1/nodes/{agent.node['uuid']}/agent-config"
            r = client.patch(url, json={"pps_threshold": threshold[0]})
            assert r.status_code == 200, r.text
            time.sleep(0.3)  # the reload takes a few ms; retried when the machine is slow
            hits, misses = cache("hit"), cache("miss")
            assert _ok(agent.get("/config"))["pps_threshold"] == threshold[0]  # never stale
            return cache("hit") == hits + 1 and cache("miss") == misses

        assert wait_for(first_poll_after_a_write_hits, timeout=30, interval=0)
        assert "agent config answers preloaded nodes=0 run=1" in srv.stderr()  # at start
    finally:
        srv.stop()


def test_lake_queries_run_beside_a_busy_writer(tmp_path: Path) -> None:
    """``Store.query`` (Get Node's traffic figures, analytics) has a thread and connection of its
    own: it answers while the writer is held, and sees every committed write."""

    def held(con: Any, gate: threading.Event) -> bool:
        return gate.wait(30)

    def count(con: Any) -> tuple[str, int]:
        row = con.execute("SELECT count(*) FROM t").fetchone()
        return threading.current_thread().name, int(row[0])

    async def scenario() -> tuple[str, int]:
        store = Store(tmp_path / "q.duckdb")
        await store.start()
        try:
            await store.run(lambda con: con.execute("CREATE TABLE t (x INTEGER)").fetchall())
            await store.run(lambda con: con.execute("INSERT INTO t VALUES (1), (2)").fetchall())
            gate = threading.Event()
            writer = asyncio.ensure_future(store.run(held, gate))
            try:
                return await asyncio.wait_for(store.query(count), 20)
            finally:
                gate.set()
                await writer
        finally:
            await store.stop()

    name, rows = asyncio.run(scenario())
    assert name.startswith("duckdb-query") and rows == 2


def test_a_writer_too_far_behind_answers_503_with_retry_after() -> None:
    """§3.5: overload is a 503 with a small integer Retry-After, never a wait past the
    agent's timeout (after which it retries anyway)."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from api.agentapi.agent import WRITER_BACKLOG_LIMIT, guard
    from api.errors import ApiError

    class Writer:
        backlog = 0

    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response({"ok": True})

    writer = Writer()
    wrapped = guard("incident_update", handler, writer)

    async def call() -> int:
        response = await wrapped(make_mocked_request("POST", "/api/v1/agent/incidents/x"))
        return response.status

    writer.backlog = WRITER_BACKLOG_LIMIT
    assert asyncio.run(call()) == 200
    writer.backlog = WRITER_BACKLOG_LIMIT + 1
    with pytest.raises(ApiError) as caught:
        asyncio.run(call())
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"].isdigit()
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 5
    assert len(calls) == 1  # the busy call never reached the handler


def _cache_counts(server: Server) -> dict[str, float]:
    text = requests.get(server.url("/metrics"), timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("floodwatch_agent_config_cache_total{"):
            name, _, value = line.rpartition(" ")
            out[name.split('result="')[1].split('"')[0]] = float(value)
    return out


def test_incident_calls_drop_the_nodes_cached_config(hserver: Server) -> None:
    """An open or update may expire the node's silent incidents first, which queues undo
    commands: the node's next config poll must be answered from the database, not from the
    cached answer of before (docs/agent-api.md §8.10)."""
    _, agent = _setup(hserver)
    _ok(agent.get("/config"))
    _ok(agent.get("/config"))  # cached now
    for call in ("open", "update"):
        before = _cache_counts(hserver)
        if call == "open":
            inc = _ok(agent.post("/incidents", OPEN))["uuid"]
        else:
            _ok(agent.post(f"/incidents/{inc}", {"current_pps": 50_000}))
        _ok(agent.get("/config"))
        after = _cache_counts(hserver)
        assert after.get("miss", 0) == before.get("miss", 0) + 1, call
        _ok(agent.get("/config"))
        assert _cache_counts(hserver).get("hit", 0) == after.get("hit", 0) + 1, call
