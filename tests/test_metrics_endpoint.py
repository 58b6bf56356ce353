"""The server's own ``GET /metrics``: exposed by prometheus_client from the process-wide registry
in ``api.metrics``, with every series it had, and answered only on loopback or with
``server.metrics_token``.

Real servers over real HTTP: the session server (loopback only, no token), and servers bound to
0.0.0.0 reached through this machine's own non-loopback address when it has one (the peer the
server sees is then that address, not loopback). The access decision is also tested directly,
for every case, in case no such address exists.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from api.config import ConfigError, dump_toml, load_config
from api.dispatcher import ALERT_METRICS
from api.metrics import (
    REGISTRY,
    MetricSetCollector,
    exposition,
    is_loopback,
    metrics_refusal,
)
from ingest.metrics import METRICS, Counter, Gauge, Histogram, MetricSet

from .conftest import Server, assert_error, start_server

TOKEN = "mt-" + "7f3a9c" * 6  # what an operator would configure
WRONG = "mt-" + "0b1d2e" * 6  # a guess of the same shape
GUESSES = 10  # api.auth_failures_per_minute of the token server

# Every series /metrics has served (name without _total for counters, as the parser names
# families): type and label names. A renamed, retyped or relabelled metric fails here.
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "floodwatch_ingest_rows_received": ("counter", ("kind",)),
    "floodwatch_ingest_rows_dropped_unrouted": ("counter", ("kind",)),
    "floodwatch_ingest_rows_accepted": ("counter", ("kind",)),
    "floodwatch_ingest_batches_rejected": ("counter", ("kind", "reason")),
    "floodwatch_ingest_batches_duplicate": ("counter", ("kind",)),
    "floodwatch_wal_fsync_seconds": ("histogram", ()),
    "floodwatch_wal_groups": ("counter", ()),
    "floodwatch_wal_bytes": ("counter", ()),
    "floodwatch_wal_torn_tails": ("counter", ()),
    "floodwatch_wal_replayed_rows": ("counter", ()),
    "floodwatch_flush_rows": ("histogram", ()),
    "floodwatch_flush_seconds": ("histogram", ()),
    "floodwatch_buffer_rows": ("gauge", ()),
    "floodwatch_buffer_bytes": ("gauge", ()),
    "floodwatch_wal_pending_bytes": ("gauge", ()),
    "floodwatch_decode_queue": ("gauge", ()),
    "floodwatch_lake_compactions": ("counter", ()),
    "floodwatch_lake_retention_deleted": ("counter", ()),
    "floodwatch_event_loop_lag_seconds": ("histogram", ()),
    "floodwatch_gc_pause_seconds": ("histogram", ()),
    "floodwatch_agent_request_seconds": ("histogram", ()),
    "floodwatch_agent_config_cache": ("counter", ("result",)),
    "floodwatch_agent_requests": ("counter", ("endpoint", "status")),
    "floodwatch_alerts_sent": ("counter", ("type",)),
    "floodwatch_alerts_failed": ("counter", ("type",)),
    "floodwatch_alerts_retried": ("counter", ("type",)),
    "floodwatch_alerts_queue_depth": ("gauge", ()),
    "floodwatch_alerts_delivery_seconds": ("histogram", ()),
}


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


# --------------------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    "peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "::ffff:127.1.2.3"]
)
def test_loopback_peers(peer: str) -> None:
    assert is_loopback(peer)
    assert metrics_refusal(peer, {}, "") is None
    assert metrics_refusal(peer, {}, TOKEN) is None  # a configured token is not asked of them


@pytest.mark.parametrize(
    "peer",
    [
        "192.0.2.2",
        "10.0.0.1",
        "128.0.0.1",
        "0.0.0.0",
        "::",
        "::ffff:192.0.2.1",
        "fd00::2",
        "fe80::1%eth0",
        "2001:db8::1",
        "localhost",
        "/run/floodwatch.sock",
        "",
        None,
    ],
)
def test_other_peers(peer: str | None) -> None:
    assert not is_loopback(peer)
    refused = metrics_refusal(peer, {"Authorization": f"Bearer {TOKEN}"}, "")
    assert refused is not None and (refused.status, refused.code) == (403, "forbidden")
    assert "server.metrics_token" in refused.message
    assert metrics_refusal(peer, {"Authorization": f"Bearer {TOKEN}"}, TOKEN) is None
    for headers in (
        {},
        {"Authorization": f"Bearer {WRONG}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
        {"X-Metrics-Token": TOKEN},
    ):
        refused = metrics_refusal(peer, headers, TOKEN)
        assert refused is not None and (refused.status, refused.code) == (401, "unauthorized")
        assert TOKEN not in refused.message and WRONG not in refused.message


def test_bearer_scheme_and_header_name_in_any_case() -> None:
    assert metrics_refusal("192.0.2.2", {"authorization": f"bearer  {TOKEN} "}, TOKEN) is None
    assert metrics_refusal("192.0.2.2", {"AUTHORIZATION": f"BEARER {TOKEN}"}, TOKEN) is None


@pytest.mark.parametrize("header", ["Forwarded", "X-Forwarded-For", "x-real-ip"])
def test_a_proxied_loopback_request_is_not_local(header: str) -> None:
    """A reverse proxy on the same machine connects from loopback for anyone: a request that
    carries a proxy header needs the token even from loopback (the header is never trusted to
    name the client, only to say that someone else is behind the connection)."""
    proxied = {header: "203.0.113.9"}
    refused = metrics_refusal("127.0.0.1", proxied, "")
    assert refused is not None and refused.status == 403
    refused = metrics_refusal("127.0.0.1", proxied, TOKEN)
    assert refused is not None and refused.status == 401
    assert (
        metrics_refusal("127.0.0.1", {**proxied, "Authorization": f"Bearer {TOKEN}"}, TOKEN) is None
    )
    # and a forged header never makes a remote peer local
    assert metrics_refusal("192.0.2.2", {"X-Forwarded-For": "127.0.0.1"}, "") is not None


# --------------------------------------------------------------------------- the exposition


def test_metric_sets_become_families_of_the_same_names_types_and_labels() -> None:
    class Probe(MetricSet):
        def __init__(self) -> None:
            self.calls = Counter("probe_calls_total", "Calls", ("kind", "status"))
            self.idle = Counter("probe_idle_total", "Never counted")
            self.depth = Gauge("probe_depth", "Depth")
            self.bound = Gauge("probe_bound", "Bound", lambda: 7)
            self.size = Histogram("probe_rows", "Rows", (100, 1_000_000))

    probe = Probe()
    probe.calls.inc(2, "flows", "200")
    probe.calls.inc(1, "flows", "200")
    probe.calls.inc(5, "metrics", "503")
    probe.depth.set(3.5)
    for rows in (100, 101, 2_000_000):
        probe.size.observe(rows)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MetricSetCollector([probe]))
    text = exposition(registry).decode()
    fams = _families(text)
    assert {n: f.type for n, f in fams.items()} == {
        "probe_calls": "counter",
        "probe_idle": "counter",
        "probe_depth": "gauge",
        "probe_bound": "gauge",
        "probe_rows": "histogram",
    }
    calls = {tuple(s.labels.items()): s.value for s in fams["probe_calls"].samples}
    assert calls == {
        (("kind", "flows"), ("status", "200")): 3.0,
        (("kind", "metrics"), ("status", "503")): 5.0,
    }
    assert [(s.name, s.value) for s in fams["probe_idle"].samples] == [("probe_idle_total", 0)]
    assert fams["probe_depth"].samples[0].value == 3.5
    assert fams["probe_bound"].samples[0].value == 7
    rows = {(s.name, s.labels.get("le")): s.value for s in fams["probe_rows"].samples}
    assert rows == {
        ("probe_rows_bucket", "100"): 1,  # le: the bound is included
        ("probe_rows_bucket", "1e+06"): 2,  # bounds written as before (%g)
        ("probe_rows_bucket", "+Inf"): 3,
        ("probe_rows_count", None): 3,
        ("probe_rows_sum", None): 2_000_201,
    }
    assert "_created" not in text  # no series the old exposition did not have
    assert "# TYPE probe_calls_total counter" in text  # the name scrapers saw before


def test_the_process_registry_exposes_every_metric_of_both_sets() -> None:
    fams = _families(exposition().decode())
    defined = {m.name.removesuffix("_total") for s in (METRICS, ALERT_METRICS) for m in s.metrics()}
    assert defined == set(EXPECTED)
    assert {n: f.type for n, f in fams.items() if n in EXPECTED} == {
        n: t for n, (t, _) in EXPECTED.items()
    }
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        REGISTRY.register(MetricSetCollector([ALERT_METRICS]))  # names are checked


def test_metric_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="_total"):
        Counter("probe_calls", "a counter's name ends in _total")
    with pytest.raises(ValueError, match="labels"):
        Counter("probe_calls_total", "Calls", ("kind",)).inc(1)
    with pytest.raises(ValueError, match="increase"):
        Histogram("probe_rows", "Rows", (10, 5))


# --------------------------------------------------------------------------- the setting


def test_the_token_setting_is_validated_and_never_dumped(tmp_path: Path) -> None:
    cfg = load_config(environ={"FLOODWATCH_SERVER__METRICS_TOKEN": TOKEN})
    assert cfg.server.metrics_token == TOKEN
    assert load_config(environ={}).server.metrics_token == ""
    toml = tmp_path / "fw.toml"
    toml.write_text(f'[server]\nmetrics_token = "{TOKEN}"\n')
    assert load_config(toml, environ={}).server.metrics_token == TOKEN
    dumped = dump_toml(cfg)
    assert TOKEN not in dumped and 'metrics_token = "<set, not shown>"' in dumped
    for bad in ("short-token", "has a space in it", "x" * 257, "tøken-with-non-ascii-chars"):
        with pytest.raises(ConfigError, match=r"server\.metrics_token") as caught:
            load_config(environ={"FLOODWATCH_SERVER__METRICS_TOKEN": bad})
        assert bad not in str(caught.value)


# --------------------------------------------------------------------------- live servers


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine, not loopback, that a socket bound to 0.0.0.0 is reached
    on (and sees as the peer); None when there is none."""
    candidates: list[str] = []
    for target in ("192.0.2.1", "10.255.255.1", "198.51.100.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.connect((target, 9))  # sends nothing: picks the route's source address
            except OSError:
                continue
            candidates.append(udp.getsockname()[0])
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        candidates += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    for address in dict.fromkeys(candidates):
        if is_loopback(address) or address == "0.0.0.0":
            continue
        with socket.socket() as listener:
            listener.bind(("0.0.0.0", 0))
            listener.listen(1)
            try:
                with socket.create_connection((address, listener.getsockname()[1]), timeout=2):
                    conn, peer = listener.accept()
                    conn.close()
            except OSError:
                continue
            if peer[0] == address:
                return address
    return None


@pytest.fixture(scope="module")
def remote_address() -> str | None:
    return _non_loopback_address()


def _need(address: str | None) -> str:
    if address is None:
        msg = "this machine has no non-loopback IPv4 address to connect from"
        if os.environ.get("CI") == "true":  # CI runs where one exists: never skip silently there
            pytest.fail(msg)
        pytest.skip(msg)
    return address


def _get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=30)


def test_loopback_scrape_parses_and_has_every_series(server: Server) -> None:
    resp = _get(server.url("/metrics"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    fams = _families(resp.text)
    served = {n: (f.type, f) for n, f in fams.items()}
    for name, (kind, labels) in EXPECTED.items():
        assert name in served, name
        assert served[name][0] == kind, name
        for sample in served[name][1].samples:
            assert set(sample.labels) - {"le"} == set(labels), (name, sample)
    assert set(fams) == set(EXPECTED)  # nothing else either


def test_no_token_configured_refuses_proxied_loopback_requests(server: Server) -> None:
    assert_error(
        _get(server.url("/metrics"), **{"X-Forwarded-For": "203.0.113.9"}), 403, "forbidden"
    )


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("metrics-token") / "data",
        env={
            "FLOODWATCH_SERVER__HOST": "0.0.0.0",
            "FLOODWATCH_SERVER__METRICS_TOKEN": TOKEN,
            "FLOODWATCH_SERVER__ACCESS_LOG": "all",
            "FLOODWATCH_SERVER__LOG_LEVEL": "debug",
            "FLOODWATCH_API__AUTH_FAILURES_PER_MINUTE": str(GUESSES),
        },
    )
    yield srv
    srv.stop()


def test_a_configured_token_works_and_loopback_still_needs_none(token_server: Server) -> None:
    url = token_server.url("/metrics")
    assert _get(url).status_code == 200
    resp = _get(url, Authorization=f"Bearer {TOKEN}")
    assert resp.status_code == 200 and "floodwatch_wal_groups_total" in resp.text
    # behind a local proxy: the token is needed, and enough
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert_error(_get(url, **proxied), 401, "unauthorized")
    resp = _get(url, **proxied, Authorization=f"Bearer {TOKEN}")
    assert resp.status_code == 200, resp.text
    assert _families(resp.text).keys() == EXPECTED.keys()


def test_a_remote_peer_needs_the_token(token_server: Server, remote_address: str | None) -> None:
    url = f"http://{_need(remote_address)}:{token_server.port}/metrics"
    body = assert_error(_get(url), 401, "unauthorized")
    assert "missing" in body["error"]["message"]
    body = assert_error(_get(url, Authorization=f"Bearer {WRONG}"), 401, "unauthorized")
    assert body["error"]["message"] == "invalid metrics token"
    assert_error(_get(url, Authorization=f"Basic {TOKEN}"), 401, "unauthorized")
    resp = _get(url, Authorization=f"Bearer {TOKEN}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert _families(resp.text).keys() == EXPECTED.keys()
    # the other REST endpoints are reached from there as usual (the server is not loopback-only)
    assert _get(f"http://{remote_address}:{token_server.port}/api/health").status_code == 200


def _get_from(source: str, port: int, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """GET over a connection from the local address ``source`` (any of 127.0.0.0/8 is one):
    a peer address, and so a failure-limiter bucket, of the test's own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        json_body = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, (dict(resp.getheaders()), json.loads(raw) if json_body else raw)
    finally:
        conn.close()


def test_guessing_the_token_is_rate_limited(token_server: Server) -> None:
    """``api.auth_failures_per_minute`` failed guesses per peer address and minute, then 429;
    the right token still works (only failures are limited). Through a local proxy, from a
    loopback address of its own, so the test needs no other address and no other test's
    failures count."""
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    statuses = []
    for i in range(3 * GUESSES):  # a minute boundary may reset the window once
        status, (headers, body) = _get_from(
            "127.0.0.77",
            token_server.port,
            "/metrics",
            {**proxied, "Authorization": f"Bearer {WRONG}{i}"},
        )
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate_limited"
            assert int(headers["Retry-After"]) >= 1
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}, statuses
    status, _ = _get_from(
        "127.0.0.77", token_server.port, "/metrics", {**proxied, "Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200
    # another address is not held back by this one's guesses
    assert _get(token_server.url("/metrics"), **proxied, Authorization=f"Bearer {TOKEN}").ok


def test_the_token_never_reaches_the_logs(token_server: Server, remote_address: str | None) -> None:
    urls = [token_server.url("/metrics")]
    if remote_address is not None:
        urls.append(f"http://{remote_address}:{token_server.port}/metrics")
    for url in urls:
        for value in (TOKEN, WRONG):
            _get(url, Authorization=f"Bearer {value}", **{"X-Forwarded-For": "203.0.113.9"})
            _get(url, Authorization=f"Bearer {value}")
    logs = token_server.stdout() + token_server.stderr()
    assert "GET /metrics" in logs  # the access log did write these requests
    assert TOKEN not in logs and WRONG not in logs
    assert TOKEN[3:15] not in logs  # not even a part of it


def test_no_token_configured_refuses_remote_peers(
    tmp_path: Path, remote_address: str | None
) -> None:
    address = _need(remote_address)
    srv = start_server(tmp_path / "data", env={"FLOODWATCH_SERVER__HOST": "0.0.0.0"})
    try:
        url = f"http://{address}:{srv.port}/metrics"
        body = assert_error(_get(url), 403, "forbidden")
        assert "server.metrics_token" in body["error"]["message"]
        # no token is configured, so none is accepted
        assert_error(_get(url, Authorization=f"Bearer {TOKEN}"), 403, "forbidden")
        assert _get(srv.url("/metrics")).status_code == 200  # loopback is answered
        assert _get(f"http://{address}:{srv.port}/api/health").status_code == 200
    finally:
        srv.stop()
