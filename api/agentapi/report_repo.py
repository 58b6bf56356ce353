"""Periodic and inventory reports of the ftagent Agent API (docs/agent-api.md §10):
``gre-tunnels``, ``vm-stats``, ``sp-metrics``, ``sp-blocks``, ``l7-detect``, ``l7-metrics`` and
``mirror-metrics`` (the endpoint path with ``/`` turned into ``-``).

Validation is tolerant (§10.6) and declared by the report models (``models.REPORT_MODELS``):
any JSON object is accepted, sparse or with unknown fields, and ints stand in for floats. Only a
*known* field with an impossible type is refused (400, and the agent drops it): a number field
holding a string, a list field holding an object, and so on. ``null`` is accepted everywhere.

Storage: one ``agent_reports`` row per report with the body exactly as received. A report whose
body is identical to the node's latest report of the same kind (a replay from the agent's retry
queue, or ``vm-stats`` repeating its frozen totals every 5 s) does not add a row: it bumps that
row's ``repeats`` and ``last_received_at``. Only the newest ``REPORTS_KEPT_PER_KIND`` rows per
node and kind are kept; older ones are pruned on about one insert in 32 (at random, so that
every node gets its turn whatever the interleaving of reports).
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from datetime import datetime
from typing import Any

import orjson

from store.db import Connection, rows_as_dicts, transaction
from store.errors import NotFound

from .models import REPORT_FIELDS, is_number

__all__ = [
    "REPORTS_KEPT_PER_KIND",
    "REPORT_KINDS",
    "latest_reports",
    "list_reports",
    "record_report",
    "summarize",
    "whitelisted",
]

REPORTS_KEPT_PER_KIND = 500
"""How many reports of one kind are kept per node (the newest); older ones are pruned."""

_PRUNE_CHANCE = 1 / 32  # each insert prunes its node and kind with this probability

REPORT_KINDS = tuple(REPORT_FIELDS)
"""``gre-tunnels``, ``vm-stats``, ``sp-metrics``, ``sp-blocks``, ``l7-detect``, ``l7-metrics``,
``mirror-metrics``."""

# The list whose length is a report's ``item_count``.
_ITEMS = {
    "gre-tunnels": "tunnels",
    "vm-stats": "vms",
    "sp-blocks": "blocks",
    "l7-detect": "detected_paths",
    "mirror-metrics": "ips",
}


def _num(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _str(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def whitelisted(body: dict[str, Any]) -> list[str]:
    """The ``gre-tunnels`` answer (§10.1): the tunnels' remote endpoints, valid IPs only."""
    found = {_ip(t.get("remote_ip")) for t in _objects(body.get("tunnels"))}
    return sorted(ip for ip in found if ip is not None)


def summarize(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The typed essentials of one report, read tolerantly (unusable values become null)."""
    if kind == "gre-tunnels":
        flag = body.get("gre_dedup_active")
        return {
            "tunnels": len(_objects(body.get("tunnels"))),
            "whitelisted": whitelisted(body),
            "gre_dedup_active": flag if isinstance(flag, bool) else None,
        }
    if kind == "vm-stats":
        flag = body.get("gre_dedup_active")
        vms = _objects(body.get("vms"))
        return {
            "vms": len(vms),
            "gre_dedup_active": flag if isinstance(flag, bool) else None,
            "inner_ips": [ip for ip in (_str(v.get("inner_ip")) for v in vms) if ip],
        }
    if kind == "sp-blocks":
        blocks = _objects(body.get("blocks"))
        return {
            "blocks": len(blocks),
            "incident_uuid": _str(body.get("incident_uuid"), 128),
            "sources": [ip for ip in (_str(b.get("source_ip")) for b in blocks) if ip],
        }
    if kind == "l7-detect":
        paths = body.get("detected_paths")
        return {
            "web_server": _str(body.get("web_server")),
            "server_version": _str(body.get("server_version")),
            "detected_paths": [p for p in paths if isinstance(p, str)]
            if isinstance(paths, list)
            else [],
            "active_log_path": _str(body.get("active_log_path"), 4096),
        }
    if kind == "mirror-metrics":
        ips = _objects(body.get("ips"))
        out: dict[str, Any] = {
            name: _num(body.get(name))
            for name in ("total_pps", "total_bps", "tracked_ip_count", "active_attacks")
        }
        out["ips"] = len(ips)
        out["attacked_ips"] = [
            ip for ip in (_str(r.get("ip")) for r in ips if r.get("status") == "attack") if ip
        ]
        return out
    # sp-metrics, l7-metrics: the numeric fields
    fields = REPORT_FIELDS[kind].items()
    return {name: _num(body.get(name)) for name, want in fields if want == "number"}


def record_report(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID,
    kind: str,
    body: dict[str, Any],
    now: datetime,
) -> tuple[int, bool]:
    """Store one report (or count it as a repeat of the latest). Returns (id, repeated)."""
    assert kind in REPORT_KINDS
    text = orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()
    items = body.get(_ITEMS.get(kind, ""))
    item_count = len(items) if isinstance(items, list) else None
    ref = _str(body.get("incident_uuid"), 128) if kind == "sp-blocks" else None
    with transaction(con):
        latest = con.execute(
            "SELECT id, CAST(body AS VARCHAR) FROM agent_reports WHERE node_uuid = ? AND kind = ? "
            "ORDER BY id DESC LIMIT 1",
            [str(node_uuid), kind],
        ).fetchone()
        if latest is not None and latest[1] == text:
            con.execute(
                "UPDATE agent_reports SET repeats = repeats + 1, "
                "last_received_at = greatest(last_received_at, ?) WHERE id = ?",
                [now, latest[0]],
            )
            return int(latest[0]), True
        row = con.execute(
            "INSERT INTO agent_reports (workspace_uuid, node_uuid, kind, received_at, "
            "last_received_at, incident_ref, item_count, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [str(ws_uuid), str(node_uuid), kind, now, now, ref, item_count, text],
        ).fetchone()
        assert row is not None
        report_id = int(row[0])
        if random.random() < _PRUNE_CHANCE:  # noqa: S311 (not security-relevant)
            con.execute(
                "DELETE FROM agent_reports WHERE node_uuid = ? AND kind = ? AND id <= ("
                "SELECT coalesce(min(id), 0) - 1 FROM (SELECT id FROM agent_reports "
                "WHERE node_uuid = ? AND kind = ? ORDER BY id DESC LIMIT ?))",
                [str(node_uuid), kind, str(node_uuid), kind, REPORTS_KEPT_PER_KIND],
            )
    return report_id, False


_SELECT = (
    "SELECT r.id, r.node_uuid, r.kind, r.received_at, r.last_received_at, r.repeats, "
    "r.incident_ref, r.item_count, r.body FROM agent_reports r JOIN nodes n "
    "ON n.uuid = r.node_uuid AND n.workspace_uuid = r.workspace_uuid AND n.deleted_at IS NULL "
    "WHERE r.workspace_uuid = ?"
)


def _decode(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        if isinstance(row["body"], str):
            row["body"] = orjson.loads(row["body"])
        row["summary"] = summarize(row["kind"], row["body"])
    return rows


def list_reports(
    con: Connection,
    ws_uuid: uuid.UUID,
    node_uuid: uuid.UUID | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Reports of the workspace's live nodes (optionally one node, one kind), newest first."""
    where = ""
    params: list[Any] = [str(ws_uuid)]
    if node_uuid is not None:
        where += " AND r.node_uuid = ?"
        params.append(str(node_uuid))
    if kind is not None:
        where += " AND r.kind = ?"
        params.append(kind)
    total_row = con.execute(f"SELECT count(*) FROM ({_SELECT}{where})", params).fetchone()
    total = int(total_row[0]) if total_row else 0
    rows = rows_as_dicts(
        con.execute(
            f"{_SELECT}{where} ORDER BY r.id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
    )
    return _decode(rows), total


def latest_reports(
    con: Connection, ws_uuid: uuid.UUID, node_uuid: uuid.UUID
) -> dict[str, dict[str, Any] | None]:
    """The node's newest report of every kind (null for a kind never reported);
    ``NotFound`` unless the node is a live node of the workspace."""
    node = con.execute(
        "SELECT 1 FROM nodes WHERE uuid = ? AND workspace_uuid = ? AND deleted_at IS NULL",
        [str(node_uuid), str(ws_uuid)],
    ).fetchone()
    if node is None:
        raise NotFound("node not found")
    rows = rows_as_dicts(
        con.execute(
            f"{_SELECT} AND r.node_uuid = ? AND r.id IN (SELECT max(id) FROM agent_reports "
            "WHERE node_uuid = ? GROUP BY kind)",
            [str(ws_uuid), str(node_uuid), str(node_uuid)],
        )
    )
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(REPORT_KINDS)
    for row in _decode(rows):
        out[row["kind"]] = row
    return out
