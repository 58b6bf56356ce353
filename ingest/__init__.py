"""Ingest: wire formats (Arrow schemas, ftagent JSON to rows), the receiver routes for the Agent
API and binary telemetry, the WAL, buffering and backpressure. Arrives with the telemetry pipeline
and Agent API issues; nothing here yet."""
