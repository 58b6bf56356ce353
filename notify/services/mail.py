"""E-mail over SMTP (aiosmtplib): implicit TLS, STARTTLS or plain, with optional AUTH.

One message per event, with a plain-text and an HTML part. Its Message-ID is derived from the
delivery id, so a retried delivery that did reach the server carries the same id and mail
systems that de-duplicate on it show it once; every message of one incident references the
same thread id so mail clients group them.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiohttp
import aiosmtplib

from ..events import AlertEvent, Attempt, ChannelTarget
from ..http import redact, secret_values
from ..message import headline, html_text, plain_text, truncate

__all__ = ["build_message", "recipients", "send_email"]

_DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}
_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def recipients(config: Mapping[str, Any]) -> list[str]:
    return [a.strip() for a in str(config.get("email") or "").split(",") if a.strip()]


def _sender(config: Mapping[str, Any]) -> str:
    if config.get("from"):
        return str(config["from"])
    username = str(config.get("username") or "")
    if "@" in username:
        return username
    return f"floodwatch@{config.get('smtp_host') or 'localhost'}"


def build_message(event: AlertEvent, config: Mapping[str, Any], delivery_id: str) -> EmailMessage:
    """The e-mail for ``event``: headers, a text/plain part and a text/html alternative."""
    sender = _sender(config)
    domain = sender.rsplit("@", 1)[-1] or "floodwatch.invalid"
    msg = EmailMessage()
    msg["Subject"] = truncate(headline(event), 200)
    msg["From"] = formataddr((str(config.get("from_name") or "Floodwatch"), sender))
    msg["To"] = ", ".join(recipients(config))
    msg["Date"] = format_datetime(event.occurred_at)
    msg["Message-ID"] = f"<{_ID_SAFE.sub('', delivery_id)[:100] or 'alert'}@{domain}>"
    uuid = (event.incident or {}).get("uuid")
    if isinstance(uuid, str) and uuid:
        thread = f"<incident-{_ID_SAFE.sub('', uuid)[:64]}@{domain}>"
        msg["References"] = thread
        if event.kind != "attack_start":
            msg["In-Reply-To"] = thread
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Floodwatch-Event"] = event.kind
    msg["X-Floodwatch-Delivery"] = _ID_SAFE.sub("", delivery_id)[:100]
    msg.set_content(plain_text(event))
    msg.add_alternative(html_text(event), subtype="html")
    return msg


def _tls_context(config: Mapping[str, Any]) -> ssl.SSLContext:
    ca = config.get("ca_cert")
    context = ssl.create_default_context(cadata=ca if isinstance(ca, str) else None)
    if config.get("verify_tls") is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply(code: int, message: str) -> str:
    return truncate(f"{code} {' '.join(message.split())}", 300)


async def send_email(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    secrets = secret_values(channel.type, config)
    host = config.get("smtp_host")
    if not host:
        return Attempt(
            ok=False,
            latency_ms=0.0,
            retryable=False,
            error="the email channel has no smtp_host",
        )
    security = str(config.get("security") or "starttls")
    port = int(config.get("smtp_port") or _DEFAULT_PORTS[security])
    # the standard library's header handling takes milliseconds: off the event loop
    message = await asyncio.to_thread(build_message, event, config, delivery_id)
    client = aiosmtplib.SMTP(
        hostname=str(host),
        port=port,
        use_tls=security == "tls",
        start_tls=security == "starttls",
        tls_context=_tls_context(config) if security != "none" else None,
        timeout=None,  # the whole attempt's deadline is deliver()'s
    )

    def failed(error: str, *, retryable: bool, reply: str | None = None) -> Attempt:
        return Attempt(
            ok=False,
            latency_ms=0.0,
            smtp_reply=redact(reply, secrets) if reply else None,
            error=redact(error, secrets),
            retryable=retryable,
        )

    try:
        async with client:
            if config.get("username"):
                await client.login(str(config["username"]), str(config.get("password") or ""))
            _, answer = await client.send_message(message, recipients=recipients(config))
    except aiosmtplib.SMTPAuthenticationError as exc:
        return failed(
            "SMTP authentication failed", retryable=False, reply=_reply(exc.code, exc.message)
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        first = exc.recipients[0] if exc.recipients else None
        return failed(
            f"the server refused {len(codes)} recipient(s)",
            retryable=any(400 <= c < 500 for c in codes),
            reply=_reply(first.code, first.message) if first else None,
        )
    except aiosmtplib.SMTPNotSupported as exc:
        return failed(f"the SMTP server does not support it: {exc}", retryable=False)
    except (
        aiosmtplib.SMTPConnectError,
        aiosmtplib.SMTPServerDisconnected,
        aiosmtplib.SMTPTimeoutError,
    ) as exc:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            return failed("the SMTP server's TLS certificate is not trusted", retryable=False)
        if isinstance(cause, ssl.SSLError):
            return failed(f"TLS failed ({cause.reason or 'handshake'})", retryable=False)
        return failed(
            f"cannot talk to the SMTP server {host}:{port} ({type(exc).__name__})", retryable=True
        )
    except aiosmtplib.SMTPResponseException as exc:
        return failed(
            f"the SMTP server refused the message ({exc.code})",
            retryable=400 <= exc.code < 500,
            reply=_reply(exc.code, exc.message),
        )
    except ssl.SSLCertVerificationError:
        return failed("the SMTP server's TLS certificate is not trusted", retryable=False)
    except ssl.SSLError as exc:
        return failed(f"TLS failed ({exc.reason or 'handshake'})", retryable=False)
    except aiosmtplib.SMTPException as exc:
        # what is left are protocol mismatches (no AUTH offered, no STARTTLS...): settings
        return failed(f"SMTP failed: {exc}", retryable=False)
    except OSError as exc:
        return failed(
            f"cannot connect to {host}:{port} ({exc.strerror or type(exc).__name__})",
            retryable=True,
        )
    return Attempt(ok=True, latency_ms=0.0, smtp_reply=_reply(250, answer))
