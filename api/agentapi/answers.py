"""The answers of the Agent API and of its REST side, declared once for the OpenAPI document and
the tests (handlers encode plain dicts, as everywhere: see ``api/models``).

ftagent's answers (docs/agent-api.md §4 to §10): :class:`AgentConfig`, the configuration object
(not wrapped in an envelope), and the small envelopes of the posts. The operators' (deploy token):
the stored overrides (:data:`AgentConfigAnswer`, the model itself is in ``overrides.py``), the
remote commands (:class:`Command`), the reports (:class:`AgentReport`) and the packet captures
(:class:`Pcap`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python 3.11

from ..models import ResponseModel
from ..models.envelopes import Count, envelope, page
from ..models.types import Timestamp, Uuid
from .overrides import AgentConfigOverrides, FlowOverrides, L7Overrides
from .report_repo import REPORT_KINDS
from .settings_repo import COMMAND_TYPES

__all__ = [
    "COMMAND_STATUSES",
    "AgentConfig",
    "AgentConfigAnswer",
    "AgentIncidentOpened",
    "AgentIncidentReported",
    "AgentOk",
    "AgentReport",
    "Command",
    "CommandAnswer",
    "CommandList",
    "GreTunnelsAccepted",
    "LatestReports",
    "Pcap",
    "PcapList",
    "PcapUploaded",
    "PendingCommand",
    "ReportPage",
]

# --------------------------------------------------------------------------- ftagent


class PendingCommand(ResponseModel):
    """A remote command waiting for the agent's ack (§5.1)."""

    id: Annotated[int, Field(ge=1)]
    command_type: Literal[COMMAND_TYPES]  # type: ignore[valid-type]
    command_text: str
    title: str


class AgentConfig(ResponseModel):
    """The complete configuration object (§4.1): the built-in defaults overlaid by the
    workspace's overrides and then the node's; more keys than listed here may be present."""

    model_config = ConfigDict(extra="allow")

    flow: FlowOverrides
    l7: L7Overrides
    service_ports: dict[str, Any]
    pending_commands: Annotated[
        list[PendingCommand], Field(description="Commands not acknowledged yet, oldest first.")
    ]


AgentOk = envelope("AgentOk", "Accepted.")
AgentIncidentOpened = envelope(
    "AgentIncidentOpened",
    None,
    uuid=Uuid,
    merged=Annotated[bool, Field(description="A replayed open: the existing incident's uuid.")],
)
AgentIncidentReported = envelope(
    "AgentIncidentReported",
    None,
    uuid=Uuid,
    created=Annotated[bool, Field(description="The uuid was unknown: the incident was created.")],
)
GreTunnelsAccepted = envelope(
    "GreTunnelsAccepted",
    None,
    whitelisted=Annotated[list[str], Field(description="The tunnels' remote endpoints (§10.1).")],
)

# --------------------------------------------------------------------------- commands

COMMAND_STATUSES = ("pending", "applied", "failed", "cancelled")


class Command(ResponseModel):
    """A remote command of a node, with its ack."""

    id: Annotated[int, Field(ge=1)]
    node_uuid: Uuid
    command_type: Literal[COMMAND_TYPES]  # type: ignore[valid-type]
    command_text: str
    title: str
    status: Annotated[
        Literal[COMMAND_STATUSES],  # type: ignore[valid-type]
        Field(
            description="pending until the agent acks (applied or failed); cancelled: a "
            "mitigation withdrawn, unacknowledged, when its incident ended."
        ),
    ]
    incident_uuid: Annotated[Uuid | None, Field(description="The incident this command mitigates.")]
    undo_command_text: Annotated[
        str | None, Field(description="Queued as a command of its own when the incident ends.")
    ]
    undo_command_id: Annotated[
        int | None, Field(description="The id of that undo command once queued.")
    ]
    undo_of: Annotated[
        int | None, Field(description="On an undo command: the mitigation it takes back.")
    ]
    cancelled_at: Timestamp | None
    ack_status: Annotated[str | None, Field(description="What the agent's ack said.")]
    ack_error: str | None
    acked_at: Timestamp | None
    created_at: Timestamp


CommandList = envelope(
    "CommandList",
    None,
    commands=Annotated[list[Command], Field(max_length=100, description="Newest first.")],
    total=Annotated[Count, Field(description="All of the node's commands.")],
)
CommandAnswer = envelope("CommandAnswer", None, command=Command)

# --------------------------------------------------------------------------- reports


class AgentReport(ResponseModel):
    """A report an agent sent, kept as sent."""

    id: Annotated[int, Field(ge=1, description="The report's id, increasing with arrival.")]
    node_uuid: Uuid
    kind: Literal[REPORT_KINDS]  # type: ignore[valid-type]
    received_at: Annotated[Timestamp, Field(description="When the report first arrived.")]
    last_received_at: Annotated[
        Timestamp,
        Field(description="When an identical report last arrived (replays, frozen totals)."),
    ]
    repeats: Annotated[
        int, Field(ge=1, description="How many times this identical report arrived in a row.")
    ]
    incident_ref: Annotated[
        str | None, Field(description="`sp-blocks`: the agent's incident uuid.")
    ]
    item_count: Annotated[
        int | None,
        Field(ge=0, description="Length of the report's main list (tunnels, vms, blocks, ...)."),
    ]
    summary: Annotated[
        dict[str, Any],
        Field(description="The report's typed essentials, by kind (unusable values are null)."),
    ]
    body: Annotated[dict[str, Any], Field(description="The report as the agent sent it.")]


ReportPage = page("ReportPage", "reports", AgentReport, "Reports, newest first.")

_LatestByKind: Any = with_config(ConfigDict(extra="forbid"))(
    TypedDict(  # type: ignore[operator]
        "LatestReportByKind", {kind: AgentReport | None for kind in REPORT_KINDS}
    )
)
_LatestByKind.__doc__ = "The newest report of each kind; null for a kind never sent."
_LatestByKind.__module__ = __name__

LatestReports = envelope("LatestReports", None, node_uuid=Uuid, reports=_LatestByKind)

# --------------------------------------------------------------------------- agent config

AgentConfigAnswer = envelope("AgentConfigAnswer", None, agent_config=AgentConfigOverrides)

# --------------------------------------------------------------------------- packet captures


class Pcap(ResponseModel):
    """A packet capture an agent uploaded."""

    id: Uuid
    name: Annotated[str, Field(description="File name for downloads.")]
    size: Annotated[int, Field(ge=0, description="Bytes.")]
    created_at: Timestamp
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


PcapList = envelope("PcapList", None, pcaps=list[Pcap], total=Count)


@with_config(ConfigDict(extra="forbid"))
class PcapUploaded(TypedDict):
    """A stored file (``pcap``), or a chunk (``chunk_received`` and the rest)."""

    ok: Literal[True]
    uuid: Uuid
    created: Annotated[bool, Field(description="The incident was unknown and created.")]
    pcap: NotRequired[Pcap]
    chunk_received: NotRequired[Annotated[int, Field(ge=0, description="This chunk's index.")]]
    of: NotRequired[Annotated[int, Field(ge=1, description="X-Chunk-Total.")]]
    received: NotRequired[Annotated[int, Field(ge=0, description="Chunks held so far.")]]
    complete: NotRequired[
        Annotated[bool, Field(description="The file was put together and stored.")]
    ]
