"""``floodwatch backtest`` against a real server and a real lake.

One scenario, built once: two nodes' history sent through a collector key at full speed, each with
a UDP flood in it (node A about 25x its baseline, node B about 6x), recorded by the server's
detector. The backtest must reproduce what the server recorded (while the server runs, through
the admin socket, and after it stopped, from the files), and a stricter ``--config`` must give
fewer incidents. Bad flags and bad settings files are refused with the CLI's exit codes.
"""

from __future__ import annotations

import json
import math
import os
import pty
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet
import pytest

from api.backtest import Progress, hours_of, match_incidents, parse_time
from store.lake import Lake

from .conftest import FLOODWATCH, Client, Server, Workspace, new_workspace, run_cli, start_server
from .telemetry import ipc_bytes, post_batch, wait_for

HISTORY_MIN = 30  # normal minutes before the floods
AFTER_MIN = 5  # normal minutes after them (the incidents resolve)

Cols = dict[str, list[Any]]


def _rows(
    ip: str, start: datetime, secs: int, pps: float, udp_share: float
) -> dict[str, list[Any]]:
    """TCP-heavy web-server seconds with a mild ripple; ``udp_share`` of the packets UDP."""
    times = [start + timedelta(seconds=i) for i in range(secs)]
    base = [pps * (1.0 + 0.05 * math.sin(i / 37.0)) for i in range(secs)]
    udp = [b * udp_share for b in base]
    tcp = [b - u for b, u in zip(base, udp, strict=True)]
    size = 600.0 if udp_share < 0.5 else 1200.0
    return {
        "time": times,
        "node_ip": [ip] * secs,
        "pps": base,
        "bps": [b * 8 * size for b in base],
        "tcp_pps": tcp,
        "udp_pps": udp,
        "icmp_pps": [0.0] * secs,
        "other_pps": [0.0] * secs,
        "syn_pps": [t * 0.03 for t in tcp],
        "ack_pps": [t * 0.9 for t in tcp],
        "rst_pps": [t * 0.01 for t in tcp],
        "fin_pps": [t * 0.02 for t in tcp],
        "frag_pps": [0.0] * secs,
        "avg_pkt_len": [size] * secs,
        "distinct_sources": [int(b / 20) for b in base],
    }


def _history(ip: str, start: datetime, flood_pps: float) -> dict[str, list[Any]]:
    parts = [
        _rows(ip, start, HISTORY_MIN * 60, 2000.0, 0.05),
        _rows(ip, start + timedelta(minutes=HISTORY_MIN), 30, flood_pps, 0.97),
        _rows(ip, start + timedelta(minutes=HISTORY_MIN, seconds=30), AFTER_MIN * 60, 2000.0, 0.05),
    ]
    return {k: [v for p in parts for v in p[k]] for k in parts[0]}


def _flow_rows(ip: str, start: datetime, secs: int, pps: float, ntp: bool) -> Cols:
    """Sampled flow records of a node: HTTPS from 40 clients, or (``ntp``) NTP replies from 60
    reflectors; ``packets`` already stands for the traffic before sampling."""
    cols: Cols = {k: [] for k in ("time", "src_ip", "dst_ip", "src_port", "dst_port")}
    cols.update({k: [] for k in ("protocol", "tcp_flags", "packets", "bytes", "sampling_rate")})
    per = 60 if ntp else 40
    for i in range(secs):
        total = pps * (1.0 + 0.05 * math.sin(i / 37.0))
        when = start + timedelta(seconds=i, milliseconds=100)
        for k in range(per):
            pk = max(1, round(total / per))
            cols["time"].append(when)
            cols["src_ip"].append(f"198.51.{100 + k // 250}.{k % 250 + 1}")
            cols["dst_ip"].append(ip)
            cols["src_port"].append(123 if ntp else 20_000 + (i * per + k) % 30_000)
            cols["dst_port"].append(40_000 + k if ntp else 443)
            cols["protocol"].append(17 if ntp else 6)
            cols["tcp_flags"].append(0 if ntp else 0x18)
            cols["packets"].append(pk)
            cols["bytes"].append(pk * (468 if ntp else 700))
            cols["sampling_rate"].append(1000)
    return cols


def _flow_history(ip: str, start: datetime) -> pa.Table:
    parts = [
        _flow_rows(ip, start, HISTORY_MIN * 60, 2000.0, ntp=False),
        _flow_rows(ip, start + timedelta(minutes=HISTORY_MIN), 30, 40_000.0, ntp=True),
        _flow_rows(
            ip, start + timedelta(minutes=HISTORY_MIN, seconds=30), AFTER_MIN * 60, 2000.0, False
        ),
    ]
    cols = {k: [v for p in parts for v in p[k]] for k in parts[0]}
    types = {
        "time": pa.timestamp("us", tz="UTC"),
        "src_port": pa.int32(),
        "dst_port": pa.int32(),
        "protocol": pa.uint8(),
        "tcp_flags": pa.uint8(),
        "packets": pa.int64(),
        "bytes": pa.int64(),
        "sampling_rate": pa.int64(),
    }
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()})


def _table(cols: dict[str, list[Any]]) -> pa.Table:
    order = sorted(range(len(cols["time"])), key=lambda i: cols["time"][i])
    data: dict[str, Any] = {k: [v[i] for i in order] for k, v in cols.items()}
    data["time"] = pa.array(data["time"], pa.timestamp("us", tz="UTC"))
    data["distinct_sources"] = pa.array(data["distinct_sources"], pa.int64())
    return pa.table(data)


def _send(srv: Server, key: str, table: pa.Table, kind: str = "metrics") -> None:
    for off in range(0, table.num_rows, 20_000):
        part = table.slice(off, 20_000)
        for _ in range(50):
            r = post_batch(srv.base_url, key, ipc_bytes(part, "lz4"), kind=kind)
            if r.status_code != 503:
                break
            time.sleep(float(r.headers.get("Retry-After", "1")))
        assert r.status_code == 202, r.text


def _node(client: Client, name: str, ip: str) -> dict[str, Any]:
    r = client.post("/api/v1/nodes", json={"name": name, "ip": ip})
    assert r.status_code == 201, r.text
    node: dict[str, Any] = r.json()["node"]
    return node


@dataclass
class Scenario:
    server: Server
    ws: Workspace
    a: dict[str, Any]
    b: dict[str, Any]
    c: dict[str, Any]
    start: datetime
    end: datetime
    recorded: list[dict[str, Any]]

    def backtest(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(
            self.server.data_dir,
            "backtest",
            "--workspace",
            self.ws.id,
            "--from",
            _z(self.start),
            "--to",
            _z(self.end),
            *extra,
            check=check,
        )

    def backtest_json(self, *extra: str) -> dict[str, Any]:
        proc = self.backtest(*extra, "--json")
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, proc.stdout
        out: dict[str, Any] = json.loads(lines[0])
        return out


def _z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _incidents(ws: Workspace) -> list[dict[str, Any]]:
    r = ws.client.get("/api/v1/incidents?limit=100")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["incidents"]
    return found


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    srv = start_server(
        tmp_path_factory.mktemp("backtest") / "data",
        env={"FLOODWATCH_INGEST__FLUSH_AGE_SECS": "0.5"},
    )
    try:
        ws = new_workspace(srv)
        a = _node(ws.client, "edge-a", "203.0.113.70")
        b = _node(ws.client, "edge-b", "203.0.113.71")
        c = _node(ws.client, "edge-c", "203.0.113.72")  # flows only
        r = ws.client.post("/api/v1/collectors", json={"name": "history"})
        assert r.status_code == 201, r.text
        key = r.json()["collector"]["key"]
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - timedelta(minutes=HISTORY_MIN + AFTER_MIN + 5)
        cols_a = _history(a["ip"], start, 50_000.0)  # ~25x
        cols_b = _history(b["ip"], start + timedelta(seconds=7), 12_000.0)  # ~6x
        _send(srv, key, _table({k: cols_a[k] + cols_b[k] for k in cols_a}))
        _send(srv, key, _flow_history(c["ip"], start + timedelta(seconds=13)), kind="flows")

        def all_resolved() -> bool:
            found = _incidents(ws)
            return len(found) >= 3 and all(i["status"] == "resolved" for i in found)

        assert wait_for(all_resolved, timeout=60), _incidents(ws)
        recorded = _incidents(ws)
        yield Scenario(srv, ws, a, b, c, start, now, recorded)
    finally:
        srv.stop()


def _by_node(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["node"]: i for i in items}


def _check_reproduces(result: dict[str, Any], sc: Scenario) -> None:
    assert result["ok"] is True
    assert result["workspace_id"] == sc.ws.id
    assert result["stats"]["node_seconds"] == 3 * ((HISTORY_MIN + AFTER_MIN) * 60 + 30)
    assert result["stats"]["flows_rows"] > 0 and result["stats"]["metrics_rows"] > 0
    assert result["totals"] == {
        "backtest": 3,
        "recorded": 3,
        "both": 3,
        "backtest_only": 0,
        "recorded_only": 0,
    }, result["totals"]
    recorded = {i["uuid"]: i for i in sc.recorded}
    for pair in result["both"]:
        bt, rec = pair["backtest"], pair["recorded"]
        live = recorded[rec["uuid"]]
        assert bt["node"] == rec["node"] == live["node_uuid"]
        assert rec["detector_ref"] == bt["ref"]
        # same incident, same event times, same classification and size
        assert bt["onset_at"] == live["detection"]["onset_at"] == live["started_at"]
        assert bt["fired_at"] == live["detection"]["fired_at"]
        assert bt["ended_at"] == live["resolved_at"]
        assert bt["attack_family"] == live["attack_family"] == "udp_flood"
        assert bt["attack_subtype"] == live["attack_subtype"]
        assert bt["severity"] == live["severity"]
        assert bt["peak_pps"] == pytest.approx(live["peak_pps"], rel=1e-9)
        assert bt["multiplier"] == pytest.approx(live["detection"]["multiplier"], rel=1e-9)
        assert bt["metric"] == live["detection"]["metric"]


def test_scenario_recorded_one_incident_per_flood(scenario: Scenario) -> None:
    nodes = sorted(i["node_uuid"] for i in scenario.recorded)
    assert nodes == sorted([scenario.a["uuid"], scenario.b["uuid"], scenario.c["uuid"]])
    assert all(i["source"] == "floodwatch" for i in scenario.recorded)
    [from_flows] = [i for i in scenario.recorded if i["node_uuid"] == scenario.c["uuid"]]
    assert from_flows["attack_subtype"] == "ntp_amplification", from_flows


def test_backtest_while_serving_reproduces_the_recorded_incidents(scenario: Scenario) -> None:
    _check_reproduces(scenario.backtest_json(), scenario)


def test_backtest_human_output_lists_both_incidents(scenario: Scenario) -> None:
    out = scenario.backtest().stdout
    assert "edge-a" in out and "edge-b" in out and "edge-c" in out, out
    for inc in scenario.recorded:
        assert inc["uuid"] in out, out
    assert "udp_flood" in out
    totals = "totals: 3 would-be, 3 recorded; 3 in both, 0 only in the backtest, 0 only recorded"
    assert totals in out


def test_one_node_by_name(scenario: Scenario) -> None:
    result = scenario.backtest_json("--node", "edge-b")
    assert result["node"] == scenario.b["uuid"]
    assert result["totals"]["both"] == 1 and result["totals"]["recorded"] == 1
    [pair] = result["both"]
    assert pair["backtest"]["node"] == scenario.b["uuid"]
    assert result["stats"]["node_seconds"] == (HISTORY_MIN + AFTER_MIN) * 60 + 30


def test_stricter_settings_file_gives_fewer_incidents(scenario: Scenario, tmp_path: Path) -> None:
    # node B's flood is about 10 kpps (110 Mbit/s) over its baseline, A's 48 kpps (460 Mbit/s)
    strict = tmp_path / "strict.toml"
    strict.write_text("floor_pps = 20000\nfloor_bps = 200e6\nsensitivity = 'low'\n")
    result = scenario.backtest_json("--config", str(strict))
    assert result["settings"]["floor_pps"] == 20000 and result["settings"]["sensitivity"] == "low"
    assert result["totals"]["backtest"] == 2
    got = sorted(p["backtest"]["node"] for p in result["both"])
    assert got == sorted([scenario.a["uuid"], scenario.c["uuid"]])
    [missed] = result["recorded_only"]
    assert missed["node"] == scenario.b["uuid"]
    # JSON works too, and a lenient file finds at least what was recorded
    lenient = tmp_path / "lenient.json"
    lenient.write_text(json.dumps({"sensitivity": "high", "series": {"syn_pps": False}}))
    result = scenario.backtest_json("--config", str(lenient))
    assert result["settings"]["series"]["syn_pps"] is False
    assert result["totals"]["recorded_only"] == 0 and result["totals"]["both"] == 3


@pytest.mark.parametrize(
    ("content", "name", "field"),
    [
        ("hold_down = 3\n", "s.toml", "hold_down"),
        ("floor_pps = -1\n", "s.toml", "floor_pps"),
        ("[series]\nnope = true\n", "s.toml", "series.nope"),
        ('{"confirm_seconds": "3"}', "s.json", "confirm_seconds"),
        ('{"series": {"pps": false, "bps": false}}', "s.json", "series.pps"),
        ("floor_pps = = 3\n", "s.toml", "config"),
        ("[1, 2]", "s.json", "config"),
    ],
)
def test_bad_settings_file_names_the_field(
    scenario: Scenario, tmp_path: Path, content: str, name: str, field: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    proc = scenario.backtest("--config", str(path), "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    body = json.loads(proc.stdout)
    assert body["ok"] is False
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["field"] == field, body
    assert field in proc.stderr


def test_missing_settings_file(scenario: Scenario, tmp_path: Path) -> None:
    proc = scenario.backtest("--config", str(tmp_path / "absent.toml"), check=False)
    assert proc.returncode == 1
    assert "cannot read" in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["backtest"],
        ["backtest", "--from", "yesterday-ish"],
        ["backtest", "--from", "-1h", "--to", "-2h"],
        ["backtest", "--from", "-1h", "--to", "soon"],
        ["backtest", "--from", "-1h", "--bogus"],
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, args: list[str]) -> None:
    proc = run_cli(tmp_path / "data", *args, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "usage:" in proc.stderr


def test_unknown_node_and_ambiguous_workspace(scenario: Scenario) -> None:
    proc = scenario.backtest("--node", "no-such-node", "--json", check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["code"] == "not_found"
    # the server bootstrapped a workspace of its own: two exist, so one must be named
    listed = json.loads(run_cli(scenario.server.data_dir, "workspace", "list", "--json").stdout)
    assert len([w for w in listed["workspaces"] if w["parent_id"] is None]) == 2
    proc = run_cli(scenario.server.data_dir, "backtest", "--from", "-1h", "--json", check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["field"] == "workspace"


def test_help_lists_the_flags(tmp_path: Path) -> None:
    proc = run_cli(tmp_path / "data", "backtest", "--help")
    flags = ("--from", "--to", "--node", "--workspace", "--config", "--server-config", "--json")
    for flag in flags:
        assert flag in proc.stdout, proc.stdout


def test_relative_times_need_no_equals_sign(scenario: Scenario) -> None:
    proc = run_cli(
        scenario.server.data_dir,
        "backtest",
        "--workspace",
        scenario.ws.id,
        "--from",
        "-2h",
        "--to",
        "-90m",
        "--json",
    )
    body = json.loads(proc.stdout)
    span = datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])
    assert span == timedelta(minutes=30)


def _run_with_tty_stderr(data_dir: Path, args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (status, stdout, terminal text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*FLOODWATCH, *args, "--data", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out, seen.decode(errors="replace")


def test_progress_bar_on_a_terminal_only(scenario: Scenario) -> None:
    start = _z(scenario.end - timedelta(hours=6))
    args = ["backtest", "--workspace", scenario.ws.id, "--from", start, "--to", _z(scenario.end)]
    rc, out, tty = _run_with_tty_stderr(scenario.server.data_dir, [*args, "--json"])
    assert rc == 0, tty
    assert json.loads(out)["totals"]["both"] == 3
    hours = len(hours_of(scenario.end - timedelta(hours=6), scenario.end))
    assert f"] 0/{hours} h" in tty and f"] {hours}/{hours} h 100%" in tty, tty
    # stderr not a terminal: nothing but the answer
    proc = run_cli(scenario.server.data_dir, *args, "--json")
    assert proc.stderr == ""
    # a short range on a terminal: no bar either
    short = ["backtest", "--workspace", scenario.ws.id, "--from", "-1h", "--json"]
    rc, _, tty = _run_with_tty_stderr(scenario.server.data_dir, short)
    assert rc == 0 and "] " not in tty, tty


def test_after_the_server_stopped_the_files_give_the_same_answer(scenario: Scenario) -> None:
    live = scenario.backtest_json()
    scenario.server.stop()
    assert not (scenario.server.data_dir / "admin.sock").exists()
    offline = scenario.backtest_json()
    _check_reproduces(offline, scenario)
    assert offline["both"] == live["both"]
    assert offline["stats"] == live["stats"]


# ----------------------------------------------------------------------------- units


def test_parse_time_forms() -> None:
    now = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
    assert parse_time("-6h", now) == now - timedelta(hours=6)
    assert parse_time("-90s", now) == now - timedelta(seconds=90)
    assert parse_time("-2d", now) == now - timedelta(days=2)
    assert parse_time("-1w", now) == now - timedelta(days=7)
    assert parse_time("now", now) == now
    assert parse_time("2026-12-05T14:00:00Z", now) == datetime(2026, 12, 5, 14, tzinfo=UTC)
    assert parse_time("2026-12-05T15:00:00+01:00", now) == datetime(2026, 12, 5, 14, tzinfo=UTC)
    assert parse_time("2026-12-05 14:00", now) == datetime(2026, 12, 5, 14, tzinfo=UTC)
    for bad in ("6h", "-6y", "", "tomorrow"):
        with pytest.raises(ValueError):
            parse_time(bad, now)


def _b(node: str, onset: str, end: str | None, ref: str | None = None) -> dict[str, Any]:
    return {"ref": ref or f"{node}:{onset}", "node": node, "onset_at": onset, "ended_at": end}


def _r(node: str, start: str, end: str | None, ref: str | None = None) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "node": node,
        "started_at": start,
        "resolved_at": end,
        "detector_resolved_at": None,
        "detector_ref": ref,
    }


def test_matching_is_one_to_one_by_node_and_overlap() -> None:
    end = "2026-12-05T18:00:00Z"
    b = [
        _b("n1", "2026-12-05T10:00:00Z", "2026-12-05T10:05:00Z"),
        _b("n1", "2026-12-05T10:03:00Z", "2026-12-05T10:04:00Z"),  # same span, one recorded
        _b("n2", "2026-12-05T10:00:00Z", "2026-12-05T10:05:00Z"),  # other node: no match
        _b("n3", "2026-12-05T17:00:00Z", None),  # open at the end of the range
        _b("n4", "2026-12-05T11:00:00Z", "2026-12-05T11:05:00Z", ref="n4:1"),
    ]
    r = [
        _r("n1", "2026-12-05T10:04:00Z", "2026-12-05T10:20:00Z"),
        _r("n1", "2026-12-05T12:00:00Z", "2026-12-05T12:20:00Z"),  # no overlap
        _r("n3", "2026-12-05T17:30:00Z", None),
        _r("n4", "2026-12-05T10:58:00Z", "2026-12-05T11:00:30Z"),  # overlaps, other ref
        _r("n4", "2026-12-05T11:00:00Z", "2026-12-05T11:05:00Z", ref="n4:1"),
    ]
    got = match_incidents(b, r, end)
    pairs = {(p["backtest"]["ref"], p["recorded"]["uuid"]) for p in got["both"]}
    assert pairs == {
        (b[0]["ref"], r[0]["uuid"]),
        (b[3]["ref"], r[2]["uuid"]),
        (b[4]["ref"], r[4]["uuid"]),  # the same detector incident wins over the earlier overlap
    }
    assert [x["ref"] for x in got["backtest_only"]] == [b[1]["ref"], b[2]["ref"]]
    assert [x["uuid"] for x in got["recorded_only"]] == [r[1]["uuid"], r[3]["uuid"]]


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.text = ""
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def test_progress_draws_only_on_a_terminal_and_long_ranges() -> None:
    term = _Tty(True)
    bar = Progress.for_terminal(term, 24)  # type: ignore[arg-type]
    for i in range(25):
        bar.update(i, "x", force=True)
    bar.close()
    assert "] 0/24 h" in term.text and "] 24/24 h 100%" in term.text
    assert term.text.endswith("\r")
    for stream, hours in ((_Tty(False), 24), (_Tty(True), 2)):
        quiet = Progress.for_terminal(stream, hours)  # type: ignore[arg-type]
        quiet.update(1, "x", force=True)
        quiet.close()
        assert stream.text == ""


# ------------------------------------------------------------ seeding from rollups (no server)


def _lake_with_history(root: Path, ws: str, node: str, start: datetime, hours: int) -> None:
    """``hours`` of normal seconds of one node written as the lake holds them: raw parts in
    each hour's generation directory and the hour's rollups, with the project's own Lake."""
    from ingest.schema import KINDS
    from ingest.schema import METRICS as METRICS_KIND
    from store.lake import PartitionKey

    floats = tuple(c.name for c in METRICS_KIND.columns if c.kind == "float")
    ints = tuple(c.name for c in METRICS_KIND.columns if c.kind == "int")
    lake = Lake(root, {k.name: k.lake_schema for k in KINDS.values()}, "metrics", floats, ints)
    lake.prepare()
    schema = METRICS_KIND.lake_schema
    for h in range(hours):
        hour = start + timedelta(hours=h)
        cols = _rows("192.0.2.1", hour, 3600, 2000.0, 0.05)
        del cols["node_ip"]
        cols["node_uuid"] = [node] * 3600
        cols["source"] = ["arrow"] * 3600
        # optional columns this node does not send stay null
        table = pa.table(
            {f.name: pa.array(cols.get(f.name, [None] * 3600), f.type) for f in schema}
        )
        key = PartitionKey("metrics", ws, hour.date(), hour.hour)
        lake.write_part(key, table, lake.new_part_path(key, h), [h])
        lake.write_rollups(key, table)


def test_baselines_before_from_are_seeded_from_rollups(tmp_path: Path) -> None:
    from api.backtest import run_backtest
    from api.config import apply_overrides, load_config

    ws, node = str(uuid.uuid4()), str(uuid.uuid4())
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    data = tmp_path / "data"
    _lake_with_history(data / "lake", ws, node, start, 3)
    # the last hour's raw seconds: a UDP flood from its first minute on (35 kpps, ~17x)
    flood_at = start + timedelta(hours=2, seconds=40)
    path = next((data / "lake" / "metrics").glob(f"workspace={ws}/date=*/hour=12/g0/*.parquet"))
    table = pa.parquet.read_table(path)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    attack = (pl.col("time") >= flood_at) & (pl.col("time") < flood_at + timedelta(seconds=30))
    frame = frame.with_columns(
        *(
            pl.when(attack).then(pl.lit(v)).otherwise(pl.col(c)).alias(c)
            for c, v in (("pps", 35_000.0), ("udp_pps", 34_000.0), ("tcp_pps", 1_000.0))
        ),
        pl.when(attack).then(35_000.0 * 8 * 1200).otherwise(pl.col("bps")).alias("bps"),
        pl.when(attack).then(1200.0).otherwise(pl.col("avg_pkt_len")).alias("avg_pkt_len"),
    )
    pa.parquet.write_table(frame.to_arrow().cast(table.schema), path)
    ctx: dict[str, Any] = {
        "workspace_id": ws,
        "node": None,
        "nodes": [{"uuid": node, "name": "seeded", "deleted": False}],
        "overrides": {"workspace": {}, "nodes": {}},
        "recorded": [],
    }
    cfg = apply_overrides(load_config(None, environ={}), "server", data_dir=str(data))
    t1 = start + timedelta(hours=2)  # the flood starts 40 s after --from
    seeded = run_backtest(cfg, ctx, t1, t1 + timedelta(hours=1), {})
    assert seeded["stats"]["seeded_nodes"] == 1
    assert seeded["stats"]["node_seconds"] == 3600
    [inc] = seeded["backtest_only"]
    assert inc["onset_at"] == _z(flood_at) and inc["attack_family"] == "udp_flood"
    assert 1500 <= inc["baseline"] <= 2600, inc  # the rollups' level, not learned from zero
    # without seeding, a node with 40 s of history is still warming up: nothing opens
    unseeded_cfg = apply_overrides(cfg, "detect", seed_days=0)
    unseeded = run_backtest(unseeded_cfg, ctx, t1, t1 + timedelta(hours=1), {})
    assert unseeded["stats"]["seeded_nodes"] == 0
    assert unseeded["totals"]["backtest"] == 0
    # replaying from the start of the history learns the baseline from the seconds instead
    full = run_backtest(unseeded_cfg, ctx, start, t1 + timedelta(hours=1), {})
    assert [i["onset_at"] for i in full["backtest_only"]] == [_z(flood_at)]
