"""Collector keys (``/api/v1/collectors``): the body that creates one and the answers, declared
once; ``api/routes/collectors.py`` validates with them and declares its operations with them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from . import RequestModel, ResponseModel
from .envelopes import Count, envelope
from .types import Name, Timestamp, Uuid

__all__ = [
    "Collector",
    "CollectorAnswer",
    "CollectorCreate",
    "CollectorCreated",
    "CollectorCreatedAnswer",
    "CollectorList",
]


class CollectorCreate(RequestModel):
    """Unknown fields are refused."""

    name: Annotated[Name, Field(description="A label for the key.")]


class Collector(ResponseModel):
    """A collector key: sends binary telemetry for any node of its workspace."""

    id: Uuid
    name: Annotated[str, Field(max_length=100)]
    prefix: Annotated[
        str,
        Field(
            pattern="^[0-9a-f]{8}$", description="The key's first characters, to tell keys apart."
        ),
    ]
    created_at: Timestamp
    revoked_at: Annotated[Timestamp | None, Field(description="null while the key is live.")]


class CollectorCreated(Collector):
    """The new collector key, with the key itself."""

    key: Annotated[
        str,
        Field(pattern="^[0-9a-f]{64}$", description="The key itself; shown only in this answer."),
    ]


CollectorList = envelope("CollectorList", collectors=list[Collector], total=Count)
CollectorAnswer = envelope("CollectorAnswer", collector=Collector)
CollectorCreatedAnswer = envelope("CollectorCreatedAnswer", collector=CollectorCreated)
