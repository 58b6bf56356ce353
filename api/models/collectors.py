"""Collector keys (``/api/v1/collectors``): the body that creates one and the objects answers
hold, declared once; ``api/routes/collectors.py`` validates with them and
the OpenAPI document (``api/openapi/``)
takes their schemas from :func:`schemas`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from pydantic.json_schema import JsonSchemaMode

from . import RequestModel, ResponseModel, component_schemas
from .types import Name, Timestamp, Uuid

__all__ = ["Collector", "CollectorCreate", "CollectorCreated", "schemas"]


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


_MODELS: dict[str, tuple[type[Any], JsonSchemaMode]] = {
    "Collector": (Collector, "serialization"),
    "CollectorCreated": (CollectorCreated, "serialization"),
    "CollectorCreate": (CollectorCreate, "validation"),
}


def schemas() -> dict[str, dict[str, Any]]:
    """This resource's entries of ``#/components/schemas``."""
    return component_schemas(_MODELS)
