"""The server's configuration: the ``Config`` tree declared in ``settings/declaration.py``,
its range checks, and how it is loaded.

Sources, later ones winning: the defaults, an optional TOML file, ``FLOODWATCH_*`` environment
variables that follow the config path (``FLOODWATCH_SERVER__PORT=9000``), and finally
command-line flags. Unknown keys, unknown ``FLOODWATCH_*`` variables and values of the wrong
type are errors, never ignored (the shared machinery is ``settings/__init__.py``, also used by
``agent/config.py``).

``docs/configuration.md`` documents every setting; tests/test_config.py checks it against the
declaration both ways.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

import settings
from settings import ConfigError
from settings.declaration import (
    SERVER_SECTIONS,
    AlertsConfig,
    ApiConfig,
    Config,
    DetectConfig,
    IngestConfig,
    LakeConfig,
    ServerConfig,
    StoreConfig,
)

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

SECRET_SETTINGS = frozenset({"summary_llm_api_key", "metrics_token"})

_LOG_LEVELS = ("debug", "info", "warning", "error")
_METRICS_TOKEN = re.compile(r"[\x21-\x7e]{16,256}")
_MEMORY = re.compile(r"(?i)\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)")


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


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the configuration from defaults, an optional TOML file and the environment."""
    cfg = Config()
    if path is not None:
        cfg = settings.build(Config, settings.read_toml(path), cfg)
    env = settings.read_environment(os.environ if environ is None else environ, SERVER_SECTIONS)
    if env:
        cfg = settings.build(Config, env, cfg, env=True)
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
    return [(s.path, s.default, s.type_name, s.doc) for s in settings.settings_of(SERVER_SECTIONS)]


def dump_toml(cfg: Config) -> str:
    """The effective configuration as TOML, each setting preceded by its documentation."""
    return settings.dump_toml(cfg, SECRET_SETTINGS)
