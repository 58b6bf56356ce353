"""Configuration: one tree of frozen dataclasses.

Sources, later ones winning: the defaults below, an optional TOML file, ``FLOODWATCH_*``
environment variables that follow the config path (``FLOODWATCH_SERVER__PORT=9000``), and
finally command-line flags. Unknown keys and values of the wrong type are errors, never ignored.

Every field carries a ``doc`` in its metadata; ``docs/configuration.md`` documents every setting
and a test fails when one is missing there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AlertsConfig",
    "ApiConfig",
    "Config",
    "ConfigError",
    "DetectConfig",
    "IngestConfig",
    "LakeConfig",
    "ServerConfig",
    "StoreConfig",
    "apply_overrides",
    "dump_toml",
    "iter_settings",
    "load_config",
]

ENV_PREFIX = "FLOODWATCH_"
SECRET_SETTINGS = frozenset({"summary_llm_api_key", "metrics_token"})


class ConfigError(ValueError):
    """A configuration file, environment variable or flag is invalid."""


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ServerConfig:
    host: str = _setting("127.0.0.1", "Address the HTTP server binds to.")
    port: int = _setting(8080, "TCP port of the HTTP server (0 picks a free port).")
    data_dir: str = _setting(
        "./var", "Data directory: DuckDB file, admin socket, and later the WAL and Parquet lake."
    )
    admin_socket: bool = _setting(
        True,
        "Serve the local admin socket (data_dir/admin.sock, mode 0600) that the CLI uses while "
        "the server holds the database.",
    )
    log_level: str = _setting("info", "Log level: debug, info, warning or error.")
    access_log: str = _setting(
        "rest",
        "Access log lines: all; rest (all but successful agent and telemetry calls); off.",
    )
    shutdown_timeout_secs: float = _setting(
        10.0, "How long in-flight requests may run after SIGTERM/SIGINT before they are cut."
    )
    public_url: str = _setting(
        "", "Public base URL, given as the server of the OpenAPI document; empty: none."
    )
    metrics_token: str = _setting(
        "",
        "Bearer token that /metrics asks of addresses other than loopback (never logged; prefer "
        "the environment variable); empty: /metrics answers loopback only.",
    )


@dataclass(frozen=True)
class ApiConfig:
    max_body_bytes: int = _setting(
        1_048_576, "Largest JSON request body accepted by the REST API; larger bodies get 413."
    )
    rate_limit_per_minute: int = _setting(
        1000, "Requests per minute allowed for one deploy token (fixed one-minute windows)."
    )
    auth_failures_per_minute: int = _setting(
        600,
        "Failed authentications per minute allowed from one client address before it gets 429.",
    )
    offline_after_secs: int = _setting(
        120, "A node with no heartbeat or metrics for this long is reported offline."
    )
    bootstrap_workspace: bool = _setting(
        True,
        "On the first serve of an empty data directory, create a default workspace and print "
        "its deploy token once to the terminal.",
    )
    default_plan: str = _setting(
        "self-hosted", "Plan given to workspaces created without --plan (see docs/ARCHITECTURE.md)."
    )
    agent_incident_expiry_secs: int = _setting(
        600, "An active agent incident with no open, update or resolve for this long is resolved."
    )
    agent_config_cache_secs: float = _setting(
        600.0, "Longest time a node's cached agent config answer is served (writes clear it)."
    )
    pcap_retention_days: int = _setting(
        30, "Incident PCAP files older than this many days are deleted."
    )
    elevated_factor: float = _setting(
        2.0, "A node is elevated while its newest pps exceeds this many times its baseline p99."
    )
    elevated_floor_pps: float = _setting(
        1000.0, "Traffic below this many pps never makes a node elevated."
    )


@dataclass(frozen=True)
class StoreConfig:
    database_file: str = _setting(
        "floodwatch.duckdb", "Name of the DuckDB file inside data_dir, or an absolute path."
    )
    threads: int = _setting(2, "DuckDB worker threads.")
    memory_limit: str = _setting("1GB", "DuckDB memory limit (DuckDB size syntax, e.g. 512MB).")


@dataclass(frozen=True)
class IngestConfig:
    max_body_bytes: int = _setting(
        64 * 1024 * 1024, "Largest binary telemetry body; larger bodies get 413."
    )
    max_batch_rows: int = _setting(1_000_000, "Most rows in one binary batch; more gets 413.")
    flush_rows: int = _setting(
        250_000, "A lake partition's buffered rows are written once this many have gathered..."
    )
    flush_age_secs: float = _setting(
        10.0, "...or once its oldest buffered row has waited this long."
    )
    max_buffer_bytes: int = _setting(
        256 * 1024 * 1024,
        "Memory for rows waiting to be written; past it the receiver answers 503 + Retry-After.",
    )
    wal_segment_bytes: int = _setting(64 * 1024 * 1024, "Size at which a WAL segment is rolled.")
    wal_compression: str = _setting(
        "lz4",
        "Arrow compression of WAL entries the server encodes (Agent API rows): none, lz4 or zstd.",
    )
    dedup_window_secs: int = _setting(
        86_400, "How long a batch id (X-Batch-Id) is remembered to store re-sent batches once."
    )
    dedup_max_ids: int = _setting(1_000_000, "Most batch ids remembered (oldest forgotten first).")
    max_clock_skew_secs: int = _setting(
        300, "Rows stamped further than this in the future are refused."
    )
    decode_threads: int = _setting(2, "Worker threads that decode and check binary batches.")
    max_concurrent_decodes: int = _setting(
        8, "Batches decoded at once; more concurrent requests get 503 + Retry-After."
    )
    auth_cache_secs: float = _setting(
        300.0, "How long a node or collector key lookup is cached (writes clear the cache)."
    )


@dataclass(frozen=True)
class LakeConfig:
    compression: str = _setting("zstd", "Parquet compression: zstd, lz4, snappy or none.")
    compression_level: int = _setting(
        1, "Compression level (zstd); 1 is faster than 3 and as small for telemetry."
    )
    fresh_compression: str = _setting(
        "lz4",
        "Parquet compression of the files ingest writes, until compaction rewrites their hour "
        "with lake.compression: zstd, lz4, snappy or none.",
    )
    writers: int = _setting(
        2, "Parquet writer threads: partitions written at the same time (one file each)."
    )
    raw_retention_days: int = _setting(15, "Days of per-second node metrics kept.")
    flows_retention_days: int = _setting(15, "Days of sampled flows kept.")
    rollup_1m_retention_days: int = _setting(30, "Days of 1-minute rollups kept.")
    rollup_5m_retention_days: int = _setting(90, "Days of 5-minute rollups kept.")
    rollup_1h_retention_days: int = _setting(400, "Days of 1-hour rollups kept.")
    compact_after_secs: int = _setting(
        300, "An hour partition is compacted (and rolled up) this long after the hour ends."
    )
    maintenance_interval_secs: float = _setting(
        60.0, "How often compaction, rollups, retention and catalog snapshots run."
    )


@dataclass(frozen=True)
class DetectConfig:
    enabled: bool = _setting(
        True, "Run Floodwatch's own detector over every node's telemetry as it is acknowledged."
    )
    max_backlog_rows: int = _setting(
        1_000_000,
        "Node-seconds and flow rows waiting for the detector beyond which telemetry is refused "
        "with 503 and Retry-After until it catches up.",
    )
    snapshot_interval_secs: float = _setting(
        30.0,
        "How often the detector's state (baselines, open incidents) is saved to "
        "data_dir/detect/state.bin; it is saved at shutdown too.",
    )
    seed_days: int = _setting(
        14,
        "Days of 1-minute rollups from which baselines are rebuilt at start for nodes the saved "
        "state does not cover (a first start, a lost state file, a backfilled node).",
    )
    geo: str = _setting(
        "builtin",
        "Country and ASN of source addresses: builtin (the offline database shipped with "
        "Floodwatch), maxmind (the .mmdb files below) or off.",
    )
    maxmind_country_db: str = _setting(
        "", "Path of a MaxMind GeoLite2/GeoIP2 Country (or City) .mmdb file (geo = maxmind)."
    )
    maxmind_asn_db: str = _setting("", "Path of a MaxMind GeoLite2 ASN .mmdb file (geo = maxmind).")
    summary_llm_url: str = _setting(
        "",
        "Base URL of an OpenAI-compatible API (ending in /v1) that writes incident summaries; "
        "empty: the deterministic summary only. Any failure falls back to it.",
    )
    summary_llm_model: str = _setting("gpt-4o-mini", "Model asked for summaries.")
    summary_llm_api_key: str = _setting(
        "", "Bearer key of the summary API (never logged; prefer the environment variable)."
    )
    summary_llm_timeout_secs: float = _setting(
        5.0, "How long a summary may take before the deterministic one is used."
    )


@dataclass(frozen=True)
class AlertsConfig:
    enabled: bool = _setting(
        True,
        "Send incident alerts to the workspaces' channels (false: no alert is queued or sent; "
        "channel tests still work).",
    )
    public_url: str = _setting(
        "",
        "Base URL of the links to incidents in alerts ({public_url}/dashboard/incident?id=N); "
        "empty: server.public_url; both empty: alerts carry no link.",
    )
    update_interval_secs: float = _setting(
        300.0, "Fewest seconds between two attack_update alerts of one incident to one channel."
    )
    update_peak_factor: float = _setting(
        1.5,
        "How much the peak (pps or bps) must have grown since the last alert of an incident "
        "for an attack_update.",
    )
    give_up_after_secs: float = _setting(
        3600.0, "How long a delivery is retried before it is marked failed."
    )
    attempt_timeout_secs: float = _setting(
        10.0, "How long one delivery attempt may take (connect, send and answer)."
    )
    per_channel_concurrency: int = _setting(
        4, "Deliveries in flight at once per channel (the others of that channel wait)."
    )
    retry_base_secs: float = _setting(
        2.0,
        "Wait before the first retry; each next one waits twice as long (with jitter), up to "
        "retry_max_secs, or as long as the service's Retry-After asks.",
    )
    retry_max_secs: float = _setting(300.0, "Longest wait between two attempts of a delivery.")
    log_retention_days: int = _setting(
        30,
        "Days the delivery log (finished deliveries, their attempts and events) is kept; "
        "deliveries still being tried are never removed.",
    )


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    lake: LakeConfig = field(default_factory=LakeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def database_path(self) -> Path:
        p = Path(self.store.database_file)
        return p if p.is_absolute() else self.data_path / p


_LOG_LEVELS = ("debug", "info", "warning", "error")
_METRICS_TOKEN = re.compile(r"[\x21-\x7e]{16,256}")
_MEMORY = re.compile(r"(?i)\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)")


def _section_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(path: str, value: Any, typ: Any, from_env: bool) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        raise ConfigError(f"{path}: expected a boolean, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if typ is float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif from_env and isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value.strip())
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return number
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if isinstance(typ, types.UnionType):  # pragma: no cover - no optional settings yet
        raise ConfigError(f"{path}: unsupported type")
    raise ConfigError(f"{path}: unsupported type {typ!r}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], prefix: str, from_env: bool, base: Any) -> Any:
    hints = _section_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown setting {prefix}{key}")
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        typ = hints[f.name]
        value = data[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a table")
            changes[f.name] = _build(
                typ,  # type: ignore[arg-type]
                value,
                path + ".",
                from_env,
                getattr(base, f.name),
            )
        else:
            changes[f.name] = _coerce(path, value, typ, from_env)
    return dataclasses.replace(base, **changes)


def _validate(cfg: Config) -> Config:
    s, a, st = cfg.server, cfg.api, cfg.store
    if not 0 <= s.port <= 65535:
        raise ConfigError("server.port: must be between 0 and 65535")
    if s.log_level not in _LOG_LEVELS:
        raise ConfigError(f"server.log_level: must be one of {', '.join(_LOG_LEVELS)}")
    if s.access_log not in ("all", "rest", "off"):
        raise ConfigError("server.access_log: must be one of all, rest, off")
    if s.shutdown_timeout_secs < 0:
        raise ConfigError("server.shutdown_timeout_secs: must not be negative")
    if not s.data_dir:
        raise ConfigError("server.data_dir: must not be empty")
    if s.metrics_token and not _METRICS_TOKEN.fullmatch(s.metrics_token):
        raise ConfigError(
            "server.metrics_token: must be empty or 16 to 256 printable ASCII characters "
            "without spaces"
        )
    if a.max_body_bytes < 1024:
        raise ConfigError("api.max_body_bytes: must be at least 1024")
    if a.rate_limit_per_minute < 1:
        raise ConfigError("api.rate_limit_per_minute: must be at least 1")
    if a.auth_failures_per_minute < 1:
        raise ConfigError("api.auth_failures_per_minute: must be at least 1")
    if a.offline_after_secs < 1:
        raise ConfigError("api.offline_after_secs: must be at least 1")
    if a.agent_incident_expiry_secs < 10:
        raise ConfigError("api.agent_incident_expiry_secs: must be at least 10")
    if not 0 <= a.agent_config_cache_secs <= 86400:
        raise ConfigError("api.agent_config_cache_secs: must be from 0 to 86400")
    if a.pcap_retention_days < 1:
        raise ConfigError("api.pcap_retention_days: must be at least 1")
    if not 1.0 <= a.elevated_factor <= 1000.0:
        raise ConfigError("api.elevated_factor: must be from 1 to 1000")
    if a.elevated_floor_pps < 0:
        raise ConfigError("api.elevated_floor_pps: must not be negative")
    from store.plans import PLANS  # the plan catalogue lives with the workspace rules

    if a.default_plan not in PLANS:
        raise ConfigError(f"api.default_plan: must be one of {', '.join(PLANS)}")
    ing, lk = cfg.ingest, cfg.lake
    for name in (
        "max_body_bytes",
        "max_batch_rows",
        "flush_rows",
        "max_buffer_bytes",
        "wal_segment_bytes",
        "dedup_max_ids",
        "decode_threads",
        "max_concurrent_decodes",
    ):
        if getattr(ing, name) < 1:
            raise ConfigError(f"ingest.{name}: must be at least 1")
    if ing.flush_age_secs <= 0 or ing.auth_cache_secs < 0 or ing.dedup_window_secs < 0:
        raise ConfigError("ingest: ages and windows must be positive")
    if ing.wal_compression not in ("none", "lz4", "zstd"):
        raise ConfigError("ingest.wal_compression: must be none, lz4 or zstd")
    if not 1 <= lk.writers <= 16:
        raise ConfigError("lake.writers: must be from 1 to 16")
    if lk.compression not in ("zstd", "lz4", "snappy", "none"):
        raise ConfigError("lake.compression: must be zstd, lz4, snappy or none")
    if lk.fresh_compression not in ("zstd", "lz4", "snappy", "none"):
        raise ConfigError("lake.fresh_compression: must be zstd, lz4, snappy or none")
    for name in (
        "raw_retention_days",
        "flows_retention_days",
        "rollup_1m_retention_days",
        "rollup_5m_retention_days",
        "rollup_1h_retention_days",
    ):
        if getattr(lk, name) < 1:
            raise ConfigError(f"lake.{name}: must be at least 1")
    if lk.maintenance_interval_secs <= 0 or lk.compact_after_secs < 0:
        raise ConfigError("lake: intervals must be positive")
    if not _MEMORY.fullmatch(st.memory_limit.strip()):
        raise ConfigError("store.memory_limit: expected a size such as 512MB, 1GB or 80%")
    if not 1 <= lk.compression_level <= 22:
        raise ConfigError("lake.compression_level: must be between 1 and 22")
    if ing.max_clock_skew_secs < 0:
        raise ConfigError("ingest.max_clock_skew_secs: must not be negative")
    if st.threads < 1:
        raise ConfigError("store.threads: must be at least 1")
    if not st.database_file:
        raise ConfigError("store.database_file: must not be empty")
    d = cfg.detect
    if d.max_backlog_rows < 10_000:
        raise ConfigError("detect.max_backlog_rows: must be at least 10000")
    if d.snapshot_interval_secs <= 0:
        raise ConfigError("detect.snapshot_interval_secs: must be positive")
    if not 0 <= d.seed_days <= 400:
        raise ConfigError("detect.seed_days: must be from 0 to 400")
    if d.geo not in ("builtin", "maxmind", "off"):
        raise ConfigError("detect.geo: must be builtin, maxmind or off")
    if d.geo == "maxmind" and not (d.maxmind_country_db or d.maxmind_asn_db):
        raise ConfigError("detect.geo: maxmind needs detect.maxmind_country_db or maxmind_asn_db")
    if not 0.1 <= d.summary_llm_timeout_secs <= 120:
        raise ConfigError("detect.summary_llm_timeout_secs: must be from 0.1 to 120")
    if d.summary_llm_url and not re.match(r"https?://", d.summary_llm_url):
        raise ConfigError("detect.summary_llm_url: must be an http:// or https:// URL")
    al = cfg.alerts
    if al.public_url and not re.match(r"https?://[^/\s]+", al.public_url):
        raise ConfigError("alerts.public_url: must be an http:// or https:// URL")
    if not 0 <= al.update_interval_secs <= 86400:
        raise ConfigError("alerts.update_interval_secs: must be from 0 to 86400")
    if not 1.0 <= al.update_peak_factor <= 1000:
        raise ConfigError("alerts.update_peak_factor: must be from 1 to 1000")
    if not 1 <= al.give_up_after_secs <= 7 * 86400:
        raise ConfigError("alerts.give_up_after_secs: must be from 1 to 604800")
    if not 0.1 <= al.attempt_timeout_secs <= 300:
        raise ConfigError("alerts.attempt_timeout_secs: must be from 0.1 to 300")
    if not 1 <= al.per_channel_concurrency <= 64:
        raise ConfigError("alerts.per_channel_concurrency: must be from 1 to 64")
    if al.log_retention_days < 1:
        raise ConfigError("alerts.log_retention_days: must be at least 1")
    if not 0.01 <= al.retry_base_secs <= al.retry_max_secs <= 86400:
        raise ConfigError(
            "alerts.retry_base_secs and retry_max_secs: need 0.01 <= base <= max <= 86400"
        )
    return cfg


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX) :]
        if "__" not in rest:
            continue  # not configuration-shaped (e.g. a script's FLOODWATCH_TOKEN)
        parts = rest.lower().split("__")
        if parts[0] == "agent":
            continue  # the agent's own settings (agent/config.py), not the server's
        if len(parts) != 2 or not all(parts):
            raise ConfigError(
                f"environment variable {key}: expected FLOODWATCH_<SECTION>__<SETTING>"
            )
        tree.setdefault(parts[0], {})[parts[1]] = value
    return tree


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the configuration from defaults, an optional TOML file and the environment."""
    cfg = Config()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        cfg = _build(Config, data, "", False, cfg)
    env = _env_tree(os.environ if environ is None else environ)
    if env:
        cfg = _build(Config, env, "", True, cfg)
    return _validate(cfg)


def apply_overrides(cfg: Config, section: str, **values: Any) -> Config:
    """Apply command-line flags (already typed); ``None`` values are left alone."""
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        return cfg
    sub = dataclasses.replace(getattr(cfg, section), **changes)
    return _validate(dataclasses.replace(cfg, **{section: sub}))


def iter_settings() -> list[tuple[str, Any, str, str]]:
    """Every setting as (dotted path, default, type name, doc)."""
    out: list[tuple[str, Any, str, str]] = []
    hints = _section_types(Config)
    for sec in dataclasses.fields(Config):
        cls = hints[sec.name]
        sub_hints = _section_types(cls)
        for f in dataclasses.fields(cls):
            out.append(
                (f"{sec.name}.{f.name}", f.default, sub_hints[f.name].__name__, f.metadata["doc"])
            )
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    s = "".join(f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c for c in s)
    return f'"{s}"'


def dump_toml(cfg: Config) -> str:
    """The effective configuration as TOML, each setting preceded by its documentation."""
    lines: list[str] = []
    hints = _section_types(Config)
    for sec in dataclasses.fields(Config):
        cls = hints[sec.name]
        section = getattr(cfg, sec.name)
        lines.append(f"[{sec.name}]")
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['doc']}")
            value = getattr(section, f.name)
            if f.name in SECRET_SETTINGS and value:
                value = "<set, not shown>"  # a dump is pasted into tickets: never the secret
            lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
