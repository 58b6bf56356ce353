"""The alert dispatcher on the injected clock (``store/clock.py``): when a failed delivery is
tried again, when it is given up, and how a ``Retry-After`` date counts, are decided by the
dispatcher's ``Clock`` (passed on to the sender for the attempt), so these tests move a
``ManualClock`` instead of waiting for backoffs and give-up times to pass.

The clock starts years away from the machine's (2020): a dispatcher or sender still reading the
machine's time would give up at once, or read the date as long past, and fail these tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import aiohttp
from aiohttp import web

from api.config import AlertsConfig
from api.dispatcher import AlertMetrics, Dispatcher
from store import Store, outbox
from store.clock import ManualClock

from .notify_support import Receiver, Seen, answer, event

START = datetime(2020, 5, 1, 12, 0, tzinfo=UTC)
CFG = AlertsConfig(retry_base_secs=10.0, retry_max_secs=60.0, give_up_after_secs=300.0)


class RecordingDispatcher(Dispatcher):
    """A dispatcher whose outcomes are kept here instead of written to a store."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(cast(Store, None), CFG, AlertMetrics(), clock=clock)
        self.recorded: list[outbox.AttemptRecord] = []

    async def _record(self, record: outbox.AttemptRecord) -> None:
        self.recorded.append(record)


def _row(url: str, created_at: datetime, attempts: int) -> dict[str, Any]:
    """A due delivery as ``outbox.due_deliveries`` reads it."""
    return {
        "delivery_id": "dlv-1",
        "seq": 1,
        "channel_id": 1,
        "channel_uuid": "c0ffee00-0000-4000-8000-000000000001",
        "channel_name": "t",
        "channel_type": "webhook",
        "channel_config": {"url": url},
        "channel_exists": True,
        "channel_enabled": True,
        "payload": event().to_json(),
        "remote_ref": None,
        "created_at": created_at,
        "attempts": attempts,
        "kind": "attack_start",
    }


async def _attempts(
    clock: ManualClock, handler: Any, steps: list[tuple[float, int]]
) -> list[tuple[str, datetime, datetime | None, str | None]]:
    """For each (seconds to move the clock first, attempts made before): one attempt of the
    same delivery, queued at the clock's start; (outcome, recorded at, next attempt, error)."""
    dispatcher = RecordingDispatcher(clock)
    created = clock.now()
    async with Receiver(handler) as rx, aiohttp.ClientSession() as session:
        dispatcher.session = session
        for advance, attempts in steps:
            clock.advance(advance)
            await dispatcher._attempt_once(_row(rx.base + "/h", created, attempts), lambda: None)
    return [
        (outcome, at, next_at, fields.get("error"))
        for _, fields, outcome, at, next_at in dispatcher.recorded
    ]


def test_backoff_and_give_up_follow_the_dispatchers_clock() -> None:
    """A failing service: the first retry is due ``retry_base_secs`` (with jitter) after the
    clock's now; a later one is cut at the give-up time, counted from the queueing on the same
    clock; an attempt at that time gives up."""
    clock = ManualClock(START)
    got = asyncio.run(_attempts(clock, answer(500, "down"), [(0, 0), (299, 3), (1, 4)]))
    (first, at1, next1, _), (second, at2, next2, _), (third, at3, next3, error) = got
    assert first == "retry" and at1 == START
    assert next1 is not None and 5 <= (next1 - START).total_seconds() <= 10
    # the backoff (30-60 s) would pass the give-up time: the retry is due exactly then
    assert second == "retry" and at2 == START + timedelta(seconds=299)
    assert next2 == START + timedelta(seconds=300)
    assert third == "failed" and at3 == START + timedelta(seconds=300) and next3 is None
    assert error is not None and error.startswith("gave up after 5 attempts")


def test_a_retry_after_date_sets_the_next_attempt_on_the_clock() -> None:
    """A 429 whose ``Retry-After`` is an HTTP-date two minutes past the clock's now: the next
    attempt is due exactly then (the sender reads the date on the dispatcher's clock)."""
    clock = ManualClock(START)
    wait = format_datetime(START + timedelta(seconds=120), usegmt=True)
    got = asyncio.run(_attempts(clock, answer(429, "slow down", {"Retry-After": wait}), [(0, 0)]))
    assert got == [("retry", START, START + timedelta(seconds=120), "HTTP 429: slow down")]


def test_a_retry_after_date_past_the_give_up_time_gives_up() -> None:
    """Asked to wait beyond the give-up time (counted on the clock), the delivery fails now."""
    clock = ManualClock(START)

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        later = clock.now() + timedelta(seconds=200)
        return web.Response(status=503, headers={"Retry-After": format_datetime(later, True)})

    got = asyncio.run(_attempts(clock, handler, [(0, 0), (150, 1)]))
    assert [(outcome, at, next_at) for outcome, at, next_at, _ in got] == [
        ("retry", START, START + timedelta(seconds=200)),
        ("failed", START + timedelta(seconds=150), None),
    ]
