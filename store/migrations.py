"""Versioned schema migrations, applied in order at start inside one transaction each.

Append a new entry to ``MIGRATIONS`` to change the schema; never edit an entry that has shipped.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE workspaces (
            uuid UUID PRIMARY KEY,
            name VARCHAR NOT NULL,
            plan VARCHAR NOT NULL,
            node_limit INTEGER,
            subscription_status VARCHAR NOT NULL,
            parent_uuid UUID,
            email VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            deleted_at TIMESTAMPTZ
        );
        CREATE TABLE deploy_tokens (
            id UUID PRIMARY KEY,
            workspace_uuid UUID NOT NULL,
            name VARCHAR NOT NULL,
            prefix VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            revoked_at TIMESTAMPTZ,
            last_used_at TIMESTAMPTZ
        );
        CREATE INDEX deploy_tokens_hash ON deploy_tokens (token_hash);
        CREATE TABLE nodes (
            uuid UUID PRIMARY KEY,
            workspace_uuid UUID NOT NULL,
            name VARCHAR NOT NULL,
            ip VARCHAR NOT NULL,
            location VARCHAR,
            os VARCHAR,
            interface VARCHAR NOT NULL,
            priority VARCHAR NOT NULL,
            api_key_hash VARCHAR NOT NULL,
            api_key_prefix VARCHAR NOT NULL,
            sp_enabled BOOLEAN NOT NULL DEFAULT false,
            sp_sensitivity VARCHAR NOT NULL DEFAULT 'standard',
            sp_response_mode VARCHAR NOT NULL DEFAULT 'full',
            service_ports JSON NOT NULL DEFAULT '[]',
            elevated BOOLEAN NOT NULL DEFAULT false,
            last_seen TIMESTAMPTZ,
            last_pps DOUBLE,
            last_bps DOUBLE,
            agent_version VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            deleted_at TIMESTAMPTZ
        );
        CREATE INDEX nodes_key_hash ON nodes (api_key_hash);
        CREATE SEQUENCE incident_id_seq START 1;
        CREATE TABLE incidents (
            uuid UUID PRIMARY KEY,
            id BIGINT NOT NULL DEFAULT nextval('incident_id_seq'),
            workspace_uuid UUID NOT NULL,
            node_uuid UUID NOT NULL,
            status VARCHAR NOT NULL,
            severity VARCHAR NOT NULL,
            attack_family VARCHAR NOT NULL,
            attack_subtype VARCHAR,
            title VARCHAR,
            started_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            resolved_at TIMESTAMPTZ,
            peak_pps DOUBLE NOT NULL DEFAULT 0,
            peak_bps DOUBLE NOT NULL DEFAULT 0,
            source_ip_count INTEGER NOT NULL DEFAULT 0,
            confidence INTEGER,
            protocol_breakdown JSON,
            geo_origin JSON,
            top_sources JSON,
            top_dst_ports JSON,
            summary VARCHAR,
            detail JSON,
            source VARCHAR NOT NULL DEFAULT 'agent'
        );
        CREATE SEQUENCE channel_id_seq START 1;
        CREATE TABLE channels (
            id BIGINT PRIMARY KEY DEFAULT nextval('channel_id_seq'),
            uuid UUID NOT NULL,
            workspace_uuid UUID NOT NULL,
            name VARCHAR NOT NULL,
            type VARCHAR NOT NULL,
            config JSON NOT NULL,
            enabled BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE collector_keys (
            id UUID PRIMARY KEY,
            workspace_uuid UUID NOT NULL,
            name VARCHAR NOT NULL,
            prefix VARCHAR NOT NULL,
            key_hash VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            revoked_at TIMESTAMPTZ
        );
        CREATE INDEX collector_keys_hash ON collector_keys (key_hash);
        """,
    ),
    (
        3,
        """
        ALTER TABLE incidents ADD COLUMN agent_ref VARCHAR;
        CREATE TABLE agent_command_acks (
            node_uuid UUID NOT NULL,
            command_id BIGINT NOT NULL,
            status VARCHAR NOT NULL,
            error VARCHAR,
            received_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        4,
        """
        CREATE SEQUENCE agent_report_id_seq START 1;
        CREATE TABLE agent_reports (
            id BIGINT PRIMARY KEY DEFAULT nextval('agent_report_id_seq'),
            workspace_uuid UUID NOT NULL,
            node_uuid UUID NOT NULL,
            kind VARCHAR NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            last_received_at TIMESTAMPTZ NOT NULL,
            repeats INTEGER NOT NULL DEFAULT 1,
            incident_ref VARCHAR,
            item_count INTEGER,
            body JSON NOT NULL
        );
        """,
    ),
    (
        5,
        """
        CREATE TABLE incident_pcaps (
            id UUID PRIMARY KEY,
            workspace_uuid UUID NOT NULL,
            incident_uuid UUID NOT NULL,
            node_uuid UUID NOT NULL,
            name VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            sha256 VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            upload_id VARCHAR,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX incident_pcaps_incident ON incident_pcaps (incident_uuid);
        """,
    ),
    (
        6,
        """
        CREATE TABLE agent_settings (
            workspace_uuid UUID NOT NULL,
            node_uuid UUID,
            settings JSON NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE SEQUENCE agent_command_id_seq START 1;
        CREATE TABLE agent_commands (
            id BIGINT PRIMARY KEY DEFAULT nextval('agent_command_id_seq'),
            workspace_uuid UUID NOT NULL,
            node_uuid UUID NOT NULL,
            command_type VARCHAR NOT NULL,
            command_text VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        7,
        """
        ALTER TABLE nodes ADD COLUMN agent_status JSON;
        ALTER TABLE nodes ADD COLUMN last_heartbeat_at TIMESTAMPTZ;
        ALTER TABLE nodes ADD COLUMN agent_update_error VARCHAR;
        ALTER TABLE nodes ADD COLUMN agent_update_error_at TIMESTAMPTZ;
        """,
    ),
    (
        8,
        """
        ALTER TABLE agent_commands ADD COLUMN incident_uuid UUID;
        ALTER TABLE agent_commands ADD COLUMN undo_text VARCHAR;
        ALTER TABLE agent_commands ADD COLUMN undo_of BIGINT;
        ALTER TABLE agent_commands ADD COLUMN cancelled_at TIMESTAMPTZ;
        """,
    ),
    (
        9,
        """
        ALTER TABLE incidents ADD COLUMN detection JSON;
        ALTER TABLE incidents ADD COLUMN campaign_id VARCHAR;
        ALTER TABLE incidents ADD COLUMN detector_ref VARCHAR;
        CREATE TABLE detection_settings (
            workspace_uuid UUID NOT NULL,
            node_uuid UUID,
            settings JSON NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        10,
        """
        CREATE TABLE alert_events (
            event_id UUID PRIMARY KEY,
            workspace_uuid UUID NOT NULL,
            incident_uuid UUID,
            kind VARCHAR NOT NULL,
            payload JSON NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE SEQUENCE alert_delivery_seq START 1;
        CREATE TABLE alert_deliveries (
            delivery_id UUID PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT nextval('alert_delivery_seq'),
            event_id UUID NOT NULL,
            channel_id BIGINT NOT NULL,
            workspace_uuid UUID NOT NULL,
            incident_uuid UUID,
            kind VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ NOT NULL,
            next_attempt_at TIMESTAMPTZ NOT NULL,
            done_at TIMESTAMPTZ,
            last_error VARCHAR
        );
        CREATE INDEX alert_deliveries_status ON alert_deliveries (status);
        CREATE SEQUENCE alert_attempt_seq START 1;
        CREATE TABLE alert_attempts (
            id BIGINT PRIMARY KEY DEFAULT nextval('alert_attempt_seq'),
            delivery_id UUID NOT NULL,
            channel_id BIGINT NOT NULL,
            workspace_uuid UUID NOT NULL,
            attempt INTEGER NOT NULL,
            attempted_at TIMESTAMPTZ NOT NULL,
            status VARCHAR NOT NULL,
            http_status INTEGER,
            smtp_reply VARCHAR,
            error VARCHAR,
            latency_ms DOUBLE,
            retry_after DOUBLE
        );
        CREATE INDEX alert_attempts_channel ON alert_attempts (channel_id);
        CREATE TABLE alert_channel_incidents (
            channel_id BIGINT NOT NULL,
            incident_uuid UUID NOT NULL,
            started_event UUID,
            ended_event UUID,
            peak_pps DOUBLE NOT NULL DEFAULT 0,
            peak_bps DOUBLE NOT NULL DEFAULT 0,
            attack_family VARCHAR,
            severity VARCHAR,
            last_update_at TIMESTAMPTZ,
            remote_ref VARCHAR,
            PRIMARY KEY (channel_id, incident_uuid)
        );
        """,
    ),
    (
        11,
        # ids no longer come from the database-wide sequences, which told every workspace how
        # many incidents and channels the others created: the repository modules draw them with
        # store.ids, and this default (random, 1..2^53-1) covers any insert that leaves id out
        """
        ALTER TABLE incidents ALTER COLUMN id
            SET DEFAULT CAST(hash(gen_random_uuid()) % 9007199254740991 AS BIGINT) + 1;
        ALTER TABLE channels ALTER COLUMN id
            SET DEFAULT CAST(hash(gen_random_uuid()) % 9007199254740991 AS BIGINT) + 1;
        """,
    ),
]
