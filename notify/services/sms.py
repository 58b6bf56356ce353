"""Text messages through the Twilio Messages API (form-encoded, HTTP basic auth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from ..events import AlertEvent, Attempt, ChannelTarget
from ..http import request, secret_values
from ..message import short_text

__all__ = ["SMS_MAX", "send_sms", "sms_form"]

SMS_MAX = 160
"""One GSM-7 segment; messages are written to fit it (a non-GSM character, as in a node's
name, makes the carrier split into 70-character segments, which Twilio joins again)."""


def sms_form(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, str]:
    """The form fields of Create a Message."""
    form = {"To": str(config["phone"]), "Body": short_text(event, SMS_MAX)}
    if config.get("messaging_service_sid"):
        form["MessagingServiceSid"] = str(config["messaging_service_sid"])
    else:
        form["From"] = str(config.get("from") or "")
    return form


async def send_sms(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    sid, token = config.get("account_sid"), config.get("auth_token")
    if not sid or not token or not (config.get("from") or config.get("messaging_service_sid")):
        return Attempt(
            ok=False,
            latency_ms=0.0,
            retryable=False,
            error="the sms channel needs account_sid, auth_token, and from or "
            "messaging_service_sid",
        )
    base = str(config.get("api_url") or "https://api.twilio.com").rstrip("/")
    result = await request(
        session,
        "POST",
        f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
        secret_values(channel.type, config),
        body=urlencode(sms_form(event, config)).encode(),
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": aiohttp.encode_basic_auth(str(sid), str(token))},
    )
    return result.attempt
