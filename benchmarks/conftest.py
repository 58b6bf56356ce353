"""pytest-benchmark helpers: rows/s for each micro benchmark, in ``extra_info`` (so in
``--benchmark-json``) and in a short table at the end of the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_RESULTS: list[tuple[str, int, float, float]] = []


@pytest.fixture
def measure(benchmark: Any) -> Callable[..., Any]:
    """``measure(fn, *args, rows=N)`` benchmarks ``fn(*args)`` and records rows/s (on the
    median round) in ``benchmark.extra_info``."""

    def run(fn: Callable[..., Any], *args: Any, rows: int, **kw: Any) -> Any:
        result = benchmark(fn, *args, **kw)
        stats = getattr(benchmark, "stats", None)
        if stats:
            median = stats.stats.median
            benchmark.extra_info["rows"] = rows
            benchmark.extra_info["rows_per_s"] = rows / median
            _RESULTS.append((benchmark.name, rows, median, rows / median))
        return result

    return run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.write_sep("-", "rows per second (median round)")
    width = max(len(name) for name, *_ in _RESULTS)
    for name, rows, median, rate in _RESULTS:
        tr.write_line(f"{name:<{width}}  {rows:>9,} rows  {median * 1000:9.2f} ms  {rate:>14,.0f}")
