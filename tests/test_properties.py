"""Property tests (hypothesis): the validators only ever raise their typed errors, secrets are
masked, the rate limiter keeps its bound, the configuration round-trips, and the live HTTP API
answers arbitrary input with a 2xx or a 4xx JSON envelope, never a 5xx, without touching data
that existed before.

Every property is bounded (max_examples <= 100, deadline=None) and derandomized, so the file
runs the same way every time and quickly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import ipaddress
import json
import math
import re
import tempfile
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.config import Config, ConfigError, apply_overrides, dump_toml, load_config
from api.ratelimit import FixedWindowLimiter
from notify import CHANNEL_TYPES, ChannelConfigError, mask_config, validate_channel_config
from store.errors import InvalidValue
from store.nodes import validate_node_changes, validate_node_fields
from store.validate import check_bool, check_choice, check_ip, check_optional_text, check_text

from .conftest import Server, new_workspace

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
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(tricky_text, c, max_size=4),
    max_leaves=10,
)
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


# --- configuration ----------------------------------------------------------------------------

SECTIONS = [f.name for f in dataclasses.fields(Config)]
SETTING_KEYS = sorted(
    {f.name for sec in SECTIONS for f in dataclasses.fields(getattr(Config(), sec))}
)
toml_text = st.text(alphabet=nosurrogates, max_size=20)
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    toml_text,
    st.sampled_from(["info", "debug", "zstd", "lz4", "none", "pro", "1GB", "./var", ""]),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(toml_text, c, max_size=3),
    max_leaves=6,
)
toml_tables = st.dictionaries(
    st.one_of(st.sampled_from(SETTING_KEYS), toml_text), toml_values, max_size=5
)
toml_trees = st.dictionaries(
    st.one_of(st.sampled_from(SECTIONS), toml_text), st.one_of(toml_tables, toml_values), max_size=4
)


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return v.isoformat()  # a date


def to_toml(tree: dict[str, Any]) -> str:
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in tree.items() if not isinstance(v, dict)
    ]
    for k, v in tree.items():
        if isinstance(v, dict):
            lines.append(f"[{_toml_key(k)}]")
            lines.extend(f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"


def _load_bytes(data: bytes, environ: dict[str, str] | None = None) -> Config:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "floodwatch.toml"
        path.write_bytes(data)
        return load_config(path, environ=environ or {})


@PURE
@given(tree=toml_trees)
@example(tree={"server": {"port": "8080"}})
@example(tree={"server": 5})
@example(tree={"api": {"max_body_bytes": [1]}})
def test_load_config_raises_only_config_error_for_any_toml(tree: dict[str, Any]) -> None:
    import tomllib

    doc = to_toml(tree)
    assert tomllib.loads(doc) is not None  # the generator writes valid TOML
    try:
        cfg = _load_bytes(doc.encode())
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, Config)


@PURE
@given(data=st.binary(max_size=200))
@example(data=b"\xff\xfe[server]\n")
@example(data='[server]\nhost = "caf\xe9"\n'.encode("latin-1"))
def test_load_config_raises_only_config_error_for_any_bytes(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        _load_bytes(data)


env_keys = st.one_of(
    st.sampled_from(
        [
            f"FLOODWATCH_{sec.upper()}__{f.name.upper()}"
            for sec in SECTIONS
            for f in dataclasses.fields(getattr(Config(), sec))
        ]
    ),
    st.from_regex(r"FLOODWATCH_[A-Z_]{0,20}", fullmatch=True),
    st.text(max_size=12),
)
env_values = st.one_of(
    toml_text,
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["true", "off", "Yes", " 1 ", "1e3", "0x10", "1_000", "", "debug"]),
)


@PURE
@given(environ=st.dictionaries(env_keys, env_values, max_size=5))
def test_load_config_raises_only_config_error_for_any_environment(
    environ: dict[str, str],
) -> None:
    try:
        cfg = load_config(None, environ=environ)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, Config)


@PURE
@given(
    host=clean_text,
    data_dir=st.text(alphabet=nosurrogates, min_size=1, max_size=20),
    public_url=clean_text,
    database_file=st.text(alphabet=nosurrogates, min_size=1, max_size=20),
    memory_limit=st.sampled_from(["1GB", "512MB", "80%", "1.5 GiB"]),
    port=st.integers(0, 65535),
    timeout=st.floats(min_value=0, max_value=1e9),
)
@example(
    host="127.0.0.1",
    data_dir="a\nb",
    public_url="",
    database_file="x.duckdb",
    memory_limit="1GB",
    port=1,
    timeout=1.0,
)
def test_dump_toml_round_trips(
    host: str,
    data_dir: str,
    public_url: str,
    database_file: str,
    memory_limit: str,
    port: int,
    timeout: float,
) -> None:
    cfg = apply_overrides(
        Config(),
        "server",
        host=host,
        data_dir=data_dir,
        public_url=public_url,
        port=port,
        shutdown_timeout_secs=timeout,
    )
    cfg = apply_overrides(cfg, "store", database_file=database_file, memory_limit=memory_limit)
    text_out = dump_toml(cfg)
    try:
        loaded = _load_bytes(text_out.encode())
    except ConfigError as exc:
        raise AssertionError(f"dump_toml wrote TOML it cannot read back: {exc}") from None
    assert loaded == cfg


# --- rate limiter -----------------------------------------------------------------------------


@PURE
@given(
    limit=st.integers(1, 6),
    window=st.integers(1, 5),
    max_keys=st.integers(1, 4),
    steps=st.lists(
        st.tuples(
            st.sampled_from("abcde"),
            st.floats(min_value=0, max_value=3, allow_nan=False),
            st.booleans(),
        ),
        max_size=60,
    ),
    start=st.floats(min_value=0, max_value=2e9, allow_nan=False),
)
def test_fixed_window_limiter_never_exceeds_its_limit(
    limit: int,
    window: int,
    max_keys: int,
    steps: list[tuple[str, float, bool]],
    start: float,
) -> None:
    lim = FixedWindowLimiter(limit, window_secs=window, max_keys=max_keys)
    now = start
    allowed: Counter[tuple[str, int]] = Counter()
    # a model: the keys a window admitted (at most max_keys) and their counts
    admitted: dict[int, set[str]] = {}
    count: Counter[tuple[str, int]] = Counter()
    for key, dt, peek_first in steps:
        now += dt
        w = int(now // window)
        table = admitted.setdefault(w, set())
        if peek_first:
            p = lim.peek(key, now)
            assert p.allowed == (count[key, w] < limit)
            assert p.remaining == max(0, limit - count[key, w])
            assert p.reset == (w + 1) * window
        v = lim.hit(key, now)
        assert v.limit == limit
        assert v.reset == (w + 1) * window and v.reset > now
        assert v.retry_after(now) >= 1
        if key not in table and len(table) < max_keys:
            table.add(key)
        if key in table:
            count[key, w] += 1
            assert v.allowed == (count[key, w] <= limit)
            assert v.remaining == max(0, limit - count[key, w])
        else:  # the key table is full: new keys are refused, never tracked
            assert not v.allowed and v.remaining == 0
        if v.allowed:
            allowed[key, w] += 1
        assert allowed[key, w] <= limit  # the property itself


# --- the live HTTP API ------------------------------------------------------------------------


def _send(
    server: Server, method: str, path: str, token: str, body: bytes | None = None
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


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


class Seeded:
    """A fresh workspace with a node, a channel and a sub-workspace, and a snapshot of them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        ws = new_workspace(server)
        self.token = ws.token
        self.node = self.call("POST", "/api/v1/nodes", {"name": "seed", "ip": "192.0.2.50"})[
            "node"
        ]["uuid"]
        self.target = self.call("POST", "/api/v1/nodes", {"name": "target", "ip": "192.0.2.51"})[
            "node"
        ]["uuid"]
        self.call(
            "POST",
            "/api/v1/channels",
            {"name": "seed", "type": "email", "config": {"email": "ops@example.com"}},
        )
        self.call("POST", "/api/v1/workspaces", {"name": "seed-child"})
        self.before = self.snapshot()

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        status, _, raw = _send(self.server, method, path, self.token, body)
        assert 200 <= status < 300, (method, path, status, raw)
        return json.loads(raw)

    def snapshot(self) -> dict[str, Any]:
        return {
            "seed": self.call("GET", f"/api/v1/nodes/{self.node}")["node"],
            "channels": self.call("GET", "/api/v1/channels?limit=1")["channels"],
            "workspaces": self.call("GET", "/api/v1/workspaces?limit=1")["workspaces"],
            "workspace": {
                k: v
                for k, v in self.call("GET", "/api/v1/workspace")["workspace"].items()
                if k not in ("node_count", "sub_workspace_count")
            },
        }

    def send(self, method: str, path: str, body: bytes | None = None) -> Any:
        status, ctype, raw = _send(self.server, method, path, self.token, body)
        return status, assert_envelope(status, ctype, raw, f"{method} {path} {body!r:.200}")

    def assert_unchanged(self) -> None:
        assert self.snapshot() == self.before


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def bodies(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(_dumps),
        st.dictionaries(st.one_of(st.sampled_from(keys), text), values, max_size=7).map(_dumps),
    )


NODE_BODY_BYTES = bodies(NODE_KEYS, node_values)


def test_http_deploy_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(body=NODE_BODY_BYTES)
    @example(body=b"")
    @example(body=b"[]")
    @example(body=b'{"name": "x", "ip": "192.0.2.1", "interface": 5}')
    def prop(body: bytes) -> None:
        seeded.send("POST", "/api/deploy", body)

    prop()
    seeded.assert_unchanged()


def test_http_create_node_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(body=NODE_BODY_BYTES)
    @example(body=b'{"name": "seed", "ip": "192.0.2.1"}')  # duplicate name: 409
    def prop(body: bytes) -> None:
        status, _ = seeded.send("POST", "/api/v1/nodes", body)
        if body == b'{"name": "seed", "ip": "192.0.2.1"}':
            assert status == 409

    prop()
    seeded.assert_unchanged()


def test_http_patch_node_never_5xx_and_rejections_change_nothing(server: Server) -> None:
    seeded = Seeded(server)
    path = f"/api/v1/nodes/{seeded.target}"
    state = {"node": seeded.call("GET", path)["node"]}

    @LIVE
    @given(body=NODE_BODY_BYTES)
    @example(body=b'{"name": "seed"}')  # the other node's name: 409
    @example(body=b'{"uuid": "00000000-0000-0000-0000-000000000000"}')
    @example(body=b'{"service_ports": [{"port_value": "70000"}]}')
    def prop(body: bytes) -> None:
        status, _ = seeded.send("PATCH", path, body)
        now = seeded.call("GET", path)["node"]
        if status >= 400:
            assert now == state["node"], body  # a refused change changes nothing
        state["node"] = now

    prop()
    seeded.assert_unchanged()


CHANNEL_FIELDS = ["name", "type", "config", "enabled"]
channel_body_values = st.one_of(json_values, channel_types, channel_configs)


def test_http_create_channel_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(body=bodies(CHANNEL_FIELDS, channel_body_values))
    @example(body=b'{"name": "a", "type": "TELEGRAM", "config": {"chat_id": 1}}')
    @example(body=b'{"name": "a", "type": 5, "config": {}}')
    def prop(body: bytes) -> None:
        seeded.send("POST", "/api/v1/channels", body)

    prop()
    seeded.assert_unchanged()


SUB_FIELDS = ["name", "email", "send_welcome_email", "password", "plan", "node_limit"]


def test_http_create_sub_workspace_never_5xx(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(
        body=bodies(
            SUB_FIELDS,
            st.one_of(
                json_values, st.integers(-(2**64), 2**64), st.sampled_from(["pro", "x@y.zz"])
            ),
        )
    )
    @example(body=b'{"name": "a", "node_limit": 18446744073709551615}')
    @example(body=b'{"name": "a", "email": "not-an-email"}')
    def prop(body: bytes) -> None:
        seeded.send("POST", "/api/v1/workspaces", body)

    prop()
    seeded.assert_unchanged()


LIST_PATHS = [
    "/api/v1/nodes",
    "/api/v1/incidents",
    "/api/v1/channels",
    "/api/v1/workspaces",
    "/api/v1/analytics/summary",
    "/api/v1/status",
]
QUERY_KEYS = ["limit", "offset", "status", "severity", "node", "range", "type", "q"]
query_parts = st.one_of(
    st.tuples(
        st.one_of(st.sampled_from(QUERY_KEYS), text),
        st.one_of(text, st.integers().map(str), tricky_text),
    ).map(lambda kv: urllib.parse.quote(kv[0], safe="") + "=" + urllib.parse.quote(kv[1], safe="")),
    st.sampled_from(["%", "%zz", "%ff", "%c3", "limit=%ff", "=", "&", "==", ";", "+", "a=b=c"]),
    st.text(alphabet="abcdefghilmnorstu0123456789=&%+-_.~", max_size=20),
)
query_strings = st.lists(query_parts, max_size=5).map("&".join)


def test_http_list_endpoints_never_5xx_on_any_query(server: Server) -> None:
    seeded = Seeded(server)

    @LIVE
    @given(path=st.sampled_from(LIST_PATHS), query=query_strings)
    @example(path="/api/v1/nodes", query="limit=100&offset=1000000000")
    @example(path="/api/v1/incidents", query="node=%ff")
    def prop(path: str, query: str) -> None:
        status, body = seeded.send("GET", f"{path}?{query}")
        if status == 200 and "limit" in body:
            assert isinstance(body["limit"], int) and 1 <= body["limit"] <= 100

    prop()
    seeded.assert_unchanged()
