"""``floodwatch sql``: the lake through the analysts' catalog, read-only, server running or not."""

from __future__ import annotations

import csv
import sys
from typing import Any

import duckdb
import orjson

from store.catalog import CATALOG_NAME, VIEWS

from .config import Config

__all__ = ["run_sql"]


def _print(cur: duckdb.DuckDBPyConnection, fmt: str) -> None:
    if cur.description is None:
        return
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if fmt == "json":
        for row in rows:
            line = orjson.dumps(dict(zip(cols, row, strict=True)), default=str)
            sys.stdout.write(line.decode() + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(cols)
        writer.writerows(rows)
        return
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + "\n")
    sys.stdout.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + "\n")
    sys.stdout.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def _cell(v: Any) -> str:
    return "NULL" if v is None else str(v)


def run_sql(cfg: Config, query: str | None, fmt: str) -> int:
    path = cfg.data_path / CATALOG_NAME
    if not path.exists():
        sys.stderr.write(
            f"floodwatch: error: no catalog at {path}; start the server on this data directory "
            "once to create it\n"
        )
        return 1
    con = duckdb.connect(str(path), read_only=True)
    try:
        if query is not None:
            try:
                _print(con.execute(query), fmt)
            except duckdb.Error as exc:
                sys.stderr.write(f"floodwatch: error: {exc}\n")
                return 1
            return 0
        sys.stdout.write(f"views: {', '.join(VIEWS)}; end with ; and Enter, quit with Ctrl-D\n")
        pending = ""
        while True:
            try:
                line = input("floodwatch> " if not pending else "        ...> ")
            except EOFError:
                sys.stdout.write("\n")
                return 0
            pending += line + "\n"
            if not pending.rstrip().endswith(";"):
                continue
            try:
                _print(con.execute(pending), fmt)
            except duckdb.Error as exc:
                sys.stdout.write(f"error: {exc}\n")
            pending = ""
    finally:
        con.close()
