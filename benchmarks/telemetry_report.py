"""The telemetry benchmark's report: ratios to the ceilings, detection on ÷ off, the targets
and the Markdown tables (``bench_telemetry.markdown``). Split from ``bench_telemetry.py``, which
runs the cells; nothing here starts a server."""

from __future__ import annotations

from typing import Any

from .ceilings import lake_settings

__all__ = [
    "TARGET_COLLECTOR_E2E_ROWS_PER_S",
    "TARGET_DETECT_RATIO",
    "TARGET_E2E_ROWS_PER_S",
    "TARGET_P99_SECS",
    "TARGET_RSS_BYTES",
    "cell_line",
    "detection_ratios",
    "markdown",
    "parquet_summary",
    "ratios",
    "targets",
]

GIB = 1 << 30
TARGET_E2E_ROWS_PER_S = 2_000_000
TARGET_COLLECTOR_E2E_ROWS_PER_S = 1_000_000  # every collector-shape cell
TARGET_P99_SECS = 0.100
TARGET_RSS_BYTES = GIB
TARGET_DETECT_RATIO = 0.9  # rows/s with detection on ÷ rows/s with it off, same cell, same run


def ratios(cell: dict[str, Any]) -> None:
    e2e = cell["max"]["e2e_rows_per_s"]
    http = cell["http_ceiling"]["rows_per_s"]
    parquet = cell["parquet_ceiling"]["rows_per_s"]
    cell["ratio_to_http_ceiling"] = round(e2e / http, 3) if e2e and http else None
    cell["ratio_to_parquet_ceiling"] = round(e2e / parquet, 3) if e2e and parquet else None


def detection_ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell run with detection off and on (``--detect both``): each one's rows/s and the
    ratio on ÷ off, end to end and acknowledged, and server CPU per row."""
    by_spec: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for c in cells:
        spec = (c["kind"], c["rows_per_batch"], c["compression"], c.get("shape", "node-key"))
        by_spec.setdefault(spec, {})[c.get("detect", "default")] = c
    out = []
    for (kind, rows, comp, shape), pair in by_spec.items():
        off, on = pair.get("off"), pair.get("on")
        if off is None or on is None:
            continue

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a and b else None

        e2e_off, e2e_on = off["max"]["e2e_rows_per_s"], on["max"]["e2e_rows_per_s"]
        ack_off, ack_on = off["max"]["ack_rows_per_s"], on["max"]["ack_rows_per_s"]
        out.append(
            {
                "cell": f"{kind}:{rows}:{comp}:{shape}",
                "e2e_off": e2e_off,
                "e2e_on": e2e_on,
                "e2e_ratio": ratio(e2e_on, e2e_off),
                "ack_off": ack_off,
                "ack_on": ack_on,
                "ack_ratio": ratio(ack_on, ack_off),
                "cpu_us_per_row_off": off["max"]["server_cpu_us_per_row"],
                "cpu_us_per_row_on": on["max"]["server_cpu_us_per_row"],
                "reasons_503_on": on["max"]["reasons_503"],
                "met": bool(
                    ratio(e2e_on, e2e_off) is not None
                    and (ratio(e2e_on, e2e_off) or 0) >= TARGET_DETECT_RATIO
                ),
            }
        )
    return out


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def _lake_codec() -> str:
    codec, level, _ = lake_settings()
    return f"{codec} level {level}" if codec == "zstd" else codec


def parquet_summary(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind, the median over the cells of each Parquet ceiling figure."""
    out: dict[str, Any] = {}
    for kind in sorted({c["kind"] for c in cells}):
        runs = [c["parquet_ceiling"] for c in cells if c["kind"] == kind]
        out[kind] = {
            key: _median([r[key] for r in runs])
            for key in (
                "rows_per_s",
                "lake_write_part_rows_per_s",
                "pyarrow_default_rows_per_s",
                "bytes_per_row",
                "pyarrow_default_bytes_per_row",
            )
        }
    return out


def cell_line(c: dict[str, Any]) -> str:
    m, h, o = c["max"], c["half"], c["over"]
    return (
        f"  e2e {m['e2e_rows_per_s']} rows/s, ack {m['ack_rows_per_s']} rows/s, "
        f"http ceiling {c['http_ceiling']['rows_per_s']} rows/s; half load p50/p99 "
        f"{h['p50_ack_ms']}/{h['p99_ack_ms']} ms; 3x: {o['statuses']}, peak RSS "
        f"{o['peak_rss_bytes'] / 2**20:.0f} MiB; {c['lake']['bytes_per_row']} B/row"
    )


def targets(cells: list[dict[str, Any]]) -> dict[str, Any]:
    # judged on the server as configured by default (detection on) when the run had both
    cells = [c for c in cells if c.get("detect", "default") != "off"] or cells
    m10k = [
        c
        for c in cells
        if c["kind"] == "metrics"
        and c["rows_per_batch"] == 10_000
        and c.get("shape", "node-key") == "node-key"
    ]
    fleet = [c for c in cells if c.get("shape", "node-key") != "node-key"]
    fleet_worst = min(fleet, key=lambda c: c["max"]["e2e_rows_per_s"] or 0, default=None)
    fleet_rate = fleet_worst["max"]["e2e_rows_per_s"] if fleet_worst else None
    best = max(m10k, key=lambda c: c["max"]["e2e_rows_per_s"] or 0, default=None)
    best_rate = best["max"]["e2e_rows_per_s"] if best else None
    p99s = [(c, c["half"]["p99_ack_ms"]) for c in cells]
    over_p99 = [
        f"{c['kind']}/{c['rows_per_batch']}/{c['compression']}"
        for c, v in p99s
        if v is None or v >= TARGET_P99_SECS * 1000
    ]
    rss = max((c["over"]["peak_rss_bytes"] for c in cells), default=0)
    return {
        "e2e_metrics_10k_rows_per_s": {
            "target": TARGET_E2E_ROWS_PER_S,
            "best": best_rate,
            "best_compression": best["compression"] if best else None,
            "met": bool(best_rate and best_rate >= TARGET_E2E_ROWS_PER_S),
        },
        "e2e_collector_rows_per_s": {
            "target": TARGET_COLLECTOR_E2E_ROWS_PER_S,
            "worst": fleet_rate,
            "worst_cell": fleet_worst and f"{fleet_worst['rows_per_batch']}/{fleet_worst['shape']}",
            "met": bool(fleet_rate and fleet_rate >= TARGET_COLLECTOR_E2E_ROWS_PER_S),
        },
        "p99_ack_half_load_ms": {
            "target": TARGET_P99_SECS * 1000,
            "worst": max((v for _, v in p99s if v is not None), default=None),
            "cells_missing_target": over_p99,
            "met": not over_p99 and bool(cells),
        },
        "peak_rss_3x_bytes": {"target": TARGET_RSS_BYTES, "worst": rss, "met": rss < GIB},
    }


# --- the report ----------------------------------------------------------------------------------


def _n(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:,.0f}"


def _sender(c: dict[str, Any]) -> str:
    shape = c.get("shape", "node-key")
    detect = c.get("detect", "default")
    tag = "" if detect == "default" else f", detection {detect}"
    if shape == "node-key":
        return f"node keys ({c.get('nodes', '-')} nodes{tag})"
    return f"collector, {shape.split('-', 1)[1]} ({c['nodes']} nodes, time order{tag})"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Floodwatch telemetry benchmark, {report['started_at']}, commit "
        f"{report['machine']['commit']}, {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['load_average'][0]:.1f} at start and "
        f"{report['machine']['load_average_end'][0]:.1f} at end; "
        f"{report['elapsed_secs']:.0f} s.",
        "",
        f"Parquet ceiling (pyarrow with the settings of fresh lake files: {_lake_codec()}, "
        "statistics for node_uuid and time only, no dictionaries for floats and times; one "
        f"core, files of {_n(lake_settings()[2])} lake rows; median "
        "of the cells): "
        + "; ".join(
            f"{k} {_n(v['rows_per_s'])} rows/s ({_n(v['lake_write_part_rows_per_s'])} through "
            f"Lake.write_part given 10k-row batches: order, write, fsync, rename; "
            f"{_n(v['pyarrow_default_rows_per_s'])} with pyarrow's defaults, zstd level 3)"
            for k, v in report["parquet_ceiling"].items()
        )
        + ".",
        "",
        "| kind | rows/batch | wire | sender | body KiB | e2e rows/s | ack rows/s | drain s "
        "| HTTP ceiling rows/s | e2e ÷ HTTP | Parquet ceiling rows/s | e2e ÷ Parquet "
        "| lake writer rows/s | server CPU µs/row | bytes/row |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["cells"]:
        m = c["max"]
        lines.append(
            f"| {c['kind']} | {c['rows_per_batch']:,} | {c['compression']} | {_sender(c)} "
            f"| {c['body_bytes'] / 1024:,.0f} | {_n(m['e2e_rows_per_s'])} "
            f"| {_n(m['ack_rows_per_s'])} | {_n(m['drain_secs'], 1)} "
            f"| {_n(c['http_ceiling']['rows_per_s'])} | {_n(c['ratio_to_http_ceiling'], 2)} "
            f"| {_n(c['parquet_ceiling']['rows_per_s'])} "
            f"| {_n(c['ratio_to_parquet_ceiling'], 2)} "
            f"| {_n(c['server']['lake_writer_rows_per_s'])} "
            f"| {_n(m['server_cpu_us_per_row'], 2)} "
            f"| {_n(c['lake']['bytes_per_row'], 1)} |"
        )
    lines += [
        "",
        "| kind | rows/batch | wire | sender | half load rows/s | p50 ack ms | p99 ack ms | acks "
        "| peak RSS MiB (max rate) | 3x offered rows/s | 3x sent rows/s | 3x 202 | 3x 503 "
        "(with Retry-After) | peak RSS MiB (3x) | peak buffer MiB (3x) | lake rows = acked "
        "| max-rate 503 |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for c in report["cells"]:
        h, o = c["half"], c["over"]
        lines.append(
            f"| {c['kind']} | {c['rows_per_batch']:,} | {c['compression']} | {_sender(c)} "
            f"| {_n(h['offered_rows_per_s'])} | {_n(h['p50_ack_ms'], 1)} "
            f"| {_n(h['p99_ack_ms'], 1)} | {h['acks']} | {_mib(c['max']['peak_rss_bytes'])} "
            f"| {_n(o['offered_rows_per_s'])} | {_n(o['sent_rows_per_s'])} "
            f"| {o['statuses'].get('202', 0)} "
            f"| {o['statuses'].get('503', 0)} ({o['retry_after_503']}) "
            f"| {_mib(o['peak_rss_bytes'])} "
            f"| {_mib(o['peak_gauges']['floodwatch_buffer_bytes'])} "
            f"| {'yes' if c['lake']['all_acked_rows_readable'] else 'NO'} "
            f"| {c['max']['statuses'].get('503', 0)} |"
        )
    if report.get("detection"):
        lines += [
            "",
            "Detection on vs off (same cell, same run; max-rate phase):",
            "",
            "| cell | e2e off | e2e on | on ÷ off | ack off | ack on | on ÷ off "
            "| server µs/row off | on | 503 reasons (on) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for d in report["detection"]:
            reasons = ", ".join(f"{k}: {v}" for k, v in d["reasons_503_on"].items()) or "-"
            lines.append(
                f"| {d['cell']} | {_n(d['e2e_off'])} | {_n(d['e2e_on'])} "
                f"| {_n(d['e2e_ratio'], 2)} | {_n(d['ack_off'])} | {_n(d['ack_on'])} "
                f"| {_n(d['ack_ratio'], 2)} | {_n(d['cpu_us_per_row_off'], 2)} "
                f"| {_n(d['cpu_us_per_row_on'], 2)} | {reasons} |"
            )
    t = report["targets"]
    e, p, r = t["e2e_metrics_10k_rows_per_s"], t["p99_ack_half_load_ms"], t["peak_rss_3x_bytes"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines += [
        "",
        "Targets (reported, never asserted):",
        "",
        f"- >= 2,000,000 metric rows/s end to end at 10k-row batches: {verdict(e['met'])} "
        + (
            f"(best {_n(e['best'])} rows/s, wire compression {e['best_compression']})"
            if e["best"]
            else "(no metrics cell with 10k-row batches in this run)"
        ),
        "- >= 1,000,000 rows/s end to end in every collector cell (many nodes per batch): "
        + (
            f"{verdict(t['e2e_collector_rows_per_s']['met'])} (worst "
            f"{_n(t['e2e_collector_rows_per_s']['worst'])} rows/s, "
            f"{t['e2e_collector_rows_per_s']['worst_cell']})"
            if t["e2e_collector_rows_per_s"]["worst"] is not None
            else "(no collector cell in this run)"
        ),
        f"- p99 ack < 100 ms at half load: {verdict(p['met'])} (worst {_n(p['worst'], 1)} ms"
        + (
            f"; missed in {', '.join(p['cells_missing_target'])}"
            if p["cells_missing_target"]
            else ""
        )
        + ")",
        f"- peak RSS < 1 GiB at 3x the maximum rate: {verdict(r['met'])} "
        f"(worst {_mib(r['worst'])} MiB)",
    ]
    ratios = [d["e2e_ratio"] for d in report.get("detection") or [] if d["e2e_ratio"]]
    if ratios:
        lines.append(
            f"- e2e rows/s with detection on >= {TARGET_DETECT_RATIO}x with it off: "
            f"{verdict(min(ratios) >= TARGET_DETECT_RATIO)} (worst {min(ratios):.2f})"
        )
    return "\n".join(lines)
