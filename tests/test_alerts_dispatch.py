"""Alert delivery end to end: the real server, the real Agent API and telemetry, and real local
webhook receivers that fail, hang, rate-limit and refuse on purpose. Nothing here measures
time: each test waits for a condition with a generous deadline, then checks order, content and
counts."""

from __future__ import annotations

import copy
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .alert_receivers import WebhookReceiver, wait_until
from .conftest import (
    Client,
    Server,
    Workspace,
    new_workspace,
    start_server,
)
from .test_agent_api import OPEN, RESOLVE, SPARSE_UPDATE, Agent

SECRET = "whsec-" + "k" * 24
ALERT_ENV = {
    "FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.5",
    "FLOODWATCH_ALERTS__RETRY_BASE_SECS": "0.2",
    "FLOODWATCH_ALERTS__RETRY_MAX_SECS": "1",
    "FLOODWATCH_ALERTS__ATTEMPT_TIMEOUT_SECS": "1.5",
    "FLOODWATCH_ALERTS__GIVE_UP_AFTER_SECS": "8",
    "FLOODWATCH_ALERTS__PUBLIC_URL": "https://fw.example.net",
}


@pytest.fixture(scope="module")
def alert_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("alerts") / "data", env=ALERT_ENV)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver(secret=SECRET)
    yield rx
    rx.close()


def _path() -> str:
    return "hook-" + uuid.uuid4().hex[:10]


def channel(client: Client, url: str, **config: Any) -> dict[str, Any]:
    r = client.post(
        "/api/v1/channels",
        json={
            "name": f"c-{uuid.uuid4().hex[:6]}",
            "type": "webhook",
            "config": {"url": url, "secret": SECRET, **config},
        },
    )
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()["channel"]
    return found


def agent_for(srv: Server, ws: Workspace) -> Agent:
    r = ws.client.post(
        "/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:8]}", "ip": "203.0.113.10"}
    )
    assert r.status_code == 201, r.text
    return Agent(srv, r.json()["node"])


def open_incident(agent: Agent, **changes: Any) -> str:
    body = {**copy.deepcopy(OPEN), **changes}
    r = agent.post("/incidents", body)
    assert r.status_code in (200, 201), r.text
    inc: str = r.json()["uuid"]
    return inc


def resolve(agent: Agent, inc: str) -> None:
    r = agent.post(f"/incidents/{inc}/resolve", copy.deepcopy(RESOLVE))
    assert r.status_code == 200, r.text


def deliveries(client: Client, ch: dict[str, Any], **params: Any) -> dict[str, Any]:
    r = client.get(f"/api/v1/channels/{ch['id']}/deliveries", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_agent_incident_start_then_end_signed(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    ws = new_workspace(alert_server)
    path = _path()
    ch = channel(ws.client, receiver.url(path))
    agent = agent_for(alert_server, ws)
    inc = open_incident(agent)
    assert wait_until(lambda: receiver.events(path) == ["attack_start"])
    resolve(agent, inc)
    assert wait_until(lambda: receiver.events(path) == ["attack_start", "attack_end"])
    start, end = receiver.delivered(path)
    for msg in (start, end):
        assert msg.signature_ok is True
        assert msg.body["incident"]["uuid"] == inc
        assert msg.body["node"]["name"] == agent.node["name"]
        got = ws.client.get(f"/api/v1/incidents/{inc}").json()["incident"]
        assert msg.body["incident"]["id"] == got["id"]
        assert msg.body["incident"]["dashboard_url"] == (
            f"https://fw.example.net/dashboard/incident?id={got['id']}"
        )
    assert start.delivery_id != end.delivery_id
    assert end.body["end_reason"] == "resolved"
    assert end.body["incident"]["status"] == "resolved"
    log = deliveries(ws.client, ch)
    assert log["total"] == 2
    # newest first
    assert [d["event"] for d in log["deliveries"]] == ["attack_end", "attack_start"]
    assert all(d["status"] == "sent" and d["http_status"] == 200 for d in log["deliveries"])
    assert {d["delivery_id"] for d in log["deliveries"]} == {start.delivery_id, end.delivery_id}
    assert all(d["incident_uuid"] == inc for d in log["deliveries"])
    # nothing more is sent for this incident: a replayed resolve changes nothing
    resolve(agent, inc)
    open_incident(agent, started_at="2026-03-14T19:10:41+00:00")  # another incident, later
    assert wait_until(lambda: len(receiver.delivered(path)) == 3)
    assert receiver.events(path) == ["attack_start", "attack_end", "attack_start"]


def test_retries_after_500_and_timeout_keep_the_delivery_id(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    ws = new_workspace(alert_server)
    path = _path()
    receiver.set(path, "ok", script=["fail", "hang", "fail"])
    ch = channel(ws.client, receiver.url(path))
    agent = agent_for(alert_server, ws)
    open_incident(agent)
    assert wait_until(lambda: receiver.events(path) == ["attack_start"])
    got = receiver.got(path)
    assert [r.answered for r in got] == ["fail", "hang", "fail", "ok"]
    assert len({r.delivery_id for r in got}) == 1
    log = deliveries(ws.client, ch)["deliveries"]
    assert [d["attempt"] for d in log] == [4, 3, 2, 1]
    assert [d["status"] for d in log] == ["sent", "retry", "retry", "retry"]
    assert [d["http_status"] for d in log] == [200, 500, None, 500]
    assert "timed out" in log[2]["error"]
    assert all(d["delivery_status"] == "sent" for d in log)


def test_429_retry_after_is_honoured(alert_server: Server, receiver: WebhookReceiver) -> None:
    ws = new_workspace(alert_server)
    path = _path()
    receiver.set(path, "ok", script=["limit"])
    ch = channel(ws.client, receiver.url(path))
    agent = agent_for(alert_server, ws)
    open_incident(agent)
    assert wait_until(lambda: receiver.events(path) == ["attack_start"])
    first, second = receiver.got(path)
    assert first.answered == "limit" and first.delivery_id == second.delivery_id
    log = deliveries(ws.client, ch)["deliveries"]
    assert [d["status"] for d in log] == ["sent", "retry"]
    assert log[1]["http_status"] == 429 and log[1]["retry_after"] == 1.0


def test_refused_connection_retries_then_gives_up(alert_server: Server) -> None:
    ws = new_workspace(alert_server)
    # a port bound but not listening refuses connections, and no other test can take it meanwhile
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        ch = channel(ws.client, f"http://127.0.0.1:{taken.getsockname()[1]}/nobody")
        agent = agent_for(alert_server, ws)
        open_incident(agent)

        def given_up() -> bool:
            log = deliveries(ws.client, ch)["deliveries"]
            return bool(log) and log[0]["delivery_status"] == "failed"

        assert wait_until(given_up, timeout=60)
    log = deliveries(ws.client, ch)["deliveries"]
    assert len(log) >= 2
    assert log[0]["status"] == "failed" and "gave up" in log[0]["error"]
    assert all(d["status"] == "retry" for d in log[1:])
    assert all(d["http_status"] is None and d["error"] for d in log)
    assert len({d["delivery_id"] for d in log}) == 1
    metrics = alert_server_metrics(alert_server)
    assert 'floodwatch_alerts_failed_total{type="webhook"}' in metrics
    assert 'floodwatch_alerts_retried_total{type="webhook"}' in metrics


def alert_server_metrics(srv: Server) -> str:
    import requests

    text: str = requests.get(srv.url("/metrics"), timeout=10).text
    return text


def test_non_retryable_answer_fails_at_once(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    ws = new_workspace(alert_server)
    path = _path()
    receiver.set(path, "bad")
    ch = channel(ws.client, receiver.url(path))
    agent = agent_for(alert_server, ws)
    open_incident(agent)
    assert wait_until(lambda: bool(deliveries(ws.client, ch)["deliveries"]))
    [only] = deliveries(ws.client, ch)["deliveries"]
    assert only["status"] == "failed" and only["http_status"] == 400
    assert len(receiver.got(path)) == 1


def test_a_hanging_channel_delays_no_other(alert_server: Server, receiver: WebhookReceiver) -> None:
    ws = new_workspace(alert_server)
    hung, failing, good = _path(), _path(), _path()
    receiver.set(hung, "hang")
    receiver.set(failing, "fail")
    channel(ws.client, receiver.url(hung))
    channel(ws.client, receiver.url(failing))
    channel(ws.client, receiver.url(good))
    agent = agent_for(alert_server, ws)
    incs = [
        open_incident(agent, started_at=f"2026-03-14T18:1{i}:41+00:00", inner_ip=f"10.0.0.{i}")
        for i in range(6)
    ]
    for inc in incs:
        resolve(agent, inc)
    # every incident's start and end reach the good channel, while the hung one answers nothing
    assert wait_until(lambda: len(receiver.delivered(good)) == 12)
    assert receiver.delivered(hung) == [] and receiver.delivered(failing) == []
    assert len(receiver.got(hung)) >= 1
    by_incident: dict[str, list[str]] = {}
    for msg in receiver.delivered(good):
        by_incident.setdefault(msg.body["incident"]["uuid"], []).append(msg.event)
    assert by_incident == {inc: ["attack_start", "attack_end"] for inc in incs}
    # ingestion was never held up: the agent's calls all answered, and a fresh one does too
    r = agent.post("/heartbeat", {"version": "1.9.65"})
    assert r.status_code == 200, r.text


def test_updates_are_rate_limited_per_channel(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    ws = new_workspace(alert_server)
    path = _path()
    channel(ws.client, receiver.url(path))
    agent = agent_for(alert_server, ws)
    inc = open_incident(agent, peak_pps=20_000.0, peak_bps=1e8)
    assert wait_until(lambda: receiver.events(path) == ["attack_start"])
    # the peak grows 3x, 9x, 27x within the (default 300 s) interval: one update, the first
    for pps in (60_000.0, 180_000.0, 540_000.0):
        r = agent.post(f"/incidents/{inc}", {**SPARSE_UPDATE, "peak_pps": pps, "peak_bps": 1e8})
        assert r.status_code == 200, r.text
    # a growth below the factor would not have counted either way
    resolve(agent, inc)
    assert wait_until(lambda: receiver.events(path)[-1:] == ["attack_end"])
    assert receiver.events(path) == ["attack_start", "attack_update", "attack_end"]
    update = receiver.delivered(path)[1]
    assert "peak" in update.body["changes"]
    assert update.body["incident"]["peak_pps"] == 60_000.0


def test_filters_choose_what_a_channel_gets(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    ws = new_workspace(alert_server)
    every, critical_only, other_node, starts_only = _path(), _path(), _path(), _path()
    ch_all = channel(ws.client, receiver.url(every))
    ch_crit = channel(ws.client, receiver.url(critical_only), min_severity="critical")
    ch_node = channel(ws.client, receiver.url(other_node), nodes=[str(uuid.uuid4())])
    channel(ws.client, receiver.url(starts_only), events=["attack_start"])
    agent = agent_for(alert_server, ws)
    # 20 kpps: medium, below the critical channel's minimum
    inc = open_incident(agent, peak_pps=20_000.0, peak_bps=1e8)
    resolve_body = {**RESOLVE, "peak_pps": 20_000.0, "peak_bps": 1e8}
    assert agent.post(f"/incidents/{inc}/resolve", resolve_body).status_code == 200
    assert wait_until(lambda: receiver.events(every) == ["attack_start", "attack_end"])
    assert wait_until(lambda: receiver.events(starts_only) == ["attack_start"])
    # a critical incident reaches the critical channel; the other node's channel gets nothing
    big = open_incident(agent, started_at="2026-03-14T20:00:00+00:00")
    assert wait_until(lambda: receiver.events(critical_only) == ["attack_start"])
    assert receiver.delivered(critical_only)[0].body["incident"]["uuid"] == big
    assert wait_until(lambda: len(receiver.delivered(every)) == 3)
    assert receiver.got(other_node) == []
    assert deliveries(ws.client, ch_node)["total"] == 0
    assert deliveries(ws.client, ch_crit)["total"] == 1
    assert deliveries(ws.client, ch_all)["total"] == 3
    assert receiver.events(starts_only) == ["attack_start", "attack_start"]


def test_node_deletion_ends_its_incidents(alert_server: Server, receiver: WebhookReceiver) -> None:
    ws = new_workspace(alert_server)
    path = _path()
    channel(ws.client, receiver.url(path))
    agent = agent_for(alert_server, ws)
    inc = open_incident(agent)
    assert wait_until(lambda: receiver.events(path) == ["attack_start"])
    r = ws.client.delete(f"/api/v1/nodes/{agent.node['uuid']}")
    assert r.status_code == 200, r.text
    assert wait_until(lambda: receiver.events(path) == ["attack_start", "attack_end"])
    end = receiver.delivered(path)[1]
    assert end.body["end_reason"] == "node_deleted" and end.body["incident"]["uuid"] == inc


def test_a_disabled_channel_gets_nothing(alert_server: Server, receiver: WebhookReceiver) -> None:
    ws = new_workspace(alert_server)
    off, on = _path(), _path()
    ch_off = channel(ws.client, receiver.url(off))
    channel(ws.client, receiver.url(on))
    r = ws.client.patch(f"/api/v1/channels/{ch_off['uuid']}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["channel"]["enabled"] is False
    agent = agent_for(alert_server, ws)
    open_incident(agent)
    assert wait_until(lambda: receiver.events(on) == ["attack_start"])
    assert receiver.got(off) == []
    assert deliveries(ws.client, ch_off)["total"] == 0


def test_restart_mid_retry_delivers_once_with_the_same_id(
    tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver
) -> None:
    data = tmp_path_factory.mktemp("alerts-restart") / "data"
    env = {**ALERT_ENV, "FLOODWATCH_ALERTS__GIVE_UP_AFTER_SECS": "600"}
    srv = start_server(data, env=env)
    path = _path()
    receiver.set(path, "fail")
    try:
        ws = new_workspace(srv)
        ch = channel(ws.client, receiver.url(path))
        agent = agent_for(srv, ws)
        open_incident(agent)
        assert wait_until(lambda: len(receiver.got(path)) >= 2)
    finally:
        srv.stop()
    receiver.set(path, "ok")
    srv = start_server(data, env=env)
    try:
        assert wait_until(lambda: receiver.events(path) == ["attack_start"])
        got = receiver.got(path)
        assert [r.answered for r in got][-1] == "ok"
        assert all(r.answered == "fail" for r in got[:-1]) and len(got) >= 3
        assert len({r.delivery_id for r in got}) == 1
        log = deliveries(Client(srv, ws.token), ch)["deliveries"]
        assert log[0]["status"] == "sent" and log[0]["attempt"] == len(log)
        assert {d["delivery_id"] for d in log} == {got[0].delivery_id}
    finally:
        srv.stop()


def test_a_detected_flood_alerts_start_then_end(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    from datetime import UTC, datetime, timedelta

    from .test_detection_e2e import _collector, _node, _rows, _send

    ws = new_workspace(alert_server)
    path = _path()
    channel(ws.client, receiver.url(path))
    node = _node(ws.client, "203.0.113.77")
    key = _collector(ws.client)
    now = datetime.now(UTC).replace(microsecond=0)
    _send(
        alert_server,
        key,
        _rows(node["ip"], now - timedelta(hours=2, minutes=5), 7200, 2000.0, 0.05),
    )
    live = now - timedelta(seconds=30)
    _send(alert_server, key, _rows(node["ip"], live, 20, 2000.0, 0.05))
    assert receiver.got(path) == []
    _send(alert_server, key, _rows(node["ip"], live + timedelta(seconds=20), 6, 50_000.0, 0.97))
    assert wait_until(lambda: receiver.events(path) == ["attack_start"])
    start = receiver.delivered(path)[0]
    assert start.signature_ok is True
    assert start.body["incident"]["attack_family"] == "udp_flood"
    assert start.body["node"]["ip_address"] == node["ip"]
    after = live + timedelta(seconds=26)
    _send(alert_server, key, _rows(node["ip"], after, 240, 2000.0, 0.05))
    assert wait_until(lambda: receiver.events(path)[-1:] == ["attack_end"])
    events = receiver.events(path)
    assert events[0] == "attack_start" and events.count("attack_start") == 1
    assert set(events[1:-1]) <= {"attack_update"}
    end = receiver.delivered(path)[-1]
    assert end.body["incident"]["uuid"] == start.body["incident"]["uuid"]
    assert end.body["end_reason"] == "resolved" and end.signature_ok is True
