"""Workspaces (``/api/v1/workspace``, ``/api/v1/workspaces``): the body that creates a
sub-workspace and the answers, declared once; ``api/routes/workspaces.py`` validates with them
and declares its operations with them.

``WorkspaceCreate`` is a ``TypedDict`` rather than a :class:`RequestModel`: a ``node_limit`` left
out means the plan's limit, while ``null`` means unlimited, and a ``plan`` left out means the
server's ``api.default_plan``; neither default is a constant a model field could hold.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Required

from pydantic import BeforeValidator, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python 3.11

from store.errors import InvalidValue
from store.plans import PLANS, SUBSCRIPTION_STATUSES
from store.validate import check_bool, check_choice, check_optional_text
from store.workspaces import MAX_NODE_LIMIT

from . import REQUEST_CONFIG, ResponseModel, component, reuse_check
from .envelopes import envelope, page
from .types import Name, Timestamp, Uuid, one_of

__all__ = [
    "Workspace",
    "WorkspaceAnswer",
    "WorkspaceCreate",
    "WorkspaceCreated",
    "WorkspaceCreatedAnswer",
    "WorkspaceDetail",
    "WorkspaceDetailAnswer",
    "WorkspacePage",
    "WorkspaceUser",
]


_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


# --------------------------------------------------------------------------- answers


class Workspace(ResponseModel):
    """A workspace (tenant)."""

    uuid: Uuid
    name: Annotated[str, Field(max_length=100)]
    plan: Annotated[str, one_of(*PLANS)]
    node_count: Annotated[int, Field(ge=0)]
    node_limit: Annotated[
        Annotated[int, Field(ge=0)] | None,
        Field(description="Largest number of nodes; null is unlimited."),
    ]
    subscription_status: Annotated[
        str, one_of(*SUBSCRIPTION_STATUSES, description="Writes need `active` or `trialing`.")
    ]
    parent_uuid: Uuid | None
    white_label: Annotated[
        bool,
        Field(description="True for a top-level workspace, which may have sub-workspaces."),
    ]
    sub_workspace_count: Annotated[int, Field(ge=0)]
    email: str | None
    created_at: Timestamp
    updated_at: Timestamp


class WorkspaceCreated(Workspace):
    """The new sub-workspace, with its first deploy token."""

    deploy_token: Annotated[
        str,
        Field(
            pattern="^[0-9a-f]{64}$",
            description="The new workspace's first deploy token; shown only here.",
        ),
    ]


class WorkspaceDetail(Workspace):
    """A sub-workspace with its first nodes."""

    nodes: Annotated[
        list[Annotated[dict[str, Any], WithJsonSchema(component("Node"))]],
        Field(max_length=100, description="The first 100 nodes."),
    ]
    nodes_total: Annotated[int, Field(ge=0)]


class WorkspaceUser(ResponseModel):
    """The dashboard user of a new sub-workspace; present when `email` was given."""

    email: str
    welcome_email_sent: Annotated[
        Literal[False], Field(description="No welcome e-mail is sent yet.")
    ]


# --------------------------------------------------------------------------- requests


def _email(value: Any) -> str | None:
    email = check_optional_text(value, "email", 254)
    if email is not None and not _EMAIL.match(email):
        raise InvalidValue("email is not an e-mail address", "email")
    return email


def _node_limit(value: Any) -> int | None:
    """The type only; the range (and the parent's cap) is the store's check."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidValue("node_limit must be an integer or null", "node_limit")
    return value


@with_config(REQUEST_CONFIG)
class WorkspaceCreate(TypedDict, total=False):
    """E-mail addresses are unique among a workspace's sub-workspaces."""

    name: Required[Name]
    email: Annotated[
        str | None,
        BeforeValidator(reuse_check(_email)),
        WithJsonSchema(
            {
                "anyOf": [
                    component("Email"),
                    {"type": "string", "pattern": r"^\s*$"},
                    {"type": "null"},
                ],
                "description": "Trimmed; empty or null means none.",
            }
        ),
    ]
    send_welcome_email: Annotated[
        bool,
        BeforeValidator(reuse_check(lambda v: check_bool(v, "send_welcome_email"))),
        Field(description="Checked, but no e-mail is sent yet."),
    ]
    password: Annotated[Any, Field(description="Accepted for compatibility and ignored.")]
    plan: Annotated[
        str,
        BeforeValidator(reuse_check(lambda v: check_choice(v, "plan", tuple(PLANS)))),
        one_of(*PLANS, description="Defaults to the server's `api.default_plan`."),
    ]
    node_limit: Annotated[
        int | None,
        BeforeValidator(reuse_check(_node_limit)),
        WithJsonSchema(
            {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_NODE_LIMIT,
                "description": "Overrides the plan's limit; null is unlimited. May not exceed "
                "the parent's own limit.",
            }
        ),
    ]


# --------------------------------------------------------------------------- envelopes

WorkspaceAnswer = envelope("WorkspaceAnswer", workspace=Workspace)
WorkspacePage = page("WorkspacePage", "workspaces", Workspace, "Sub-workspaces, oldest first.")
WorkspaceDetailAnswer = envelope("WorkspaceDetailAnswer", workspace=WorkspaceDetail)


def _absent_not_null(schema: dict[str, Any]) -> None:
    schema.pop("default")  # the key is left out, never sent as null


WorkspaceCreatedAnswer = envelope(
    "WorkspaceCreatedAnswer",
    workspace=WorkspaceCreated,
    user=(WorkspaceUser, Field(None, json_schema_extra=_absent_not_null)),
)
