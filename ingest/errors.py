"""Typed ingest errors. ``api/errors.py`` maps them to HTTP once.

``DecodeError`` is the client's fault (400, or 413 for too many rows) and is never retried;
``Backpressure`` means "later" (503 with ``Retry-After``)."""

from __future__ import annotations

__all__ = ["Backpressure", "DecodeError", "IngestError"]


class IngestError(Exception):
    """Base class of ingest errors."""


class DecodeError(IngestError):
    def __init__(self, message: str, *, column: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.column = column
        self.status = status


class Backpressure(IngestError):
    def __init__(self, message: str, retry_after_secs: int = 1) -> None:
        super().__init__(message)
        self.retry_after_secs = max(1, int(retry_after_secs))
