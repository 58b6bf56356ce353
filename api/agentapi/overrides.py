"""The agent-config overrides operators set (docs/agent-api.md §4.3), declared once: each key's
check and the type the document shows come from one :class:`Setting`, made by the constructors
below from the same bounds and choices.

From the table :data:`SETTINGS` two ``TypedDict`` models are generated: :class:`AgentConfigPatch`,
the body of a PATCH (every key optional, ``null`` removes a key; ``flow`` and ``l7`` are
:class:`FlowPatch` and :class:`L7Patch`, whose keys take ``null`` too), and
:class:`AgentConfigOverrides`, the stored overrides an answer shows (:class:`FlowOverrides`,
:class:`L7Overrides`). :func:`check_patch` validates a PATCH through the first, one key at a
time in the order sent, so the first bad key is the one answered, with the check's message and
``field`` (``flow.port``; an unknown key inside ``flow`` names ``flow``).

Each check gets the key it reports (``flow.port``) and returns the value to store: addresses and
networks in their compressed form, blocklist entries as ``{"indicator": ip}`` objects. Inside an
object override a ``null`` the key does not take as a value becomes :data:`UNSET`, the removal of
that key (``l7.rps_threshold`` takes ``null``: no threshold).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, PlainValidator, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python 3.11

from store.errors import InvalidValue

from ..errors import ApiError
from ..models import REQUEST_CONFIG, reuse_check, validate

__all__ = [
    "SETTINGS",
    "UNSET",
    "AgentConfigOverrides",
    "AgentConfigPatch",
    "Check",
    "FlowOverrides",
    "FlowPatch",
    "L7Overrides",
    "L7Patch",
    "Setting",
    "check_patch",
]

Check = Callable[[str, Any], Any]
"""``(key, value)`` -> the value to store, or ``InvalidValue`` naming ``key``."""

UNSET = "\x00unset"
"""What a ``null`` inside an object override becomes when the key takes no ``null`` of its own:
the removal of that key from the stored override (``{"l7": {"action": null}}``)."""

_NO_CONTROL = r"^[^\x00-\x1f]*$"


@dataclass(frozen=True)
class Setting:
    """One override key: its check, the type of what is stored (for the answer's schema) and,
    where a PATCH takes more forms than are stored, the type of what it takes."""

    check: Check
    stored: Any
    given: Any = None

    @property
    def accepted(self) -> Any:
        return self.stored if self.given is None else self.given


# --------------------------------------------------------------------------- the kinds of value


def _bool_check(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise InvalidValue(f"{key} must be true or false", key)
    return v


_BOOL = Setting(_bool_check, bool)


def _int(lo: int, hi: int) -> Setting:
    def check(key: str, v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise InvalidValue(f"{key} must be an integer from {lo} to {hi}", key)
        return v

    return Setting(check, Annotated[int, Field(ge=lo, le=hi)])


def _num(lo: float, hi: float, nullable: bool = False) -> Setting:
    def check(key: str, v: Any) -> float | int | None:
        if v is None and nullable:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            raise InvalidValue(f"{key} must be a number from {lo:g} to {hi:g}", key)
        return v

    number = Annotated[float, Field(ge=lo, le=hi)]
    return Setting(check, number | None if nullable else number)


def _choice(*choices: str) -> Setting:
    def check(key: str, v: Any) -> str:
        if v not in choices:
            raise InvalidValue(f"{key} must be one of {', '.join(choices)}", key)
        return str(v)

    return Setting(check, Literal[choices])


def _text_check(max_len: int) -> Check:
    def check(key: str, v: Any) -> str:
        if not isinstance(v, str) or len(v) > max_len or any(ord(c) < 32 for c in v):
            raise InvalidValue(f"{key} must be a string of at most {max_len} characters", key)
        return v

    return check


def _text_type(max_len: int, description: str | None = None) -> Any:
    return Annotated[str, Field(max_length=max_len, pattern=_NO_CONTROL, description=description)]


def _text(max_len: int) -> Setting:
    return Setting(_text_check(max_len), _text_type(max_len))


_MAX_ITEMS = 1000
_IP = Annotated[str, Field(description="An IPv4 or IPv6 address.")]
_NETWORK = Annotated[
    str, Field(description="A network in CIDR notation (an address alone is its /32 or /128).")
]


def _addresses(parse: Callable[[str], Any], plural: str, noun: str) -> Check:
    """A list of at most 1000 addresses (or networks), each stored in its compressed form."""

    def check(key: str, v: Any) -> list[str]:
        if not isinstance(v, list) or len(v) > _MAX_ITEMS:
            raise InvalidValue(f"{key} must be a list of at most 1000 {plural}", key)
        out = []
        for item in v:
            try:
                out.append(parse(str(item)).compressed)
            except ValueError:
                raise InvalidValue(f"{key} holds {item!r}, which is not {noun}", key) from None
        return out

    return check


_ip_list_check = _addresses(ipaddress.ip_address, "IP addresses", "an IP address")
_cidr_list_check = _addresses(
    lambda text: ipaddress.ip_network(text, strict=False), "networks (CIDR)", "a network"
)
_IP_LIST = Setting(_ip_list_check, Annotated[list[_IP], Field(max_length=_MAX_ITEMS)])


_CIDR_LIST = Setting(_cidr_list_check, Annotated[list[_NETWORK], Field(max_length=_MAX_ITEMS)])

_PATTERN_TEXT, _ATTACK_TEXT = 256, 100


@with_config(ConfigDict(extra="allow"))
class IocPatternInput(TypedDict):
    """An indicator pattern as a PATCH gives it; other keys are ignored."""

    pattern: _text_type(_PATTERN_TEXT)  # type: ignore[valid-type]
    attack_name: NotRequired[_text_type(_ATTACK_TEXT, 'Default "ioc".')]  # type: ignore[valid-type]
    attack_family: NotRequired[_text_type(_ATTACK_TEXT, 'Default "unknown".')]  # type: ignore[valid-type]


@with_config(ConfigDict(extra="forbid"))
class IocPattern(TypedDict):
    """An indicator pattern as stored."""

    pattern: _text_type(_PATTERN_TEXT)  # type: ignore[valid-type]
    attack_name: _text_type(_ATTACK_TEXT)  # type: ignore[valid-type]
    attack_family: _text_type(_ATTACK_TEXT)  # type: ignore[valid-type]


def _ioc_check(key: str, v: Any) -> list[dict[str, str]]:
    if not isinstance(v, list) or len(v) > _MAX_ITEMS:
        raise InvalidValue(f"{key} must be a list of at most 1000 patterns", key)
    pattern, attack = _text_check(_PATTERN_TEXT), _text_check(_ATTACK_TEXT)
    out = []
    for item in v:
        if not isinstance(item, dict) or not isinstance(item.get("pattern"), str):
            raise InvalidValue(f"{key} entries must be objects with a string pattern", key)
        out.append(
            {
                "pattern": pattern(key, item["pattern"]),
                "attack_name": attack(key, item.get("attack_name", "ioc")),
                "attack_family": attack(key, item.get("attack_family", "unknown")),
            }
        )
    return out


_IOC_PATTERNS = Setting(
    _ioc_check,
    Annotated[list[IocPattern], Field(max_length=_MAX_ITEMS)],
    Annotated[list[IocPatternInput], Field(max_length=_MAX_ITEMS)],
)


@with_config(ConfigDict(extra="allow"))
class BlocklistEntryInput(TypedDict):
    """A blocked address as a PATCH may give it; other keys are ignored."""

    indicator: _IP


@with_config(ConfigDict(extra="forbid"))
class BlocklistEntry(TypedDict):
    """A blocked address as stored."""

    indicator: _IP


def _blocklist_check(key: str, v: Any) -> list[dict[str, str]]:
    if not isinstance(v, list):
        raise InvalidValue(f"{key} must be a list of {{indicator: ip}} objects or IPs", key)
    ips = _ip_list_check(key, [i.get("indicator") if isinstance(i, dict) else i for i in v])
    return [{"indicator": ip} for ip in ips]


_BLOCKLIST = Setting(
    _blocklist_check,
    Annotated[list[BlocklistEntry], Field(max_length=_MAX_ITEMS)],
    Annotated[list[BlocklistEntryInput | _IP], Field(max_length=_MAX_ITEMS)],
)

_MAX_LABELS = 10_000


def _labels_check(key: str, v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or len(v) > _MAX_LABELS:
        raise InvalidValue(f"{key} must be an object of address -> label", key)
    label = _text_check(100)
    return {str(k): label(key, text) for k, text in v.items()}


_LABELS = Setting(
    _labels_check,
    Annotated[
        dict[str, _text_type(100)],  # type: ignore[misc]
        Field(max_length=_MAX_LABELS, description="Address -> label."),
    ],
)


def _object(name: str, spec: Mapping[str, Setting]) -> Setting:
    """An object override (``flow``, ``l7``): its keys checked in the order sent, merged into
    the stored object by key. The models ``<Name>Overrides`` and ``<Name>Patch`` show it."""

    def check(key: str, v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise InvalidValue(f"{key} must be an object", key)
        out: dict[str, Any] = {}
        for k, value in v.items():
            if k not in spec:
                raise InvalidValue(f"{key}.{k} is not a setting of {key}", key)
            try:
                out[k] = spec[k].check(f"{key}.{k}", value)
            except InvalidValue:
                if value is not None:
                    raise
                out[k] = UNSET
        return out

    stored = _typed_dict(f"{name}Overrides", {k: s.stored for k, s in spec.items()}, stored=True)
    given = _typed_dict(f"{name}Patch", {k: s.accepted | None for k, s in spec.items()})
    return Setting(check, stored, given)


def _typed_dict(name: str, fields: Mapping[str, Any], *, stored: bool = False) -> Any:
    """A ``TypedDict`` of ``fields``, all optional and unknown keys refused."""
    model: Any = TypedDict(name, dict(fields), total=False)  # type: ignore[misc]
    model.__module__ = __name__
    return with_config(ConfigDict(extra="forbid") if stored else REQUEST_CONFIG)(model)


# --------------------------------------------------------------------------- the settings

SETTINGS: dict[str, Setting] = {
    "pps_threshold": _num(0, 1e12),
    "dynamic_threshold": _BOOL,
    "pcap_enabled": _BOOL,
    "velocity_detection": _BOOL,
    "attack_holddown": _int(3, 3600),
    "attack_cooldown": _num(10, 86_400),
    "confirm_ticks": _int(2, 30),
    "gre_mode": _choice("enabled", "disabled", "auto"),
    "gre_max_depth": _int(1, 8),
    "hypervisor_mode": _BOOL,
    "vm_labels": _LABELS,
    "ioc_patterns": _IOC_PATTERNS,
    "ip_blocklist": _BLOCKLIST,
    "preferred_firewall": _choice("iptables", "nftables", "ufw", "firewalld"),
    "suspended": _BOOL,
    "mirror_subnets": _CIDR_LIST,
    "mirror_ip_labels": _LABELS,
    "mirror_ip_limit": _int(1, 100_000),
    "mirror_blocked": _BOOL,
    "mirror_message": _text(500),
    "flow": _object(
        "Flow",
        {
            "enabled": _BOOL,
            "protocol": _choice("auto", "sflow", "netflow_v5", "netflow_v9", "ipfix"),
            "port": _int(0, 65535),
            "sample_rate": _int(0, 1_000_000),
            "source_ips": _IP_LIST,
            "node_ip": _text(45),
        },
    ),
    "l7": _object(
        "L7",
        {
            "enabled": _BOOL,
            "action": _choice("auto_detect"),
            "log_path": _text(1024),
            "rps_threshold": _num(1, 1e9, nullable=True),
            "error_rate_threshold": _num(1, 100),
            "sensitivity": _choice("low", "medium", "high"),
        },
    ),
}
"""Every key an operator may override, in the order the document lists them."""


def _patch_field(key: str, setting: Setting) -> Any:
    def run(value: Any) -> Any:
        return None if value is None else setting.check(key, value)

    return Annotated[
        setting.accepted | None,
        PlainValidator(reuse_check(run), json_schema_input_type=setting.accepted | None),
    ]


AgentConfigPatch = _typed_dict(
    "AgentConfigPatch", {key: _patch_field(key, s) for key, s in SETTINGS.items()}
)
AgentConfigPatch.__doc__ = (
    "Overrides to set; null removes one. The objects (flow, l7) merge key by key, and null for "
    'a key inside one removes that key (`{"l7": {"action": null}}`).'
)
AgentConfigOverrides = _typed_dict(
    "AgentConfigOverrides", {key: s.stored for key, s in SETTINGS.items()}, stored=True
)
AgentConfigOverrides.__doc__ = (
    "Agent config overrides: the keys of GET /api/v1/agent/config an operator set."
)
FlowPatch, FlowOverrides = SETTINGS["flow"].given, SETTINGS["flow"].stored
L7Patch, L7Overrides = SETTINGS["l7"].given, SETTINGS["l7"].stored


def check_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` checked through :class:`AgentConfigPatch`, key by key in the order sent: the
    values to store (``None`` removes a key, :data:`UNSET` a key inside an object); 400 at the
    first key that is not a setting or whose value its check refuses."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key not in SETTINGS:
            raise ApiError(400, "invalid_parameter", f"{key} is not an agent setting", field=key)
        out[key] = validate(AgentConfigPatch, {key: value})[key]
    return out
