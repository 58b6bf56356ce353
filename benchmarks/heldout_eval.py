"""Held-out detection evaluation through the public interfaces only.

``python -m benchmarks.heldout_eval [--nodes N] [--days D] [--seed S] [--quick]``

Starts the real server (``benchmarks.harness.ServerProcess``) on a temporary data directory,
creates a workspace (CLI), nodes (REST) and a collector key (CLI), then:

1. history: ``--days`` of per-second metrics for every node (and flow records for some nodes)
   from ``benchmarks.heldout_traffic``, sent in time order at full speed with the collector key
   in lz4 Arrow IPC batches of about 10k rows, honouring 503 + Retry-After;
2. live: a few nodes send every second in real time; floods of >= 10x start at known wall-clock
   seconds, and ``GET /api/v1/incidents`` is polled every 200 ms to measure when each becomes
   visible;
3. every incident is read back (list + Get Incident) and scored against the labels by
   ``benchmarks.heldout_score``: recall by size band, delay onset -> ``detection.fired_at``,
   false incidents per 100 benign node-days, family/subtype accuracy, the ``detection``
   fields, campaigns and the live visibility.

It never reads the detector's code nor our own scenario generator.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import requests
from pyarrow import ipc

from .harness import ServerProcess
from .heldout_rows import node_frames
from .heldout_score import Label, score, ts
from .heldout_traffic import Event, NodeProfile, finish_attack, make_profiles, plan_history

ARROW = "application/vnd.apache.arrow.stream"
BATCH_ROWS = 10_000


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression="lz4")) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _to_wire(df: pl.DataFrame) -> pa.Table:
    out = df.with_columns(
        time=pl.from_epoch(pl.col("t"), time_unit="s").dt.replace_time_zone("UTC")
    ).drop("t")
    return out.to_arrow()


class Sender:
    """Posts Arrow bodies with the collector key; retries 503/5xx/network errors."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": ARROW}
        self.n = 0
        self.rows = 0
        self.retries_503 = 0
        self.retry_wait = 0.0
        self.errors: list[str] = []

    def post(self, kind: str, df: pl.DataFrame) -> float:
        """Send; returns the wall-clock time the 202 came back."""
        body = encode(_to_wire(df))
        self.n += 1
        batch_id = f"ho-{kind}-{self.n}"
        while True:
            try:
                r = self.http.post(
                    f"{self.base}/api/v1/telemetry/{kind}",
                    data=body,
                    headers={**self.headers, "X-Batch-Id": batch_id},
                    timeout=120,
                )
            except requests.RequestException as exc:
                self.errors.append(f"{kind}: {exc}")
                time.sleep(1.0)
                continue
            if r.status_code == 202:
                self.rows += df.height
                return time.time()
            if r.status_code == 503 or r.status_code >= 500:
                wait = float(r.headers.get("Retry-After", "1"))
                self.retries_503 += 1
                self.retry_wait += wait
                time.sleep(wait)
                continue
            raise RuntimeError(f"{kind} batch refused: {r.status_code} {r.text[:500]}")


class Api:
    """Deploy-token REST client honouring 429."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.lock = threading.Lock()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        while True:
            with self.lock:
                r = self.http.get(self.base + path, params=params, headers=self.headers, timeout=30)
            if r.status_code == 429:
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            r.raise_for_status()
            out: dict[str, Any] = r.json()
            return out

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(self.base + path, json=body, headers=self.headers, timeout=30)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")
        out: dict[str, Any] = r.json()
        return out

    def all_incidents(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.get("/api/v1/incidents", limit=100, offset=offset)
            out.extend(page["incidents"])
            offset += len(page["incidents"])
            if not page["incidents"] or offset >= page["total"]:
                return out


def _metrics_backlog(base: str) -> float | None:
    try:
        text = requests.get(base + "/metrics", timeout=5).text
    except requests.RequestException:
        return None
    total = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        if "detect" in name and ("backlog" in name or "queue" in name or "pending" in name):
            total = (total or 0.0) + float(value.split()[0])
    return total


def wait_detector_idle(base: str, api: Api, timeout: float) -> float:
    """Wait until the detector backlog gauge (if any) is 0 and the incident count stable."""
    start = time.time()
    stable_since = time.time()
    last = -1
    while time.time() - start < timeout:
        backlog = _metrics_backlog(base)
        n = api.get("/api/v1/incidents", limit=1)["total"]
        if n != last or (backlog or 0) > 0:
            last = n
            stable_since = time.time()
        elif time.time() - stable_since > 4:
            break
        time.sleep(0.5)
    return time.time() - start


# ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    nodes: int
    days: float
    seed: int
    live_secs: int
    live_offsets: tuple[int, ...]
    live_dur: int
    live_benign: int
    noise: float = 1.0


def frames(
    nodes: list[NodeProfile], events: list[Event], t0: int, t1: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Metrics and flows (None without flow nodes) of these nodes over [t0, t1), each row with
    its node's UUID in ``node``, in time order."""
    mparts, fparts = [], []
    for p in nodes:
        m, f = node_frames(p, events, t0, t1, seed)
        mparts.append(m.with_columns(node=pl.lit(p.uuid)))
        if f is not None:
            fparts.append(f.with_columns(node=pl.lit(p.uuid)))
    metrics = pl.concat(mparts).sort("t", maintain_order=True)
    flows = pl.concat(fparts).sort("t", maintain_order=True) if fparts else None
    return metrics, flows


def set_peaks(labels: list[Label], metrics: pl.DataFrame) -> None:
    """Each label's highest pps between its onset and end."""
    for lab in labels:
        sub = metrics.filter(
            (pl.col("node") == lab.node.uuid) & (pl.col("t") >= lab.onset) & (pl.col("t") < lab.end)
        )
        lab.peak_pps = float(sub["pps"].max() or 0.0)  # type: ignore[arg-type]


def build_server(tmp: Path) -> tuple[ServerProcess, Api, str, str]:
    srv = ServerProcess(tmp / "data")
    srv.start()
    info = srv.cli_json("workspace", "create", "heldout", "--node-limit", "unlimited")
    ws, token = str(info["workspace_id"]), str(info["deploy_token"])
    key = str(srv.cli_json("collector", "create", "--workspace", ws, "--name", "heldout")["key"])
    return srv, Api(srv.base_url, token), ws, key


def run(plan: Plan, keep: bool, out_json: Path | None) -> int:
    rng = random.Random(plan.seed)
    profiles = make_profiles(plan.nodes, rng, noise=plan.noise)
    tmp = Path(tempfile.mkdtemp(prefix="heldout-"))
    print(f"data dir {tmp}", flush=True)
    srv, api, _ws, key = build_server(tmp)
    try:
        for p in profiles:
            node = api.post("/api/v1/nodes", {"name": p.name, "ip": p.ip})["node"]
            p.uuid = str(node["uuid"])
        by_uuid = {p.uuid: p for p in profiles}
        sender = Sender(srv.base_url, key)

        # ---------------- history
        hist_end = int(time.time()) - 300
        hist_start = hist_end - int(plan.days * 86400)
        events = plan_history(profiles, hist_start, hist_end, rng, plan.seed)
        t_gen = time.time()
        metrics, flows = frames(profiles, events, hist_start, hist_end, plan.seed)
        gen_secs = time.time() - t_gen
        labels = [Label(e, profiles[e.node], e.start, e.end) for e in events if e.kind == "attack"]
        set_peaks(labels, metrics)
        n_flows = 0 if flows is None else flows.height
        print(
            f"generated {metrics.height:,} metrics rows, {n_flows:,} flow rows, "
            f"{len(labels)} attacks in {gen_secs:.1f}s; sending history...",
            flush=True,
        )
        t_send = time.time()
        window = max(1, BATCH_ROWS // plan.nodes)
        mts = metrics["t"].to_list()
        # boundaries by time window
        t = hist_start
        mi = 0
        fi = 0
        fts = flows["t"].to_list() if flows is not None else []
        last_report = time.time()
        while t < hist_end:
            t_next = t + window
            mj = bisect.bisect_left(mts, t_next, lo=mi)
            if mj > mi:
                sender.post("metrics", metrics.slice(mi, mj - mi))
            mi = mj
            if flows is not None:
                fj = bisect.bisect_left(fts, t_next, lo=fi)
                k = fi
                while k < fj:  # flows in slices of at most ~2 batches' rows
                    kk = min(fj, k + 2 * BATCH_ROWS)
                    sender.post("flows", flows.slice(k, kk - k))
                    k = kk
                fi = fj
            t = t_next
            if time.time() - last_report > 20:
                last_report = time.time()
                done = (t - hist_start) / (hist_end - hist_start)
                print(
                    f"  {done:5.1%} of history sent, {sender.rows:,} rows, "
                    f"{time.time() - t_send:.0f}s, 503s {sender.retries_503}",
                    flush=True,
                )
        send_secs = time.time() - t_send
        hist_rows = sender.rows
        print(
            f"history sent: {hist_rows:,} rows in {send_secs:.1f}s "
            f"({hist_rows / send_secs:,.0f} rows/s), {sender.retries_503} x 503 "
            f"({sender.retry_wait:.0f}s waited)",
            flush=True,
        )
        idle = wait_detector_idle(srv.base_url, api, 120)
        print(f"detector idle after {idle:.1f}s", flush=True)
        benign_rows = metrics.height
        del metrics, flows, mts, fts

        # ---------------- live
        live = run_live(plan, profiles, events, labels, sender, api, hist_end, rng)
        time.sleep(3)

        # ---------------- read back
        incidents = api.all_incidents()
        details = {}
        for inc in incidents:
            details[inc["uuid"]] = api.get(f"/api/v1/incidents/{inc['uuid']}")["incident"]
        report = score(
            plan, profiles, by_uuid, events, labels, incidents, details, benign_rows, live
        )
        report["ingest"] = {
            "history_rows": hist_rows,
            "history_send_secs": round(send_secs, 1),
            "retries_503": sender.retries_503,
            "retry_wait_secs": sender.retry_wait,
            "gen_secs": round(gen_secs, 1),
        }
        if out_json:
            out_json.write_text(json.dumps(report, indent=1, default=str))
            print(f"\nJSON written to {out_json}")
        return 0
    finally:
        srv.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def run_live(
    plan: Plan,
    profiles: list[NodeProfile],
    events: list[Event],
    labels: list[Label],
    sender: Sender,
    api: Api,
    hist_end: int,
    rng: random.Random,
) -> dict[str, Any]:
    """Real-time phase: backfill the live nodes to now, then one batch per second."""
    cands = sorted((p for p in profiles if p.base_pps >= 3_000), key=lambda p: (not p.flows, p.idx))
    n_att = len(plan.live_offsets)
    flow_c = [p for p in cands if p.flows][:1]
    rest = [p for p in cands if p not in flow_c]
    rng.shuffle(rest)
    live_nodes = (flow_c + rest)[: n_att + plan.live_benign]
    l0 = int(time.time()) + 6
    kinds = ["ntp_amplification", "syn_flood", "udp_flood", "icmp_flood"]
    mults = [40.0, 15.0, 250.0, 12.0]
    live_events: list[Event] = []
    for i, off in enumerate(plan.live_offsets):
        p = live_nodes[i]
        ev = Event(
            p.idx, "attack", l0 + off, l0 + off + plan.live_dur, attack=kinds[i % len(kinds)],
            mult=mults[i % len(mults)], phase="live",
        )  # fmt: skip
        finish_attack(p, ev, rng, plan.seed)
        live_events.append(ev)
    all_events = events + live_events
    live_labels = [Label(e, profiles[e.node], e.start, e.end) for e in live_events]
    t_end = l0 + plan.live_secs
    metrics, flows = frames(live_nodes, all_events, hist_end, t_end, plan.seed)
    set_peaks(live_labels, metrics)
    # backfill everything before l0 at full speed
    back = metrics.filter(pl.col("t") < l0)
    for i in range(0, back.height, BATCH_ROWS):
        sender.post("metrics", back.slice(i, BATCH_ROWS))
    if flows is not None:
        fb = flows.filter(pl.col("t") < l0)
        for i in range(0, fb.height, 2 * BATCH_ROWS):
            sender.post("flows", fb.slice(i, 2 * BATCH_ROWS))
    print(
        f"live: {len(live_nodes)} nodes "
        f"({', '.join(f'{p.name} {p.base_pps:,.0f}pps' for p in live_nodes)}), backfilled "
        f"{back.height:,} rows; floods: "
        + "; ".join(
            f"{lab.node.name} {lab.ev.attack} {lab.ev.mult:.0f}x at +{lab.onset - l0}s"
            for lab in live_labels
        ),
        flush=True,
    )
    if time.time() > l0 + 1:
        print(f"  warning: backfill ended {time.time() - l0:.1f}s after the live start")
    seen: dict[str, tuple[float, dict[str, Any]]] = {}
    stop = threading.Event()
    polls = [0]

    def poller() -> None:
        while not stop.is_set():
            t_poll = time.time()
            try:
                page = api.get("/api/v1/incidents", limit=50)
            except requests.RequestException:
                continue
            polls[0] += 1
            now = time.time()
            for inc in page["incidents"]:
                if inc["uuid"] not in seen:
                    seen[inc["uuid"]] = (now, inc)
            stop.wait(max(0.0, 0.2 - (time.time() - t_poll)))

    th = threading.Thread(target=poller, daemon=True)
    th.start()
    # mark incidents that existed before the live phase
    time.sleep(0.5)
    before = set(seen)
    mt = metrics.partition_by("t", as_dict=True)
    ft = flows.partition_by("t", as_dict=True) if flows is not None else {}
    sent_at: dict[int, tuple[float, float]] = {}
    late = []
    for s in range(l0, t_end):
        target = s + 1 + 0.02
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            late.append(-delay)
        t_post = time.time()
        mdf = mt.get((s,))
        if mdf is not None:
            acked = sender.post("metrics", mdf)
            sent_at[s] = (t_post, acked)
        fdf = ft.get((s,))
        if fdf is not None:
            sender.post("flows", fdf)
    time.sleep(4)
    stop.set()
    th.join()
    for lab in live_labels:
        if lab.onset in sent_at:
            lab.wall_onset_sent, lab.wall_onset_acked = sent_at[lab.onset]
        cands_seen = [
            (w, inc)
            for u, (w, inc) in seen.items()
            if u not in before
            and inc["node_uuid"] == lab.node.uuid
            and (ts(inc["started_at"]) or 0) >= lab.onset - 30
        ]
        if cands_seen:
            lab.wall_seen = min(w for w, _ in cands_seen)
    labels.extend(live_labels)
    return {
        "l0": l0,
        "nodes": [p.name for p in live_nodes],
        "late_secs_max": max(late) if late else 0.0,
        "late_count": len(late),
        "polls": polls[0],
        "node_uuids": [p.uuid for p in live_nodes],
        "t_end": t_end,
        "rows": metrics.height,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--days", type=float, default=None)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="about 3 minutes")
    ap.add_argument("--live-secs", type=int, default=None)
    ap.add_argument("--noise", type=float, default=1.0, help="scale every node's per-second noise")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    a = ap.parse_args(argv)
    if a.quick:
        plan = Plan(a.nodes or 12, a.days or 1.0, a.seed, a.live_secs or 110, (20, 50, 80), 25, 1)
    else:
        plan = Plan(a.nodes or 30, a.days or 1.5, a.seed, a.live_secs or 200, (30, 90, 140), 40, 2)
    plan.noise = a.noise
    return run(plan, a.keep, a.json)


if __name__ == "__main__":
    sys.exit(main())
