"""Realistic readings for detector tests, shaped like ARM activity-log entries and Partner Center
audit records as the reader hands them over (``shared.detection.base``).

Operation names, status codes, request/response bodies (``Properties`` capitalised in role
assignment request bodies, as ARM logs them), VM sizes and role definition ids are Azure's own.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.detection.base import ActivityEvent, AuditRecord, QuotaReading, SubscriptionInput, Target

PARTNER_TENANT: Final = "2f1c3a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
CUSTOMER_TENANT: Final = "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"
SUB: Final = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ALICE: Final = ("alice@contoso.onmicrosoft.com", "11111111-1111-4111-8111-111111111111")
BOB: Final = ("bob@contoso.onmicrosoft.com", "22222222-2222-4222-8222-222222222222")
PARTNER_ADMIN: Final = ("admin@fabrikampartner.onmicrosoft.com", "33333333-3333-4333-8333-333333333333")
INTRUDER: Final = ("svc-deploy@contoso.onmicrosoft.com", "44444444-4444-4444-8444-444444444444")
ADMIN_AGENTS: Final = "55555555-5555-4555-8555-555555555555"
OWNER: Final = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR: Final = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER: Final = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
UAA: Final = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

NOW: Final = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
TARGET: Final = Target(customer_tenant_id=CUSTOMER_TENANT, subscription_id=SUB, customer_name="Contoso")

_ids = itertools.count(1)


def _claims(who: tuple[str, str], tenant: str) -> dict[str, str]:
    return {"caller": who[0], "principal_id": who[1], "principal_tenant_id": tenant}


def event(operation: str, resource_id: str, at: datetime, who: tuple[str, str], *,
          tenant: str = CUSTOMER_TENANT, status: str = "succeeded", status_code: str = "Created",
          location: str = "", request: dict[str, Any] | None = None,
          response: dict[str, Any] | None = None, sub: str = SUB) -> ActivityEvent:
    props: dict[str, Any] = {"eventCategory": "Administrative", "entity": resource_id,
                             "message": operation, "hierarchy": f"{tenant}/{sub}"}
    if status == "succeeded":
        props["statusCode"] = status_code
    if request is not None:
        props["requestbody"] = request
    if response is not None:
        props["responseBody"] = response
    return ActivityEvent(
        event_id=f"evt-{next(_ids):06d}", operation=operation.lower(), status=status, timestamp=at,
        subscription_id=sub, resource_id=resource_id.lower(), ip_address="203.0.113.7",
        location=location, properties=props, correlation_id=f"corr-{next(_ids):06d}",
        **_claims(who, tenant))


def vm_id(name: str, rg: str = "rg-app", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def vm_create(name: str, size: str, location: str, at: datetime, who: tuple[str, str], *,
              rg: str = "rg-app", tenant: str = CUSTOMER_TENANT, sub: str = SUB,
              status_code: str = "Created") -> ActivityEvent:
    rid = vm_id(name, rg, sub)
    body = {"name": name, "id": rid, "type": "Microsoft.Compute/virtualMachines", "location": location,
            "properties": {"hardwareProfile": {"vmSize": size}, "provisioningState": "Creating",
                           "storageProfile": {"osDisk": {"osType": "Linux"}}}}
    return event("Microsoft.Compute/virtualMachines/write", rid, at, who, tenant=tenant, sub=sub,
                  location=location, response=body, status_code=status_code)


def vm_started(name: str, at: datetime, who: tuple[str, str]) -> ActivityEvent:
    """The 'Started' entry ARM logs before the 'Succeeded' one: never counted."""
    return event("Microsoft.Compute/virtualMachines/write", vm_id(name), at, who, status="started")


def scale_set(name: str, size: str, location: str, at: datetime, who: tuple[str, str], *,
              capacity: int, status_code: str = "Created") -> ActivityEvent:
    rid = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
    body = {"name": name, "location": location, "sku": {"name": size, "tier": "Standard", "capacity": capacity},
            "properties": {"provisioningState": "Updating"}}
    return event("Microsoft.Compute/virtualMachineScaleSets/write", rid, at, who, location=location,
                 response=body, status_code=status_code)


def container_group(name: str, location: str, at: datetime, who: tuple[str, str], *, gpu: bool) -> ActivityEvent:
    rid = f"/subscriptions/{SUB}/resourceGroups/rg-aci/providers/Microsoft.ContainerInstance/containerGroups/{name}"
    requests: dict[str, Any] = {"cpu": 4, "memoryInGB": 16}
    if gpu:
        requests["gpu"] = {"count": 1, "sku": "V100"}
    body = {"name": name, "location": location, "properties": {"osType": "Linux", "containers": [
        {"name": "worker", "properties": {"image": "docker.io/library/ubuntu:22.04",
                                          "resources": {"requests": requests}}}]}}
    return event("Microsoft.ContainerInstance/containerGroups/write", rid, at, who, location=location,
                 response=body)


def storage_write(name: str, location: str, at: datetime, who: tuple[str, str]) -> ActivityEvent:
    rid = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/{name}"
    return event("Microsoft.Storage/storageAccounts/write", rid, at, who, location=location,
                 status_code="OK")


def role_assignment(assignee: str, role: str, at: datetime, who: tuple[str, str], *,
                    principal_type: str = "User", tenant: str = CUSTOMER_TENANT,
                    name: str = "") -> ActivityEvent:
    name = name or f"{next(_ids):08d}-0000-4000-8000-000000000000"
    rid = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{name}"
    role_id = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    request = {"Id": name, "Properties": {"PrincipalId": assignee, "PrincipalType": principal_type,
                                          "RoleDefinitionId": role_id, "Scope": f"/subscriptions/{SUB}",
                                          "Condition": None, "ConditionVersion": None}}
    response = {"properties": {"roleDefinitionId": role_id, "principalId": assignee,
                               "principalType": principal_type, "scope": f"/subscriptions/{SUB}",
                               "createdBy": who[1]},
                "id": rid, "type": "Microsoft.Authorization/roleAssignments", "name": name}
    return event("Microsoft.Authorization/roleAssignments/write", rid, at, who, tenant=tenant,
                 request=request, response=response)


def role_definition(role: str, name: str, actions: list[str], at: datetime, who: tuple[str, str]) -> ActivityEvent:
    rid = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    request = {"properties": {"roleName": name, "description": "", "type": "CustomRole",
                              "permissions": [{"actions": actions, "notActions": [], "dataActions": [],
                                               "notDataActions": []}],
                              "assignableScopes": [f"/subscriptions/{SUB}"]}}
    return event("Microsoft.Authorization/roleDefinitions/write", rid, at, who, request=request)


def ordinary_history(days: int = 7, *, end: datetime = NOW - timedelta(hours=1)) -> list[ActivityEvent]:
    """A week of day-to-day activity: Alice and Bob create a standard VM or two a day in West Europe
    and North Europe, touch storage; the partner's admin assigns Reader once."""
    events: list[ActivityEvent] = []
    for d in range(days, 0, -1):
        base = end - timedelta(days=d)
        events.append(vm_create(f"web-{d}", "Standard_D2s_v5", "westeurope", base + timedelta(hours=2), ALICE))
        events.append(storage_write(f"logs{d}", "westeurope", base + timedelta(hours=3), BOB))
        if d % 2:
            events.append(vm_create(f"api-{d}", "Standard_D4s_v5", "northeurope", base + timedelta(hours=5), BOB))
    events.append(role_assignment(BOB[1], READER, end - timedelta(days=3), PARTNER_ADMIN, tenant=PARTNER_TENANT))
    return events


def subscription_input(events: list[ActivityEvent], *, now: datetime = NOW,
                       baseline: list[ActivityEvent] | None = None,
                       quotas: tuple[QuotaReading, ...] = ()) -> SubscriptionInput:
    return SubscriptionInput(target=TARGET, now=now, events=tuple(events),
                             baseline=tuple(baseline or ()), quotas=quotas)


def audit(operation_type: str, resource_type: str, at: datetime, *, customer_id: str = "", reseller: str = "",
          user: str = "sales@fabrikampartner.onmicrosoft.com", quantity: int | None = None,
          customer_name: str = "") -> AuditRecord:
    new_value: dict[str, Any] = {}
    if quantity is not None:
        new_value = {"lineItems": [{"lineItemNumber": 0, "offerId": "DZH318Z0BQ3Q:0001:DZH318Z0BQ36",
                                    "quantity": quantity, "termDuration": "P1M"}]}
    number = next(_ids)
    return AuditRecord(record_id=f"rec-{number:06d}", operation_type=operation_type,
                       resource_type=resource_type, operation_date=at, customer_id=customer_id,
                       customer_name=customer_name, resource_id=f"res-{number:06d}", status="Succeeded",
                       user_principal=user, reseller_id=reseller, new_value=new_value)
