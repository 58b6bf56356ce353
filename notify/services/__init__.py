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
    from . import chat, mail, observability, oncall, sms, webhook

    senders: dict[str, Sender] = {
        "webhook": webhook.send,
        "slack": chat.send_slack,
        "discord": chat.send_discord,
        "teams": chat.send_teams,
        "telegram": chat.send_telegram,
        "pagerduty": oncall.send_pagerduty,
        "opsgenie": oncall.send_opsgenie,
        "grafana": observability.send_grafana,
        "datadog": observability.send_datadog,
        "prometheus": observability.send_prometheus,
        "sms": sms.send_sms,
        "email": mail.send_email,
    }
    try:
        return senders[channel_type]
    except KeyError:
        raise ValueError(f"no sender for channel type {channel_type!r}") from None
