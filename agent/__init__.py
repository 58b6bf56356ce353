"""Floodwatch's own Linux agent and its sender library.

- ``agent.sender``: async client for the binary telemetry endpoints (batching, retries,
  splitting, spooling); usable by any Python program that has rows to push.
- ``agent.procfs``: per-second node metrics from ``/proc/net`` counters (pure parsing).
- ``agent.capture``: optional AF_PACKET packet sampler producing flow rows.
- ``agent.spool``: the on-disk buffer of undeliverable batches.
- ``agent.config`` / ``agent.main`` / ``agent.run``: the ``floodwatch agent`` command.
"""

__all__: list[str] = []
