"""agent.spool: durable, bounded, ordered, and blind to half-written files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import SpoolError
from agent.spool import Spool


def body(n: int, size: int = 100) -> bytes:
    return bytes([n % 256]) * size


def test_batches_come_back_in_order_with_their_ids(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    for i in range(5):
        spool.put("metrics" if i % 2 else "flows", f"sender-{i}", i + 1, body(i))
    assert [e.batch_id for e in spool.entries()] == [f"sender-{i}" for i in range(5)]
    assert [e.batch_id for e in spool.entries("metrics")] == ["sender-1", "sender-3"]
    oldest = spool.oldest("metrics")
    assert oldest is not None and (oldest.kind, oldest.rows) == ("metrics", 2)
    assert spool.read(oldest) == body(1)
    spool.remove(oldest)
    assert [e.batch_id for e in spool.entries("metrics")] == ["sender-3"]
    assert spool.written_batches == 5 and spool.written_rows == 15


def test_reopening_keeps_order_and_continues_the_sequence(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    first.put("metrics", "a-1", 1, body(1))
    first.put("metrics", "a-2", 1, body(2))
    second = Spool(tmp_path, max_bytes=1 << 20)
    second.put("metrics", "b-1", 1, body(3))
    assert [e.batch_id for e in second.entries()] == ["a-1", "a-2", "b-1"]
    assert [second.read(e) for e in second.entries()] == [body(1), body(2), body(3)]
    assert len(second) == 3 and second.bytes_used == sum(e.size for e in second.entries())


def test_size_is_bounded_and_the_oldest_go_first(tmp_path: Path) -> None:
    probe = Spool(tmp_path / "probe", max_bytes=1 << 20)
    entry = probe.put("flows", "x-00", 7, body(0, 1000))
    assert entry is not None
    one = entry.size
    spool = Spool(tmp_path / "spool", max_bytes=3 * one)
    for i in range(10):
        spool.put("flows", f"x-{i:02d}", 7, body(i, 1000))
        assert spool.bytes_used <= 3 * one
    assert [e.batch_id for e in spool.entries()] == ["x-07", "x-08", "x-09"]
    assert (spool.dropped_batches, spool.dropped_rows) == (7, 49)
    assert len(os.listdir(tmp_path / "spool")) == 3  # dropped means deleted from disk


def test_a_batch_larger_than_the_spool_is_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=500)
    assert spool.put("metrics", "small", 1, body(1, 100)) is not None
    assert spool.put("metrics", "huge", 9, body(2, 600)) is None
    assert [e.batch_id for e in spool.entries()] == ["small"]
    assert (spool.dropped_batches, spool.dropped_rows) == (1, 9)


def test_a_leftover_tmp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.put("metrics", "kept", 1, body(1))
    # what a crash between write and rename leaves behind, with a valid-looking content
    tmp = tmp_path / ".00000000000000000002.batch.tmp"
    tmp.write_bytes(b"FWSPOOL1 metrics halfway 1 100\n" + body(2))
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert [e.batch_id for e in reopened.entries()] == ["kept"]
    assert not tmp.exists()
    assert reopened.bytes_used == spool.bytes_used


def test_a_damaged_file_is_set_aside_not_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.put("metrics", "good", 1, body(1))
    bad = spool.put("metrics", "cut", 1, body(2))
    assert bad is not None
    bad.path.write_bytes(bad.path.read_bytes()[:-10])  # a body shorter than its header says
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert [e.batch_id for e in reopened.entries()] == ["good"]
    assert (tmp_path / (bad.path.name + ".bad")).exists()


def test_reading_a_file_damaged_after_indexing_raises(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    entry = spool.put("metrics", "soon-bad", 1, body(1))
    assert entry is not None
    entry.path.write_bytes(b"garbage")
    with pytest.raises(SpoolError, match="damaged"):
        spool.read(entry)
    entry.path.unlink()
    with pytest.raises(SpoolError, match="cannot read"):
        spool.read(entry)


def test_files_are_complete_on_disk_after_put(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    entry = spool.put("flows", "id.0:1-2_3", 3, b"\x00\xff" * 50)
    assert entry is not None
    data = entry.path.read_bytes()
    assert data == b"FWSPOOL1 flows id.0:1-2_3 3 100\n" + b"\x00\xff" * 50
    assert entry.size == len(data)
    assert [p.name for p in tmp_path.iterdir()] == [entry.path.name]  # no tmp left behind


def test_bad_ids_are_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(ValueError, match="bad kind"):
        spool.put("metrics", "has space", 1, b"")
    with pytest.raises(ValueError, match="bad kind"):
        spool.put("metrics", "x" * 129, 1, b"")


def test_an_unusable_directory_is_a_spool_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="cannot use spool"):
        Spool(blocker / "spool", max_bytes=1000).open()
