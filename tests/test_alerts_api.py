"""The channel endpoints the alert dispatcher adds: PATCH, the delivery log and tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .alert_receivers import WebhookReceiver, wait_until
from .conftest import Server, assert_error, new_workspace
from .test_alerts_dispatch import SECRET, agent_for, channel, deliveries, open_incident, resolve


@pytest.fixture(scope="module")
def rx() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=SECRET)
    yield receiver
    receiver.close()


def _path() -> str:
    return "api-" + uuid.uuid4().hex[:10]


def test_patch_changes_and_validates(server: Server, rx: WebhookReceiver) -> None:
    ws = new_workspace(server)
    url = rx.url(_path())
    ch = channel(ws.client, url)
    masked = ch["config"]
    assert masked["secret"] != SECRET and masked["url"] != url
    # a rename plus the masked config sent back unchanged: the stored secret and URL are kept
    r = ws.client.patch(f"/api/v1/channels/{ch['id']}", json={"name": "renamed", "config": masked})
    assert r.status_code == 200, r.text
    assert r.json()["channel"]["name"] == "renamed"
    assert r.json()["channel"]["config"] == masked
    result = ws.client.post(f"/api/v1/channels/{ch['id']}/test").json()["test"]
    assert result["delivered"] is True, result
    assert rx.requests[-1].signature_ok is True and rx.requests[-1].event == "test"
    # a filter and a new secret
    r = ws.client.patch(
        f"/api/v1/channels/{ch['uuid']}",
        json={"config": {"min_severity": "high", "secret": "another-secret-value"}},
    )
    assert r.status_code == 200, r.text
    cfg = r.json()["channel"]["config"]
    assert cfg["min_severity"] == "high" and cfg["secret"] != masked["secret"]
    # null removes an optional key
    r = ws.client.patch(f"/api/v1/channels/{ch['id']}", json={"config": {"min_severity": None}})
    assert "min_severity" not in r.json()["channel"]["config"]
    for body, field in (
        ({"config": {"url": "ftp://example.net/x"}}, "config.url"),
        ({"config": {"min_severity": "extreme"}}, "config.min_severity"),
        ({"config": {"nope": 1}}, "config.nope"),
        ({"config": "x"}, "config"),
        ({"name": ""}, "name"),
        ({"enabled": "yes"}, "enabled"),
        ({"type": "slack"}, "type"),
        ({"colour": "red"}, "colour"),
    ):
        err = assert_error(
            ws.client.patch(f"/api/v1/channels/{ch['id']}", json=body), 400, "invalid_parameter"
        )
        assert err["error"]["field"] == field, (body, err)
    # nothing of the refused changes was stored
    got = ws.client.get(f"/api/v1/channels/{ch['id']}").json()["channel"]
    assert got["name"] == "renamed" and got["enabled"] is True


def test_test_endpoint_reports_the_outcome(server: Server, rx: WebhookReceiver) -> None:
    ws = new_workspace(server)
    path = _path()
    rx.set(path, "fail")
    ch = channel(ws.client, rx.url(path))
    r = ws.client.post(f"/api/v1/channels/{ch['uuid']}/test")
    assert r.status_code == 200, r.text
    failed = r.json()["test"]
    assert failed["delivered"] is False and failed["http_status"] == 500
    assert failed["status"] == "failed" and failed["retryable"] is True
    rx.set(path, "ok")
    ok = ws.client.post(f"/api/v1/channels/{ch['id']}/test").json()["test"]
    assert ok["delivered"] is True and ok["http_status"] == 200
    [sent] = [m for m in rx.got(path) if m.answered == "ok"]
    assert sent.delivery_id == ok["delivery_id"] and sent.body["event_type"] == "test"
    # both are in the delivery log, newest first, never retried
    log = deliveries(ws.client, ch)
    assert log["total"] == 2
    assert [(d["event"], d["status"]) for d in log["deliveries"]] == [
        ("test", "sent"),
        ("test", "failed"),
    ]


def test_delivery_log_pages_and_is_workspace_scoped(server: Server, rx: WebhookReceiver) -> None:
    ws = new_workspace(server)
    path = _path()
    ch = channel(ws.client, rx.url(path))
    agent = agent_for(server, ws)
    incs = [
        open_incident(agent, started_at=f"2026-03-14T18:1{i}:41+00:00", inner_ip=f"10.9.0.{i}")
        for i in range(3)
    ]
    for inc in incs:
        resolve(agent, inc)
    assert wait_until(lambda: deliveries(ws.client, ch)["total"] == 6)
    whole = deliveries(ws.client, ch, limit=100)["deliveries"]
    assert [d["id"] for d in whole] == sorted((d["id"] for d in whole), reverse=True)
    pages = [deliveries(ws.client, ch, limit=4, offset=o) for o in (0, 4)]
    assert [len(p["deliveries"]) for p in pages] == [4, 2]
    assert [d["id"] for p in pages for d in p["deliveries"]] == [d["id"] for d in whole]
    assert pages[1]["limit"] == 4 and pages[1]["offset"] == 4 and pages[1]["total"] == 6
    assert_error(
        ws.client.get(f"/api/v1/channels/{ch['id']}/deliveries?limit=0"), 400, "invalid_parameter"
    )
    other = new_workspace(server)
    for ref in (ch["id"], ch["uuid"]):
        assert_error(other.client.get(f"/api/v1/channels/{ref}/deliveries"), 404, "not_found")
        assert_error(other.client.post(f"/api/v1/channels/{ref}/test"), 404, "not_found")
        assert_error(
            other.client.patch(f"/api/v1/channels/{ref}", json={"enabled": False}),
            404,
            "not_found",
        )
    assert_error(ws.client.get("/api/v1/channels/999999999/deliveries"), 404, "not_found")
    assert ws.client.get(f"/api/v1/channels/{ch['id']}").json()["channel"]["enabled"] is True


def test_metrics_count_alerts_by_type(server: Server, rx: WebhookReceiver) -> None:
    import requests

    ws = new_workspace(server)
    ch = channel(ws.client, rx.url(_path()))
    assert ws.client.post(f"/api/v1/channels/{ch['id']}/test").json()["test"]["delivered"]
    text = requests.get(server.url("/metrics"), timeout=10).text
    line = next(x for x in text.splitlines() if x.startswith("floodwatch_alerts_sent_total{"))
    assert line.startswith('floodwatch_alerts_sent_total{type="webhook"} ')
    assert float(line.split()[-1]) >= 1
    assert "floodwatch_alerts_queue_depth " in text
    assert "floodwatch_alerts_delivery_seconds_count " in text
    assert rx.url("") not in text
