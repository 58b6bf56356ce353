"""Detection settings through REST (``/api/v1/workspace/detection``,
``/api/v1/nodes/{uuid}/detection``): the full settings, the partial ones a PATCH sends and an
answer lists as overrides, and the answer, for the OpenAPI document and the tests.

The settings' names, kinds, bounds and defaults are ``detect.settings``' (the dataclass
``DetectionSettings``, ``INT_BOUNDS``, ``FLOAT_BOUNDS``, ``SENSITIVITY``, ``SERIES_NAMES``): the
models are built from them, so a bound changes in one place. Only the descriptions are
written here. A PATCH is still checked by ``detect.settings.validate_patch`` (through
``api.detection.patch_overrides``), which also serves stored overrides and backtests; the
models document the same rules, and ``tests/test_detection_models.py`` checks that both agree.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from detect.settings import (
    FLOAT_BOUNDS,
    INT_BOUNDS,
    SENSITIVITY,
    SERIES_NAMES,
)
from detect.settings import (
    DetectionSettings as Defaults,
)

from . import RequestModel, ResponseModel
from .envelopes import envelope

__all__ = [
    "DetectionAnswer",
    "DetectionOverrides",
    "DetectionPatch",
    "DetectionSettings",
]

_DESCRIPTIONS = {
    "enabled": "Detect on this workspace's or node's traffic at all.",
    "sensitivity": "Scales every relative threshold: low asks for more excess over the "
    "baseline, high for less.",
    "multiplier": "Smallest over-baseline factor that counts as attack evidence when the "
    "traffic mix changed too (a same-mix rise needs twice this).",
    "floor_pps": "Absolute floor: seconds below this pps (and below floor_bps) never count.",
    "floor_bps": "Absolute floor in bits per second.",
    "confirm_seconds": "Most consecutive anomalous seconds a moderate excess needs before an "
    "incident opens (large excesses open sooner).",
    "hold_down_secs": "Normal seconds needed before an incident resolves.",
    "bridge_secs": "An incident stays open this long after its last attack second, so a "
    "pulsed attack is one incident.",
    "cooldown_secs": "After a resolve, a new incident on the node needs full confirmation for "
    "this long.",
    "late_window_secs": "How late (event time) a row may arrive and still be counted.",
    "silence_expiry_secs": "An incident whose node sends nothing this long resolves "
    "(ended_reason no_data).",
    "update_interval_secs": "Fewest seconds between two updates of one incident.",
    "series": "Series on (true) or off (false); pps and bps cannot both be off.",
}

SeriesName = Literal[SERIES_NAMES]  # type: ignore[valid-type]
Sensitivity = Literal[tuple(SENSITIVITY)]  # type: ignore[valid-type]


def _kind(name: str) -> Any:
    """The type of setting ``name``, with its bounds."""
    if name == "enabled":
        return bool
    if name == "sensitivity":
        return Sensitivity
    if name in INT_BOUNDS:
        lo, hi = INT_BOUNDS[name]
        return Annotated[int, Field(ge=lo, le=hi)]
    if name in FLOAT_BOUNDS:
        flo, fhi = FLOAT_BOUNDS[name]
        return Annotated[float, Field(ge=flo, le=fhi, allow_inf_nan=False)]
    raise ValueError(f"detect.settings has a setting the API does not know: {name}")


def _settings_fields(*, required: bool, nullable: bool = False) -> dict[str, Any]:
    """Every setting of ``DetectionSettings``, in its order: required, with its default named,
    or optional (left out: not set at this level) and, when ``nullable``, ``null`` too (it
    removes an override)."""
    defaults = Defaults()
    out: dict[str, Any] = {}
    for setting in fields(Defaults):
        name = setting.name
        description = _DESCRIPTIONS[name]
        if name == "series":
            flag: Any = bool | None if nullable else bool
            kind: Any = dict[SeriesName, flag]
        else:
            kind = _kind(name)
        if required:
            extra = {} if name == "series" else {"default": getattr(defaults, name)}
            field = Field(description=description, json_schema_extra=extra)
            out[name] = (Annotated[kind, field], ...)
        else:
            kind = kind | None if nullable else kind
            field = Field(default=None, description=description, json_schema_extra=_no_default)
            out[name] = (kind, field)
    return out


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


DetectionSettings: type[ResponseModel] = create_model(
    "DetectionSettings",
    __base__=ResponseModel,
    __module__=__name__,
    __doc__="Every detection setting.",
    **_settings_fields(required=True),
)
DetectionPatch: type[RequestModel] = create_model(
    "DetectionPatch",
    __base__=RequestModel,
    __module__=__name__,
    __doc__="Settings to override; null removes an override (inside series too). Unknown keys, "
    "wrong types and values out of bounds are 400 naming the field. Takes effect at once.",
    **_settings_fields(required=False, nullable=True),
)


DetectionOverrides: type[ResponseModel] = create_model(
    "DetectionOverrides",
    __base__=ResponseModel,
    __module__=__name__,
    __doc__="The settings set at this level; the others are left out.",
    **_settings_fields(required=False),
)

DetectionAnswer = envelope(
    "DetectionAnswer",
    detection=Annotated[DetectionSettings, Field(description="The effective settings.")],
    overrides=Annotated[DetectionOverrides, Field(description="What is set at this level.")],
    inherited=Annotated[
        DetectionSettings,
        Field(
            description="What applies without this level's overrides (the defaults, or the "
            "workspace's settings for a node)."
        ),
    ],
)
