"""Batch ids are scoped to the key that sends them (wire format: "unique per batch of the
sender"). Several collector keys of one workspace, and node keys, reusing the same ids must each
have every batch stored exactly once; only a re-send by the same key is a duplicate."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Server, Workspace, new_workspace, start_server
from .telemetry import ipc_bytes, lake_query, metrics_table, post_batch, wait_for


@pytest.fixture(scope="module")
def bserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("batchid") / "data",
        env={"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.2"},
    )
    yield srv
    srv.stop()


def _collector(ws: Workspace) -> str:
    r = ws.client.post("/api/v1/collectors", json={"name": f"c-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    key: str = r.json()["collector"]["key"]
    return key


_sends = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["batch-1", "batch-2", "b:3"])),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sends=_sends)
def test_collector_keys_reusing_ids_each_store_their_batches(
    bserver: Server, sends: list[tuple[int, str]]
) -> None:
    ws = new_workspace(bserver)
    r = ws.client.post("/api/v1/nodes", json={"name": "n", "ip": "203.0.113.7"})
    assert r.status_code == 201, r.text
    node = r.json()["node"]["uuid"]
    keys = [_collector(ws) for _ in range(4)]
    start = datetime.now(UTC) - timedelta(minutes=5)
    expected_rows = 0
    seen: set[tuple[int, str]] = set()
    for n, (k, batch_id) in enumerate(sends):
        # every send carries different rows, so a wrongly dropped batch shows in the lake
        table = metrics_table(
            [n * 10 + i for i in range(10)],
            start=start + timedelta(seconds=n),
            node=[node] * 10,
        )
        resp = post_batch(bserver.base_url, keys[k], ipc_bytes(table), batch_id=batch_id)
        assert resp.status_code == 202, resp.text
        body = resp.json()
        if (k, batch_id) in seen:
            assert body["duplicate"] is True and body["accepted"] == 0
        else:
            assert body["duplicate"] is False and body["accepted"] == 10, (k, batch_id, body)
            seen.add((k, batch_id))
            expected_rows += 10

    def stored() -> int:
        q = f"SELECT count(*) FROM metrics WHERE node_uuid = '{node}'"
        return int(lake_query(bserver.data_dir, q)[0][0])

    assert wait_for(lambda: stored() == expected_rows), (stored(), expected_rows)
