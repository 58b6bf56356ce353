"""Binary telemetry: the receiver's route (its handler is ``ingest.receiver``, which knows
nothing of HTTP documentation) added here, with its operation declared beside it."""

from __future__ import annotations

from aiohttp import web

from ingest.receiver import CONTENT_TYPE as ARROW_STREAM
from ingest.receiver import Receiver
from ingest.schema import KINDS, WIRE_VERSION

from ..models.telemetry import TelemetryAccepted
from ..openapi.operations import Route, answer, body, operation

__all__ = ["OPERATIONS", "setup"]

PATH = "/api/v1/telemetry/{kind}"


def setup(app: web.Application, receiver: Receiver) -> None:
    receiver.add_routes(app)


OPERATIONS = [
    Route(
        "POST",
        PATH,
        operation(
            "sendTelemetry",
            tag="Telemetry",
            summary="Send a binary telemetry batch",
            description="One Arrow IPC stream of `kind` rows (see docs/wire-format.md). Answers "
            "202 once the batch is durable. The path, Content-Type and headers are checked "
            "before the key, so 400, 404 and 415 may come first. Keys have no request limit "
            "(under load the answer is 503 with `Retry-After`), but failed keys count towards "
            "the address's failed authentications, as on the REST API.",
            security=[{"ingestKey": []}],
            parameters=[
                {
                    "name": "kind",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(KINDS)},
                    "description": "What one row is: a node's second (`metrics`) or a sampled "
                    "packet (`flows`).",
                },
                {
                    "name": "X-Batch-Id",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                    "description": "Unique per batch of the sender; a batch re-sent with the "
                    "same id by the same key is stored once.",
                },
                {
                    "name": "X-Floodwatch-Wire-Version",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "enum": [str(WIRE_VERSION)]},
                    "description": "Wire format version; others are refused.",
                },
                {
                    "name": "X-Node-UUID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "format": "uuid"},
                    "description": "With a node key: must be that key's node (else 403).",
                },
            ],
            request_body=body(
                "An Arrow IPC stream (schema, record batches, end marker).",
                {"type": "string", "format": "binary"},
                content_type=ARROW_STREAM,
            ),
            answers={202: answer("Stored, or recognised as a re-sent batch.", TelemetryAccepted)},
            errors=(401, 403, 404, 413, 415, 429, 500, 503),
            standard_errors=False,
            error_overrides={400: {"$ref": "#/components/responses/InvalidBatch"}},
        ),
    )
]
