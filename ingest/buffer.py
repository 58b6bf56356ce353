"""The buffer: durable rows wait here, grouped by lake partition, until a flush writes them.

A group is flushed when it holds ``flush_rows`` rows or its oldest row has waited
``flush_age_secs``, whichever comes first. The buffer never grows past ``max_bytes``: callers ask
``has_room()`` before accepting a batch and shed load with 503 when it says no.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from store.lake import PartitionKey

__all__ = ["Buffer", "Group", "split_by_hour"]


def split_by_hour(
    kind: str, workspace: str, table: pa.Table
) -> list[tuple[PartitionKey, pa.Table]]:
    """The table's rows grouped by the hour partition their ``time`` falls in."""
    if table.num_rows == 0:
        return []
    hours = pc.floor_temporal(table.column("time"), multiple=1, unit="hour")
    lo, hi = pc.min_max(hours).values()
    if lo == hi:
        return [(_key(kind, workspace, lo.as_py()), table)]
    out = []
    for value in pc.unique(hours).to_pylist():
        part = table.filter(pc.equal(hours, pa.scalar(value, hours.type)))
        out.append((_key(kind, workspace, value), part))
    return sorted(out, key=lambda kv: kv[0])


def _key(kind: str, workspace: str, hour_start: datetime) -> PartitionKey:
    hour_start = hour_start.astimezone(UTC)
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
        until ``done()``."""
        due = [
            g
            for g in self._groups.values()
            if force or g.rows >= self.flush_rows or now - g.first_at >= self.flush_age_secs
        ]
        for g in due:
            del self._groups[g.key]
            self._inflight[id(g)] = g
        return due

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
