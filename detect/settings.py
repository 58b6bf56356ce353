"""Per-node detection settings and their validation.

``DetectionSettings`` is a frozen dataclass; the server stores it as a plain dict
(``to_dict``/``from_dict``) and changes it with a partial patch checked by ``validate_patch``,
which returns the merged dict or raises ``SettingsError(field, message)`` naming the dotted
field (``series.syn_pps``, ``floor_pps``...). Unknown keys are errors, so a typo never silently
does nothing.

Defaults and why:

- ``sensitivity`` ``medium``: scales every relative threshold. ``low`` demands 40 % more
  excess over the baseline's own threshold, ``high`` 25 % less (factors in ``SENSITIVITY``).
- ``multiplier`` 1.7: the over-baseline multiplier that counts as attack evidence when the
  traffic mix also changed. The issue's target is recall for attacks of 3x baseline and above,
  and ramps should be caught early, so it sits well below 3x. With a strongly changed mix the
  engine asks for less (down to ``1 + (multiplier - 1) / 4``); with an unchanged mix (a flash
  crowd looks like that) for ``multiplier ** 4`` (about 8x). See ``detect.engine``.
- ``floor_pps`` 500 and ``floor_bps`` 5 Mbit/s: absolute floors on the *excess* over the
  expected rate. A node idling at 50 pps therefore never opens an incident at 500 pps (450 pps
  of excess), while a 1,000 pps node under a 3x flood (2,000 pps of excess) does.
- ``confirm_seconds`` 3: the most seconds a moderate excess needs before an incident opens;
  big excesses confirm sooner (see ``detect.engine``).
- ``hold_down_secs`` 15: observed normal seconds needed before an incident may resolve.
- ``bridge_secs`` 90: an incident also stays open until this long after its last attack second,
  so an on/off (pulsed) attack with off phases up to 90 s stays one incident.
- ``cooldown_secs`` 300: after a resolve, a new incident on the same node needs the full
  ``confirm_seconds`` for anything but a very large excess (no flapping).
- ``late_window_secs`` 10, ``silence_expiry_secs`` 600, ``update_interval_secs`` 5: see the
  detector contract.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "FLOAT_BOUNDS",
    "INT_BOUNDS",
    "SENSITIVITY",
    "SERIES_NAMES",
    "DetectionSettings",
    "SettingsError",
    "check_names",
    "validate_patch",
]

#: Series with a baseline of their own (``detect.frames.SERIES`` is this tuple).
SERIES_NAMES: tuple[str, ...] = (
    "pps",
    "bps",
    "tcp_pps",
    "udp_pps",
    "icmp_pps",
    "other_pps",
    "syn_pps",
    "ack_pps",
    "rst_pps",
    "fin_pps",
    "frag_pps",
    "distinct_sources",
    "avg_pkt_len",
)

#: Threshold factor applied to every relative threshold (in log space: a factor of 1.4 asks for
#: 40 % more log-excess).
SENSITIVITY: dict[str, float] = {"low": 1.4, "medium": 1.0, "high": 0.75}


class SettingsError(ValueError):
    """A settings patch was refused; ``field`` is the dotted name of the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _all_series() -> dict[str, bool]:
    return dict.fromkeys(SERIES_NAMES, True)


@dataclass(frozen=True)
class DetectionSettings:
    enabled: bool = True
    sensitivity: str = "medium"
    multiplier: float = 1.7
    floor_pps: float = 500.0
    floor_bps: float = 5_000_000.0
    confirm_seconds: int = 3
    hold_down_secs: int = 15
    bridge_secs: int = 90
    cooldown_secs: int = 300
    late_window_secs: int = 10
    silence_expiry_secs: int = 600
    update_interval_secs: int = 5
    series: dict[str, bool] = field(default_factory=_all_series)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items(), key=lambda kv: kv[0]).__repr__()))

    @property
    def sensitivity_factor(self) -> float:
        return SENSITIVITY.get(self.sensitivity, 1.0)

    def series_enabled(self, name: str) -> bool:
        return bool(self.series.get(name, True))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["series"] = dict(self.series)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionSettings:
        """Build from a stored dict; the dict is validated as a patch over the defaults."""
        merged = validate_patch(cls().to_dict(), data)
        series = _all_series()
        series.update(merged.pop("series"))
        return cls(series=series, **merged)


_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "confirm_seconds": (1, 30),
    "hold_down_secs": (1, 3600),
    "bridge_secs": (0, 3600),
    "cooldown_secs": (0, 86_400),
    "late_window_secs": (0, 600),
    "silence_expiry_secs": (10, 86_400),
    "update_interval_secs": (1, 3600),
}
_FLOAT_BOUNDS: dict[str, tuple[float, float]] = {
    "multiplier": (1.2, 100.0),
    "floor_pps": (0.0, 1e12),
    "floor_bps": (0.0, 1e15),
}

#: Inclusive bounds of the integer settings (name -> (low, high)), e.g. for a schema document.
INT_BOUNDS: dict[str, tuple[int, int]] = _INT_BOUNDS
#: Inclusive bounds of the number settings (name -> (low, high)).
FLOAT_BOUNDS: dict[str, tuple[float, float]] = _FLOAT_BOUNDS


def _check_value(name: str, value: Any) -> Any:
    if name == "enabled":
        if not isinstance(value, bool):
            raise SettingsError(name, "must be true or false")
        return value
    if name == "sensitivity":
        if not isinstance(value, str) or value not in SENSITIVITY:
            raise SettingsError(name, f"must be one of {', '.join(SENSITIVITY)}")
        return value
    if name in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(name, "must be an integer")
        if not lo <= value <= hi:
            raise SettingsError(name, f"must be between {lo} and {hi}")
        return value
    if name in _FLOAT_BOUNDS:
        lo_f, hi_f = _FLOAT_BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(name, "must be a number")
        number = float(value)
        if not math.isfinite(number) or not lo_f <= number <= hi_f:
            raise SettingsError(name, f"must be between {lo_f:g} and {hi_f:g}")
        return number
    raise SettingsError(name, "unknown setting")


_NAMES = frozenset(f.name for f in fields(DetectionSettings))


def check_names(patch: dict[str, Any]) -> None:
    """Raise ``SettingsError`` for the first key of ``patch`` that is no setting, or the first
    name inside ``series`` that is no series, whatever its value (``null`` included)."""
    for key, value in patch.items():
        if not isinstance(key, str) or key not in _NAMES:
            raise SettingsError(str(key), "unknown setting")
        if key == "series" and isinstance(value, dict):
            for name in value:
                if name not in SERIES_NAMES:
                    raise SettingsError(f"series.{name}", "unknown series")


def validate_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``current`` (both plain dicts) and return the merged dict.

    ``series`` merges key by key. Raises ``SettingsError`` naming the dotted field on an unknown
    key, a wrong type or a value out of bounds. ``current`` is not modified."""
    if not isinstance(patch, dict):
        raise SettingsError("detection", "must be an object")
    merged: dict[str, Any] = dict(current)
    merged["series"] = dict(current.get("series") or _all_series())
    for key, value in patch.items():
        if not isinstance(key, str) or key not in _NAMES:
            raise SettingsError(str(key), "unknown setting")
        if key == "series":
            if not isinstance(value, dict):
                raise SettingsError("series", "must be an object of series name to true/false")
            for name, flag in value.items():
                if name not in SERIES_NAMES:
                    raise SettingsError(f"series.{name}", "unknown series")
                if not isinstance(flag, bool):
                    raise SettingsError(f"series.{name}", "must be true or false")
                merged["series"][name] = flag
            continue
        merged[key] = _check_value(key, value)
    if not merged["series"].get("pps", True) and not merged["series"].get("bps", True):
        raise SettingsError("series.pps", "pps and bps cannot both be disabled")
    return merged
