"""Value types that several resources' models share, each documented by one component of
``#/components/schemas`` (``api.openapi.build.shared_schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from store.validate import check_text

from . import component, reuse_check

__all__ = ["Name", "Timestamp", "Uuid", "one_of"]

Name = Annotated[
    str,
    BeforeValidator(reuse_check(lambda v: check_text(v, "name"))),
    WithJsonSchema(component("Name")),
]
"""Trimmed, 1-100 characters, no control characters: ``store.validate.check_text``, which runs
first so that its messages (``name is required`` for null too) stay the answer's."""
Uuid = Annotated[str, WithJsonSchema(component("Uuid"))]
Timestamp = Annotated[datetime, WithJsonSchema(component("Timestamp"))]


def one_of(*values: str, description: str | None = None) -> Any:
    """A string field out of ``values`` (taken from the module that enforces them)."""
    return Field(json_schema_extra={"enum": list(values)}, description=description)
