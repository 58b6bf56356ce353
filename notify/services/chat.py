"""Chat services: Slack incoming webhooks, Discord webhooks, Teams Workflows, Telegram bots.

Each payload keeps within the service's documented limits whatever the incident holds, since
a message over a limit is refused whole (and would be refused again on every retry).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp

from ..events import AlertEvent, Attempt, ChannelTarget, event_timestamp
from ..http import dumps, request, secret_values
from ..message import Facts, facts, headline, truncate

__all__ = [
    "discord_payload",
    "send_discord",
    "send_slack",
    "send_teams",
    "send_telegram",
    "slack_payload",
    "teams_payload",
    "telegram_payload",
]

# Slack: header text 150, section text 3000, a field 2000, at most 10 fields, button text 75,
# button URL 3000, at most 50 blocks; the top-level text is cut by Slack past 40,000.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_TEXT_MAX = 3000
# Discord: content 2000; an embed's title 256, description 4096, 25 fields of name 256 and
# value 1024, footer 2048, and all of an embed's texts together at most 6000.
DISCORD_CONTENT_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELD_NAME_MAX = 256
DISCORD_FIELD_VALUE_MAX = 1024
DISCORD_EMBED_TOTAL_MAX = 6000
DISCORD_USERNAME_MAX = 80
# Telegram: a message's text is at most 4096 characters (after entity parsing; the HTML
# source is kept under the same number, which is stricter).
TELEGRAM_TEXT_MAX = 4096
TEAMS_SUMMARY_MAX = 4000


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _url_ok(url: str | None, limit: int = 2000) -> str | None:
    return url if url and len(url) <= limit else None


# ---------------------------------------------------------------- Slack


def slack_payload(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message: Block Kit blocks plus ``text`` as the notification and
    fallback."""
    f = facts(event)
    title = headline(event, f)
    mention = "<!channel> " if config.get("mention_everyone") else ""
    fields = [
        {
            "type": "mrkdwn",
            "text": truncate(f"*{label}*\n{_slack_escape(value)}", SLACK_FIELD_MAX),
        }
        for label, value in f.rows()[:10]
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(title, SLACK_HEADER_MAX)},
        },
        {"type": "section", "fields": fields},
    ]
    if event.kind == "test":
        blocks.insert(
            1,
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "This is a test message sent on request; no attack is going on.",
                },
            },
        )
    if f.summary:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": truncate(_slack_escape(f.summary), SLACK_SECTION_MAX),
                },
            }
        )
    link = _url_ok(f.link, 3000)
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open incident"},
                        "url": link,
                    }
                ],
            }
        )
    payload: dict[str, Any] = {
        "text": truncate(mention + _slack_escape(title), SLACK_TEXT_MAX),
        "blocks": blocks,
    }
    if config.get("username"):
        payload["username"] = config["username"]
    icon = config.get("icon")
    if isinstance(icon, str) and icon:
        payload["icon_emoji" if icon.startswith(":") else "icon_url"] = icon
    if config.get("channel"):
        payload["channel"] = config["channel"]
    return payload


async def send_slack(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    body = dumps(slack_payload(event, channel.config))
    result = await request(
        session,
        "POST",
        str(channel.config["webhook_url"]),
        secret_values(channel.type, channel.config),
        body=body,
    )
    return result.attempt


# ---------------------------------------------------------------- Discord


def discord_payload(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """An execute-webhook body with one embed, coloured by severity (green when it ended)."""
    f = facts(event)
    budget = DISCORD_EMBED_TOTAL_MAX
    title = truncate(headline(event, f), DISCORD_TITLE_MAX)
    budget -= len(title)
    footer = "Floodwatch" + (f" · {f.workspace_name}" if f.workspace_name else "")
    footer = truncate(footer, 200)
    budget -= len(footer)
    fields = []
    for label, value in f.rows()[:25]:
        name = truncate(label, DISCORD_FIELD_NAME_MAX)
        text = truncate(value, DISCORD_FIELD_VALUE_MAX)
        if len(name) + len(text) > budget - 100:
            break
        budget -= len(name) + len(text)
        fields.append({"name": name, "value": text, "inline": label in ("Severity", "Duration")})
    description_parts = []
    if event.kind == "test":
        description_parts.append("This is a test message sent on request; no attack is going on.")
    if f.summary:
        description_parts.append(f.summary)
    description = truncate("\n\n".join(description_parts), min(DISCORD_DESCRIPTION_MAX, budget))
    embed: dict[str, Any] = {
        "title": title,
        "color": f.colour,
        "fields": fields,
        "timestamp": event_timestamp(event),
        "footer": {"text": footer},
    }
    if description:
        embed["description"] = description
    link = _url_ok(f.link)
    if link:
        embed["url"] = link
    payload: dict[str, Any] = {"embeds": [embed]}
    if config.get("mention_everyone"):
        payload["content"] = "@everyone"
        payload["allowed_mentions"] = {"parse": ["everyone"]}
    else:
        # summaries quote attacker-controlled text; never let it ping anyone
        payload["allowed_mentions"] = {"parse": []}
    if config.get("username"):
        payload["username"] = truncate(str(config["username"]), DISCORD_USERNAME_MAX)
    if config.get("avatar_url"):
        payload["avatar_url"] = config["avatar_url"]
    return payload


async def send_discord(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    body = dumps(discord_payload(event, channel.config))
    result = await request(
        session,
        "POST",
        str(channel.config["webhook_url"]),
        secret_values(channel.type, channel.config),
        body=body,
        # wait=true: Discord answers with the message (or a real error) instead of 204
        params={"wait": "true"},
    )
    attempt = result.attempt
    if attempt.http_status == 429 and attempt.retry_after is None:
        # Discord also tells the wait in the JSON body, in seconds (may be fractional)
        wait = result.data.get("retry_after") if isinstance(result.data, dict) else None
        if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait >= 0:
            attempt = replace(attempt, retry_after=float(wait))
    return attempt


# ---------------------------------------------------------------- Microsoft Teams


def teams_payload(event: AlertEvent) -> dict[str, Any]:
    """An Adaptive Card in the message envelope that Teams Workflows webhooks take."""
    f = facts(event)
    colour = {
        "critical": "Attention",
        "high": "Attention",
        "medium": "Warning",
        "low": "Accent",
    }.get(f.severity or "", "Default")
    if event.kind == "attack_end":
        colour = "Good"
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate(headline(event, f), 300),
            "size": "Large",
            "weight": "Bolder",
            "color": colour,
            "wrap": True,
        }
    ]
    if event.kind == "test":
        body.append(
            {
                "type": "TextBlock",
                "text": "This is a test message sent on request; no attack is going on.",
                "wrap": True,
            }
        )
    body.append(
        {
            "type": "FactSet",
            "facts": [{"title": label, "value": value} for label, value in f.rows()],
        }
    )
    if f.summary:
        body.append(
            {"type": "TextBlock", "text": truncate(f.summary, TEAMS_SUMMARY_MAX), "wrap": True}
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    link = _url_ok(f.link)
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open incident", "url": link}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


async def send_teams(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    result = await request(
        session,
        "POST",
        str(channel.config["webhook_url"]),
        secret_values(channel.type, channel.config),
        body=dumps(teams_payload(event)),
    )
    return result.attempt


# ---------------------------------------------------------------- Telegram


def _telegram_html(event: AlertEvent, f: Facts) -> str:
    esc = html.escape
    head = f"<b>{esc(headline(event, f))}</b>"
    lines = [head, ""]
    if event.kind == "test":
        lines += ["This is a test message sent on request; no attack is going on.", ""]
    lines += [f"<b>{esc(label)}:</b> {esc(value)}" for label, value in f.rows()]
    tail: list[str] = []
    link = _url_ok(f.link, 1000)
    if link:
        tail = ["", f'<a href="{esc(link, quote=True)}">Open incident</a>']
    text = "\n".join(lines)
    if f.summary:
        room = TELEGRAM_TEXT_MAX - len(text) - len("\n".join(tail)) - 2
        if room > 20:
            # cut the plain summary, then escape it: never cut inside an entity
            summary = f.summary
            while summary and len(esc(summary)) > room:
                summary = truncate(summary, len(summary) - (len(esc(summary)) - room))
            if summary:
                text += "\n\n" + esc(summary)
    text += "\n".join(tail)
    if len(text) > TELEGRAM_TEXT_MAX:
        # only possible with huge labels; fall back to the escaped head line alone
        text = head[:TELEGRAM_TEXT_MAX]
    return text


def telegram_payload(event: AlertEvent, config: Mapping[str, Any]) -> dict[str, Any]:
    """``sendMessage`` parameters: HTML parse mode, every value escaped."""
    payload: dict[str, Any] = {
        "chat_id": config["chat_id"],
        "text": _telegram_html(event, facts(event)),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    if config.get("message_thread_id") is not None:
        payload["message_thread_id"] = config["message_thread_id"]
    if config.get("silent"):
        payload["disable_notification"] = True
    return payload


async def send_telegram(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    remote_ref: str | None,
) -> Attempt:
    config = channel.config
    base = str(config.get("api_url") or "https://api.telegram.org").rstrip("/")
    result = await request(
        session,
        "POST",
        f"{base}/bot{config['bot_token']}/sendMessage",
        secret_values(channel.type, config),
        body=dumps(telegram_payload(event, config)),
    )
    attempt = result.attempt
    data = result.data if isinstance(result.data, dict) else {}
    if attempt.ok and data.get("ok") is False:
        return replace(attempt, ok=False, retryable=False, error="Telegram answered ok: false")
    if attempt.http_status == 429 and attempt.retry_after is None:
        wait = (data.get("parameters") or {}).get("retry_after")
        if isinstance(wait, int) and not isinstance(wait, bool) and wait >= 0:
            attempt = replace(attempt, retry_after=float(wait))
    return attempt
