"""Alert delivery latency against the real server: many ftagent incidents opening at once, each
delivered to every channel of the workspace, channels of mixed types, one of them hanging.

    .venv/bin/python -m benchmarks.bench_alerts                      # 100 incidents, 10 types
    .venv/bin/python -m benchmarks.bench_alerts --email              # an 11th channel: SMTP
    .venv/bin/python -m benchmarks.bench_alerts --incidents 50 --hang teams --rounds 3

Every channel points at a local receiver through its base URL or URL setting: one aiohttp
server (``tests.alert_receivers``, a path per channel) stands in for webhook, Slack, Discord,
Teams, Telegram, PagerDuty, Opsgenie, Datadog, Alertmanager and Grafana; ``--email`` adds an
aiosmtpd server. The hanging channel's receiver reads the request and never answers.

Each round runs on a fresh server: all channels answering, then one hanging (``--rounds``
repeats the pair). The incidents are opened through the Agent API all at once (one aiohttp
request each, released together, ten nodes). For each delivery to a healthy channel it takes
the time from the open request being sent, and from its answer, to the message's arrival at the
receiver, and prints p50/p99 of both; the hung channel's effect on the others is the ratio of
the healthy channels' p99 between the two rounds of a pair. It also prints the server's peak
RSS. The incident a message is about is found in the message itself (the incident uuid, or the
incident's unique ``inner_ip`` in its title). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import os
import random
import re
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.alert_receivers import WebhookReceiver, wait_until
from tests.conftest import Client, Server, free_port, new_workspace, start_server
from tests.test_agent_api import OPEN

SEED = 20260314
SECRET = "whsec-bench-" + "b" * 20
TYPES = (
    "webhook",
    "slack",
    "discord",
    "teams",
    "telegram",
    "pagerduty",
    "opsgenie",
    "datadog",
    "prometheus",
    "grafana",
)
ENV = {"FLOODWATCH_ALERTS__PUBLIC_URL": "https://fw.example.net"}
_INNER_IP = re.compile(r"(?<![0-9.])10\.[0-9]{1,3}\.[0-9]{1,3}\.77(?![0-9])")


def _config(kind: str, base: str, path: str) -> dict[str, Any]:
    """A channel of ``kind`` whose service lives under ``base/path`` (the receiver)."""
    root = f"{base}/{path}"
    if kind == "webhook":
        return {"url": root, "secret": SECRET}
    if kind in ("slack", "discord", "teams"):
        return {"webhook_url": root + "/hook"}
    if kind == "telegram":
        return {
            "bot_token": "123456789:AAEbenchTokenValue_0123456",
            "chat_id": "42",
            "api_url": root,
        }
    if kind == "pagerduty":
        return {"routing_key": "R" * 32, "api_url": root}
    if kind == "opsgenie":
        return {"api_key": "genie-bench-key-0123456789", "api_url": root}
    if kind == "datadog":
        return {"api_key": "dd-bench-key-0123456789", "api_url": root}
    if kind == "prometheus":
        return {"url": root}
    if kind == "grafana":
        return {"url": root, "api_key": "glsa_bench0123456789"}
    raise ValueError(kind)


@dataclass
class Mailbox:
    """aiosmtpd handler: each message's arrival time and text."""

    got: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()
        msg = email.message_from_bytes(envelope.content)
        parts = [p.get_payload(decode=True) for p in msg.walk() if not p.is_multipart()]
        text = " ".join(p.decode("utf-8", "replace") for p in parts if isinstance(p, bytes))
        with self.lock:
            self.got.append((at, f"{msg.get('Subject', '')} {text}"))
        return "250 2.0.0 Ok: queued"


def _rss_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


def _make_channels(
    client: Client, rx: WebhookReceiver, smtp_port: int | None
) -> dict[str, tuple[str, str]]:
    """Channel name -> (type, receiver path; ``smtp`` for e-mail)."""
    out: dict[str, tuple[str, str]] = {}
    base = rx.url("").rstrip("/")
    kinds: list[tuple[str, dict[str, Any], str]] = []
    for kind in TYPES:
        path = f"{kind}-{uuid.uuid4().hex[:6]}"
        kinds.append((kind, _config(kind, base, path), path))
    if smtp_port is not None:
        mail = {
            "email": "noc@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "security": "none",
            "from": "floodwatch@example.net",
        }
        kinds.append(("email", mail, "smtp"))
    for kind, config, path in kinds:
        name = f"bench-{kind}"
        r = client.post("/api/v1/channels", json={"name": name, "type": kind, "config": config})
        if r.status_code != 201:
            raise RuntimeError(f"{kind} channel refused: {r.text}")
        out[name] = (kind, path)
    return out


async def _open_all(srv: Server, nodes: list[dict[str, Any]], incidents: int) -> list[Any]:
    """Open ``incidents`` incidents at once; (sent, answered, uuid, inner_ip) of each."""
    rng = random.Random(SEED)
    go = asyncio.Event()
    url = srv.url("/api/v1/agent/incidents")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(k: int) -> tuple[float, float, str, str]:
            node = nodes[k % len(nodes)]
            inner_ip = f"10.{k // 200}.{k % 200}.77"
            body = {
                **OPEN,
                "started_at": f"2026-03-14T{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z",
                "inner_ip": inner_ip,
                "peak_pps": round(OPEN["peak_pps"] * rng.uniform(0.5, 1.5), 1),  # type: ignore[operator]
            }
            headers = {
                "Authorization": f"Bearer {node['api_key']}",
                "X-Node-UUID": node["uuid"],
                "User-Agent": "ftagent/1.9.65",
            }
            await go.wait()
            t = time.monotonic()
            async with session.post(url, json=body, headers=headers) as r:
                got = await r.json()
            if r.status not in (200, 201):
                raise RuntimeError(f"open answered {r.status}: {got}")
            return t, time.monotonic(), str(got["uuid"]), inner_ip

        tasks = [asyncio.create_task(one(k)) for k in range(incidents)]
        await asyncio.sleep(0.2)  # every request built and waiting
        go.set()
        return list(await asyncio.gather(*tasks))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LINK = re.compile(r"/dashboard/incident\?id=([0-9]+)")


def _key_of(text: str, uuids: set[str]) -> str | None:
    """What names the incident in a message: its uuid, its inner_ip, or its link's id."""
    for found in _UUID.findall(text):
        if found in uuids:
            return str(found)
    m = _INNER_IP.search(text)
    if m:
        return str(m.group(0))
    link = _LINK.search(text)
    return f"id:{link.group(1)}" if link else None


def run_round(incidents: int, hang: str | None, with_email: bool) -> dict[str, Any]:
    rx = WebhookReceiver(secret=SECRET)
    controller = None
    box = Mailbox()
    if with_email:
        from aiosmtpd.controller import Controller

        controller = Controller(box, hostname="127.0.0.1", port=free_port())
        controller.start()
    srv = start_server(Path(tempfile.mkdtemp()) / "data", env=ENV)
    try:
        ws = new_workspace(srv)
        channels = _make_channels(ws.client, rx, controller.port if controller else None)
        hung_path = next((p for k, p in channels.values() if k == hang), None)
        if hang is not None and hung_path is None:
            raise ValueError(f"no {hang} channel")
        if hung_path is not None:
            if hung_path == "smtp":
                raise ValueError("the hanging channel must be an HTTP one")
            rx.set(hung_path, "hang")
            rx.set_under(hung_path, "hang")  # services add their own suffix to a base URL
        nodes = []
        for i in range(10):
            r = ws.client.post("/api/v1/nodes", json={"name": f"n{i}", "ip": f"203.0.113.{i + 1}"})
            nodes.append(r.json()["node"])
        opened = asyncio.run(_open_all(srv, nodes, incidents))
        sent = {inc: s for s, _, inc, _ in opened}
        answered = {inc: a for _, a, inc, _ in opened}
        uuids = set(sent)
        healthy = {n: (k, p) for n, (k, p) in channels.items() if p != hung_path}

        def arrivals() -> dict[str, dict[str, float]]:
            """Channel -> what names the incident -> first arrival."""
            out: dict[str, dict[str, float]] = {}
            for name, (_, path) in healthy.items():
                seen: dict[str, float] = {}
                if path == "smtp":
                    with box.lock:
                        items = list(box.got)
                else:
                    items = [
                        (r.at, r.raw.decode("utf-8", "replace"))
                        for r in rx.requests_under(path)
                        if r.answered == "ok"
                    ]
                for at, text in items:
                    key = _key_of(text, uuids)
                    if key is not None and key not in seen:
                        seen[key] = at
                out[name] = seen
            return out

        complete = wait_until(
            lambda: all(len(v) >= incidents for v in arrivals().values()), timeout=120
        )
        got = arrivals()
        incident_of = {ip: inc for _, _, inc, ip in opened} | {inc: inc for inc in uuids}
        for inc in uuids:  # after the clock: which incident each link id is
            r = ws.client.get(f"/api/v1/incidents/{inc}")
            incident_of[f"id:{r.json()['incident']['id']}"] = inc
        from_sent, from_answer = [], []
        per_type: dict[str, float] = {}
        for name, seen in got.items():
            pairs = [(incident_of[key], at) for key, at in seen.items() if key in incident_of]
            per_type[healthy[name][0]] = _pct([at - answered[inc] for inc, at in pairs], 99)
            for inc, at in pairs:
                from_sent.append(at - sent[inc])
                from_answer.append(at - answered[inc])
        opens = [answered[k] - sent[k] for k in sent]
        return {
            "hang": hang,
            "complete": complete,
            "deliveries": len(from_sent),
            "expected": incidents * len(healthy),
            "open_p50_ms": _pct(opens, 50),
            "open_p99_ms": _pct(opens, 99),
            "from_sent_p50_ms": _pct(from_sent, 50),
            "from_sent_p99_ms": _pct(from_sent, 99),
            "from_answer_p50_ms": _pct(from_answer, 50),
            "from_answer_p99_ms": _pct(from_answer, 99),
            "per_type_p99_ms": per_type,
            "server_rss_peak_mb": _rss_peak_mb(srv.proc.pid),
        }
    finally:
        srv.stop()
        rx.close()
        if controller is not None:
            controller.stop()


def _line(r: dict[str, Any]) -> str:
    return (
        f"hang={r['hang'] or '-'} complete={r['complete']} "
        f"deliveries={r['deliveries']}/{r['expected']} | "
        f"open p50/p99 {r['open_p50_ms']:.0f}/{r['open_p99_ms']:.0f} ms | "
        f"sent->delivered p50/p99 {r['from_sent_p50_ms']:.0f}/{r['from_sent_p99_ms']:.0f} ms | "
        f"answered->delivered p50/p99 {r['from_answer_p50_ms']:.0f}/"
        f"{r['from_answer_p99_ms']:.0f} ms | server peak RSS {r['server_rss_peak_mb']:.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--incidents", type=int, default=100)
    ap.add_argument("--hang", default="slack", help="the type of the channel that hangs")
    ap.add_argument("--email", action="store_true", help="an 11th channel: e-mail (aiosmtpd)")
    ap.add_argument("--rounds", type=int, default=1, help="pairs of rounds (answering, hanging)")
    ap.add_argument("--per-type", action="store_true", help="p99 of each channel type")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(args.rounds):
        pair = [run_round(args.incidents, h, args.email) for h in (None, args.hang)]
        for r in pair:
            print(_line(r))
            if args.per_type:
                print(
                    "  p99 answered->delivered by type (ms): "
                    + ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["per_type_p99_ms"].items()))
                )
        base, hung = pair[0]["from_answer_p99_ms"], pair[1]["from_answer_p99_ms"]
        ratio = hung / base if base else float("nan")
        print(f"healthy channels' p99 (answered->delivered), hanging / answering: {ratio:.2f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
