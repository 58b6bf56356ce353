"""The application's shared state, typed, stored once under ``STATE`` on the aiohttp app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from ingest.pipeline import Pipeline
from ingest.receiver import CachedCredentials, Receiver
from store import Store
from store.clock import SYSTEM_CLOCK, Clock

from .activity import ActivityTracker
from .config import Config
from .detection import DetectionService
from .ratelimit import FixedWindowLimiter

__all__ = ["STATE", "AppState"]


@dataclass
class AppState:
    config: Config
    store: Store
    token_limiter: FixedWindowLimiter
    auth_failure_limiter: FixedWindowLimiter
    pipeline: Pipeline
    receiver: Receiver
    credentials: CachedCredentials
    token_last_touched: dict[str, datetime] = field(default_factory=dict)
    on_control_write: list[Callable[[], None]] = field(default_factory=list)
    activity: ActivityTracker | None = None
    detection: DetectionService | None = None
    clock: Clock = SYSTEM_CLOCK
    """Where request handling reads the time (rate-limit windows, token touches)."""

    def control_changed(self) -> None:
        """A write that may change keys, nodes, overrides or commands went through: forget the
        hot path's cached answers (credentials, agent configs)."""
        self.credentials.clear()
        for callback in self.on_control_write:
            callback()


STATE = web.AppKey("floodwatch_state", AppState)
