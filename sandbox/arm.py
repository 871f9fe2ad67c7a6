"""Azure Resource Manager stand-in: activity log, VM / VM scale set power, subscription cancel.

Reached with a delegated token issued in the subscription's (customer's) tenant; a token from any
other tenant gets ARM's real 401 ``InvalidAuthenticationTokenTenant`` naming the right
authority. Every request needs ``api-version`` (400 ``MissingApiVersionParameter`` otherwise).
Access is checked like Azure RBAC: without a role assignment for the token's principal at the
scope (scenario ``roleAssignments``; by default the partner's admin agent is Owner of every GDAP
customer's subscription, as admin-on-behalf-of gives it) the answer is 403 ``AuthorizationFailed``.

- ``GET /subscriptions``, VM and scale-set lists per subscription or resource group.

- ``GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values``: activity
  log events as Azure Monitor returns them, newest first, filtered by
  ``eventTimestamp ge '…' [and eventTimestamp le '…'] [and resourceUri|resourceGroupName|
  resourceProvider|correlationId|caller|status eq '…']`` and paged with ``nextLink``.
- VMs and scale sets: GET (``$expand=instanceView`` for VMs, ``/instanceView`` for both) and the
  long-running POST actions ``deallocate``, ``powerOff``, ``start`` (and ``restart`` for VMs):
  202 with ``Azure-AsyncOperation``, ``Location`` and ``Retry-After``. From the moment it is
  accepted the instance view shows the documented transitional power state
  (``PowerState/deallocating``, ``stopping`` or ``starting``), as Azure's does, so a caller that
  lost the operation (its worker died after the 202) can still see that it is under way. The
  operation answers ``InProgress`` for ``lro.polls`` looks and then ``Succeeded`` with the final
  state (``Failed`` puts the previous state back). A look is a poll of its status URL or a read of
  the resource it acts on: at Azure the operation ends on its own; here time passes when someone
  looks, which keeps tests deterministic and lets a reader that only watches the power state
  see the end.
- ``POST /subscriptions/{s}/providers/Microsoft.Subscription/cancel`` (and ``enable``): 200
  ``{"subscriptionId"}``; a cancelled subscription is read-only (409 ``ReadOnlyDisabledSubscription``).

Scenario section ``"arm"``::

    {"pageSize": 200, "lro": {"polls": 1, "retryAfterSeconds": 0},
     "subscriptions": [{"subscriptionId", "tenantId", "displayName", "state": "Enabled"}],  # optional
     "virtualMachines": [{"id", "location", "vmSize", "powerState": "running", "osType", "tags"}],
     "virtualMachineScaleSets": [{"id", "location", "sku", "capacity", "powerState"}],
     "activityLog": [{"eventTimestamp", "operationName", "resourceId", "caller", "status", ...}]}

Subscriptions come from the shared ``tenants`` section (each customer's ``subscriptions``);
``arm.subscriptions`` adds more or overrides them. Activity-log entries may be compact
(``operationName`` and ``status`` as strings, ``caller`` plus optional ``callerObjectId`` /
``callerAppId``); they are expanded to Azure Monitor's full shape.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from sandbox import history, ids
from sandbox.core import HttpError, Request, Response, Service, json_response, route
from sandbox.paging import offset_token, read_offset_token

ARM_AUDIENCES = ("https://management.azure.com", "https://management.azure.com/",
                 "https://management.core.windows.net/", "https://management.core.windows.net")
MAX_WINDOW = dt.timedelta(days=90)
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?", re.IGNORECASE)
_DISPLAY = {
    "running": "VM running", "deallocated": "VM deallocated", "stopped": "VM stopped",
    "starting": "VM starting", "stopping": "VM stopping", "deallocating": "VM deallocating",
}
# The power state each action leaves a VM or scale set in, and the one shown while it runs.
_RESULT_STATE = {"deallocate": "deallocated", "poweroff": "stopped", "start": "running", "restart": "running"}
_TRANSITIONAL_STATE = {"deallocate": "deallocating", "poweroff": "stopping", "start": "starting",
                       "restart": "starting"}
_OPERATION_NAMES = {
    "Microsoft.Compute/virtualMachines/write": "Create or Update Virtual Machine",
    "Microsoft.Compute/virtualMachines/delete": "Delete Virtual Machine",
    "Microsoft.Compute/virtualMachines/start/action": "Start Virtual Machine",
    "Microsoft.Compute/virtualMachines/deallocate/action": "Deallocate Virtual Machine",
    "Microsoft.Compute/virtualMachines/restart/action": "Restart Virtual Machine",
    "Microsoft.Compute/virtualMachines/powerOff/action": "Power Off Virtual Machine",
    "Microsoft.Compute/virtualMachineScaleSets/deallocate/action": "Deallocate Virtual Machine Scale Set",
    "Microsoft.Compute/virtualMachineScaleSets/powerOff/action": "Power Off Virtual Machine Scale Set",
    "Microsoft.Compute/virtualMachineScaleSets/start/action": "Start Virtual Machine Scale Set",
    "Microsoft.Subscription/cancel/action": "Cancel Subscription",
    "Microsoft.Subscription/enable/action": "Enable Subscription",
    "Microsoft.Compute/virtualMachineScaleSets/write": "Create or Update Virtual Machine Scale Set",
    "Microsoft.Authorization/roleAssignments/write": "Create role assignment",
    "Microsoft.Network/networkSecurityGroups/write": "Create or Update Network Security Group",
    "Microsoft.Network/publicIPAddresses/write": "Create or Update Public Ip Address",
    "Microsoft.Resources/deployments/write": "Create Deployment",
    "Microsoft.Storage/storageAccounts/listKeys/action": "List Storage Account Keys",
}
_RESOURCE_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?"
    r"(?:/providers/(?P<provider>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?)?",
    re.IGNORECASE,
)
_FILTER_CLAUSE = re.compile(r"\s*(?P<field>[A-Za-z]+)\s+(?P<op>eq|ge|le|gt|lt)\s+'(?P<value>(?:[^']|'')*)'\s*",
                            re.IGNORECASE)
_EVENT_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "resourceuri": lambda e: str(e["resourceId"]),
    "resourcegroupname": lambda e: str(e["resourceGroupName"]),
    "resourceprovider": lambda e: str(e["resourceProviderName"]["value"]),
    "correlationid": lambda e: str(e["correlationId"]),
    "caller": lambda e: str(e["caller"]),
    "status": lambda e: str(e["status"]["value"]),
}
_FILTER_FIELDS = ("eventtimestamp", "resourceuri", "resourcegroupname", "resourceprovider", "correlationid",
                  "caller", "status")


# Built-in roles by what they permit (Owner and Contributor: every action here; Reader: reads).
_ROLE_ACTIONS: dict[str, Callable[[str], bool]] = {
    "Owner": lambda action: True,
    "Contributor": lambda action: not action.lower().startswith("microsoft.authorization/"),
    "Reader": lambda action: action.lower().endswith("/read"),
}
_COMPUTE_PATH = re.compile(
    r"(?P<scope>/subscriptions/[^/]+(?:/resourceGroups/[^/]+)?/providers/Microsoft\.Compute/"
    r"(?P<kind>virtualMachines|virtualMachineScaleSets)(?:/(?P<name>[^/]+))?)(?:/(?P<verb>[^/]+))?",
    re.IGNORECASE,
)


def _required_action(request: Request) -> tuple[str, str]:
    """The RBAC action a request needs and the scope it acts on, as Azure names them."""
    sub = request.params["sub"]
    path = request.path.rstrip("/")
    if "/providers/microsoft.subscription/" in path.lower():
        action = request.params.get("action", "cancel").lower()
        return f"Microsoft.Subscription/{action}/action", f"/subscriptions/{sub}"
    if "/providers/microsoft.insights/" in path.lower():
        return "Microsoft.Insights/eventtypes/values/read", f"/subscriptions/{sub}"
    if "/operations/" in path.lower():
        return "Microsoft.Compute/locations/operations/read", f"/subscriptions/{sub}"
    match = _COMPUTE_PATH.fullmatch(path)
    if match:
        kind = "virtualMachines" if match["kind"].lower() == "virtualmachines" else "virtualMachineScaleSets"
        verb = match["verb"]
        if request.method == "POST" and verb:
            return f"Microsoft.Compute/{kind}/{verb}/action", match["scope"]
        return f"Microsoft.Compute/{kind}/read", match["scope"]
    return "Microsoft.Resources/subscriptions/read", f"/subscriptions/{sub}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO 8601 timestamp (``Z``, offset or none = UTC; up to 7 fraction digits) as aware UTC."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?",
                         text.strip())
    if not match:
        raise ValueError(f"'{text}' is not an ISO 8601 timestamp")
    base, fraction, zone = match.groups()
    moment = dt.datetime.fromisoformat(base + (f".{fraction[:6]}" if fraction else ""))
    if zone and zone != "Z":
        return moment.replace(tzinfo=dt.datetime.fromisoformat("2000-01-01T00:00:00" + zone).tzinfo).astimezone(dt.UTC)
    return moment.replace(tzinfo=dt.UTC)


@dataclass
class _Resource:
    """A VM or scale set: its ARM id parts and mutable state."""

    kind: str  # "virtualMachines" | "virtualMachineScaleSets"
    id: str
    subscription: str
    resource_group: str
    name: str
    location: str
    power_state: str
    provisioning_state: str = "Succeeded"
    size: str = ""
    capacity: int = 1
    os_type: str = "Linux"
    tags: dict[str, str] = field(default_factory=dict)
    time_created: str = ""
    unique_id: str = ""


@dataclass
class _Operation:
    id: str
    subscription: str
    location: str
    action: str
    target: _Resource
    api_version: str
    started: dt.datetime
    polls_before_done: int
    previous_power_state: str = ""
    polls: int = 0
    status: str = "InProgress"
    ended: dt.datetime | None = None
    failure: tuple[str, str] | None = None


def _named(value: Any, localized: str | None = None) -> dict[str, str]:
    """ARM's {value, localizedValue} pair; a dict is kept as it is."""
    if isinstance(value, dict):
        return {"value": str(value.get("value", "")), "localizedValue": str(value.get("localizedValue",
                                                                                  value.get("value", "")))}
    return {"value": str(value), "localizedValue": localized or str(value)}


class ArmService(Service):
    """ARM: activity log, VM and scale-set power operations and subscription cancel on one port."""

    name: ClassVar[str] = "arm"
    audiences: ClassVar[tuple[str, ...]] = ARM_AUDIENCES

    page_size: int
    lro_polls: int
    lro_retry_after: int
    _subscriptions: dict[str, dict[str, Any]]
    _resources: dict[str, _Resource]
    _resource_groups: set[tuple[str, str]]
    _events: list[dict[str, Any]]
    _operations: dict[str, _Operation]
    _fail_next: list[tuple[str, str]]

    # -- state ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the scenario's subscriptions, resources and activity log; operations are dropped."""
        section = copy.deepcopy(self.section)
        lro = section.get("lro", {})
        self.page_size = int(section.get("pageSize", 200))
        self.lro_polls = int(lro.get("polls", 1))
        self.lro_retry_after = int(lro.get("retryAfterSeconds", 0))
        self._subscriptions = {}
        for customer in self.sandbox.scenario.get("tenants", {}).get("customers", []):
            for sub in customer.get("subscriptions", []):
                self._subscriptions[str(sub["id"]).lower()] = {
                    "subscriptionId": str(sub["id"]), "tenantId": str(customer["id"]).lower(),
                    "displayName": sub.get("name", sub["id"]), "state": "Enabled",
                }
        for sub in section.get("subscriptions", []):
            sub_id = str(sub["subscriptionId"]).lower()
            self._subscriptions[sub_id] = {
                "subscriptionId": str(sub["subscriptionId"]), "tenantId": str(sub["tenantId"]).lower(),
                "displayName": sub.get("displayName", sub["subscriptionId"]), "state": sub.get("state", "Enabled"),
            }
        self._resources = {}
        self._resource_groups = set()
        for kind in ("virtualMachines", "virtualMachineScaleSets"):
            for raw in section.get(kind, []):
                resource = self._resource_from(kind, raw)
                self._resources[resource.id.lower()] = resource
                self._resource_groups.add((resource.subscription.lower(), resource.resource_group.lower()))
        for group in section.get("resourceGroups", []):
            match = _RESOURCE_ID.fullmatch(group)
            if match and match["rg"]:
                self._resource_groups.add((match["sub"].lower(), match["rg"].lower()))
        self._events = [self._expand_event(raw) for raw in section.get("activityLog", [])]
        self._operations = {}
        self._fail_next = []
        self._assignments = [self._assignment_from(raw) for raw in section.get("roleAssignments",
                                                                                self._default_assignments())]
        self._started_at = _now()
        self.history_days = int((section.get("history") or {}).get("days", 0))
        self.history_seed = int((section.get("history") or {}).get("seed", 13))
        self._profiles: dict[str, history.Profile] = {}
        self._synthetic = 0
        self.quota_limits = {str(loc).lower(): {str(k): int(v) for k, v in limits.items()}
                             for loc, limits in (section.get("quotaLimits") or {}).items()}
        # Azure Resource Manager's token bucket for subscription reads (bucket 250, refill 25 per second).
        self.read_bucket = float(section.get("readBucket", 250))
        self.read_refill = float(section.get("readRefillPerSecond", 25))
        self._reads: dict[str, tuple[float, float]] = {}
        self.partner_domain = str(self.sandbox.scenario.get("tenants", {}).get("partner", {}).get("domain", ""))
        if self.history_days:
            domains = {str(c["id"]).lower(): (str(c.get("domain", "")), c.get("regions"))
                       for c in self.sandbox.scenario.get("tenants", {}).get("customers", [])}
            for sub in self._subscriptions.values():
                domain, regions = domains.get(sub["tenantId"], ("", None))
                ordinary = history.profile(sub["subscriptionId"], sub["tenantId"], domain, seed=self.history_seed,
                                           regions=tuple(regions) if regions else None)
                self._profiles[sub["subscriptionId"].lower()] = ordinary
                self._events += [self._expand_event(raw) for raw in
                                 history.ordinary_events(ordinary, now=self._started_at, days=self.history_days,
                                                         seed=self.history_seed)]
        for raw_burst in section.get("bursts", []):
            self._burst(raw_burst)
        self._events.sort(key=lambda e: parse_timestamp(e["eventTimestamp"]), reverse=True)

    def _default_assignments(self) -> list[dict[str, Any]]:
        """Without ``arm.roleAssignments``: admin-on-behalf-of, the partner's admin agent is Owner of
        every subscription of a customer the partner has a GDAP (or DAP) relationship with."""
        agent = str(self.sandbox.scenario.get("entra", {}).get("partner_user", {}).get("oid", ids.ADMIN_AGENT_USER_ID))
        return [{"scope": f"/subscriptions/{sub['id']}", "principalId": agent, "roleDefinitionName": "Owner"}
                for customer in self.sandbox.scenario.get("tenants", {}).get("customers", [])
                if customer.get("gdap", True) for sub in customer.get("subscriptions", [])]

    @staticmethod
    def _assignment_from(raw: dict[str, Any]) -> dict[str, str]:
        role = str(raw.get("roleDefinitionName", "Owner"))
        if role not in _ROLE_ACTIONS:
            raise ValueError(f"arm.roleAssignments: role {role!r} is not one of {', '.join(_ROLE_ACTIONS)}")
        return {"scope": str(raw["scope"]).rstrip("/"), "principalId": str(raw["principalId"]).lower(),
                "roleDefinitionName": role}

    @staticmethod
    def _resource_from(kind: str, raw: dict[str, Any]) -> _Resource:
        match = _RESOURCE_ID.fullmatch(raw["id"])
        if not match or not match["rg"] or not match["name"]:
            raise ValueError(f"arm.{kind}: {raw['id']!r} is not a resource id")
        return _Resource(
            kind=kind, id=raw["id"], subscription=match["sub"], resource_group=match["rg"], name=match["name"],
            location=raw.get("location", "eastus"), power_state=raw.get("powerState", "running"),
            size=raw.get("vmSize") or raw.get("sku", "Standard_D2s_v5"), capacity=int(raw.get("capacity", 1)),
            os_type=raw.get("osType", "Linux"), tags=dict(raw.get("tags", {})),
            time_created=raw.get("timeCreated", _iso(_now())),
            unique_id=str(uuid.uuid5(uuid.NAMESPACE_URL, raw["id"].lower())),
        )

    def _expand_event(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A full Azure Monitor activity-log event from a (possibly compact) scenario entry."""
        resource_id = str(raw["resourceId"])
        match = _RESOURCE_ID.fullmatch(resource_id)
        if not match:
            raise ValueError(f"arm.activityLog: {resource_id!r} is not a resource id")
        subscription = match["sub"]
        tenant = self._subscriptions.get(subscription.lower(), {}).get("tenantId", "")
        operation = _named(raw["operationName"], _OPERATION_NAMES.get(str(raw["operationName"])))
        status = _named(raw.get("status", "Succeeded"))
        provider = match["provider"] or "Microsoft.Resources"
        resource_type = f"{provider}/{match['type']}" if match["type"] else "Microsoft.Resources/subscriptions"
        timestamp = parse_timestamp(str(raw["eventTimestamp"]))
        event_id = raw.get("eventDataId") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_id}/{timestamp}/"
                                                                                f"{operation['value']}/{status['value']}"))
        correlation = raw.get("correlationId") or str(uuid.uuid5(uuid.NAMESPACE_OID, event_id))
        caller = str(raw["caller"])
        claims = raw.get("claims")
        if claims is None:
            claims = {
                "aud": "https://management.core.windows.net/", "iss": f"https://sts.windows.net/{tenant}/",
                "http://schemas.microsoft.com/identity/claims/tenantid": tenant,
                "appid": raw.get("callerAppId", ids.PARTNER_APP_CLIENT_ID if "@" in caller else ""),
                "ipaddr": raw.get("ipAddress", "203.0.113.7"),
            }
            if raw.get("callerHomeTenantId"):  # a guest or foreign principal (the partner's admin agent, GDAP)
                claims["http://schemas.microsoft.com/identity/claims/identityprovider"] = (
                    f"https://sts.windows.net/{raw['callerHomeTenantId']}/")
            if "@" in caller:
                claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = caller
                claims["name"] = raw.get("callerName", caller.split("@", maxsplit=1)[0])
                claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] = raw.get("callerObjectId", "")
            else:
                claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] = caller
                claims["idtyp"] = "app"
        began = status["value"].lower() == "started"
        sub_status = raw.get("subStatus", "" if began else ("Created" if operation["value"].endswith("/write")
                                                             else "OK"))
        sub_status_localized = {"Created": "Created (HTTP Status Code: 201)", "OK": "OK (HTTP Status Code: 200)"}
        ticks = int((timestamp - dt.datetime(1, 1, 1, tzinfo=dt.UTC)).total_seconds() * 10_000_000)
        event = {
            "authorization": raw.get("authorization", {"action": operation["value"], "scope": resource_id}),
            "caller": caller,
            "channels": "Operation",
            "claims": claims,
            "correlationId": correlation,
            "description": raw.get("description", ""),
            "eventDataId": event_id,
            "eventName": _named("BeginRequest" if began else "EndRequest", "Begin request" if began else "End request"),
            "category": _named(raw.get("category", "Administrative")),
            "eventTimestamp": _iso(timestamp),
            "id": f"{resource_id}/events/{event_id}/ticks/{ticks}",
            "level": raw.get("level", "Informational"),
            "operationId": raw.get("operationId", correlation),
            "operationName": operation,
            "resourceGroupName": match["rg"] or "",
            "resourceProviderName": _named(provider),
            "resourceType": _named(resource_type),
            "resourceId": resource_id,
            "status": status,
            "subStatus": _named(sub_status, sub_status_localized.get(sub_status, sub_status)),
            "submissionTimestamp": raw.get("submissionTimestamp") or _iso(timestamp + dt.timedelta(seconds=12)),
            "subscriptionId": subscription,
            "tenantId": tenant,
            "properties": raw.get("properties", {
                "eventCategory": "Administrative", "entity": resource_id, "message": operation["value"],
                "hierarchy": f"{tenant}/{subscription}", **({} if began else {"statusCode": sub_status}),
                # Azure writes the bodies as JSON strings: the request on the Started entry, the response on
                # the Succeeded one.
                **({"requestbody": json.dumps(raw["requestBody"])} if "requestBody" in raw else {}),
                **({"responseBody": json.dumps(raw["responseBody"])} if "responseBody" in raw else {}),
            }),
            "relatedEvents": [],
        }
        if began:
            event["httpRequest"] = {"clientRequestId": str(uuid.uuid5(uuid.NAMESPACE_DNS, event_id)),
                                    "clientIpAddress": str(claims.get("ipaddr", "203.0.113.7")),
                                    "method": "POST" if "/action" in operation["value"].lower() else "PUT"}
        return event

    # -- Python API for tests and the dev stack -----------------------------------------------------

    def power_state(self, resource_id: str) -> str:
        with self.lock:
            return self._resources[resource_id.lower()].power_state

    def subscription_state(self, subscription_id: str) -> str:
        with self.lock:
            return str(self._subscriptions[subscription_id.lower()]["state"])

    def role_assignments(self) -> list[dict[str, str]]:
        with self.lock:
            return copy.deepcopy(self._assignments)

    def add_role_assignment(self, scope: str, principal_id: str, role: str = "Owner") -> None:
        with self.lock:
            self._assignments.append(self._assignment_from({"scope": scope, "principalId": principal_id,
                                                            "roleDefinitionName": role}))

    def remove_role_assignments(self, scope: str) -> int:
        """Drop every role assignment at ``scope`` (e.g. the partner's access to a subscription)."""
        with self.lock:
            kept = [a for a in self._assignments if a["scope"].lower() != scope.rstrip("/").lower()]
            removed = len(self._assignments) - len(kept)
            self._assignments = kept
        return removed

    def fail_next_operation(self, code: str = "OperationPreempted", message: str = "The operation failed.") -> None:
        """Make the next long-running operation end in ``Failed`` with this error."""
        with self.lock:
            self._fail_next.append((code, message))

    def add_event(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Add an activity-log event (compact or full); returns the full event."""
        with self.lock:
            event = self._expand_event(raw)
            self._events.append(event)
            self._events.sort(key=lambda e: parse_timestamp(e["eventTimestamp"]), reverse=True)
            return copy.deepcopy(event)

    def add_raw_event(self, event: dict[str, Any]) -> None:
        """Serve ``event`` exactly as given (tests: malformed entries). It needs ``eventTimestamp`` and
        ``subscriptionId`` to be found by the window filter."""
        with self.lock:
            self._events.append(copy.deepcopy(event))
            self._events.sort(key=lambda e: parse_timestamp(e["eventTimestamp"]), reverse=True)

    def add_burst(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Write a burst now (or at ``raw["at"]``): VMs created (running) and their activity-log entries.

        ``raw``: ``subscriptionId``, ``principalId``, optional ``principalName`` (a UPN; else a service
        principal), ``count``, ``regions``, ``vmSizes`` (or ``vmSize``), ``ownerGrant``, ``resourceGroup``,
        ``namePrefix``. Returns ``{"virtualMachines": [ids], "events": n}``.
        """
        with self.lock:
            created, written = self._burst(raw)
            self._events.sort(key=lambda e: parse_timestamp(e["eventTimestamp"]), reverse=True)
        return {"virtualMachines": created, "events": written}

    def _burst(self, raw: dict[str, Any]) -> tuple[list[str], int]:
        sub_id = str(raw["subscriptionId"])
        if sub_id.lower() not in self._subscriptions:
            raise ValueError(f"burst: subscription {sub_id} is not in the sandbox")
        principal_id = str(raw["principalId"]).lower()
        upn = str(raw.get("principalName") or "")
        principal = history.Principal(principal_id, upn, app_id=str(raw.get("appId") or ""))
        sizes = raw.get("vmSizes") or [raw.get("vmSize", "Standard_NC24ads_A100_v4")]
        count = int(raw.get("count", 1))
        # Without "at", the burst ends now (entries are 15 s apart): none of it lies in the future.
        at = parse_timestamp(str(raw["at"])) if raw.get("at") else _now() - dt.timedelta(seconds=15 * count + 70)
        vms, events = history.burst(
            subscription_id=self._subscriptions[sub_id.lower()]["subscriptionId"], principal=principal,
            regions=[str(r).lower() for r in raw.get("regions", ["eastus2"])], sizes=[str(s) for s in sizes],
            count=count, at=at, owner_grant=bool(raw.get("ownerGrant", False)),
            resource_group=str(raw.get("resourceGroup", "rg-compute")),
            name_prefix=str(raw.get("namePrefix", "vm-burst")), key=str(raw.get("key", f"burst/{at.isoformat()}")))
        for vm in vms:
            resource = self._resource_from("virtualMachines", vm)
            self._resources[resource.id.lower()] = resource
            self._resource_groups.add((resource.subscription.lower(), resource.resource_group.lower()))
        self._events += [self._expand_event(e) for e in events]
        if raw.get("ownerGrant"):
            self._assignments.append(self._assignment_from({"scope": f"/subscriptions/{sub_id}",
                                                            "principalId": principal_id,
                                                            "roleDefinitionName": "Owner"}))
        return [vm["id"] for vm in vms], len(events)

    def add_synthetic(self, count: int) -> list[dict[str, str]]:
        """Add ``count`` synthetic customer subscriptions (benchmarks); their history is made on read.

        Returns the new ``{"customerId", "subscriptionId", "planId"}`` triples. Partner Center and
        Entra learn about them through :meth:`sandbox.core.Sandbox` services (``add_synthetic``).
        """
        added: list[dict[str, str]] = []
        with self.lock:
            for index in range(self._synthetic, self._synthetic + count):
                tenant, sub_id, plan = history.synthetic_ids(index)
                self._subscriptions[sub_id] = {"subscriptionId": sub_id, "tenantId": tenant,
                                               "displayName": f"Synthetic {index:05d}", "state": "Enabled"}
                self._assignments.append({"scope": f"/subscriptions/{sub_id}",
                                          "principalId": ids.ADMIN_AGENT_USER_ID.lower(),
                                          "roleDefinitionName": "Owner"})
                added.append({"customerId": tenant, "subscriptionId": sub_id, "planId": plan})
            self._synthetic += count
        return added

    def ordinary_history(self, subscription_id: str) -> list[dict[str, Any]]:
        """The generated day-to-day entries of a subscription (compact form), as the log serves them."""
        with self.lock:
            ordinary = self._profile(subscription_id)
            if ordinary is None or not self.history_days:
                return []
            return history.ordinary_events(ordinary, now=self._started_at, days=self.history_days,
                                           seed=self.history_seed)

    def _profile(self, sub_id: str) -> history.Profile | None:
        found = self._profiles.get(sub_id.lower())
        if found is None and history.synthetic_index(sub_id) is not None and sub_id.lower() in self._subscriptions:
            sub = self._subscriptions[sub_id.lower()]
            found = history.profile(sub["subscriptionId"], sub["tenantId"], seed=self.history_seed)
        return found

    def _log_own_operation(self, request: Request, resource_id: str, operation: str) -> None:
        """What the stand-in itself does for a caller (power actions, cancel) shows in the activity log,
        with the caller the token names, as Azure logs it."""
        claims = request.claims or {}
        upn = str(claims.get("upn") or claims.get("unique_name") or "")
        entry: dict[str, Any] = {
            "eventTimestamp": _iso(_now()), "operationName": operation, "resourceId": resource_id,
            "caller": upn or str(claims.get("oid", "")), "callerAppId": str(claims.get("appid") or ""),
            "ipAddress": request.client or "127.0.0.1",
        }
        if upn:
            entry["callerObjectId"] = str(claims.get("oid", ""))
        home = ""
        if upn and self.partner_domain and upn.lower().endswith("@" + self.partner_domain.lower()):
            home = str(self.sandbox.scenario.get("tenants", {}).get("partner", {}).get("id", ids.PARTNER_TENANT_ID))
        if home:
            entry["callerHomeTenantId"] = home
        self._events.append(self._expand_event({**entry, "status": "Accepted"}))
        self._events.sort(key=lambda e: parse_timestamp(e["eventTimestamp"]), reverse=True)

    # -- shapes and auth ----------------------------------------------------------------------------

    def error(self, err: HttpError) -> Response:
        headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-failure-cause": "gateway", **(err.headers or {})}
        return json_response(err.status, {"error": {"code": err.code, "message": err.message}}, headers)

    def unauthorized(self, reason: str) -> Response:
        lowered = reason.lower()
        if "no bearer" in lowered or "missing" in lowered:
            code, message = "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        elif "expired" in lowered:
            code, message = "ExpiredAuthenticationToken", ("The access token expiry UTC time is earlier than "
                                                           "current UTC time.")
        elif "audience" in lowered:
            code, message = "InvalidAuthenticationToken", ("The access token has been obtained for wrong audience "
                                                           "or resource. It should exactly match with one of the "
                                                           "allowed audiences 'https://management.core.windows.net/',"
                                                           "'https://management.azure.com/'.")
        else:
            code, message = "InvalidAuthenticationToken", f"The access token is invalid: {reason}."
        challenge = ('Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
                     f'error_description="{message}"')
        return self.error(HttpError(401, code, message, {"WWW-Authenticate": challenge}))

    def authorize(self, request: Request, claims: dict[str, Any]) -> None:
        api_version = request.arg("api-version")
        if not api_version:
            raise HttpError(400, "MissingApiVersionParameter",
                            "The api-version query parameter (?api-version=) is required for all requests.")
        if not _API_VERSION.fullmatch(api_version):
            raise HttpError(400, "InvalidApiVersionParameter",
                            f"The api-version '{api_version}' is invalid. The supported versions are dates like "
                            "'2024-07-01'.")
        sub_id = request.params.get("sub")
        if sub_id is None:
            return
        with self.lock:
            subscription = self._subscriptions.get(sub_id.lower())
        if subscription is None:
            raise HttpError(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")
        tenant = str(claims.get("tid", "")).lower()
        if tenant != subscription["tenantId"]:
            owner = subscription["tenantId"]
            raise HttpError(401, "InvalidAuthenticationTokenTenant", (
                f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the tenant "
                f"'https://sts.windows.net/{owner}/' associated with this subscription. Please use the authority "
                f"(URL) 'https://login.windows.net/{owner}' to get the token."), {
                "WWW-Authenticate": f'Bearer authorization_uri="https://login.windows.net/{owner}", '
                                    'error="invalid_token", error_description="The access token is from the wrong '
                                    'issuer."'})
        if request.method in ("GET", "HEAD"):
            self._take_read(subscription["subscriptionId"], request)
        action, scope = _required_action(request)
        if not self._allowed(claims, action, scope):
            principal = str(claims.get("oid", ""))
            client = str(claims.get("upn") or claims.get("appid") or principal)
            raise HttpError(403, "AuthorizationFailed", (
                f"The client '{client}' with object id '{principal}' does not have authorization to perform action "
                f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
                "refresh your credentials."))

    def _allowed(self, claims: dict[str, Any], action: str, scope: str) -> bool:
        """Azure RBAC, simplified: a role assignment to the token's principal (oid or one of its
        groups) at the scope or above, whose role permits the action."""
        principals = {str(claims.get("oid", "")).lower(), *(str(g).lower() for g in claims.get("groups", []) or [])}
        wanted = scope.lower().rstrip("/")
        with self.lock:
            assignments = list(self._assignments)
        for assignment in assignments:
            if assignment["principalId"] not in principals:
                continue
            granted = assignment["scope"].lower()
            if wanted != granted and not wanted.startswith(granted + "/"):
                continue
            if _ROLE_ACTIONS[assignment["roleDefinitionName"]](action):
                return True
        return False

    def _readable_subscriptions(self, claims: dict[str, Any]) -> list[dict[str, Any]]:
        tenant = str(claims.get("tid", "")).lower()
        return [sub for sub in self._subscriptions.values() if sub["tenantId"] == tenant
                and self._allowed(claims, "Microsoft.Resources/subscriptions/read",
                                  f"/subscriptions/{sub['subscriptionId']}")]

    def _take_read(self, sub_id: str, request: Request) -> None:
        """Spend one token of the subscription's read bucket; 429 with Retry-After when it is empty."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self._reads.get(sub_id.lower(), (self.read_bucket, now))
            tokens = min(self.read_bucket, tokens + (now - last) * self.read_refill)
            if tokens < 1:
                self._reads[sub_id.lower()] = (tokens, now)
                wait = max(1, int((1 - tokens) / self.read_refill + 0.999)) if self.read_refill > 0 else 60
                raise HttpError(429, "SubscriptionRequestsThrottled", (
                    f"Number of 'read' requests for subscription '{sub_id}' actor "
                    f"'{(request.claims or {}).get('oid')}' exceeded. Please try again after '{wait}' seconds "
                    "after the request was throttled."), {
                    "Retry-After": str(wait), "x-ms-ratelimit-remaining-subscription-reads": "0"})
            self._reads[sub_id.lower()] = (tokens - 1, now)
            request.params["_reads_left"] = str(int(tokens - 1))

    def set_read_bucket(self, *, bucket: float | None = None, refill_per_second: float | None = None,
                        remaining: dict[str, float] | None = None) -> None:
        """Change the read throttling (tests): bucket size, refill rate, or a subscription's tokens now."""
        with self.lock:
            if bucket is not None:
                self.read_bucket = float(bucket)
            if refill_per_second is not None:
                self.read_refill = float(refill_per_second)
            for sub_id, tokens in (remaining or {}).items():
                self._reads[sub_id.lower()] = (float(tokens), time.monotonic())

    def _ok(self, status: int, obj: Any, request: Request, headers: dict[str, str] | None = None) -> Response:
        base = self._ids(request)
        if "_reads_left" in request.params:
            base["x-ms-ratelimit-remaining-subscription-reads"] = request.params["_reads_left"]
        base.update(headers or {})
        return json_response(status, obj, base)

    @staticmethod
    def _ids(request: Request) -> dict[str, str]:
        request_id = str(uuid.uuid4())
        return {"x-ms-request-id": request_id,
                "x-ms-correlation-request-id": request.headers.get("x-ms-correlation-request-id") or request_id}

    def _writable(self, sub_id: str) -> None:
        if self._subscriptions[sub_id.lower()]["state"] != "Enabled":
            raise HttpError(409, "ReadOnlyDisabledSubscription", (
                f"The subscription '{sub_id}' is disabled and therefore marked as read only. You cannot perform "
                "any write actions on this subscription until it is re-enabled."))

    # -- subscriptions ------------------------------------------------------------------------------

    @route("GET", r"/subscriptions/(?P<sub>[^/]+)")
    def get_subscription(self, request: Request) -> Response:
        with self.lock:
            body = self._subscription_view(self._subscriptions[request.params["sub"].lower()])
        return self._ok(200, body, request)

    @route("GET", r"/subscriptions")
    def list_subscriptions(self, request: Request) -> Response:
        """The subscriptions of the token's tenant the caller has a role on (as Azure lists them)."""
        with self.lock:
            subs = self._readable_subscriptions(request.claims or {})
            body = {"value": [self._subscription_view(sub) for sub in subs], "count": {"type": "Total",
                                                                                       "value": len(subs)}}
        return self._ok(200, body, request)

    def _subscription_view(self, sub: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub['subscriptionId']}", "authorizationSource": "RoleBased",
            "managedByTenants": [{"tenantId": ids.PARTNER_TENANT_ID}], "subscriptionId": sub["subscriptionId"],
            "tenantId": sub["tenantId"], "displayName": sub["displayName"], "state": sub["state"],
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "CSP_2015-05-01",
                                     "spendingLimit": "Off"},
        }

    @route("POST", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Subscription/(?P<action>cancel|enable)")
    def cancel_subscription(self, request: Request) -> Response:
        with self.lock:
            sub = self._subscriptions[request.params["sub"].lower()]
            sub["state"] = "Disabled" if request.params["action"].lower() == "cancel" else "Enabled"
            body = {"subscriptionId": sub["subscriptionId"]}
            self._log_own_operation(request, f"/subscriptions/{sub['subscriptionId']}",
                                    f"Microsoft.Subscription/{request.params['action'].lower()}/action")
        return self._ok(200, body, request)

    # -- activity log -------------------------------------------------------------------------------

    @route("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Insights/eventtypes/management/values")
    def activity_log(self, request: Request) -> Response:
        clauses = self._parse_filter(request.arg("$filter"))
        since = max((v for f, o, v in clauses if f == "eventtimestamp" and o in ("ge", "gt")), default=None)
        until = min((v for f, o, v in clauses if f == "eventtimestamp" and o in ("le", "lt")), default=None)
        if since is None:
            raise HttpError(400, "BadRequest", "The $filter must include eventTimestamp ge '<start time>', e.g. "
                            "$filter=eventTimestamp ge '2024-05-01T00:00:00Z' and eventTimestamp le "
                            "'2024-05-02T00:00:00Z'.")
        start = parse_timestamp(since)
        end = parse_timestamp(until) if until else _now()
        if end - start > MAX_WINDOW:
            raise HttpError(400, "BadRequest", "The time range of the query cannot exceed 90 days.")
        if start < _now() - MAX_WINDOW:
            raise HttpError(400, "BadRequest", "The start time of the query must be within the last 90 days.")
        offset = read_offset_token(request.arg("$skipToken"),
                                   message="Invalid $skipToken: follow nextLink as returned.")
        select = [s.strip() for s in (request.arg("$select") or "").split(",") if s.strip()]
        sub_id = request.params["sub"].lower()
        with self.lock:
            events = self._events
            synthetic = (history.synthetic_index(sub_id) is not None and self.history_days
                         and start < self._started_at - history.HISTORY_GAP)  # the window reaches the history
            ordinary = self._profile(sub_id) if synthetic else None
            if ordinary is not None:  # made on read: nothing stored per synthetic subscription
                events = sorted(self._events + [self._expand_event(raw) for raw in history.ordinary_events(
                    ordinary, now=self._started_at, days=self.history_days, seed=self.history_seed)],
                    key=lambda e: e["eventTimestamp"], reverse=True)
            matching = [e for e in events
                        if e["subscriptionId"].lower() == sub_id and self._matches(e, clauses, start, end)]
        page = matching[offset:offset + self.page_size]
        if select:
            page = [{k: v for k, v in e.items() if k in select} for e in page]
        body: dict[str, Any] = {"value": copy.deepcopy(page)}
        if offset + self.page_size < len(matching):
            params = [(k, v) for k, values in request.query.items() if k.lower() != "$skiptoken" for v in values]
            params.append(("$skipToken", offset_token(offset + self.page_size)))
            body["nextLink"] = f"{self.base_url}{request.path}?{urlencode(params)}"
        return self._ok(200, body, request)

    @staticmethod
    def _parse_filter(text: str | None) -> list[tuple[str, str, str]]:
        if not text or not text.strip():
            raise HttpError(400, "BadRequest", "The $filter query parameter is required, e.g. "
                            "$filter=eventTimestamp ge '2024-05-01T00:00:00Z'.")
        parts = re.split(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", text.strip(), flags=re.IGNORECASE)
        clauses: list[tuple[str, str, str]] = []
        for part in parts:
            match = _FILTER_CLAUSE.fullmatch(part)
            if not match:
                raise HttpError(400, "BadRequest", f"The $filter clause \"{part.strip()}\" is invalid; use "
                                "<field> eq|ge|le '<value>' joined by 'and'.")
            name = match["field"].lower()
            if name not in _FILTER_FIELDS:
                raise HttpError(400, "BadRequest", f"The $filter field '{match['field']}' is not supported; use "
                                "eventTimestamp, resourceUri, resourceGroupName, resourceProvider, correlationId, "
                                "caller or status.")
            operator = match["op"].lower()
            if name != "eventtimestamp" and operator != "eq":
                raise HttpError(400, "BadRequest", f"'{match['field']}' supports only eq.")
            value = match["value"].replace("''", "'")
            if name == "eventtimestamp":
                try:
                    parse_timestamp(value)
                except ValueError as exc:
                    raise HttpError(400, "BadRequest", f"Invalid eventTimestamp in $filter: {exc}.") from None
            clauses.append((name, operator, value))
        return clauses

    @staticmethod
    def _matches(event: dict[str, Any], clauses: list[tuple[str, str, str]], start: dt.datetime,
                 end: dt.datetime) -> bool:
        moment = parse_timestamp(event["eventTimestamp"])
        if moment < start or moment > end:
            return False
        for name, operator, value in clauses:
            if name == "eventtimestamp":
                bound = parse_timestamp(value)
                if (operator == "gt" and moment <= bound) or (operator == "lt" and moment >= bound):
                    return False
            elif _EVENT_FIELDS[name](event).lower() != value.lower().rstrip("/"):
                return False
        return True


    # -- compute usages -----------------------------------------------------------------------------

    @route("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/usages")
    def compute_usages(self, request: Request) -> Response:
        """``Usage - List``: every usage row of the region, ``currentValue`` from the VMs this stand-in holds
        (allocated ones: deallocated VMs hold no cores) plus the subscription's standing fleet."""
        location = request.params["loc"].lower()
        sub_id = request.params["sub"].lower()
        offset = read_offset_token(request.arg("$skipToken"),
                                   message="Invalid $skipToken: follow nextLink as returned.")
        with self.lock:
            rows = self._usages(sub_id, location)
        page = rows[offset:offset + self.page_size * 4]
        body: dict[str, Any] = {"value": page}
        if offset + len(page) < len(rows):
            params = [(k, v) for k, values in request.query.items() if k.lower() != "$skiptoken" for v in values]
            params.append(("$skipToken", offset_token(offset + len(page))))
            body["nextLink"] = f"{self.base_url}{request.path}?{urlencode(params)}"
        return self._ok(200, body, request)

    def _usages(self, sub_id: str, location: str) -> list[dict[str, Any]]:
        held: list[tuple[str, int]] = []  # (size, instances)
        for resource in self._resources.values():
            if resource.subscription.lower() == sub_id and resource.location.lower() == location \
                    and resource.power_state not in ("deallocated", "deallocating"):
                held.append((resource.size, resource.capacity if resource.kind == "virtualMachineScaleSets" else 1))
        ordinary = self._profile(sub_id)
        if ordinary is not None:
            held += [(size, 1) for _, size, region in ordinary.fleet if region == location]
        scale_sets = sum(1 for r in self._resources.values() if r.kind == "virtualMachineScaleSets"
                         and r.subscription.lower() == sub_id and r.location.lower() == location)
        cores: dict[str, int] = {}
        for size, instances in held:
            family, _, vcpus = history.VM_SIZES.get(size, ("standardDSv5Family", "", 2))
            cores[family] = cores.get(family, 0) + vcpus * instances
        limits = {**history.DEFAULT_LIMITS, **self.quota_limits.get(location, {})}
        current = {"availabilitySets": 0, "cores": sum(cores.values()),
                   "virtualMachines": sum(n for _, n in held), "virtualMachineScaleSets": scale_sets}
        rows = [{"limit": limits.get(name, 0), "unit": "Count", "currentValue": current[name],
                 "name": {"value": name, "localizedValue": localized}} for name, localized in history.FIXED_USAGES]
        families: dict[str, str] = {}
        for family, localized, _ in history.VM_SIZES.values():
            families.setdefault(family, localized)
        rows += [{"limit": limits.get(family, 0), "unit": "Count", "currentValue": cores.get(family, 0),
                  "name": {"value": family, "localizedValue": localized}} for family, localized in families.items()]
        return rows

    # -- control (tests and benchmarks; loopback only) ------------------------------------------------

    @route("POST", r"/_sandbox/arm/bursts", auth=False)
    def post_burst(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not body.get("subscriptionId") or not body.get("principalId"):
            raise HttpError(400, "BadRequest", "A burst needs subscriptionId and principalId (and count, regions, "
                            "vmSize or vmSizes, optional principalName and ownerGrant).")
        try:
            return json_response(201, self.add_burst(body))
        except (ValueError, TypeError) as exc:
            raise HttpError(400, "BadRequest", str(exc)) from None

    @route("POST", r"/_sandbox/synthetic", auth=False)
    def post_synthetic(self, request: Request) -> Response:
        body = request.json()
        count = body.get("count") if isinstance(body, dict) else None
        if not isinstance(count, int) or not 1 <= count <= 20000:
            raise HttpError(400, "BadRequest", "Send {\"count\": N} with 1 <= N <= 20000.")
        added = self.sandbox_add_synthetic(count)
        return json_response(201, {"added": len(added), "first": added[0], "last": added[-1]})

    def sandbox_add_synthetic(self, count: int) -> list[dict[str, str]]:
        """Synthetic customers in every stand-in that needs them: ARM, Partner Center and Entra."""
        added = self.add_synthetic(count)
        for service in self.sandbox.services.values():
            hook = getattr(service, "add_synthetic_customers", None)
            if hook is not None:
                hook(added)
        return added

    @route("GET", r"/_sandbox/arm/throttling", auth=False)
    def get_throttling(self, request: Request) -> Response:
        return json_response(200, {"readBucket": self.read_bucket, "readRefillPerSecond": self.read_refill})

    @route("POST", r"/_sandbox/arm/throttling", auth=False)
    def post_throttling(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "BadRequest", "Send {readBucket, readRefillPerSecond, remaining: {sub: n}}.")
        try:
            self.set_read_bucket(bucket=body.get("readBucket"), refill_per_second=body.get("readRefillPerSecond"),
                                 remaining=body.get("remaining"))
        except (TypeError, ValueError, AttributeError) as exc:
            raise HttpError(400, "BadRequest", f"Invalid throttling settings: {exc}") from None
        return self.get_throttling(request)

    # -- VMs and scale sets -------------------------------------------------------------------------

    _RG = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
    _VM = _RG + r"/(?P<kind>virtualMachines|virtualMachineScaleSets)/(?P<name>[^/]+)"

    def _resource(self, request: Request) -> _Resource:
        params = request.params
        kind = "virtualMachines" if params["kind"].lower() == "virtualmachines" else "virtualMachineScaleSets"
        resource_id = (f"/subscriptions/{params['sub']}/resourceGroups/{params['rg']}/providers/"
                       f"Microsoft.Compute/{kind}/{params['name']}")
        resource = self._resources.get(resource_id.lower())
        if resource is not None and resource.kind == kind:
            return resource
        if (params["sub"].lower(), params["rg"].lower()) not in self._resource_groups:
            raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{params['rg']}' could not be found.")
        raise HttpError(404, "ResourceNotFound", (
            f"The Resource 'Microsoft.Compute/{kind}/{params['name']}' under resource group '{params['rg']}' was "
            "not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"))

    @staticmethod
    def _statuses(resource: _Resource) -> list[dict[str, Any]]:
        provisioning = resource.provisioning_state
        return [
            {"code": f"ProvisioningState/{provisioning.lower()}", "level": "Info",
             "displayStatus": f"Provisioning {provisioning.lower()}", "time": resource.time_created},
            {"code": f"PowerState/{resource.power_state}", "level": "Info",
             "displayStatus": _DISPLAY.get(resource.power_state, resource.power_state)},
        ]

    def _vm_instance_view(self, resource: _Resource) -> dict[str, Any]:
        return {"computerName": resource.name, "osName": "ubuntu" if resource.os_type == "Linux" else "Windows",
                "statuses": self._statuses(resource)}

    def _scale_set_instance_view(self, resource: _Resource) -> dict[str, Any]:
        return {"virtualMachine": {"statusesSummary": [{"code": f"PowerState/{resource.power_state}",
                                                        "count": resource.capacity}]},
                "statuses": self._statuses(resource)[:1]}

    def _view(self, resource: _Resource, expand_instance_view: bool) -> dict[str, Any]:
        if resource.kind == "virtualMachines":
            properties: dict[str, Any] = {
                "vmId": resource.unique_id, "hardwareProfile": {"vmSize": resource.size},
                "storageProfile": {"osDisk": {"osType": resource.os_type, "name": f"{resource.name}_OsDisk_1",
                                              "createOption": "FromImage"}},
                "osProfile": {"computerName": resource.name, "adminUsername": "azureuser"},
                "provisioningState": resource.provisioning_state, "timeCreated": resource.time_created,
            }
            if expand_instance_view:
                properties["instanceView"] = self._vm_instance_view(resource)
            return {"name": resource.name, "id": resource.id, "type": "Microsoft.Compute/virtualMachines",
                    "location": resource.location, "tags": dict(resource.tags), "properties": properties}
        return {"name": resource.name, "id": resource.id, "type": "Microsoft.Compute/virtualMachineScaleSets",
                "location": resource.location, "tags": dict(resource.tags),
                "sku": {"name": resource.size, "tier": "Standard", "capacity": resource.capacity},
                "properties": {"uniqueId": resource.unique_id, "provisioningState": resource.provisioning_state,
                               "timeCreated": resource.time_created, "upgradePolicy": {"mode": "Manual"}}}

    @route("GET", r"/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?/providers/Microsoft\.Compute/"
                  r"(?P<kind>virtualMachines|virtualMachineScaleSets)")
    def list_resources(self, request: Request) -> Response:
        """VMs or scale sets of a subscription or resource group, paged with ``nextLink``."""
        kind = "virtualMachines" if request.params["kind"].lower() == "virtualmachines" else "virtualMachineScaleSets"
        sub, group = request.params["sub"].lower(), request.params.get("rg")
        offset = read_offset_token(request.arg("$skipToken"),
                                   message="Invalid $skipToken: follow nextLink as returned.")
        with self.lock:
            if group is not None and (sub, group.lower()) not in self._resource_groups:
                raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
            matching = [r for r in self._resources.values() if r.kind == kind and r.subscription.lower() == sub
                        and (group is None or r.resource_group.lower() == group.lower())]
            page = [self._view(r, False) for r in matching[offset:offset + self.page_size]]
        body: dict[str, Any] = {"value": page}
        if offset + self.page_size < len(matching):
            params = [(k, v) for k, values in request.query.items() if k.lower() != "$skiptoken" for v in values]
            params.append(("$skipToken", offset_token(offset + self.page_size)))
            body["nextLink"] = f"{self.base_url}{request.path}?{urlencode(params)}"
        return self._ok(200, body, request)

    @route("GET", _VM)
    def get_resource(self, request: Request) -> Response:
        expand = (request.arg("$expand") or "").lower()
        if expand and expand != "instanceview":
            raise HttpError(400, "InvalidParameter", f"The value '{request.arg('$expand')}' of parameter "
                            "'$expand' is not allowed. Allowed values are 'instanceView'.")
        with self.lock:
            resource = self._resource(request)
            self._observe(resource)
            if expand and resource.kind != "virtualMachines":
                raise HttpError(400, "InvalidParameter", "Scale sets have no $expand; GET .../instanceView instead.")
            body = self._view(resource, bool(expand))
        return self._ok(200, body, request)

    @route("GET", _VM + r"/instanceView")
    def get_instance_view(self, request: Request) -> Response:
        with self.lock:
            resource = self._resource(request)
            self._observe(resource)
            body = (self._vm_instance_view(resource) if resource.kind == "virtualMachines"
                    else self._scale_set_instance_view(resource))
        return self._ok(200, body, request)

    @route("POST", _VM + r"/(?P<action>deallocate|powerOff|start|restart)")
    def power_action(self, request: Request) -> Response:
        action = request.params["action"].lower()
        api_version = request.arg("api-version") or ""
        with self.lock:
            resource = self._resource(request)
            if action == "restart" and resource.kind != "virtualMachines":
                raise HttpError(404, "NotFound", "Restart the scale set's instances instead.")
            self._writable(resource.subscription)
            operation = _Operation(
                id=str(uuid.uuid4()), subscription=resource.subscription, location=resource.location,
                action=action, target=resource, api_version=api_version, started=_now(),
                polls_before_done=self.lro_polls, previous_power_state=resource.power_state,
                failure=self._fail_next.pop(0) if self._fail_next else None,
            )
            self._operations[operation.id] = operation
            resource.provisioning_state = "Updating"
            resource.power_state = _TRANSITIONAL_STATE[action]
            verb = {"poweroff": "powerOff"}.get(action, action)
            self._log_own_operation(request, resource.id, f"Microsoft.Compute/{resource.kind}/{verb}/action")
        return Response(202, b"", {**self._ids(request), **self._lro_headers(operation)})

    def _lro_headers(self, operation: _Operation) -> dict[str, str]:
        status_url = (f"{self.base_url}/subscriptions/{operation.subscription}/providers/Microsoft.Compute/locations/"
                      f"{operation.location}/operations/{operation.id}")
        return {
            "Azure-AsyncOperation": f"{status_url}?{urlencode({'api-version': operation.api_version})}",
            "Location": f"{status_url}?{urlencode({'monitor': 'true', 'api-version': operation.api_version})}",
            "Retry-After": str(self.lro_retry_after),
        }

    # -- long-running operation status ------------------------------------------------------------

    @route("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/operations/"
                  r"(?P<op>[^/]+)")
    def operation_status(self, request: Request) -> Response:
        with self.lock:
            operation = self._operations.get(request.params["op"].lower())
            if operation is None or operation.subscription.lower() != request.params["sub"].lower():
                raise HttpError(404, "NotFound", f"The operation '{request.params['op']}' was not found.")
            self._advance(operation)
            monitor = (request.arg("monitor") or "").lower() == "true"
            if monitor:
                if operation.status == "InProgress":
                    return Response(202, b"", {**self._ids(request), **self._lro_headers(operation)})
                if operation.status == "Failed" and operation.failure:
                    raise HttpError(500, operation.failure[0], operation.failure[1])
                return Response(200, b"", self._ids(request))
            body: dict[str, Any] = {"startTime": _iso(operation.started), "status": operation.status,
                                    "name": operation.id}
            if operation.ended is not None:
                body["endTime"] = _iso(operation.ended)
            if operation.status == "Failed" and operation.failure:
                body["error"] = {"code": operation.failure[0], "message": operation.failure[1]}
            headers = {"Retry-After": str(self.lro_retry_after)} if operation.status == "InProgress" else {}
        return self._ok(200, body, request, headers)

    def _observe(self, resource: _Resource) -> None:
        """A read of ``resource`` counts as a look at each operation still running on it."""
        for operation in self._operations.values():
            if operation.target is resource and operation.status == "InProgress":
                self._advance(operation)

    def _advance(self, operation: _Operation) -> None:
        """Count a look; complete the operation (and set the final power state) once enough looks came."""
        if operation.status != "InProgress":
            return
        if operation.polls < operation.polls_before_done:
            operation.polls += 1
            return
        operation.ended = _now()
        operation.target.provisioning_state = "Succeeded"
        if operation.failure is not None:
            operation.status = "Failed"
            operation.target.power_state = operation.previous_power_state
            return
        operation.status = "Succeeded"
        operation.target.power_state = _RESULT_STATE[operation.action]
