"""The Partner Center stand-in, exercised through the app's own PartnerCenterClient over real TLS.

Tokens come from the sandbox's Entra token endpoint (a refresh-token grant, as the Secure
Application Model does), so audience, tenant, scp and amr are what the app will really present.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox import Sandbox, ids, start_sandbox
from sandbox.partner_center import DOCUMENTED_EVENT_TYPES, NEW_MODEL_FIELDS, UNRESOLVED_ON
from sandbox.scenario import load_scenario
from shared.clients.partner_center import PartnerCenterClient
from shared.http import BadRequest, Forbidden, NotFound, PartnerCenterMfaRequired, Unauthorized
from tests.sandbox import test_partner_center_support as support
from tests.sandbox.test_partner_center_support import PC_AUDIENCE, FakeClock, make_client, redeem

pc_sandbox = pytest.fixture(scope="module", name="pc_sandbox")(support.module_sandbox)
pc_token = pytest.fixture(scope="module", name="pc_token")(support.module_token)
sandbox = pytest.fixture(name="sandbox")(support.fresh_sandbox)
clock = pytest.fixture(name="clock")(support.new_clock)
client = pytest.fixture(name="client")(support.pc_client)


# -- fraud events ---------------------------------------------------------------------------------


def test_new_model_pages_until_a_short_page(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    pages = list(client.fraud_event_pages(page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    event_ids = [e["eventId"] for page in pages for e in page]
    assert len(set(event_ids)) == 7
    sent = sandbox.requests("partner_center")
    assert [r.query["PageNumber"] for r in sent] == [["1"], ["2"], ["3"]]
    assert all(r.headers["X-NewEventsModel"] == "true" and r.headers["MS-CorrelationId"] for r in sent)
    assert len({r.headers["MS-CorrelationId"] for r in sent}) == 3


def test_an_exact_multiple_ends_on_an_empty_page(client: PartnerCenterClient) -> None:
    assert [len(p) for p in client.fraud_event_pages(page_size=7)] == [7]


def test_new_model_items_carry_the_documented_fields_and_quirks(client: PartnerCenterClient) -> None:
    events = {e["eventId"]: e for e in client.fraud_events()}
    assert {e.get("eventType") for e in events.values()} - {None} == set(DOCUMENTED_EVENT_TYPES)
    assert any("eventType" not in e for e in events.values())  # a legacy alert has no (N) fields
    mining = events[ids.MINING_ALERT_EVENT_ID]
    assert mining["severity"] == "high"
    assert mining["hitCount"] == "42"
    assert [r["azureResourceId"] for r in mining["affectedResources"]] == [ids.MINING_VM_1, ids.MINING_VM_2]
    assert mining["affectedResources"][0]["type"] == "Microsoft.Compute/virtualMachines"
    assert mining["isTest"] == "false"
    assert mining["resolvedOn"] == UNRESOLVED_ON and mining["resolvedReason"] == "None"
    assert not mining["eventTime"].endswith("Z") and "+" not in mining["eventTime"]
    assert isinstance(json.loads(mining["activityLogs"]), list)  # a JSON array inside a string
    assert any(isinstance(e.get("activityLogs"), list) for e in events.values())  # ... and a real array
    spelled = [e for e in events.values() if "IsTest" in e]
    assert len(spelled) == 1 and spelled[0]["IsTest"] == "true"
    assert all(isinstance(e["hitCount"], str) for e in events.values())


def test_legacy_model_has_no_new_fields_and_no_paging(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    pages = list(client.fraud_event_pages(new_model=False))
    assert len(pages) == 1
    events = pages[0]
    assert {e["eventId"] for e in events} >= {ids.MINING_ALERT_EVENT_ID}
    assert all(not (set(k.lower() for k in e) & NEW_MODEL_FIELDS) for e in events)
    request = sandbox.requests("partner_center")[-1]
    assert "PageSize" not in request.query and "X-NewEventsModel" not in request.headers


def test_paging_parameters_are_ignored_without_the_header(client: PartnerCenterClient) -> None:
    everything = client.http.request_json("GET", "/v1/fraudEvents", params={"PageSize": 1, "PageNumber": 1})
    assert len(everything) == len(next(client.fraud_event_pages(new_model=False)))
    assert len(everything) > 1


def test_filters_by_status_subscription_and_event_type(client: PartnerCenterClient) -> None:
    fabrikam = list(client.fraud_events(subscription_id=ids.SUB_FABRIKAM_PROD))
    assert fabrikam and all(e["subscriptionId"] == ids.SUB_FABRIKAM_PROD for e in fabrikam)
    resolved = list(client.fraud_events(event_status="Resolved"))
    assert resolved and all(e["eventStatus"] == "Resolved" for e in resolved)
    mining = list(client.fraud_events(event_type="NetworkConnectionsToCryptoMiningPools"))
    assert [e["eventId"] for e in mining] == [ids.MINING_ALERT_EVENT_ID]
    both = list(client.fraud_events(subscription_id=ids.SUB_FABRIKAM_PROD, event_status="Active"))
    assert ids.MINING_ALERT_EVENT_ID in {e["eventId"] for e in both}
    assert all(e["eventStatus"] == "Active" for e in both)


def test_resolving_an_event_fills_resolved_fields(client: PartnerCenterClient) -> None:
    updated = client.update_fraud_event_status(ids.SUB_FABRIKAM_PROD, event_ids=[ids.MINING_ALERT_EVENT_ID],
                                               status="Resolved", resolved_reason="Fraud")
    assert [e["eventId"] for e in updated] == [ids.MINING_ALERT_EVENT_ID]
    event = updated[0]
    assert event["eventStatus"] == "Resolved" and event["resolvedReason"] == "Fraud"
    assert event["resolvedOn"] != UNRESOLVED_ON and event["resolvedBy"] == "admin-agent@contoso-csp.example"
    assert json.loads(event["activityLogs"])[-1]["statusTo"] == "Resolved"
    again = next(e for e in client.fraud_events() if e["eventId"] == ids.MINING_ALERT_EVENT_ID)
    assert again["eventStatus"] == "Resolved"


def test_empty_event_ids_update_every_event_on_the_subscription(client: PartnerCenterClient) -> None:
    before = [e for e in client.fraud_events(subscription_id=ids.SUB_FABRIKAM_PROD)]
    updated = client.update_fraud_event_status(ids.SUB_FABRIKAM_PROD, event_ids=[], status="Investigating")
    assert {e["eventId"] for e in updated} == {e["eventId"] for e in before}
    assert all(e["eventStatus"] == "Investigating" for e in client.fraud_events(subscription_id=ids.SUB_FABRIKAM_PROD))
    others = list(client.fraud_events(subscription_id=ids.SUB_NORTHWIND_DEV))
    assert all(e["eventStatus"] != "Investigating" for e in others)


def test_only_documented_resolved_reasons_are_accepted(client: PartnerCenterClient) -> None:
    with pytest.raises(BadRequest, match="Fraud or Ignore"):
        client.update_fraud_event_status(ids.SUB_FABRIKAM_PROD, event_ids=[ids.MINING_ALERT_EVENT_ID],
                                         status="Resolved", resolved_reason="Legitimate")
    with pytest.raises(NotFound):
        client.update_fraud_event_status(ids.SUB_FABRIKAM_PROD, event_ids=["no-such-event"], status="Resolved",
                                         resolved_reason="Ignore")


def test_fraud_events_refuse_app_only_other_tenant_and_non_mfa_tokens(
    sandbox: Sandbox, clock: FakeClock,
) -> None:
    app_only = sandbox.tokens.issue(tenant=ids.PARTNER_TENANT_ID, audience=PC_AUDIENCE,
                                    client_id=ids.PARTNER_APP_CLIENT_ID, roles=["Partner.Read"])
    no_mfa = sandbox.tokens.issue(tenant=ids.PARTNER_TENANT_ID, audience=PC_AUDIENCE,
                                  client_id=ids.PARTNER_APP_CLIENT_ID, scp=["user_impersonation"], amr=["pwd"])
    wrong_audience = sandbox.tokens.issue(tenant=ids.PARTNER_TENANT_ID, audience="https://graph.microsoft.com",
                                          client_id=ids.PARTNER_APP_CLIENT_ID, scp=["user_impersonation"],
                                          amr=["pwd", "mfa"])
    customer = redeem(sandbox, tenant=ids.CUSTOMER_FABRIKAM)
    with make_client(sandbox, app_only, clock) as client, pytest.raises(Forbidden, match="App\\+User"):
        list(client.fraud_events())
    with make_client(sandbox, no_mfa, clock) as client, pytest.raises(PartnerCenterMfaRequired) as mfa:
        list(client.fraud_events())
    assert mfa.value.code == "900421"
    for token in (wrong_audience, customer):
        with make_client(sandbox, token, clock) as client, pytest.raises(Unauthorized):
            list(client.fraud_events())
    with make_client(sandbox, app_only, clock) as client:  # App-only is fine for subscriptions
        assert client.get_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM).status == "active"


# -- subscriptions and entitlements ----------------------------------------------------------------


def test_suspend_and_reactivate_a_subscription(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    before = client.get_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)
    assert before.status == "active" and before.offer_id
    suspended = client.suspend_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)
    assert suspended.suspended
    assert client.get_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM).status == "suspended"
    patch = next(r for r in sandbox.requests("partner_center") if r.method == "PATCH")
    sent = patch.json()
    assert sent["status"] == "suspended" and sent["friendlyName"] == before.friendly_name  # the full resource
    assert client.reactivate_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM).status == "active"


def test_patch_with_a_partial_resource_or_bad_status_is_refused(client: PartnerCenterClient) -> None:
    path = f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.PLAN_FABRIKAM}"
    with pytest.raises(BadRequest, match="full subscription resource"):
        client.http.request("PATCH", path, json={"status": "suspended"})
    resource = client.http.request_json("GET", path)
    with pytest.raises(BadRequest, match="active or suspended"):
        client.http.request("PATCH", path, json={**resource, "status": "deleted"})
    with pytest.raises(NotFound):
        client.get_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_NORTHWIND)


def test_cancel_and_reactivate_an_azure_entitlement(client: PartnerCenterClient) -> None:
    entitlements = client.list_azure_entitlements(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)
    assert [e.id for e in entitlements] == [ids.SUB_FABRIKAM_PROD]
    assert entitlements[0].plan_subscription_id == ids.PLAN_FABRIKAM
    cancelled = client.cancel_azure_entitlement(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM, ids.SUB_FABRIKAM_PROD)
    assert cancelled is not None and cancelled.status == "inactive"
    assert client.get_azure_entitlement(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM,
                                        ids.SUB_FABRIKAM_PROD).status == "inactive"
    reactivated = client.reactivate_azure_entitlement(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM, ids.SUB_FABRIKAM_PROD)
    assert reactivated is not None and reactivated.status == "active"


def test_cancel_needs_reason_compromise(client: PartnerCenterClient) -> None:
    path = (f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.PLAN_FABRIKAM}"
            f"/azureEntitlements/{ids.SUB_FABRIKAM_PROD}/cancel")
    with pytest.raises(BadRequest) as caught:
        client.http.request("POST", path, json={"cancellationReason": "fraud"})
    assert caught.value.code == "900307"
    with pytest.raises(NotFound):
        client.get_azure_entitlement(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM, ids.SUB_NORTHWIND_DEV)


# -- webhook registration --------------------------------------------------------------------------


def test_webhook_registration_lifecycle(client: PartnerCenterClient) -> None:
    names = client.webhook_event_names()
    assert "azure-fraud-event-detected" in names and "test-created" in names
    assert client.get_webhook_registration() is None
    created = client.register_webhook("http://127.0.0.1:7071/api/webhook", ["azure-fraud-event-detected"])
    assert created.subscriber_id == ids.PARTNER_TENANT_ID
    assert created.webhook_events == ("azure-fraud-event-detected",)
    updated = client.register_webhook("http://127.0.0.1:7071/api/webhook",
                                      ["azure-fraud-event-detected", "test-created"], update=True)
    assert client.get_webhook_registration() == updated
    with pytest.raises(BadRequest, match="Unknown webhook event"):
        client.register_webhook("http://127.0.0.1:7071/api/webhook", ["fraud-happened"])
    with pytest.raises(BadRequest, match="loopback"):
        client.register_webhook("https://receiver.example.com/api/webhook", ["test-created"])


# -- generated data set ------------------------------------------------------------------------------


def test_generated_alerts_are_served_page_by_page_and_deterministically(clock: FakeClock) -> None:
    scenario = load_scenario(None)
    scenario["partner_center"] = {"generate": {"alerts": 2500, "customers": 50}}
    with start_sandbox(scenario) as big, make_client(big, redeem(big), clock) as client:
        pages = list(client.fraud_event_pages(page_size=1000))
        assert [len(p) for p in pages] == [1000, 1000, 500]
        ids_first = [e["eventId"] for p in pages for e in p]
        assert len(set(ids_first)) == 2500
        again = [e["eventId"] for e in client.fraud_events(page_size=1000)]
        assert again == ids_first
        one = pages[0][17]
        by_subscription = list(client.fraud_events(subscription_id=one["subscriptionId"], page_size=1000))
        assert len(by_subscription) == 50 and all(e["subscriptionId"] == one["subscriptionId"] for e in by_subscription)
        updated = client.update_fraud_event_status(one["subscriptionId"], event_ids=[one["eventId"]],
                                                   status="Resolved", resolved_reason="Ignore")
        assert updated[0]["resolvedReason"] == "Ignore"
        refreshed = next(e for e in client.fraud_events(subscription_id=one["subscriptionId"])
                         if e["eventId"] == one["eventId"])
        assert refreshed["eventStatus"] == "Resolved"


# -- MFA adoption status (GET /v1/applicationmfaadoptionstatus) -----------------------------------


def test_mfa_adoption_status_counts_app_user_calls_per_day_and_application(
    sandbox: Sandbox, clock: FakeClock, pc_token: str,
) -> None:
    no_mfa = sandbox.tokens.issue(tenant=ids.PARTNER_TENANT_ID, audience=PC_AUDIENCE,
                                  client_id=ids.PARTNER_APP_CLIENT_ID, scp=["user_impersonation"], amr=["pwd"])
    app_only = sandbox.tokens.issue(tenant=ids.PARTNER_TENANT_ID, audience=PC_AUDIENCE,
                                    client_id=ids.PARTNER_APP_CLIENT_ID, roles=["Partner.Read"])
    with make_client(sandbox, no_mfa, clock) as client, pytest.raises(PartnerCenterMfaRequired):
        list(client.fraud_events())
    with make_client(sandbox, app_only, clock) as client:  # App-only calls are not App+User: not counted
        client.get_subscription(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)
    with make_client(sandbox, pc_token, clock) as client:
        list(client.fraud_events())
        raw = client.http.request_json("GET", "/v1/applicationmfaadoptionstatus")
        typed = client.application_mfa_adoption_status()
    assert isinstance(raw, list)
    assert {key for row in raw for key in row} == {
        "loginDate", "mfaCompliantRequestCount", "totalRequestCount", "applicationId", "applicationName"}
    [row] = [r for r in typed if r.application_id == ids.PARTNER_APP_CLIENT_ID]
    # the refused call (no MFA), the fraud events call and both status calls
    assert (row.total_requests, row.mfa_compliant_requests) == (4, 3)
    assert row.login_date == sandbox.services["partner_center"].today()  # type: ignore[attr-defined]
    with make_client(sandbox, no_mfa, clock) as client, pytest.raises(PartnerCenterMfaRequired):
        client.application_mfa_adoption_status()  # App+User only, and MFA-enforced like every App+User call


def test_mfa_adoption_status_filters_by_date(sandbox: Sandbox, clock: FakeClock, pc_token: str) -> None:
    service: Any = sandbox.services["partner_center"]
    service.seed_mfa_adoption("2026-03-02", ids.PARTNER_APP_CLIENT_ID, compliant=5, total=9)
    with make_client(sandbox, pc_token, clock) as client:
        rows = client.application_mfa_adoption_status(start_date="2026-03-01", end_date="2026-03-03")
        assert [(r.login_date, r.mfa_compliant_requests, r.total_requests) for r in rows] == [("2026-03-02", 5, 9)]
        with pytest.raises(BadRequest):
            client.application_mfa_adoption_status(start_date="yesterday")
