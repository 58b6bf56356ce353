"""The buffer: durable rows wait here, grouped by lake partition, until a flush writes them.

A group is flushed when it holds ``flush_rows`` rows or its oldest row has waited
``flush_age_secs``, whichever comes first. The buffer never grows past ``max_bytes``: callers ask
``has_room()`` before accepting a batch and shed load with 503 when it says no.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from store.lake import PartitionKey

__all__ = ["Buffer", "Group", "split_by_hour"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR_US = 3_600_000_000


def split_by_hour(
    kind: str, workspace: str, table: pa.Table, span: tuple[int, int] | None = None
) -> list[tuple[PartitionKey, pa.Table]]:
    """The table's rows grouped by the hour partition their ``time`` falls in. ``span``: the
    earliest and latest time in microseconds, when the caller knows them (the decoder does).

    Batches nearly always fall in one hour: that case costs one ``min_max`` (none with
    ``span``) and no copy."""
    if table.num_rows == 0:
        return []
    micros = None
    if span is None:
        micros = table.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        lo, hi = (v.as_py() for v in pc.min_max(micros).values())
    else:
        lo, hi = span
    if lo // _HOUR_US == hi // _HOUR_US:
        return [(_key(kind, workspace, lo // _HOUR_US), table)]
    if micros is None:
        micros = table.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    if lo < 0:  # before 1970 integer division would round towards zero, not down
        micros = pc.floor_temporal(table.column("time"), unit="hour").cast(pa.int64())
    hours = pc.divide(micros, pa.scalar(_HOUR_US, pa.int64()))
    out = []
    for value in pc.unique(hours).to_pylist():
        part = table.filter(pc.equal(hours, pa.scalar(value, pa.int64())))
        out.append((_key(kind, workspace, value), part))
    return sorted(out, key=lambda kv: kv[0])


def _key(kind: str, workspace: str, hour_index: int) -> PartitionKey:
    hour_start = _EPOCH + timedelta(hours=hour_index)
    return PartitionKey(kind, workspace, hour_start.date(), hour_start.hour)


@dataclass
class Group:
    key: PartitionKey
    tables: list[pa.Table] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    first_at: float = 0.0


class Buffer:
    def __init__(self, flush_rows: int, flush_age_secs: float, max_bytes: int) -> None:
        self.flush_rows = flush_rows
        self.flush_age_secs = flush_age_secs
        self.max_bytes = max_bytes
        self._groups: dict[PartitionKey, Group] = {}
        self._inflight: dict[int, Group] = {}
        self.rows = 0
        self.nbytes = 0

    def has_room(self, incoming_bytes: int) -> bool:
        return self.nbytes + incoming_bytes <= self.max_bytes

    def add(self, key: PartitionKey, table: pa.Table, seq: int, now: float) -> None:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, first_at=now)
        group.tables.append(table)
        group.seqs.append(seq)
        group.rows += table.num_rows
        size = table.nbytes
        group.nbytes += size
        self.rows += table.num_rows
        self.nbytes += size

    def take_due(self, now: float, force: bool = False) -> list[Group]:
        """Remove and return the groups that should be flushed; they stay counted (in flight)
        until ``done()``. A group that grew past ``flush_rows`` (the writer was busy) is handed
        out in pieces of about ``flush_rows`` rows, cut between batches, so that the writer's
        working memory stays bounded by ``flush_rows`` whatever the backlog."""
        due = [
            g
            for g in self._groups.values()
            if force or g.rows >= self.flush_rows or now - g.first_at >= self.flush_age_secs
        ]
        out: list[Group] = []
        for g in due:
            del self._groups[g.key]
            for piece in self._pieces(g):
                self._inflight[id(piece)] = piece
                out.append(piece)
        return out

    def _pieces(self, group: Group) -> list[Group]:
        pieces = -(-group.rows // self.flush_rows)
        if pieces <= 1 or len(group.tables) <= 1:
            return [group]
        target = -(-group.rows // pieces)
        out: list[Group] = []
        cur = Group(group.key, first_at=group.first_at)
        for table, seq in zip(group.tables, group.seqs, strict=True):
            if cur.rows and cur.rows + table.num_rows > target:
                out.append(cur)
                cur = Group(group.key, first_at=group.first_at)
            cur.tables.append(table)
            cur.seqs.append(seq)
            cur.rows += table.num_rows
            cur.nbytes += table.nbytes
        out.append(cur)
        return out

    def done(self, group: Group) -> None:
        self._inflight.pop(id(group), None)
        self.rows -= group.rows
        self.nbytes -= group.nbytes

    def restore(self, group: Group) -> None:
        """A flush failed: put the group back so that it is tried again."""
        self._inflight.pop(id(group), None)
        existing = self._groups.get(group.key)
        if existing is None:
            self._groups[group.key] = group
        else:
            existing.tables.extend(group.tables)
            existing.seqs.extend(group.seqs)
            existing.rows += group.rows
            existing.nbytes += group.nbytes
            existing.first_at = min(existing.first_at, group.first_at)

    def lowest_seq(self) -> int | None:
        """The smallest WAL sequence number not yet in the lake, if any."""
        seqs = [min(g.seqs) for g in self._groups.values() if g.seqs]
        seqs += [min(g.seqs) for g in self._inflight.values() if g.seqs]
        return min(seqs) if seqs else None

    def __len__(self) -> int:
        return len(self._groups) + len(self._inflight)
