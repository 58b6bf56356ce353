"""The typed configuration machinery shared by the server (``api/config.py``) and
``floodwatch agent`` (``agent/config.py``).

Every setting of both is declared once, in ``settings/declaration.py``, as a field of a frozen
dataclass with its default, its type and a ``doc``. This module turns TOML tables and
``FLOODWATCH_*`` environment variables into those dataclasses: values of the wrong type,
unknown TOML keys and unknown ``FLOODWATCH_*`` variables are errors naming them (with the
closest real name when one is close), never ignored. Range checks stay with each program
(``api.config`` and ``agent.config``).

The environment has one namespace for both programs: ``FLOODWATCH_<SECTION>__<SETTING>`` names
a setting of the server (sections ``server``, ``api``, ...) or of the agent (section ``agent``).
Each program takes the values of its own sections and checks, but ignores, the other's; every
other ``FLOODWATCH_*`` name must be on ``NON_SETTING_VARIABLES`` or it is an error.

This package imports nothing else of Floodwatch, so every package may import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .declaration import ENV_SECTIONS, setting

__all__ = [
    "ENV_PREFIX",
    "NON_SETTING_VARIABLES",
    "ConfigError",
    "Setting",
    "build",
    "coerce",
    "dump_toml",
    "env_name",
    "read_environment",
    "read_toml",
    "setting",
    "settings_of",
    "suggest",
]

ENV_PREFIX = "FLOODWATCH_"

# FLOODWATCH_* variables that are not settings and that no program may refuse. Anything else
# named FLOODWATCH_* must be a setting (FLOODWATCH_<SECTION>__<SETTING>). Listed, with the
# same words, in docs/configuration.md ("Environment variables that are not settings").
NON_SETTING_VARIABLES: Mapping[str, str] = {
    "FLOODWATCH_DUCKDB1": (
        "The test suite: directory of the virtualenv with DuckDB 1.x "
        "(tests/test_lake_readers_duckdb1.py, `make test`)."
    ),
    "FLOODWATCH_TOKEN": (
        "Free for scripts and shells that keep a deploy token in it; Floodwatch never reads it."
    ),
}


class ConfigError(ValueError):
    """A configuration file, environment variable or flag is invalid."""


class Setting(NamedTuple):
    """One declared setting: dotted path, default, type name, doc and environment variable."""

    path: str
    default: Any
    type_name: str
    doc: str
    env: str


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


def _fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def settings_of(sections: Mapping[str, type]) -> list[Setting]:
    """Every setting of ``sections`` (section name -> dataclass), in declaration order."""
    out: list[Setting] = []
    for sec, cls in sections.items():
        for f, typ in _fields(cls):
            out.append(
                Setting(
                    f"{sec}.{f.name}",
                    f.default,
                    typ.__name__,
                    f.metadata["doc"],
                    env_name(sec, f.name),
                )
            )
    return out


def suggest(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the candidate closest to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.8)
    return f"; did you mean {close[0]}?" if close else ""


def coerce(path: str, value: Any, typ: Any, from_env: bool) -> Any:
    """``value`` as ``typ``; TOML values must have the real type, environment strings are
    parsed."""
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
            with contextlib.suppress(ValueError):
                return int(value.strip())
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
    raise ConfigError(f"{path}: unsupported type {typ!r}")  # pragma: no cover


def build(
    cls: type, data: Mapping[str, Any], base: Any, prefix: str = "", *, env: bool = False
) -> Any:
    """``base`` (an instance of the dataclass ``cls``) with the values of ``data``; nested
    dataclasses are TOML tables. Unknown keys are errors naming ``prefix`` + key."""
    fields = _fields(cls)
    names = [f.name for f, _ in fields]
    for key in data:
        if key not in names:
            near = suggest(prefix + key, [prefix + n for n in names])
            raise ConfigError(f"unknown setting {prefix}{key}{near}")
    changes: dict[str, Any] = {}
    for f, typ in fields:
        if f.name not in data:
            continue
        value = data[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a table")
            changes[f.name] = build(
                typ,  # type: ignore[arg-type]
                value,
                getattr(base, f.name),
                path + ".",
                env=env,
            )
        else:
            changes[f.name] = coerce(path, value, typ, env)
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class _EnvName:
    section: str
    key: str


def _env_names() -> dict[str, _EnvName]:
    return {
        env_name(sec, f.name): _EnvName(sec, f.name)
        for sec, cls in ENV_SECTIONS.items()
        for f in dataclasses.fields(cls)
    }


def _unknown_variable(name: str, known: Iterable[str]) -> ConfigError:
    rest = name[len(ENV_PREFIX) :]
    parts = rest.lower().split("__")
    if len(parts) == 2 and all(parts):
        what = f"unknown setting {name} ({parts[0]}.{parts[1]})"
    else:
        what = f"unknown environment variable {name}"
    close = difflib.get_close_matches(
        rest.upper(), [k[len(ENV_PREFIX) :] for k in known], n=1, cutoff=0.8
    )
    if close:
        return ConfigError(f"{what}; did you mean {ENV_PREFIX}{close[0]}?")
    return ConfigError(
        f"{what}: a FLOODWATCH_* variable must be a setting, FLOODWATCH_<SECTION>__<SETTING>, "
        "or one of the other names listed in docs/configuration.md"
    )


def read_environment(
    environ: Mapping[str, str], sections: Iterable[str]
) -> dict[str, dict[str, str]]:
    """The values of ``FLOODWATCH_<SECTION>__<SETTING>`` variables of ``sections``, as
    {section: {setting: string}}. A ``FLOODWATCH_*`` variable that is not a setting of any
    program (after the prefix, case does not matter) and not on ``NON_SETTING_VARIABLES`` is
    an error naming it."""
    known = _env_names()
    wanted = set(sections)
    tree: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_VARIABLES:
            continue
        found = known.get(ENV_PREFIX + name[len(ENV_PREFIX) :].upper())
        if found is None:
            raise _unknown_variable(name, [*known, *NON_SETTING_VARIABLES])
        if found.section in wanted:
            tree.setdefault(found.section, {})[found.key] = value
    return tree


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    s = "".join(f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c for c in s)
    return f'"{s}"'


def dump_toml(cfg: Any, secrets: frozenset[str] = frozenset()) -> str:
    """``cfg`` (a dataclass of sections) as TOML, each setting preceded by its doc; the values
    of the settings named in ``secrets`` (bare names) are not shown when set."""
    lines: list[str] = []
    for sec, _ in _fields(type(cfg)):
        section = getattr(cfg, sec.name)
        lines.append(f"[{sec.name}]")
        for f in dataclasses.fields(section):
            lines.append(f"# {f.metadata['doc']}")
            value = getattr(section, f.name)
            if f.name in secrets and value:
                value = "<set, not shown>"  # a dump is pasted into tickets: never the secret
            lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
