"""Agent configuration: one ``[agent]`` table, declared as ``AgentConfig`` in
``settings/declaration.py`` next to the server's settings.

Sources, later ones winning: the defaults, an optional TOML file, ``FLOODWATCH_AGENT__*``
environment variables (``FLOODWATCH_AGENT__KEY`` keeps the key out of ``ps``), then command-line
flags. Unknown keys and values of the wrong type are errors, never ignored; so is a
``FLOODWATCH_*`` variable that is a setting of neither program nor on the list of other names
(``settings.NON_SETTING_VARIABLES``). The server's variables are checked, and then ignored here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import settings
from settings.declaration import AGENT_SECTIONS, AgentConfig

from .errors import ConfigError

__all__ = ["AgentConfig", "apply_overrides", "iter_settings", "load_agent_config", "validate"]

COMPRESSIONS = ("zstd", "lz4", "none")


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


def _load(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> AgentConfig:
    cfg = AgentConfig()
    if path is not None:
        data = settings.read_toml(path)
        for key in data:
            if key != "agent":
                near = settings.suggest(key, ["agent"])
                raise ConfigError(f"config file {path}: unknown table or key {key!r}{near}")
        section = data.get("agent", {})
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: agent must be a table")
        cfg = settings.build(AgentConfig, section, cfg, "agent.")
    env = settings.read_environment(environ, AGENT_SECTIONS).get("agent")
    if env:
        cfg = settings.build(AgentConfig, env, cfg, "agent.", env=True)
    return cfg


def load_agent_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Defaults, then the TOML file (only an ``[agent]`` table), then the environment. Ranges
    are checked by ``validate`` once the flags are applied."""
    try:
        return _load(path, os.environ if environ is None else environ)
    except ConfigError:
        raise
    except settings.ConfigError as exc:
        raise ConfigError(str(exc)) from None


def apply_overrides(cfg: AgentConfig, **values: Any) -> AgentConfig:
    """Command-line flags (already typed); ``None`` values are left alone."""
    changes = {k: v for k, v in values.items() if v is not None}
    return dataclasses.replace(cfg, **changes) if changes else cfg


def iter_settings() -> list[tuple[str, Any, str]]:
    """Every setting as (name, default, doc), for documentation."""
    return [
        (s.path.removeprefix("agent."), s.default, s.doc)
        for s in settings.settings_of(AGENT_SECTIONS)
    ]
