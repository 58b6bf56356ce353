"""Property tests (hypothesis) of the configuration and the rate limiter: loading raises only
``ConfigError`` for any TOML, any bytes and any environment, ``dump_toml`` round-trips, and the
fixed-window limiter never admits more than its limit.

Split from ``test_properties.py``; the shared settings and strategies are in
``properties_support.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from api.config import Config, ConfigError, apply_overrides, dump_toml, load_config
from api.ratelimit import FixedWindowLimiter

from .properties_support import PURE, clean_text, nosurrogates

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


def _toml_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(toml_text, children, max_size=3)


toml_values = st.recursive(toml_scalars, _toml_containers, max_leaves=6)
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
