"""The refusals and matching rules that docs/wire-format.md promises, against the real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import requests

from .conftest import Client, Server, assert_error, new_workspace, start_server
from .telemetry import flows_table, ipc_bytes, lake_query, metrics_table, post_batch, wait_for


@pytest.fixture(scope="module")
def wserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("wire") / "data",
        env={
            "FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2",
            "FLOODWATCH_LAKE__FLOWS_RETENTION_DAYS": "2",
        },
    )
    yield srv
    srv.stop()


def _node(client: Client, ip: str) -> dict[str, str]:
    r = client.post("/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:8]}", "ip": ip})
    assert r.status_code == 201, r.text
    node: dict[str, str] = r.json()["node"]
    return node


def _collector(client: Client) -> str:
    r = client.post("/api/v1/collectors", json={"name": "c"})
    assert r.status_code == 201, r.text
    key: str = r.json()["collector"]["key"]
    return key


@pytest.mark.parametrize("bad", ["", "x" * 129, "a b", "id/1", "é"])
def test_malformed_batch_id_names_the_header(wserver: Server, bad: str) -> None:
    ws = new_workspace(wserver)
    node = _node(ws.client, "203.0.113.5")
    body = ipc_bytes(metrics_table(range(3)))
    headers = {"X-Batch-Id": bad.encode().decode("latin-1")}
    r = post_batch(wserver.base_url, node["api_key"], body, headers=headers)
    err = assert_error(r, 400, "invalid_batch")
    assert err["error"]["field"] == "X-Batch-Id"


def test_ipv6_addresses_match_by_value_not_spelling(wserver: Server) -> None:
    ws = new_workspace(wserver)
    node = _node(ws.client, "2001:db8:0:0::42")
    key = _collector(ws.client)
    spellings = ["2001:DB8::42", "2001:db8::42", "2001:0db8:0000:0000:0000:0000:0000:0042"]
    body = ipc_bytes(metrics_table(range(3), node_ip=spellings))
    r = post_batch(wserver.base_url, key, body)
    assert r.status_code == 202, r.text
    flows = ipc_bytes(flows_table(4, "2001:db8:0::42"))
    assert post_batch(wserver.base_url, key, flows, kind="flows").status_code == 202

    def counts() -> tuple[int, int]:
        where = f"node_uuid = '{node['uuid']}'"
        m = lake_query(wserver.data_dir, f"SELECT count(*) FROM metrics WHERE {where}")[0][0]
        f = lake_query(wserver.data_dir, f"SELECT count(*) FROM flows WHERE {where}")[0][0]
        return int(m), int(f)

    assert wait_for(lambda: counts() == (3, 4)), counts()
    # an IPv4-mapped IPv6 address is another address
    mapped = _node(ws.client, "192.0.2.8")
    assert mapped["ip"] == "192.0.2.8"
    body = ipc_bytes(metrics_table(range(1), node_ip=["::ffff:192.0.2.8"]))
    err = assert_error(post_batch(wserver.base_url, key, body), 400, "invalid_batch")
    assert err["error"]["field"] == "node_ip"


def test_foreign_node_is_400_for_collectors_and_403_for_node_keys(wserver: Server) -> None:
    ws, other = new_workspace(wserver), new_workspace(wserver)
    mine = _node(ws.client, "203.0.113.60")
    theirs = _node(other.client, "203.0.113.61")
    key = _collector(ws.client)
    body = ipc_bytes(metrics_table(range(1), node=[theirs["uuid"]]))
    assert (
        assert_error(post_batch(wserver.base_url, key, body), 400, "invalid_batch")["error"][
            "field"
        ]
        == "node"
    )
    unknown = ipc_bytes(metrics_table(range(1), node=[str(uuid.uuid4())]))
    assert (
        assert_error(post_batch(wserver.base_url, key, unknown), 400, "invalid_batch")["error"][
            "field"
        ]
        == "node"
    )
    err = assert_error(post_batch(wserver.base_url, mine["api_key"], body), 403, "forbidden")
    assert err["error"]["field"] == "node"


def test_flows_window_follows_flows_retention(wserver: Server) -> None:
    ws = new_workspace(wserver)
    node = _node(ws.client, "203.0.113.70")
    old = datetime.now(UTC) - timedelta(days=3)
    # metrics keep 15 days: a 3-day-old second is accepted
    metrics = ipc_bytes(metrics_table(range(2), start=old))
    assert post_batch(wserver.base_url, node["api_key"], metrics).status_code == 202
    # flows keep 2 days here: the same age is refused, naming time
    flows = ipc_bytes(flows_table(2, "203.0.113.70", start=old))
    err = assert_error(
        post_batch(wserver.base_url, node["api_key"], flows, kind="flows"), 400, "invalid_batch"
    )
    assert err["error"]["field"] == "time"
    fresh = ipc_bytes(flows_table(2, "203.0.113.70", start=old + timedelta(days=2)))
    assert post_batch(wserver.base_url, node["api_key"], fresh, kind="flows").status_code == 202


def test_router_flows_to_no_node_can_be_dropped_and_counted(wserver: Server) -> None:
    ws = new_workspace(wserver)
    node = _node(ws.client, "203.0.113.80")
    key = _collector(ws.client)
    mine = flows_table(6, "203.0.113.80")
    transit = flows_table(4, "198.51.100.200")

    body = ipc_bytes(pa.concat_tables([mine, transit]))
    # by default the whole batch is refused
    err = assert_error(post_batch(wserver.base_url, key, body, kind="flows"), 400, "invalid_batch")
    assert err["error"]["field"] == "dst_ip"
    bad = {"X-Floodwatch-Unrouted": "ignore"}
    err = assert_error(
        post_batch(wserver.base_url, key, body, kind="flows", headers=bad), 400, "invalid_batch"
    )
    assert err["error"]["field"] == "X-Floodwatch-Unrouted"
    drop = {"X-Floodwatch-Unrouted": "drop"}
    r = post_batch(wserver.base_url, key, body, kind="flows", headers=drop, batch_id="r1")
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 6 and r.json()["dropped_unrouted"] == 4
    # all transit: accepted 0, nothing stored, still 202
    only = ipc_bytes(transit)
    r = post_batch(wserver.base_url, key, only, kind="flows", headers=drop)
    assert r.status_code == 202 and r.json()["accepted"] == 0
    assert r.json()["dropped_unrouted"] == 4

    def stored() -> int:
        q = f"SELECT count(*) FROM flows WHERE node_uuid = '{node['uuid']}'"
        return int(lake_query(wserver.data_dir, q)[0][0])

    assert wait_for(lambda: stored() == 6), stored()
    metrics = requests.get(wserver.url("/metrics"), timeout=10).text
    assert 'floodwatch_ingest_rows_dropped_unrouted_total{kind="flows"} 8' in metrics
