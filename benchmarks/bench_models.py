"""Typed models on the hot path: today's hand-written checks vs pydantic v2 vs msgspec.

    .venv/bin/python -m benchmarks.bench_models                 # a few seconds
    .venv/bin/python -m benchmarks.bench_models --rounds 9 --number 20000

Three cases, each the work one request does between the raw body and the answer's bytes:

* ``metrics``: an ftagent metrics POST (``/api/v1/agent/metrics``): decode the JSON body,
  validate it (``pps``/``bps`` finite non-negative numbers, the protocol shares and
  ``conn_count`` tolerated when unusable), build the lake row as ``metrics_row`` does, and
  encode the answer ``{"ok": true}``.
* ``heartbeat``: an ftagent heartbeat (``/api/v1/agent/heartbeat``): decode, validate the
  fields the server reads (version, update error, retry queue, flow and mirror flags), encode
  the body again as the stored status text, and encode the answer.
* ``nodes``: the REST answer of ``GET /api/v1/nodes?limit=100``: build 100 node objects from
  the rows the repository returns (UUIDs, aware datetimes, the decoded heartbeat) and encode the
  page with the error-free envelope.

Each library runs the same semantics on the same bodies (the script checks that the three give
equal results before timing). "today" is ``orjson`` plus the checks the Agent API had then
(the answer there is a prebuilt constant; here each variant encodes it, so the cases compare
like for like). The bodies come from a fixed seed. Timing: ``--rounds`` rounds of ``--number``
calls each, the best round's mean is reported (the least disturbed by other processes on a shared
machine) with the median round beside it; ratios are against "today" within the same run. Nothing
is asserted.

A fourth case times the Agent API as it is served (``api/agentapi``): the hand-written metrics
reading (``hotpath.metrics_row``) alone, and with the declared model (``models.Metrics``)
validated in front of it, as it would be if the model ran on the hot path.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from api.agentapi.hotpath import metrics_row
from api.agentapi.models import Metrics
from api.models import validate

SEED = 20_260_314
NOW = datetime(2026, 8, 1, 9, 0, 0, tzinfo=UTC)
_JSON_OPTS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS | orjson.OPT_NON_STR_KEYS


# --------------------------------------------------------------------------- bodies


def metrics_body(rng: random.Random) -> bytes:
    """An ftagent metrics post (docs/agent-api.md §7.1) as the agent sends it."""
    pps = rng.uniform(1e3, 7e6)
    tcp = rng.uniform(0, 100)
    udp = rng.uniform(0, 100 - tcp)
    return orjson.dumps(
        {
            "pps": round(pps, 1),
            "bps": round(pps * rng.uniform(400, 1400) * 8, 1),
            "tcp_pct": round(tcp, 1),
            "udp_pct": round(udp, 1),
            "icmp_pct": round(100 - tcp - udp, 1),
            "conn_count": rng.randrange(0, 50_000),
            "threshold": round(rng.uniform(1e4, 2e5), 1),
            "avg_pps": round(pps * rng.uniform(0.8, 1.0), 1),
            "samples": 5,
        }
    )


def heartbeat_body(rng: random.Random) -> bytes:
    """An ftagent heartbeat (§6.1) of a host agent with one busy interface."""
    return orjson.dumps(
        {
            "version": "1.9.65",
            "baseline_ready": True,
            "baseline_quality": "high",
            "baseline_warmup_active": False,
            "baseline_total_samples": 86400,
            "baseline_avg_pps": round(rng.uniform(1e3, 5e4), 1),
            "baseline_p99_pps": round(rng.uniform(5e4, 1e5), 1),
            "baseline_hourly_ready": True,
            "baseline_current_hour_p99": round(rng.uniform(4e4, 9e4), 1),
            "circuit_breaker": "closed",
            "retry_queue_size": rng.choice([0, 0, 0, 3]),
            "gre_dedup_enabled": False,
            "hypervisor_mode": False,
            "pcap_active": True,
            "flow_active": rng.random() < 0.3,
            "interface": "enp1s0f0",
            "available_interfaces": [
                {
                    "name": f"enp1s0f{i}",
                    "rx_bytes": rng.randrange(10**12, 10**13),
                    "tx_bytes": rng.randrange(10**12, 10**13),
                    "has_traffic": i == 0,
                }
                for i in range(2)
            ],
            "zero_traffic_warning": False,
            "src_ip_overflow": False,
            "src_ip_count": rng.randrange(100, 5000),
            "pkt_samples_count": rng.randrange(10, 500),
        }
    )


def node_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """``store.nodes.list_nodes`` rows: what DuckDB hands back, after its JSON columns are
    decoded. Times are whole seconds: today ``orjson.OPT_OMIT_MICROSECONDS`` drops the rest when
    encoding, and neither library has that option (a model would truncate in a serializer or the
    query would), so the cost of truncating is left out of every variant alike."""
    rows = []
    for i in range(n):
        created = NOW - timedelta(days=rng.randrange(1, 400), seconds=rng.randrange(86400))
        seen = NOW - timedelta(seconds=rng.randrange(0, 300))
        heartbeat = orjson.loads(heartbeat_body(rng)) if rng.random() < 0.9 else None
        rows.append(
            {
                "uuid": uuid.UUID(int=rng.getrandbits(128)),
                "name": f"edge-{i:03d}",
                "ip": f"203.0.{i // 250}.{i % 250 + 1}",
                "location": rng.choice(["fra1", "ams2", None]),
                "os": rng.choice(["Debian 13", "Ubuntu 26.04", None]),
                "interface": "enp1s0f0",
                "priority": rng.choice(["production", "staging", "development"]),
                "status": rng.choice(["online", "online", "elevated", "offline", "attack"]),
                "last_seen": seen,
                "last_pps": round(rng.uniform(1e3, 1e6), 1),
                "last_bps": round(rng.uniform(1e7, 1e10), 1),
                "agent_version": "1.9.65",
                "last_heartbeat_at": seen,
                "agent_status": heartbeat,
                "agent_update_error": None,
                "agent_update_error_at": None,
                "sp_enabled": rng.random() < 0.5,
                "sp_sensitivity": "standard",
                "sp_response_mode": "full",
                "service_ports": [{"protocol": "tcp", "port_value": "443"}],
                "active_incidents": rng.choice([0, 0, 0, 1]),
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


# --------------------------------------------------------------------------- today


def _num(value: Any) -> float | None:
    """``detect.agent_incidents.num``: a finite non-negative number, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) and out >= 0 else None


def _row(
    node: str, pps: float, bps: float, tcp: Any, udp: Any, icmp: Any, conn: Any
) -> dict[str, Any]:
    """The lake row of ``metrics_row`` from checked figures (shares and count still raw)."""
    row: dict[str, Any] = {"node_uuid": node, "source": "ftagent", "time": NOW}
    row["pps"], row["bps"] = pps, bps
    for proto, raw in (("tcp", tcp), ("udp", udp), ("icmp", icmp)):
        share = _num(raw)
        row[f"{proto}_pps"] = None if share is None else pps * (min(share, 100.0) / 100.0)
    count = _num(conn)
    row["conn_count"] = None if count is None else int(min(count, 2**62))
    return row


def today_metrics(raw: bytes, node: str) -> tuple[dict[str, Any], bytes]:
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    pps, bps = _num(body.get("pps")), _num(body.get("bps"))
    if pps is None or bps is None:
        raise ValueError("pps and bps must be non-negative numbers")
    row = _row(
        node,
        pps,
        bps,
        body.get("tcp_pct"),
        body.get("udp_pct"),
        body.get("icmp_pct"),
        body.get("conn_count"),
    )
    return row, orjson.dumps({"ok": True})


def _version(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    return value


def today_heartbeat(raw: bytes) -> tuple[tuple[Any, ...], bytes, bytes]:
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    version = _version(body.get("version", body.get("current_version")))
    error = body.get("update_error")
    queued = body.get("retry_queue_size")
    if isinstance(queued, bool) or not isinstance(queued, int):
        queued = None
    flow = body.get("flow_active") is True or body.get("mirror_flow_only") is True
    mirror = body.get("mirror_mode") is True
    seen = (version, error if isinstance(error, str) else None, queued, flow, mirror)
    stored = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    return seen, stored, orjson.dumps({"ok": True})


def today_nodes(rows: list[dict[str, Any]]) -> bytes:
    page = {"ok": True, "nodes": rows, "total": 1234, "limit": len(rows), "offset": 0}
    return orjson.dumps(page, option=_JSON_OPTS)


# --------------------------------------------------------------------------- pydantic v2

# Strict: no "1" for 1, no 1 for true (today's checks refuse both); extra keys are ignored on
# the agent bodies (the agent sends more than the server reads) and kept for the heartbeat,
# which is stored as it came.


def _lenient_number(value: Any) -> float | None:
    return _num(value)


def _lenient_version(value: Any) -> str | None:
    return _version(value)


LenientNumber = Annotated[float | None, pydantic.BeforeValidator(_lenient_number)]


class PdMetrics(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    pps: Annotated[float, Field(ge=0)]
    bps: Annotated[float, Field(ge=0)]
    tcp_pct: LenientNumber = None
    udp_pct: LenientNumber = None
    icmp_pct: LenientNumber = None
    conn_count: LenientNumber = None


class PdOk(BaseModel):
    ok: bool = True


_PD_OK = PdOk()


def pydantic_metrics(raw: bytes, node: str) -> tuple[dict[str, Any], bytes]:
    body = PdMetrics.model_validate_json(raw)
    row = _row(node, body.pps, body.bps, body.tcp_pct, body.udp_pct, body.icmp_pct, body.conn_count)
    return row, _PD_OK.model_dump_json().encode()


def _lenient_count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PdHeartbeat(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    version: Annotated[str | None, pydantic.BeforeValidator(_lenient_version)] = None
    current_version: Annotated[str | None, pydantic.BeforeValidator(_lenient_version)] = None
    update_error: Annotated[
        str | None, pydantic.BeforeValidator(lambda v: v if isinstance(v, str) else None)
    ] = None
    retry_queue_size: Annotated[int | None, pydantic.BeforeValidator(_lenient_count)] = None
    flow_active: Annotated[bool, pydantic.BeforeValidator(lambda v: v is True)] = False
    mirror_flow_only: Annotated[bool, pydantic.BeforeValidator(lambda v: v is True)] = False
    mirror_mode: Annotated[bool, pydantic.BeforeValidator(lambda v: v is True)] = False


def pydantic_heartbeat(raw: bytes) -> tuple[tuple[Any, ...], bytes, bytes]:
    # the stored text is the body as sent: its original values (a wrong-typed ``version`` too)
    # are in the dict, so it is validated from the dict and the dict is encoded
    body = orjson.loads(raw)
    hb = PdHeartbeat.model_validate(body)
    version = hb.version if "version" in body else hb.current_version
    seen = (
        version,
        hb.update_error,
        hb.retry_queue_size,
        hb.flow_active or hb.mirror_flow_only,
        hb.mirror_mode,
    )
    stored = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    return seen, stored, _PD_OK.model_dump_json().encode()


class PdServicePort(BaseModel):
    protocol: str
    port_value: str


class PdNode(BaseModel):
    uuid: uuid.UUID
    name: str
    ip: str
    location: str | None
    os: str | None
    interface: str
    priority: str
    status: str
    last_seen: datetime | None
    last_pps: float | None
    last_bps: float | None
    agent_version: str | None
    last_heartbeat_at: datetime | None
    agent_status: dict[str, Any] | None
    agent_update_error: str | None
    agent_update_error_at: datetime | None
    sp_enabled: bool
    sp_sensitivity: str
    sp_response_mode: str
    service_ports: list[PdServicePort]
    active_incidents: int
    created_at: datetime
    updated_at: datetime


class PdNodePage(BaseModel):
    ok: bool = True
    nodes: list[PdNode]
    total: int
    limit: int
    offset: int


def pydantic_nodes(rows: list[dict[str, Any]]) -> bytes:
    # answers are built from trusted rows: ``model_validate`` still checks every field, which
    # is what a response model costs when it is used as one (``model_construct`` would skip it)
    nodes = [PdNode.model_validate(r) for r in rows]
    page = PdNodePage(nodes=nodes, total=1234, limit=len(rows), offset=0)
    return page.model_dump_json().encode()


class PdServicePortDict(TypedDict):
    protocol: str
    port_value: str


class PdNodeDict(TypedDict):
    """The same node as a TypedDict: an answer built from trusted rows is only serialized."""

    uuid: uuid.UUID
    name: str
    ip: str
    location: str | None
    os: str | None
    interface: str
    priority: str
    status: str
    last_seen: datetime | None
    last_pps: float | None
    last_bps: float | None
    agent_version: str | None
    last_heartbeat_at: datetime | None
    agent_status: dict[str, Any] | None
    agent_update_error: str | None
    agent_update_error_at: datetime | None
    sp_enabled: bool
    sp_sensitivity: str
    sp_response_mode: str
    service_ports: list[PdServicePortDict]
    active_incidents: int
    created_at: datetime
    updated_at: datetime


class PdNodePageDict(TypedDict):
    ok: bool
    nodes: list[PdNodeDict]
    total: int
    limit: int
    offset: int


_PD_PAGE_DICT = TypeAdapter(PdNodePageDict)


def pydantic_nodes_serialize(rows: list[dict[str, Any]]) -> bytes:
    page = {"ok": True, "nodes": rows, "total": 1234, "limit": len(rows), "offset": 0}
    return _PD_PAGE_DICT.dump_json(page)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- msgspec

# msgspec has no per-field "before" hook: a tolerated field is declared as ``Any`` and checked
# after decoding, which is also what the hand-written code does.


class MsMetrics(msgspec.Struct):
    pps: Annotated[float, msgspec.Meta(ge=0)]
    bps: Annotated[float, msgspec.Meta(ge=0)]
    tcp_pct: Any = None
    udp_pct: Any = None
    icmp_pct: Any = None
    conn_count: Any = None


class MsOk(msgspec.Struct):
    ok: bool = True


_MS_METRICS = msgspec.json.Decoder(MsMetrics)
_MS_ENCODER = msgspec.json.Encoder()
_MS_OK = MsOk()


def msgspec_metrics(raw: bytes, node: str) -> tuple[dict[str, Any], bytes]:
    body = _MS_METRICS.decode(raw)
    if not (math.isfinite(body.pps) and math.isfinite(body.bps)):
        raise ValueError("pps and bps must be finite")
    row = _row(node, body.pps, body.bps, body.tcp_pct, body.udp_pct, body.icmp_pct, body.conn_count)
    return row, _MS_ENCODER.encode(_MS_OK)


class MsHeartbeat(msgspec.Struct):
    version: Any = None
    current_version: Any = None
    update_error: Any = None
    retry_queue_size: Any = None
    flow_active: Any = None
    mirror_flow_only: Any = None
    mirror_mode: Any = None


_MS_ANY = msgspec.json.Decoder()


def msgspec_heartbeat(raw: bytes) -> tuple[tuple[Any, ...], bytes, bytes]:
    # a Struct drops unknown keys; the stored status is the whole body, so it is decoded once to
    # a dict and the typed view is converted from that dict
    body = _MS_ANY.decode(raw)
    hb = msgspec.convert(body, MsHeartbeat)
    version = _version(hb.version if "version" in body else hb.current_version)
    queued = hb.retry_queue_size
    if isinstance(queued, bool) or not isinstance(queued, int):
        queued = None
    seen = (
        version,
        hb.update_error if isinstance(hb.update_error, str) else None,
        queued,
        hb.flow_active is True or hb.mirror_flow_only is True,
        hb.mirror_mode is True,
    )
    return seen, _MS_ENCODER.encode(body), _MS_ENCODER.encode(_MS_OK)


class MsServicePort(msgspec.Struct):
    protocol: str
    port_value: str


class MsNode(msgspec.Struct):
    uuid: uuid.UUID
    name: str
    ip: str
    location: str | None
    os: str | None
    interface: str
    priority: str
    status: str
    last_seen: datetime | None
    last_pps: float | None
    last_bps: float | None
    agent_version: str | None
    last_heartbeat_at: datetime | None
    agent_status: dict[str, Any] | None
    agent_update_error: str | None
    agent_update_error_at: datetime | None
    sp_enabled: bool
    sp_sensitivity: str
    sp_response_mode: str
    service_ports: list[MsServicePort]
    active_incidents: int
    created_at: datetime
    updated_at: datetime


class MsNodePage(msgspec.Struct):
    nodes: list[MsNode]
    total: int
    limit: int
    offset: int
    ok: bool = True


def msgspec_nodes(rows: list[dict[str, Any]]) -> bytes:
    # ``convert`` checks every field like pydantic's ``model_validate`` above
    nodes = msgspec.convert(rows, list[MsNode])
    page = MsNodePage(nodes=nodes, total=1234, limit=len(rows), offset=0)
    return _MS_ENCODER.encode(page)


def msgspec_nodes_serialize(rows: list[dict[str, Any]]) -> bytes:
    # the rows as they are, encoded by msgspec (no Struct: nothing typed, nothing checked)
    page = {"ok": True, "nodes": rows, "total": 1234, "limit": len(rows), "offset": 0}
    return _MS_ENCODER.encode(page)


# --------------------------------------------------------------------------- timing


def _served_metrics(raw: bytes, node: str) -> dict[str, Any]:
    return metrics_row(orjson.loads(raw), node, NOW)


def _model_metrics(raw: bytes, node: str) -> dict[str, Any]:
    body = orjson.loads(raw)
    validate(Metrics, body)
    return metrics_row(body, node, NOW)


def _time(fn: Callable[[], object], rounds: int, number: int) -> tuple[float, float]:
    """(best, median) seconds per call over ``rounds`` rounds of ``number`` calls."""
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter() - start) / number)
    return min(per_call), statistics.median(per_call)


def _cases(rng: random.Random) -> dict[str, dict[str, Callable[[], object]]]:
    node = str(uuid.UUID(int=rng.getrandbits(128)))
    metrics = [metrics_body(rng) for _ in range(64)]
    beats = [heartbeat_body(rng) for _ in range(64)]
    rows = node_rows(rng, 100)

    # same results from the three, before anything is timed
    for raw in metrics:
        want = today_metrics(raw, node)
        assert pydantic_metrics(raw, node) == want, raw
        assert msgspec_metrics(raw, node) == want, raw
    for raw in beats:
        seen, stored, ok = today_heartbeat(raw)
        for other in (pydantic_heartbeat(raw), msgspec_heartbeat(raw)):
            assert other[0] == seen and orjson.loads(other[1]) == orjson.loads(stored), raw
            assert orjson.loads(other[2]) == orjson.loads(ok)
    want_page = orjson.loads(today_nodes(rows))
    assert orjson.loads(pydantic_nodes(rows)) == want_page
    assert orjson.loads(msgspec_nodes(rows)) == want_page
    assert orjson.loads(pydantic_nodes_serialize(rows)) == want_page
    assert orjson.loads(msgspec_nodes_serialize(rows)) == want_page

    def cycle(bodies: list[bytes], fn: Callable[..., object], *args: Any) -> Callable[[], object]:
        it = iter(range(1 << 62))
        count = len(bodies)
        return lambda: fn(bodies[next(it) % count], *args)

    return {
        "metrics POST (decode+validate+row+answer)": {
            "today": cycle(metrics, today_metrics, node),
            "pydantic": cycle(metrics, pydantic_metrics, node),
            "msgspec": cycle(metrics, msgspec_metrics, node),
        },
        "heartbeat (decode+validate+status+answer)": {
            "today": cycle(beats, today_heartbeat),
            "pydantic": cycle(beats, pydantic_heartbeat),
            "msgspec": cycle(beats, msgspec_heartbeat),
        },
        "api/agentapi metrics (decode+check+row)": {
            "metrics_row (served)": cycle(metrics, _served_metrics, node),
            "validate(Metrics) + metrics_row": cycle(metrics, _model_metrics, node),
        },
        "GET /api/v1/nodes, 100 nodes (build+encode)": {
            "today": lambda: today_nodes(rows),
            "pydantic": lambda: pydantic_nodes(rows),
            "msgspec": lambda: msgspec_nodes(rows),
            "pydantic, serialize only (TypedDict)": lambda: pydantic_nodes_serialize(rows),
            "msgspec, encode dicts": lambda: msgspec_nodes_serialize(rows),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per variant (7)")
    parser.add_argument("--number", type=int, default=10_000, help="calls per round (10000)")
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()}, orjson {orjson.__version__}, "
        f"pydantic {pydantic.VERSION} (core {pydantic.__version__ and _core_version()}), "
        f"msgspec {msgspec.__version__}; seed {SEED}; {args.rounds} rounds x {args.number}"
    )
    for case, variants in _cases(random.Random(SEED)).items():
        number = max(1, args.number // 100) if "100 nodes" in case else args.number
        print(f"\n{case}")
        head = f"{'best ns/op':>12} {'median ns/op':>13} {'ops/s':>11} {'x today':>8}"
        print(f"  {'variant':<38} {head}")
        base = None
        for name, fn in variants.items():
            best, median = _time(fn, args.rounds, number)
            base = base or best
            print(
                f"  {name:<38} {best * 1e9:>12,.0f} {median * 1e9:>13,.0f} "
                f"{1 / best:>11,.0f} {best / base:>8.2f}"
            )


def _core_version() -> str:
    import pydantic_core

    return str(pydantic_core.__version__)


if __name__ == "__main__":
    main()
