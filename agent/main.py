"""``floodwatch agent``: sample this machine's counters every ``interval_secs`` and push
per-second ``metrics`` rows (and, with ``capture``, sampled ``flows`` rows) to a Floodwatch
server, spooling to disk while it is unreachable, until SIGTERM or SIGINT. This module only parses
the flags and imports nothing heavy, so that ``floodwatch --help`` stays fast; the work is in
``agent.run``.

``--once`` takes two samples one interval apart, prints the rows it would send as JSON lines
(metrics rows first, then any flow rows) and sends nothing.

Exit status: 0 stopped cleanly, 1 the agent cannot run (bad config, unreadable counters, no
capture permission, or the server refused the key), 2 bad usage, 130 interrupted during --once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from .config import AgentConfig, apply_overrides, load_agent_config, validate
from .errors import AgentError, ConfigError

__all__ = ["add_agent_parser", "run_agent"]


def add_agent_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``agent`` subcommand to an argparse subparsers object; ``run_agent`` runs it."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "agent",
        help="run the Linux agent that pushes this machine's telemetry",
        description="Sample /proc counters (and optionally packets) every second and push "
        "them to a Floodwatch server as Arrow batches.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with an [agent] table")
    p.add_argument("--server", metavar="URL", help="server base URL (agent.server_url)")
    p.add_argument(
        "--key",
        metavar="KEY",
        help="API key (agent.key); visible to other users in ps, prefer the config file or "
        "FLOODWATCH_AGENT__KEY",
    )
    p.add_argument("--interface", metavar="NAME", help="interface (default: the default route's)")
    p.add_argument("--proc-root", metavar="DIR", help="read counters under DIR (default /proc)")
    p.add_argument("--spool-dir", metavar="DIR", help="keep undeliverable batches in DIR")
    p.add_argument(
        "--once", action="store_true", help="print one interval's rows as JSON lines, send nothing"
    )
    p.add_argument(
        "--capture",
        action="store_true",
        default=None,
        help="also sample packets with AF_PACKET (root)",
    )
    return p


def _config(args: argparse.Namespace) -> AgentConfig:
    cfg = load_agent_config(args.config)
    cfg = apply_overrides(
        cfg,
        server_url=args.server,
        key=args.key,
        interface=args.interface,
        proc_root=args.proc_root,
        spool_dir=args.spool_dir,
        capture=args.capture,
    )
    return validate(cfg, need_server=not args.once)


def run_agent(args: argparse.Namespace) -> int:
    """Run ``floodwatch agent`` with parsed arguments; returns the exit status."""
    try:
        cfg = _config(args)
    except ConfigError as exc:
        sys.stderr.write(f"floodwatch: config error: {exc}\n")
        return 1
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .run import run_loop, sample_once  # pyarrow and aiohttp: only when the agent runs

    try:
        if args.once:
            return asyncio.run(sample_once(cfg))
        return asyncio.run(run_loop(cfg))
    except AgentError as exc:
        sys.stderr.write(f"floodwatch: error: {exc}\n")
        return 1
    except KeyboardInterrupt:  # Ctrl-C during --once, or before the signal handlers are set
        return 130
