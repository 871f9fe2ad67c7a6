"""ARM stand-in driven by azure-mgmt-compute, -monitor, -resource(-subscriptions) and -subscription.

Tokens are App+User tokens redeemed in the customer's tenant (the partner's admin agent, who has
access to the customer's subscriptions through admin-on-behalf-of / GDAP), as the app gets them.
Long-running operations complete through the SDK's own ``LROPoller``; errors surface as
``HttpResponseError`` (or its typed subclasses) carrying ARM's error code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient as ResourceSubscriptionClient
from azure.mgmt.subscription import SubscriptionClient

from sandbox import ids
from sandbox.arm import ArmService
from sandbox.core import Sandbox
from tests.contract.conftest import PARTNER_APP_SECRET, RefreshTokenCredential, app_credential, arm_client
from tests.contract.routes import covers

VMSS_NAME = "vmss-gpu-pool"
# README spellings of the routes (see tests/contract/routes.py).
VM_ROUTE = "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"
VMSS_ROUTE = "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"


def arm_state(sandbox: Sandbox) -> ArmService:
    service = sandbox.services["arm"]
    assert isinstance(service, ArmService)
    return service


@pytest.fixture
def fabrikam(fresh_sandbox: Sandbox) -> RefreshTokenCredential:
    """The admin agent's App+User credential in Fabrikam's tenant (SAM refresh token, GDAP)."""
    arm_state(fresh_sandbox).lro_retry_after = 0
    return RefreshTokenCredential(fresh_sandbox, ids.CUSTOMER_FABRIKAM)


def compute(sandbox: Sandbox, credential: Any) -> ComputeManagementClient:
    return arm_client(ComputeManagementClient, sandbox, credential, ids.SUB_FABRIKAM_PROD)


# -- virtual machines -------------------------------------------------------------------------------


@covers("arm", "GET " + VM_ROUTE,
        "GET " + VM_ROUTE + "/instanceView")
def test_vm_get_with_instance_view(fresh_sandbox: Sandbox, fabrikam: RefreshTokenCredential) -> None:
    client = compute(fresh_sandbox, fabrikam)
    vm = client.virtual_machines.get(ids.MINING_RESOURCE_GROUP, "vm-gpu-01", expand="instanceView")
    view = client.virtual_machines.instance_view(ids.MINING_RESOURCE_GROUP, "vm-gpu-01")
    assert vm.id == ids.MINING_VM_1 and vm.location == "eastus"
    assert vm.hardware_profile.vm_size == "Standard_NC24ads_A100_v4"
    assert isinstance(vm.time_created, dt.datetime)
    codes = [s.code for s in vm.instance_view.statuses]
    assert "PowerState/running" in codes and [s.code for s in view.statuses] == codes


@covers("arm", "GET /subscriptions/{s}/providers/Microsoft.Compute/virtualMachines",
        "GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines")
def test_vm_list_in_subscription_and_resource_group(fresh_sandbox: Sandbox, fabrikam: RefreshTokenCredential) -> None:
    client = compute(fresh_sandbox, fabrikam)
    everything = {vm.id for vm in client.virtual_machines.list_all()}
    in_group = {vm.id for vm in client.virtual_machines.list(ids.MINING_RESOURCE_GROUP)}
    assert in_group == {ids.MINING_VM_1, ids.MINING_VM_2}
    assert in_group < everything and all(f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/" in i for i in everything)


@covers("arm", "POST " + VM_ROUTE + "/deallocate",
        "POST " + VM_ROUTE + "/powerOff",
        "POST " + VM_ROUTE + "/start",
        "POST " + VM_ROUTE + "/restart",
        "GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{location}/operations/{id}")
def test_vm_power_operations_complete_through_the_sdk_poller(fresh_sandbox: Sandbox,
                                                              fabrikam: RefreshTokenCredential) -> None:
    client = compute(fresh_sandbox, fabrikam)
    state = arm_state(fresh_sandbox)
    vms = client.virtual_machines
    vms.begin_deallocate(ids.MINING_RESOURCE_GROUP, "vm-gpu-01").result(timeout=30)
    assert state.power_state(ids.MINING_VM_1) == "deallocated"
    vms.begin_start(ids.MINING_RESOURCE_GROUP, "vm-gpu-01").result(timeout=30)
    assert state.power_state(ids.MINING_VM_1) == "running"
    vms.begin_power_off(ids.MINING_RESOURCE_GROUP, "vm-gpu-02", skip_shutdown=True).result(timeout=30)
    assert state.power_state(ids.MINING_VM_2) == "stopped"
    vms.begin_restart(ids.MINING_RESOURCE_GROUP, "vm-gpu-02").result(timeout=30)
    assert state.power_state(ids.MINING_VM_2) == "running"
    polled = [r for r in fresh_sandbox.requests("arm") if "/operations/" in r.path]
    assert polled and all(r.status in (200, 202) for r in polled)


def test_failed_operation_surfaces_as_http_response_error(fresh_sandbox: Sandbox,
                                                          fabrikam: RefreshTokenCredential) -> None:
    arm_state(fresh_sandbox).fail_next_operation("OperationPreempted", "The operation was preempted.")
    vms = compute(fresh_sandbox, fabrikam).virtual_machines
    poller = vms.begin_deallocate(ids.MINING_RESOURCE_GROUP, "vm-gpu-01")
    with pytest.raises(HttpResponseError) as caught:
        poller.result(timeout=30)
    assert "OperationPreempted" in str(caught.value)
    assert arm_state(fresh_sandbox).power_state(ids.MINING_VM_1) == "running"


def test_unknown_vm_is_resource_not_found(fresh_sandbox: Sandbox, fabrikam: RefreshTokenCredential) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        compute(fresh_sandbox, fabrikam).virtual_machines.get(ids.MINING_RESOURCE_GROUP, "vm-nope")
    assert caught.value.error is not None and caught.value.error.code == "ResourceNotFound"


# -- scale sets -------------------------------------------------------------------------------------


@covers("arm",
        "GET " + VMSS_ROUTE,
        "GET " + VMSS_ROUTE + "/instanceView",
        "GET /subscriptions/{s}/providers/Microsoft.Compute/virtualMachineScaleSets",
        "GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets",
        "POST " + VMSS_ROUTE + "/deallocate",
        "POST " + VMSS_ROUTE + "/powerOff",
        "POST " + VMSS_ROUTE + "/start")
def test_scale_set_get_list_and_power(fresh_sandbox: Sandbox, fabrikam: RefreshTokenCredential) -> None:
    client = compute(fresh_sandbox, fabrikam)
    sets = client.virtual_machine_scale_sets
    scale_set = sets.get(ids.MINING_RESOURCE_GROUP, VMSS_NAME)
    assert scale_set.sku.capacity == 4 and scale_set.sku.name == "Standard_NC6s_v3"
    assert [s.id for s in sets.list_all()] == [scale_set.id] == [s.id for s in sets.list(ids.MINING_RESOURCE_GROUP)]
    sets.begin_deallocate(ids.MINING_RESOURCE_GROUP, VMSS_NAME).result(timeout=30)
    summary = sets.get_instance_view(ids.MINING_RESOURCE_GROUP, VMSS_NAME).virtual_machine.statuses_summary
    assert [(s.code, s.count) for s in summary] == [("PowerState/deallocated", 4)]
    sets.begin_start(ids.MINING_RESOURCE_GROUP, VMSS_NAME).result(timeout=30)
    sets.begin_power_off(ids.MINING_RESOURCE_GROUP, VMSS_NAME).result(timeout=30)
    assert arm_state(fresh_sandbox).power_state(scale_set.id) == "stopped"


# -- activity log -----------------------------------------------------------------------------------


@covers("arm", "GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values")
def test_activity_log_pages_deserialize_into_event_data(fresh_sandbox: Sandbox,
                                                        fabrikam: RefreshTokenCredential) -> None:
    client = arm_client(MonitorManagementClient, fresh_sandbox, fabrikam, ids.SUB_FABRIKAM_PROD)
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = list(client.activity_logs.list(filter=f"eventTimestamp ge '{start}' and resourceGroupName eq "
                                                   f"'{ids.MINING_RESOURCE_GROUP}'"))
    assert len(events) > arm_state(fresh_sandbox).page_size  # the SDK followed nextLink
    created = next(e for e in events if e.resource_id.lower() == ids.MINING_VM_1.lower()
                   and e.operation_name.value == "Microsoft.Compute/virtualMachines/write")
    assert created.caller == ids.COMPROMISED_USER_UPN and created.status.value == "Succeeded"
    assert isinstance(created.event_timestamp, dt.datetime) and created.claims and created.correlation_id
    assert [e.event_timestamp for e in events] == sorted((e.event_timestamp for e in events), reverse=True)
    selected = next(iter(client.activity_logs.list(filter=f"eventTimestamp ge '{start}'",
                                                   select="eventTimestamp,caller")))
    assert selected.caller and selected.operation_name is None


def test_activity_log_without_a_start_time_is_a_bad_request(fresh_sandbox: Sandbox,
                                                            fabrikam: RefreshTokenCredential) -> None:
    client = arm_client(MonitorManagementClient, fresh_sandbox, fabrikam, ids.SUB_FABRIKAM_PROD)
    with pytest.raises(HttpResponseError) as caught:
        list(client.activity_logs.list(filter="caller eq 'x@example.com'"))
    assert caught.value.status_code == 400 and caught.value.error is not None
    assert caught.value.error.code == "BadRequest"


# -- subscriptions ----------------------------------------------------------------------------------


@covers("arm", "GET /subscriptions/{s}", "GET /subscriptions")
def test_subscriptions_get_and_list(fresh_sandbox: Sandbox, fabrikam: RefreshTokenCredential) -> None:
    client = arm_client(ResourceSubscriptionClient, fresh_sandbox, fabrikam)
    sub = client.subscriptions.get(ids.SUB_FABRIKAM_PROD)
    assert sub.subscription_id == ids.SUB_FABRIKAM_PROD and sub.tenant_id == ids.CUSTOMER_FABRIKAM
    assert sub.state == "Enabled" and sub.display_name == "Fabrikam Production"
    assert [s.subscription_id for s in client.subscriptions.list()] == [ids.SUB_FABRIKAM_PROD]


@covers("arm", "POST /subscriptions/{s}/providers/Microsoft.Subscription/cancel",
        "POST /subscriptions/{s}/providers/Microsoft.Subscription/enable")
def test_subscription_cancel_and_enable(fresh_sandbox: Sandbox, fabrikam: RefreshTokenCredential) -> None:
    client = arm_client(SubscriptionClient, fresh_sandbox, fabrikam)
    assert client.subscription.cancel(ids.SUB_FABRIKAM_PROD).subscription_id == ids.SUB_FABRIKAM_PROD
    assert arm_state(fresh_sandbox).subscription_state(ids.SUB_FABRIKAM_PROD) == "Disabled"
    with pytest.raises(HttpResponseError) as caught:
        compute(fresh_sandbox, fabrikam).virtual_machines.begin_deallocate(ids.MINING_RESOURCE_GROUP, "vm-gpu-01")
    assert caught.value.status_code == 409 and caught.value.error.code == "ReadOnlyDisabledSubscription"
    assert client.subscription.enable(ids.SUB_FABRIKAM_PROD).subscription_id == ids.SUB_FABRIKAM_PROD
    assert arm_state(fresh_sandbox).subscription_state(ids.SUB_FABRIKAM_PROD) == "Enabled"


# -- access -----------------------------------------------------------------------------------------


def test_a_principal_without_a_role_assignment_gets_authorization_failed(fresh_sandbox: Sandbox) -> None:
    """An app-only token of the partner's app in the customer tenant has no Azure role there."""
    credential = app_credential(fresh_sandbox, ids.PARTNER_APP_CLIENT_ID, PARTNER_APP_SECRET, ids.CUSTOMER_FABRIKAM)
    client = compute(fresh_sandbox, credential)
    with pytest.raises(HttpResponseError) as caught:
        client.virtual_machines.begin_deallocate(ids.MINING_RESOURCE_GROUP, "vm-gpu-01")
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Compute/virtualMachines/deallocate/action" in caught.value.error.message
    assert [s.subscription_id for s in arm_client(ResourceSubscriptionClient, fresh_sandbox,
                                                  credential).subscriptions.list()] == []
    assert arm_state(fresh_sandbox).power_state(ids.MINING_VM_1) == "running"


def test_removing_the_partners_access_is_what_azure_answers_403_to(fresh_sandbox: Sandbox,
                                                                    fabrikam: RefreshTokenCredential) -> None:
    arm_state(fresh_sandbox).remove_role_assignments(f"/subscriptions/{ids.SUB_FABRIKAM_PROD}")
    with pytest.raises(HttpResponseError) as caught:
        compute(fresh_sandbox, fabrikam).virtual_machines.get(ids.MINING_RESOURCE_GROUP, "vm-gpu-01")
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
    assert f"over scope '{ids.MINING_VM_1}'" in caught.value.error.message
