"""The analysts' catalog: a small DuckDB file of views over the Parquet lake.

The server owns ``floodwatch.duckdb``; analysts never touch it. Instead the server writes
``catalog.duckdb`` (views only, no data) at start and then leaves it alone, so any number of
read-only DuckDB sessions can open it while the server runs. The ``nodes`` and ``incidents`` views
read Parquet snapshots of the server's tables, refreshed by the server every maintenance
interval.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import duckdb

from .db import Connection

__all__ = ["CATALOG_NAME", "VIEWS", "export_snapshots", "write_catalog"]

CATALOG_NAME = "catalog.duckdb"

# view -> glob under the lake, and whether the path carries hive partitions
VIEWS: dict[str, tuple[str, bool]] = {
    "metrics": ("metrics/*/*/*/*.parquet", True),
    "flows": ("flows/*/*/*/*.parquet", True),
    "metrics_1m": ("metrics_1m/*/*/*/*.parquet", True),
    "metrics_5m": ("metrics_5m/*/*/*/*.parquet", True),
    "metrics_1h": ("metrics_1h/*/*/*.parquet", True),
    "nodes": ("_snapshots/nodes.parquet", False),
    "incidents": ("_snapshots/incidents.parquet", False),
}

_SNAPSHOTS = {
    "nodes": """
        SELECT CAST(uuid AS VARCHAR) AS uuid, CAST(workspace_uuid AS VARCHAR) AS workspace,
               name, ip, location, os, interface, priority, last_seen, last_pps, last_bps,
               created_at, updated_at, deleted_at
        FROM nodes""",
    "incidents": """
        SELECT CAST(uuid AS VARCHAR) AS uuid, id, CAST(workspace_uuid AS VARCHAR) AS workspace,
               CAST(node_uuid AS VARCHAR) AS node_uuid, status, severity, attack_family,
               attack_subtype, title, started_at, updated_at, resolved_at, peak_pps, peak_bps,
               source_ip_count, confidence,
               CAST(protocol_breakdown AS VARCHAR) AS protocol_breakdown,
               CAST(geo_origin AS VARCHAR) AS geo_origin,
               CAST(top_sources AS VARCHAR) AS top_sources,
               CAST(top_dst_ports AS VARCHAR) AS top_dst_ports, summary, source
        FROM incidents""",
}


def export_snapshots(con: Connection, lake_root: Path) -> None:
    """Copy the nodes and incidents tables (never any secret) to Parquet, atomically."""
    target_dir = lake_root / "_snapshots"
    target_dir.mkdir(parents=True, exist_ok=True)
    for name, sql in _SNAPSHOTS.items():
        final = target_dir / f"{name}.parquet"
        tmp = target_dir / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, final)


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_catalog(data_dir: Path, lake_root: Path) -> Path:
    """(Re)write the catalog file. Written under a temporary name and renamed into place, so an
    analyst holding the old one open keeps a working file."""
    final = data_dir / CATALOG_NAME
    tmp = data_dir / f".{CATALOG_NAME}.{uuid.uuid4().hex[:8]}.tmp"
    con = duckdb.connect(str(tmp))
    try:
        for view, (glob, hive) in VIEWS.items():
            source = lake_root.resolve() / glob
            opts = ", hive_partitioning = true, union_by_name = true" if hive else ""
            reader = f"read_parquet({_quote(source)}{opts})"
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {reader}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with contextlib.suppress(FileNotFoundError):
        Path(str(tmp) + ".wal").unlink()
    os.replace(tmp, final)
    return final
