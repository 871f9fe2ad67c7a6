"""What detectors read, against Microsoft's contracts: activity log and compute usages through
azure-mgmt-monitor and azure-mgmt-compute; Partner Center's customer list and audit records
against the documented resources (learn.microsoft.com/partner-center/developer get-a-list-of-customers,
customer-resources, get-a-record-of-partner-center-activity-by-user, auditing-resources).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.monitor import MonitorManagementClient

from sandbox import ids
from sandbox.core import Sandbox
from tests.contract.conftest import RefreshTokenCredential, arm_client
from tests.contract.routes import covers

PC_SCOPE = "https://api.partnercenter.microsoft.com/.default"
USAGES_ROUTE = "GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{location}/usages"

# customer-resources: the Customer resource as the list returns it.
CUSTOMER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "commerceId": str, "companyProfile": dict, "relationshipToPartner": str,
    "allowDelegatedAccessManagement": bool, "links": dict, "attributes": dict,
}
COMPANY_PROFILE_FIELDS: dict[str, type | tuple[type, ...]] = {"tenantId": str, "domain": str, "companyName": str}
# auditing-resources: AuditRecord.
AUDIT_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "partnerId": str, "sessionId": str, "applicationId": str, "customerId": str, "customerName": str,
    "userPrincipalName": str, "resourceType": str, "resourceNewValue": str, "operationType": str,
    "operationDate": str, "operationStatus": str, "customizedData": list, "attributes": dict,
}


def check_fields(item: dict[str, Any], documented: dict[str, type | tuple[type, ...]]) -> None:
    served = {key.lower(): value for key, value in item.items()}
    for name, kind in documented.items():
        assert name.lower() in served, f"{name} is missing from {sorted(item)}"
        assert isinstance(served[name.lower()], kind), f"{name} is {type(served[name.lower()]).__name__}"


@pytest.fixture
def woodgrove(fresh_sandbox: Sandbox) -> RefreshTokenCredential:
    return RefreshTokenCredential(fresh_sandbox, ids.CUSTOMER_WOODGROVE)


@pytest.fixture
def pc(fresh_sandbox: Sandbox) -> Iterator[httpx.Client]:
    token = RefreshTokenCredential(fresh_sandbox, ids.PARTNER_TENANT_ID).get_token(PC_SCOPE).token
    with httpx.Client(base_url=fresh_sandbox.url("partner_center"), headers={"Authorization": f"Bearer {token}"},
                      verify=ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))) as client:
        yield client


# -- ARM through Microsoft's SDKs ------------------------------------------------------------------------


@covers("arm", "GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values")
def test_burst_entries_fill_the_sdk_event_data_with_bodies_claims_and_http_request(
        fresh_sandbox: Sandbox, woodgrove: RefreshTokenCredential) -> None:
    client = arm_client(MonitorManagementClient, fresh_sandbox, woodgrove, ids.SUB_WOODGROVE_PROD)
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = list(client.activity_logs.list(filter=f"eventTimestamp ge '{start}'"))
    writes = [e for e in events if e.operation_name.value == "Microsoft.Compute/virtualMachines/write"]
    assert len([e for e in writes if e.status.value == "Succeeded"]) == ids.WOODGROVE_BURST_VMS
    started = next(e for e in writes if e.status.value == "Started")
    assert started.properties is not None and started.claims is not None
    body = json.loads(started.properties["requestbody"])
    assert body["location"] in ids.WOODGROVE_BURST_REGIONS
    assert body["properties"]["hardwareProfile"]["vmSize"] in ids.WOODGROVE_BURST_SIZES
    assert started.http_request is not None and started.http_request.method == "PUT"
    assert started.claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] == ids.WOODGROVE_INTRUDER_ID
    assert started.caller == ids.WOODGROVE_INTRUDER_UPN and started.submission_timestamp is not None
    grant = next(e for e in events if e.operation_name.value == "Microsoft.Authorization/roleAssignments/write"
                 and e.status.value == "Succeeded")
    assert grant.properties is not None
    granted = json.loads(grant.properties["responseBody"])["Properties"]
    assert granted["PrincipalId"] == ids.WOODGROVE_INTRUDER_ID
    assert granted["RoleDefinitionId"].endswith("8e3af657-a8ff-443c-a75c-2fe8c4bcb635")  # Owner
    assert granted["Scope"] == f"/subscriptions/{ids.SUB_WOODGROVE_PROD}"


@covers("arm", USAGES_ROUTE)
def test_compute_usages_fill_the_sdk_usage_model_from_the_vms_held(fresh_sandbox: Sandbox,
                                                                   woodgrove: RefreshTokenCredential) -> None:
    client = arm_client(ComputeManagementClient, fresh_sandbox, woodgrove, ids.SUB_WOODGROVE_PROD)
    rows = {u.name.value: u for u in client.usage.list("eastus2")}
    assert rows["cores"].name.localized_value == "Total Regional vCPUs" and rows["cores"].unit == "Count"
    a100 = rows["StandardNCADSA100v4Family"]
    assert a100.current_value == 4 * 24 and a100.limit >= a100.current_value  # four NC24ads A100 v4 VMs
    assert rows["cores"].current_value == a100.current_value
    assert rows["virtualMachines"].current_value == 4
    unused = {u.name.value: u.current_value for u in client.usage.list("brazilsouth")}
    assert set(unused) == set(rows) and not any(unused.values())


def test_usages_page_with_next_link_and_refuse_a_missing_api_version(fresh_sandbox: Sandbox,
                                                                     woodgrove: RefreshTokenCredential) -> None:
    fresh_sandbox.services["arm"].page_size = 1  # type: ignore[attr-defined]
    client = arm_client(ComputeManagementClient, fresh_sandbox, woodgrove, ids.SUB_WOODGROVE_PROD)
    paged = list(client.usage.list("eastus2"))
    assert len(paged) > 4 and sum("$skipToken" in r.query for r in fresh_sandbox.requests("arm")) >= 2
    token = woodgrove.get_token("https://management.azure.com/.default").token
    with httpx.Client(base_url=fresh_sandbox.url("arm"), headers={"Authorization": f"Bearer {token}"},
                      verify=ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))) as http:
        answer = http.get(f"/subscriptions/{ids.SUB_WOODGROVE_PROD}/providers/Microsoft.Compute/locations/eastus2/"
                          "usages")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "MissingApiVersionParameter"


def test_reads_carry_the_remaining_reads_and_an_empty_bucket_is_a_429_the_sdk_surfaces(
        fresh_sandbox: Sandbox, woodgrove: RefreshTokenCredential) -> None:
    arm = fresh_sandbox.services["arm"]
    arm.set_read_bucket(refill_per_second=0, remaining={ids.SUB_WOODGROVE_PROD: 1})  # type: ignore[attr-defined]
    client = arm_client(ComputeManagementClient, fresh_sandbox, woodgrove, ids.SUB_WOODGROVE_PROD)
    next(iter(client.usage.list("eastus2")))
    served = [r for r in fresh_sandbox.requests("arm") if r.path.endswith("/usages")]
    assert served[-1].status == 200
    with pytest.raises(HttpResponseError) as caught:
        list(ComputeManagementClient(woodgrove, ids.SUB_WOODGROVE_PROD, base_url=fresh_sandbox.url("arm"),
                                     credential_scopes=["https://management.azure.com/.default"],
                                     connection_verify=str(fresh_sandbox.ca_cert_path),
                                     retry_total=0).usage.list("eastus2"))
    assert caught.value.status_code == 429
    response: Any = caught.value.response
    assert response is not None and response.headers["Retry-After"]
    assert response.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"


# -- Partner Center against the documented resources ----------------------------------------------------


@covers("partner_center", "GET /v1/customers")
def test_customer_list_is_the_documented_collection_paged_by_continuation(pc: httpx.Client) -> None:
    first = pc.get("/v1/customers", params={"size": 3})
    assert first.status_code == 200
    body = first.json()
    assert body["attributes"]["objectType"] == "Collection" and body["totalCount"] == 3
    for customer in body["items"]:
        check_fields(customer, CUSTOMER_FIELDS)
        check_fields(customer["companyProfile"], COMPANY_PROFILE_FIELDS)
        assert customer["attributes"]["objectType"] == "Customer"
    following = body["links"]["next"]
    assert following["uri"] == "/customers?size=3&seekOperation=Next" and following["method"] == "GET"
    header = {h["key"]: h["value"] for h in following["headers"]}
    assert header["MS-ContinuationToken"] == body["continuationToken"]
    second = pc.get("/v1" + following["uri"], headers=header).json()
    assert "next" not in second["links"]
    everyone = {c["id"]: c for c in body["items"] + second["items"]}
    assert ids.CUSTOMER_WOODGROVE in everyone and len(everyone) == 4
    assert everyone[ids.CUSTOMER_WOODGROVE]["associatedPartnerId"] == ids.RESELLER_ADATUM
    assert "associatedPartnerId" not in everyone[ids.CUSTOMER_FABRIKAM]  # a direct customer
    bad = pc.get("/v1/customers", params={"seekOperation": "Next"}, headers={"MS-ContinuationToken": "nonsense"})
    assert bad.status_code == 400 and "continuation" in bad.json()["description"]


@covers("partner_center", "GET /v1/auditrecords")
def test_audit_records_are_the_documented_records_with_their_window_and_filter(pc: httpx.Client) -> None:
    now = dt.datetime.now(dt.UTC)
    window = {"startDate": (now - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "endDate": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    answer = pc.get("/v1/auditrecords", params=window)
    assert answer.status_code == 200
    records = answer.json()["items"]
    assert records
    for record in records:
        check_fields(record, AUDIT_RECORD_FIELDS)
        assert isinstance(json.loads(record["resourceNewValue"]), dict)
        assert record["attributes"]["objectType"] == "AuditRecord"
    older = pc.get("/v1/auditrecords", params={
        "startDate": (now - dt.timedelta(days=50)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDate": (now - dt.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "filter": json.dumps({"Field": "CustomerId", "Value": ids.CUSTOMER_WOODGROVE, "Operator": "equals"})})
    added = older.json()["items"]
    assert {r["operationType"] for r in added} == {"AddCustomer", "CreateOrder"}
    order = json.loads(next(r for r in added if r["operationType"] == "CreateOrder")["resourceNewValue"])
    assert order["lineItems"][0]["partnerIdOnRecord"] == ids.RESELLER_ADATUM
    too_old = pc.get("/v1/auditrecords", params={"startDate": (now - dt.timedelta(days=91)).date().isoformat()})
    assert too_old.status_code == 400 and "90 days" in too_old.json()["description"]
    too_wide = pc.get("/v1/auditrecords", params={
        "startDate": (now - dt.timedelta(days=60)).date().isoformat(), "endDate": now.date().isoformat()})
    assert too_wide.status_code == 400 and "30 days" in too_wide.json()["description"]
    bad_filter = pc.get("/v1/auditrecords", params={"filter": "CustomerId eq 'x'"})
    assert bad_filter.status_code == 400
