"""Agent configuration: one ``[agent]`` table.

Sources, later ones winning: the defaults below, an optional TOML file, ``FLOODWATCH_AGENT__*``
environment variables (``FLOODWATCH_AGENT__KEY`` keeps the key out of ``ps``; other
``FLOODWATCH_*`` variables belong to the server and are ignored here), then command-line flags.
Unknown keys and values of the wrong type are errors, never ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["AgentConfig", "apply_overrides", "iter_settings", "load_agent_config", "validate"]

ENV_PREFIX = "FLOODWATCH_AGENT__"
COMPRESSIONS = ("zstd", "lz4", "none")


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class AgentConfig:
    server_url: str = _setting(
        "", "Base URL of the Floodwatch server, e.g. https://fw.example:8080."
    )
    key: str = _setting("", "The node's API key (or a collector key). Prefer the file or env.")
    interface: str = _setting(
        "", "Network interface to measure; empty means the interface of the default route."
    )
    interval_secs: int = _setting(1, "Seconds between two samples of the kernel counters.")
    proc_root: str = _setting("/proc", "Directory laid out like /proc to read counters from.")
    spool_dir: str = _setting(
        "", "Directory for batches the server could not take (empty: no spool, such rows are lost)."
    )
    spool_max_bytes: int = _setting(
        268_435_456, "Largest size of the spool; the oldest batches are dropped beyond it."
    )
    batch_rows: int = _setting(10_000, "Largest number of rows in one batch.")
    max_batch_age_secs: float = _setting(
        5.0, "A batch is sent when its oldest row is this old, even if it is not full."
    )
    compression: str = _setting("zstd", "Arrow IPC buffer compression: zstd, lz4 or none.")
    capture: bool = _setting(
        False, "Sample packets with AF_PACKET (root) for flows, TCP flag rates, distinct sources."
    )
    sample_rate: int = _setting(100, "Packet capture keeps 1 in this many received packets.")


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
            with_no_space = value.strip()
            if with_no_space.lstrip("-").isdigit():
                return int(with_no_space)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{path}: expected a string, got {value!r}")


def _apply(cfg: AgentConfig, data: Mapping[str, Any], from_env: bool) -> AgentConfig:
    hints = typing.get_type_hints(AgentConfig)
    names = {f.name for f in dataclasses.fields(AgentConfig)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            where = f"{ENV_PREFIX}{key.upper()}" if from_env else f"agent.{key}"
            raise ConfigError(f"unknown setting {where}")
        changes[key] = _coerce(f"agent.{key}", value, hints[key], from_env)
    return dataclasses.replace(cfg, **changes)


def validate(cfg: AgentConfig, *, need_server: bool = True) -> AgentConfig:
    """Check ranges; ``need_server`` is False for ``--once`` (which sends nothing)."""
    if need_server:
        url = urlsplit(cfg.server_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError("agent.server_url: must be an http:// or https:// URL")
        if not cfg.key:
            raise ConfigError("agent.key: must be set (file, FLOODWATCH_AGENT__KEY or --key)")
    if cfg.interval_secs < 1:
        raise ConfigError("agent.interval_secs: must be at least 1")
    if not cfg.proc_root:
        raise ConfigError("agent.proc_root: must not be empty")
    if cfg.spool_max_bytes < 0:
        raise ConfigError("agent.spool_max_bytes: must not be negative")
    if cfg.batch_rows < 1:
        raise ConfigError("agent.batch_rows: must be at least 1")
    if not cfg.max_batch_age_secs > 0:
        raise ConfigError("agent.max_batch_age_secs: must be positive")
    if cfg.compression not in COMPRESSIONS:
        raise ConfigError(f"agent.compression: must be one of {', '.join(COMPRESSIONS)}")
    if not 1 <= cfg.sample_rate <= 2**31:
        raise ConfigError("agent.sample_rate: must be between 1 and 2147483648")
    return cfg


def load_agent_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Defaults, then the TOML file (only an ``[agent]`` table), then the environment. Ranges
    are checked by ``validate`` once the flags are applied."""
    cfg = AgentConfig()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key in data:
            if key != "agent":
                raise ConfigError(f"config file {path}: unknown table or key {key!r}")
        section = data.get("agent", {})
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: agent must be a table")
        cfg = _apply(cfg, section, from_env=False)
    env = os.environ if environ is None else environ
    from_env = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    if from_env:
        cfg = _apply(cfg, from_env, from_env=True)
    return cfg


def apply_overrides(cfg: AgentConfig, **values: Any) -> AgentConfig:
    """Command-line flags (already typed); ``None`` values are left alone."""
    changes = {k: v for k, v in values.items() if v is not None}
    return dataclasses.replace(cfg, **changes) if changes else cfg


def iter_settings() -> list[tuple[str, Any, str]]:
    """Every setting as (name, default, doc), for documentation."""
    return [(f.name, f.default, f.metadata["doc"]) for f in dataclasses.fields(AgentConfig)]
