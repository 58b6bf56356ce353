"""Attribute each decoded row to a node and give the table its lake form."""

from __future__ import annotations

import functools
import ipaddress

import pyarrow as pa
import pyarrow.compute as pc

from .errors import DecodeError
from .schema import ROUTING_COLUMNS, RecordKind

__all__ = ["to_lake_table"]


@functools.lru_cache(maxsize=1 << 16)
def _canonical_ip(text: str) -> str | None:
    """The address's canonical text, None for no address. Cached: a collector names the same
    few dozen addresses in every batch, and parsing one costs a few microseconds."""
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


# Both lookups work on the column's distinct values (a batch names a few dozen nodes in tens of
# thousands of rows) and map them back with one vectorized pass. Each returns the node UUIDs
# (null where the row names no node of the workspace) and whether every non-null value named
# one, and adds each index entry it used to ``used`` (if given).


def _lookup_ips(
    column: pa.ChunkedArray, index: dict[str, str], used: dict[str, str] | None = None
) -> tuple[pa.ChunkedArray, bool]:
    """Node UUIDs for an address column (null where no node has that address)."""
    uniques = pc.unique(column).to_pylist()
    keys, values = [], []
    every = True
    for ip in uniques:
        if ip is None:
            continue
        canonical = _canonical_ip(ip)
        node = index.get("ip:" + canonical) if canonical else None
        if node is not None:
            keys.append(ip)
            values.append(node)
            if used is not None:
                used["ip:" + str(canonical)] = node
        else:
            every = False
    if not keys:
        return pa.chunked_array([pa.nulls(len(column), pa.string())]), every
    positions = pc.index_in(column, value_set=pa.array(keys, pa.string()))
    return pc.take(pa.array(values, pa.string()), positions), every


def _lookup_uuids(
    column: pa.ChunkedArray, index: dict[str, str], used: dict[str, str] | None = None
) -> tuple[pa.ChunkedArray, bool]:
    uniques = [u for u in pc.unique(column).to_pylist() if u is not None]
    known = [u for u in uniques if u in index]
    if used is not None:
        used.update((u, index[u]) for u in known)
    if len(known) == len(uniques):  # every row names a node (or none): the column as it is
        return column, True
    if not known:
        return pa.chunked_array([pa.nulls(len(column), pa.string())]), False
    ok = pc.is_in(column, value_set=pa.array(known, pa.string()))
    return pc.if_else(ok, column, pa.scalar(None, pa.string())), False


def to_lake_table(
    kind: RecordKind,
    table: pa.Table,
    *,
    source: str,
    node: str | None = None,
    index: dict[str, str] | None = None,
    drop_unrouted: bool = False,
    routes: dict[str, str] | None = None,
) -> pa.Table:
    """Lake form of a checked wire table.

    With ``node`` (a node key), every row is that node's and a ``node`` column must agree. With
    ``index`` (a collector key: ``workspace_node_index``), rows are routed by ``node``, then
    ``node_ip``, then (flows) ``dst_ip``; an unroutable row fails the batch.

    ``routes``, if given, receives every entry of ``index`` the routing used (a few per node of
    the batch): routing the same table again with ``index=routes`` gives the same rows, which is
    how WAL replay routes a collector's batch without the node index of its arrival."""
    n = table.num_rows
    names = table.column_names
    if node is not None:
        if "node" in names:
            col = table.column("node")
            own = pa.scalar(node, pa.string())
            if pc.any(pc.not_equal(pc.fill_null(col, own), own)).as_py():
                raise DecodeError(
                    "column node names another node than the key's own", column="node", status=403
                )
        node_col = pa.chunked_array([pa.repeat(pa.scalar(node, pa.string()), n)])
    else:
        assert index is not None
        routed: pa.ChunkedArray | None = None
        tried: list[str] = []
        for name, lookup in (("node", _lookup_uuids), ("node_ip", _lookup_ips)):
            if name in names:
                tried.append(name)
                found, every = lookup(table.column(name), index, routes)
                routed = found if routed is None else pc.coalesce(routed, found)
                # a node or node_ip value that names no node of this workspace is an error
                if not every:
                    raise DecodeError(
                        f"column {name} holds a value that names no node of this workspace",
                        column=name,
                    )
        if kind.name == "flows" and "dst_ip" in names:
            tried.append("dst_ip")
            found, _ = _lookup_ips(table.column("dst_ip"), index, routes)
            routed = found if routed is None else pc.coalesce(routed, found)
        if not tried:
            raise DecodeError(
                "a collector key must say each row's node (column node or node_ip)", column="node"
            )
        if n and drop_unrouted and kind.name == "flows" and tried[-1] == "dst_ip":
            # the sender asked: flow rows to addresses of no node (a router's transit
            # traffic) are dropped, not the batch; the caller counts them
            keep = pc.is_valid(routed) if routed is not None else pa.repeat(False, n)
            table = table.filter(keep)
            routed = routed.filter(keep) if routed is not None else None
            n = table.num_rows
        if n and (routed is None or routed.null_count):
            raise DecodeError(
                f"some rows match no node of this workspace (looked at {', '.join(tried)})",
                column=tried[-1],
            )
        node_col = routed
    schema = kind.lake_schema
    arrays: list[pa.ChunkedArray | pa.Array] = []
    for field in schema:
        if field.name == "node_uuid":
            arrays.append(node_col if node_col is not None else pa.array([], pa.string()))
        elif field.name == "source":
            arrays.append(pa.repeat(pa.scalar(source, pa.string()), n))
        elif field.name in names and field.name not in ROUTING_COLUMNS:
            arrays.append(table.column(field.name))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
