"""The buffer: durable rows wait here, grouped by lake partition, until a flush writes them.

A group is flushed when it holds ``flush_rows`` rows or its oldest row has waited
``flush_age_secs``, whichever comes first. Two more rules keep a sender of history in time
order (a collector catching up, a replay) from filling the buffer with groups that are never
full (an hour of 60 nodes' seconds is 216,000 rows, less than ``flush_rows``) and wait out their
age while senders get 503:

- **left behind**: a group is due once later hours of its kind and workspace have received
  ``flush_rows // 4`` rows since it last received any: the sender has moved on. A group that
  keeps receiving rows (live traffic next to a backfill of older hours) is not left behind.
- **pressure**: past half of ``max_bytes`` the groups that have waited longest are due until
  what stays buffered is under a quarter of it.

The buffer never grows past ``max_bytes``: callers ask ``has_room()`` before accepting a batch
and shed load with 503 when it says no.
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
    # rows that later hours of the same kind and workspace received since this group's last
    # batch (see "left behind")
    passed: int = 0


class Buffer:
    def __init__(self, flush_rows: int, flush_age_secs: float, max_bytes: int) -> None:
        self.flush_rows = flush_rows
        self.flush_age_secs = flush_age_secs
        self.max_bytes = max_bytes
        self._groups: dict[PartitionKey, Group] = {}
        self._inflight: dict[int, Group] = {}
        # the keys of the buffered groups of each (kind, workspace)
        self._streams: dict[tuple[str, str], set[PartitionKey]] = {}
        self.rows = 0
        self.nbytes = 0

    def has_room(self, incoming_bytes: int) -> bool:
        return self.nbytes + incoming_bytes <= self.max_bytes

    def add(self, key: PartitionKey, table: pa.Table, seq: int, now: float) -> None:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, first_at=now)
            self._streams.setdefault((key.kind, key.workspace), set()).add(key)
        group.passed = 0
        for other in self._streams[(key.kind, key.workspace)]:
            if other < key:
                self._groups[other].passed += table.num_rows
        group.tables.append(table)
        group.seqs.append(seq)
        group.rows += table.num_rows
        size = table.nbytes
        group.nbytes += size
        self.rows += table.num_rows
        self.nbytes += size

    def _left_behind(self, group: Group) -> bool:
        return group.passed >= max(1, self.flush_rows // 4)

    def _forget(self, key: PartitionKey) -> None:
        del self._groups[key]
        stream = (key.kind, key.workspace)
        keys = self._streams[stream]
        keys.discard(key)
        if not keys:
            del self._streams[stream]

    def _pressed(self) -> set[PartitionKey]:
        """Keys of the groups to flush because the buffer is past half of ``max_bytes``: the
        longest waiting first, until a quarter of it stays."""
        if self.nbytes <= self.max_bytes // 2:
            return set()
        keep = sum(g.nbytes for g in self._groups.values())
        out: set[PartitionKey] = set()
        for g in sorted(self._groups.values(), key=lambda g: g.first_at):
            if keep <= self.max_bytes // 4:
                break
            out.add(g.key)
            keep -= g.nbytes
        return out

    def take_due(self, now: float, force: bool = False) -> list[Group]:
        """Remove and return the groups that should be flushed; they stay counted (in flight)
        until ``done()``. A group that grew past ``flush_rows`` (the writer was busy) is handed
        out in pieces of about ``flush_rows`` rows, cut between batches, so that the writer's
        working memory stays bounded by ``flush_rows`` whatever the backlog."""
        pressed = self._pressed()
        due = [
            g
            for g in self._groups.values()
            if force
            or g.rows >= self.flush_rows
            or now - g.first_at >= self.flush_age_secs
            or g.key in pressed
            or self._left_behind(g)
        ]
        out: list[Group] = []
        for g in due:
            self._forget(g.key)
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
            self._streams.setdefault((group.key.kind, group.key.workspace), set()).add(group.key)
        else:
            existing.tables.extend(group.tables)
            existing.seqs.extend(group.seqs)
            existing.rows += group.rows
            existing.nbytes += group.nbytes
            existing.first_at = min(existing.first_at, group.first_at)
            existing.passed = min(existing.passed, group.passed)

    def lowest_seq(self) -> int | None:
        """The smallest WAL sequence number not yet in the lake, if any."""
        seqs = [min(g.seqs) for g in self._groups.values() if g.seqs]
        seqs += [min(g.seqs) for g in self._inflight.values() if g.seqs]
        return min(seqs) if seqs else None

    def __len__(self) -> int:
        return len(self._groups) + len(self._inflight)
