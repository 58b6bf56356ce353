"""The health check's answer (``/health``, ``/api/health``, ``/api/v1/health``)."""

from __future__ import annotations

from typing import Literal

from . import ResponseModel
from .types import Timestamp

__all__ = ["Health", "HealthChecks"]


class HealthChecks(ResponseModel):
    database: Literal["ok", "error"]


class Health(ResponseModel):
    """``ok`` is false, and the status 503, when the database does not answer."""

    ok: bool
    status: Literal["ok", "degraded"]
    version: str
    time: Timestamp
    checks: HealthChecks
