"""The plan catalogue: what a workspace's plan allows.

Floodwatch is self-hosted, so nothing is billed; plans exist so that an operator (a hosting
company reselling monitoring, an MSP handing out sub-workspaces) can cap what each workspace may
register, with the same 402 answers as the hosted service.
"""

from __future__ import annotations

__all__ = ["PLANS", "SUBSCRIPTION_STATUSES", "default_node_limit", "is_active"]

# plan -> default node limit (None: unlimited). ``--node-limit`` overrides it per workspace.
PLANS: dict[str, int | None] = {
    "self-hosted": None,
    "free": 1,
    "starter": 5,
    "pro": 25,
    "business": 100,
    "enterprise": None,
}

# Writes (POST, PATCH, DELETE) are refused with 402 unless the status is active or trialing.
SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "canceled", "suspended")
_ACTIVE = frozenset({"active", "trialing"})


def default_node_limit(plan: str) -> int | None:
    return PLANS[plan]


def is_active(status: str) -> bool:
    return status in _ACTIVE
