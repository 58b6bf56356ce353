"""Offline country and AS lookup of source addresses, for incident enrichment.

Two backends, chosen with :meth:`GeoLookup.open`:

- ``builtin`` (default): the country + ASN data file shipped inside the ``geoip2fast`` package
  (``geoip2fast-asn-ipv6.dat.gz``, GeoLite2-derived, IPv4 and IPv6). Nothing is downloaded at run
  time. That file carries the AS *organization* name but not the AS *number*, so ``asn`` is
  always ``None`` in this mode.
- ``maxmind``: MaxMind DB files read with the ``maxminddb`` package, a GeoLite2/GeoIP2
  ``Country`` (or ``City``) file for the country and a ``GeoLite2-ASN`` file for the AS number
  and organization. Either file may be left out; its fields are then ``None``.

Every lookup answers ``(country, asn, as_org)``: an ISO 3166-1 alpha-2 code or ``None``, the AS
number or ``None``, the AS organization or ``None``. Private, reserved, loopback, multicast and
other non-global addresses, and text that is not an address, give ``(None, None, None)`` whatever
the database says. An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is looked up as its IPv4
address. Answers are kept in an LRU cache keyed by the address text.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "GeoConfig",
    "GeoError",
    "GeoLookup",
    "GeoResult",
    "normalize_address",
    "open_configured",
]

#: ``(country, asn, as_org)``
GeoResult = tuple[str | None, int | None, str | None]

DEFAULT_CACHE_SIZE = 65_536
_NONE: GeoResult = (None, None, None)
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
#: AS names that geoip2fast gives to unrouted or reserved space.
_NO_AS_ORG = frozenset({"", "<unknown>", "IANA.ORG"})
_BUILTIN_FILE = "geoip2fast-asn-ipv6.dat.gz"


class GeoError(RuntimeError):
    """A geo database could not be opened (a configuration error: raised by ``open`` only)."""


class GeoConfig(Protocol):
    """The geo settings of ``api.config.DetectConfig`` (``detect.geo``, ``detect.maxmind_*``)."""

    @property
    def geo(self) -> str: ...
    @property
    def maxmind_country_db(self) -> str: ...
    @property
    def maxmind_asn_db(self) -> str: ...


def open_configured(cfg: GeoConfig, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoLookup | None:
    """The lookup ``cfg`` describes; ``None`` for ``geo = "off"``. Raises :class:`GeoError`."""
    if cfg.geo == "off":
        return None
    return GeoLookup.open(
        mode=cfg.geo,
        country_db=cfg.maxmind_country_db,
        asn_db=cfg.maxmind_asn_db,
        cache_size=cache_size,
    )


class _Backend(Protocol):
    name: str

    def lookup(self, ip: str) -> GeoResult:
        """Look up one canonical, global address."""
        ...

    def close(self) -> None: ...


def normalize_address(text: str) -> str | None:
    """Canonical text of a global address, or ``None`` for non-global addresses and non-addresses.

    IPv4-mapped IPv6 addresses are given as their IPv4 address.
    """
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if not addr.is_global or addr.is_multicast:
        return None
    return str(addr)


def _clean_country(code: object) -> str | None:
    if isinstance(code, str) and _COUNTRY_RE.match(code):
        return code
    return None


def _clean_org(name: object) -> str | None:
    if isinstance(name, str):
        name = name.strip()
        if name not in _NO_AS_ORG:
            return name
    return None


# --- builtin: geoip2fast ---------------------------------------------------------------------

_builtin_lock = threading.Lock()
#: The process's one geoip2fast reader, under "reader" once loaded.
_builtin: dict[str, Any] = {}


def _builtin_data_file() -> str:
    try:
        import geoip2fast
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise GeoError("geo mode builtin needs the geoip2fast package") from exc
    path = os.path.join(os.path.dirname(geoip2fast.__file__), _BUILTIN_FILE)
    if not os.path.isfile(path):
        raise GeoError(f"geoip2fast's data file {_BUILTIN_FILE} is missing from its package")
    return path


class _BuiltinBackend:
    """geoip2fast keeps its tables in module globals: one reader per process, shared."""

    name = "builtin"

    def __init__(self) -> None:
        with _builtin_lock:
            if "reader" not in _builtin:
                from geoip2fast import GeoIP2Fast

                path = _builtin_data_file()
                try:
                    _builtin["reader"] = GeoIP2Fast(verbose=False, geoip2fast_data_file=path)
                except Exception as exc:
                    raise GeoError(f"cannot load geoip2fast's data: {exc}") from exc
            self._reader = _builtin["reader"]
        info = self._reader.get_database_info()
        self.source = str(info.get("source_info", "")) if isinstance(info, dict) else ""

    def lookup(self, ip: str) -> GeoResult:
        try:
            res = self._reader.lookup(ip)
        except Exception:
            return _NONE
        if getattr(res, "is_private", False):
            return _NONE
        return (
            _clean_country(getattr(res, "country_code", None)),
            None,
            _clean_org(getattr(res, "asn_name", None)),
        )

    def close(self) -> None:
        """The shared reader stays loaded for the next lookup of the process."""


# --- maxmind: .mmdb files --------------------------------------------------------------------


def _open_mmdb(path: str | os.PathLike[str], what: str) -> Any:
    try:
        import maxminddb
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise GeoError("geo mode maxmind needs the maxminddb package") from exc
    p = Path(path)
    if not p.is_file():
        raise GeoError(f"{what} database {p} does not exist")
    try:
        return maxminddb.open_database(str(p))
    except Exception as exc:
        raise GeoError(f"cannot open {what} database {p}: {exc}") from exc


class _MaxMindBackend:
    name = "maxmind"

    def __init__(self, country_reader: Any, asn_reader: Any) -> None:
        self._country = country_reader
        self._asn = asn_reader
        self.source = "maxmind"

    @staticmethod
    def _get(reader: Any, ip: str) -> dict[str, Any] | None:
        if reader is None:
            return None
        try:
            rec = reader.get(ip)
        except Exception:
            return None
        return rec if isinstance(rec, dict) else None

    def lookup(self, ip: str) -> GeoResult:
        country: str | None = None
        rec = self._get(self._country, ip)
        if rec is not None:
            for key in ("country", "registered_country"):
                sub = rec.get(key)
                if isinstance(sub, dict):
                    country = _clean_country(sub.get("iso_code"))
                    if country is not None:
                        break
        asn: int | None = None
        org: str | None = None
        rec = self._get(self._asn, ip)
        if rec is not None:
            num = rec.get("autonomous_system_number")
            if isinstance(num, int) and not isinstance(num, bool) and num > 0:
                asn = num
            org = _clean_org(rec.get("autonomous_system_organization"))
        return (country, asn, org)

    def close(self) -> None:
        for reader in (self._country, self._asn):
            if reader is not None:
                with contextlib.suppress(Exception):  # a read-only map: nothing to lose
                    reader.close()


class GeoLookup:
    """Country and AS of addresses, cached. Thread-safe; never raises on lookups."""

    def __init__(self, backend: _Backend, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 0:
            raise GeoError("cache_size must not be negative")
        self._backend = backend
        self.cache_size = cache_size
        self._cached = functools.lru_cache(maxsize=cache_size)(self._resolve)

    @classmethod
    def open(
        cls,
        mode: str = "builtin",
        country_db: str | os.PathLike[str] | None = None,
        asn_db: str | os.PathLike[str] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> GeoLookup:
        """Open a lookup. Raises :class:`GeoError` for an unknown mode or an unreadable file.

        An empty path is the same as ``None`` (the configuration's default is ``""``).
        """
        country_db = country_db or None
        asn_db = asn_db or None
        if mode == "builtin":
            return cls(_BuiltinBackend(), cache_size)
        if mode == "maxmind":
            if country_db is None and asn_db is None:
                raise GeoError("geo mode maxmind needs country_db, asn_db or both")
            country = _open_mmdb(country_db, "country") if country_db is not None else None
            try:
                asn = _open_mmdb(asn_db, "ASN") if asn_db is not None else None
            except GeoError:
                if country is not None:
                    country.close()
                raise
            return cls(_MaxMindBackend(country, asn), cache_size)
        raise GeoError(f"unknown geo mode {mode!r}: builtin or maxmind")

    @classmethod
    def from_readers(
        cls,
        country_reader: Any = None,
        asn_reader: Any = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> GeoLookup:
        """A maxmind-mode lookup over already open readers (anything with ``get(ip) -> dict``)."""
        return cls(_MaxMindBackend(country_reader, asn_reader), cache_size)

    @property
    def mode(self) -> str:
        return self._backend.name

    @property
    def source(self) -> str:
        """What the data is (for the builtin mode, geoip2fast's data version)."""
        return str(getattr(self._backend, "source", self._backend.name))

    def _resolve(self, ip: str) -> GeoResult:
        canonical = normalize_address(ip)
        if canonical is None:
            return _NONE
        try:
            return self._backend.lookup(canonical)
        except Exception:
            return _NONE

    def lookup(self, ip: str) -> GeoResult:
        """``(country, asn, as_org)`` of one address."""
        if not isinstance(ip, str):
            return _NONE
        return self._cached(ip)

    def lookup_many(self, ips: Iterable[str | None]) -> dict[str, GeoResult]:
        """Answers for many addresses at once, keyed by the address text as given."""
        out: dict[str, GeoResult] = {}
        cached = self._cached
        for ip in ips:
            if isinstance(ip, str) and ip not in out:
                out[ip] = cached(ip)
        return out

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def clear_cache(self) -> None:
        self._cached.cache_clear()

    def close(self) -> None:
        self.clear_cache()
        self._backend.close()

    def __enter__(self) -> GeoLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
