"""Benchmarks of the binary telemetry pipeline: micro benchmarks (``pytest benchmarks
--benchmark-only``) and the end-to-end scenario (``python -m benchmarks.bench_telemetry``).
Nothing here runs in the test suite; see benchmarks/README.md."""
