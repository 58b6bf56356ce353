"""The analysts' catalog: a small DuckDB file of views over the Parquet lake.

The server owns ``floodwatch.duckdb``; analysts never touch it. Instead the server writes
``catalog.duckdb`` (views only, no data) at start and then leaves it alone, so any number of
read-only DuckDB sessions can open it while the server runs. The ``nodes`` and ``incidents`` views
read Parquet snapshots of the server's tables, refreshed by the server every maintenance
interval.

The file is written in DuckDB's v1.0.0 storage format (``STORAGE_COMPATIBILITY_VERSION``), which
DuckDB 1.0 and every later release opens; the same views are also written as plain SQL to
``catalog.sql`` for a session that would rather ``.read`` them.

The raw tables are read with ``<kind>/**/*.parquet``: DuckDB's ``**`` does not descend into
symlinked directories, which is what keeps a generation that compaction replaced out of every new
listing while the paths listed before still open (see ``store/lake.py``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import duckdb

from .db import Connection

__all__ = [
    "CATALOG_NAME",
    "CATALOG_SQL_NAME",
    "STORAGE_VERSION",
    "VIEWS",
    "export_snapshots",
    "view_statements",
    "write_catalog",
]

CATALOG_NAME = "catalog.duckdb"
CATALOG_SQL_NAME = "catalog.sql"
# the oldest storage format DuckDB 2 writes; DuckDB 1.0 and later open it
STORAGE_VERSION = "v1.0.0"

# view -> glob under the lake, and whether the path carries hive partitions
VIEWS: dict[str, tuple[str, bool]] = {
    "metrics": ("metrics/**/*.parquet", True),
    "flows": ("flows/**/*.parquet", True),
    "metrics_1m": ("metrics_1m/**/*.parquet", True),
    "metrics_5m": ("metrics_5m/**/*.parquet", True),
    "metrics_1h": ("metrics_1h/**/*.parquet", True),
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


def view_statements(lake_root: Path) -> list[str]:
    """``CREATE OR REPLACE VIEW`` for every view, over the lake at ``lake_root``."""
    out = []
    for view, (glob, hive) in VIEWS.items():
        source = lake_root.resolve() / glob
        opts = ", hive_partitioning = true, union_by_name = true" if hive else ""
        reader = f"read_parquet({_quote(source)}{opts})"
        out.append(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {reader}")
    return out


def write_catalog(data_dir: Path, lake_root: Path) -> Path:
    """(Re)write the catalog file and ``catalog.sql``. Written under temporary names and
    renamed into place, so an analyst holding the old one open keeps a working file."""
    final = data_dir / CATALOG_NAME
    tmp = data_dir / f".{CATALOG_NAME}.{uuid.uuid4().hex[:8]}.tmp"
    statements = view_statements(lake_root)
    con = duckdb.connect(str(tmp), config={"storage_compatibility_version": STORAGE_VERSION})
    try:
        for sql in statements:
            con.execute(sql)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with contextlib.suppress(FileNotFoundError):
        Path(str(tmp) + ".wal").unlink()
    os.replace(tmp, final)
    script = data_dir / f".{CATALOG_SQL_NAME}.{uuid.uuid4().hex[:8]}.tmp"
    header = "-- Floodwatch's catalog views; in any DuckDB session: .read catalog.sql\n"
    script.write_text(header + "".join(f"{sql};\n" for sql in statements))
    os.replace(script, data_dir / CATALOG_SQL_NAME)
    return final
