"""Partner Center stand-in against Microsoft's documented examples, field by field.

Partner Center publishes no Python SDK, so the documented request and response examples are the
contract: every field the docs show is served with the documented JSON type (keys compared
case-insensitively, as the docs' own examples mix cases), no undocumented field is added, and
the documented request bodies are accepted. Sources: learn.microsoft.com/partner-center/developer
get-fraud-events, update-fraud-events-status, get-an-azure-entitlement-for-a-subscription,
cancel-an-azure-subscription, reactivate-an-azure-subscription, suspend-a-subscription,
partner-center-webhooks, get-api-request-summary (MFA adoption status) and mfa-resources.
"""

from __future__ import annotations

import http.server
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from sandbox import ids
from sandbox.core import Sandbox
from tests.contract.conftest import RefreshTokenCredential
from tests.contract.routes import covers

PC_SCOPE = "https://api.partnercenter.microsoft.com/.default"

# get-fraud-events: the response item (legacy fields) and the New Events Model's (N) fields.
FRAUD_EVENT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "eventTime": str, "eventId": str, "partnerTenantId": str, "partnerFriendlyName": str, "customerTenantId": str,
    "customerFriendlyName": str, "subscriptionId": str, "subscriptionType": str, "catalogOfferId": str,
    "entityId": str, "entityName": str, "entityUrl": str, "hitCount": str, "eventStatus": str, "serviceName": str,
    "resourceName": str, "resourceGroupName": str, "firstOccurrence": str, "lastOccurrence": str,
    "firstObserved": str, "lastObserved": str, "resolvedReason": str, "resolvedOn": str, "resolvedBy": str,
}
NEW_MODEL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "eventType": str, "severity": str, "confidenceLevel": str, "displayName": str, "description": str,
    "country": str, "subscriptionName": str, "valueAddedResellerTenantId": str,
    "valueAddedResellerFriendlyName": str, "affectedResources": list, "additionalDetails": dict, "isTest": str,
    "activityLogs": (str, list),
}
EVENT_STATUSES = {"Active", "Resolved", "Investigating"}
# The Subscription resource (suspend-a-subscription, subscription resources).
SUBSCRIPTION_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "offerId": str, "offerName": str, "friendlyName": str, "quantity": int, "unitType": str,
    "creationDate": str, "effectiveStartDate": str, "commitmentEndDate": str, "status": str,
    "autoRenewEnabled": bool, "billingType": str, "contractType": str, "orderId": str, "links": dict,
    "attributes": dict,
}
# The Azure entitlement (get-an-azure-entitlement-for-a-subscription, cancel guide's 200 body).
ENTITLEMENT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "friendlyName": str, "status": str, "subscriptionId": str, "links": dict,
}
# "API request summarized by application" (mfa-resources; get-api-request-summary's response example).
MFA_SUMMARY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "loginDate": str, "mfaCompliantRequestCount": int, "totalRequestCount": int, "applicationId": str,
    "applicationName": str,
}


def check_fields(item: dict[str, Any], documented: dict[str, type | tuple[type, ...]]) -> None:
    """Every documented field present with its documented JSON type (names compared case-insensitively)."""
    served = {key.lower(): value for key, value in item.items()}
    for name, kind in documented.items():
        assert name.lower() in served, f"{name} is missing from {sorted(item)}"
        assert isinstance(served[name.lower()], kind), f"{name} is {type(served[name.lower()]).__name__}"


@pytest.fixture
def pc(fresh_sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An App+User (MFA) client of the partner's admin agent, as Partner Center requires."""
    token = RefreshTokenCredential(fresh_sandbox, ids.PARTNER_TENANT_ID).get_token(PC_SCOPE).token
    with httpx.Client(base_url=fresh_sandbox.url("partner_center"), headers={"Authorization": f"Bearer {token}"},
                      verify=ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))) as client:
        yield client


@covers("partner_center", "GET /v1/fraudEvents")
def test_fraud_events_carry_the_documented_fields(pc: httpx.Client) -> None:
    legacy = pc.get("/v1/fraudEvents", params={"EventStatus": "Active", "SubscriptionId": ids.SUB_FABRIKAM_PROD})
    assert legacy.status_code == 200 and isinstance(legacy.json(), list) and legacy.json()
    for item in legacy.json():
        check_fields(item, FRAUD_EVENT_FIELDS)
        assert {key.lower() for key in item} == {key.lower() for key in FRAUD_EVENT_FIELDS}
        assert item["eventStatus"] == "Active" and item["subscriptionId"] == ids.SUB_FABRIKAM_PROD
    new = pc.get("/v1/fraudEvents", headers={"X-NewEventsModel": "true"}, params={"PageSize": 3, "PageNumber": 1})
    assert new.status_code == 200 and len(new.json()) == 3
    documented = {key.lower() for key in {**FRAUD_EVENT_FIELDS, **NEW_MODEL_FIELDS}}
    for item in pc.get("/v1/fraudEvents", headers={"X-NewEventsModel": "true"}).json():
        assert {key.lower() for key in item} <= documented, "an undocumented field is served"
        check_fields(item, FRAUD_EVENT_FIELDS)
        assert item["eventStatus"] in EVENT_STATUSES
        assert not item["eventTime"].endswith("Z"), "documented timestamps carry no time zone"
        if "eventtype" in {key.lower() for key in item}:  # the documented legacy alert has no (N) fields
            check_fields(item, NEW_MODEL_FIELDS)
            for resource in item["affectedResources"]:
                assert set(resource) == {"azureResourceId", "type"}


@covers("partner_center", "POST /v1/fraudEvents/subscription/{subscriptionId}/status")
def test_status_update_takes_the_documented_example_body(pc: httpx.Client) -> None:
    body = {"EventIds": [ids.MINING_ALERT_EVENT_ID], "EventStatus": "Resolved", "ResolvedReason": "Fraud"}
    response = pc.post(f"/v1/fraudEvents/subscription/{ids.SUB_FABRIKAM_PROD}/status", json=body,
                       headers={"X-NewEventsModel": "true"})
    assert response.status_code == 200
    (updated,) = response.json()
    check_fields(updated, FRAUD_EVENT_FIELDS)
    assert updated["eventStatus"] == "Resolved" and updated["resolvedReason"] == "Fraud"
    assert updated["resolvedBy"] and not updated["resolvedOn"].startswith("9999")


@covers("partner_center", "GET /v1/customers/{customerId}/subscriptions",
        "GET /v1/customers/{customerId}/subscriptions/{id}", "PATCH /v1/customers/{customerId}/subscriptions/{id}")
def test_subscription_resource_and_suspend_with_the_full_resource(pc: httpx.Client) -> None:
    collection = pc.get(f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions").json()
    assert collection["totalCount"] == len(collection["items"]) >= 1
    assert collection["attributes"]["objectType"] == "Collection"
    path = f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.PLAN_FABRIKAM}"
    plan = pc.get(path).json()
    check_fields(plan, SUBSCRIPTION_FIELDS)
    assert plan["offerId"] == "DZH318Z0BCZC" and plan["attributes"]["objectType"] == "Subscription"
    suspended = pc.patch(path, json={**plan, "status": "suspended"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    check_fields(suspended.json(), SUBSCRIPTION_FIELDS)


@covers("partner_center", "GET /v1/customers/{customerId}/subscriptions/{id}/azureEntitlements",
        "GET /v1/customers/{customerId}/subscriptions/{id}/azureEntitlements/{entitlementId}",
        "POST /v1/customers/{customerId}/subscriptions/{id}/azureEntitlements/{entitlementId}/cancel",
        "POST /v1/customers/{customerId}/subscriptions/{id}/azureEntitlements/{entitlementId}/reactivate")
def test_azure_entitlement_cancel_and_reactivate(pc: httpx.Client) -> None:
    base = f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.PLAN_FABRIKAM}/azureEntitlements"
    listed = pc.get(base).json()
    assert [e["id"] for e in listed["items"]] == [ids.SUB_FABRIKAM_PROD]
    entitlement = pc.get(f"{base}/{ids.SUB_FABRIKAM_PROD}").json()
    check_fields(entitlement, ENTITLEMENT_FIELDS)
    assert entitlement["status"] == "active" and entitlement["subscriptionId"] == ids.PLAN_FABRIKAM
    cancelled = pc.post(f"{base}/{ids.SUB_FABRIKAM_PROD}/cancel", json={"cancellationReason": "compromise"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "inactive"
    refused = pc.post(f"{base}/{ids.SUB_FABRIKAM_PROD}/cancel", json={"cancellationReason": "bored"})
    assert refused.status_code == 400 and refused.json()["code"] == 900307
    reactivated = pc.post(f"{base}/{ids.SUB_FABRIKAM_PROD}/reactivate")
    assert reactivated.status_code == 202 and reactivated.json()["status"] == "active"


@covers("partner_center", "GET /v1/applicationmfaadoptionstatus")
def test_mfa_adoption_status_is_the_documented_bare_array(pc: httpx.Client) -> None:
    pc.get("/v1/fraudEvents")  # an App+User call with MFA: counted for today
    response = pc.get("/v1/applicationmfaadoptionstatus")
    assert response.status_code == 200
    rows = response.json()
    assert isinstance(rows, list) and rows, "the documented response is a JSON array, not a collection"
    for row in rows:
        check_fields(row, MFA_SUMMARY_FIELDS)
        assert set(row) == set(MFA_SUMMARY_FIELDS), "an undocumented field is served"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["loginDate"]), "loginDate is a date, as in the example"
        assert 0 <= row["mfaCompliantRequestCount"] <= row["totalRequestCount"]
    [ours] = [r for r in rows if r["applicationId"] == ids.PARTNER_APP_CLIENT_ID]
    assert ours["mfaCompliantRequestCount"] == ours["totalRequestCount"] >= 2  # both calls carried MFA
    in_window = pc.get("/v1/applicationmfaadoptionstatus",
                       params={"startDate": ours["loginDate"], "endDate": ours["loginDate"]}).json()
    assert ours["applicationId"] in {r["applicationId"] for r in in_window}
    assert pc.get("/v1/applicationmfaadoptionstatus", params={"startDate": "2000-01-01",
                                                               "endDate": "2000-01-02"}).json() == []


# get-portal-requests-without-mfa / mfa-resources ("Portal request without MFA").
NON_MFA_PRINCIPAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "objectId": str, "tenantId": str, "upn": str, "lastNonMfaCompliantLoginDateTime": str}


@covers("partner_center", "GET /v1/nonMfaCompliantPartnerPrincipals")
def test_non_mfa_partner_principals_are_the_documented_collection(pc: httpx.Client) -> None:
    response = pc.get("/v1/nonMfaCompliantPartnerPrincipals")
    assert response.status_code == 200
    body = response.json()
    assert body["totalCount"] == len(body["items"]) >= 1
    for item in body["items"]:
        check_fields(item, NON_MFA_PRINCIPAL_FIELDS)
        assert set(item) == set(NON_MFA_PRINCIPAL_FIELDS), "an undocumented field is served"
    assert body["items"][0]["upn"] == "helpdesk@contoso-csp.example"


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver on loopback that accepts every delivery."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/webhook"
    finally:
        server.shutdown()
        server.server_close()


@covers("partner_center", "GET /webhooks/v1/registration/events", "POST /webhooks/v1/registration",
        "GET /webhooks/v1/registration", "PUT /webhooks/v1/registration",
        "POST /webhooks/v1/registration/validationEvents",
        "GET /webhooks/v1/registration/validationEvents/{correlationId}")
def test_webhook_registration_and_validation_event(pc: httpx.Client, receiver: str) -> None:
    events = pc.get("/webhooks/v1/registration/events").json()
    assert isinstance(events, list) and {"azure-fraud-event-detected", "test-created"} <= set(events)
    body = {"WebhookUrl": receiver, "WebhookEvents": ["azure-fraud-event-detected", "test-created"]}
    created = pc.post("/webhooks/v1/registration", json=body)
    assert created.status_code == 200 and set(created.json()) == {"SubscriberId", "WebhookUrl", "WebhookEvents"}
    assert pc.get("/webhooks/v1/registration").json()["WebhookUrl"] == receiver
    assert pc.put("/webhooks/v1/registration", json=body).json()["WebhookEvents"] == body["WebhookEvents"]
    correlation = pc.post("/webhooks/v1/registration/validationEvents").json()["correlationId"]
    deadline = time.monotonic() + 20
    while True:
        status = pc.get(f"/webhooks/v1/registration/validationEvents/{correlation}").json()
        if status["results"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {"correlationId", "partnerId", "status", "callbackUrl", "results"} <= set(status)
    assert set(status["results"][0]) == {"responseCode", "responseMessage", "systemError", "dateTimeUtc"}
    assert status["results"][0]["responseCode"] == "OK"


@covers("cert_host", "GET /cert/{name}.cer")
def test_signing_certificate_is_served_as_documented(fresh_sandbox: Sandbox) -> None:
    url = f"{fresh_sandbox.url('cert_host')}/cert/pcnotifications-dispatch.microsoft.com.cer"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))) as client:
        response = client.get(url)
    assert response.status_code == 200
    certificate = x509.load_der_x509_certificate(response.content)
    subject = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    issuer_org = certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert subject == "pcnotifications-dispatch.microsoft.com" and issuer_org == "Microsoft Corporation"


# get-a-customer-s-usage-records (CustomerMonthlyUsageRecord) and customer-usage-resources (SpendingBudget).
USAGE_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "budget": dict, "percentUsed": (int, float), "isUpgraded": bool, "resourceId": str, "id": str,
    "resourceName": str, "name": str, "totalCost": (int, float), "currencyCode": str, "usdTotalCost": (int, float),
    "lastModifiedDate": str, "attributes": dict,
}


@covers("partner_center", "GET /v1/customers/usagerecords")
def test_usage_records_carry_the_documented_fields(pc: httpx.Client) -> None:
    response = pc.get("/v1/customers/usagerecords")
    assert response.status_code == 200
    body = response.json()
    assert body["attributes"]["objectType"] == "Collection" and body["items"]
    for item in body["items"]:
        check_fields(item, USAGE_RECORD_FIELDS)
        assert item["attributes"]["objectType"] == "CustomerMonthlyUsageRecord"
        assert item["budget"]["attributes"]["objectType"] == "SpendingBudget"
    by_customer = {item["id"]: item for item in body["items"]}
    assert by_customer[ids.CUSTOMER_FABRIKAM]["budget"]["amount"] == 5000
    assert "amount" not in by_customer[ids.CUSTOMER_ADATUM]["budget"]  # no budget: the documented shape
    first = pc.get("/v1/customers/usagerecords", params={"size": 2}).json()
    assert len(first["items"]) == 2 and "continuationToken=" in first["links"]["next"]["uri"]


@covers("partner_center", "GET /v1/customers/{customerId}/usagebudget", "PATCH /v1/customers/{customerId}/usagebudget")
def test_usage_budget_read_and_updated_with_the_documented_body(pc: httpx.Client) -> None:
    path = f"/v1/customers/{ids.CUSTOMER_ADATUM}/usagebudget"
    assert "amount" not in pc.get(path).json()
    updated = pc.patch(path, json={"Amount": 100, "Attributes": {"ObjectType": "SpendingBudget"}})  # the doc's body
    assert updated.status_code == 200 and updated.json()["amount"] == 100
    assert pc.get(path).json()["amount"] == 100
    assert pc.patch(path, json={"Amount": "lots"}).status_code == 400
