"""The answer to a binary telemetry batch (``POST /api/v1/telemetry/{kind}``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from . import ResponseModel

__all__ = ["TelemetryAccepted"]


class TelemetryAccepted(ResponseModel):
    """The batch is durable (fsynced)."""

    ok: Literal[True]
    accepted: Annotated[int, Field(ge=0, description="Rows stored; 0 for a duplicate.")]
    batch_id: Annotated[str | None, Field(description="The X-Batch-Id sent.")]
    duplicate: Annotated[
        bool, Field(description="True when a batch with this X-Batch-Id was stored before.")
    ]
    ignored_columns: Annotated[
        list[str], Field(description="Columns this server does not know; they were not stored.")
    ]
