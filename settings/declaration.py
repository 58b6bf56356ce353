"""Every setting of Floodwatch, declared once: the server's (``Config``, one dataclass per TOML
section) and ``floodwatch agent``'s (``AgentConfig``, the ``[agent]`` table).

Each field carries its type, its default and a ``doc`` (``setting``). ``floodwatch config
--dump``, the environment variable names (``FLOODWATCH_<SECTION>__<SETTING>``) and the checks
of ``docs/configuration.md`` (tests/test_config.py) all come from here. Range checks live with
each program: ``api/config.py`` and ``agent/config.py``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AGENT_SECTIONS",
    "ENV_SECTIONS",
    "SERVER_SECTIONS",
    "AgentConfig",
    "AlertsConfig",
    "ApiConfig",
    "Config",
    "DetectConfig",
    "IngestConfig",
    "LakeConfig",
    "ServerConfig",
    "StoreConfig",
    "setting",
]


def setting(default: Any, doc: str) -> Any:
    """A field with its default and its documentation."""
    return field(default=default, metadata={"doc": doc})


# --- the server (floodwatch serve and every other command but agent) -------------------------


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("127.0.0.1", "Address the HTTP server binds to.")
    port: int = setting(8080, "TCP port of the HTTP server (0 picks a free port).")
    data_dir: str = setting(
        "./var", "Data directory: DuckDB file, admin socket, and later the WAL and Parquet lake."
    )
    admin_socket: bool = setting(
        True,
        "Serve the local admin socket (data_dir/admin.sock, mode 0600) that the CLI uses while "
        "the server holds the database.",
    )
    log_level: str = setting("info", "Log level: debug, info, warning or error.")
    access_log: str = setting(
        "rest",
        "Access log lines: all; rest (all but successful agent and telemetry calls); off.",
    )
    shutdown_timeout_secs: float = setting(
        10.0, "How long in-flight requests may run after SIGTERM/SIGINT before they are cut."
    )
    public_url: str = setting(
        "", "Public base URL, given as the server of the OpenAPI document; empty: none."
    )
    metrics_token: str = setting(
        "",
        "Bearer token that /metrics asks of addresses other than loopback (never logged; prefer "
        "the environment variable); empty: /metrics answers loopback only.",
    )


@dataclass(frozen=True)
class ApiConfig:
    max_body_bytes: int = setting(
        1_048_576, "Largest JSON request body accepted by the REST API; larger bodies get 413."
    )
    rate_limit_per_minute: int = setting(
        1000, "Requests per minute allowed for one deploy token (fixed one-minute windows)."
    )
    auth_failures_per_minute: int = setting(
        600,
        "Failed authentications per minute allowed from one client address before it gets 429.",
    )
    offline_after_secs: int = setting(
        120, "A node with no heartbeat or metrics for this long is reported offline."
    )
    bootstrap_workspace: bool = setting(
        True,
        "On the first serve of an empty data directory, create a default workspace and print "
        "its deploy token once to the terminal.",
    )
    default_plan: str = setting(
        "self-hosted", "Plan given to workspaces created without --plan (see docs/ARCHITECTURE.md)."
    )
    agent_incident_expiry_secs: int = setting(
        600, "An active agent incident with no open, update or resolve for this long is resolved."
    )
    agent_config_cache_secs: float = setting(
        600.0, "Longest time a node's cached agent config answer is served (writes clear it)."
    )
    pcap_retention_days: int = setting(
        30, "Incident PCAP files older than this many days are deleted."
    )
    elevated_factor: float = setting(
        2.0, "A node is elevated while its newest pps exceeds this many times its baseline p99."
    )
    elevated_floor_pps: float = setting(
        1000.0, "Traffic below this many pps never makes a node elevated."
    )


@dataclass(frozen=True)
class StoreConfig:
    database_file: str = setting(
        "floodwatch.duckdb", "Name of the DuckDB file inside data_dir, or an absolute path."
    )
    threads: int = setting(2, "DuckDB worker threads.")
    memory_limit: str = setting("1GB", "DuckDB memory limit (DuckDB size syntax, e.g. 512MB).")


@dataclass(frozen=True)
class IngestConfig:
    max_body_bytes: int = setting(
        64 * 1024 * 1024, "Largest binary telemetry body; larger bodies get 413."
    )
    max_batch_rows: int = setting(1_000_000, "Most rows in one binary batch; more gets 413.")
    flush_rows: int = setting(
        250_000, "A lake partition's buffered rows are written once this many have gathered..."
    )
    flush_age_secs: float = setting(
        10.0, "...or once its oldest buffered row has waited this long."
    )
    max_buffer_bytes: int = setting(
        256 * 1024 * 1024,
        "Memory for rows waiting to be written; past it the receiver answers 503 + Retry-After.",
    )
    wal_segment_bytes: int = setting(64 * 1024 * 1024, "Size at which a WAL segment is rolled.")
    wal_compression: str = setting(
        "lz4",
        "Arrow compression of WAL entries the server encodes (Agent API rows): none, lz4 or zstd.",
    )
    dedup_window_secs: int = setting(
        86_400, "How long a batch id (X-Batch-Id) is remembered to store re-sent batches once."
    )
    dedup_max_ids: int = setting(1_000_000, "Most batch ids remembered (oldest forgotten first).")
    max_clock_skew_secs: int = setting(
        300, "Rows stamped further than this in the future are refused."
    )
    decode_threads: int = setting(2, "Worker threads that decode and check binary batches.")
    max_concurrent_decodes: int = setting(
        8, "Batches decoded at once; more concurrent requests get 503 + Retry-After."
    )
    auth_cache_secs: float = setting(
        300.0, "How long a node or collector key lookup is cached (writes clear the cache)."
    )


@dataclass(frozen=True)
class LakeConfig:
    compression: str = setting("zstd", "Parquet compression: zstd, lz4, snappy or none.")
    compression_level: int = setting(
        1, "Compression level (zstd); 1 is faster than 3 and as small for telemetry."
    )
    fresh_compression: str = setting(
        "lz4",
        "Parquet compression of the files ingest writes, until compaction rewrites their hour "
        "with lake.compression: zstd, lz4, snappy or none.",
    )
    writers: int = setting(
        2, "Parquet writer threads: partitions written at the same time (one file each)."
    )
    raw_retention_days: int = setting(15, "Days of per-second node metrics kept.")
    flows_retention_days: int = setting(15, "Days of sampled flows kept.")
    rollup_1m_retention_days: int = setting(30, "Days of 1-minute rollups kept.")
    rollup_5m_retention_days: int = setting(90, "Days of 5-minute rollups kept.")
    rollup_1h_retention_days: int = setting(400, "Days of 1-hour rollups kept.")
    compact_after_secs: int = setting(
        300, "An hour partition is compacted (and rolled up) this long after the hour ends."
    )
    maintenance_interval_secs: float = setting(
        60.0, "How often compaction, rollups, retention and catalog snapshots run."
    )


@dataclass(frozen=True)
class DetectConfig:
    enabled: bool = setting(
        True, "Run Floodwatch's own detector over every node's telemetry as it is acknowledged."
    )
    max_backlog_rows: int = setting(
        1_000_000,
        "Node-seconds and flow rows waiting for the detector beyond which telemetry is refused "
        "with 503 and Retry-After until it catches up.",
    )
    snapshot_interval_secs: float = setting(
        30.0,
        "How often the detector's state (baselines, open incidents) is saved to "
        "data_dir/detect/state.bin; it is saved at shutdown too.",
    )
    seed_days: int = setting(
        14,
        "Days of 1-minute rollups from which baselines are rebuilt at start for nodes the saved "
        "state does not cover (a first start, a lost state file, a backfilled node).",
    )
    geo: str = setting(
        "builtin",
        "Country and ASN of source addresses: builtin (the offline database shipped with "
        "Floodwatch), maxmind (the .mmdb files below) or off.",
    )
    maxmind_country_db: str = setting(
        "", "Path of a MaxMind GeoLite2/GeoIP2 Country (or City) .mmdb file (geo = maxmind)."
    )
    maxmind_asn_db: str = setting("", "Path of a MaxMind GeoLite2 ASN .mmdb file (geo = maxmind).")
    summary_llm_url: str = setting(
        "",
        "Base URL of an OpenAI-compatible API (ending in /v1) that writes incident summaries; "
        "empty: the deterministic summary only. Any failure falls back to it.",
    )
    summary_llm_model: str = setting("gpt-4o-mini", "Model asked for summaries.")
    summary_llm_api_key: str = setting(
        "", "Bearer key of the summary API (never logged; prefer the environment variable)."
    )
    summary_llm_timeout_secs: float = setting(
        5.0, "How long a summary may take before the deterministic one is used."
    )


@dataclass(frozen=True)
class AlertsConfig:
    enabled: bool = setting(
        True,
        "Send incident alerts to the workspaces' channels (false: no alert is queued or sent; "
        "channel tests still work).",
    )
    public_url: str = setting(
        "",
        "Base URL of the links to incidents in alerts ({public_url}/dashboard/incident?id=N); "
        "empty: server.public_url; both empty: alerts carry no link.",
    )
    update_interval_secs: float = setting(
        300.0, "Fewest seconds between two attack_update alerts of one incident to one channel."
    )
    update_peak_factor: float = setting(
        1.5,
        "How much the peak (pps or bps) must have grown since the last alert of an incident "
        "for an attack_update.",
    )
    give_up_after_secs: float = setting(
        3600.0, "How long a delivery is retried before it is marked failed."
    )
    attempt_timeout_secs: float = setting(
        10.0, "How long one delivery attempt may take (connect, send and answer)."
    )
    per_channel_concurrency: int = setting(
        4, "Deliveries in flight at once per channel (the others of that channel wait)."
    )
    retry_base_secs: float = setting(
        2.0,
        "Wait before the first retry; each next one waits twice as long (with jitter), up to "
        "retry_max_secs, or as long as the service's Retry-After asks.",
    )
    retry_max_secs: float = setting(300.0, "Longest wait between two attempts of a delivery.")
    log_retention_days: int = setting(
        30,
        "Days the delivery log (finished deliveries, their attempts and events) is kept; "
        "deliveries still being tried are never removed.",
    )


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    lake: LakeConfig = field(default_factory=LakeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def database_path(self) -> Path:
        p = Path(self.store.database_file)
        return p if p.is_absolute() else self.data_path / p


# --- floodwatch agent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    server_url: str = setting(
        "", "Base URL of the Floodwatch server, e.g. https://fw.example:8080."
    )
    key: str = setting("", "The node's API key (or a collector key). Prefer the file or env.")
    interface: str = setting(
        "", "Network interface to measure; empty means the interface of the default route."
    )
    interval_secs: int = setting(1, "Seconds between two samples of the kernel counters.")
    proc_root: str = setting("/proc", "Directory laid out like /proc to read counters from.")
    spool_dir: str = setting(
        "", "Directory for batches the server could not take (empty: no spool, such rows are lost)."
    )
    spool_max_bytes: int = setting(
        268_435_456, "Largest size of the spool; the oldest batches are dropped beyond it."
    )
    batch_rows: int = setting(10_000, "Largest number of rows in one batch.")
    max_batch_age_secs: float = setting(
        5.0, "A batch is sent when its oldest row is this old, even if it is not full."
    )
    compression: str = setting("zstd", "Arrow IPC buffer compression: zstd, lz4 or none.")
    capture: bool = setting(
        False, "Sample packets with AF_PACKET (root) for flows, TCP flag rates, distinct sources."
    )
    sample_rate: int = setting(100, "Packet capture keeps 1 in this many received packets.")


# section name -> dataclass, in the order of Config (and of `config --dump`)
SERVER_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)
}
AGENT_SECTIONS: dict[str, type] = {"agent": AgentConfig}
# Every FLOODWATCH_<SECTION>__<SETTING> variable of either program.
ENV_SECTIONS: dict[str, type] = {**SERVER_SECTIONS, **AGENT_SECTIONS}
