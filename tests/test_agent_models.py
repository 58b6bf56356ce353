"""The Agent API's payload models (``api/agentapi/models.py``, docs/agent-api.md §7.1, §5.3,
§10.6) against the hand-written checks that still run where speed matters, and the incident
rules of ``detect/agent_incidents.py`` against the store's vocabulary.

The metrics post keeps its hand-written reading (``hotpath.metrics_row``) on the hot path; the
model declares the same contract. These tests prove that the two accept and refuse the same
bodies, with the same answer, and read the same figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from api.agentapi.hotpath import metrics_row
from api.agentapi.models import CommandAck, Heartbeat, Metrics
from api.errors import ApiError
from api.models import validate
from detect import agent_incidents
from store.incidents import SEVERITIES

NOW = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
NODE = "00000000-0000-4000-8000-000000000001"

# what an agent, a broken agent or a fuzzer may put in a number field
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
METRIC_KEYS = ("pps", "bps", "tcp_pct", "udp_pct", "icmp_pct", "conn_count", "avg_pps", "extra")
metrics_bodies = st.dictionaries(st.sampled_from(METRIC_KEYS), values, max_size=len(METRIC_KEYS))


def _answer(run: Any) -> tuple[str, Any]:
    try:
        return "ok", run()
    except ApiError as err:
        return "refused", (err.status, err.code, err.message, err.field)


@given(body=metrics_bodies)
@example(body={})
@example(body={"pps": 1})
@example(body={"pps": True, "bps": 1})
@example(body={"pps": -1.0, "bps": "x"})
@example(body={"pps": 0, "bps": 0, "tcp_pct": 250, "conn_count": 2**64})
def test_the_metrics_model_and_the_hot_path_check_agree(body: dict[str, Any]) -> None:
    fast = _answer(lambda: metrics_row(body, NODE, NOW))
    typed = _answer(lambda: validate(Metrics, body))
    assert fast[0] == typed[0]
    if fast[0] == "refused":
        assert fast[1] == typed[1]
        return
    row, model = fast[1], typed[1]
    assert (row["pps"], row["bps"]) == (model.pps, model.bps)
    for proto in ("tcp", "udp", "icmp"):
        share = getattr(model, f"{proto}_pct")
        assert (row[f"{proto}_pps"] is None) == (share is None)
    assert (row["conn_count"] is None) == (model.conn_count is None)


@given(body=st.dictionaries(st.sampled_from(("command_id", "status", "error")), values))
@example(body={"command_id": " 42 "})
@example(body={"command_id": "\u00b2"})  # a digit that int() cannot read
def test_command_ack_reads_an_integer_id_or_refuses(body: dict[str, Any]) -> None:
    kind, out = _answer(lambda: validate(CommandAck, body))
    raw = body.get("command_id")
    if isinstance(raw, str) and raw.strip().isdecimal():
        raw = int(raw.strip())
    usable = isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 2**63
    assert (kind == "ok") == usable
    if kind == "ok":
        assert out.command_id == raw and len(out.status) <= 32
    else:
        assert out == (400, "invalid_parameter", "command_id must be an integer", "command_id")


@given(body=st.dictionaries(st.text(max_size=20), values, max_size=6))
def test_a_heartbeat_is_never_refused(body: dict[str, Any]) -> None:
    beat = validate(Heartbeat, body)
    assert beat.flow_active is (body.get("flow_active") is True)


def test_the_rules_use_the_stores_severities() -> None:
    assert agent_incidents.SEVERITIES == SEVERITIES
    assert agent_incidents.derive_severity(2e6, 0, 0, "udp_flood") == "critical"
    assert agent_incidents.derive_severity(0, 0, 150, "http_flood") == "medium"
