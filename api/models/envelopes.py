"""The envelopes of success answers, ``{"ok": true, ...}``, made by two functions so that no
resource writes its own: :func:`envelope` (an object or two beside ``ok``) and :func:`page` (a
page of a listing with ``total``, ``limit`` and ``offset``). Each call makes a
:class:`~api.models.ResponseModel` named for the document's ``#/components/schemas``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from . import ResponseModel
from .types import Uuid

__all__ = ["MAX_OFFSET", "Count", "Deleted", "envelope", "page"]

MAX_OFFSET = 1_000_000_000
"""The largest ``offset`` a listing takes."""

Count = Annotated[int, Field(ge=0)]


def envelope(name: str, description: str | None = None, /, **fields: Any) -> type[ResponseModel]:
    """The model ``name`` of the answer ``{"ok": true, **fields}``, with ``description``. A field
    is a type (required) or, as for ``create_model``, a ``(type, default or Field(...))``
    pair."""
    declared: dict[str, Any] = {"ok": (Literal[True], ...)}
    for key, value in fields.items():
        declared[key] = value if isinstance(value, tuple) else (value, ...)
    model: type[ResponseModel] = create_model(
        name, __base__=ResponseModel, __doc__=description, __module__=__name__, **declared
    )
    return model


def page(
    name: str, key: str, item: type[Any], description: str, **before: Any
) -> type[ResponseModel]:
    """A page of a listing: ``before`` (fields of the envelope that come first), the items
    under ``key``, then ``total``, ``limit`` and ``offset``."""
    fields: dict[str, Any] = {
        **before,
        key: Annotated[list[item], Field(description=description)],  # type: ignore[valid-type]
        "total": Annotated[Count, Field(description="Number of matching items across all pages.")],
        "limit": Annotated[int, Field(ge=1, le=100, description="The page size used.")],
        "offset": Annotated[int, Field(ge=0, le=MAX_OFFSET, description="The offset used.")],
    }
    return envelope(name, None, **fields)


Deleted = envelope("Deleted", deleted=Literal[True], uuid=Uuid)
"""The answer to a DELETE of a resource named by its UUID."""
