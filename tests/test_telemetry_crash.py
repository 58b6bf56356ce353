"""Kill the server with SIGKILL while senders stream; every acknowledged row must be in the lake
exactly once after a restart, and re-sent unacknowledged batches must not duplicate rows."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import requests

from .conftest import Server, new_workspace, start_server
from .telemetry import ipc_bytes, lake_query, metrics_table, post_batch, wait_for

ROWS = 400
ENV = {"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.3", "FLOODWATCH_INGEST__FLUSH_ROWS": "3000"}


class Streamer:
    """Senders that post numbered batches until the server goes away."""

    def __init__(self, base_url: str, key: str, first_batch: int, threads: int = 3) -> None:
        self.base_url = base_url
        self.key = key
        self.acked: set[int] = set()
        self.unacked: set[int] = set()
        self._next = first_batch
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _take(self) -> int:
        with self._lock:
            n = self._next
            self._next += 1
            return n

    def _run(self) -> None:
        while not self._stop.is_set():
            n = self._take()
            body = ipc_bytes(metrics_table(range(n * ROWS, (n + 1) * ROWS)), "lz4")
            try:
                r = post_batch(self.base_url, self.key, body, batch_id=f"batch-{n}", timeout=10)
            except requests.RequestException:
                with self._lock:
                    self.unacked.add(n)
                return
            with self._lock:
                (self.acked if r.status_code == 202 else self.unacked).add(n)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def _counts(data_dir: Path, node: str) -> tuple[int, int]:
    row = lake_query(
        data_dir,
        f"SELECT count(*), count(DISTINCT pps) FROM metrics WHERE node_uuid = '{node}'",
    )[0]
    return int(row[0]), int(row[1])


def test_sigkill_while_streaming_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv: Server = start_server(data, env=ENV)
    ws = new_workspace(srv)
    r = ws.client.post(
        "/api/v1/nodes", json={"name": f"n-{uuid.uuid4().hex[:6]}", "ip": "192.0.2.5"}
    )
    node, key = r.json()["node"]["uuid"], r.json()["node"]["api_key"]

    acked: set[int] = set()
    unacked: set[int] = set()
    first = 0
    for _round in range(3):
        streamer = Streamer(srv.base_url, key, first)
        streamer.start()
        assert wait_for(lambda s=streamer: len(s.acked) >= 15, timeout=60)  # type: ignore[misc]
        srv.stop(signal.SIGKILL)
        streamer.join()
        acked |= streamer.acked
        unacked |= streamer.unacked
        first = streamer._next + 1
        srv = start_server(data, env=ENV)

    # the senders retry what was not acknowledged, with the same batch ids
    for n in sorted(unacked):
        body = ipc_bytes(metrics_table(range(n * ROWS, (n + 1) * ROWS)), "lz4")
        resent = post_batch(srv.base_url, key, body, batch_id=f"batch-{n}")
        assert resent.status_code == 202, resent.text

    expected = (len(acked) + len(unacked)) * ROWS
    assert wait_for(lambda: _counts(data, node)[0] >= expected, timeout=60)
    total, distinct = _counts(data, node)
    dupes = lake_query(
        data,
        f"SELECT CAST(pps AS BIGINT) // {ROWS} AS b, count(*) FROM metrics "
        f"WHERE node_uuid = '{node}' GROUP BY 1 HAVING count(*) <> {ROWS} ORDER BY 1",
    )
    assert total == expected, (total, expected, distinct, dupes, sorted(acked), sorted(unacked))
    assert distinct == expected
    srv.stop()
    # and after a clean stop and start, still exactly once
    srv = start_server(data, env=ENV)
    assert _counts(data, node) == (expected, expected)
    srv.stop()
