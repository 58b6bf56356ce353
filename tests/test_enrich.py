"""Incident enrichment: detect/enrich.py (flow breakdown) and detect/geo.py (country and AS)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detect.enrich import AMPLIFICATION_PORTS, amplification_port, empty_breakdown, flow_breakdown
from detect.geo import GeoError, GeoLookup, normalize_address, open_configured

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

SCHEMA: dict[str, pl.DataType] = {
    "time": pl.Datetime("us", "UTC"),
    "src_ip": pl.String(),
    "dst_ip": pl.String(),
    "src_port": pl.Int32(),
    "dst_port": pl.Int32(),
    "protocol": pl.Int16(),
    "tcp_flags": pl.Int16(),
    "packets": pl.Int64(),
    "bytes": pl.Int64(),
    "sampling_rate": pl.Int64(),
    "ttl": pl.Int16(),
    "packet_len": pl.Int32(),
}


def flows(*rows: dict[str, Any]) -> pl.DataFrame:
    full = []
    for r in rows:
        row: dict[str, Any] = {
            "time": T0,
            "dst_ip": "203.0.113.5",
            "sampling_rate": 1000,
            "src_port": 40000,
            "dst_port": 443,
            "tcp_flags": None,
            "ttl": 64,
            "packet_len": None,
        }
        row.update(r)
        full.append(row)
    return pl.DataFrame(full, schema=SCHEMA)


class FakeReader:
    """Stands for an open maxminddb reader: ``get(ip) -> dict | None``."""

    def __init__(self, table: dict[str, dict[str, Any]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def get(self, ip: str) -> dict[str, Any] | None:
        self.calls.append(ip)
        return self.table.get(ip)

    def close(self) -> None:
        pass


def fake_geo() -> tuple[GeoLookup, FakeReader]:
    country = FakeReader(
        {
            "8.8.8.8": {"country": {"iso_code": "US"}},
            "1.1.1.1": {"registered_country": {"iso_code": "AU"}},
            "5.5.5.5": {"country": {"iso_code": "DE"}},
        }
    )
    asn = FakeReader(
        {
            "8.8.8.8": {"autonomous_system_number": 15169, "autonomous_system_organization": "G"},
            "1.1.1.1": {"autonomous_system_number": 13335, "autonomous_system_organization": "CF"},
        }
    )
    return GeoLookup.from_readers(country, asn), country


# --- flow_breakdown ---------------------------------------------------------------------------


def test_protocols_flags_fragments_and_sizes() -> None:
    df = flows(
        # TCP: 100 SYN, 50 SYN-ACK, 30 ACK+PSH, 20 RST
        {"src_ip": "8.8.8.8", "protocol": 6, "tcp_flags": 0x02, "packets": 100, "bytes": 6000},
        {"src_ip": "8.8.8.8", "protocol": 6, "tcp_flags": 0x12, "packets": 50, "bytes": 3000},
        {"src_ip": "1.1.1.1", "protocol": 6, "tcp_flags": 0x18, "packets": 30, "bytes": 3000},
        {"src_ip": "1.1.1.1", "protocol": 6, "tcp_flags": 0x04, "packets": 20, "bytes": 1000},
        # UDP 150 packets from port 123, of which 50 are fragments (both ports 0)
        {"src_ip": "5.5.5.5", "protocol": 17, "src_port": 123, "dst_port": 80, "packets": 100,
         "bytes": 46800},
        {"src_ip": "5.5.5.5", "protocol": 17, "src_port": 0, "dst_port": 0, "packets": 50,
         "bytes": 50000, "ttl": 50},
        # ICMP 40, GRE 10
        {"src_ip": "10.0.0.1", "protocol": 1, "packets": 40, "bytes": 2400},
        {"src_ip": "10.0.0.1", "protocol": 47, "packets": 10, "bytes": 800},
    )  # fmt: skip
    b = flow_breakdown(df, None)
    assert b["total_packets"] == 400
    assert b["total_bytes"] == 113000
    assert b["records"] == 8
    assert b["protocol_breakdown"] == {"tcp": 50.0, "udp": 37.5, "icmp": 10.0, "other": 2.5}
    assert b["tcp_flags"] == {
        "syn": 50.0, "syn_ack": 25.0, "ack": 15.0, "rst": 10.0, "fin": 0.0, "psh": 15.0,
        "urg": 0.0,
    }  # fmt: skip
    assert b["fragments_pct"] == 12.5
    assert b["avg_pkt_len"] == 282.5
    assert b["source_ip_count"] == 4
    assert [s["ip"] for s in b["top_sources"]] == ["5.5.5.5", "8.8.8.8", "1.1.1.1", "10.0.0.1"]
    assert b["top_sources"][0] == {
        "ip": "5.5.5.5", "packets": 150, "bytes": 96800, "share": 37.5,
        "country": None, "asn": None, "as_org": None,
    }  # fmt: skip
    # ports only over TCP and UDP records
    assert b["top_src_ports"] == [
        {"port": 40000, "packets": 200, "share": 50.0},
        {"port": 123, "packets": 100, "share": 25.0},
        {"port": 0, "packets": 50, "share": 12.5},
    ]
    assert {"port": 80, "packets": 100, "share": 25.0} in b["top_dst_ports"]
    assert b["ttl"][0] == {"ttl": 64, "packets": 350, "share": 87.5}
    assert b["geo_origin"] == [] and b["asns"] == []


def test_packets_are_not_multiplied_by_sampling_rate() -> None:
    df = flows({"src_ip": "8.8.8.8", "protocol": 17, "packets": 7, "bytes": 700})
    b = flow_breakdown(df)
    assert b["total_packets"] == 7 and b["total_bytes"] == 700


def test_geo_fields_from_the_lookup() -> None:
    geo, country_reader = fake_geo()
    df = flows(
        {"src_ip": "8.8.8.8", "protocol": 17, "packets": 60, "bytes": 1},
        {"src_ip": "1.1.1.1", "protocol": 17, "packets": 20, "bytes": 1},
        {"src_ip": "5.5.5.5", "protocol": 17, "packets": 10, "bytes": 1},
        {"src_ip": "192.168.1.9", "protocol": 17, "packets": 10, "bytes": 1},
        {"src_ip": "8.8.8.8", "protocol": 17, "packets": 40, "bytes": 1},
    )
    b = flow_breakdown(df, geo, top=2)
    assert b["top_sources"] == [
        {"ip": "8.8.8.8", "packets": 100, "bytes": 2, "share": 71.43, "country": "US",
         "asn": 15169, "as_org": "G"},
        {"ip": "1.1.1.1", "packets": 20, "bytes": 1, "share": 14.29, "country": "AU",
         "asn": 13335, "as_org": "CF"},
    ]  # fmt: skip
    assert b["geo_origin"] == [
        {"country": "US", "packets": 100, "share": 71.43},
        {"country": "AU", "packets": 20, "share": 14.29},
        {"country": "DE", "packets": 10, "share": 7.14},
        {"country": None, "packets": 10, "share": 7.14},
    ]
    assert b["asns"] == [
        {"asn": 15169, "as_org": "G", "packets": 100, "share": 71.43},
        {"asn": 13335, "as_org": "CF", "packets": 20, "share": 14.29},
    ]
    assert b["geo_coverage_pct"] == 100.0
    # the private address never reaches the database
    assert "192.168.1.9" not in country_reader.calls


def test_geo_limit_looks_up_only_the_heaviest_sources() -> None:
    geo, reader = fake_geo()
    df = flows(
        {"src_ip": "8.8.8.8", "protocol": 17, "packets": 90, "bytes": 1},
        *({"src_ip": f"9.9.9.{i}", "protocol": 17, "packets": 1, "bytes": 1} for i in range(10)),
    )
    b = flow_breakdown(df, geo, top=1, geo_limit=1)
    assert reader.calls == ["8.8.8.8"]
    assert b["geo_coverage_pct"] == 90.0
    assert b["source_ip_count"] == 11


def test_empty_and_all_null_frames() -> None:
    assert flow_breakdown(pl.DataFrame(schema=SCHEMA)) == empty_breakdown()
    assert flow_breakdown(pl.DataFrame()) == empty_breakdown()
    nulls = pl.DataFrame({c: [None, None] for c in SCHEMA}, schema=SCHEMA)
    b = flow_breakdown(nulls, fake_geo()[0])
    assert b["total_packets"] == 0 and b["records"] == 2 and b["top_sources"] == []
    # only some columns, zero packets
    b = flow_breakdown(pl.DataFrame({"src_ip": ["8.8.8.8"], "packets": [0]}))
    assert b["source_ip_count"] == 1 and b["protocol_breakdown"]["tcp"] == 0.0


def test_missing_optional_columns() -> None:
    df = pl.DataFrame({"src_ip": ["8.8.8.8", "1.1.1.1"], "protocol": [6, 17], "packets": [3, 1],
                       "bytes": [300, 100]})  # fmt: skip
    b = flow_breakdown(df)
    assert b["protocol_breakdown"] == {"tcp": 75.0, "udp": 25.0, "icmp": 0.0, "other": 0.0}
    assert b["tcp_flags"]["syn"] == 0.0 and b["top_src_ports"] == [] and b["ttl"] == []


def test_top_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        flow_breakdown(flows(), top=-1)


ips = st.one_of(
    st.none(),
    st.sampled_from(["8.8.8.8", "1.1.1.1", "5.5.5.5", "10.0.0.1", "::1", "2001:db8::1", "x"]),
    st.ip_addresses().map(str),
)
small = st.one_of(st.none(), st.integers(min_value=-5, max_value=70000))
rows = st.lists(
    st.fixed_dictionaries(
        {
            "src_ip": ips,
            "src_port": small,
            "dst_port": small,
            "protocol": st.one_of(st.none(), st.sampled_from([0, 1, 6, 17, 47, 58, 255])),
            "tcp_flags": st.one_of(st.none(), st.integers(min_value=0, max_value=255)),
            "packets": st.one_of(st.none(), st.integers(min_value=-3, max_value=10**9)),
            "bytes": st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
            "ttl": st.one_of(st.none(), st.integers(min_value=0, max_value=255)),
        }
    ),
    max_size=40,
)


def _close(total: float) -> bool:
    return abs(total - 100.0) <= 0.05 * 4 + 1e-9


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, top=st.integers(min_value=0, max_value=5), use_geo=st.booleans())
def test_breakdown_properties(rows: list[dict[str, Any]], top: int, use_geo: bool) -> None:
    df = pl.DataFrame(
        rows,
        schema={
            "src_ip": pl.String, "src_port": pl.Int64, "dst_port": pl.Int64,
            "protocol": pl.Int64, "tcp_flags": pl.Int64, "packets": pl.Int64,
            "bytes": pl.Int64, "ttl": pl.Int64,
        },
    )  # fmt: skip
    geo = fake_geo()[0] if use_geo else None
    b = flow_breakdown(df, geo, top=top, geo_limit=3)
    total = sum(max(r["packets"] or 0, 0) for r in rows)
    assert b["total_packets"] == total
    if total == 0:
        assert b["top_sources"] == [] and all(v == 0.0 for v in b["protocol_breakdown"].values())
        return
    assert _close(sum(b["protocol_breakdown"].values()))
    assert all(0.0 <= v <= 100.0 for v in b["tcp_flags"].values())
    assert 0.0 <= b["fragments_pct"] <= 100.0
    for key in ("top_sources", "top_src_ports", "top_dst_ports"):
        assert len(b[key]) <= top
        packets = [e["packets"] for e in b[key]]
        assert packets == sorted(packets, reverse=True)
        assert sum(e["share"] for e in b[key]) <= 100.0 + 0.01 * top
    distinct = {r["src_ip"] for r in rows if r["src_ip"] is not None}
    assert b["source_ip_count"] == len(distinct)
    if geo is not None and b["geo_origin"]:
        # countries split exactly the packets of the looked-up sources
        origin = b["geo_origin"]
        heavy = sum(e["packets"] for e in origin)
        assert heavy <= total
        assert abs(sum(e["share"] for e in origin) - b["geo_coverage_pct"]) <= 0.005 * (
            len(origin) + 1
        )
        assert all(e["packets"] > 0 for e in origin)


def test_full_sources_share_sums_to_100() -> None:
    df = flows(*({"src_ip": f"9.9.{i}.1", "protocol": 17, "packets": i + 1, "bytes": 1}
                 for i in range(7)))  # fmt: skip
    b = flow_breakdown(df, fake_geo()[0], top=100)
    assert _close(sum(s["share"] for s in b["top_sources"]))
    assert _close(sum(s["share"] for s in b["geo_origin"]))


# --- amplification_port -----------------------------------------------------------------------


@pytest.mark.parametrize(("port", "name"), sorted(AMPLIFICATION_PORTS.items()))
def test_amplification_port_names(port: int, name: str) -> None:
    ports: list[dict[str, Any]] = [
        {"port": port, "packets": 90, "share": 90.0},
        {"port": 1, "packets": 10, "share": 10},
    ]
    assert amplification_port(ports) == f"{name}_amplification"


def test_amplification_port_needs_a_dominant_known_port() -> None:
    assert amplification_port([]) is None
    assert amplification_port([{"port": 53, "packets": 5, "share": 50.0}]) is None
    assert amplification_port([{"port": 53, "packets": 5, "share": 50.01}]) == "dns_amplification"
    assert amplification_port([{"port": 4444, "packets": 9, "share": 99.0}]) is None
    # the heaviest port decides, whatever the order of the list
    assert (
        amplification_port([{"port": 53, "share": 20.0}, {"port": 123, "share": 80.0}])
        == "ntp_amplification"
    )
    assert amplification_port([{"port": 53, "share": 60.0}], min_share=70.0) is None
    odd: list[dict[str, Any]] = [{"port": "53", "share": 90.0}, {"share": None}]
    assert amplification_port(odd) is None


def test_amplification_from_a_breakdown() -> None:
    df = flows(
        {"src_ip": "5.5.5.5", "protocol": 17, "src_port": 11211, "dst_port": 4000,
         "packets": 900, "bytes": 1_300_000},
        {"src_ip": "5.5.5.6", "protocol": 6, "src_port": 443, "dst_port": 5000, "packets": 100,
         "bytes": 6000},
    )  # fmt: skip
    assert amplification_port(flow_breakdown(df)["top_src_ports"]) == "memcached_amplification"


# --- geo ----------------------------------------------------------------------------------------


def test_normalize_address() -> None:
    assert normalize_address("8.8.8.8") == "8.8.8.8"
    assert normalize_address(" 2001:4860:4860:0::8888 ") == "2001:4860:4860::8888"
    assert normalize_address("::ffff:8.8.8.8") == "8.8.8.8"
    for bad in ("10.1.2.3", "192.168.0.1", "127.0.0.1", "::1", "fe80::1", "224.0.0.1",
                "100.64.0.1", "192.0.2.1", "2001:db8::1", "0.0.0.0", "nope", ""):  # fmt: skip
        assert normalize_address(bad) is None, bad


def test_lookup_many_and_cache() -> None:
    geo, reader = fake_geo()
    got = geo.lookup_many(["8.8.8.8", "10.0.0.1", "8.8.8.8", "junk", "7.7.7.7"])
    assert got == {
        "8.8.8.8": ("US", 15169, "G"),
        "10.0.0.1": (None, None, None),
        "junk": (None, None, None),
        "7.7.7.7": (None, None, None),
    }
    assert reader.calls == ["8.8.8.8", "7.7.7.7"]
    geo.lookup_many(["8.8.8.8", "7.7.7.7"])
    assert reader.calls == ["8.8.8.8", "7.7.7.7"]  # cached
    assert geo.cache_info().hits >= 2
    assert geo.lookup("::ffff:8.8.8.8") == ("US", 15169, "G")


def test_lookup_survives_a_failing_reader() -> None:
    class Broken:
        def get(self, ip: str) -> Any:
            raise RuntimeError("corrupt")

    geo = GeoLookup.from_readers(Broken(), Broken())
    assert geo.lookup("8.8.8.8") == (None, None, None)


def test_cache_is_bounded() -> None:
    geo = GeoLookup.from_readers(FakeReader({}), None, cache_size=2)
    geo.lookup_many([f"9.9.9.{i}" for i in range(10)])
    assert geo.cache_info().currsize == 2


def test_builtin_database_offline() -> None:
    geo = GeoLookup.open()
    assert geo.mode == "builtin"
    country, asn, org = geo.lookup("8.8.8.8")
    assert country == "US" and asn is None and org is not None and "GOOGLE" in org.upper()
    assert geo.lookup("2001:4860:4860::8888")[0] == "US"
    assert geo.lookup("10.0.0.1") == (None, None, None)
    assert geo.lookup("::ffff:8.8.8.8")[0] == "US"
    assert "GeoLite2" in geo.source or geo.source


def test_maxmind_mode_with_written_mmdb(tmp_path: Path) -> None:
    netaddr = pytest.importorskip("netaddr")
    mmdb_writer = pytest.importorskip("mmdb_writer")
    country_db = tmp_path / "country.mmdb"
    asn_db = tmp_path / "asn.mmdb"
    w = mmdb_writer.MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    w.insert_network(netaddr.IPSet(["8.8.8.0/24"]), {"country": {"iso_code": "US"}})
    w.insert_network(netaddr.IPSet(["5.5.0.0/16"]), {"registered_country": {"iso_code": "DE"}})
    w.insert_network(netaddr.IPSet(["2a00:1450::/32"]), {"country": {"iso_code": "IE"}})
    w.to_db_file(str(country_db))
    w = mmdb_writer.MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    w.insert_network(
        netaddr.IPSet(["8.8.8.0/24"]),
        {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"},
    )
    w.to_db_file(str(asn_db))

    with GeoLookup.open(mode="maxmind", country_db=country_db, asn_db=asn_db) as geo:
        assert geo.mode == "maxmind"
        assert geo.lookup_many(["8.8.8.8", "5.5.1.1", "2a00:1450::1", "9.9.9.9", "10.0.0.1"]) == {
            "8.8.8.8": ("US", 15169, "GOOGLE"),
            "5.5.1.1": ("DE", None, None),
            "2a00:1450::1": ("IE", None, None),
            "9.9.9.9": (None, None, None),
            "10.0.0.1": (None, None, None),
        }
    only_asn = open_configured(
        SimpleNamespace(geo="maxmind", maxmind_country_db="", maxmind_asn_db=str(asn_db))
    )
    assert only_asn is not None
    assert only_asn.lookup("8.8.8.8") == (None, 15169, "GOOGLE")
    only_asn.close()


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match="unknown geo mode"):
        GeoLookup.open(mode="cloud")
    with pytest.raises(GeoError, match="needs country_db"):
        GeoLookup.open(mode="maxmind")
    with pytest.raises(GeoError, match="does not exist"):
        GeoLookup.open(mode="maxmind", country_db=tmp_path / "missing.mmdb")
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a database")
    with pytest.raises(GeoError, match="cannot open"):
        GeoLookup.open(mode="maxmind", asn_db=junk)
    off = SimpleNamespace(geo="off", maxmind_country_db="", maxmind_asn_db="")
    assert open_configured(off) is None
