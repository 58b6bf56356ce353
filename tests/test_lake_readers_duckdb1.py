"""An analyst on DuckDB 1.x opens the catalog the server (DuckDB 2) wrote, read-only, while the
lake is being written and compacted, and counts every view; ``catalog.sql`` works there too.

DuckDB 1.x comes from ``requirements-duckdb1.lock``, installed by ``make test`` into
``.venv/duckdb1`` (``FLOODWATCH_DUCKDB1`` names another directory). Without it the test is
skipped, except in CI (``CI=true``), where it fails."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from ingest.pipeline import Pipeline, PipelineSettings
from store.catalog import CATALOG_NAME, CATALOG_SQL_NAME, VIEWS

from .test_lake_readers import Published, _write_and_compact, write_test_catalog

ROOT = Path(__file__).resolve().parent.parent
DUCKDB1 = Path(os.environ.get("FLOODWATCH_DUCKDB1") or ROOT / ".venv" / "duckdb1")

# Runs under DuckDB 1.x. Reads the bounds of what is published from two files the writer keeps
# up to date (rows in place before the read; rows that may be in place after it).
_SCRIPT = r"""
import json, sys
from pathlib import Path
import duckdb
data, views = Path(sys.argv[1]), sys.argv[2].split(",")
def bound(name):
    return int((data / name).read_text())
out = {"version": duckdb.__version__, "reads": 0, "failures": [], "sql_counts": {}}
con = duckdb.connect(str(data / "catalog.duckdb"), read_only=True)
while True:
    last = (data / "stop").exists()
    lo = bound("done")
    for view in views:
        try:
            rows = con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
        except duckdb.Error as exc:
            out["failures"].append(f"{view}: {exc}")
    try:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT pps) FROM metrics").fetchone()
    except duckdb.Error as exc:
        out["failures"].append(f"metrics: {exc}")
    else:
        hi = bound("started")
        if rows != distinct or not lo <= rows <= hi:
            out["failures"].append(f"metrics: {rows} rows, {distinct} distinct, {lo}..{hi}")
    out["reads"] += 1
    if last:
        break
con.close()
script = duckdb.connect()
script.execute((data / "catalog.sql").read_text())
for view in views:
    out["sql_counts"][view] = script.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
print(json.dumps(out))
"""


def _old_duckdb() -> Path:
    if not (DUCKDB1 / "duckdb").is_dir():
        msg = f"no DuckDB 1.x at {DUCKDB1} (make test installs it from requirements-duckdb1.lock)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return DUCKDB1


def _put(path: Path, value: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(str(value))
    os.replace(tmp, path)


def test_duckdb1_reads_the_catalog_while_the_lake_is_written(tmp_path: Path) -> None:
    old = _old_duckdb()
    assert duckdb.__version__.startswith("2."), "the server's DuckDB writes the catalog"
    pub = Published()
    _put(tmp_path / "done", 0)
    _put(tmp_path / "started", 0)

    async def scenario() -> str:
        p = Pipeline(tmp_path, PipelineSettings(flush_rows=10**9, flush_age_secs=3600))
        await p.start()
        write_test_catalog(tmp_path)
        env = {**os.environ, "PYTHONPATH": str(old)}
        reader = await asyncio.create_subprocess_exec(
            *[sys.executable, "-s", "-c", _SCRIPT, str(tmp_path), ",".join(VIEWS)],
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        def bounds(pub: Published) -> None:
            done, started = pub.bounds()
            _put(tmp_path / "started", started)
            _put(tmp_path / "done", done)

        try:
            await _write_and_compact(p, pub, str(uuid.uuid4()), rounds=8, on_change=bounds)
        finally:
            (tmp_path / "stop").touch()
            out, err = await reader.communicate()
            await p.stop()
        assert reader.returncode == 0, err.decode()
        return out.decode()

    result = json.loads(asyncio.run(scenario()))
    assert result["version"].startswith("1."), result["version"]
    assert result["failures"] == []
    assert result["reads"] >= 1
    # after the writes: every row, through the views in catalog.sql too
    assert result["sql_counts"]["metrics"] == pub.done
    assert set(result["sql_counts"]) == set(VIEWS)
    assert (tmp_path / CATALOG_NAME).exists() and (tmp_path / CATALOG_SQL_NAME).exists()


def test_catalog_is_refused_by_duckdb1_in_duckdb2_storage(tmp_path: Path) -> None:
    """The check above can fail: a catalog in DuckDB 2's own storage format is refused."""
    old = _old_duckdb()
    path = tmp_path / "new.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE VIEW v AS SELECT 1 AS x")
    con.execute("CHECKPOINT")
    con.close()
    probe = "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True)"
    done = subprocess.run(
        [sys.executable, "-s", "-c", probe, str(path)],
        env={**os.environ, "PYTHONPATH": str(old)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "version" in done.stderr.lower()
