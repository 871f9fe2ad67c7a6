"""Injected Partner Center failures, seen through the app's client and the shared retry policy."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sandbox import Fault, Sandbox
from shared.clients.partner_center import PartnerCenterClient
from shared.http import MalformedResponse, PartnerCenterMfaRequired, Throttled, TransientError, ssl_context
from tests.sandbox import test_partner_center_support as support
from tests.sandbox.test_partner_center_support import FakeClock, make_client

pc_sandbox = pytest.fixture(scope="module", name="pc_sandbox")(support.module_sandbox)
pc_token = pytest.fixture(scope="module", name="pc_token")(support.module_token)
sandbox = pytest.fixture(name="sandbox")(support.fresh_sandbox)
clock = pytest.fixture(name="clock")(support.new_clock)
client = pytest.fixture(name="client")(support.pc_client)

EVENTS = r"^/v1/fraudEvents$"


def fault(**fields: Any) -> Fault:
    return Fault(service="partner_center", path=EVENTS, **fields)


def test_429_with_retry_after_is_waited_out(sandbox: Sandbox, client: PartnerCenterClient, clock: FakeClock) -> None:
    sandbox.add_fault(fault(kind="status", status=429, retry_after=3))
    events = list(client.fraud_events())
    assert events
    assert clock.delays == [3.0]
    first = sandbox.requests("partner_center")[0]
    assert first.status == 429


def test_429_body_is_the_throttling_shape(sandbox: Sandbox) -> None:
    sandbox.add_fault(Fault(service="partner_center", kind="status", status=429, retry_after=57))
    response = httpx.get(f"{sandbox.url('partner_center')}/v1/fraudEvents", verify=ssl_context(sandbox.ca_cert_path))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "57"
    assert response.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."}


def test_throttling_longer_than_the_budget_raises_throttled(
    sandbox: Sandbox, pc_token: str, clock: FakeClock,
) -> None:
    sandbox.add_fault(fault(kind="status", status=429, retry_after=120, times=None))
    with make_client(sandbox, pc_token, clock) as client, pytest.raises(Throttled) as caught:
        list(client.fraud_events())
    assert caught.value.retry_after == 120
    assert clock.delays == []


def test_500_is_retried_with_backoff(sandbox: Sandbox, client: PartnerCenterClient, clock: FakeClock) -> None:
    sandbox.add_fault(fault(kind="status", status=500, times=2))
    assert list(client.fraud_events())
    assert len(clock.delays) == 2
    assert all(0 <= d <= 10 for d in clock.delays)
    assert [r.status for r in sandbox.requests("partner_center")] == [500, 500, 200]


def test_500_body_is_the_partner_center_error_shape(sandbox: Sandbox) -> None:
    sandbox.add_fault(Fault(service="partner_center", kind="status", status=500))
    response = httpx.get(f"{sandbox.url('partner_center')}/v1/fraudEvents", verify=ssl_context(sandbox.ca_cert_path))
    assert response.status_code == 500
    body = response.json()
    assert body["source"] == "PartnerFD" and body["data"] == [] and body["description"]


def test_503_that_never_ends_exhausts_the_attempts(sandbox: Sandbox, pc_token: str, clock: FakeClock) -> None:
    sandbox.add_fault(fault(kind="status", status=503, times=None))
    with make_client(sandbox, pc_token, clock, max_attempts=3) as client, pytest.raises(TransientError) as caught:
        list(client.fraud_events())
    assert caught.value.status == 503
    assert len(sandbox.requests("partner_center")) == 3
    assert caught.value.correlation_id in str(caught.value)


def test_a_slow_answer_times_out_and_the_retry_reuses_the_request_id(
    sandbox: Sandbox, pc_token: str, clock: FakeClock,
) -> None:
    sandbox.add_fault(fault(kind="delay", seconds=0.6))
    with make_client(sandbox, pc_token, clock, read_timeout=0.3) as client:
        assert list(client.fraud_events())
    # The stalled request is recorded when the sandbox finishes it, after the retry succeeded.
    deadline = time.monotonic() + 10
    while len(sandbox.requests("partner_center")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    requests = sandbox.requests("partner_center")
    assert len(requests) == 2
    assert requests[0].headers["MS-RequestId"] == requests[1].headers["MS-RequestId"]
    assert requests[0].headers["MS-CorrelationId"] == requests[1].headers["MS-CorrelationId"]


def test_a_dropped_connection_is_retried_with_the_same_request_id(
    sandbox: Sandbox, client: PartnerCenterClient,
) -> None:
    sandbox.add_fault(fault(kind="drop"))
    assert list(client.fraud_events())
    first, second = sandbox.requests("partner_center")[:2]
    assert first.status == 0 and second.status == 200
    assert first.headers["MS-RequestId"] == second.headers["MS-RequestId"]


def test_a_new_request_id_after_an_error_response(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    sandbox.add_fault(fault(kind="status", status=500))
    assert list(client.fraud_events())
    first, second = sandbox.requests("partner_center")[:2]
    assert first.headers["MS-RequestId"] != second.headers["MS-RequestId"]


def test_malformed_json_is_reported_not_guessed(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    sandbox.add_fault(fault(kind="malformed_json"))
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        list(client.fraud_events())


def test_mfa_required_fault_raises_the_mfa_error(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    sandbox.add_fault(fault(kind="pc_mfa_required"))
    with pytest.raises(PartnerCenterMfaRequired, match="MFA") as caught:
        list(client.fraud_events())
    assert caught.value.status == 401
    assert len(sandbox.requests("partner_center")) == 1  # not retried: it needs a person
