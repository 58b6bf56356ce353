"""Fixed-window request counters: per deploy token, and per client address for failed logins.

Windows are aligned to the wall-clock minute so that ``X-RateLimit-Reset`` (a Unix timestamp) is
the same for every request of a window. Memory is bounded: stale windows are dropped when a new
window starts, and the number of tracked keys is capped (past the cap, new keys are refused
rather than letting an attacker grow the table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FixedWindowLimiter", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix time at which the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset - now))


class FixedWindowLimiter:
    def __init__(self, limit: int, window_secs: int = 60, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_secs = window_secs
        self.max_keys = max_keys
        self._window = -1
        self._counts: dict[str, int] = {}

    def _roll(self, now: float) -> int:
        window = int(now // self.window_secs)
        if window != self._window:
            self._window = window
            self._counts.clear()
        return (window + 1) * self.window_secs

    def hit(self, key: str, now: float) -> Verdict:
        """Count one request for ``key``; the verdict says whether it may proceed."""
        reset = self._roll(now)
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= self.max_keys:
                return Verdict(False, self.limit, 0, reset)
            count = 0
        count += 1
        self._counts[key] = count
        return Verdict(count <= self.limit, self.limit, max(0, self.limit - count), reset)

    def peek(self, key: str, now: float) -> Verdict:
        """The state of ``key`` without counting a request."""
        reset = self._roll(now)
        count = self._counts.get(key, 0)
        return Verdict(count < self.limit, self.limit, max(0, self.limit - count), reset)
