"""Alert delivery end to end: the real server, the real Agent API and telemetry, and real local
webhook receivers that fail, hang, rate-limit and refuse on purpose. Nothing here measures
time: each test waits for a condition with a generous deadline, then checks order, content and
counts."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .alert_receivers import WebhookReceiver, wait_until
from .conftest import (
    Client,
    Server,
    Workspace,
    free_port,
    new_workspace,
    start_server,
)
from .test_agent_api import OPEN, RESOLVE, Agent

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
    ch = channel(ws.client, f"http://127.0.0.1:{free_port()}/nobody")
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
