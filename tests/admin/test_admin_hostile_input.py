"""Hostile input to the admin API is a 400 that names the problem, never a 500.

Through ``shared.admin.api.handle``, the same entry point the Functions host calls, against Azurite.
The OpenAPI document states the constraints the handlers enforce (checked with jsonschema).
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.admin.api import AdminRequest, Services, handle, services_for
from shared.admin.openapi import openapi_document
from shared.settings import Settings

HOSTILE_BODIES = {
    "number-over-the-int-digit-limit": b'{"operator": "alice", "n": ' + b"9" * 5000 + b"}",
    "nested-past-the-recursion-limit": b"[" * 100_000 + b"]" * 100_000,
    "nested-too-deep": b'{"operator": ' + b"[" * 200 + b"]" * 200 + b"}",
    "invalid-utf8": b'{"operator": "caf\xc3\x28"}',
    "nan": b'{"operator": NaN}',
}


@pytest.fixture
def services(settings: Settings) -> Services:
    return services_for(settings)


@pytest.mark.parametrize("operation", ["approve_action", "reject_action", "undo_action"])
@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
def test_hostile_decision_bodies_are_400(services: Services, operation: str, body: bytes) -> None:
    answer = handle(operation, AdminRequest(route_params={"action_id": "a1"}, body=body), services=services)
    assert (answer.status, answer.document["error"]) == (400, "bad_request"), answer.document


@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
def test_hostile_resolve_bodies_are_400(services: Services, body: bytes) -> None:
    answer = handle("resolve_alert", AdminRequest(route_params={"alert_id": "x"}, body=body), services=services)
    assert (answer.status, answer.document["error"]) == (400, "bad_request"), answer.document


@pytest.mark.parametrize("since", ["999999d", "999999h", "0001-01-01", "0001-01-01T00:00:00Z", "1969-12-31",
                                   "9999-12-31T23:59:59-23:59", "2024-05-01T08:00:00+99:00"])
def test_since_out_of_range_is_400(services: Services, since: str) -> None:
    answer = handle("list_alerts", AdminRequest(params={"since": since}), services=services)
    assert (answer.status, answer.document["error"]) == (400, "bad_request"), answer.document
    assert "since" in answer.document["message"]


@pytest.mark.parametrize("since", ["30m", "24h", "7d", "3650d", "2024-05-01T08:00:00Z", "2024-05-01"])
def test_since_in_range_is_accepted(services: Services, since: str) -> None:
    answer = handle("list_alerts", AdminRequest(params={"since": since}), services=services)
    assert answer.status == 200, answer.document


def _since_schema() -> dict[str, Any]:
    [parameter] = [p for p in openapi_document()["paths"]["/manage/alerts"]["get"]["parameters"]
                   if p["name"] == "since"]
    return dict(parameter["schema"])


@pytest.mark.parametrize(("since", "valid"), [
    ("30m", True), ("24h", True), ("7d", True), ("3650d", True), ("2024-05-01T08:00:00Z", True), ("2024-05-01", True),
    ("999999d", False), ("36501d", False), ("yesterday", False), ("0001-01-01", False), ("1969-12-31", False),
])
def test_the_openapi_since_constraint_matches_the_handler(services: Services, since: str, valid: bool) -> None:
    schema_valid = Draft202012Validator(_since_schema()).is_valid(since)
    answer = handle("list_alerts", AdminRequest(params={"since": since}), services=services)
    assert schema_valid is valid
    assert (answer.status == 200) is valid, answer.document


def _operator_schema() -> dict[str, Any]:
    return dict(openapi_document()["components"]["schemas"]["DecisionRequest"]["properties"]["operator"])


@pytest.mark.parametrize(("operator", "valid"), [
    ("alice@contoso.com", True), ("Ana María", True), ("a" * 128, True),
    ("", False), ("   ", False), ("a" * 129, False), ("a\nb", False), ("tab\there", False), ("nul\x00", False),
])
def test_the_openapi_operator_constraint_matches_the_handler(services: Services, operator: str,
                                                             valid: bool) -> None:
    import json

    schema_valid = Draft202012Validator(_operator_schema()).is_valid(operator)
    body = json.dumps({"operator": operator}).encode()
    answer = handle("approve_action", AdminRequest(route_params={"action_id": "no-such-action"}, body=body),
                    services=services)
    assert schema_valid is valid
    # a valid operator gets past input checks to the lookup (404); an invalid one is refused first (400)
    assert answer.status == (404 if valid else 400), answer.document
