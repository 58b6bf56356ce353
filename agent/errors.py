"""Typed agent errors. ``agent.main`` turns them into one line on stderr and an exit status.

``ProcfsError`` and ``CaptureError`` mean the machine cannot be read; ``SendError`` subclasses
are the server's permanent answers to one batch (the batch is dropped, never retried);
``ConfigError`` is a bad setting."""

from __future__ import annotations

import settings

__all__ = [
    "AgentError",
    "BadBatch",
    "CaptureError",
    "ConfigError",
    "Forbidden",
    "InterfaceNotFound",
    "ProcfsError",
    "ProcfsFormatError",
    "RejectedBatch",
    "SendError",
    "SpoolError",
    "Unauthorized",
    "UnsupportedMediaType",
]


class AgentError(Exception):
    """Base class of agent errors."""


class ConfigError(AgentError, settings.ConfigError):
    """A configuration file, environment variable or flag is invalid."""


class ProcfsError(AgentError):
    """A file under the proc root is missing or unreadable."""


class ProcfsFormatError(ProcfsError):
    """A file under the proc root does not have the layout the kernel writes."""


class InterfaceNotFound(ProcfsError):
    def __init__(self, interface: str, available: list[str]) -> None:
        names = ", ".join(sorted(available)) or "none"
        super().__init__(f"interface {interface!r} not found in net/dev (available: {names})")
        self.interface = interface
        self.available = available


class CaptureError(AgentError):
    """The packet sampler cannot run (not Linux, not root, no such interface)."""


class SpoolError(AgentError):
    """The spool directory cannot be used."""


class SendError(AgentError):
    """Base class of delivery errors."""


class RejectedBatch(SendError):
    """The server refused a batch for good (4xx other than 413/429); it was dropped."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "",
        field: str | None = None,
        batch_id: str = "",
        rows: int = 0,
    ) -> None:
        detail = f" (column {field})" if field else ""
        super().__init__(f"batch {batch_id} rejected with {status} {code}: {message}{detail}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.batch_id = batch_id
        self.rows = rows


class BadBatch(RejectedBatch):
    """400: the rows or the body are invalid."""


class Unauthorized(RejectedBatch):
    """401: the key is wrong or revoked. The sender stops sending."""


class Forbidden(RejectedBatch):
    """403: rows name a node the key may not write."""


class UnsupportedMediaType(RejectedBatch):
    """415: the server does not take the body's Content-Type."""
