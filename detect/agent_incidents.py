"""Incidents as ftagent reports them: how its open, update and resolve bodies fold into one
incident, how severe it is, when the server ends one the agent fell silent about, and when an
agent's open joins an incident Floodwatch's own detector opened. Pure functions over a plain
incident state (a dict with the columns of the ``incidents`` table and a ``detail`` object): the
queries that find and store incidents are the Agent API's (``api/agentapi/incident_repo.py``).
The rules are described for readers in docs/agent-api.md §8.

Merge rule (opens, updates and resolves all fold into one incident):

* a duplicate open (same node, ``started_at``, ``attack_family`` and ``inner_ip``) answers the
  existing incident instead of creating a second one;
* an update or resolve for an unknown reference creates the incident, keyed by that reference;
  its start is corrected by the resolve's ``duration_seconds`` (it began before its first
  update);
* a replayed open (§8.6: the agent's open failed, it reported the attack under a UUID of its
  own, then its retry queue sent the open again) merges into the incident those reports built:
  same node and ``inner_ip``, no open yet, L7 with L7 and L3/L4 with L3/L4, started within
  ``REPLAYED_OPEN_WINDOW`` of the open's ``started_at``;
* an open that lands near the start of an active incident of Floodwatch's detector
  (``DETECTED_OPEN_WINDOW``, §8.9) joins it: one attack, one incident;
* ``peak_pps``/``peak_bps`` keep the maximum ever reported; the family, subtype, source count,
  protocol breakdown, top sources and top ports take the latest value sent while the incident
  is active; ``confidence`` comes from the resolve; an update that arrives after the resolve
  (a replay) neither re-opens the incident nor changes its final analysis, only its peaks;
* ``detail`` keeps everything the agent sent: the open body, the latest update body, the resolve
  body, the latest late update, and counters of updates, late updates and replayed opens.

Severity rule (the agent sends none; it only ever goes up while the incident lives, §8.8):

* L3/L4: ``critical`` from 1 Mpps or 10 Gbit/s peak, ``high`` from 100 kpps or 1 Gbit/s,
  ``medium`` from 10 kpps or 100 Mbit/s, else ``low``;
* L7 (``http_flood``, whose pps are always 0): by the highest request rate reported,
  ``critical`` from 10 000 rps, ``high`` from 1 000, ``medium`` from 100, else ``low``.

Expiry rule (§8.10): an active incident the agent owns with no open, update or resolve for
``idle_secs`` (default ``INCIDENT_IDLE_EXPIRY_SECS``) is resolved by the server: ``resolved_at``
becomes the time of its last report and ``detail.expired`` records when and why.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "DETECTED_OPEN_WINDOW",
    "INCIDENT_IDLE_EXPIRY_SECS",
    "MAX_DURATION_SECS",
    "REPLAYED_OPEN_WINDOW",
    "SEVERITIES",
    "apply",
    "blank",
    "derive_severity",
    "expire",
    "expiry_marker",
    "join_open",
    "num",
    "parse_time",
    "text",
]

SEVERITIES = ("critical", "high", "medium", "low")
"""Most severe first, as the incidents table orders them."""

MAX_DURATION_SECS = 10 * 365 * 86400.0
"""The longest ``duration_seconds`` taken from a resolve (beyond it a date would overflow)."""

REPLAYED_OPEN_WINDOW = (timedelta(seconds=-60), timedelta(seconds=180))
"""Where a replayed open's ``started_at`` may lie around the start of an incident built from
updates alone (the open failed: up to 51 s of retries, then an update every ~5 s) for the two
to be taken as one attack."""

DETECTED_OPEN_WINDOW = (timedelta(seconds=-180), timedelta(seconds=60))
"""An agent open this close to the start of an active incident of Floodwatch's detector (before
the agent's ``started_at``, after it) joins that incident."""

INCIDENT_IDLE_EXPIRY_SECS = 600
"""Seconds without any open, update or resolve after which an active agent incident expires.

The agent updates a live incident every 1-5 s (§1.3), so ten minutes of silence means a crashed
agent, a lost resolve, an L7 log that went quiet or an orphaned replayed open (§8.10)."""

_MAX_TEXT = 200


def num(value: Any) -> float | None:
    """A finite non-negative number (ints and floats alike), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) and out >= 0 else None


def _int(value: Any) -> int | None:
    v = num(value)
    return int(min(v, 2**31 - 1)) if v is not None else None


def text(value: Any) -> str | None:
    """A non-blank string, trimmed and cut to 200 characters, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:_MAX_TEXT]


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone (``Z`` too), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def derive_severity(peak_pps: float, peak_bps: float, max_rps: float, family: str) -> str:
    if family == "http_flood" or (peak_pps == 0 and peak_bps == 0 and max_rps > 0):
        steps = ((10_000, "critical"), (1_000, "high"), (100, "medium"))
        return next((sev for lim, sev in steps if max_rps >= lim), "low")
    if peak_pps >= 1_000_000 or peak_bps >= 10e9:
        return "critical"
    if peak_pps >= 100_000 or peak_bps >= 1e9:
        return "high"
    if peak_pps >= 10_000 or peak_bps >= 100e6:
        return "medium"
    return "low"


def _higher(a: str, b: str) -> str:
    return a if SEVERITIES.index(a) <= SEVERITIES.index(b) else b


def _ports(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # L7: {path: count}
        return [{"path": str(k), "count": v} for k, v in value.items()]
    return None


def blank(ref: str, started_at: datetime) -> dict[str, Any]:
    """The state of an incident the agent names ``ref`` before any report is folded in."""
    return {
        "uuid": None,
        "status": "active",
        "severity": "low",
        "attack_family": "unknown",
        "attack_subtype": None,
        "title": None,
        "started_at": started_at,
        "resolved_at": None,
        "peak_pps": 0.0,
        "peak_bps": 0.0,
        "source_ip_count": 0,
        "confidence": None,
        "protocol_breakdown": None,
        "top_sources": None,
        "top_dst_ports": None,
        "detail": {
            "source": "ftagent",
            "agent_ref": ref,
            "open": None,
            "open_replays": 0,
            "last_update": None,
            "updates": 0,
            "resolve": None,
            "max_rps": 0.0,
        },
        "agent_ref": ref,
    }


def join_open(state: dict[str, Any], rule: int, started: datetime) -> None:
    """An open matched ``state`` by merge rule ``rule`` (1: a duplicate open, 2: a replayed open
    of an incident built from updates, 3: an active incident of Floodwatch's detector): adjust
    the incident before the open is folded in."""
    if rule == 2:
        state["started_at"] = min(state["started_at"], started)
    elif rule == 3:
        own = str(state["uuid"])
        state["detail"] = {**blank(own, state["started_at"])["detail"], **state["detail"]}
        state["agent_ref"] = own
        state["started_at"] = min(state["started_at"], started)


def apply(state: dict[str, Any], kind: str, body: dict[str, Any], now: datetime) -> None:
    """Fold one agent body (``open``, ``update`` or ``resolve``) into the incident state."""
    detail = state["detail"]
    if kind == "update" and state["status"] != "active":
        _apply_late_update(state, body)
        return
    if kind == "open":
        if detail.get("open") is not None:
            detail["open_replays"] = int(detail.get("open_replays") or 0) + 1
        detail["open"] = body
    elif kind == "update":
        detail["last_update"] = body
        detail["updates"] = int(detail.get("updates") or 0) + 1
    else:
        detail["resolve"] = body
    family = text(body.get("attack_family"))
    if family is not None and (kind != "open" or state["attack_family"] == "unknown"):
        state["attack_family"] = family
    subtype = text(body.get("attack_subtype"))
    if subtype is not None:
        state["attack_subtype"] = subtype
    _raise_peaks(state, body)
    rps = max(num(body.get("rps")) or 0.0, num(body.get("peak_rps")) or 0.0)
    detail["max_rps"] = max(float(detail.get("max_rps") or 0.0), rps)
    count = _int(body.get("source_ip_count"))
    if count is not None:
        state["source_ip_count"] = count
    if isinstance(body.get("protocol_breakdown"), dict):
        state["protocol_breakdown"] = body["protocol_breakdown"]
    if isinstance(body.get("top_src_ips"), list):
        state["top_sources"] = body["top_src_ips"]
    ports = _ports(body.get("top_dst_ports"))
    if ports is not None:
        state["top_dst_ports"] = ports
    if kind == "resolve":
        _resolve(state, body, now)
    inner_ip = text(body.get("inner_ip"))
    if inner_ip is not None:
        detail["inner_ip"] = inner_ip
    _title_and_severity(state)


def _raise_peaks(state: dict[str, Any], body: dict[str, Any]) -> None:
    for col in ("peak_pps", "peak_bps"):
        value = num(body.get(col))
        if value is not None:
            state[col] = max(float(state[col] or 0.0), value)


def _resolve(state: dict[str, Any], body: dict[str, Any], now: datetime) -> None:
    confidence = _int(body.get("confidence"))
    if confidence is not None:
        state["confidence"] = min(confidence, 100)
    if state["status"] == "active":
        state["status"] = "resolved"
    if state["resolved_at"] is None:
        duration = min(num(body.get("duration_seconds")) or 0.0, MAX_DURATION_SECS)
        if duration > 0 and state["detail"].get("open") is None:
            # no open seen (it failed and the agent used a UUID of its own): the incident
            # began when the resolve says, not when its first update arrived
            began = now - timedelta(seconds=duration)
            state["started_at"] = min(state["started_at"], began)
        end = now
        if duration > 0:
            end = min(now, state["started_at"] + timedelta(seconds=duration))
        state["resolved_at"] = max(end, state["started_at"])


def _title_and_severity(state: dict[str, Any]) -> None:
    detail = state["detail"]
    where = detail.get("inner_ip")
    state["title"] = state["attack_family"] + (f" on {where}" if where else "")
    severity = derive_severity(
        float(state["peak_pps"]),
        float(state["peak_bps"]),
        float(detail.get("max_rps") or 0.0),
        state["attack_family"],
    )
    state["severity"] = _higher(state["severity"], severity)


def _apply_late_update(state: dict[str, Any], body: dict[str, Any]) -> None:
    """An update for an incident already resolved (by the agent or by expiry): a replay from
    the agent's retry queue, older than the resolve (§8.6). It is kept (``detail.late_update``,
    counted in ``detail.late_updates``) and may raise the peaks, but the resolve's final
    analysis (family, sources, breakdowns, top lists) stands."""
    detail = state["detail"]
    detail["late_update"] = body
    detail["late_updates"] = int(detail.get("late_updates") or 0) + 1
    _raise_peaks(state, body)
    _title_and_severity(state)


def expiry_marker(now: datetime, idle_secs: float) -> dict[str, Any]:
    """``detail.expired`` of an incident the server ended at ``now``."""
    return {
        "at": now.isoformat(),
        "by": "server",
        "reason": f"no update from the agent for {int(idle_secs)} s",
        "idle_secs": idle_secs,
    }


def expire(state: dict[str, Any], now: datetime, idle_secs: float) -> bool:
    """The expiry rule on one incident: when the agent owns it (its own, or a detector's one it
    joined), it is active and its last report is more than ``idle_secs`` old, resolve it as of
    that report. Returns whether it expired."""
    updated = state.get("updated_at")
    agent_owned = state.get("source") == "ftagent" or state.get("agent_ref") is not None
    if not agent_owned or state["status"] != "active" or updated is None:
        return False
    if updated >= now - timedelta(seconds=idle_secs):
        return False
    state["status"] = "resolved"
    state["resolved_at"] = max(updated, state["started_at"])
    state["detail"]["expired"] = expiry_marker(now, idle_secs)
    return True
