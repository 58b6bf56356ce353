"""The alert outbox: which channel must hear about which incident change, written in the same
transaction as the change itself.

Every function that changes an incident (``api.agentapi.incident_repo``, ``store.detections``,
``store.nodes``) calls ``incident_changed`` inside its transaction. It compares the incident
with what each of the workspace's enabled channels was last told about it
(``alert_channel_incidents``) and queues what is due:

* ``attack_start`` the first time the incident passes the channel's filters (an incident that
  starts ``low`` and becomes ``high`` reaches a ``min_severity: high`` channel when it rises);
* ``attack_update`` while the incident is active, when its peak pps or bps grew to at least
  ``update_peak_factor`` times the last one the channel was told, its family changed or its
  severity rose; at most one per channel and incident per ``update_interval_secs`` (a change
  inside the interval is carried by the next transition after it, compared with what was last
  sent, so nothing is lost, only merged);
* ``attack_end`` once, when the incident is no longer active, and only to channels that got its
  start. The end ignores the mute window, minimum severity and node filters (a page that was
  opened must be closed), but a channel whose ``events`` list leaves ``attack_end`` out gets none.

An event is one row of ``alert_events`` (its payload is ``AlertEvent.to_json()``, the incident
as Get Incident shows it at that moment); it fans out to one ``alert_deliveries`` row per
channel, whose ``delivery_id`` stays the same through every retry and restart. The dispatcher
(``api/dispatcher.py``) reads pending deliveries, and writes each attempt to ``alert_attempts``.

The settings are process-wide (``configure``), set once by the server at start; the CLI and
tests get the defaults. Listeners (``add_listener``) are called after a commit that queued
deliveries, from the writer thread, so the dispatcher wakes at once instead of polling.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from notify.events import AlertEvent, passes_filters

from .db import Connection, rows_as_dicts, transaction
from .errors import NotFound
from .incidents import SEVERITIES, get_incident, rendered

__all__ = [
    "AlertSettings",
    "add_listener",
    "configure",
    "due_deliveries",
    "incident_changed",
    "list_attempts",
    "notify_listeners",
    "record_attempts",
    "record_test",
    "remove_listener",
    "settings",
    "workspace_ref",
]

_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # low 0 .. critical 3


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = True
    public_url: str = ""
    update_interval_secs: float = 300.0
    update_peak_factor: float = 1.5


_settings = AlertSettings()
_listeners: list[Callable[[], None]] = []
_lock = threading.Lock()
_queued = threading.Event()


def configure(new: AlertSettings) -> None:
    global _settings  # noqa: PLW0603 - one process-wide setting, set once at start
    _settings = new


def settings() -> AlertSettings:
    return _settings


def add_listener(fn: Callable[[], None]) -> None:
    with _lock:
        _listeners.append(fn)


def remove_listener(fn: Callable[[], None]) -> None:
    with _lock:
        if fn in _listeners:
            _listeners.remove(fn)


def notify_listeners() -> None:
    """Call after the transaction that called ``incident_changed`` committed: wakes the
    dispatcher if deliveries were queued (a rolled-back queueing only costs a spurious wake)."""
    if not _queued.is_set():
        return
    _queued.clear()
    with _lock:
        listeners = list(_listeners)
    for fn in listeners:
        fn()


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return None if value is None else str(value)


def _dashboard_url(incident_id: Any) -> str | None:
    base = _settings.public_url.rstrip("/")
    if not base or incident_id is None:
        return None
    return f"{base}/dashboard/incident?id={incident_id}"


def _rendered(con: Connection, ws: uuid.UUID, inc_uuid: str, now: datetime) -> dict[str, Any]:
    """The incident as Get Incident renders it (with its compatibility names)."""
    row = rendered(get_incident(con, ws, uuid.UUID(inc_uuid), now=now))
    out: dict[str, Any] = orjson.loads(orjson.dumps(row, default=_iso))
    return out


def _end_reason(incident: Mapping[str, Any]) -> str:
    if incident.get("status") == "false_positive":
        return "false_positive"
    detail = incident.get("detail")
    if isinstance(detail, dict):
        if detail.get("ended_by"):
            return "node_deleted"
        if detail.get("expired"):
            return "expired"
    return "resolved"


def _grew(now_value: float, last: float, factor: float) -> bool:
    return now_value > 0 and now_value >= last * factor and now_value > last


def _changes(incident: Mapping[str, Any], st: Mapping[str, Any]) -> tuple[str, ...]:
    factor = _settings.update_peak_factor
    out: list[str] = []
    pps, bps = float(incident.get("peak_pps") or 0), float(incident.get("peak_bps") or 0)
    if _grew(pps, float(st["peak_pps"] or 0), factor) or _grew(
        bps, float(st["peak_bps"] or 0), factor
    ):
        out.append("peak")
    if st["attack_family"] is not None and incident.get("attack_family") != st["attack_family"]:
        out.append("family")
    if _RANK.get(str(incident.get("severity")), 0) > _RANK.get(str(st["severity"]), 0):
        out.append("severity")
    return tuple(out)


def _owed(st: Mapping[str, Any] | None, raw: Mapping[str, Any], now: datetime) -> bool:
    """Whether the channel may be owed an event (before its filters are asked)."""
    if st is None or st["started_event"] is None:
        return True
    if st["ended_event"] is not None:
        return False
    if raw["status"] != "active":
        return True
    last = st["last_update_at"]
    due = last is None or now - last >= timedelta(seconds=_settings.update_interval_secs)
    return due and bool(_changes(raw, st))


def _end_filter(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a channel's filters that still applies to the end of an incident whose
    start it got: only the ``events`` list."""
    return {"events": config["events"]} if "events" in config else {}


def incident_changed(con: Connection, inc_uuid: str | uuid.UUID, now: datetime) -> int:
    """Queue the events this incident's current state owes each enabled channel of its
    workspace. Call inside the transaction that changed the incident. Returns how many
    deliveries were queued."""
    if not _settings.enabled:
        return 0
    inc = str(inc_uuid)
    # the incident, its workspace's name, then the enabled channels with what each was last
    # told about it: two statements (one each cost six, on the store's single writer)
    found = con.execute(
        "SELECT CAST(i.workspace_uuid AS VARCHAR), i.status, i.peak_pps, i.peak_bps, "
        "i.attack_family, i.severity, w.name FROM incidents i "
        "LEFT JOIN workspaces w ON w.uuid = i.workspace_uuid WHERE i.uuid = ?",
        [inc],
    ).fetchone()
    if found is None:
        return 0
    ws, ws_name = str(found[0]), found[6]
    names = ("status", "peak_pps", "peak_bps", "attack_family", "severity")
    raw = dict(zip(names, found[1:6], strict=True))
    channels = rows_as_dicts(
        con.execute(
            "SELECT c.id, CAST(c.uuid AS VARCHAR) AS uuid, c.name, c.type, c.config, "
            "s.channel_id AS st_channel, s.started_event, s.ended_event, s.peak_pps, "
            "s.peak_bps, s.attack_family, s.severity, s.last_update_at "
            "FROM channels c LEFT JOIN alert_channel_incidents s "
            "ON s.channel_id = c.id AND s.incident_uuid = ? "
            "WHERE c.workspace_uuid = ? AND c.enabled ORDER BY c.created_at, c.id",
            [inc, ws],
        )
    )
    if not channels:
        return 0
    states = {int(ch["id"]): ch for ch in channels if ch["st_channel"] is not None}
    if not any(_owed(states.get(int(ch["id"])), raw, now) for ch in channels):
        return 0  # the common agent update: nothing new to tell anyone, nothing rendered
    incident = _rendered(con, uuid.UUID(ws), inc, now)
    workspace = {"uuid": ws, "name": ws_name}
    # the rendering joins the node: it is there, with its name and address
    node = {
        "id": None,
        "uuid": str(incident["node_uuid"]),
        "name": incident.get("node_name"),
        "ip": incident.get("node_ip"),
    }
    active = incident.get("status") == "active"
    end_reason = None if active else _end_reason(incident)
    events: dict[tuple[str, tuple[str, ...]], AlertEvent] = {}

    def event(kind: str, changes: tuple[str, ...] = ()) -> AlertEvent:
        key = (kind, changes)
        if key not in events:
            events[key] = AlertEvent(
                event_id=str(uuid.uuid4()),
                kind=kind,
                occurred_at=now,
                workspace=workspace,
                node=node,
                incident=incident,
                end_reason=end_reason if kind == "attack_end" else None,
                changes=changes,
                dashboard_url=_dashboard_url(incident.get("id")),
            )
        return events[key]

    # (channel, event) in the order they must be delivered
    plan: list[tuple[dict[str, Any], AlertEvent]] = []
    for ch in channels:
        config = ch["config"] if isinstance(ch["config"], dict) else orjson.loads(ch["config"])
        ch["config"] = config
        st = states.get(int(ch["id"]))
        if st is None or st["started_event"] is None:
            start = event("attack_start")
            if not passes_filters(config, start, now):
                continue
            plan.append((ch, start))
            if not active:
                end = event("attack_end")
                if passes_filters(_end_filter(config), end, now):
                    plan.append((ch, end))
            continue
        if st["ended_event"] is not None:
            continue
        if not active:
            end = event("attack_end")
            if passes_filters(_end_filter(config), end, now):
                plan.append((ch, end))
            else:  # never to be sent: remember the incident is over for this channel
                _mark_ended(con, int(ch["id"]), inc, None)
            continue
        changes = _changes(incident, st)
        last = st["last_update_at"]
        interval = timedelta(seconds=_settings.update_interval_secs)
        if changes and (last is None or now - last >= interval):
            update = event("attack_update", changes)
            if passes_filters(config, update, now):
                plan.append((ch, update))
    if not plan:
        return 0
    _write_plan(con, plan, ws, inc, incident, now)
    _queued.set()
    return len(plan)


def _values(rows: list[list[Any]]) -> tuple[str, list[Any]]:
    """One multi-row VALUES clause and its flat parameters (a statement per row costs a
    DuckDB round trip each)."""
    width = len(rows[0])
    one = "(" + ", ".join("?" for _ in range(width)) + ")"
    return ", ".join(one for _ in rows), [v for row in rows for v in row]


def _write_plan(
    con: Connection,
    plan: list[tuple[dict[str, Any], AlertEvent]],
    ws: str,
    inc: str,
    incident: Mapping[str, Any],
    now: datetime,
) -> None:
    """The events, their deliveries (in plan order: ``seq`` orders a channel's deliveries)
    and what each channel has now been told (queued counts: delivery is the dispatcher's
    job)."""
    events: dict[str, AlertEvent] = {}
    for _, ev in plan:
        events.setdefault(ev.event_id, ev)
    sql, params = _values(
        [
            [ev.event_id, ws, inc, ev.kind, orjson.dumps(ev.to_json()).decode(), now]
            for ev in events.values()
        ]
    )
    con.execute(f"INSERT INTO alert_events VALUES {sql}", params)
    # lists unnested side by side, in plan order (``seq`` follows it): a parameter per
    # column rather than per value binds faster
    con.execute(
        "INSERT INTO alert_deliveries (delivery_id, event_id, channel_id, workspace_uuid, "
        "incident_uuid, kind, created_at, next_attempt_at, status, attempts) "
        "SELECT unnest(CAST(? AS UUID[])), unnest(CAST(? AS UUID[])), "
        "unnest(CAST(? AS BIGINT[])), ?, ?, unnest(CAST(? AS VARCHAR[])), ?, ?, 'pending', 0",
        [
            [str(uuid.uuid4()) for _ in plan],
            [ev.event_id for _, ev in plan],
            [int(ch["id"]) for ch, _ in plan],
            ws,
            inc,
            [ev.kind for _, ev in plan],
            now,
            now,
        ],
    )
    told = [
        float(incident.get("peak_pps") or 0),
        float(incident.get("peak_bps") or 0),
        incident.get("attack_family"),
        incident.get("severity"),
    ]
    starts = [(int(ch["id"]), ev.event_id) for ch, ev in plan if ev.kind == "attack_start"]
    if starts:
        con.execute(
            "INSERT INTO alert_channel_incidents (channel_id, incident_uuid, started_event, "
            "peak_pps, peak_bps, attack_family, severity) "
            "SELECT unnest(CAST(? AS BIGINT[])), ?, unnest(CAST(? AS UUID[])), ?, ?, ?, ?",
            [[c for c, _ in starts], inc, [e for _, e in starts], *told],
        )
    for ev in events.values():
        ids = [int(ch["id"]) for ch, e in plan if e is ev]
        marks = ", ".join("?" for _ in ids)
        if ev.kind == "attack_update":
            con.execute(
                "UPDATE alert_channel_incidents SET peak_pps = ?, peak_bps = ?, "
                "attack_family = ?, severity = ?, last_update_at = ? "
                f"WHERE incident_uuid = ? AND channel_id IN ({marks})",
                [*told, now, inc, *ids],
            )
        elif ev.kind == "attack_end":
            con.execute(
                "UPDATE alert_channel_incidents SET ended_event = ? "
                f"WHERE incident_uuid = ? AND channel_id IN ({marks})",
                [ev.event_id, inc, *ids],
            )


def _mark_ended(con: Connection, channel_id: int, inc: str, event_id: str | None) -> None:
    con.execute(
        "UPDATE alert_channel_incidents SET ended_event = coalesce(?, ended_event, uuid()) "
        "WHERE channel_id = ? AND incident_uuid = ?",
        [event_id, channel_id, inc],
    )


# ------------------------------------------------------------------------------ dispatcher


def due_deliveries(
    con: Connection, now: datetime, limit: int, known: Collection[int] = ()
) -> tuple[list[dict[str, Any]], datetime | None, int]:
    """Pending deliveries whose time has come, oldest first, and only the first pending one of
    each (channel, incident) so that a channel hears of an incident's changes in order, each
    with its channel as stored now (``channel_*``) and the ``remote_ref`` an earlier delivery
    of the incident to that channel returned; also the earliest ``next_attempt_at`` of all
    pending ones and how many are pending. When more than ``limit`` are due, the channels take
    turns (each one's oldest first, then each one's second...): a channel with a long backlog
    (a hanging service) cannot fill the read and hide the other channels' deliveries.

    ``known`` lists the ``seq`` of deliveries the caller already holds (in flight, or waiting
    for a slot): they are left out of the rows (not of the count), so that a read during a
    burst costs the new rows only, not every pending row again."""
    rows = rows_as_dicts(
        con.execute(
            "SELECT CAST(d.delivery_id AS VARCHAR) AS delivery_id, d.seq, "
            "CAST(d.event_id AS VARCHAR) AS event_id, d.channel_id, d.kind, d.attempts, "
            "d.created_at, CAST(d.incident_uuid AS VARCHAR) AS incident_uuid, e.payload, "
            "c.id IS NOT NULL AS channel_exists, coalesce(c.enabled, false) AS channel_enabled, "
            "CAST(c.uuid AS VARCHAR) AS channel_uuid, c.name AS channel_name, "
            "c.type AS channel_type, c.config AS channel_config, s.remote_ref "
            "FROM alert_deliveries d JOIN alert_events e ON e.event_id = d.event_id "
            "LEFT JOIN channels c ON c.id = d.channel_id "
            "LEFT JOIN alert_channel_incidents s ON s.channel_id = d.channel_id "
            "AND s.incident_uuid = d.incident_uuid "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND NOT EXISTS ("
            "SELECT 1 FROM alert_deliveries p WHERE p.status = 'pending' "
            "AND p.channel_id = d.channel_id AND p.incident_uuid = d.incident_uuid "
            "AND p.seq < d.seq) AND d.seq NOT IN (SELECT unnest(CAST(? AS BIGINT[]))) "
            "ORDER BY row_number() OVER (PARTITION BY d.channel_id ORDER BY d.seq), d.seq "
            "LIMIT ?",
            [now, list(known), limit],
        )
    )
    for r in rows:
        r["payload"] = orjson.loads(r["payload"])
        if isinstance(r["channel_config"], str):
            r["channel_config"] = orjson.loads(r["channel_config"])
    summary = con.execute(
        "SELECT min(next_attempt_at), count(*) FROM alert_deliveries WHERE status = 'pending'"
    ).fetchone()
    earliest = summary[0] if summary else None
    depth = int(summary[1]) if summary else 0
    return rows, earliest, depth


AttemptRecord = tuple[Mapping[str, Any], Mapping[str, Any], str, datetime, datetime | None]
"""(delivery, attempt fields, outcome, when, next attempt or None)."""


def record_attempts(con: Connection, records: list[AttemptRecord]) -> None:
    """Log attempts and move their deliveries on, in one transaction (one commit for the many
    attempts that finish together): ``sent``, ``failed`` and ``cancelled`` are final,
    ``retry`` keeps a delivery pending until its next attempt's time.

    Three statements whatever the number of attempts (a statement per attempt held the
    store's writer, and every incident change queued behind it, for a second per thousand
    deliveries). A delivery appears at most once in ``records``: it has one attempt in flight
    at a time."""
    if not records:
        return
    rows: list[list[Any]] = []
    refs: list[list[Any]] = []
    for n, (delivery, attempt, outcome, now, next_at) in enumerate(records):
        status = "pending" if outcome == "retry" else outcome
        http_status = attempt.get("http_status")
        latency, retry_after = attempt.get("latency_ms"), attempt.get("retry_after")
        rows.append(
            [
                n,
                str(delivery["delivery_id"]),
                int(delivery["attempts"]) + 1,
                now,
                outcome,
                status,
                None if http_status is None else int(http_status),
                attempt.get("smtp_reply"),
                attempt.get("error"),
                None if latency is None else float(latency),
                None if retry_after is None else float(retry_after),
                next_at or now,
                None if status == "pending" else now,
            ]
        )
        ref = attempt.get("remote_ref")
        if outcome == "sent" and ref and delivery.get("incident_uuid"):
            refs.append([int(delivery["channel_id"]), str(delivery["incident_uuid"]), str(ref)])
    values, params = _values(rows)
    typed = (
        "SELECT CAST(c0 AS INTEGER) AS n, CAST(c1 AS UUID) AS delivery_id, "
        "CAST(c2 AS INTEGER) AS attempt, CAST(c3 AS TIMESTAMPTZ) AS at, "
        "CAST(c4 AS VARCHAR) AS outcome, CAST(c5 AS VARCHAR) AS status, "
        "CAST(c6 AS INTEGER) AS http_status, CAST(c7 AS VARCHAR) AS smtp_reply, "
        "CAST(c8 AS VARCHAR) AS error, CAST(c9 AS DOUBLE) AS latency_ms, "
        "CAST(c10 AS DOUBLE) AS retry_after, CAST(c11 AS TIMESTAMPTZ) AS next_at, "
        "CAST(c12 AS TIMESTAMPTZ) AS done_at "
        f"FROM (VALUES {values}) v(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12)"
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO alert_attempts (delivery_id, channel_id, workspace_uuid, attempt, "
            "attempted_at, status, http_status, smtp_reply, error, latency_ms, retry_after) "
            "SELECT d.delivery_id, d.channel_id, d.workspace_uuid, b.attempt, b.at, b.outcome, "
            f"b.http_status, b.smtp_reply, b.error, b.latency_ms, b.retry_after FROM ({typed}) b "
            "JOIN alert_deliveries d ON d.delivery_id = b.delivery_id ORDER BY b.n",
            params,
        )
        con.execute(
            "UPDATE alert_deliveries SET status = b.status, attempts = b.attempt, "
            "next_attempt_at = b.next_at, done_at = b.done_at, last_error = b.error "
            f"FROM ({typed}) b WHERE alert_deliveries.delivery_id = b.delivery_id",
            params,
        )
        if refs:
            values, params = _values(refs)
            con.execute(
                "UPDATE alert_channel_incidents SET remote_ref = v.ref "
                f"FROM (VALUES {values}) v(channel_id, incident_uuid, ref) "
                "WHERE alert_channel_incidents.channel_id = v.channel_id "
                "AND alert_channel_incidents.incident_uuid = CAST(v.incident_uuid AS UUID)",
                params,
            )
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def record_test(
    con: Connection,
    ws_uuid: uuid.UUID,
    channel_id: int,
    event: AlertEvent,
    attempt: Mapping[str, Any],
    delivery_id: str,
    now: datetime,
) -> None:
    """A test sent from the API: one event, one delivery, its one attempt (never retried)."""
    outcome = "sent" if attempt.get("ok") else "failed"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO alert_events VALUES (?, ?, NULL, 'test', ?, ?)",
            [event.event_id, str(ws_uuid), orjson.dumps(event.to_json()).decode(), now],
        )
        con.execute(
            "INSERT INTO alert_deliveries (delivery_id, event_id, channel_id, workspace_uuid, "
            "incident_uuid, kind, status, attempts, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, NULL, 'test', 'pending', 0, ?, ?)",
            [delivery_id, event.event_id, channel_id, str(ws_uuid), now, now],
        )
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    record_attempts(
        con, [({"delivery_id": delivery_id, "attempts": 0}, attempt, outcome, now, None)]
    )


def workspace_ref(con: Connection, ws_uuid: uuid.UUID) -> dict[str, Any]:
    """``{"uuid", "name"}`` of a workspace, as events carry it."""
    row = con.execute("SELECT name FROM workspaces WHERE uuid = ?", [str(ws_uuid)]).fetchone()
    return {"uuid": str(ws_uuid), "name": row[0] if row else None}


_ATTEMPT_COLUMNS = """
    a.id, CAST(a.delivery_id AS VARCHAR) AS delivery_id, CAST(d.event_id AS VARCHAR) AS event_id,
    d.kind AS event, CAST(d.incident_uuid AS VARCHAR) AS incident_uuid, i.id AS incident_id,
    a.attempt, a.attempted_at AS at, a.status, a.http_status, a.smtp_reply, a.error, a.latency_ms,
    a.retry_after, d.status AS delivery_status
"""


def list_attempts(
    con: Connection, ws_uuid: uuid.UUID, channel_id: int, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The channel's delivery log, newest attempt first, within the workspace."""
    owned = con.execute(
        "SELECT 1 FROM channels WHERE id = ? AND workspace_uuid = ?", [channel_id, str(ws_uuid)]
    ).fetchone()
    if owned is None:
        raise NotFound("channel not found")
    total = con.execute(
        "SELECT count(*) FROM alert_attempts WHERE channel_id = ? AND workspace_uuid = ?",
        [channel_id, str(ws_uuid)],
    ).fetchone()
    rows = rows_as_dicts(
        con.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM alert_attempts a "
            "JOIN alert_deliveries d ON d.delivery_id = a.delivery_id "
            "LEFT JOIN incidents i ON i.uuid = d.incident_uuid "
            "WHERE a.channel_id = ? AND a.workspace_uuid = ? "
            "ORDER BY a.attempted_at DESC, a.id DESC LIMIT ? OFFSET ?",
            [channel_id, str(ws_uuid), limit, offset],
        )
    )
    for r in rows:
        r["at"] = r["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rows, int(total[0]) if total else 0


def purge_log(con: Connection, now: datetime, days: int) -> int:
    """Remove deliveries finished (delivered or failed) more than ``days`` ago, their attempts,
    and the events left without any delivery; returns the deliveries removed. A delivery still
    pending is kept whatever its age. The per-channel incident state (which start and end went
    out) stays: it is what keeps a late change of an old incident from alerting twice."""
    cutoff = now - timedelta(days=days)
    done = "status <> 'pending' AND done_at < ?"
    with transaction(con):
        sql = f"SELECT count(*) FROM alert_deliveries WHERE {done}"
        row = con.execute(sql, [cutoff]).fetchone()
        count = int(row[0]) if row else 0
        if count == 0:
            return 0
        con.execute(
            "DELETE FROM alert_attempts WHERE delivery_id IN "
            f"(SELECT delivery_id FROM alert_deliveries WHERE {done})",
            [cutoff],
        )
        con.execute(f"DELETE FROM alert_deliveries WHERE {done}", [cutoff])
        con.execute(
            "DELETE FROM alert_events WHERE created_at < ? "
            "AND event_id NOT IN (SELECT event_id FROM alert_deliveries)",
            [cutoff],
        )
    return count
