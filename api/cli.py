"""The ``floodwatch`` command line. Operators script it, so its flags and --json output are
stable: add, never rename.

Exit status: 0 success, 1 the operation failed (message on stderr, or a JSON error object on
stdout with --json), 2 bad usage.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from agent.main import add_agent_parser, run_agent
from store.errors import DatabaseLocked, StoreError
from store.plans import PLANS, SUBSCRIPTION_STATUSES

from . import __version__
from .config import Config, ConfigError, apply_overrides, dump_toml, load_config

__all__ = ["main"]


def _common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--data", metavar="DIR", help="data directory (default ./var)")
    p.add_argument("--config", metavar="FILE", help="TOML configuration file")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object")


def _node_limit(value: str) -> str:
    if value != "unlimited":
        try:
            if int(value) < 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError("must be a whole number >= 0 or 'unlimited'") from None
    return value


@functools.cache
def _cli_now() -> datetime:
    """One "now" per run, so that ``--from -2h --to -90m`` spans exactly 30 minutes."""
    return datetime.now(UTC).replace(microsecond=0)


def _when(value: str) -> datetime:
    from .backtest import parse_time

    try:
        return parse_time(value, _cli_now())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floodwatch", description="Self-hosted DDoS detection and traffic telemetry."
    )
    parser.add_argument("--version", action="version", version=f"floodwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    _common(serve, json_flag=False)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8080)")

    ws = sub.add_parser("workspace", help="manage workspaces")
    ws_sub = ws.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ws_sub.add_parser("create", help="create a workspace and print its first deploy token")
    p.add_argument("name")
    p.add_argument("--plan", choices=list(PLANS))
    p.add_argument("--node-limit", type=_node_limit, metavar="N", help="N >= 0 or 'unlimited'")
    _common(p)
    p = ws_sub.add_parser("list", help="list workspaces")
    _common(p)
    p = ws_sub.add_parser("update", help="change a workspace's plan, limit or subscription")
    p.add_argument("workspace", nargs="?", help="id, id prefix or name (default: the only one)")
    p.add_argument("--workspace", dest="workspace_opt", metavar="WS", help="the same, as elsewhere")
    p.add_argument("--name")
    p.add_argument("--plan", choices=list(PLANS))
    p.add_argument("--node-limit", type=_node_limit, metavar="N")
    p.add_argument("--subscription-status", choices=list(SUBSCRIPTION_STATUSES))
    _common(p)
    p = ws_sub.add_parser("delete", help="deactivate a workspace, its nodes and tokens")
    p.add_argument("workspace")
    _common(p)

    tok = sub.add_parser("token", help="manage deploy tokens")
    tok_sub = tok.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = tok_sub.add_parser("create", help="create a deploy token (printed once)")
    p.add_argument("--workspace", help="id, id prefix or name (default: the only one)")
    p.add_argument("--name", help="a label for the token")
    _common(p)
    p = tok_sub.add_parser("list", help="list a workspace's deploy tokens (never the secrets)")
    p.add_argument("--workspace", help="id, id prefix or name (default: the only one)")
    _common(p)
    p = tok_sub.add_parser("revoke", help="revoke a deploy token")
    p.add_argument("token", help="token id (or a unique prefix of it), or the token itself")
    _common(p)

    col = sub.add_parser("collector", help="manage collector keys (binary telemetry)")
    col_sub = col.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = col_sub.add_parser("create", help="create a collector key (printed once)")
    p.add_argument("--workspace", help="id, id prefix or name (default: the only one)")
    p.add_argument("--name", default="collector", help="a label for the key")
    _common(p)
    p = col_sub.add_parser("list", help="list a workspace's collector keys")
    p.add_argument("--workspace", help="id, id prefix or name (default: the only one)")
    _common(p)
    p = col_sub.add_parser("revoke", help="revoke a collector key")
    p.add_argument("key_id", help="the key's id, or a unique prefix of it (4+ characters)")
    p.add_argument("--workspace", help="id, id prefix or name (default: the only one)")
    _common(p)

    sql = sub.add_parser("sql", help="query the lake with DuckDB (read-only; works while serving)")
    sql.add_argument("query", nargs="?", help="SQL to run; without it, an interactive prompt")
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _common(sql, json_flag=False)

    bt = sub.add_parser(
        "backtest",
        help="replay stored history through the detector with other settings",
        description="Replay the lake's history of [--from, --to) through the detector and list "
        "the incidents it would open beside the ones the server recorded.",
    )
    bt.add_argument(
        "--from",
        dest="start",
        required=True,
        type=_when,
        metavar="T1",
        help="start: ISO 8601 (2026-12-05T14:00:00Z) or relative (-6h, -2d)",
    )
    bt.add_argument(
        "--to",
        dest="end",
        default="now",
        type=_when,
        metavar="T2",
        help="end (exclusive), same forms as --from (default now)",
    )
    bt.add_argument("--node", metavar="N", help="only this node (uuid, uuid prefix or name)")
    bt.add_argument("--workspace", help="id, id prefix or name (default: the only one)")
    bt.add_argument(
        "--config",
        metavar="FILE",
        help="TOML or JSON detection settings, applied like PATCH "
        "/api/v1/workspace/detection (default: the settings in force)",
    )
    bt.add_argument(
        "--server-config",
        metavar="FILE",
        help="the server's TOML configuration file (data directory, seed_days)",
    )
    bt.add_argument("--data", metavar="DIR", help="data directory (default ./var)")
    bt.add_argument("--json", action="store_true", help="print one JSON object")

    add_agent_parser(sub)

    cfg = sub.add_parser("config", help="show or check the configuration")
    _common(cfg, json_flag=False)
    mode = cfg.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dump", action="store_true", help="print the effective config as TOML")
    mode.add_argument("--check", action="store_true", help="validate and exit 0 or 1")
    return parser


def _load(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    return apply_overrides(cfg, "server", data_dir=args.data)


def _creates_data(args: argparse.Namespace) -> bool:
    """Commands that may make a new data directory: ``serve`` and ``workspace create``."""
    return args.command == "serve" or (
        args.command == "workspace" and getattr(args, "action", None) == "create"
    )


def _require_data(args: argparse.Namespace, cfg: Config) -> None:
    """Every other command works on an existing data directory: a mistyped ``--data`` is an
    error naming it, not a new empty directory."""
    if not _creates_data(args) and not cfg.data_path.is_dir():
        raise ConfigError(
            f"data directory {cfg.data_path} does not exist (floodwatch serve or "
            "floodwatch workspace create makes one; check --data or server.data_dir)"
        )


def _out(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _fail(args: argparse.Namespace, code: str, message: str, field: str | None = None) -> int:
    if getattr(args, "json", False):
        error: dict[str, Any] = {"code": code, "message": message}
        if field is not None:
            error["field"] = field
        sys.stdout.write(orjson.dumps({"ok": False, "error": error}).decode() + "\n")
    sys.stderr.write(f"floodwatch: error: {message}\n")
    return 1


def _limit_text(limit: Any) -> str:
    return "unlimited" if limit is None else str(limit)


def _cmd_admin(args: argparse.Namespace, cfg: Config) -> int:
    from .admin import call_admin

    key = f"{args.command}.{args.action}"
    a: dict[str, Any] = {}
    if key == "workspace.create":
        a = {"name": args.name, "plan": args.plan, "node_limit": args.node_limit}
    elif key == "workspace.update":
        if args.workspace and args.workspace_opt and args.workspace != args.workspace_opt:
            return _fail(args, "invalid_parameter", "two different workspaces given", "workspace")
        a = {
            "workspace": args.workspace or args.workspace_opt,
            "name": args.name,
            "plan": args.plan,
            "node_limit": args.node_limit,
            "subscription_status": args.subscription_status,
        }
    elif key == "workspace.delete":
        a = {"workspace": args.workspace}
    elif key in ("token.create", "token.list"):
        a = {"workspace": args.workspace}
        if key == "token.create":
            a["name"] = args.name
    elif key == "token.revoke":
        a = {"token": args.token}
    elif key in ("collector.create", "collector.list"):
        a = {"workspace": args.workspace, "name": getattr(args, "name", None)}
    elif key == "collector.revoke":
        a = {"workspace": args.workspace, "key_id": args.key_id}
    result = call_admin(cfg, key, a)

    if key == "workspace.create":
        text = (
            f"workspace {result['workspace_id']} ({result['name']}, plan {result['plan']}, "
            f"node limit {_limit_text(result['node_limit'])})\n"
            f"deploy token (shown once, store it now): {result['deploy_token']}"
        )
    elif key == "workspace.list":
        lines = [
            f"{w['workspace_id']}  {w['name']:<24} {w['plan']:<12} "
            f"{w['node_count']}/{_limit_text(w['node_limit'])} nodes  {w['subscription_status']}"
            + (f"  (sub-workspace of {w['parent_id']})" if w["parent_id"] else "")
            for w in result["workspaces"]
        ]
        text = "\n".join(lines) or "no workspaces"
    elif key == "workspace.update":
        text = (
            f"workspace {result['workspace_id']}: plan {result['plan']}, node limit "
            f"{_limit_text(result['node_limit'])}, subscription {result['subscription_status']}"
        )
    elif key == "workspace.delete":
        text = f"workspace {result['workspace_id']} deleted"
    elif key == "token.create":
        text = (
            f"token {result['token_id']} for workspace {result['workspace_id']}\n"
            f"deploy token (shown once, store it now): {result['deploy_token']}"
        )
    elif key == "token.list":
        lines = [
            f"{t['token_id']}  {t['prefix']}…  {t['name']:<16} created {t['created_at']}"
            + (f"  REVOKED {t['revoked_at']}" if t["revoked_at"] else "")
            for t in result["tokens"]
        ]
        text = "\n".join(lines) or "no tokens"
    elif key == "token.revoke":
        text = f"token {result['token_id']} revoked"
    elif key == "collector.create":
        text = (
            f"collector key {result['key_id']} for workspace {result['workspace_id']}\n"
            f"collector key (shown once, store it now): {result['key']}"
        )
    elif key == "collector.list":
        lines = [
            f"{c['key_id']}  {c['prefix']}…  {c['name']:<16} created {c['created_at']}"
            + (f"  REVOKED {c['revoked_at']}" if c["revoked_at"] else "")
            for c in result["collectors"]
        ]
        text = "\n".join(lines) or "no collector keys"
    else:
        text = f"collector key {result['key_id']} revoked"
    _out(args, result, text)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    try:
        cfg = _load(args)
    except ConfigError as exc:
        sys.stderr.write(f"floodwatch: config error: {exc}\n")
        return 1
    if args.dump:
        sys.stdout.write(dump_toml(cfg))
    else:
        sys.stdout.write("configuration ok\n")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server import run_server

    cfg = _load(args)
    cfg = apply_overrides(cfg, "server", host=args.host, port=args.port)
    logging.basicConfig(
        level=cfg.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run_server(cfg)
    except DatabaseLocked as exc:
        sys.stderr.write(f"floodwatch: error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"floodwatch: error: cannot start: {exc}\n")
        return 1
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from . import backtest as bt
    from .admin import call_admin

    patch = bt.load_settings_file(args.config) if args.config else None
    cfg = apply_overrides(load_config(args.server_config), "server", data_dir=args.data)
    _require_data(args, cfg)
    ctx = call_admin(
        cfg,
        "backtest.context",
        {
            "workspace": args.workspace,
            "node": args.node,
            "from": args.start.isoformat(),
            "to": args.end.isoformat(),
        },
    )
    ws_overrides, effective = bt.workspace_settings(ctx, patch)
    hours = len(bt.hours_of(args.start, args.end))
    progress = bt.Progress.for_terminal(sys.stderr, hours)
    result = bt.run_backtest(cfg, ctx, args.start, args.end, ws_overrides, progress)
    result["settings"] = effective
    result["config_file"] = args.config
    _out(args, result, bt.render_text(result))
    return 0


def _glue_relative_times(argv: list[str]) -> list[str]:
    """``--from -6h`` as ``--from=-6h``: argparse would take ``-6h`` for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (
            tok in ("--from", "--to")
            and nxt is not None
            and nxt.startswith("-")
            and nxt[1:2].isdigit()
        ):
            out.append(f"{tok}={nxt}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    if "backtest" in raw:
        raw = _glue_relative_times(raw)
    args = parser.parse_args(raw)
    if args.command == "backtest" and args.start >= args.end:
        parser.error("backtest: --from must be before --to")  # exits 2, like any bad usage
    # Files we create (database, WAL, lake) are readable by the owner's group at most.
    os.umask(0o027)
    if args.command == "config":
        return _cmd_config(args)
    if args.command == "agent":
        return run_agent(args)
    if args.command == "sql":
        from .sql import run_sql

        try:
            cfg = _load(args)
            _require_data(args, cfg)
            return run_sql(cfg, args.query, args.format)
        except ConfigError as exc:
            return _fail(args, "config_error", str(exc))
    try:
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "backtest":
            return _cmd_backtest(args)
        cfg = _load(args)
        _require_data(args, cfg)
        return _cmd_admin(args, cfg)
    except ConfigError as exc:
        return _fail(args, "config_error", str(exc))
    except DatabaseLocked as exc:
        return _fail(args, "database_locked", str(exc))
    except StoreError as exc:
        from .errors import _from_store

        err = _from_store(exc)
        return _fail(args, err.code, err.message, err.field)
    except Exception as exc:
        from .backtest import BacktestError
        from .errors import ApiError

        if isinstance(exc, ApiError | BacktestError):
            return _fail(args, exc.code, exc.message, exc.field)
        raise


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
