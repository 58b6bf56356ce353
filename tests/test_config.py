"""Configuration: defaults, the TOML file, FLOODWATCH_* environment overrides, flags, the
``config`` command and the documentation of every setting."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import requests

import settings
from agent.config import load_agent_config
from agent.errors import ConfigError as AgentConfigError
from api.config import (
    ApiConfig,
    Config,
    ConfigError,
    ServerConfig,
    StoreConfig,
    apply_overrides,
    dump_toml,
    iter_settings,
    load_config,
)
from settings.declaration import ENV_SECTIONS

from .conftest import FLOODWATCH, Server, spawn_server

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"


def fw(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOODWATCH_")}
    return subprocess.run(
        [*FLOODWATCH, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        cwd=cwd,
    )


def write(tmp_path: Path, text: str, name: str = "floodwatch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=environ or {})


# --- load_config ------------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = load_config(None, environ={})
    assert cfg == Config()
    assert cfg.server.host == "127.0.0.1"
    assert cfg.server.port == 8080
    assert cfg.api.max_body_bytes == 1_048_576
    assert cfg.api.rate_limit_per_minute == 1000
    assert cfg.database_path == Path("./var") / "floodwatch.duckdb"


def test_file_values_are_applied(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        """
[server]
port = 9001
host = "0.0.0.0"
admin_socket = false
shutdown_timeout_secs = 3
log_level = "warning"

[api]
rate_limit_per_minute = 50
default_plan = "pro"

[store]
database_file = "/srv/fw/main.duckdb"
memory_limit = "256MB"
""",
    )
    assert cfg.server.port == 9001
    assert cfg.server.host == "0.0.0.0"
    assert cfg.server.admin_socket is False
    assert cfg.server.shutdown_timeout_secs == 3.0
    assert isinstance(cfg.server.shutdown_timeout_secs, float)
    assert cfg.server.log_level == "warning"
    assert cfg.api.rate_limit_per_minute == 50
    assert cfg.api.default_plan == "pro"
    assert cfg.api.max_body_bytes == ApiConfig().max_body_bytes  # untouched default
    assert cfg.store.memory_limit == "256MB"
    assert cfg.database_path == Path("/srv/fw/main.duckdb")  # absolute: not under data_dir


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nprot = 8080\n", "server.prot"),
        ("[api]\nrate_limit = 5\n", "api.rate_limit"),
        ("[sever]\nport = 1\n", "sever"),
        ("top_level = 1\n", "top_level"),
        ("[server.tls]\ncert = 'x'\n", "server.tls"),
    ],
)
def test_unknown_keys_are_errors(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="unknown setting") as exc:
        load_text(tmp_path, text)
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[server]\nport = "8080"\n', "server.port"),  # strings are not numbers in the file
        ("[server]\nport = 80.5\n", "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nadmin_socket = 1\n", "server.admin_socket"),
        ('[server]\nadmin_socket = "yes"\n', "server.admin_socket"),
        ("[server]\nhost = 127\n", "server.host"),
        ('[server]\nshutdown_timeout_secs = "5"\n', "server.shutdown_timeout_secs"),
        ("[server]\nshutdown_timeout_secs = false\n", "server.shutdown_timeout_secs"),
        ("[api]\nmax_body_bytes = [1024]\n", "api.max_body_bytes"),
        ("[api]\nbootstrap_workspace = {}\n", "api.bootstrap_workspace"),
        ("[store]\nthreads = 1979-05-27\n", "store.threads"),
        ("server = 1\n", "server"),
        ("[[server]]\nport = 1\n", "server"),
    ],
)
def test_wrong_types_are_errors(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(tmp_path, text)
    assert str(exc.value).startswith(needle), str(exc.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nport = 65536\n", "server.port"),
        ("[server]\nport = -1\n", "server.port"),
        ('[server]\nlog_level = "verbose"\n', "server.log_level"),
        ("[server]\nshutdown_timeout_secs = -0.5\n", "server.shutdown_timeout_secs"),
        ('[server]\ndata_dir = ""\n', "server.data_dir"),
        ("[api]\nmax_body_bytes = 1023\n", "api.max_body_bytes"),
        ("[api]\nrate_limit_per_minute = 0\n", "api.rate_limit_per_minute"),
        ("[api]\nauth_failures_per_minute = 0\n", "api.auth_failures_per_minute"),
        ("[api]\noffline_after_secs = 0\n", "api.offline_after_secs"),
        ('[api]\ndefault_plan = "platinum"\n', "api.default_plan"),
        ("[store]\nthreads = 0\n", "store.threads"),
        ('[store]\ndatabase_file = ""\n', "store.database_file"),
    ],
)
def test_out_of_range_values_are_errors(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(tmp_path, text)
    assert str(exc.value).startswith(needle), str(exc.value)


def test_boundary_values_are_accepted(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        "[server]\nport = 0\nshutdown_timeout_secs = 0\n"
        "[api]\nmax_body_bytes = 1024\nrate_limit_per_minute = 1\n"
        "[store]\nthreads = 1\n",
    )
    assert (cfg.server.port, cfg.server.shutdown_timeout_secs) == (0, 0.0)
    assert (cfg.api.max_body_bytes, cfg.api.rate_limit_per_minute, cfg.store.threads) == (
        1024,
        1,
        1,
    )


def test_unreadable_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, environ={})  # a directory
    with pytest.raises(ConfigError, match="config file"):
        load_text(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError, match="config file"):
        load_text(tmp_path, "[server]\nport = 1\nport = 2\n")


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[server]\nhost = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError):
        load_config(path, environ={})


# --- environment ------------------------------------------------------------------------------


def test_env_overrides(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        "[server]\nport = 9001\nhost = '10.0.0.1'\n",
        environ={
            "FLOODWATCH_SERVER__PORT": "9002",
            "FLOODWATCH_SERVER__ADMIN_SOCKET": "off",
            "FLOODWATCH_SERVER__SHUTDOWN_TIMEOUT_SECS": " 2.5 ",
            "FLOODWATCH_API__RATE_LIMIT_PER_MINUTE": "20",
            "FLOODWATCH_API__BOOTSTRAP_WORKSPACE": "No",
            "FLOODWATCH_STORE__MEMORY_LIMIT": "64MB",
            "OTHER_VARIABLE": "ignored",
            "floodwatch_server__port": "1",  # lower-case prefix: not ours
        },
    )
    assert cfg.server.port == 9002  # the environment beats the file
    assert cfg.server.host == "10.0.0.1"  # the file beats the default
    assert cfg.server.admin_socket is False
    assert cfg.server.shutdown_timeout_secs == 2.5
    assert cfg.api.rate_limit_per_minute == 20
    assert cfg.api.bootstrap_workspace is False
    assert cfg.store.memory_limit == "64MB"


@pytest.mark.parametrize("true_word", ["1", "true", "TRUE", "yes", "on"])
def test_env_booleans(true_word: str) -> None:
    env = {"FLOODWATCH_SERVER__ADMIN_SOCKET": "false"}
    assert load_config(None, environ=env).server.admin_socket is False
    env = {"FLOODWATCH_SERVER__ADMIN_SOCKET": true_word}
    assert load_config(None, environ=env).server.admin_socket is True


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"FLOODWATCH_SERVER__PROT": "1"}, "server.prot"),
        ({"FLOODWATCH_NOPE__PORT": "1"}, "nope"),
        ({"FLOODWATCH_SERVER__PORT__X": "1"}, "FLOODWATCH_SERVER__PORT__X"),
        ({"FLOODWATCH_SERVER__": "1"}, "FLOODWATCH_SERVER__"),
        ({"FLOODWATCH___PORT": "1"}, "FLOODWATCH___PORT"),
        ({"FLOODWATCH_SERVER__PORT": "eighty"}, "server.port"),
        ({"FLOODWATCH_SERVER__PORT": "80.0"}, "server.port"),
        ({"FLOODWATCH_SERVER__PORT": ""}, "server.port"),
        ({"FLOODWATCH_SERVER__PORT": "99999"}, "server.port"),
        ({"FLOODWATCH_SERVER__ADMIN_SOCKET": "maybe"}, "server.admin_socket"),
        ({"FLOODWATCH_SERVER__SHUTDOWN_TIMEOUT_SECS": "soon"}, "server.shutdown_timeout_secs"),
        ({"FLOODWATCH_SERVER__LOG_LEVEL": "loud"}, "server.log_level"),
    ],
)
def test_env_errors(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, environ=environ)
    assert needle in str(exc.value), str(exc.value)


def test_env_variables_not_shaped_like_settings_are_left_alone() -> None:
    cfg = load_config(None, environ={"FLOODWATCH_TOKEN": "x", "FLOODWATCH_SERVER__PORT": "81"})
    assert cfg.server.port == 81
    with pytest.raises(ConfigError, match=r"server\.tokn"):
        load_config(None, environ={"FLOODWATCH_SERVER__TOKN": "x"})


# A FLOODWATCH_* name that is no setting of either program, and the name it should suggest.
TYPOS = [
    ("FLOODWATCH_SERVER_PORT", "FLOODWATCH_SERVER__PORT"),  # one underscore
    ("FLOODWATCH_SEVER__PORT", "FLOODWATCH_SERVER__PORT"),
    ("FLOODWATCH_server_port", "FLOODWATCH_SERVER__PORT"),
    ("FLOODWATCH_API__RATE_LIMIT_PER_MINUTES", "FLOODWATCH_API__RATE_LIMIT_PER_MINUTE"),
    ("FLOODWATCH_AGENT_KEY", "FLOODWATCH_AGENT__KEY"),
    ("FLOODWATCH_AGENT__SERVERURL", "FLOODWATCH_AGENT__SERVER_URL"),
    ("FLOODWATCH_DUCKDB", "FLOODWATCH_DUCKDB1"),  # close to a name that is not a setting
    ("FLOODWATCH_SERVER__TLS__CERT", None),
    ("FLOODWATCH_WHATEVER", None),
]


def _load_server(environ: dict[str, str]) -> object:
    return load_config(None, environ=environ)


def _load_agent(environ: dict[str, str]) -> object:
    return load_agent_config(None, environ=environ)


@pytest.mark.parametrize("load", [_load_server, _load_agent], ids=["server", "agent"])
@pytest.mark.parametrize(("name", "suggestion"), TYPOS)
def test_unknown_floodwatch_variables_are_errors_naming_them(
    load: object, name: str, suggestion: str | None
) -> None:
    """Both programs refuse every FLOODWATCH_* name that is not a setting of either and not on
    the declared list, naming it and the closest real name."""
    assert callable(load)
    with pytest.raises(settings.ConfigError) as exc:
        load({name: "1", "FLOODWATCH_SERVER__PORT": "81", "FLOODWATCH_AGENT__KEY": "k"})
    message = str(exc.value)
    assert name in message
    if suggestion is None:
        assert "did you mean" not in message and "docs/configuration.md" in message, message
    else:
        assert message.endswith(f"; did you mean {suggestion}?"), message
    if load is _load_agent:
        assert isinstance(exc.value, AgentConfigError)  # what `floodwatch agent` reports
    else:
        assert isinstance(exc.value, ConfigError)


def test_names_that_are_not_settings_are_accepted_by_both_programs() -> None:
    environ = dict.fromkeys(settings.NON_SETTING_VARIABLES, "anything")
    assert set(environ) == {"FLOODWATCH_DUCKDB1", "FLOODWATCH_TOKEN"}
    environ |= {"FLOODWATCH_SERVER__PORT": "81", "FLOODWATCH_AGENT__KEY": "k"}
    assert load_config(None, environ=environ).server.port == 81  # the agent's is only checked
    assert load_agent_config(None, environ=environ).key == "k"  # the server's is only checked
    # after the prefix, case does not matter
    assert load_config(None, environ={"FLOODWATCH_server__Port": "82"}).server.port == 82


def test_the_declared_list_is_what_lets_those_names_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above can fail: without the list, the test suite's own variable is refused."""
    monkeypatch.setattr(settings, "NON_SETTING_VARIABLES", {})
    for load in (_load_server, _load_agent):
        with pytest.raises(settings.ConfigError, match="FLOODWATCH_DUCKDB1"):
            load({"FLOODWATCH_DUCKDB1": ".venv/duckdb1"})


def test_unknown_toml_keys_suggest_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown setting server\.prot; did you mean server\.port\?"
    ):
        load_text(tmp_path, "[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting sever; did you mean server\?"):
        load_text(tmp_path, "[sever]\nport = 1\n")


def test_float_settings_refuse_nan() -> None:
    """NaN is no duration: every comparison with it is false, so range checks let it through
    unless they test for it."""
    accepted = []
    for name, _, type_name, _ in iter_settings():
        if type_name != "float":
            continue
        sec, key = name.split(".")
        try:
            load_config(None, environ={f"FLOODWATCH_{sec.upper()}__{key.upper()}": "nan"})
        except ConfigError:
            continue
        accepted.append(name)
    assert accepted == [], f"settings that accept nan: {accepted}"


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOODWATCH_SERVER__PORT", "8181")
    assert load_config().server.port == 8181
    monkeypatch.setenv("FLOODWATCH_SERVER__PROT", "8181")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_config()


# --- apply_overrides --------------------------------------------------------------------------


def test_apply_overrides() -> None:
    base = load_config(None, environ={})
    assert apply_overrides(base, "server", host=None, port=None) is base
    cfg = apply_overrides(base, "server", port=9100, data_dir="/tmp/fw")
    assert (cfg.server.port, cfg.server.data_dir) == (9100, "/tmp/fw")
    assert cfg.server.host == base.server.host
    assert base.server.port == 8080  # the input is not modified (frozen)
    cfg2 = apply_overrides(cfg, "api", rate_limit_per_minute=5)
    assert cfg2.api.rate_limit_per_minute == 5 and cfg2.server.port == 9100
    assert cfg2.database_path == Path("/tmp/fw/floodwatch.duckdb")


@pytest.mark.parametrize(
    ("section", "values", "needle"),
    [
        ("server", {"port": 65536}, "server.port"),
        ("server", {"port": -5}, "server.port"),
        ("server", {"data_dir": ""}, "server.data_dir"),
        ("server", {"log_level": "trace"}, "server.log_level"),
        ("api", {"max_body_bytes": 10}, "api.max_body_bytes"),
        ("api", {"default_plan": "gold"}, "api.default_plan"),
        ("store", {"threads": 0}, "store.threads"),
    ],
)
def test_apply_overrides_validates(section: str, values: dict[str, object], needle: str) -> None:
    base = Config()
    with pytest.raises(ConfigError) as exc:
        apply_overrides(base, section, **values)
    assert str(exc.value).startswith(needle)
    assert base == Config()


# --- iter_settings, dump_toml and the documentation -------------------------------------------


def test_iter_settings_covers_every_field() -> None:
    settings = iter_settings()
    names = [s[0] for s in settings]
    assert len(names) == len(set(names))
    cfg = Config()
    expected = {
        f"{sec.name}.{f.name}"
        for sec in dataclasses.fields(Config)
        for f in dataclasses.fields(getattr(cfg, sec.name))
    }
    assert set(names) == expected
    assert {"server.port", "api.max_body_bytes", "store.database_file"} <= expected
    cfg = Config()
    for name, default, type_name, doc in settings:
        sec, key = name.split(".")
        assert getattr(getattr(cfg, sec), key) == default
        types = {"int": int, "float": (int, float), "str": str, "bool": bool}
        assert isinstance(default, types[type_name]), (name, default, type_name)
        assert isinstance(doc, str) and len(doc) > 10


# | `server.port` | int | `8080` | `FLOODWATCH_SERVER__PORT` |  (the agent's table adds a flag)
DOC_ROW = re.compile(r"^\| `(\w+\.\w+)` \| (\w+) \| `([^`]*)` \| `(FLOODWATCH_\w+)` \|", re.M)
# | `FLOODWATCH_TOKEN` | what it is |
DOC_OTHER_NAME = re.compile(r"^\| `(FLOODWATCH_\w+)` \| ", re.M)


def _shown(default: object) -> str:
    """A default as the tables of docs/configuration.md show it (TOML spelling)."""
    return json.dumps(default) if isinstance(default, str | bool) else repr(default)


def doc_mismatches(text: str) -> list[str]:
    """Where docs/configuration.md and the declaration (settings/) disagree, both ways."""
    declared = {
        (s.path, s.type_name, _shown(s.default), s.env) for s in settings.settings_of(ENV_SECTIONS)
    }
    rows = DOC_ROW.findall(text)
    documented = set(rows)
    out = [f"listed twice: {r[0]}" for r in sorted(documented) if rows.count(r) > 1]
    out += [f"not listed as declared: {' | '.join(r)}" for r in sorted(declared - documented)]
    out += [f"listed but not declared: {' | '.join(r)}" for r in sorted(documented - declared)]
    # every setting has a description (a definition term: a line followed by ": ..."), and every
    # term names real settings
    lines = text.splitlines()
    terms = [line for line, after in itertools.pairwise(lines) if after.startswith(": ")]
    described = {name for term in terms for name in re.findall(r"`(\w+\.\w+)`", term)}
    paths = {r[0] for r in declared}
    out += [f"no description: {p}" for p in sorted(paths - described)]
    out += [f"described but not declared: {p}" for p in sorted(described - paths)]
    # the table of names that are not settings is settings.NON_SETTING_VARIABLES
    others = set(DOC_OTHER_NAME.findall(text))
    want = set(settings.NON_SETTING_VARIABLES)
    out += [f"not listed as a name that is not a setting: {n}" for n in sorted(want - others)]
    out += [
        f"listed as a name that is not a setting, but not declared: {n}"
        for n in sorted(others - want)
    ]
    return out


def test_every_setting_is_documented() -> None:
    """docs/configuration.md against the declaration, both ways: every setting of the server
    and of the agent with its type, real default and variable, and nothing that is not one."""
    assert DOC.is_file(), f"{DOC} is missing: every setting must be documented there"
    assert doc_mismatches(DOC.read_text()) == []


def test_the_documentation_check_can_fail() -> None:
    text = DOC.read_text()
    row = "| `server.port` | int | `8080` | `FLOODWATCH_SERVER__PORT` |\n"
    assert row in text
    found = doc_mismatches(text.replace(row, ""))
    assert any("not listed as declared: server.port" in m for m in found), found
    found = doc_mismatches(text.replace(row, row.replace("8080", "8081")))
    assert any("listed but not declared: server.port | int | 8081" in m for m in found), found
    fake = '| `server.tls_cert` | str | `""` | `FLOODWATCH_SERVER__TLS_CERT` |\n'
    found = doc_mismatches(text.replace(row, row + fake))
    assert found == [
        'listed but not declared: server.tls_cert | str | "" | FLOODWATCH_SERVER__TLS_CERT'
    ]
    found = doc_mismatches(text.replace("\n`agent.batch_rows`\n", "\n`agent.batch_row`\n"))
    assert found == [
        "no description: agent.batch_rows",
        "described but not declared: agent.batch_row",
    ]
    found = doc_mismatches(text.replace("| `FLOODWATCH_TOKEN` |", "| `FLOODWATCH_TOKENS` |"))
    assert len(found) == 2 and all("FLOODWATCH_TOKEN" in m for m in found), found


def test_dump_toml_is_valid_and_documented() -> None:
    cfg = Config()
    text = dump_toml(cfg)
    data = tomllib.loads(text)
    for name, default, _, doc in iter_settings():
        sec, key = name.split(".")
        assert data[sec][key] == default
        assert f"# {doc}" in text


def test_dump_toml_escapes_strings(tmp_path: Path) -> None:
    cfg = apply_overrides(Config(), "server", data_dir='C:\\fw "data"', public_url="https://x/é")
    path = write(tmp_path, dump_toml(cfg))
    assert load_config(path, environ={}) == cfg


# --- the config command -----------------------------------------------------------------------


def test_config_dump_round_trips(tmp_path: Path) -> None:
    p = fw("config", "--dump")
    assert p.returncode == 0, p.stderr
    assert tomllib.loads(p.stdout) == tomllib.loads(dump_toml(Config()))
    path = write(tmp_path, p.stdout)
    check = fw("config", "--check", "--config", str(path))
    assert check.returncode == 0, check.stderr
    assert check.stdout == "configuration ok\n"
    again = fw("config", "--dump", "--config", str(path))
    assert again.stdout == p.stdout


def test_config_dump_shows_file_env_and_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n[api]\nmax_body_bytes = 4096\n")
    p = fw(
        "config",
        "--dump",
        "--config",
        str(path),
        "--data",
        str(tmp_path / "d"),
        env={"FLOODWATCH_API__MAX_BODY_BYTES": "8192", "FLOODWATCH_STORE__THREADS": "3"},
    )
    assert p.returncode == 0, p.stderr
    data = tomllib.loads(p.stdout)
    assert data["server"]["port"] == 9001
    assert data["server"]["data_dir"] == str(tmp_path / "d")
    assert data["api"]["max_body_bytes"] == 8192
    assert data["store"]["threads"] == 3

    dumped = write(tmp_path, p.stdout, "dumped.toml")
    assert load_config(dumped, environ={}) == Config(
        server=ServerConfig(port=9001, data_dir=str(tmp_path / "d")),
        api=ApiConfig(max_body_bytes=8192),
        store=StoreConfig(threads=3),
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nnope = 1\n", "server.nope"),
        ('[api]\nrate_limit_per_minute = "many"\n', "api.rate_limit_per_minute"),
        ("[store]\nthreads = 0\n", "store.threads"),
        ("[server\n", "config file"),
    ],
)
def test_config_check_rejects(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    p = fw("config", "--check", "--config", str(path))
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.startswith("floodwatch: config error: ")
    assert needle in p.stderr
    assert "Traceback" not in p.stderr


def test_config_check_rejects_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe[server]\nport = 1\n")
    p = fw("config", "--check", "--config", str(path))
    assert p.returncode == 1
    assert "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("floodwatch: config error: ")


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"FLOODWATCH_SERVER__NOPE": "1"}, "server.nope"),
        ({"FLOODWATCH_SERVER__PORT__X": "1"}, "FLOODWATCH_SERVER__PORT__X"),
        ({"FLOODWATCH_API__RATE_LIMIT_PER_MINUTE": "lots"}, "api.rate_limit_per_minute"),
        (
            {"FLOODWATCH_SERVER_PORT": "9000"},
            "FLOODWATCH_SERVER_PORT; did you mean FLOODWATCH_SERVER__PORT?",
        ),
        ({"FLOODWATCH_AGENT__KYE": "k"}, "FLOODWATCH_AGENT__KYE (agent.kye)"),
    ],
)
def test_config_check_rejects_env(environ: dict[str, str], needle: str) -> None:
    p = fw("config", "--check", env=environ)
    assert p.returncode == 1
    assert needle in p.stderr
    assert "Traceback" not in p.stderr


def test_config_check_accepts_the_names_that_are_not_settings() -> None:
    env = dict.fromkeys(settings.NON_SETTING_VARIABLES, "x") | {"FLOODWATCH_AGENT__KEY": "k"}
    p = fw("config", "--check", env=env)
    assert (p.returncode, p.stdout) == (0, "configuration ok\n"), p.stderr


def test_config_errors_in_other_commands(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nnope = 1\n")
    p = fw("workspace", "list", "--json", "--config", str(path), "--data", str(tmp_path / "d"))
    assert p.returncode == 1
    assert '"code":"config_error"' in p.stdout.replace(" ", "")
    assert "server.nope" in p.stdout and "server.nope" in p.stderr
    p = fw("serve", "--data", str(tmp_path / "d"), env={"FLOODWATCH_SERVER__PORT": "x"})
    assert p.returncode == 1
    assert "server.port" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "d").exists()  # nothing was created


def wait_for_token(srv: Server, timeout: float = 30) -> str:
    """The one deploy token the server prints on a first start (printed once it listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(r"\b[0-9a-f]{64}\b", srv.stdout())
        if found:
            assert len(found) == 1, srv.stdout()
            return str(found[0])
        time.sleep(0.05)
    raise AssertionError("no token printed: " + srv.stdout() + srv.stderr())


def serve_with_config(data: Path, config: Path) -> Server:
    """Like conftest.start_server, with --config and no FLOODWATCH_ variable of ours."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOODWATCH_")}
    srv = spawn_server(data, base, ("--config", str(config)), name="cfg")
    proc, err = srv.proc, srv.stderr_path
    for _ in range(600):
        assert proc.poll() is None, err.read_text()
        try:
            if requests.get(srv.url("/api/health"), timeout=1).status_code == 200:
                return srv
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    srv.stop(signal.SIGKILL)
    raise AssertionError("server did not start: " + err.read_text())


def test_serve_uses_the_config_file(tmp_path: Path) -> None:
    """The file's values really reach the running server (flags still win over the file)."""
    path = write(
        tmp_path,
        "[server]\nport = 1\n[api]\nrate_limit_per_minute = 7\nmax_body_bytes = 2048\n",
    )
    srv = serve_with_config(tmp_path / "data", path)
    try:
        token = wait_for_token(srv)
        auth = {"Authorization": f"Bearer {token}"}
        r = requests.get(srv.url("/api/v1/nodes"), headers=auth, timeout=30)
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "7"
        assert r.headers["X-RateLimit-Remaining"] == "6"
        big = b'{"name": "' + b"x" * 3000 + b'", "ip": "192.0.2.1"}'
        r = requests.post(srv.url("/api/v1/nodes"), data=big, headers=auth, timeout=30)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
    finally:
        assert srv.stop() == 0


def test_lake_settings_reach_the_pipeline(tmp_path: Path) -> None:
    from api.app import pipeline_settings

    cfg = load_text(
        tmp_path,
        '[lake]\nfresh_compression = "zstd"\ncompression = "snappy"\nwriters = 3\n',
    )
    got = pipeline_settings(cfg)
    assert (got.fresh_compression, got.compression, got.lake_writers) == ("zstd", "snappy", 3)
    assert pipeline_settings(load_text(tmp_path, "")).fresh_compression == "lz4"
