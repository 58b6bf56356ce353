"""The Agent API's declarations (issue 12): the agent-config overrides declared once
(``api/agentapi/overrides.py``) answer a PATCH as the hand-written checks did and document every
key with its bounds; the ftagent bodies' schemas take every body the server takes; the answers
(``api/agentapi/answers.py``) fit what the server builds; every Agent API operation comes from a
declaration."""

from __future__ import annotations

import uuid
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from api.agentapi import OPERATIONS, ROUTE_TABLES, overrides
from api.agentapi.defaults import AgentTraits, config_answer
from api.agentapi.models import (
    REPORT_MODELS,
    CommandAck,
    CommandCreate,
    Heartbeat,
    IncidentOpen,
    IncidentReport,
    Metrics,
)
from api.agentapi.settings_repo import COMMAND_TYPES, overlay
from api.errors import ApiError
from api.models import refuse_unknown, validate
from api.openapi import openapi_document
from api.openapi.operations import document_operations

from .conftest import Server
from .test_agent_api import _ok, _setup

DOC = openapi_document()
COMPONENTS = DOC["components"]["schemas"]


def _validator(name: str) -> Any:
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}
    )


# --------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        ({"confirm_ticks": 99}, "confirm_ticks must be an integer from 2 to 30", "confirm_ticks"),
        ({"pcap_enabled": "yes"}, "pcap_enabled must be true or false", "pcap_enabled"),
        ({"flow": None, "nope": 1}, "nope is not an agent setting", "nope"),
        ({"nope": 1, "confirm_ticks": 99}, "nope is not an agent setting", "nope"),
        ({"confirm_ticks": 99, "nope": 1}, "confirm_ticks must be an integer from 2 to 30", None),
        (
            {"flow": {"enabled": True, "port": 70000}},
            "flow.port must be an integer from 0 to 65535",
            "flow.port",
        ),
        ({"flow": {"zz": 1}}, "flow.zz is not a setting of flow", "flow"),
        ({"flow": []}, "flow must be an object", "flow"),
        ({"l7": {"sensitivity": "max"}}, "l7.sensitivity must be one of low, medium, high", None),
        (
            {"ip_blocklist": [{"indicator": "not-an-ip"}]},
            "ip_blocklist holds 'not-an-ip', which is not an IP address",
            None,
        ),
        ({"pps_threshold": -1}, "pps_threshold must be a number from 0 to 1e+12", None),
        (
            {"mirror_message": "a\nb"},
            "mirror_message must be a string of at most 500 characters",
            None,
        ),
        ({"vm_labels": []}, "vm_labels must be an object of address -> label", None),
        (
            {"ioc_patterns": [{"attack_name": "x"}]},
            "ioc_patterns entries must be objects with a string pattern",
            None,
        ),
    ],
)
def test_a_patch_is_answered_as_before(body: dict[str, Any], message: str, field: str) -> None:
    """The first bad key in the order sent, with the message and ``field`` the hand-written
    checks gave (the field is the key unless the case names it)."""
    with pytest.raises(ApiError) as caught:
        overrides.check_patch(body)
    err = caught.value
    expected = field or message.split(" ", maxsplit=1)[0]
    assert (err.status, err.code, err.message, err.field) == (
        400,
        "invalid_parameter",
        message,
        expected,
    )


def test_a_patch_gives_the_values_to_store() -> None:
    checked = overrides.check_patch(
        {
            "pps_threshold": None,
            "flow": {"port": 2055, "enabled": None, "source_ips": ["2001:db8:0::1"]},
            "l7": {"rps_threshold": None},
            "ip_blocklist": ["192.0.2.1", {"indicator": "192.0.2.2", "note": "kept out"}],
            "mirror_subnets": ["198.51.100.7/24"],
            "ioc_patterns": [{"pattern": "/wp-login"}],
        }
    )
    assert checked == {
        "pps_threshold": None,
        "flow": {"port": 2055, "enabled": overrides.UNSET, "source_ips": ["2001:db8::1"]},
        "l7": {"rps_threshold": None},
        "ip_blocklist": [{"indicator": "192.0.2.1"}, {"indicator": "192.0.2.2"}],
        "mirror_subnets": ["198.51.100.0/24"],
        "ioc_patterns": [
            {"pattern": "/wp-login", "attack_name": "ioc", "attack_family": "unknown"}
        ],
    }


def test_the_document_lists_every_override_with_its_bounds() -> None:
    patch, stored = COMPONENTS["AgentConfigPatch"], COMPONENTS["AgentConfigOverrides"]
    assert list(patch["properties"]) == list(overrides.SETTINGS) == list(stored["properties"])
    assert patch["additionalProperties"] is False and stored["additionalProperties"] is False
    assert "required" not in patch and "required" not in stored
    ticks = patch["properties"]["confirm_ticks"]["anyOf"]
    assert ticks == [{"type": "integer", "minimum": 2, "maximum": 30}, {"type": "null"}]
    assert stored["properties"]["confirm_ticks"] == {"type": "integer", "minimum": 2, "maximum": 30}
    assert stored["properties"]["flow"] == {"$ref": "#/components/schemas/FlowOverrides"}
    flow_patch = {"$ref": "#/components/schemas/FlowPatch"}
    assert patch["properties"]["flow"]["anyOf"] == [flow_patch, {"type": "null"}]
    port = COMPONENTS["FlowOverrides"]["properties"]["port"]
    assert port == {"type": "integer", "minimum": 0, "maximum": 65535}
    l7 = COMPONENTS["L7Overrides"]["properties"]
    assert l7["rps_threshold"]["anyOf"][1] == {"type": "null"}
    assert l7["sensitivity"]["enum"] == ["low", "medium", "high"]
    for op in ("/api/v1/workspace/agent-config", "/api/v1/nodes/{uuid}/agent-config"):
        body = DOC["paths"][op]["patch"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": "#/components/schemas/AgentConfigPatch"}


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["192.0.2.1", "auto"]),
    _containers,
    max_leaves=6,
)
_KEYS = st.sampled_from([*overrides.SETTINGS, "enabled", "port", "nope"])


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(_KEYS, _VALUES, max_size=4))
@example(body={"flow": {"port": 1, "enabled": None, "source_ips": ["::1"]}, "l7": {}})
@example(body={"ip_blocklist": ["192.0.2.1", {"indicator": "::1", "x": 1}], "vm_labels": {}})
@example(body={"ioc_patterns": [{"pattern": "a", "more": 1}], "mirror_subnets": ["10.0.0.1"]})
@example(body={"l7": {"rps_threshold": None, "action": None}, "pps_threshold": 0.5})
def test_the_patch_schema_takes_what_the_server_takes(body: dict[str, Any]) -> None:
    """A PATCH the server takes fits the schema, and what it stores fits the answer's schema.
    (The other way round the schema is wider: it types addresses and networks as strings.)"""
    try:
        checked = overrides.check_patch(body)
    except ApiError:
        return
    assert _validator("AgentConfigPatch").is_valid(body), body
    kept = {
        key: {k: v for k, v in value.items() if v != overrides.UNSET}
        if isinstance(value, dict)
        else value
        for key, value in checked.items()
        if value is not None
    }
    assert _validator("AgentConfigOverrides").is_valid(overlay({}, (kept,))), kept


# --------------------------------------------------------------------------- commands


def test_a_command_body_refuses_the_fields_it_always_did() -> None:
    assert set(CommandCreate.model_fields) == {
        "command_type",
        "command_text",
        "title",
        "incident_uuid",
        "undo_command_text",
    }
    with pytest.raises(ApiError) as caught:
        refuse_unknown(CommandCreate, {"command_text": "x", "zz": 1, "extra": 2})
    assert (caught.value.message, caught.value.field) == ("unknown field extra", "extra")
    refuse_unknown(CommandCreate, {"command_text": "x", "title": None})
    schema = COMPONENTS["CommandCreate"]
    assert schema["required"] == ["command_text"] and schema["additionalProperties"] is False
    assert schema["properties"]["command_type"]["enum"] == list(COMMAND_TYPES)


# --------------------------------------------------------------------------- ftagent bodies

_BODY_MODELS = {
    "Metrics": Metrics,
    "Heartbeat": Heartbeat,
    "IncidentOpen": IncidentOpen,
    "IncidentReport": IncidentReport,
    "CommandAck": CommandAck,
    **{model.__name__: model for model in REPORT_MODELS.values()},
}
_FIELDS = sorted({f for m in _BODY_MODELS.values() for f in m.model_fields} | {"extra"})


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(_BODY_MODELS)),
    body=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=5),
)
def test_the_schema_of_an_agent_body_takes_what_the_server_takes(
    name: str, body: dict[str, Any]
) -> None:
    """Bodies are read tolerantly: the document may not refuse a body the model takes (and
    refuses only what the model refuses, but for the ``pps``/``bps`` of ``Metrics``)."""
    try:
        validate(_BODY_MODELS[name], body)
    except ApiError:
        taken = False
    else:
        taken = True
    if taken:
        assert _validator(name).is_valid(body), (name, body)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("Metrics", {"bps": 1}),
        ("Metrics", {"pps": "1", "bps": 1}),
        ("CommandAck", {}),
        ("CommandAck", {"command_id": 2**63}),
        ("SpMetricsReport", {"service_pps": "x"}),
        ("GreTunnelsReport", {"tunnels": {}}),
    ],
)
def test_a_body_the_server_refuses_the_schema_refuses(name: str, body: dict[str, Any]) -> None:
    with pytest.raises(ApiError):
        validate(_BODY_MODELS[name], body)
    assert not _validator(name).is_valid(body)


# --------------------------------------------------------------------------- answers


def test_the_config_answer_fits_its_schema() -> None:
    checked = overrides.check_patch(
        {"flow": {"port": 6343, "protocol": "sflow"}, "l7": {"action": "auto_detect"}}
    )
    node = {"service_ports": [{"protocol": "tcp", "port_value": "443"}], "sp_enabled": True}
    pending = [{"id": 7, "command_type": "nft", "command_text": "nft list ruleset", "title": ""}]
    for traits in (AgentTraits(), AgentTraits(flow=True, mirror=True)):
        answer = config_answer(node, ({}, checked), pending, traits)
        assert _validator("AgentConfig").is_valid(answer), answer


def test_every_agent_operation_comes_from_a_declaration() -> None:
    declared = document_operations(ROUTE_TABLES, OPERATIONS, {})
    paths = {p for p in DOC["paths"] if "/agent" in p or "report" in p or "pcap" in p}
    paths |= {"/api/v1/nodes/{uuid}/commands"}
    assert paths == set(declared)
    for path, item in declared.items():
        for method, op in item.items():
            assert DOC["paths"][path][method] == op
    upload = DOC["paths"]["/api/v1/agent/incidents/{uuid}/pcap"]["post"]
    assert set(upload["requestBody"]["content"]) == {
        "multipart/form-data",
        "application/octet-stream",
    }
    download = DOC["paths"]["/api/v1/incidents/{ref}/pcaps/{id}"]["get"]["responses"]["200"]
    assert set(download["content"]) == {"application/vnd.tcpdump.pcap"}


def test_live_answers_fit_the_models(server: Server) -> None:
    client, agent = _setup(server)
    node = agent.node["uuid"]
    patch = {"confirm_ticks": 8, "flow": {"port": 2055}, "ip_blocklist": ["192.0.2.9"]}
    r = client.patch(f"/api/v1/nodes/{node}/agent-config", json=patch)
    assert r.status_code == 200, r.text
    assert _validator("AgentConfigAnswer").is_valid(r.json())
    assert _validator("AgentConfig").is_valid(_ok(agent.get("/config")))
    made = client.post(f"/api/v1/nodes/{node}/commands", json={"command_text": "nft list tables"})
    assert made.status_code == 201 and _validator("CommandAnswer").is_valid(made.json())
    listed = client.get(f"/api/v1/nodes/{node}/commands").json()
    assert _validator("CommandList").is_valid(listed), listed
    gre = _ok(agent.post("/gre-tunnels", {"tunnels": [{"remote": "203.0.113.9"}]}))
    assert _validator("GreTunnelsAccepted").is_valid(gre), gre
    opened = _ok(agent.post("/incidents", {"attack_family": "udp_flood"}))
    assert _validator("AgentIncidentOpened").is_valid(opened), opened
    updated = _ok(agent.post(f"/incidents/{uuid.uuid4()}", {}))
    assert _validator("AgentIncidentReported").is_valid(updated), updated
    page = client.get("/api/v1/reports").json()
    assert page["total"] >= 1 and _validator("ReportPage").is_valid(page), page
    latest = client.get(f"/api/v1/nodes/{node}/reports").json()
    assert _validator("LatestReports").is_valid(latest), latest
