"""What an alert is, where it goes, and what one attempt to send it did.

This module is the contract between the senders (``notify.services``: one attempt at one
service) and the dispatcher (outbox, retries, delivery log). ``deliver`` makes exactly one
attempt and never raises for a delivery failure; ``passes_filters`` applies a channel's own
filters (minimum severity, nodes, event kinds, mute window) to an event.

The time: ``passes_filters`` and the dispatcher's retry decisions take ``now`` from their caller
(the server's clock). What a sender itself needs of the time (a ``Retry-After`` given as an
HTTP-date, turned into seconds) it reads from :func:`current_clock`: the clock ``deliver`` was
given for the attempt. notify imports nothing of ours, so its clock is any object with a
``now()`` (``store.clock.Clock`` is one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

__all__ = [
    "END_REASONS",
    "EVENT_KINDS",
    "MACHINE_CLOCK",
    "SEVERITY_ORDER",
    "UPDATE_CHANGES",
    "AlertEvent",
    "Attempt",
    "ChannelTarget",
    "NowClock",
    "current_clock",
    "deliver",
    "event_timestamp",
    "in_mute_window",
    "parse_time",
    "passes_filters",
]

EVENT_KINDS = ("attack_start", "attack_update", "attack_end", "test")
END_REASONS = ("resolved", "expired", "false_positive", "node_deleted")
UPDATE_CHANGES = ("peak", "family", "severity")
SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class NowClock(Protocol):
    """Where notify reads the time (``store.clock.Clock`` satisfies it)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class _MachineClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


MACHINE_CLOCK: NowClock = _MachineClock()
"""The machine's clock: what ``deliver`` uses unless given another."""

_CLOCK: ContextVar[NowClock] = ContextVar("notify_clock", default=MACHINE_CLOCK)


def current_clock() -> NowClock:
    """The clock of the attempt in progress (the one ``deliver`` was given), else the
    machine's. A context variable, so the senders' fixed signature need not carry it."""
    return _CLOCK.get()


def _parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO text (``Z`` or an offset) or a datetime; else None."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # an offset pushing year 1 or 9999 out of range
        return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AlertEvent:
    """One incident transition (or a test) to tell the channels about.

    ``incident`` is the incident exactly as Get Incident renders it; ``node`` is
    ``{"id", "uuid", "name", "ip"}``; ``workspace`` is ``{"uuid", "name"}``. ``event_id`` is
    written with the incident change and stays the same across retries and restarts.
    """

    event_id: str
    kind: str
    occurred_at: datetime
    workspace: Mapping[str, Any]
    node: Mapping[str, Any] | None
    incident: Mapping[str, Any] | None
    end_reason: str | None = None
    changes: tuple[str, ...] = ()
    dashboard_url: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        if self.end_reason is not None and self.end_reason not in END_REASONS:
            raise ValueError(f"end_reason must be one of {', '.join(END_REASONS)}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_json` turns back into an equal event."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "workspace": dict(self.workspace),
            "node": dict(self.node) if self.node is not None else None,
            "incident": dict(self.incident) if self.incident is not None else None,
            "end_reason": self.end_reason,
            "changes": list(self.changes),
            "dashboard_url": self.dashboard_url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertEvent:
        occurred = _parse_time(data["occurred_at"])
        if occurred is None:
            raise ValueError("occurred_at is not an ISO timestamp")
        node = data.get("node")
        incident = data.get("incident")
        return cls(
            event_id=str(data["event_id"]),
            kind=str(data["kind"]),
            occurred_at=occurred,
            workspace=dict(data.get("workspace") or {}),
            node=dict(node) if node is not None else None,
            incident=dict(incident) if incident is not None else None,
            end_reason=data.get("end_reason"),
            changes=tuple(data.get("changes") or ()),
            dashboard_url=data.get("dashboard_url"),
        )


@dataclass(frozen=True)
class ChannelTarget:
    """A channel as the senders need it: ``config`` is the validated, unmasked config."""

    id: int
    uuid: str
    name: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """What one attempt did. ``error`` never holds a secret (URLs, tokens, passwords)."""

    ok: bool
    latency_ms: float
    http_status: int | None = None
    smtp_reply: str | None = None
    error: str | None = None
    retryable: bool = True
    retry_after: float | None = None
    remote_ref: str | None = None


# ---------------------------------------------------------------- filters


def _clock(text: Any) -> dtime | None:
    if not isinstance(text, str):
        return None
    try:
        hours, minutes = text.split(":")
        return dtime(int(hours), int(minutes))
    except ValueError:
        return None


def in_mute_window(mute: Mapping[str, Any] | None, at: datetime) -> bool:
    """Whether ``at`` falls in the daily window ``{"from", "to", "tz"}`` (which may wrap past
    midnight; ``from`` == ``to`` means all day). A malformed window mutes nothing."""
    if not isinstance(mute, Mapping):
        return False
    start, end = _clock(mute.get("from")), _clock(mute.get("to"))
    if start is None or end is None:
        return False
    tz_name = mute.get("tz") or "UTC"
    try:
        tz = ZoneInfo(str(tz_name))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    local = at.astimezone(tz).time().replace(second=0, microsecond=0)
    if start == end:
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end


def passes_filters(config: Mapping[str, Any], event: AlertEvent, now: datetime) -> bool:
    """Whether a channel with ``config`` should be sent ``event`` at ``now``.

    - ``test`` always passes.
    - ``events``: the kinds to send (missing: all).
    - ``nodes``: node uuids to send about (missing or empty: all).
    - ``min_severity``: the incident's current severity must be at least this. Severity only
      rises, so the first message a channel gets about an incident may be an update.
    - ``mute``: nothing is sent while ``now`` is in the daily window, except an ``attack_end``
      whose incident started outside the window: its start was sent, so people (and PagerDuty,
      Opsgenie, Alertmanager) are told it is over rather than left with an open alert. (The
      outbox goes further: it sends the end to every channel that got the start, whatever the
      mute, severity and node filters say; only ``events`` can stop it.)
    """
    if event.kind == "test":
        return True
    kinds = config.get("events")
    if kinds is not None and event.kind not in kinds:
        return False
    nodes = config.get("nodes")
    if nodes:
        node_uuid = (event.node or {}).get("uuid")
        if node_uuid is None and event.incident is not None:
            node_uuid = event.incident.get("node_uuid")
        if str(node_uuid).lower() not in {str(n).lower() for n in nodes}:
            return False
    minimum = config.get("min_severity")
    if minimum in SEVERITY_ORDER:
        severity = (event.incident or {}).get("severity")
        if SEVERITY_ORDER.get(str(severity), -1) < SEVERITY_ORDER[minimum]:
            return False
    mute = config.get("mute")
    if mute and in_mute_window(mute, now):
        if event.kind != "attack_end":
            return False
        started = _parse_time((event.incident or {}).get("started_at"))
        if started is not None and in_mute_window(mute, started):
            return False
    return True


# ---------------------------------------------------------------- one attempt


async def deliver(
    session: aiohttp.ClientSession,
    channel: ChannelTarget,
    event: AlertEvent,
    *,
    delivery_id: str,
    timeout: float,  # noqa: ASYNC109 - the fixed interface takes the attempt's budget
    remote_ref: str | None = None,
    clock: NowClock = MACHINE_CLOCK,
) -> Attempt:
    """One attempt to send ``event`` to ``channel``, within ``timeout`` seconds in all.
    ``clock``: what the sender reads the time from (:func:`current_clock`) during the attempt.

    Never raises for a delivery failure (network, timeout, refusal, bad answer): those come
    back as ``Attempt(ok=False, ...)`` with ``retryable`` telling whether trying again may help.
    Raises ``ValueError`` for a channel type without a sender (a programming error).
    """
    from .services import sender_for

    send = sender_for(channel.type)
    # the latency is measured on the machine's clock: it is how long the service took, not a
    # time that decides anything
    started = time.perf_counter()
    token = _CLOCK.set(clock)
    try:
        async with asyncio.timeout(timeout):
            attempt = await send(
                session, channel, event, delivery_id=delivery_id, remote_ref=remote_ref
            )
    except TimeoutError:
        return Attempt(
            ok=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=f"timed out after {timeout:g} s",
        )
    except (aiohttp.ClientError, OSError) as exc:
        from .http import describe_error, is_tls_error, secret_values

        return Attempt(
            ok=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=describe_error(exc, secret_values(channel.type, channel.config)),
            retryable=not is_tls_error(exc),
        )
    finally:
        _CLOCK.reset(token)
    return replace(attempt, latency_ms=(time.perf_counter() - started) * 1000)


def event_timestamp(event: AlertEvent) -> str:
    """``occurred_at`` as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _iso(event.occurred_at)


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO text or a datetime; None when it is neither."""
    return _parse_time(value)
