"""Shared pieces of the property tests (``test_properties.py``, ``test_config_properties.py``,
``test_http_properties.py`` and the model tests that borrow them): the hypothesis settings, the
strategies for tricky text, JSON values, node bodies and channel configurations, and the check
of an HTTP answer's JSON envelope.

Every property is bounded (max_examples <= 100, deadline=None) and derandomized, so the tests
run the same way every time and quickly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from notify import CHANNEL_TYPES

PURE = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LIVE = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # the project's own definition (store/validate.py)

# --- strategies -------------------------------------------------------------------------------

text = st.text(max_size=40)
nosurrogates = st.characters(blacklist_categories=("Cs",))
clean_text = st.text(alphabet=nosurrogates, max_size=30)
SUFFIXES = ["", "", "", "\n", "\r\n", "\t", "\x00", "\x7f", " ", "\u2028", "%25"]
SEEDS = [
    "eth0",
    "bond0.100",
    "edge-1",
    "192.0.2.1",
    "2001:db8::1",
    "fe80::1%eth0",
    "production",
    "staging",
    "standard",
    "full",
    "tcp",
    "80",
    "27015-27017",
    "80,443",
    "0",
    "65536",
    "ops@example.com",
    "+15551234567",
    "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "-1001234567",
    "@channel_name",
    "https://hooks.example.com/services/T0/B0/XXXX",
    "https://a.io",
    "http://alertmanager:9093",
    "us",
    "datadoghq.eu",
    "X-Api-Key",
    "webhook",
    "telegram",
    "pro",
    "free",
]
tricky_text = st.one_of(
    text,
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(["", " "]),
        st.sampled_from(SEEDS),
        st.sampled_from(SUFFIXES),
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    tricky_text,
)


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # a named function, not a lambda: hypothesis inspects the source of ``extend`` to check
    # that it uses its argument, and that check can misread a lambda (a deprecation warning,
    # an error under -W error)
    return st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4)


json_values = st.recursive(json_scalars, _json_containers, max_leaves=10)
any_values = st.one_of(
    json_values,
    st.binary(max_size=16),
    st.complex_numbers(allow_nan=False),
    st.sets(st.integers(), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.just(object()),
    st.floats(),  # nan and infinities too
)

NODE_KEYS = [
    "name",
    "ip",
    "location",
    "os",
    "interface",
    "priority",
    "sp_enabled",
    "sp_sensitivity",
    "sp_response_mode",
    "service_ports",
    "uuid",
    "status",
    "api_key",
]
port_items = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "protocol": st.one_of(tricky_text, json_scalars),
            "port_value": st.one_of(tricky_text, st.integers(-5, 70000), json_scalars),
            "label": st.one_of(tricky_text, json_scalars),
            "extra": json_scalars,
        },
    ),
    json_values,
)
node_values = st.one_of(json_values, tricky_text, st.lists(port_items, max_size=4))
node_bodies = st.dictionaries(
    st.one_of(st.sampled_from(NODE_KEYS), st.text(max_size=8)), node_values, max_size=8
)

CHANNEL_KEYS = sorted(
    {k for t in CHANNEL_TYPES.values() for k in (*t.required, *t.optional, *t.aliases)}
)
channel_values = st.one_of(
    json_values,
    tricky_text,
    st.dictionaries(
        st.one_of(st.sampled_from(["X-Api-Key", "Authorization", "X-A\n"]), text),
        st.one_of(tricky_text, json_scalars),
        max_size=3,
    ),
)
channel_configs = st.dictionaries(
    st.one_of(st.sampled_from(CHANNEL_KEYS), st.text(max_size=8)), channel_values, max_size=5
)
channel_types = st.one_of(st.sampled_from(sorted(CHANNEL_TYPES)), tricky_text)


def strings_in(value: Any) -> list[str]:
    """Every string in a JSON-like value, dict keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_in(v)]
    return []


def assert_envelope(status: int, content_type: str, raw: bytes, what: str) -> Any:
    assert status < 500, (what, status, raw[:300])
    assert content_type.startswith("application/json"), (what, status, content_type)
    body = json.loads(raw)
    if 200 <= status < 300:
        assert body["ok"] is True, (what, body)
    else:
        assert 400 <= status < 500, (what, status)
        assert body["ok"] is False, (what, body)
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
        assert status != 429, "the property ran into the rate limit; lower max_examples"
    return body
