"""Detector units: settings validation, the classifier's rules, severity, frame building."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest

from detect.classify import classify, confidence, severity
from detect.frames import NODE_SECOND_SCHEMA, from_flows, from_metrics, normalize
from detect.settings import DetectionSettings, SettingsError, validate_patch

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------- settings


def test_settings_round_trip_and_patch() -> None:
    s = DetectionSettings()
    assert DetectionSettings.from_dict(s.to_dict()) == s
    merged = validate_patch(s.to_dict(), {"sensitivity": "high", "series": {"syn_pps": False}})
    t = DetectionSettings.from_dict(merged)
    assert t.sensitivity == "high" and t.sensitivity_factor < 1.0
    assert not t.series_enabled("syn_pps") and t.series_enabled("ack_pps")
    assert s.series_enabled("syn_pps")  # the original is untouched


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"nope": 1}, "nope"),
        ({"sensitivity": "extreme"}, "sensitivity"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": "2"}, "multiplier"),
        ({"floor_pps": -1}, "floor_pps"),
        ({"confirm_seconds": 2.5}, "confirm_seconds"),
        ({"hold_down_secs": True}, "hold_down_secs"),
        ({"enabled": "yes"}, "enabled"),
        ({"series": {"bogus_pps": True}}, "series.bogus_pps"),
        ({"series": {"syn_pps": 1}}, "series.syn_pps"),
        ({"series": {"pps": False, "bps": False}}, "series.pps"),
        ({"multiplier": float("nan")}, "multiplier"),
    ],
)
def test_settings_errors_name_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as err:
        validate_patch(DetectionSettings().to_dict(), patch)
    assert err.value.field == field


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(SettingsError):
        DetectionSettings.from_dict({"floor": 3})


# ---------------------------------------------------------------------------- classifier


def ev(**kw: float) -> dict[str, float]:
    out = dict(kw)
    out.setdefault("pps", sum(kw.get(k, 0.0) for k in ("tcp", "udp", "icmp", "other")))
    return out


@pytest.mark.parametrize(
    ("counters", "ports", "expected"),
    [
        (ev(udp=100, bytes=100 * 800), None, ("udp_flood", "volumetric")),
        (ev(udp=100, bytes=100 * 70), None, ("udp_flood", "small_packet_flood")),
        (ev(udp=100, bytes=100 * 1400), None, ("udp_flood", "amplification_generic")),
        (ev(tcp=100, syn=95, bytes=6000), None, ("syn_flood", "syn_flood")),
        (ev(tcp=100, syn=45, ack=50, bytes=6000), None, ("syn_flood", "syn_ack_flood")),
        (ev(tcp=100, ack=95, bytes=6000), None, ("tcp_flood", "ack_flood")),
        (ev(tcp=100, rst=90, bytes=6000), None, ("tcp_flood", "rst_flood")),
        (ev(tcp=100, fin=90, bytes=6000), None, ("tcp_flood", "fin_flood")),
        (ev(icmp=100, bytes=9000), None, ("icmp_flood", "ping_flood")),
        (ev(icmp=100, frag=50, bytes=130000), None, ("icmp_flood", "ping_of_death")),
        (ev(udp=100, frag=95, bytes=140000), None, ("fragment_flood", "ip_fragment_flood")),
        (ev(other=100, bytes=90000), None, ("protocol_flood", "gre_flood")),
        (
            ev(other=100, esp=100, gre=0, flows=1, bytes=90000),
            None,
            ("protocol_flood", "esp_flood"),
        ),
        (ev(udp=40, tcp=40, syn=40, icmp=20, bytes=3e4), None, ("multi_vector", "multi_mixed")),
        (
            ev(udp=100, flows=1, bytes=100 * 468),
            {"src": (123, 0.95), "dst": (80, 0.1)},
            ("udp_flood", "ntp_amplification"),
        ),
        (
            ev(udp=100, flows=1, bytes=100 * 1400),
            {"src": (11211, 0.95), "dst": (80, 0.1)},
            ("udp_flood", "memcached_amplification"),
        ),
        (
            ev(udp=100, flows=1, bytes=100 * 300),
            {"src": (3283, 0.9), "dst": (80, 0.1)},
            ("udp_flood", "apple_remote_amplification"),
        ),
        (
            ev(udp=100, dns=100, flows=1, bytes=100 * 80),
            {"src": (40000, 0.01), "dst": (53, 0.99)},
            ("dns_flood", "dns_query_flood"),
        ),
        (
            ev(udp=100, dns=100, flows=1, bytes=100 * 1250),
            {"src": (53, 0.97), "dst": (40000, 0.01)},
            ("udp_flood", "dns_amplification"),
        ),
        (
            ev(udp=50, tcp=50, syn=50, flows=1, bytes=50 * 468 + 50 * 60),
            {"src": (123, 0.49), "dst": (80, 0.1)},
            ("multi_vector", "multi_ntp_amplification"),
        ),
        # a reflector port wins over the fragments of large answers and over a QUIC node's
        # usual destination port
        (
            ev(udp=100, frag=45, flows=1, bytes=100 * 1300),
            {"src": (53, 0.4), "dst": (40000, 0.01)},
            ("udp_flood", "dns_amplification"),
        ),
        (
            ev(udp=100, flows=1, bytes=100 * 1100),
            {"src": (11211, 0.6), "dst": (443, 0.5)},
            ("udp_flood", "memcached_amplification"),
        ),
        (
            ev(udp=100, flows=1, bytes=100 * 1100),
            {"src": (40001, 0.01), "dst": (443, 0.5)},
            ("udp_flood", "quic_flood"),
        ),
        # PSH on most of the ACKs (flags from flows) is a PSH-ACK flood; without flows, ACK
        (
            ev(tcp=100, ack=98, psh=90, flows=1, bytes=100 * 200),
            {"src": (40001, 0.01), "dst": (25, 0.9)},
            ("tcp_flood", "psh_ack_flood"),
        ),
        (ev(tcp=100, ack=98, psh=90, bytes=100 * 200), None, ("tcp_flood", "ack_flood")),
        (
            ev(tcp=100, ack=98, psh=20, flows=1, bytes=100 * 60),
            {"src": (40001, 0.01), "dst": (80, 0.9)},
            ("tcp_flood", "ack_flood"),
        ),
        (ev(), None, ("unknown", None)),
    ],
)
def test_classify_rules(
    counters: dict[str, float],
    ports: dict[str, tuple[int | None, float]] | None,
    expected: tuple[str, str | None],
) -> None:
    assert classify(counters, ports) == expected


def test_severity_rule() -> None:
    assert severity(3000, 1000, 1e6) == "low"
    assert severity(5000, 1000, 1e6) == "medium"
    assert severity(20000, 1000, 1e6) == "high"
    assert severity(60000, 1000, 1e6) == "critical"
    assert severity(2e6, 1e6, 1e6) == "high"  # 2x but 2 Mpps
    assert severity(1e5, 9e4, 20e9) == "critical"  # 20 Gbit/s


def test_confidence_bounds_and_order() -> None:
    weak = confidence(1.0, 0.0, 1, 0.4, False)
    strong = confidence(50.0, 5.0, 600, 0.99, True)
    assert 0 <= weak < strong <= 100


# ---------------------------------------------------------------------------- frames


def test_from_metrics_renames_and_drops_replay() -> None:
    table = pa.table(
        {
            "node_uuid": ["n1", "n1", "n1"],
            "source": ["arrow", "ftagent-replay", "arrow"],
            "time": pa.array(
                [T0, T0 + timedelta(seconds=1), T0 + timedelta(milliseconds=1500)],
                pa.timestamp("us", tz="UTC"),
            ),
            "pps": [10.0, 20.0, 30.0],
            "bps": [80.0, 160.0, 240.0],
            "distinct_sources": pa.array([1, 2, 3], pa.int64()),
        }
    )
    df = from_metrics(table, "ws")
    assert df.columns == list(NODE_SECOND_SCHEMA)
    assert df.height == 2
    assert df.get_column("workspace").to_list() == ["ws", "ws"]
    assert df.get_column("time").to_list() == [T0, T0 + timedelta(seconds=1)]
    assert df.get_column("distinct_sources").dtype == pl.Float64()


def test_normalize_merges_duplicates() -> None:
    base = {"workspace": "ws", "node": "n1", "time": T0}
    df = pl.DataFrame(
        [
            {**base, "source": "arrow", "pps": 100.0, "bps": 800.0, "tcp_pps": 90.0},
            {**base, "source": "flows", "pps": 150.0, "bps": 1200.0, "top_src_port": 123},
        ]
    )
    out = normalize(df)
    assert out.height == 1
    row = out.row(0, named=True)
    assert row["pps"] == 150.0  # the higher rate wins
    assert row["tcp_pps"] == 90.0  # metrics counters fill in
    assert row["top_src_port"] == 123  # flow detail fills in
    assert row["source"] == "arrow"


def test_from_flows_aggregates_per_second() -> None:
    t1 = T0 + timedelta(milliseconds=300)
    table = pa.table(
        {
            "node_uuid": ["n1"] * 5,
            "source": ["flows"] * 5,
            "time": pa.array([t1] * 5, pa.timestamp("us", tz="UTC")),
            "src_ip": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.3", "2.2.2.2"],
            "dst_ip": ["9.9.9.9"] * 5,
            "src_port": pa.array([123, 123, 40000, 0, 0], pa.int32()),
            "dst_port": pa.array([5000, 5001, 443, 0, 0], pa.int32()),
            "protocol": pa.array([17, 17, 6, 17, 47], pa.int16()),
            "tcp_flags": pa.array([0, 0, 0x02, 0, 0], pa.int16()),
            "packets": pa.array([1000, 1000, 500, 100, 50], pa.int64()),
            "bytes": pa.array([468000, 468000, 30000, 140000, 50000], pa.int64()),
            "sampling_rate": pa.array([1000] * 5, pa.int64()),
        }
    )
    df = from_flows(table, "ws")
    assert df.height == 1
    r = df.row(0, named=True)
    assert r["time"] == T0 and r["source"] == "flows" and r["workspace"] == "ws"
    assert r["pps"] == 2650.0  # packets already stand for the traffic before sampling
    assert r["bps"] == (468000 * 2 + 30000 + 140000 + 50000) * 8.0
    assert r["udp_pps"] == 2100.0 and r["tcp_pps"] == 500.0 and r["other_pps"] == 50.0
    assert r["syn_pps"] == 500.0 and r["gre_pps"] == 50.0
    assert r["frag_pps"] == 100.0  # UDP without ports
    assert r["top_src_port"] == 123
    assert r["top_src_port_share"] == pytest.approx(2000 / 2650)
    assert r["distinct_sources"] == 4.0


def test_public_bounds_match_validation() -> None:
    from detect import settings as mod

    assert mod.INT_BOUNDS is mod._INT_BOUNDS and mod.FLOAT_BOUNDS is mod._FLOAT_BOUNDS
    for name, (lo, hi) in mod.INT_BOUNDS.items():
        validate_patch(DetectionSettings().to_dict(), {name: lo})
        validate_patch(DetectionSettings().to_dict(), {name: hi})
        with pytest.raises(SettingsError):
            validate_patch(DetectionSettings().to_dict(), {name: hi + 1})
    for name, (flo, fhi) in mod.FLOAT_BOUNDS.items():
        validate_patch(DetectionSettings().to_dict(), {name: fhi})
        with pytest.raises(SettingsError):
            validate_patch(DetectionSettings().to_dict(), {name: flo - 1.0})
