"""Alert delivery latency against the real server: many ftagent incidents opening at once, each
delivered to every channel of the workspace (local webhook receivers, one of which may hang).

    .venv/bin/python -m benchmarks.bench_alerts                 # 100 incidents, 10 channels
    .venv/bin/python -m benchmarks.bench_alerts --incidents 50 --channels 5

Two rounds in one run, each on a fresh server: every channel answering, then the first channel
hanging. For each delivery it measures the time from the open request being sent, and from its
answer, to the webhook's arrival; it prints p50/p99 of the healthy channels in both rounds, so
the hung channel's effect on the others is a ratio within one run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.alert_receivers import WebhookReceiver, wait_until
from tests.conftest import new_workspace, start_server
from tests.test_agent_api import OPEN
from tests.test_alerts_dispatch import SECRET, agent_for, channel


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


def run_round(incidents: int, channels: int, hang_one: bool) -> dict[str, Any]:
    rx = WebhookReceiver(secret=SECRET)
    srv = start_server(Path(tempfile.mkdtemp()) / "data")
    try:
        ws = new_workspace(srv)
        paths = [f"c{i}-{uuid.uuid4().hex[:6]}" for i in range(channels)]
        if hang_one:
            rx.set(paths[0], "hang")
        for p in paths:
            channel(ws.client, rx.url(p))
        agents = [agent_for(srv, ws) for _ in range(10)]
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}

        def open_one(k: int) -> None:
            body = {
                **OPEN,
                "started_at": f"2026-03-14T{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z",
                "inner_ip": f"10.{k // 250}.{k % 250}.1",
            }
            t = time.monotonic()
            r = agents[k % len(agents)].post("/incidents", body)
            inc = r.json()["uuid"]
            sent[inc], answered[inc] = t, time.monotonic()

        healthy = paths[1:] if hang_one else paths
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(open_one, range(incidents)))
        complete = wait_until(
            lambda: all(len(rx.delivered(p)) >= incidents for p in healthy), timeout=300
        )
        from_sent, from_answer = [], []
        for p in healthy:
            for m in rx.delivered(p):
                inc = m.body["incident"]["uuid"]
                from_sent.append(m.at - sent[inc])
                from_answer.append(m.at - answered[inc])
        opens = [answered[k] - sent[k] for k in sent]
        return {
            "hang_one": hang_one,
            "complete": complete,
            "deliveries": len(from_sent),
            "open_p50_ms": _pct(opens, 50),
            "open_p99_ms": _pct(opens, 99),
            "from_sent_p50_ms": _pct(from_sent, 50),
            "from_sent_p99_ms": _pct(from_sent, 99),
            "from_answer_p50_ms": _pct(from_answer, 50),
            "from_answer_p99_ms": _pct(from_answer, 99),
        }
    finally:
        srv.stop()
        rx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=100)
    ap.add_argument("--channels", type=int, default=10)
    args = ap.parse_args()
    for hang_one in (False, True):
        r = run_round(args.incidents, args.channels, hang_one)
        print(
            f"hang_one={r['hang_one']} complete={r['complete']} deliveries={r['deliveries']} "
            f"open p50/p99 {r['open_p50_ms']:.0f}/{r['open_p99_ms']:.0f} ms | "
            f"open sent->delivered p50/p99 {r['from_sent_p50_ms']:.0f}/"
            f"{r['from_sent_p99_ms']:.0f} ms | open answered->delivered p50/p99 "
            f"{r['from_answer_p50_ms']:.0f}/{r['from_answer_p99_ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
