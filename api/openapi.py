"""The OpenAPI 3.1 document of REST v1, the Deploy API and the health check."""

from __future__ import annotations

from typing import Any

from . import __version__

__all__ = ["openapi_document"]


def openapi_document(public_url: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Floodwatch API", "version": __version__},
        "paths": {},
    }
    if public_url:
        doc["servers"] = [{"url": public_url}]
    return doc
