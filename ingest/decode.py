"""Arrow IPC bodies to checked tables. Everything a client can get wrong ends in ``DecodeError``
(one message naming the column, type or value), never in any other exception."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from .errors import DecodeError
from .schema import TIME_TYPE, Column, RecordKind

__all__ = ["Decoded", "decode_body"]

_IPV4 = (
    r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
)
# Shape check only; full IPv6 grammar is left to readers (an address that passes is at worst an
# odd string in a flow row, never a crash or a cross-tenant leak).
_IPV6 = r"^[0-9A-Fa-f:.]{2,45}$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


# Arrow scalars, not Python ones: pyarrow converts Python values on every call, slowly.
_FLOAT64 = pa.float64()
_INT64 = pa.int64()
_ZERO = pa.scalar(0.0, _FLOAT64)
_TRUE = pa.scalar(True)
_READ_OPTIONS = ipc.IpcReadOptions(use_threads=False)
# Text columns that hold few distinct values per batch (a collector's batch names a few dozen
# nodes in 10-50k rows): their values are checked once per distinct value, not once per row.
_FEW_VALUES = frozenset({"node", "node_ip", "dst_ip"})


@dataclass(frozen=True)
class Decoded:
    table: pa.Table  # wire columns present in the batch, cast to their lake types
    ignored_columns: tuple[str, ...]
    # the earliest and the latest time, in microseconds since 1970 (None for no rows): later
    # stages reuse them rather than scan the column again
    time_span: tuple[int, int] | None = None


def _read(body: bytes, max_rows: int) -> pa.Table:
    try:
        # one thread per batch: batches are decoded in parallel already, and Arrow's own pool
        # for buffer decompression only adds hand-offs (8-20% more time here)
        reader = ipc.open_stream(pa.py_buffer(body), options=_READ_OPTIONS)
        batches = []
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if rows > max_rows:
                raise DecodeError(f"batch holds more than {max_rows} rows", status=413)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        table.validate(full=True)
    except DecodeError:
        raise
    except (pa.ArrowException, ValueError, OSError, OverflowError, IndexError) as exc:
        raise DecodeError(f"body is not a valid Arrow IPC stream: {exc}") from None
    return table


def _is_int(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t))


def _check_column(name: str, col: Column, arr: pa.ChunkedArray) -> pa.ChunkedArray:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if col.required and arr.null_count:
        raise DecodeError(f"column {name} must not contain nulls", column=name)
    if col.kind == "time":
        if not pa.types.is_timestamp(t):
            raise DecodeError(f"column {name} must be an Arrow timestamp, not {t}", column=name)
        if t.tz not in (None, "UTC", "utc", "+00:00", "Etc/UTC"):
            raise DecodeError(f"column {name} must be in UTC (timezone {t.tz})", column=name)
        if t.equals(TIME_TYPE):  # as most senders send it: nothing to convert
            return arr
        return arr.cast(pa.timestamp(t.unit, tz="UTC")).cast(TIME_TYPE, safe=False)
    if col.kind == "float":
        # the values are checked by the caller, every float column at once (_check_floats)
        if not (pa.types.is_floating(t) or _is_int(t)):
            raise DecodeError(f"column {name} must be a number, not {t}", column=name)
        return arr if t.equals(_FLOAT64) else arr.cast(_FLOAT64)
    if col.kind == "int":
        if not _is_int(t):
            raise DecodeError(f"column {name} must be an integer, not {t}", column=name)
        mn, mx = pc.min_max(arr).values()
        if (mn.is_valid and col.lo is not None and mn.as_py() < col.lo) or (
            mx.is_valid and col.hi is not None and mx.as_py() > col.hi
        ):
            raise DecodeError(
                f"column {name} holds a value outside {col.lo}..{col.hi}", column=name
            )
        return arr if t.equals(col.arrow) else arr.cast(col.arrow)
    # text-like: ip, uuid
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
        raise DecodeError(f"column {name} must be a UTF-8 string, not {t}", column=name)
    arr = arr.cast(pa.string())
    # the distinct values stand for the rows: the same verdict, one regex per value
    values = pc.unique(arr) if name in _FEW_VALUES else arr
    if not _text_ok(col.kind, values):
        what = "an IPv4 or IPv6 address" if col.kind == "ip" else "a UUID"
        raise DecodeError(f"column {name} holds a value that is not {what}", column=name)
    if col.kind == "uuid" and (values is arr or not _is_lower(values)):
        arr = pc.utf8_lower(arr)
    return arr


def _all(mask: pa.Array | pa.ChunkedArray) -> bool:
    """Every value true, nulls counted as true (and no values at all: true; Arrow's ``all`` of
    an empty array is null)."""
    return pc.all(pc.fill_null(mask, _TRUE)).as_py() is not False


def _text_ok(kind: str, values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every non-null value is an address (``ip``) or a UUID (``uuid``)."""
    if kind == "ip":
        ok = pc.match_substring_regex(values, _IPV4)
        if not _all(ok):  # IPv6 only when IPv4 does not do
            ok = pc.or_(ok, pc.match_substring_regex(values, _IPV6))
    else:
        ok = pc.match_substring_regex(values, _UUID)
    return _all(ok)


def _is_lower(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether lower-casing would leave every value as it is."""
    return _all(pc.equal(pc.utf8_lower(values), values))


def _float_bad(arr: pa.ChunkedArray) -> bool:
    """Whether a float64 column holds a negative, NaN or infinite value (exact, value by
    value)."""
    bad = pc.or_(pc.is_nan(arr), pc.or_(pc.is_inf(arr), pc.less(arr, _ZERO)))
    return bool(pc.any(bad).as_py())


def _check_floats(columns: dict[str, pa.ChunkedArray]) -> None:
    """Every value of the float64 ``columns`` finite and >= 0, else DecodeError naming one.

    Checked for all columns at once in two cheap passes: no value has its sign bit set (the
    smallest of the values' bits read as int64 is >= 0: Arrow's integer min is several times
    faster than its NaN-aware float min), and the sum is finite (NaN and infinities carry into
    it). Only when that fails (a negative value, -0.0, NaN, an infinity, or a sum that
    overflows) is each column checked exactly, to refuse the bad one by name."""
    if not columns:
        return
    chunks = [chunk for arr in columns.values() for chunk in arr.chunks]
    bits = pa.chunked_array([chunk.view(_INT64) for chunk in chunks], type=_INT64)
    lowest = pc.min(bits).as_py()
    total = pc.sum(pa.chunked_array(chunks, type=_FLOAT64)).as_py()
    if (lowest is None or lowest >= 0) and (total is None or math.isfinite(total)):
        return
    for name, arr in columns.items():
        if _float_bad(arr):
            raise DecodeError(f"column {name} holds a negative, NaN or infinite value", column=name)


def decode_body(
    body: bytes,
    kind: RecordKind,
    *,
    max_rows: int,
    now: datetime | None,
    max_age: timedelta,
    max_skew: timedelta,
) -> Decoded:
    """Decode and check one batch of ``kind``; raises DecodeError.

    With ``now`` None the time window (``max_age``, ``max_skew``) is not checked: WAL replay
    decodes bodies that were checked against it when they arrived."""
    table = _read(body, max_rows)
    names = table.column_names
    if len(set(names)) != len(names):
        raise DecodeError("a column name appears twice")
    known = {c.name: c for c in kind.columns}
    for c in kind.columns:
        if c.required and c.name not in names:
            raise DecodeError(f"column {c.name} is required", column=c.name)
    out: dict[str, pa.ChunkedArray] = {}
    floats: dict[str, pa.ChunkedArray] = {}
    for name in names:
        col = known.get(name)
        if col is not None:
            out[name] = _check_column(name, col, table.column(name))
            if col.kind == "float":
                floats[name] = out[name]
    _check_floats(floats)
    checked = pa.table(out) if out else pa.table({})
    span = None
    if checked.num_rows:
        t_min, t_max = pc.min_max(checked.column("time")).values()
        span = (t_min.value, t_max.value)
    if span is not None and now is not None:
        if t_min.as_py() < now - max_age:
            raise DecodeError(
                f"column time holds a value older than {int(max_age.total_seconds())} s",
                column="time",
            )
        if t_max.as_py() > now + max_skew:
            raise DecodeError("column time holds a value in the future", column="time")
    ignored = tuple(n for n in names if n not in known)
    return Decoded(checked, ignored, span)
