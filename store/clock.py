"""The clock: where the server reads the time, so that code reading it can be given another.

Components that decide by the time (the Agent API's replay watch and config cache, the agents'
liveness windows, the REST rate limits, the expiry of silent incidents) take a :class:`Clock`
instead of calling ``datetime.now`` or ``time.monotonic`` themselves. The server runs on
:data:`SYSTEM_CLOCK`; tests and replays pass a :class:`ManualClock` and move it forward, so that
nothing waits for a wall-clock window to pass. Detection never reads a clock at all: it runs on
the rows' event time (docs/detection.md).

The telemetry pipeline (flush ages, checkpoint interval, a batch's arrival time and the batch-id
de-duplication window, the ``now`` of maintenance), the receiver's accepted event-time window,
the alert dispatcher (due deliveries, backoff, give-up, a ``Retry-After`` date) and the
``/metrics`` token-failure limit read the app's clock too. The lake's retire/sweep deadlines and
measured latencies stay on the machine's clocks.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def time(self) -> float:
        """The current time as Unix seconds (what fixed rate-limit windows count in)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back (for intervals)."""


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to: :meth:`advance`. Its three readings move together,
    so an interval measured on :meth:`monotonic` agrees with one between two :meth:`now`."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._elapsed += seconds

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self._elapsed
