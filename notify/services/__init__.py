"""One sender per channel type: each builds its service's documented request and makes it.

A sender makes exactly one attempt; :func:`notify.events.deliver` wraps it with the overall
timeout, the latency measurement and the turning of network errors into a failed attempt.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp

from ..events import AlertEvent, Attempt, ChannelTarget

__all__ = ["Sender", "sender_for"]


class Sender(Protocol):
    async def __call__(
        self,
        session: aiohttp.ClientSession,
        channel: ChannelTarget,
        event: AlertEvent,
        *,
        delivery_id: str,
        remote_ref: str | None,
    ) -> Attempt: ...


def sender_for(channel_type: str) -> Sender:
    """The sender of ``channel_type``; ValueError for a type that has none."""
    from . import webhook

    senders: dict[str, Sender] = {
        "webhook": webhook.send,
    }
    try:
        return senders[channel_type]
    except KeyError:
        raise ValueError(f"no sender for channel type {channel_type!r}") from None
