"""Hostile input to the admin API is a 400 that names the problem, never a 500.

Through ``shared.admin.api.handle``, the same entry point the Functions host calls, against Azurite.
The OpenAPI document states the constraints the handlers enforce (checked with jsonschema).
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from sandbox.testing import sandbox_settings
from shared.admin.api import AdminRequest, Services, handle, services_for
from shared.admin.openapi import openapi_document
from tests.admin.auth_support import ALICE, bearer, user_token

HOSTILE_BODIES = {
    "number-over-the-int-digit-limit": b'{"reason": "fraud", "n": ' + b"9" * 5000 + b"}",
    "nested-past-the-recursion-limit": b"[" * 100_000 + b"]" * 100_000,
    "nested-too-deep": b'{"reason": ' + b"[" * 200 + b"]" * 200 + b"}",
    "invalid-utf8": b'{"reason": "caf\xc3\x28"}',
    "nan": b'{"reason": NaN}',
}


@pytest.fixture(scope="module")
def headers(sandbox: Sandbox) -> dict[str, str]:
    """Alice reads and decides: input checks are reached only past authentication."""
    return bearer(user_token(sandbox, ALICE))


@pytest.fixture
def services(azurite: Azurite, sandbox: Sandbox) -> Services:
    return services_for(sandbox_settings(sandbox, azurite.connection_string))


def _request(headers: dict[str, str], **fields: Any) -> AdminRequest:
    return AdminRequest(headers=headers, **fields)


@pytest.mark.parametrize("operation", ["approve_action", "reject_action", "undo_action"])
@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
def test_hostile_decision_bodies_are_400(services: Services, headers: dict[str, str], operation: str,
                                        body: bytes) -> None:
    answer = handle(operation, _request(headers, route_params={"action_id": "a1"}, body=body), services=services)
    assert (answer.status, answer.document["error"]) == (400, "bad_request"), answer.document


@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
def test_hostile_resolve_bodies_are_400(services: Services, headers: dict[str, str], body: bytes) -> None:
    answer = handle("resolve_alert", _request(headers, route_params={"alert_id": "x"}, body=body), services=services)
    assert (answer.status, answer.document["error"]) == (400, "bad_request"), answer.document


@pytest.mark.parametrize("since", ["999999d", "999999h", "0001-01-01", "0001-01-01T00:00:00Z", "1969-12-31",
                                   "9999-12-31T23:59:59-23:59", "2024-05-01T08:00:00+99:00"])
def test_since_out_of_range_is_400(services: Services, headers: dict[str, str], since: str) -> None:
    answer = handle("list_alerts", _request(headers, params={"since": since}), services=services)
    assert (answer.status, answer.document["error"]) == (400, "bad_request"), answer.document
    assert "since" in answer.document["message"]


@pytest.mark.parametrize("since", ["30m", "24h", "7d", "3650d", "2024-05-01T08:00:00Z", "2024-05-01"])
def test_since_in_range_is_accepted(services: Services, headers: dict[str, str], since: str) -> None:
    answer = handle("list_alerts", _request(headers, params={"since": since}), services=services)
    assert answer.status == 200, answer.document


def _since_schema() -> dict[str, Any]:
    [parameter] = [p for p in openapi_document()["paths"]["/manage/alerts"]["get"]["parameters"]
                   if p["name"] == "since"]
    return dict(parameter["schema"])


@pytest.mark.parametrize(("since", "valid"), [
    ("30m", True), ("24h", True), ("7d", True), ("3650d", True), ("2024-05-01T08:00:00Z", True), ("2024-05-01", True),
    ("999999d", False), ("36501d", False), ("yesterday", False), ("0001-01-01", False), ("1969-12-31", False),
])
def test_the_openapi_since_constraint_matches_the_handler(services: Services, headers: dict[str, str], since: str,
                                                          valid: bool) -> None:
    schema_valid = Draft202012Validator(_since_schema()).is_valid(since)
    answer = handle("list_alerts", _request(headers, params={"since": since}), services=services)
    assert schema_valid is valid
    assert (answer.status == 200) is valid, answer.document
