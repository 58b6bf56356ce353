"""Property tests (hypothesis) of the validators: ``store.validate`` and the node validators
only ever raise ``InvalidValue`` and accept only clean text, channel configurations raise only
``ChannelConfigError`` and come out canonical, and secrets are masked.

The configuration and the rate limiter are in ``test_config_properties.py``, the live HTTP API
in ``test_http_properties.py``; the shared strategies and settings in ``properties_support.py``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from notify import CHANNEL_TYPES, ChannelConfigError, mask_config, validate_channel_config
from store.errors import InvalidValue
from store.nodes import validate_node_changes, validate_node_fields
from store.validate import check_bool, check_choice, check_ip, check_optional_text, check_text

from .properties_support import (
    CHANNEL_KEYS,
    CONTROL,
    PURE,
    any_values,
    channel_configs,
    channel_types,
    json_values,
    node_bodies,
    strings_in,
    tricky_text,
)

# --- store.validate ---------------------------------------------------------------------------


@PURE
@given(value=any_values, max_len=st.integers(1, 200))
def test_check_text_raises_only_invalid_value(value: Any, max_len: int) -> None:
    try:
        out = check_text(value, "name", max_len)
    except InvalidValue as exc:
        assert exc.field == "name"
        return
    assert isinstance(out, str)
    assert out and out == out.strip()
    assert len(out) <= max_len
    assert not CONTROL.search(out)


@PURE
@given(value=any_values)
def test_check_optional_text_raises_only_invalid_value(value: Any) -> None:
    try:
        out = check_optional_text(value, "location")
    except InvalidValue as exc:
        assert exc.field == "location"
        return
    assert out is None or (isinstance(out, str) and out == out.strip() and not CONTROL.search(out))


@PURE
@given(value=st.one_of(any_values, st.ip_addresses().map(str)))
@example(value="fe80::1%eth0")
@example(value=" 192.0.2.1 ")
def test_check_ip_raises_only_invalid_value(value: Any) -> None:
    try:
        out = check_ip(value)
    except InvalidValue as exc:
        assert exc.field == "ip"
        return
    assert ipaddress.ip_address(out).compressed == out
    assert check_ip(out) == out  # normalised form is a fixed point


@PURE
@given(value=any_values, choices=st.lists(st.text(max_size=5), max_size=4).map(tuple))
def test_check_choice_and_bool_raise_only_invalid_value(
    value: Any, choices: tuple[str, ...]
) -> None:
    try:
        assert check_choice(value, "priority", choices) in choices
    except InvalidValue as exc:
        assert exc.field == "priority"
    try:
        assert check_bool(value, "sp_enabled") is value
    except InvalidValue as exc:
        assert exc.field == "sp_enabled"


# --- store.nodes validators -------------------------------------------------------------------


@PURE
@given(body=node_bodies)
@example(body={"name": "n", "ip": "192.0.2.1", "interface": "eth0\n"})
@example(body={"service_ports": [{"port_value": 10**30}]})
def test_node_validators_raise_only_invalid_value(body: dict[str, Any]) -> None:
    for fn in (validate_node_fields, validate_node_changes):
        try:
            out = fn(body)
        except InvalidValue as exc:
            assert exc.field is None or isinstance(exc.field, str)
            continue
        assert isinstance(out, dict)
        if fn is validate_node_changes:
            assert set(out) <= set(body)


@PURE
@given(body=node_bodies)
@example(body={"name": "n", "ip": "192.0.2.1", "interface": "eth0\n"})
@example(body={"service_ports": [{"port_value": "80\n"}]})
def test_validated_node_fields_hold_no_control_characters(body: dict[str, Any]) -> None:
    """Whatever the validators accept is clean: no control characters in any stored text."""
    for fn in (validate_node_fields, validate_node_changes):
        try:
            out = fn(body)
        except InvalidValue:
            continue
        if isinstance(out.get("service_ports"), str):
            out = {**out, "service_ports": json.loads(out["service_ports"])}
        bad = [s for s in strings_in(out) if CONTROL.search(s)]
        assert bad == [], f"{fn.__name__} accepted {bad!r}"


_ASCII_PORTS = re.compile(r"[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*", re.ASCII)


@PURE
@given(
    port_value=st.one_of(
        tricky_text,
        st.integers(-5, 70000),
        st.lists(st.integers(0, 70000), min_size=1, max_size=3).map(
            lambda ps: ",".join(map(str, ps))
        ),
    )
)
@example(port_value="\u0668\u0660")  # Arabic-Indic "80"
@example(port_value="443\n")
def test_validated_service_ports_are_canonical(port_value: Any) -> None:
    try:
        out = validate_node_changes({"service_ports": [{"port_value": port_value}]})
    except InvalidValue as exc:
        assert exc.field == "service_ports"
        return
    (item,) = json.loads(out["service_ports"])
    assert _ASCII_PORTS.fullmatch(item["port_value"]), item
    for part in item["port_value"].split(","):
        bounds = [int(p) for p in part.split("-")]
        assert all(1 <= p <= 65535 for p in bounds) and bounds == sorted(bounds)


# --- notify -----------------------------------------------------------------------------------


@PURE
@given(channel_type=channel_types, config=st.one_of(channel_configs, json_values))
@example(channel_type="telegram", config={"bot_token": "123:" + "a" * 20, "chat_id": 2**64 - 1})
def test_channel_config_raises_only_channel_config_error(channel_type: str, config: Any) -> None:
    try:
        out = validate_channel_config(channel_type, config)
    except ChannelConfigError:
        return
    spec = CHANNEL_TYPES[channel_type]
    assert set(spec.required) <= set(out) <= set(spec.required) | set(spec.optional)
    assert validate_channel_config(channel_type, out) == out  # canonical form is a fixed point


@PURE
@given(channel_type=st.sampled_from(sorted(CHANNEL_TYPES)), config=channel_configs)
@example(
    channel_type="webhook",
    config={"url": "https://example.com/hook", "headers": {"X-Api-Key\n": "v"}},
)
@example(channel_type="sms", config={"phone": "+1\u0665\u0665\u0665\u0661\u0662\u0663\u0664"})
@example(channel_type="email", config={"email": "ops\x7f@example.com"})
def test_validated_channel_configs_are_clean(channel_type: str, config: Any) -> None:
    try:
        out = validate_channel_config(channel_type, config)
    except ChannelConfigError:
        return
    bad = [s for s in strings_in(out) if CONTROL.search(s)]
    assert bad == [], f"{channel_type} accepted {bad!r}"
    if "phone" in out:
        assert re.fullmatch(r"\+[1-9][0-9]{6,14}", out["phone"], re.ASCII), out["phone"]


secret_strings = st.one_of(
    st.text(min_size=1, max_size=60),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}{rest}",
        st.sampled_from(["http", "https"]),
        st.from_regex(r"[a-z]{1,10}(\.[a-z]{2,4})?", fullmatch=True),
        st.one_of(
            st.just(""), st.just("/"), st.from_regex(r"(/[A-Za-z0-9]{0,12}){0,3}", fullmatch=True)
        ),
    ),
)


@PURE
@given(
    channel_type=st.one_of(st.sampled_from(sorted(CHANNEL_TYPES)), st.just("unknown-type")),
    values=st.dictionaries(
        st.sampled_from(CHANNEL_KEYS),
        st.one_of(secret_strings, st.dictionaries(st.text(max_size=8), secret_strings, max_size=3)),
        max_size=6,
    ),
)
@example(channel_type="discord", values={"webhook_url": "https://a.io"})
@example(channel_type="slack", values={"webhook_url": "https://hooks.example.com"})
def test_mask_config_never_shows_a_secret_in_full(
    channel_type: str, values: dict[str, Any]
) -> None:
    spec = CHANNEL_TYPES.get(channel_type)
    secret_keys = spec.secrets if spec else frozenset(values)
    masked = mask_config(channel_type, values)
    assert set(masked) == set(values)
    for key, value in values.items():
        if key not in secret_keys:
            assert masked[key] == value
            continue
        if isinstance(value, dict):
            assert set(masked[key]) == set(value)
            assert all(v == "****" for v in masked[key].values())
            continue
        if "*" in value:
            continue  # a secret made of asterisks trivially "appears" in any mask
        assert value not in str(masked[key]), (key, value, masked[key])
