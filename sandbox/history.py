"""Deterministic day-to-day history for the stand-ins: activity-log entries, standing fleets, audit records.

Detectors learn what is ordinary for a subscription from its past, so every customer in the
sandbox needs weeks of unremarkable activity: a few VM writes, restarts and deployments a week
by its usual principals (the customer's own operator, an automation service principal and the
partner's admin agent), standard sizes, its usual regions, and now and then a role assignment
to a principal already known. Generating it from a seed (instead of shipping a large JSON file)
keeps the scenario readable and lets the 1,000-subscription benchmark make history on read.

Also here: the VM size table (size -> usage family and cores) the compute usages are computed
from, and the burst (N VMs of a size in given regions, plus an optional Owner grant) that both
the default scenario (Woodgrove) and ``POST /_sandbox/arm/bursts`` write.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final

from sandbox import ids

# size -> (usage name.value, name.localizedValue, vCPUs). Family names as Microsoft.Compute/usages spells them.
VM_SIZES: Final[dict[str, tuple[str, str, int]]] = {
    "Standard_B2s": ("standardBSFamily", "Standard BS Family vCPUs", 2),
    "Standard_D2s_v5": ("standardDSv5Family", "Standard DSv5 Family vCPUs", 2),
    "Standard_D4s_v5": ("standardDSv5Family", "Standard DSv5 Family vCPUs", 4),
    "Standard_D8s_v5": ("standardDSv5Family", "Standard DSv5 Family vCPUs", 8),
    "Standard_E4s_v5": ("standardESv5Family", "Standard ESv5 Family vCPUs", 4),
    "Standard_F4s_v2": ("standardFSv2Family", "Standard FSv2 Family vCPUs", 4),
    "Standard_D16s_v5": ("standardDSv5Family", "Standard DSv5 Family vCPUs", 16),
    "Standard_NC6s_v3": ("standardNCSv3Family", "Standard NCSv3 Family vCPUs", 6),
    "Standard_NC24ads_A100_v4": ("StandardNCADSA100v4Family", "Standard NCADS_A100_v4 Family vCPUs", 24),
    "Standard_ND96asr_v4": ("standardNDASv4_A100Family", "Standard NDASv4_A100 Family vCPUs", 96),
    "Standard_NV36ads_A10_v5": ("StandardNVADSA10v5Family", "Standard NVADSA10v5 Family vCPUs", 36),
}
ORDINARY_SIZES: Final = ("Standard_B2s", "Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5", "Standard_F4s_v2")
GPU_FAMILIES: Final = frozenset({"standardNCSv3Family", "StandardNCADSA100v4Family", "standardNDASv4_A100Family",
                                 "StandardNVADSA10v5Family"})
# Default limits per usage name (a CSP subscription's usual quotas); scenario ``arm.quotaLimits`` overrides.
DEFAULT_LIMITS: Final[dict[str, int]] = {
    "availabilitySets": 2500, "cores": 350, "virtualMachines": 25000, "virtualMachineScaleSets": 2500,
    "standardBSFamily": 100, "standardDSv5Family": 100, "standardESv5Family": 100, "standardFSv2Family": 100,
    "standardNCSv3Family": 48, "StandardNCADSA100v4Family": 150, "standardNDASv4_A100Family": 96,
    "StandardNVADSA10v5Family": 150,
}
FIXED_USAGES: Final = (("availabilitySets", "Availability Sets"), ("cores", "Total Regional vCPUs"),
                       ("virtualMachines", "Virtual Machines"),
                       ("virtualMachineScaleSets", "Virtual Machine Scale Sets"))
USUAL_REGIONS: Final = ("westeurope", "northeurope", "uksouth", "eastus", "westus2", "francecentral")

ROLE_DEFINITIONS: Final = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
}
ADMIN_AGENT_UPN: Final = "admin-agent@contoso-csp.example"
AZURE_PORTAL_APP_ID: Final = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"
HISTORY_GAP: Final = dt.timedelta(hours=26)
"""Ordinary history ends this long before "now", so tests of the last day see only what they wrote."""


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "sandbox-history/" + "/".join(str(p) for p in parts)))


@dataclass(frozen=True)
class Principal:
    """Someone who acts in a subscription: a user (``upn``) or a service principal (``upn`` == "")."""

    object_id: str
    upn: str = ""
    app_id: str = ""
    home_tenant: str = ""
    """The tenant the principal belongs to when it is not the subscription's (the partner's admin agent)."""

    @property
    def caller(self) -> str:
        return self.upn or self.object_id


@dataclass(frozen=True)
class Profile:
    """What is ordinary for one subscription: its regions, resource groups, principals and fleet."""

    subscription_id: str
    tenant_id: str
    domain: str
    regions: tuple[str, ...]
    principals: tuple[Principal, ...]
    fleet: tuple[tuple[str, str, str], ...]
    """(VM name, size, region) of the VMs that run every day (counted in the compute usages)."""

    def resource_group(self, region: str) -> str:
        return f"rg-app-{region}"


def profile(subscription_id: str, tenant_id: str, domain: str = "", *, seed: int = 13,
            regions: tuple[str, ...] | None = None) -> Profile:
    """The ordinary profile of a subscription, derived from its id and the seed."""
    rng = random.Random(f"{seed}/profile/{subscription_id.lower()}")
    usual = regions or tuple(rng.sample(USUAL_REGIONS, rng.choice((1, 2))))
    name = domain or f"{tenant_id[:8]}.example"
    operator = Principal(_uuid(subscription_id, "operator"), f"ops@{name}")
    automation = Principal(_uuid(subscription_id, "automation"), app_id=_uuid(subscription_id, "automation-app"))
    agent = Principal(ids.ADMIN_AGENT_USER_ID, ADMIN_AGENT_UPN, app_id=ids.PARTNER_APP_CLIENT_ID,
                      home_tenant=ids.PARTNER_TENANT_ID)
    fleet = tuple((f"vm-app-{i + 1:02d}", rng.choice(ORDINARY_SIZES), usual[i % len(usual)])
                  for i in range(rng.randint(2, 4)))
    return Profile(subscription_id, tenant_id.lower(), name, usual, (operator, automation, agent), fleet)


def vm_id(subscription_id: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


def vm_body(location: str, size: str, *, vm_name: str, response: bool = False) -> dict[str, Any]:
    """A VM PUT body (or the response ARM writes back) as the activity log keeps it."""
    body: dict[str, Any] = {
        "location": location,
        "properties": {
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                                                  "sku": "server", "version": "latest"},
                               "osDisk": {"createOption": "FromImage",
                                          "managedDisk": {"storageAccountType": "Premium_LRS"}}},
            "osProfile": {"computerName": vm_name, "adminUsername": "azureuser"},
        },
    }
    if response:
        body["properties"]["provisioningState"] = "Creating"
        body["type"] = "Microsoft.Compute/virtualMachines"
        body["name"] = vm_name
    return body


def role_assignment_body(subscription_id: str, principal_id: str, role: str, principal_type: str = "User",
                         assignment_id: str = "") -> dict[str, Any]:
    """A role assignment PUT body as the activity log writes it (PascalCase, as Azure's requestbody does)."""
    scope = f"/subscriptions/{subscription_id}"
    return {"Id": assignment_id, "Properties": {
        "PrincipalId": principal_id, "PrincipalType": principal_type,
        "RoleDefinitionId": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_DEFINITIONS[role]}",
        "Scope": scope, "Condition": None, "ConditionVersion": None}}


def write_pair(*, operation: str, resource_id: str, principal: Principal, at: dt.datetime, key: str,
               request_body: dict[str, Any] | None = None, response_body: dict[str, Any] | None = None,
               ip_address: str = "198.51.100.20") -> list[dict[str, Any]]:
    """The two entries ARM logs for a write: Started (with the request body) and Succeeded (response)."""
    correlation = _uuid(key, "correlation")
    common: dict[str, Any] = {"operationName": operation, "resourceId": resource_id, "caller": principal.caller,
                              "correlationId": correlation, "ipAddress": ip_address}
    if principal.upn:
        common["callerObjectId"] = principal.object_id
    if principal.app_id or principal.upn:  # a user signs in through an app too (the Azure portal by default)
        common["callerAppId"] = principal.app_id or AZURE_PORTAL_APP_ID
    if principal.home_tenant:
        common["callerHomeTenantId"] = principal.home_tenant
    started = {**common, "eventTimestamp": _iso(at), "status": "Started", "eventDataId": _uuid(key, "started")}
    if request_body is not None:
        started["requestBody"] = request_body
    done = {**common, "eventTimestamp": _iso(at + dt.timedelta(seconds=40)), "status": "Succeeded",
            "eventDataId": _uuid(key, "succeeded")}
    if response_body is not None:
        done["responseBody"] = response_body
    return [started, done]


def ordinary_events(p: Profile, *, now: dt.datetime, days: int = 35, seed: int = 13) -> list[dict[str, Any]]:
    """Compact activity-log entries (sandbox.arm expands them) for ``days`` of ordinary work, oldest first.

    About five operations a week: VM writes of the fleet (same sizes, usual regions), restarts,
    template deployments, NSG updates, and every other week a Reader grant to a known principal.
    """
    rng = random.Random(f"{seed}/events/{p.subscription_id.lower()}")
    end = now - HISTORY_GAP
    moment = end - dt.timedelta(days=days)
    events: list[dict[str, Any]] = []
    n = 0
    sub = p.subscription_id
    while True:
        moment += dt.timedelta(hours=rng.uniform(20, 48))
        if moment >= end:
            break
        moment = moment.replace(hour=rng.randint(8, 17))
        if moment >= end:
            break
        n += 1
        key = f"{sub.lower()}/{n}"
        principal = rng.choice(p.principals)
        vm_name, size, region = rng.choice(p.fleet)
        group = p.resource_group(region)
        resource = vm_id(sub, group, vm_name)
        kind = rng.choices(("vm", "restart", "deploy", "nsg", "role"), weights=(4, 3, 2, 1, 1))[0]
        if kind == "vm":
            events += write_pair(operation="Microsoft.Compute/virtualMachines/write", resource_id=resource,
                                 principal=principal, at=moment, key=key,
                                 request_body=vm_body(region, size, vm_name=vm_name),
                                 response_body=vm_body(region, size, vm_name=vm_name, response=True))
        elif kind == "restart":
            events += write_pair(operation="Microsoft.Compute/virtualMachines/restart/action", resource_id=resource,
                                 principal=principal, at=moment, key=key)
        elif kind == "deploy":
            deployment = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Resources/deployments/" \
                         f"release-{n:03d}"
            events += write_pair(operation="Microsoft.Resources/deployments/write", resource_id=deployment,
                                 principal=principal, at=moment, key=key,
                                 request_body={"properties": {"mode": "Incremental", "templateLink": {
                                     "uri": f"https://{p.domain}/templates/app.json"}}})
        elif kind == "nsg":
            nsg = (f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/"
                   "networkSecurityGroups/nsg-app")
            events += write_pair(operation="Microsoft.Network/networkSecurityGroups/write", resource_id=nsg,
                                 principal=principal, at=moment, key=key,
                                 request_body={"location": region, "properties": {"securityRules": []}})
        else:
            grantee = rng.choice(p.principals[:2])
            assignment = _uuid(key, "assignment")
            resource_id = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{assignment}"
            body = role_assignment_body(sub, grantee.object_id, "Reader",
                                        "User" if grantee.upn else "ServicePrincipal", assignment)
            events += write_pair(operation="Microsoft.Authorization/roleAssignments/write", resource_id=resource_id,
                                 principal=p.principals[0], at=moment, key=key, request_body=body,
                                 response_body=body)
    return events


def burst(*, subscription_id: str, principal: Principal, regions: list[str], sizes: list[str], count: int,
          at: dt.datetime, owner_grant: bool, resource_group: str = "rg-compute", name_prefix: str = "vm-burst",
          key: str = "burst") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(VMs to create, compact activity-log entries): ``count`` VMs spread over ``regions`` (sizes cycle),
    written a few seconds apart by ``principal``, then an Owner grant to itself when ``owner_grant``."""
    if count < 1 or not regions or not sizes:
        raise ValueError("a burst needs count >= 1, at least one region and one size")
    unknown = [s for s in sizes if s not in VM_SIZES]
    if unknown:
        raise ValueError(f"unknown VM size {unknown[0]!r}; known: {', '.join(VM_SIZES)}")
    vms: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for i in range(count):
        region, size = regions[i % len(regions)], sizes[i % len(sizes)]
        name = f"{name_prefix}-{i + 1:02d}"
        group = f"{resource_group}-{region}"
        resource = vm_id(subscription_id, group, name)
        moment = at + dt.timedelta(seconds=15 * i)
        vms.append({"id": resource, "location": region, "vmSize": size, "powerState": "running",
                    "timeCreated": _iso(moment + dt.timedelta(seconds=40))})
        events += write_pair(operation="Microsoft.Compute/virtualMachines/write", resource_id=resource,
                             principal=principal, at=moment, key=f"{key}/{subscription_id.lower()}/{name}",
                             request_body=vm_body(region, size, vm_name=name),
                             response_body=vm_body(region, size, vm_name=name, response=True),
                             ip_address="192.0.2.66")
    if owner_grant:
        assignment = _uuid(key, subscription_id.lower(), "owner")
        resource_id = f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleAssignments/{assignment}"
        body = role_assignment_body(subscription_id, principal.object_id, "Owner",
                                    "User" if principal.upn else "ServicePrincipal", assignment)
        events += write_pair(operation="Microsoft.Authorization/roleAssignments/write", resource_id=resource_id,
                             principal=principal, at=at + dt.timedelta(seconds=15 * count + 30),
                             key=f"{key}/{subscription_id.lower()}/owner", request_body=body, response_body=body,
                             ip_address="192.0.2.66")
    return vms, events


# -- synthetic customers (benchmarks): everything derived from the index, nothing stored -----------------


def synthetic_ids(index: int) -> tuple[str, str, str]:
    """(customer tenant id, Azure subscription id, Azure plan id) of synthetic customer ``index``."""
    return (f"7e000000-0000-4000-8000-{index:012d}", f"5e000000-0000-4000-8000-{index:012d}",
            f"6e000000-0000-4000-8000-{index:012d}")


def synthetic_index(identifier: str) -> int | None:
    """The synthetic index in a tenant, subscription or plan id made by :func:`synthetic_ids`, else None."""
    text = identifier.lower()
    if len(text) != 36 or text[:24] not in ("7e000000-0000-4000-8000-", "5e000000-0000-4000-8000-",
                                            "6e000000-0000-4000-8000-") or not text[24:].isdigit():
        return None
    return int(text[24:])


# -- Partner Center audit history -------------------------------------------------------------------


def audit_record(*, operation: str, resource_type: str, customer_id: str, customer_name: str, at: dt.datetime,
                 user: str, new_value: dict[str, Any], key: str) -> dict[str, Any]:
    """One audit record as ``GET /v1/auditrecords`` serves it (resourceNewValue is a JSON string)."""
    import json

    return {
        "id": _uuid(key, "audit"), "partnerId": ids.PARTNER_TENANT_ID, "sessionId": _uuid(key, "session"),
        "applicationId": "Partner Center Portal", "customerId": customer_id, "customerName": customer_name,
        "userPrincipalName": user, "resourceType": resource_type, "resourceNewValue": json.dumps(new_value),
        "operationType": operation,
        "operationDate": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}0Z",
        "operationStatus": "Succeeded",
        "customizedData": [{"key": "CustomerId", "value": customer_id}],
        "attributes": {"objectType": "AuditRecord"},
    }


def customer_audit_history(*, customer_id: str, customer_name: str, domain: str, plan_id: str,
                           reseller_id: str, added_days_ago: int, now: dt.datetime,
                           seed: int = 13) -> list[dict[str, Any]]:
    """A customer's ordinary audit trail: added (AddCustomer, CreateOrder for the Azure plan) and a few
    budget or subscription updates since; records older than 90 days are kept out (PC keeps 90)."""
    rng = random.Random(f"{seed}/audit/{customer_id.lower()}")
    user = "admin-agent@contoso-csp.example"
    added = now - dt.timedelta(days=added_days_ago, hours=rng.randint(0, 8))
    key = customer_id.lower()
    line_item: dict[str, Any] = {"lineItemNumber": 0, "offerId": "DZH318Z0BCZC:0001", "quantity": 1,
                                 "friendlyName": "Azure plan"}
    if reseller_id:
        line_item["partnerIdOnRecord"] = reseller_id
    customer_value: dict[str, Any] = {"id": customer_id, "companyProfile": {
        "tenantId": customer_id, "domain": domain, "companyName": customer_name}, "relationshipToPartner": "reseller"}
    if reseller_id:
        customer_value["associatedPartnerId"] = reseller_id
    records = [
        audit_record(operation="AddCustomer", resource_type="Customer", customer_id=customer_id,
                     customer_name=customer_name, at=added, user=user, new_value=customer_value, key=f"{key}/add"),
        audit_record(operation="CreateOrder", resource_type="Order", customer_id=customer_id,
                     customer_name=customer_name, at=added + dt.timedelta(minutes=12), user=user,
                     new_value={"id": plan_id, "referenceCustomerId": customer_id, "lineItems": [line_item],
                                "status": "completed"}, key=f"{key}/order"),
    ]
    moment = added
    n = 0
    while True:
        moment += dt.timedelta(days=rng.uniform(12, 30))
        if moment >= now - HISTORY_GAP:
            break
        n += 1
        if rng.random() < 0.5:
            records.append(audit_record(
                operation="UpdateCustomerSpendingBudget", resource_type="Customer", customer_id=customer_id,
                customer_name=customer_name, at=moment, user=user,
                new_value={"amount": rng.choice((500, 1000, 2000)), "currencyCode": "EUR"}, key=f"{key}/budget/{n}"))
        else:
            records.append(audit_record(
                operation="UpdateSubscription", resource_type="Subscription", customer_id=customer_id,
                customer_name=customer_name, at=moment, user=user,
                new_value={"id": plan_id, "friendlyName": "Azure plan", "status": "active",
                           "autoRenewEnabled": False}, key=f"{key}/sub/{n}"))
    horizon = now - dt.timedelta(days=90)
    return [r for r in records if _record_time(r) >= horizon]


def _record_time(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(record["operationDate"])[:26]).replace(tzinfo=dt.UTC)
