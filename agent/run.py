"""The agent's work, behind ``floodwatch agent`` (``agent.main`` parses the flags): sample this
machine's counters every ``interval_secs`` and push per-second ``metrics`` rows (and, with
``capture``, sampled ``flows`` rows) through ``Sender``, spooling while the server is
unreachable, until SIGTERM or SIGINT; or, for ``--once``, print one interval's rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any

import orjson

from .capture import Capture, WindowStats
from .config import AgentConfig
from .errors import ProcfsError, Unauthorized
from .procfs import Sample, default_interface, metrics_rows, read_sample
from .sender import Compression, Sender
from .spool import Spool

__all__ = ["run_loop", "sample_once", "with_capture"]

log = logging.getLogger("floodwatch.agent")

_STATS_EVERY_SECS = 60.0


def _interface(cfg: AgentConfig) -> str:
    return cfg.interface or default_interface(cfg.proc_root)


def _start_capture(cfg: AgentConfig, interface: str) -> Capture | None:
    if not cfg.capture:
        return None
    capture = Capture(interface, cfg.sample_rate)
    capture.start()
    return capture


def with_capture(
    rows: list[dict[str, Any]], window: WindowStats, sampling_rate: int, seconds: float
) -> list[dict[str, Any]]:
    """Fill the capture columns of metrics rows from one capture window of ``seconds``."""
    if seconds <= 0:
        return rows
    scale = sampling_rate / seconds
    extra = {
        "syn_pps": window.syn * scale,
        "ack_pps": window.ack * scale,
        "rst_pps": window.rst * scale,
        "fin_pps": window.fin * scale,
        "distinct_sources": window.distinct_sources,
    }
    return [{**row, **extra} for row in rows]


def _rows(
    prev: Sample, cur: Sample, capture: Capture | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = metrics_rows(prev, cur)
    if capture is None:
        return rows, []
    window = capture.take()
    return with_capture(rows, window, capture.sampling_rate, cur.mono - prev.mono), window.flows


async def sample_once(
    cfg: AgentConfig,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    out: IO[str] | None = None,
) -> int:
    """``--once``: two samples ``interval_secs`` apart, rows printed as JSON lines to ``out``
    (stdout by default). ``sleep`` is the pause between the samples."""
    stream = sys.stdout if out is None else out
    interface = _interface(cfg)
    prev = read_sample(cfg.proc_root, interface)
    capture = _start_capture(cfg, interface)
    try:
        await sleep(cfg.interval_secs)
        cur = read_sample(cfg.proc_root, interface)
        metrics, flows = _rows(prev, cur, capture)
    finally:
        if capture is not None:
            capture.stop()
    for row in [*metrics, *flows]:
        stream.write(orjson.dumps(row).decode() + "\n")
    stream.flush()
    return 0


async def run_loop(cfg: AgentConfig) -> int:
    """The agent proper: runs until SIGTERM/SIGINT (or the server refuses the key)."""
    interface = _interface(cfg)
    prev: Sample | None = await asyncio.to_thread(read_sample, cfg.proc_root, interface)
    spool: Spool | None = None
    if cfg.spool_dir:
        spool = Spool(cfg.spool_dir, cfg.spool_max_bytes)
        await asyncio.to_thread(spool.open)
    compression: Compression = "zstd" if cfg.compression == "zstd" else None
    if cfg.compression == "lz4":
        compression = "lz4"

    def sender(kind: str) -> Sender:
        return Sender(
            cfg.server_url,
            cfg.key,
            kind=kind,
            batch_rows=cfg.batch_rows,
            max_age_secs=cfg.max_batch_age_secs,
            compression=compression,
            spool=spool,
        )

    metrics = sender("metrics")
    flows = sender("flows") if cfg.capture else None
    capture = _start_capture(cfg, interface)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "agent started interface=%s server=%s capture=%s spool=%s",
        interface,
        cfg.server_url,
        cfg.capture,
        cfg.spool_dir or "-",
    )
    status = 0
    next_tick = time.monotonic() + cfg.interval_secs
    next_stats = time.monotonic() + _STATS_EVERY_SECS
    try:
        if capture is not None:
            capture.take()  # start the first window with the first sample
        while not stop.is_set():
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                    await stop.wait()
            if stop.is_set():
                break
            now = time.monotonic()
            next_tick += cfg.interval_secs
            if next_tick <= now:  # fell behind (suspended, overloaded): skip, do not burst
                next_tick = now + cfg.interval_secs
            try:
                cur = await asyncio.to_thread(read_sample, cfg.proc_root, interface)
            except ProcfsError as exc:
                log.error("cannot sample error=%s", exc)
                prev = None
                continue
            if prev is not None:
                rows, flow_rows = _rows(prev, cur, capture)
                await metrics.add(rows)
                if flows is not None and flow_rows:
                    await flows.add(flow_rows)
            prev = cur
            if now >= next_stats:
                next_stats = now + _STATS_EVERY_SECS
                log.info(
                    "agent counters metrics=%s flows=%s",
                    metrics.stats.as_dict(),
                    flows.stats.as_dict() if flows is not None else "-",
                )
    except Unauthorized as exc:
        log.error("server refused the key, stopping: %s", exc)
        status = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if capture is not None:
            capture.stop()
        await metrics.close()
        if flows is not None:
            await flows.close()
        log.info("agent stopped counters=%s", metrics.stats.as_dict())
    return status
