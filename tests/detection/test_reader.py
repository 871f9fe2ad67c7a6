"""The detection reader against the running sandbox: real HTTP/TLS, the SAM token, the project's clients.

What a detector depends on: Woodgrove's burst comes back with who, where and what size; the
activity log is read to its last page and exactly within [since, until); an entry or record that
cannot be read is skipped and counted without losing the others; throttling is honoured; and
the watched subscriptions are the customers' active Azure plan entitlements.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox import ids
from sandbox.arm import ArmService
from sandbox.core import Sandbox
from sandbox.faults import Fault
from sandbox.history import synthetic_ids
from sandbox.partner_center import PartnerCenterService
from sandbox.testing import sandbox_settings
from shared.auth import ARM_RESOURCE
from shared.auth.partner_tokens import PartnerTokenProvider
from shared.clients.arm import ArmClient
from shared.detection.base import DetectionReader
from shared.detection.reader import ClientReader, parse_activity_event, parse_audit_record, parse_quota
from shared.factory import detection_reader
from shared.http import verify_from_settings
from shared.settings import Settings

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


@pytest.fixture
def settings(fresh_sandbox: Sandbox) -> Settings:
    return sandbox_settings(fresh_sandbox)


@pytest.fixture
def reader(settings: Settings) -> Iterator[ClientReader]:
    with detection_reader(settings) as made:
        yield made


def arm_of(sandbox: Sandbox) -> ArmService:
    service = sandbox.services["arm"]
    assert isinstance(service, ArmService)
    return service


def pc_of(sandbox: Sandbox) -> PartnerCenterService:
    service = sandbox.services["partner_center"]
    assert isinstance(service, PartnerCenterService)
    return service


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_the_reader_is_a_detection_reader(reader: ClientReader) -> None:
    typed: DetectionReader = reader
    assert typed is reader


# -- targets -------------------------------------------------------------------------------------------


def test_targets_are_the_active_azure_plan_entitlements_with_their_reseller(reader: ClientReader,
                                                                             fresh_sandbox: Sandbox) -> None:
    pc_of(fresh_sandbox).entitlements[(ids.CUSTOMER_TAILSPIN, ids.PLAN_TAILSPIN, ids.SUB_TAILSPIN_LAB)][
        "status"] = "inactive"
    targets = {t.subscription_id: t for t in reader.targets()}
    assert set(targets) == {ids.SUB_FABRIKAM_PROD, ids.SUB_NORTHWIND_DEV, ids.SUB_WOODGROVE_PROD}
    woodgrove = targets[ids.SUB_WOODGROVE_PROD]
    assert woodgrove.customer_tenant_id == ids.CUSTOMER_WOODGROVE and woodgrove.customer_name == "Woodgrove Bank"
    assert woodgrove.reseller_id == ids.RESELLER_ADATUM
    assert targets[ids.SUB_FABRIKAM_PROD].reseller_id == ""


def test_targets_page_through_every_customer(settings: Settings, fresh_sandbox: Sandbox) -> None:
    with httpx.Client(verify=False) as control:  # noqa: S501 - loopback control endpoint
        added = control.post(f"{fresh_sandbox.url('arm')}/_sandbox/synthetic", json={"count": 45})
    assert added.status_code == 201
    with detection_reader(settings) as reader:
        reader._page_size = 10
        targets = list(reader.targets())
        assert len(targets) == 4 + 45 and len({t.subscription_id for t in targets}) == 49
        synthetic = synthetic_ids(7)[1]
        history = list(reader.activity_events(synthetic, since=now() - dt.timedelta(days=40)))
    assert history and {e.subscription_id for e in history} == {synthetic}
    customer_pages = [r for r in fresh_sandbox.requests("partner_center") if r.path == "/v1/customers"]
    assert len(customer_pages) == 5  # 49 customers, 10 a page
    assert all(r.headers.get("MS-ContinuationToken") for r in customer_pages[1:])


# -- the activity log ----------------------------------------------------------------------------------


def test_woodgroves_burst_comes_back_with_principal_location_and_size(reader: ClientReader) -> None:
    events = list(reader.activity_events(ids.SUB_WOODGROVE_PROD, since=now() - dt.timedelta(minutes=30)))
    created = [e for e in events if e.operation == "microsoft.compute/virtualmachines/write"
               and e.status == "succeeded"]
    assert len(created) == ids.WOODGROVE_BURST_VMS
    assert {e.principal_id for e in created} == {ids.WOODGROVE_INTRUDER_ID}
    assert {e.caller for e in created} == {ids.WOODGROVE_INTRUDER_UPN}
    assert {e.principal_tenant_id for e in created} == {ids.CUSTOMER_WOODGROVE}
    assert {e.location for e in created} == set(ids.WOODGROVE_BURST_REGIONS)
    sizes = {e.properties["responseBody"]["properties"]["hardwareProfile"]["vmSize"] for e in created}
    assert sizes == set(ids.WOODGROVE_BURST_SIZES)
    assert all(e.resource_id.startswith(f"/subscriptions/{ids.SUB_WOODGROVE_PROD}/") for e in created)
    assert all(e.ip_address for e in created)
    grant = next(e for e in events if e.operation == "microsoft.authorization/roleassignments/write"
                 and e.status == "succeeded")
    body = grant.properties["responseBody"]["Properties"]
    assert body["PrincipalId"] == ids.WOODGROVE_INTRUDER_ID and body["RoleDefinitionId"].endswith(OWNER)


def test_ordinary_history_names_the_usual_principals_and_the_partner_tenant(reader: ClientReader) -> None:
    events = list(reader.activity_events(ids.SUB_NORTHWIND_DEV, since=now() - dt.timedelta(days=40)))
    assert len(events) > 30
    tenants = {e.principal_tenant_id for e in events}
    assert tenants == {ids.CUSTOMER_NORTHWIND, ids.PARTNER_TENANT_ID}
    agent = [e for e in events if e.principal_id == ids.ADMIN_AGENT_USER_ID]
    assert agent and {e.principal_tenant_id for e in agent} == {ids.PARTNER_TENANT_ID}
    vm_writes = [e for e in events if e.operation == "microsoft.compute/virtualmachines/write"]
    assert vm_writes and all(e.location for e in vm_writes)


def test_the_log_is_read_to_its_last_page(reader: ClientReader, fresh_sandbox: Sandbox) -> None:
    since = now() - dt.timedelta(days=45)
    events = list(reader.activity_events(ids.SUB_FABRIKAM_PROD, since=since))
    served = [e for e in arm_of(fresh_sandbox)._events
              if e["subscriptionId"] == ids.SUB_FABRIKAM_PROD]
    assert len(events) == len(served) > 40
    assert len({e.event_id for e in events}) == len(events)
    pages = [r for r in fresh_sandbox.requests("arm") if r.path.endswith("/management/values")]
    assert len(pages) == -(-len(served) // arm_of(fresh_sandbox).page_size)  # 4 a page: every nextLink followed


def test_since_and_until_bound_the_window_exactly(reader: ClientReader, fresh_sandbox: Sandbox) -> None:
    everything = list(reader.activity_events(ids.SUB_WOODGROVE_PROD, since=now() - dt.timedelta(minutes=30)))
    ordered = sorted(everything, key=lambda e: e.timestamp)
    since, until = ordered[4].timestamp, ordered[10].timestamp
    window = list(reader.activity_events(ids.SUB_WOODGROVE_PROD, since=since, until=until))
    expected = {e.event_id for e in ordered if since <= e.timestamp < until}
    assert {e.event_id for e in window} == expected and expected
    assert all(e.timestamp != until for e in window)  # until is exclusive, since inclusive
    assert any(e.timestamp == since for e in window)
    later = list(reader.activity_events(ids.SUB_WOODGROVE_PROD, since=until))
    assert {e.event_id for e in later} | expected | {e.event_id for e in ordered if e.timestamp < since} == {
        e.event_id for e in everything}


def test_a_malformed_entry_is_skipped_and_counted_and_the_others_come_back(reader: ClientReader,
                                                                            fresh_sandbox: Sandbox) -> None:
    stamp = (now() - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    arm = arm_of(fresh_sandbox)
    arm.add_raw_event({"eventTimestamp": stamp, "subscriptionId": ids.SUB_WOODGROVE_PROD, "caller": "x"})
    arm.add_raw_event({"eventTimestamp": stamp, "subscriptionId": ids.SUB_WOODGROVE_PROD,
                       "eventDataId": "e-1", "operationName": {"value": "Microsoft.Compute/virtualMachines/write"},
                       "status": "Succeeded"})  # minimal but readable: kept
    events = list(reader.activity_events(ids.SUB_WOODGROVE_PROD, since=now() - dt.timedelta(minutes=30)))
    assert reader.skipped == 1 and reader.skipped_by_kind == {"activity_event": 1}
    assert len([e for e in events if e.status == "succeeded"
                and e.operation == "microsoft.compute/virtualmachines/write"]) == ids.WOODGROVE_BURST_VMS + 1


def test_a_429_is_waited_out_for_its_retry_after_and_the_read_completes(reader: ClientReader,
                                                                        fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", status=429, retry_after=1,
                                  path="/eventtypes/management/values", times=1))
    started = time.monotonic()
    events = list(reader.activity_events(ids.SUB_WOODGROVE_PROD, since=now() - dt.timedelta(minutes=30)))
    assert time.monotonic() - started >= 1.0
    assert len(events) == 2 * ids.WOODGROVE_BURST_VMS + 2
    statuses = [r.status for r in fresh_sandbox.requests("arm") if r.path.endswith("/management/values")]
    assert statuses[:2] == [429, 200]


def test_reads_slow_down_when_the_remaining_reads_run_low(settings: Settings, fresh_sandbox: Sandbox) -> None:
    arm_of(fresh_sandbox).set_read_bucket(refill_per_second=0, remaining={ids.SUB_WOODGROVE_PROD: 5})
    waits: list[float] = []
    tokens = PartnerTokenProvider(settings)
    with ArmClient(settings.arm_url, token=lambda: tokens.token(ARM_RESOURCE, ids.CUSTOMER_WOODGROVE),
                   verify=verify_from_settings(settings), sleep=waits.append) as client:
        client.compute_usages(ids.SUB_WOODGROVE_PROD, "eastus2")
        assert client.remaining_reads == 4 and waits == []
        client.compute_usages(ids.SUB_WOODGROVE_PROD, "westeurope")
    assert waits == [pytest.approx((25 - 4) / 25)]  # the bucket refills to 25 at 25 reads a second


# -- quotas and audit records --------------------------------------------------------------------------


def test_quota_readings_show_the_burst_against_the_limit(reader: ClientReader) -> None:
    before = now()
    readings = {q.name: q for q in reader.quota_readings(ids.SUB_WOODGROVE_PROD, "EastUS2")}
    cores = readings["cores"]
    assert cores.location == "eastus2" and cores.current == 96 and cores.limit == 350
    assert cores.display_name == "Total Regional vCPUs" and cores.read_at >= before
    assert readings["StandardNCADSA100v4Family"].current == 96
    usual = {q.name: q.current for q in reader.quota_readings(ids.SUB_WOODGROVE_PROD, "uksouth")}
    assert usual["cores"] > 0 and usual["StandardNCADSA100v4Family"] == 0  # the standing fleet only


def test_quota_readings_follow_a_deallocation(reader: ClientReader, settings: Settings,
                                              fresh_sandbox: Sandbox) -> None:
    tokens = PartnerTokenProvider(settings)
    burst = [r for r in arm_of(fresh_sandbox)._resources.values()
             if r.subscription == ids.SUB_WOODGROVE_PROD and r.location == "eastus2"]
    with ArmClient(settings.arm_url, token=lambda: tokens.token(ARM_RESOURCE, ids.CUSTOMER_WOODGROVE),
                   verify=verify_from_settings(settings), poll_interval=0) as client:
        client.deallocate_vm(burst[0].id)
    cores = {q.name: q.current for q in reader.quota_readings(ids.SUB_WOODGROVE_PROD, "eastus2")}["cores"]
    assert cores == 96 - 24
    logged = [e for e in reader.activity_events(ids.SUB_WOODGROVE_PROD, since=now() - dt.timedelta(minutes=5))
              if e.operation == "microsoft.compute/virtualmachines/deallocate/action"]
    assert len(logged) == 1 and logged[0].principal_id == ids.ADMIN_AGENT_USER_ID
    assert logged[0].principal_tenant_id == ids.PARTNER_TENANT_ID  # our own responder, as ARM logs it


def test_audit_records_span_windows_and_skip_what_cannot_be_read(reader: ClientReader,
                                                                 fresh_sandbox: Sandbox) -> None:
    pc = pc_of(fresh_sandbox)
    pc.add_audit_record({"operationDate": (now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                         "customerId": ids.CUSTOMER_FABRIKAM})
    records = list(reader.audit_records(since=now() - dt.timedelta(days=89)))
    assert reader.skipped_by_kind == {"audit_record": 1}
    woodgrove = [r for r in records if r.customer_id == ids.CUSTOMER_WOODGROVE]
    assert {r.operation_type for r in woodgrove} >= {"AddCustomer", "CreateOrder"}
    assert {r.reseller_id for r in woodgrove if r.operation_type in ("AddCustomer", "CreateOrder")} == {
        ids.RESELLER_ADATUM}
    assert all(r.operation_date >= now() - dt.timedelta(days=89) for r in records)
    queries = [r for r in fresh_sandbox.requests("partner_center") if r.path == "/v1/auditrecords"]
    assert len(queries) == 3  # 89 days in windows of at most 30


# -- parsers -------------------------------------------------------------------------------------------


def test_parsers_accept_any_key_case_and_missing_optional_fields() -> None:
    event = parse_activity_event({
        "EVENTDATAID": "ABC", "OperationName": "Microsoft.Compute/virtualMachines/write",
        "EventTimestamp": "2026-11-30T10:00:00.1234567Z", "SubscriptionID": "SUB-1",
        "Status": {"Value": "Succeeded"}, "Properties": {"RequestBody": '{"Location": "West Europe"}'}})
    assert (event.event_id, event.status, event.location, event.principal_id) == ("abc", "succeeded",
                                                                                   "westeurope", "")
    quota = parse_quota({"Name": {"Value": "cores"}, "CurrentValue": "3", "Limit": 10}, "WestEurope", now())
    assert (quota.name, quota.current, quota.limit, quota.location) == ("cores", 3, 10, "westeurope")
    record = parse_audit_record({"OPERATIONTYPE": "add_customer", "resourcetype": "customer",
                                 "operationDate": "2026-11-30T10:00:00Z",
                                 "resourceNewValue": '{"associatedPartnerId": "123"}'})
    assert (record.operation_type, record.resource_type, record.reseller_id) == ("AddCustomer", "Customer", "123")
    assert record.record_id.startswith("sha256:")
    for bad in ({"operationName": "x"}, "not an object"):
        with pytest.raises(ValueError):
            parse_activity_event(bad)
    with pytest.raises(ValueError):
        parse_quota({"name": {"value": "cores"}, "currentValue": "many", "limit": 1}, "eastus", now())
    with pytest.raises(ValueError):
        parse_audit_record({"operationType": "AddCustomer", "resourceType": "Customer", "operationDate": "soon"})


def test_an_unknown_subscription_is_a_lookup_error(reader: ClientReader) -> None:
    with pytest.raises(LookupError):
        list(reader.activity_events("bbbbbbbb-9999-4000-8000-000000000999", since=now() - dt.timedelta(hours=1)))


def test_a_burst_written_now_is_read_at_once_with_its_running_vms(reader: ClientReader,
                                                                  fresh_sandbox: Sandbox) -> None:
    principal = "eeeeeeee-7777-4000-8000-000000000777"
    with httpx.Client(verify=False) as control:  # noqa: S501 - loopback control endpoint
        written = control.post(f"{fresh_sandbox.url('arm')}/_sandbox/arm/bursts", json={
            "subscriptionId": ids.SUB_NORTHWIND_DEV, "principalId": principal, "count": 3,
            "regions": ["westus3"], "vmSize": "Standard_ND96asr_v4", "ownerGrant": True})
        refused = control.post(f"{fresh_sandbox.url('arm')}/_sandbox/arm/bursts", json={
            "subscriptionId": ids.SUB_NORTHWIND_DEV, "principalId": principal, "vmSize": "Standard_Huge"})
    assert written.status_code == 201 and len(written.json()["virtualMachines"]) == 3
    assert refused.status_code == 400 and "Standard_Huge" in refused.json()["error"]["message"]
    events = list(reader.activity_events(ids.SUB_NORTHWIND_DEV, since=now() - dt.timedelta(minutes=5)))
    created = [e for e in events
               if e.operation == "microsoft.compute/virtualmachines/write" and e.status == "succeeded"]
    assert len(created) == 3 and {e.principal_id for e in created} == {principal}
    assert {e.caller for e in created} == {principal} and {e.location for e in created} == {"westus3"}
    assert any(e.operation == "microsoft.authorization/roleassignments/write" for e in events)
    arm = arm_of(fresh_sandbox)
    assert {arm.power_state(vm) for vm in written.json()["virtualMachines"]} == {"running"}
    cores = {q.name: q.current for q in reader.quota_readings(ids.SUB_NORTHWIND_DEV, "westus3")}
    assert cores["standardNDASv4_A100Family"] == 3 * 96
