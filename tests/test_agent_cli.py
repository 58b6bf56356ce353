"""``floodwatch agent``: configuration, ``--once`` against fake /proc trees, and the real loop
pushing to a local receiver until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.capture import WindowStats
from agent.config import AgentConfig, load_agent_config
from agent.errors import ConfigError
from agent.main import add_agent_parser, run_agent
from agent.run import sample_once, with_capture
from agent.sender import CONTENT_TYPE, decode_stream, encode_stream, rows_to_table
from ingest.decode import decode_body
from ingest.schema import METRICS

ROOT = Path(__file__).parent.parent
PROC = Path(__file__).parent / "data" / "proc"
METRIC_COLUMNS = {c.name for c in METRICS.columns} - {"node", "node_ip"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="floodwatch")
    add_agent_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["agent", *argv])


def agent_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "agent", *argv]


def rows_from_json(lines: list[str]) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in lines]
    for row in rows:
        row["time"] = datetime.fromisoformat(row["time"])
    return rows


def assert_server_accepts(rows: list[dict[str, Any]]) -> None:
    decode_body(
        encode_stream(rows_to_table(METRICS, rows)),
        METRICS,
        max_rows=1000,
        now=datetime.now(UTC),
        max_age=timedelta(days=15),
        max_skew=timedelta(minutes=5),
    )


def test_the_parser_takes_every_flag() -> None:
    args = parse(
        [
            "--config",
            "a.toml",
            "--server",
            "http://x:1",
            "--key",
            "k",
            "--interface",
            "eth3",
            "--proc-root",
            "/p",
            "--spool-dir",
            "/s",
            "--once",
            "--capture",
        ]
    )
    assert (args.config, args.server, args.key, args.interface) == (
        "a.toml",
        "http://x:1",
        "k",
        "eth3",
    )
    assert (args.proc_root, args.spool_dir, args.once, args.capture) == ("/p", "/s", True, True)
    defaults = parse([])
    assert defaults.capture is None and defaults.once is False and defaults.server is None


def test_once_prints_valid_json_rows_against_a_fake_proc() -> None:
    proc = subprocess.run(
        agent_cmd("--once", "--proc-root", str(PROC / "t0")),  # interface: the default route's
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    (row,) = rows = rows_from_json(lines)
    assert set(row) == METRIC_COLUMNS
    assert row["time"].tzinfo is not None
    assert abs(row["time"] - datetime.now(UTC)) < timedelta(minutes=1)
    # the files did not change between the two samples: nothing moved, the gauge is read
    assert row["pps"] == 0.0 and row["bps"] == 0.0 and row["conn_count"] == 37
    assert row["avg_pkt_len"] is None and row["syn_pps"] is None
    assert_server_accepts(rows)


def test_once_reports_the_deltas_between_its_two_samples(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    shutil.copytree(PROC / "t0", root)

    async def counters_move(_: float) -> None:
        shutil.copytree(PROC / "t1", root, dirs_exist_ok=True)

    out = io.StringIO()
    cfg = AgentConfig(proc_root=str(root), interface="eth0")
    assert asyncio.run(sample_once(cfg, sleep=counters_move, out=out)) == 0
    rows = rows_from_json(out.getvalue().splitlines())
    assert len(rows) == 1
    row = rows[0]
    # the interval's length is real time here; ratios and gauges do not depend on it
    assert row["tcp_pps"] / row["pps"] == pytest.approx(0.6, rel=1e-9)
    assert row["udp_pps"] / row["pps"] == pytest.approx(0.35, rel=1e-9)
    assert row["bps"] / row["pps"] == pytest.approx(1000.0, rel=1e-9)
    assert row["avg_pkt_len"] == pytest.approx(125.0, rel=1e-9)
    assert row["conn_count"] == 42
    assert_server_accepts(rows)


def test_capture_windows_fill_the_flag_columns() -> None:
    rows = [{"pps": 1.0, "syn_pps": None, "distinct_sources": None}]
    window = WindowStats(
        sampled=9, syn=4, ack=3, rst=2, fin=1, distinct_sources=5, flows=[], dropped_flows=0
    )
    (row,) = with_capture(rows, window, sampling_rate=100, seconds=2.0)
    assert (row["syn_pps"], row["ack_pps"], row["rst_pps"], row["fin_pps"]) == (
        200.0,
        150.0,
        100.0,
        50.0,
    )
    assert row["distinct_sources"] == 5 and row["pps"] == 1.0


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_flags_override_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path / "a.toml", '[agent]\nproc_root = "/nonexistent"\ninterface = "eth9"\n')
    args = parse(["--config", str(cfg), "--proc-root", str(PROC / "t0"), "--interface", "lo"])
    args.once = True
    assert run_agent(args) == 0
    (row,) = rows_from_json(capsys.readouterr().out.splitlines())
    assert row["pps"] == 0.0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[agent]\nserver_url = "http://x"\nkye = "k"\n', "unknown setting agent.kye"),
        ('[server]\nport = 1\n[agent]\nkey = "k"\n', "unknown table or key 'server'"),
        ("[agent]\ninterval_secs = '1'\n", "agent.interval_secs: expected an integer"),
        ("[agent]\ncapture = 1\n", "agent.capture: expected a boolean"),
        ("[agent]\ncompression = 'gzip'\n", "agent.compression: must be one of"),
        ("[agent]\ninterval_secs = 0\n", "agent.interval_secs: must be at least 1"),
        ("[agent\n", "config file"),
    ],
)
def test_bad_config_files_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    cfg = write(tmp_path / "agent.toml", toml)
    assert run_agent(parse(["--config", str(cfg), "--once"])) == 1
    assert message in capsys.readouterr().err


def test_sending_needs_a_server_url_and_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_agent(parse(["--proc-root", str(PROC / "t0")])) == 1
    assert "agent.server_url" in capsys.readouterr().err
    assert run_agent(parse(["--server", "http://127.0.0.1:9", "--key", ""])) == 1
    assert "agent.key" in capsys.readouterr().err


def test_environment_overrides_follow_the_setting_names(tmp_path: Path) -> None:
    cfg_file = write(tmp_path / "a.toml", '[agent]\nkey = "from-file"\nsample_rate = 10\n')
    env = {
        "FLOODWATCH_AGENT__KEY": "from-env",
        "FLOODWATCH_AGENT__CAPTURE": "yes",
        "FLOODWATCH_AGENT__MAX_BATCH_AGE_SECS": "2.5",
        "FLOODWATCH_SERVER__PORT": "9000",  # the server's; not the agent's business
    }
    cfg = load_agent_config(cfg_file, environ=env)
    assert (cfg.key, cfg.capture, cfg.max_batch_age_secs, cfg.sample_rate) == (
        "from-env",
        True,
        2.5,
        10,
    )
    with pytest.raises(ConfigError, match="unknown setting FLOODWATCH_AGENT__NOPE"):
        load_agent_config(None, environ={"FLOODWATCH_AGENT__NOPE": "1"})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "FLOODWATCH_AGENT_KEY",
            "unknown environment variable FLOODWATCH_AGENT_KEY; "
            "did you mean FLOODWATCH_AGENT__KEY?",
        ),
        (
            "FLOODWATCH_AGENT__PROC_ROT",
            "unknown setting FLOODWATCH_AGENT__PROC_ROT (agent.proc_rot); "
            "did you mean FLOODWATCH_AGENT__PROC_ROOT?",
        ),
        ("FLOODWATCH_SEVER__PORT", "did you mean FLOODWATCH_SERVER__PORT?"),
    ],
)
def test_a_mistyped_variable_stops_the_agent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    args = parse(["--proc-root", str(PROC / "t0"), "--once"])
    assert run_agent(args) == 0
    capsys.readouterr()
    monkeypatch.setenv(name, "x")
    assert run_agent(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("floodwatch: config error: unknown ") and message in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interface", "ens9"], "interface 'ens9' not found"),
        (["--proc-root", str(PROC / "bad_dev_short")], "expected 16 counters"),
    ],
)
def test_unreadable_counters_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = parse(["--once", "--proc-root", str(PROC / "t0"), *argv])
    assert run_agent(args) == 1
    assert message in capsys.readouterr().err


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), body))
        answer = json.dumps({"ok": True, "accepted": 1, "duplicate": False}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    received: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_the_agent_pushes_metrics_and_stops_on_sigterm(
    tmp_path: Path, http_receiver: tuple[str, list[tuple[str, dict[str, str], bytes]]]
) -> None:
    url, received = http_receiver
    cfg = write(tmp_path / "agent.toml", "[agent]\nmax_batch_age_secs = 0.2\n")
    env = {**os.environ, "FLOODWATCH_AGENT__KEY": "node-key"}
    cmd = agent_cmd("--config", str(cfg), "--server", url, "--proc-root", str(PROC / "t0"))
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert received, err
    assert proc.returncode == 0, err
    assert "agent stopped" in err
    path, headers, body = received[0]
    assert path == "/api/v1/telemetry/metrics"
    assert headers["Authorization"] == "Bearer node-key"
    assert headers["Content-Type"] == CONTENT_TYPE
    table = decode_stream(body)
    assert set(table.column_names) == METRIC_COLUMNS
    assert table.column("pps").to_pylist()[0] == 0.0


def test_every_agent_setting_is_documented() -> None:
    """docs/configuration.md lists every agent setting with its variable and its default."""
    from agent.config import iter_settings

    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    section = text[text.index("## Agent settings") :]
    for name, default, _doc in iter_settings():
        shown = json.dumps(default) if isinstance(default, str | bool) else str(default)
        row = f"| `agent.{name}` | {type(default).__name__} | `{shown}` | "
        assert row + f"`FLOODWATCH_AGENT__{name.upper()}` |" in section, name
        assert f"\n`agent.{name}`\n: " in section, f"agent.{name} has no description"
