"""The write-ahead log on its own: group commit, replay, torn tails, checkpoints."""

from __future__ import annotations

import asyncio
import os
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.metrics import METRICS
from ingest.wal import Wal, crc32_combine


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _append_many(wal: Wal, n: int, size: int = 100) -> list[int]:
    await wal.start()
    try:
        return list(
            await asyncio.gather(*(wal.append({"i": i}, bytes([i % 256]) * size) for i in range(n)))
        )
    finally:
        await wal.stop()


def test_concurrent_appends_share_fsyncs_and_replay_in_order(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    wal.open()
    groups_before = METRICS.wal_groups.value()
    seqs = _run(_append_many(wal, 200))
    groups = METRICS.wal_groups.value() - groups_before
    assert sorted(seqs) == list(range(1, 201))
    assert 1 <= groups < 200  # concurrent requests were committed together

    again = Wal(tmp_path)
    again.open()
    entries = list(again.replay())
    assert [e.seq for e in entries] == list(range(1, 201))
    assert all(e.payload == bytes([e.header["i"] % 256]) * 100 for e in entries)


def test_torn_tail_is_cut_and_log_continues(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    wal.open()
    _run(_append_many(wal, 10))
    (segment,) = sorted(tmp_path.glob("*.wal"))
    size = segment.stat().st_size
    with open(segment, "r+b") as fh:
        fh.truncate(size - 7)  # a crash in the middle of the last entry
    wal2 = Wal(tmp_path)
    wal2.open()
    assert [e.seq for e in wal2.replay()] == list(range(1, 10))
    assert segment.stat().st_size < size - 7
    seqs = _run(_append_many(wal2, 3))
    assert seqs == [10, 11, 12]
    wal3 = Wal(tmp_path)
    wal3.open()
    assert [e.seq for e in wal3.replay()] == list(range(1, 13))


def test_corrupt_entry_stops_replay_at_last_good_one(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    wal.open()
    _run(_append_many(wal, 5, size=50))
    (segment,) = sorted(tmp_path.glob("*.wal"))
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF  # flip a payload byte of the last entry
    segment.write_bytes(bytes(data))
    wal2 = Wal(tmp_path)
    wal2.open()
    assert [e.seq for e in wal2.replay()] == [1, 2, 3, 4]


def test_checkpoint_hides_old_entries_and_deletes_covered_segments(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_max_bytes=1)  # every group gets a new segment

    def segments() -> int:
        return len(list(tmp_path.glob("*.wal")))

    async def scenario() -> None:
        await wal.start()
        for i in range(6):
            await wal.append({"i": i}, b"x" * 10)
        assert await asyncio.to_thread(segments) == 6
        await wal.checkpoint(4)
        await wal.stop()

    wal.open()
    _run(scenario())
    assert len(list(tmp_path.glob("*.wal"))) == 2
    wal2 = Wal(tmp_path)
    wal2.open()
    assert wal2.checkpoint_seq == 4
    assert [e.seq for e in wal2.replay()] == [5, 6]


def test_failed_write_acknowledges_nothing_and_leaves_no_torn_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.wal as wal_module

    real = wal_module._write_all
    calls = {"n": 0}

    def flaky(fd: int, parts: list[bytes]) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the second group: half of it reaches the file, then the disk fails
            os.write(fd, b"".join(parts)[:20])
            raise OSError(28, "No space left on device")
        return real(fd, parts)

    monkeypatch.setattr(wal_module, "_write_all", flaky)
    wal = Wal(tmp_path)
    wal.open()

    async def scenario() -> None:
        await wal.start()
        try:
            assert await wal.append({"i": 0}, b"a" * 50) == 1
            with pytest.raises(OSError):
                await wal.append({"i": 1}, b"b" * 50)
            assert await wal.append({"i": 2}, b"c" * 50) == 3
        finally:
            await wal.stop()

    _run(scenario())
    again = Wal(tmp_path)
    again.open()
    assert [(e.seq, e.payload[:1]) for e in again.replay()] == [(1, b"a"), (3, b"c")]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=3000))
def test_crc32_combine_is_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_a_payload_crc_computed_by_the_caller_gives_the_same_frames(tmp_path: Path) -> None:
    payloads = [os.urandom(n) for n in (0, 1, 5000, 70_000)]

    async def scenario() -> None:
        wal = Wal(tmp_path)
        wal.open()
        await wal.start()
        try:
            for i, p in enumerate(payloads):  # every other entry with the caller's CRC
                await wal.append({"i": i}, p, None, zlib.crc32(p) if i % 2 else None)
        finally:
            await wal.stop()

    _run(scenario())
    again = Wal(tmp_path)
    again.open()
    entries = list(again.replay())
    assert [e.payload for e in entries] == payloads  # every frame's CRC checks out
