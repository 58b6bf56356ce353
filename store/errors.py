"""Typed store errors; ``api/errors.py`` maps each to one HTTP status and error code."""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DatabaseLocked",
    "Forbidden",
    "InvalidValue",
    "LimitReached",
    "NotFound",
    "StoreError",
    "SubscriptionInactive",
]


class StoreError(Exception):
    """Base class of every error raised by ``store``."""


class NotFound(StoreError):
    """The entity does not exist in the caller's workspace (or at all)."""


class Conflict(StoreError):
    """A uniqueness rule would be broken; the message says what already exists."""


class InvalidValue(StoreError):
    """A value is not acceptable; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LimitReached(StoreError):
    """The workspace's plan does not allow this (for example its node limit)."""


class SubscriptionInactive(StoreError):
    """The workspace's subscription is not active, so writes are refused."""


class Forbidden(StoreError):
    """The caller is authenticated but may not do this."""


class DatabaseLocked(StoreError):
    """Another process (normally a running server) holds the database file."""
