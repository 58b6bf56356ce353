"""REST v1 notification channels: the twelve types, config validation, masking, delete."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from .conftest import Client, Server, Workspace, new_workspace
from .helpers_seed import assert_envelope, assert_invalid, assert_uuid, parse_ts

# type -> (valid config, the secret strings in it, non-secret settings shown as stored).
# The generic ``url`` of webhook, grafana and prometheus channels is in neither list: whether it
# is masked is a policy still moving (docs/ARCHITECTURE.md shows it, notify/channels.py masks it),
# so only its scheme and host are asserted (see GENERIC_URL_HOSTS).
GENERIC_URL_HOSTS = {
    "webhook": "https://example.com/",
    "grafana": "https://grafana.example.com/",
    "prometheus": "https://alertmanager.example.com",
}
# the exact masked form of each definite secret (docs/ARCHITECTURE.md, "Masking")
MASKED: dict[str, dict[str, Any]] = {
    "discord": {"webhook_url": "https://discord.com/****cXYZ"},
    "slack": {"webhook_url": "https://hooks.slack.com/****0123"},
    "pagerduty": {"routing_key": "****cdef"},
    "opsgenie": {"api_key": "****6789"},
    "webhook": {"secret": "****e-42", "headers": {"X-Auth-Token": "****"}},
    "teams": {"webhook_url": "https://example.webhook.office.com/****0001"},
    "telegram": {"bot_token": "****xyz0"},
    "grafana": {"api_key": "****0123"},
    "datadog": {"api_key": "****6789"},
    "prometheus": {"password": "****rd-9"},
}
VALID: dict[str, tuple[dict[str, Any], list[str], dict[str, Any]]] = {
    "discord": (
        {
            "webhook_url": "https://discord.com/api/webhooks/1234567890/DiscordSecretToken_abcXYZ",
            "username": "floodwatch",
            "mention_everyone": True,
        },
        ["https://discord.com/api/webhooks/1234567890/DiscordSecretToken_abcXYZ"],
        {"username": "floodwatch", "mention_everyone": True},
    ),
    "slack": (
        {
            "webhook_url": "https://hooks.slack.com/services/T0001/B0001/SlackSecretPart0123",
            "channel": "#noc",
        },
        ["https://hooks.slack.com/services/T0001/B0001/SlackSecretPart0123"],
        {"channel": "#noc"},
    ),
    "email": ({"email": "noc@example.com"}, [], {"email": "noc@example.com"}),
    "sms": ({"phone": "+15551234567"}, [], {"phone": "+15551234567"}),
    "pagerduty": (
        {"routing_key": "R0utingKeySecret0123456789abcdef"},
        ["R0utingKeySecret0123456789abcdef"],
        {},
    ),
    "opsgenie": (
        {"api_key": "opsgenie-secret-key-0123456789", "region": "eu"},
        ["opsgenie-secret-key-0123456789"],
        {"region": "eu"},
    ),
    "webhook": (
        {
            "url": "https://example.com/hooks/floodwatch",
            "secret": "hmac-signing-secret-value-42",
            "headers": {"X-Auth-Token": "header-secret-value-77"},
        },
        ["hmac-signing-secret-value-42", "header-secret-value-77"],
        {},
    ),
    "teams": (
        {"webhook_url": "https://example.webhook.office.com/webhookb2/TeamsSecretPath0001"},
        ["https://example.webhook.office.com/webhookb2/TeamsSecretPath0001"],
        {},
    ),
    "telegram": (
        {"bot_token": "123456789:AAETelegramSecretTokenValue_xyz0", "chat_id": "-1001234567890"},
        ["123456789:AAETelegramSecretTokenValue_xyz0"],
        {"chat_id": "-1001234567890"},
    ),
    "grafana": (
        {"url": "https://grafana.example.com/api/alerts", "api_key": "glsa_GrafanaSecretKey0123"},
        ["glsa_GrafanaSecretKey0123"],
        {},
    ),
    "datadog": (
        {"api_key": "dd-secret-api-key-0123456789", "site": "datadoghq.eu"},
        ["dd-secret-api-key-0123456789"],
        {"site": "datadoghq.eu"},
    ),
    "prometheus": (
        {
            "url": "https://alertmanager.example.com:9093",
            "username": "fw",
            "password": "prom-secret-password-9",
        },
        ["prom-secret-password-9"],
        {"username": "fw"},
    ),
}

# type -> invalid configs (each must be refused with 400 invalid_parameter, field "config")
INVALID: dict[str, list[dict[str, Any]]] = {
    "discord": [
        {},
        {"webhook_url": None},
        {"webhook_url": "http://discord.com/api/webhooks/1/x"},
        {"webhook_url": "discord.com/api/webhooks/1/x"},
        {"webhook_url": 12345},
        {"webhook_url": "https://discord.com/api/webhooks/1/x", "mention_everyone": "yes"},
        {"webhook_url": "https://discord.com/api/webhooks/1/x", "colour": "red"},
    ],
    "slack": [{}, {"webhook_url": "ftp://hooks.slack.com/x"}, {"webhook_url": ""}],
    "email": [{}, {"email": "not-an-email"}, {"email": "a@b"}, {"email": ["noc@example.com"]}],
    "sms": [{}, {"phone": "5551234567"}, {"phone": "+0123456789"}, {"phone": "+1555abc4567"}],
    "pagerduty": [{}, {"routing_key": ""}, {"routing_key": "   "}, {"routing_key": 7}],
    "opsgenie": [{}, {"api_key": "k" * 20, "region": "ap"}],
    "webhook": [
        {},
        {"url": "ftp://example.com/hook"},
        {"url": "https://example.com/hook", "headers": "X-A: b"},
        {"url": "https://example.com/hook", "headers": {"Bad Header": "v"}},
        {"url": "https://example.com/hook", "secret": ""},
        {"url": "https://example.com/hook", "webhook_url": "https://example.com/other"},
    ],
    "teams": [{}, {"webhook_url": "http://example.webhook.office.com/x"}],
    "telegram": [
        {},
        {"chat_id": "-100123"},
        {"bot_token": "123456789:AAETelegramSecretTokenValue_xyz0"},
        {"bot_token": "not-a-token", "chat_id": "-100123"},
        {"bot_token": "123456789:AAETelegramSecretTokenValue_xyz0", "chat_id": "abc"},
    ],
    "grafana": [{}, {"url": "grafana.example.com"}, {"url": "mailto:x@example.com"}],
    "datadog": [{}, {"api_key": "dd-key", "site": "datadoghq.org"}],
    "prometheus": [{}, {"url": "localhost:9093"}, {"url": "https://am.example.com", "token": "x"}],
}

INVALID_CASES = [(t, cfg) for t, cfgs in INVALID.items() for cfg in cfgs]


@pytest.fixture(scope="module")
def shared_ws(server: Server) -> Workspace:
    """A workspace whose channels are only ever added with unique names, or refused."""
    return new_workspace(server)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def channel_total(client: Client) -> int:
    r = client.get("/api/v1/channels")
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def assert_masked(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret!r} leaked: {text}"


def test_all_twelve_types_are_covered() -> None:
    assert sorted(VALID) == sorted(
        [
            "discord",
            "slack",
            "email",
            "sms",
            "pagerduty",
            "opsgenie",
            "webhook",
            "teams",
            "telegram",
            "grafana",
            "datadog",
            "prometheus",
        ]
    )
    assert sorted(INVALID) == sorted(VALID)


@pytest.mark.parametrize("channel_type", sorted(VALID))
def test_channel_lifecycle(shared_ws: Workspace, channel_type: str) -> None:
    client = shared_ws.client
    config, secrets, shown = VALID[channel_type]
    name = unique(channel_type)

    r = client.post("/api/v1/channels", json={"name": name, "type": channel_type, "config": config})
    assert r.status_code == 201, r.text
    assert_masked(r.text, secrets)
    body = r.json()
    assert body["ok"] is True
    ch = body["channel"]
    assert isinstance(ch["id"], int) and not isinstance(ch["id"], bool)
    assert_uuid(ch["uuid"])
    assert (ch["name"], ch["type"], ch["enabled"]) == (name, channel_type, True)
    parse_ts(ch["created_at"])
    assert set(ch["config"]) == set(config)
    for key, value in shown.items():
        assert ch["config"][key] == value, key
    for key, masked in MASKED.get(channel_type, {}).items():
        assert ch["config"][key] == masked, (key, ch["config"])
    if channel_type in GENERIC_URL_HOSTS:
        assert ch["config"]["url"].startswith(GENERIC_URL_HOSTS[channel_type]), ch["config"]
    assert set(shown) | set(MASKED.get(channel_type, {})) | (
        {"url"} if channel_type in GENERIC_URL_HOSTS else set()
    ) == set(config)

    # get by integer id and by uuid: the same masked channel
    for ref in (ch["id"], ch["uuid"]):
        got = client.get(f"/api/v1/channels/{ref}")
        assert got.status_code == 200, got.text
        assert_masked(got.text, secrets)
        assert got.json()["channel"] == ch

    listing = client.get("/api/v1/channels?limit=100")
    assert listing.status_code == 200, listing.text
    assert_masked(listing.text, secrets)
    # the list is paged; find ours across pages
    found = []
    total = listing.json()["total"]
    for offset in range(0, total, 100):
        page = client.get(f"/api/v1/channels?limit=100&offset={offset}")
        assert_masked(page.text, secrets)
        found += [c for c in page.json()["channels"] if c["id"] == ch["id"]]
    assert found == [ch]

    # delete is permanent
    r = client.delete(f"/api/v1/channels/{ch['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    assert_envelope(client.get(f"/api/v1/channels/{ch['id']}"), 404, "not_found")
    assert_envelope(client.get(f"/api/v1/channels/{ch['uuid']}"), 404, "not_found")
    assert_envelope(client.delete(f"/api/v1/channels/{ch['id']}"), 404, "not_found")
    assert_envelope(client.delete(f"/api/v1/channels/{ch['uuid']}"), 404, "not_found")
    ids = [c["id"] for c in client.get("/api/v1/channels?limit=100").json()["channels"]]
    assert ch["id"] not in ids


def test_list_and_delete_by_uuid(ws: Workspace) -> None:
    client = ws.client
    listing = client.get("/api/v1/channels").json()
    assert (listing["channels"], listing["total"]) == ([], 0)
    created = []
    for channel_type in sorted(VALID):
        r = client.post(
            "/api/v1/channels",
            json={
                "name": f"ch-{channel_type}",
                "type": channel_type,
                "config": VALID[channel_type][0],
            },
        )
        assert r.status_code == 201, r.text
        created.append(r.json()["channel"])
    all_secrets = [s for _, secrets, _ in VALID.values() for s in secrets]
    r = client.get("/api/v1/channels")
    assert_masked(r.text, all_secrets)
    body = r.json()
    assert (body["total"], body["limit"], body["offset"]) == (12, 100, 0)
    assert body["channels"] == created  # oldest first
    page = client.get("/api/v1/channels?limit=5&offset=10").json()
    assert page["channels"] == created[10:] and page["total"] == 12

    victim = created[3]
    r = client.delete(f"/api/v1/channels/{victim['uuid']}")
    assert r.status_code == 200, r.text
    body = client.get("/api/v1/channels").json()
    assert body["total"] == 11
    assert body["channels"] == created[:3] + created[4:]
    assert_envelope(client.get(f"/api/v1/channels/{victim['id']}"), 404, "not_found")


def test_disabled_channel_and_aliases(shared_ws: Workspace) -> None:
    secret_url = "https://discord.com/api/webhooks/42/AliasSecretTokenValue_0001"
    r = shared_ws.client.post(
        "/api/v1/channels",
        json={
            "name": unique("alias"),
            "type": "discord",
            "config": {"url": secret_url},
            "enabled": False,
        },
    )
    assert r.status_code == 201, r.text
    assert secret_url not in r.text
    ch = r.json()["channel"]
    assert ch["enabled"] is False
    assert set(ch["config"]) == {"webhook_url"}  # stored under the canonical key
    got = shared_ws.client.get(f"/api/v1/channels/{ch['id']}")
    assert secret_url not in got.text
    assert got.json()["channel"]["enabled"] is False


@pytest.mark.parametrize(
    ("channel_type", "config"),
    INVALID_CASES,
    ids=[f"{t}-{i}" for t, cfgs in INVALID.items() for i in range(len(cfgs))],
)
def test_invalid_config_is_400(shared_ws: Workspace, channel_type: str, config: Any) -> None:
    before = channel_total(shared_ws.client)
    r = shared_ws.client.post(
        "/api/v1/channels", json={"name": unique("bad"), "type": channel_type, "config": config}
    )
    assert_invalid(r, "config")
    assert channel_total(shared_ws.client) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "irc", "config": {"url": "https://example.com"}}, "type"),
        ({"name": "x", "type": "alertmanager", "config": {"url": "https://example.com"}}, "type"),
        ({"name": "x", "type": "", "config": {}}, "type"),
        ({"name": "x", "type": 5, "config": {}}, "type"),
        ({"name": "x", "type": None, "config": {}}, "type"),
        ({"name": "x", "config": {"email": "noc@example.com"}}, "type"),
        ({"name": "x", "type": "email"}, "config"),
        ({"name": "x", "type": "email", "config": None}, "config"),
        ({"name": "x", "type": "email", "config": "noc@example.com"}, "config"),
        ({"name": "x", "type": "email", "config": ["noc@example.com"]}, "config"),
        ({"type": "email", "config": {"email": "noc@example.com"}}, "name"),
        ({"name": "", "type": "email", "config": {"email": "noc@example.com"}}, "name"),
        ({"name": "n" * 101, "type": "email", "config": {"email": "noc@example.com"}}, "name"),
        ({"name": 3, "type": "email", "config": {"email": "noc@example.com"}}, "name"),
        (
            {"name": "x", "type": "email", "config": {"email": "noc@example.com"}, "enabled": "no"},
            "enabled",
        ),
        (
            {"name": "x", "type": "email", "config": {"email": "noc@example.com"}, "colour": 1},
            "colour",
        ),
    ],
)
def test_invalid_body_is_400(shared_ws: Workspace, body: dict[str, Any], field: str) -> None:
    before = channel_total(shared_ws.client)
    assert_invalid(shared_ws.client.post("/api/v1/channels", json=body), field)
    assert channel_total(shared_ws.client) == before


@pytest.mark.parametrize("raw", [b"[]", b"{", b"", b"null"])
def test_non_object_json_is_400(shared_ws: Workspace, raw: bytes) -> None:
    r = shared_ws.client.post(
        "/api/v1/channels", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 400, "invalid_json")


@pytest.mark.parametrize(
    "ref", ["999999999", "0", "00000000-0000-0000-0000-000000000000", "abc", "-1", "1.5"]
)
def test_unknown_channel_is_404(shared_ws: Workspace, ref: str) -> None:
    assert_envelope(shared_ws.client.get(f"/api/v1/channels/{ref}"), 404, "not_found")
    assert_envelope(shared_ws.client.delete(f"/api/v1/channels/{ref}"), 404, "not_found")


def test_other_workspaces_channel_is_404(shared_ws: Workspace, other_ws: Workspace) -> None:
    config, secrets, _ = VALID["webhook"]
    r = shared_ws.client.post(
        "/api/v1/channels", json={"name": unique("mine"), "type": "webhook", "config": config}
    )
    assert r.status_code == 201, r.text
    ch = r.json()["channel"]
    for ref in (ch["id"], ch["uuid"]):
        assert_envelope(other_ws.client.get(f"/api/v1/channels/{ref}"), 404, "not_found")
        assert_envelope(other_ws.client.delete(f"/api/v1/channels/{ref}"), 404, "not_found")
    listing = other_ws.client.get("/api/v1/channels").json()
    assert (listing["channels"], listing["total"]) == ([], 0)
    # still there, unchanged, for its owner
    got = shared_ws.client.get(f"/api/v1/channels/{ch['id']}")
    assert got.status_code == 200 and got.json()["channel"] == ch
    assert_masked(got.text, secrets)


def test_channels_need_a_token(server: Server) -> None:
    for method, path in (
        ("GET", "/api/v1/channels"),
        ("POST", "/api/v1/channels"),
        ("GET", "/api/v1/channels/1"),
        ("DELETE", "/api/v1/channels/1"),
    ):
        r = requests.request(method, server.url(path), json={}, timeout=30)
        assert_envelope(r, 401, "unauthorized")


@pytest.mark.parametrize(
    ("channel_type", "config", "stored"),
    [
        ("email", {"email": "  noc@example.com  "}, {"email": "noc@example.com"}),
        ("email", {"to": "noc@example.com", "name": None}, {"email": "noc@example.com"}),
        ("sms", {"phone": "+1 555-123-4567"}, {"phone": "+15551234567"}),
        ("sms", {"phone_number": "+15551234567"}, {"phone": "+15551234567"}),
        (
            "telegram",
            {"bot_token": "123456789:AAETelegramSecretTokenValue_xyz0", "chat_id": -100123},
            {"bot_token": "****xyz0", "chat_id": "-100123"},
        ),
        (
            "telegram",
            {"bot_token": "123456789:AAETelegramSecretTokenValue_xyz0", "chat_id": "@noc_room"},
            {"bot_token": "****xyz0", "chat_id": "@noc_room"},
        ),
        (
            "slack",
            {"webhook_url": "https://hooks.slack.com/services/T1/B1/abcdefgh", "channel": None},
            {"webhook_url": "https://hooks.slack.com/****efgh"},
        ),
        ("pagerduty", {"integration_key": "shortkey"}, {"routing_key": "****"}),
        ("datadog", {"api_key": "dd-secret-api-key-0123456789"}, {"api_key": "****6789"}),
    ],
)
def test_config_is_normalised(
    shared_ws: Workspace, channel_type: str, config: dict[str, Any], stored: dict[str, Any]
) -> None:
    r = shared_ws.client.post(
        "/api/v1/channels",
        json={"name": unique("norm"), "type": channel_type.upper(), "config": config},
    )
    assert r.status_code == 201, r.text
    ch = r.json()["channel"]
    assert ch["type"] == channel_type  # the type is case-insensitive, stored in lower case
    assert ch["config"] == stored
    assert shared_ws.client.get(f"/api/v1/channels/{ch['uuid']}").json()["channel"] == ch


@pytest.mark.parametrize(
    ("channel_type", "config"),
    [
        ("discord", {"webhook_url": "https://discord.com/api/webhooks/1/abc\x7fdef"}),
        ("email", {"email": "noc@example.com", "name": "NOC\x7f"}),
        ("pagerduty", {"routing_key": "key\x9b31mvalue"}),
        ("webhook", {"url": "https://example.com/h", "headers": {"X-A": "v\x7f"}}),
    ],
    ids=["discord-del", "email-del", "pagerduty-c1", "webhook-header-del"],
)
def test_control_characters_in_config_are_400(
    shared_ws: Workspace, channel_type: str, config: dict[str, Any]
) -> None:
    """docs/ARCHITECTURE.md: config text values are "without control characters"; DEL (0x7f)
    and the C1 controls (0x80-0x9f, e.g. 0x9b, the 8-bit CSI) are control characters too."""
    before = channel_total(shared_ws.client)
    r = shared_ws.client.post(
        "/api/v1/channels", json={"name": unique("ctl"), "type": channel_type, "config": config}
    )
    assert_invalid(r, "config")
    assert channel_total(shared_ws.client) == before


def test_delete_answer(shared_ws: Workspace) -> None:
    r = shared_ws.client.post(
        "/api/v1/channels",
        json={"name": unique("del"), "type": "email", "config": {"email": "noc@example.com"}},
    )
    ch = r.json()["channel"]
    r = shared_ws.client.delete(f"/api/v1/channels/{ch['uuid']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["deleted"] is True
    assert body.get("id", ch["id"]) == ch["id"] and body.get("uuid", ch["uuid"]) == ch["uuid"]


# --- the settings the senders need (notify/services), and the filters every type takes ---------

SENDER_SETTINGS: list[tuple[str, dict[str, Any], list[str], dict[str, Any]]] = [
    # (type, config, secrets that must never be shown, settings shown as stored)
    (
        "email",
        {
            "to": "noc@example.com,  oncall@example.org",
            "host": "smtp.example.net",
            "port": 465,
            "security": "tls",
            "username": "alerts@example.net",
            "password": "smtp-secret-password-5",
            "from": "floodwatch@example.net",
            "from_name": "Floodwatch",
            "verify_tls": True,
        },
        ["smtp-secret-password-5"],
        {
            "email": "noc@example.com, oncall@example.org",
            "smtp_host": "smtp.example.net",
            "smtp_port": 465,
            "security": "tls",
            "from": "floodwatch@example.net",
        },
    ),
    (
        "sms",
        {
            "phone": "+15551234567",
            "account_sid": "AC" + "0123456789abcdef" * 2,
            "auth_token": "twilio-auth-token-secret-77",
            "from_number": "+15557654321",
            "api_url": "https://api.twilio.example/",
        },
        ["twilio-auth-token-secret-77"],
        {"from": "+15557654321", "api_url": "https://api.twilio.example"},
    ),
    (
        "pagerduty",
        {
            "routing_key": "R0utingKeySecret0123456789abcdef",
            "severity_map": "high=critical,medium=error",
            "api_url": "https://events.eu.pagerduty.com",
        },
        ["R0utingKeySecret0123456789abcdef"],
        {"severity_map": "high=critical,medium=error"},
    ),
    (
        "grafana",
        {
            "url": "https://grafana.example.com",
            "token": "glsa_GrafanaSecretKey0123",
            "dashboard_uid": "ddos",
            "panel_id": 4,
            "tags": ["prod", "edge"],
        },
        ["glsa_GrafanaSecretKey0123"],
        {"dashboard_uid": "ddos", "panel_id": 4, "tags": ["prod", "edge"]},
    ),
    (
        "prometheus",
        {
            "url": "https://am.example.com",
            "bearer_token": "am-bearer-secret-token-1",
            "firing_hours": 12,
        },
        ["am-bearer-secret-token-1"],
        {"firing_hours": 12},
    ),
    (
        "telegram",
        {
            "bot_token": "123456789:AAETelegramSecretTokenValue_xyz0",
            "chat_id": "-100123",
            "api_url": "http://127.0.0.1:8081",
            "message_thread_id": 7,
            "silent": True,
        },
        ["123456789:AAETelegramSecretTokenValue_xyz0"],
        {"api_url": "http://127.0.0.1:8081", "message_thread_id": 7, "silent": True},
    ),
    (
        "webhook",
        {
            "url": "https://example.com/h",
            "min_severity": "high",
            "nodes": ["5A1D1E7E8A1C4C559F552A8A4C7A0C01"],
            "events": ["attack_end", "attack_start"],
            "mute": {"from": "22:00", "to": "06:30", "tz": "Europe/Berlin"},
        },
        [],
        {
            "min_severity": "high",
            "nodes": ["5a1d1e7e-8a1c-4c55-9f55-2a8a4c7a0c01"],
            "events": ["attack_start", "attack_end"],
            "mute": {"from": "22:00", "to": "06:30", "tz": "Europe/Berlin"},
        },
    ),
    # a chat webhook may be plain http only to this machine (a local relay)
    ("slack", {"webhook_url": "http://127.0.0.1:9000/hook"}, [], {}),
]


@pytest.mark.parametrize(
    ("channel_type", "config", "secrets", "shown"),
    SENDER_SETTINGS,
    ids=[f"{t}-{i}" for i, (t, *_) in enumerate(SENDER_SETTINGS)],
)
def test_sender_settings_are_stored_and_secrets_masked(
    shared_ws: Workspace,
    channel_type: str,
    config: dict[str, Any],
    secrets: list[str],
    shown: dict[str, Any],
) -> None:
    r = shared_ws.client.post(
        "/api/v1/channels", json={"name": unique("set"), "type": channel_type, "config": config}
    )
    assert r.status_code == 201, r.text
    assert_masked(r.text, secrets)
    ch = r.json()["channel"]
    for key, value in shown.items():
        assert ch["config"][key] == value, (key, ch["config"])
    got = shared_ws.client.get(f"/api/v1/channels/{ch['id']}")
    assert_masked(got.text, secrets)


SENDER_INVALID: list[tuple[str, dict[str, Any], str]] = [
    # (type, config, the key the message must name)
    ("email", {"email": "noc@example.com", "security": "ssl"}, "security"),
    ("email", {"email": "noc@example.com", "smtp_port": 70000}, "smtp_port"),
    ("email", {"email": "noc@example.com", "smtp_port": "25"}, "smtp_port"),
    ("email", {"email": "noc@example.com, not-an-address"}, "email"),
    ("email", {"email": "noc@example.com", "ca_cert": "not a certificate"}, "ca_cert"),
    ("sms", {"phone": "+15551234567", "account_sid": "AC123"}, "account_sid"),
    ("sms", {"phone": "+15551234567", "messaging_service_sid": "MG" + "z" * 32}, "messaging"),
    ("pagerduty", {"routing_key": "k" * 32, "severity_map": "high=loud"}, "severity_map"),
    ("pagerduty", {"routing_key": "k" * 32, "api_url": "https://x.example/?a=1"}, "api_url"),
    ("grafana", {"url": "https://g.example.com", "panel_id": -1}, "panel_id"),
    ("grafana", {"url": "https://g.example.com", "tags": ["has space"]}, "tags"),
    ("datadog", {"api_key": "k" * 32, "tags": "env:prod"}, "tags"),
    ("prometheus", {"url": "https://am.example.com", "firing_hours": 0}, "firing_hours"),
    ("discord", {"webhook_url": "http://10.0.0.8/api/webhooks/1/x"}, "webhook_url"),
    ("webhook", {"url": "https://e.example/h", "min_severity": "huge"}, "min_severity"),
    ("webhook", {"url": "https://e.example/h", "nodes": ["edge-1"]}, "nodes"),
    ("webhook", {"url": "https://e.example/h", "nodes": "all"}, "nodes"),
    ("webhook", {"url": "https://e.example/h", "events": ["attack_begin"]}, "events"),
    ("webhook", {"url": "https://e.example/h", "mute": {"from": "24:00", "to": "06:00"}}, "mute"),
    ("webhook", {"url": "https://e.example/h", "mute": {"from": "22:00"}}, "mute"),
    (
        "webhook",
        {"url": "https://e.example/h", "mute": {"from": "1:00", "to": "2:00", "tz": "Mars/Base"}},
        "mute",
    ),
    (
        "webhook",
        {"url": "https://e.example/h", "mute": {"from": "01:00", "to": "02:00", "tz": "Mars/X"}},
        "mute.tz",
    ),
]


@pytest.mark.parametrize(
    ("channel_type", "config", "key"),
    SENDER_INVALID,
    ids=[f"{t}-{k}-{i}" for i, (t, _, k) in enumerate(SENDER_INVALID)],
)
def test_sender_settings_invalid_are_400_naming_the_key(
    shared_ws: Workspace, channel_type: str, config: dict[str, Any], key: str
) -> None:
    before = channel_total(shared_ws.client)
    r = shared_ws.client.post(
        "/api/v1/channels", json={"name": unique("bad"), "type": channel_type, "config": config}
    )
    body = assert_invalid(r, "config")
    assert f"config.{key}" in body["error"]["message"], body
    assert channel_total(shared_ws.client) == before


def test_channel_settings_describe_every_type() -> None:
    from notify.channels import CHANNEL_TYPES, channel_settings

    for channel_type in CHANNEL_TYPES:
        settings = channel_settings(channel_type)
        assert settings["required"], channel_type
        assert set(settings["secrets"]) <= set(settings["required"]) | set(settings["optional"])
        assert settings["filters"] == ["min_severity", "nodes", "events", "mute"]
    assert "auth_token" in channel_settings("sms")["secrets"]
    assert "password" in channel_settings("email")["secrets"]
