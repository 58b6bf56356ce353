"""The server's DuckDB database: one file, one connection, one writer thread.

``Store`` is inert until ``open()``. In the server every call goes through ``run()``, which hands
the work to a single worker thread: DuckDB work never blocks the event loop and there is exactly
one writer. The CLI uses the same repository functions directly when no server holds the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import duckdb
import orjson

from .errors import Conflict, DatabaseLocked, InvalidValue, NotFound, StoreError
from .migrations import MIGRATIONS

__all__ = ["Connection", "Store", "iso_utc", "transaction", "utcnow"]

Connection = duckdb.DuckDBPyConnection
P = ParamSpec("P")
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_utc(value: datetime) -> str:
    """``value`` as the API writes every time: ISO 8601 in UTC to the second, with ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def transaction(con: Connection) -> Iterator[Connection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class Store:
    def __init__(self, path: Path, threads: int = 2, memory_limit: str = "1GB") -> None:
        self.path = path
        self._threads = threads
        self._memory_limit = memory_limit
        self._con: Connection | None = None
        self._read_con: Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._query_con: Connection | None = None
        self._querier: ThreadPoolExecutor | None = None
        self.backlog = 0
        """Calls handed to the writer thread and not finished yet (queued or running)."""

    @property
    def con(self) -> Connection:
        if self._con is None:
            raise StoreError("store is not open")
        return self._con

    def open(self) -> None:
        """Open (creating if needed) the database file and apply pending migrations."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseLocked(
                    f"{self.path} is in use by another process (is a server running?)"
                ) from exc
            raise
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {int(self._threads)}")
        con.execute("SET memory_limit = ?", [self._memory_limit])
        self._con = con
        self._migrate()

    def _migrate(self) -> None:
        con = self.con
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = int(row[0]) if row else 0
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            with transaction(con):
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, utcnow()])

    def schema_version(self) -> int:
        row = self.con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._con is not None:
            self._con.close()
            self._con = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_all)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-read")
        self._querier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-query")

    def _open_all(self) -> None:
        self.open()
        # made here, on the writer thread, then each used only by its own thread
        self._read_con = self.con.cursor()
        self._read_con.execute("SET TimeZone = 'UTC'")
        self._query_con = self.con.cursor()
        self._query_con.execute("SET TimeZone = 'UTC'")

    async def stop(self) -> None:
        for pool in (self._reader, self._querier):
            if pool is not None:
                pool.shutdown(wait=True)
        self._reader = self._querier = None
        if self._executor is not None:
            executor = self._executor
            await asyncio.get_running_loop().run_in_executor(executor, self._close_con)
            executor.shutdown(wait=True)
            self._executor = None

    def _close_con(self) -> None:
        for cur in (self._read_con, self._query_con):
            if cur is not None:
                cur.close()
        self._read_con = self._query_con = None
        if self._con is not None:
            self._con.close()
            self._con = None

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(con, *args, **kwargs)`` on the writer thread."""
        if self._executor is None:
            raise StoreError("store is not started")
        call: Callable[[], T] = functools.partial(fn, self.con, *args, **kwargs)
        self.backlog += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        finally:
            self.backlog -= 1

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the read-only ``fn(con, *args, **kwargs)`` on the reader thread, with a connection
        of its own: the hot path's lookups (keys, agent configs) never queue behind writes. It
        sees every committed write; ``fn`` must not write."""
        if self._reader is None or self._read_con is None:
            raise StoreError("store is not started")
        call: Callable[[], T] = functools.partial(fn, self._read_con, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._reader, call)

    async def query(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the read-only ``fn`` that may scan the lake (analytics, node traffic figures) on
        a thread and connection of its own: a dashboard's scans never hold up the writer
        (incidents, liveness) nor the hot path's lookups. It sees every committed write."""
        if self._querier is None or self._query_con is None:
            raise StoreError("store is not started")
        call: Callable[[], T] = functools.partial(fn, self._query_con, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._querier, call)

    def call(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(con, ...)`` in the calling thread (CLI use, no server running)."""
        return fn(self.con, *args, **kwargs)


def bound(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The named parameters that ``sql`` uses (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


def rows_as_dicts(cur: Any) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


SettingsTable = Literal["agent_settings", "detection_settings"]
"""The tables of stored overrides: per workspace (``node_uuid`` NULL) and per node one row each,
the overrides as a JSON object in ``settings``."""


def settings_scope(node_uuid: uuid.UUID | None) -> tuple[str, list[Any]]:
    """The condition (and its parameters) that picks the workspace's own row of a
    :data:`SettingsTable` (``node_uuid`` None) or the node's."""
    if node_uuid is None:
        return "node_uuid IS NULL", []
    return "node_uuid = ?", [str(node_uuid)]


def stored_settings(
    con: Connection, table: SettingsTable, ws_uuid: uuid.UUID, node_uuid: uuid.UUID | None
) -> dict[str, Any]:
    """The overrides a workspace (``node_uuid`` None) or one node holds in ``table``; {} if
    none."""
    cond, params = settings_scope(node_uuid)
    row = con.execute(
        f"SELECT settings FROM {table} WHERE workspace_uuid = ? AND {cond}",
        [str(ws_uuid), *params],
    ).fetchone()
    if row is None:
        return {}
    value: dict[str, Any] = orjson.loads(row[0])
    return value


MIN_ID_PREFIX = 4


def one_by_id_prefix(
    con: Connection,
    table: str,
    columns: str,
    ref: str,
    *,
    what: str,
    field: str,
    scope: str = "",
    scope_params: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """The one row of ``table`` whose UUID ``id`` is ``ref`` or starts with it (at least
    ``MIN_ID_PREFIX`` characters, any case): how the CLI's revoke commands name a token or a
    collector key. ``scope`` is an optional SQL condition (``"AND workspace_uuid = ?"``) with its
    ``scope_params``; ``table``, ``columns`` and ``scope`` are fixed fragments, never input.

    A too short ``ref`` is ``InvalidValue`` (for ``field``), no match ``NotFound``, more than one
    ``Conflict``, each message naming ``what`` ("token", "collector key")."""
    prefix = ref.strip().lower()
    if len(prefix) < MIN_ID_PREFIX:
        raise InvalidValue(
            f"{what} id must be at least {MIN_ID_PREFIX} characters (the id or a prefix of it)",
            field,
        )
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {columns} FROM {table} WHERE starts_with(CAST(id AS VARCHAR), ?) {scope}",
            [prefix, *scope_params],
        )
    )
    if not rows:
        raise NotFound(f"no {what} id starts with {prefix}")
    if len(rows) > 1:
        raise Conflict(f"{prefix} matches {len(rows)} {what}s; give more of the id")
    return rows[0]
