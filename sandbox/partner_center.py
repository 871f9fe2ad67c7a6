"""Partner Center stand-in: fraud events, their status, subscriptions, Azure entitlements, webhooks.

Follows the documented contract (see sandbox/README.md, "Partner Center") to the field name and
type, quirks included: ``hitCount`` is a string, ``isTest`` is ``"true"``/``"false"`` (spelled
``IsTest`` in one item, as in the doc example), ``activityLogs`` is a JSON array in a string in
some items and an array in others, ``eventTime`` has no time zone, and unresolved events carry
``resolvedOn: 9999-12-31T23:59:59.9970000`` and ``resolvedReason: "None"``.

Scenario section ``partner_center``::

    {
      "partner_tenant_id": "...",          # tokens must carry this tid (default: ids.PARTNER_TENANT_ID)
      "require_mfa": true,                 # App+User tokens without "mfa" in amr get 401 / 900421
      "accept_legitimate": false,          # ResolvedReason "Legitimate" (undocumented for PC REST)
      "alerts": [ {...fraud event as served...} ],   # "_legacy": bool overrides legacy visibility
      "subscriptions": [ {"customerId": "...", ...PC subscription resource...} ],
      "entitlements": [ {"customerId": "...", "subscriptionId": "<plan>", "id": "<azure sub>", ...} ],
      "generate": {"alerts": 10000, "customers": 200},  # benchmark data, made on demand per page
      "mfa_adoption": [ {"loginDate": "2026-03-02", "applicationId": "...", "mfaCompliantRequestCount": 5,
                         "totalRequestCount": 9} ]      # history for GET /v1/applicationmfaadoptionstatus
    }

``GET /v1/applicationmfaadoptionstatus[?startDate=&endDate=]`` (App+User; Microsoft Learn, "Get MFA
adoption status" and the REST reference "Security - Get application MFA adoption status") answers
a bare JSON array of ``{loginDate, mfaCompliantRequestCount, totalRequestCount, applicationId,
applicationName}``: the scenario's history plus every App+User request this stand-in has received,
per UTC day and application, compliant when the token's ``amr`` carries ``mfa``.

The webhook management API (/webhooks/v1/...) is served on this port too (same base URL as at
Microsoft); it lives in sandbox/webhooks.py.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox import history, ids
from sandbox.core import HttpError, Request, Response, Service, json_response, route
from sandbox.webhooks import WebhookRoutes

AUDIENCE = "https://api.partnercenter.microsoft.com"
UNRESOLVED_ON = "9999-12-31T23:59:59.9970000"
NEW_MODEL_HEADER = "X-NewEventsModel"

# Fields that appear only with X-NewEventsModel: true (the (N) rows of the contract table).
NEW_MODEL_FIELDS = frozenset(
    name.lower() for name in (
        "eventType", "severity", "confidenceLevel", "displayName", "description", "country",
        "subscriptionName", "valueAddedResellerTenantId", "valueAddedResellerFriendlyName",
        "affectedResources", "additionalDetails", "isTest", "activityLogs",
    )
)
DOCUMENTED_EVENT_TYPES = (
    "ServiceHealthSecurityAdvisory",
    "UsageAnomalyDetection",
    "MultiRegionVirtualMachineScaleSetDeploymentAnomaly",
    "NetworkConnectionsToCryptoMiningPools",
    "VirtualMachineDeploymentAnomaly",
    "MultiRegionMachineLearningUsageAnomaly",
)
LEGACY_EVENT_TYPE = "NetworkConnectionsToCryptoMiningPools"
STATUSES = {"active": "Active", "resolved": "Resolved", "resolve": "Resolved", "investigating": "Investigating"}
REASONS = {"fraud": "Fraud", "ignore": "Ignore"}
SUBSCRIPTION_STATUSES = ("active", "suspended")
CANCELLATION_REASONS = ("compromise",)


def pc_time(moment: dt.datetime) -> str:
    """Partner Center's timestamp form: seven fraction digits, no time zone."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


_ZONED_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z")


def _strip_zone(value: Any) -> Any:
    """Scenario placeholders write UTC with a Z; Partner Center writes timestamps without a zone."""
    if isinstance(value, str):
        return _ZONED_TIME.sub(r"\1", value)
    if isinstance(value, list):
        return [_strip_zone(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_zone(v) for k, v in value.items()}
    return value


def _get(item: dict[str, Any], name: str, default: Any = None) -> Any:
    """A field by name, ignoring case (the doc spells isTest as IsTest)."""
    if name in item:
        return item[name]
    wanted = name.lower()
    for key, value in item.items():
        if key.lower() == wanted:
            return value
    return default


def _public(item: dict[str, Any], *, new_model: bool) -> dict[str, Any]:
    """The item as served: sandbox-only keys removed; (N) fields only for the new model."""
    return {
        key: value for key, value in item.items()
        if not key.startswith("_") and (new_model or key.lower() not in NEW_MODEL_FIELDS)
    }


@dataclass(frozen=True)
class Filters:
    status: str | None
    subscription_id: str | None
    event_type: str | None
    new_model: bool

    def accepts(self, subscription_id: str, status: str, event_type: str | None, legacy: bool) -> bool:
        if not self.new_model and not legacy:
            return False
        if self.status and status.lower() != self.status.lower():
            return False
        if self.subscription_id and subscription_id.lower() != self.subscription_id.lower():
            return False
        return not (self.new_model and self.event_type and (event_type or "").lower() != self.event_type.lower())


class GeneratedAlerts:
    """A large deterministic alert set for benchmarks: item ``j`` is computed when served."""

    def __init__(self, count: int, customers: int, start: dt.datetime) -> None:
        self.count = max(0, count)
        self.customers = [
            (str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-gen-customer-{i}")),
             str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-gen-subscription-{i}")))
            for i in range(max(1, customers))
        ]
        self.start = start
        self.overrides: dict[int, dict[str, Any]] = {}

    def meta(self, j: int) -> tuple[str, str, str]:
        """(subscriptionId, eventStatus, eventType) without building the item."""
        override = self.overrides.get(j, {})
        default_status = "Resolved" if j % 10 == 0 else "Investigating" if j % 10 == 1 else "Active"
        return (self.customers[j % len(self.customers)][1], override.get("eventStatus", default_status),
                DOCUMENTED_EVENT_TYPES[j % len(DOCUMENTED_EVENT_TYPES)])

    def event_id(self, j: int) -> str:
        return f"{self.customers[j % len(self.customers)][1]}_gen-{j:06d}"

    def index_of(self, event_id: str) -> int | None:
        _, _, tail = event_id.rpartition("_gen-")
        if not tail.isdigit() or not 0 <= int(tail) < self.count:
            return None
        if self.event_id(int(tail)).lower() != event_id.lower():
            return None
        return int(tail)

    def item(self, j: int) -> dict[str, Any]:
        customer, subscription = self.customers[j % len(self.customers)]
        subscription_id, status, event_type = self.meta(j)
        detected = self.start - dt.timedelta(minutes=j)
        vm = f"vm-gen-{j:06d}"
        resource = (f"/subscriptions/{subscription}/resourceGroups/rg-gen/providers/"
                    f"Microsoft.Compute/virtualMachines/{vm}")
        item: dict[str, Any] = {
            "eventTime": pc_time(detected),
            "eventId": self.event_id(j),
            "partnerTenantId": ids.PARTNER_TENANT_ID,
            "partnerFriendlyName": ids.PARTNER_NAME,
            "customerTenantId": customer,
            "customerFriendlyName": f"Generated customer {j % len(self.customers):04d}",
            "subscriptionId": subscription_id,
            "subscriptionType": "modern",
            "catalogOfferId": "ms-azr-17g",
            "entityId": vm,
            "entityName": vm,
            "entityUrl": resource,
            "hitCount": str(1 + j % 97),
            "eventStatus": status,
            "serviceName": "Microsoft.Compute",
            "resourceName": vm,
            "resourceGroupName": "rg-gen",
            "firstOccurrence": pc_time(detected - dt.timedelta(hours=1)),
            "lastOccurrence": pc_time(detected),
            "firstObserved": pc_time(detected - dt.timedelta(hours=1)),
            "lastObserved": pc_time(detected),
            "resolvedReason": "None",
            "resolvedOn": UNRESOLVED_ON,
            "resolvedBy": "",
            "eventType": event_type,
            "severity": ("High", "Medium", "Low")[j % 3],
            "confidenceLevel": ("High", "Medium", "Low")[(j // 3) % 3],
            "displayName": f"{event_type} on {vm}",
            "description": "Generated alert for benchmarks.",
            "country": "US",
            "subscriptionName": f"Generated subscription {j % len(self.customers):04d}",
            "valueAddedResellerTenantId": "",
            "valueAddedResellerFriendlyName": "",
            "affectedResources": [{"azureResourceId": resource, "type": "Microsoft.Compute/virtualMachines"}],
            "additionalDetails": {},
            "isTest": "false",
            "activityLogs": "[]",
        }
        item.update(self.overrides.get(j, {}))
        return item


class PartnerCenterService(WebhookRoutes, Service):
    """The Partner Center REST API on its own port (paths exactly as at Microsoft)."""

    name = "partner_center"
    audiences = (AUDIENCE,)

    # -- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        section = self.section
        self.partner_tenant_id = str(section.get("partner_tenant_id", ids.PARTNER_TENANT_ID)).lower()
        self.require_mfa = bool(section.get("require_mfa", True))
        self.accept_legitimate = bool(section.get("accept_legitimate", False))
        self.alerts: list[dict[str, Any]] = []
        for raw in section.get("alerts", []):
            self.alerts.append(_strip_zone(copy.deepcopy(raw)))
        generate = section.get("generate") or {}
        self.generated = GeneratedAlerts(
            int(generate.get("alerts", 0)), int(generate.get("customers", 1)),
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
        )
        self.subscriptions: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in section.get("subscriptions", []):
            resource = copy.deepcopy(raw)
            customer = str(resource.pop("customerId"))
            resource.setdefault("links", {"self": {
                "uri": f"/customers/{customer}/subscriptions/{resource['id']}", "method": "GET", "headers": []}})
            resource.setdefault("attributes", {"etag": uuid.uuid4().hex, "objectType": "Subscription"})
            self.subscriptions[(customer.lower(), str(resource["id"]).lower())] = resource
        self.entitlements: dict[tuple[str, str, str], dict[str, Any]] = {}
        for raw in section.get("entitlements", []):
            entitlement = copy.deepcopy(raw)
            customer = str(entitlement.pop("customerId"))
            plan = str(entitlement["subscriptionId"])
            entitlement.setdefault("status", "active")
            entitlement.setdefault("links", {"self": {
                "uri": f"/customers/{customer}/subscriptions/{plan}/azureEntitlements/{entitlement['id']}",
                "method": "GET", "headers": []}})
            entitlement.setdefault("attributes", {"objectType": "AzureEntitlement"})
            self.entitlements[(customer.lower(), plan.lower(), str(entitlement["id"]).lower())] = entitlement
        self.mfa_adoption: dict[tuple[str, str], list[int]] = {}
        for raw in section.get("mfa_adoption", []):
            self.seed_mfa_adoption(str(raw["loginDate"]), str(raw["applicationId"]),
                                   compliant=int(raw.get("mfaCompliantRequestCount", 0)),
                                   total=int(raw.get("totalRequestCount", 0)))
        self.reset_webhooks()
        self.reset_customers()

    def reset_customers(self) -> None:
        """Customers (from the shared ``tenants`` section) and their audit history (90 days)."""
        now = dt.datetime.now(dt.UTC)
        self.customers: list[dict[str, Any]] = []
        audit = self.section.get("auditHistory") or {}
        seed = int(audit.get("seed", 13))
        added_days = {str(k).lower(): int(v) for k, v in (audit.get("addedDaysAgo") or {}).items()}
        self.audit_records: list[dict[str, Any]] = []
        plans = {k[0]: k[1] for k in self.subscriptions}
        for raw in self.sandbox.scenario.get("tenants", {}).get("customers", []):
            customer = self._customer_resource(str(raw["id"]).lower(), str(raw.get("name", raw["id"])),
                                               str(raw.get("domain", "")), str(raw.get("associatedPartnerId", "")))
            self.customers.append(customer)
            if audit:
                cid = customer["id"]
                self.audit_records += history.customer_audit_history(
                    customer_id=cid, customer_name=customer["companyProfile"]["companyName"],
                    domain=customer["companyProfile"]["domain"], plan_id=plans.get(cid, ""),
                    reseller_id=customer.get("associatedPartnerId", ""),
                    added_days_ago=added_days.get(cid, 100 + len(self.customers) * 7), now=now, seed=seed)
        self.audit_records += [_strip_zone(copy.deepcopy(r)) for r in self.section.get("auditRecords", [])]
        self.audit_records.sort(key=lambda r: str(r.get("operationDate", "")))
        self.customer_page_size = int(self.section.get("customerPageSize", 100))
        self.audit_page_size = int(self.section.get("auditPageSize", 100))
        self.synthetic_customers = 0

    @staticmethod
    def _customer_resource(tenant: str, name: str, domain: str, reseller: str) -> dict[str, Any]:
        """The Customer resource as ``GET /v1/customers`` lists it (indirect: ``associatedPartnerId``)."""
        customer: dict[str, Any] = {
            "id": tenant, "commerceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"commerce/{tenant}")),
            "companyProfile": {"tenantId": tenant, "domain": domain, "companyName": name,
                               "links": {"self": {"uri": f"/customers/{tenant}/profiles/company", "method": "GET",
                                                  "headers": []}},
                               "attributes": {"objectType": "CustomerCompanyProfile"}},
            "relationshipToPartner": "reseller", "allowDelegatedAccessManagement": True,
            "links": {"self": {"uri": f"/customers/{tenant}", "method": "GET", "headers": []}},
            "attributes": {"objectType": "Customer"},
        }
        if reseller:
            customer["associatedPartnerId"] = reseller
        return customer

    def add_synthetic_customers(self, added: list[dict[str, str]]) -> None:
        """Benchmarks' synthetic customers: an Azure plan with one active entitlement each (history: none
        within 90 days, so the audit log stays the scenario's)."""
        with self.lock:
            for item in added:
                tenant, sub_id, plan = item["customerId"], item["subscriptionId"], item["planId"]
                index = history.synthetic_index(tenant)
                self.synthetic_customers = max(self.synthetic_customers, (index or 0) + 1)
                self.subscriptions[(tenant, plan)] = {
                    "id": plan, "offerId": "DZH318Z0BCZC", "offerName": "Azure plan", "friendlyName": "Azure plan",
                    "quantity": 1, "unitType": "Licenses", "status": "active", "billingType": "usage",
                    "contractType": "subscription", "orderId": plan, "autoRenewEnabled": False,
                    "links": {"self": {"uri": f"/customers/{tenant}/subscriptions/{plan}", "method": "GET",
                                       "headers": []}}, "attributes": {"objectType": "Subscription"}}
                self.entitlements[(tenant, plan, sub_id)] = {
                    "id": sub_id, "friendlyName": f"Synthetic {index:05d}", "status": "active",
                    "subscriptionId": plan,
                    "links": {"self": {"uri": f"/customers/{tenant}/subscriptions/{plan}/azureEntitlements/{sub_id}",
                                       "method": "GET", "headers": []}},
                    "attributes": {"objectType": "AzureEntitlement"}}

    def _all_customers(self) -> Iterator[dict[str, Any]]:
        yield from self.customers
        for index in range(self.synthetic_customers):  # made on read
            tenant = history.synthetic_ids(index)[0]
            yield self._customer_resource(tenant, f"Synthetic customer {index:05d}", f"synthetic{index:05d}.example",
                                          f"48{index % 7:05d}" if index % 5 == 0 else "")

    @staticmethod
    def today() -> str:
        return dt.datetime.now(dt.UTC).date().isoformat()

    def seed_mfa_adoption(self, login_date: str, application_id: str, *, compliant: int, total: int) -> None:
        """Add App+User request counts for one day and application (tests and scenarios)."""
        with self.lock:
            counts = self.mfa_adoption.setdefault((login_date, application_id.lower()), [0, 0])
            counts[0] += compliant
            counts[1] += total

    # -- errors and auth -----------------------------------------------------------------------

    def error(self, err: HttpError) -> Response:
        """Partner Center's error body; a 429 uses the throttling doc's shape."""
        if err.status == 429:
            return json_response(429, {"statusCode": 429, "message": err.message}, err.headers)
        code: int | str = int(err.code) if err.code.isdigit() else err.code
        return json_response(err.status, {"code": code, "description": err.message, "data": [],
                                          "source": "PartnerFD"}, err.headers)

    def unauthorized(self, reason: str) -> Response:
        return self.error(HttpError(401, "401", f"Authentication failed: {reason}.",
                                    {"WWW-Authenticate": 'Bearer error="invalid_token"'}))

    def authorize(self, request: Request, claims: dict[str, Any]) -> None:
        if str(claims.get("tid", "")).lower() != self.partner_tenant_id:
            raise HttpError(401, "401", "The token was issued for another tenant; Partner Center APIs take a token "
                            "from the partner's own tenant.")
        delegated = "scp" in claims
        if delegated:  # App+User: counted for the MFA adoption status, refused or not
            compliant = "mfa" in (claims.get("amr") or [])
            self.seed_mfa_adoption(self.today(), str(claims.get("appid", "")), compliant=int(compliant), total=1)
        if delegated and self.require_mfa and "mfa" not in (claims.get("amr") or []):
            raise HttpError(401, "900421", "Multi-factor authentication is required for App+User calls: the access "
                            "token has no 'mfa' in its amr claim. Sign in again with MFA.")
        if request.path.lower().startswith("/v1/fraudevents") and not delegated:
            raise HttpError(403, "403", "This API supports App+User credentials only; an App-only token was sent.")

    # -- MFA adoption status ---------------------------------------------------------------------

    @route("GET", r"/v1/applicationmfaadoptionstatus")
    def mfa_adoption_status(self, request: Request) -> Response:
        if "scp" not in (request.claims or {}):
            raise HttpError(403, "403", "This API supports App+User credentials only; an App-only token was sent.")
        bounds = []
        for name in ("startDate", "endDate"):
            text = request.arg(name)
            if text:
                try:
                    bounds.append(dt.date.fromisoformat(text[:10]).isoformat())
                except ValueError:
                    raise HttpError(400, "400", f"{name} {text!r} is not a valid date; use YYYY-MM-DD.") from None
            else:
                bounds.append("0000-01-01" if name == "startDate" else "9999-12-31")
        with self.lock:
            rows = [{"loginDate": day, "mfaCompliantRequestCount": counts[0], "totalRequestCount": counts[1],
                     "applicationId": app, "applicationName": ""}
                    for (day, app), counts in sorted(self.mfa_adoption.items(), reverse=True)
                    if bounds[0] <= day <= bounds[1]]
        return json_response(200, rows)

    # -- fraud events --------------------------------------------------------------------------

    def _filters(self, request: Request) -> Filters:
        new_model = request.headers.get(NEW_MODEL_HEADER, "").strip().lower() == "true"
        status = request.arg("EventStatus")
        if status and status.lower() not in STATUSES:
            raise HttpError(400, "400", f"EventStatus {status!r} is not valid; use Active, Resolved or Investigating.")
        return Filters(status=STATUSES[status.lower()] if status else None,
                       subscription_id=request.arg("SubscriptionId") or None,
                       event_type=request.headers.get("EventType") or None, new_model=new_model)

    @staticmethod
    def _legacy_visible(item: dict[str, Any]) -> bool:
        flag = item.get("_legacy")
        if isinstance(flag, bool):
            return flag
        event_type = _get(item, "eventType")
        return event_type is None or str(event_type).lower() == LEGACY_EVENT_TYPE.lower()

    def _matching(self, filters: Filters) -> Iterator[tuple[str, Any]]:
        """("list", item) or ("gen", index) for every matching event, in a stable order."""
        for item in self.alerts:
            if not isinstance(item, dict):  # a malformed item (a test's): served on every listing
                yield "list", item
                continue
            if filters.accepts(str(_get(item, "subscriptionId", "")), str(_get(item, "eventStatus", "")),
                               _get(item, "eventType"), self._legacy_visible(item)):
                yield "list", item
        generated = self.generated
        if not filters.new_model:
            return  # generated alerts use the new model's event types
        for j in range(generated.count):
            subscription_id, status, event_type = generated.meta(j)
            if filters.accepts(subscription_id, status, event_type, False):
                yield "gen", j

    def _materialise(self, entry: tuple[str, Any], new_model: bool) -> Any:
        kind, value = entry
        item = value if kind == "list" else self.generated.item(value)
        return _public(item, new_model=new_model) if isinstance(item, dict) else item

    @staticmethod
    def _page_args(request: Request) -> tuple[int, int] | None:
        raw_size, raw_number = request.arg("PageSize"), request.arg("PageNumber")
        if raw_size is None and raw_number is None:
            return None
        try:
            size, number = int(raw_size or 0), int(raw_number or 0)
        except ValueError:
            raise HttpError(400, "400", "PageSize and PageNumber must be whole numbers.") from None
        return (size, number) if size > 0 and number > 0 else None

    @route("GET", r"/v1/fraudEvents")
    def list_fraud_events(self, request: Request) -> Response:
        filters = self._filters(request)
        paging = self._page_args(request) if filters.new_model else None  # paging needs the header
        with self.lock:
            entries = self._matching(filters)
            if paging is None:
                items = [self._materialise(e, filters.new_model) for e in entries]
            else:
                size, number = paging
                skip, items = (number - 1) * size, []
                for index, entry in enumerate(entries):
                    if index < skip:
                        continue
                    items.append(self._materialise(entry, filters.new_model))
                    if len(items) == size:
                        break
        return json_response(200, items)

    @route("POST", r"/v1/fraudEvents/subscription/(?P<subscription>[^/]+)/status")
    def update_status(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "400", "The body must be a JSON object with EventIds, EventStatus and ResolvedReason.")
        event_ids = _get(body, "EventIds") or []
        raw_status = _get(body, "EventStatus")
        raw_reason = _get(body, "ResolvedReason")
        if not isinstance(event_ids, list) or not all(isinstance(e, str) for e in event_ids):
            raise HttpError(400, "400", "EventIds must be an array of event id strings (empty = every event).")
        if not isinstance(raw_status, str) or raw_status.lower() not in STATUSES:
            raise HttpError(400, "400", "EventStatus must be Active, Investigating or Resolved.")
        status = STATUSES[raw_status.lower()]
        reason = "None"
        if status == "Resolved":
            allowed = dict(REASONS, **({"legitimate": "Legitimate"} if self.accept_legitimate else {}))
            if not isinstance(raw_reason, str) or raw_reason.lower() not in allowed:
                raise HttpError(400, "400", f"ResolvedReason {raw_reason!r} is not accepted; the accepted reason codes "
                                f"are {' or '.join(allowed.values())}.")
            reason = allowed[raw_reason.lower()]
        new_model = request.headers.get(NEW_MODEL_HEADER, "").strip().lower() == "true"
        subscription = request.params["subscription"].lower()
        claims = request.claims or {}
        actor = str(claims.get("upn") or claims.get("unique_name") or claims.get("oid") or "")
        now = pc_time(dt.datetime.now(dt.UTC))
        with self.lock:
            targets = self._status_targets(subscription, [e.lower() for e in event_ids])
            updated = [self._apply_status(target, status, reason, actor, now) for target in targets]
        return json_response(200, [_public(item, new_model=new_model) for item in updated])

    def _status_targets(self, subscription: str, wanted: list[str]) -> list[tuple[str, Any]]:
        targets: list[tuple[str, Any]] = [
            ("list", item) for item in self.alerts
            if isinstance(item, dict) and str(_get(item, "subscriptionId", "")).lower() == subscription
            and (not wanted or str(_get(item, "eventId", "")).lower() in wanted)
        ]
        generated = self.generated
        if wanted:
            for event_id in wanted:
                j = generated.index_of(event_id)
                if j is not None and generated.meta(j)[0].lower() == subscription:
                    targets.append(("gen", j))
            found = {str(_get(t[1], "eventId", "")).lower() if t[0] == "list" else generated.event_id(t[1]).lower()
                     for t in targets}
            missing = [e for e in wanted if e not in found]
            if missing:
                raise HttpError(404, "404", f"Fraud event {missing[0]} was not found on subscription {subscription}.")
        else:
            targets += [("gen", j) for j in range(generated.count) if generated.meta(j)[0].lower() == subscription]
        return targets

    def _apply_status(self, target: tuple[str, Any], status: str, reason: str, actor: str, now: str) -> dict[str, Any]:
        kind, value = target
        item = value if kind == "list" else self.generated.item(value)
        changes: dict[str, Any] = {"eventStatus": status}
        if status == "Resolved":
            changes.update(resolvedReason=reason, resolvedOn=now, resolvedBy=actor)
        else:
            changes.update(resolvedReason="None", resolvedOn=UNRESOLVED_ON, resolvedBy="")
        log_key = next((k for k in item if k.lower() == "activitylogs"), None)
        if log_key is not None:
            entry = {"statusFrom": _get(item, "eventStatus"), "statusTo": status, "updatedBy": actor, "dateTime": now}
            logs = item[log_key]
            if isinstance(logs, str):
                try:
                    parsed = json.loads(logs) if logs.strip() else []
                except ValueError:
                    parsed = []
                changes[log_key] = json.dumps([*parsed, entry]) if isinstance(parsed, list) else logs
            elif isinstance(logs, list):
                changes[log_key] = [*logs, entry]
        if kind == "list":
            for name, value in changes.items():  # in the item's own key case (PascalCase records stay so)
                item[next((k for k in item if k.lower() == name.lower()), name)] = value
            return item
        self.generated.overrides.setdefault(value, {}).update(changes)
        return self.generated.item(value)

    # -- customers and audit records ---------------------------------------------------------------

    @staticmethod
    def _continuation(request: Request) -> dict[str, Any] | None:
        """The state in an MS-ContinuationToken header (seekOperation=Next), None on a first page."""
        token = request.headers.get("MS-ContinuationToken")
        if (request.arg("seekOperation") or "").lower() != "next":
            return None
        if not token:
            raise HttpError(400, "400", "seekOperation=Next needs the MS-ContinuationToken header from the previous "
                            "page's links.next.")
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            if not isinstance(state, dict) or not isinstance(state.get("o"), int):
                raise ValueError
            return state
        except ValueError:
            raise HttpError(400, "400", "The continuation token is invalid; send it as links.next gave it.") from None

    @staticmethod
    def _collection(items: list[Any], self_uri: str, next_uri: str, state: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"totalCount": len(items), "items": items,
                                "links": {"self": {"uri": self_uri, "method": "GET", "headers": []}},
                                "attributes": {"objectType": "Collection"}}
        if state is not None:
            token = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            body["continuationToken"] = token
            body["links"]["next"] = {"uri": next_uri, "method": "GET",
                                     "headers": [{"key": "MS-ContinuationToken", "value": token}]}
        return body

    @route("GET", r"/v1/customers")
    def list_customers(self, request: Request) -> Response:
        """``Get a list of customers``: pages of ``size`` (default ``customerPageSize``), then links.next with
        ``seekOperation=Next`` and the ``MS-ContinuationToken`` header."""
        state = self._continuation(request)
        try:
            size = int(request.arg("size") or (state or {}).get("n") or self.customer_page_size)
        except ValueError:
            raise HttpError(400, "400", "size must be a whole number.") from None
        size = max(1, min(size, 500))
        offset = int((state or {}).get("o", 0))
        with self.lock:
            page: list[dict[str, Any]] = []
            more = False
            for index, customer in enumerate(self._all_customers()):
                if index < offset:
                    continue
                if len(page) == size:
                    more = True
                    break
                page.append(copy.deepcopy(customer))
        following = {"o": offset + size, "n": size} if more else None
        return json_response(200, self._collection(page, f"/customers?size={size}",
                                                   f"/customers?size={size}&seekOperation=Next", following))

    def _audit_window(self, request: Request, state: dict[str, Any] | None) -> tuple[dt.datetime, dt.datetime]:
        now = dt.datetime.now(dt.UTC)
        if state is not None:
            return (dt.datetime.fromisoformat(state["s"]), dt.datetime.fromisoformat(state["e"]))
        bounds: list[dt.datetime] = []
        for name, default in (("startDate", now - dt.timedelta(days=30)), ("endDate", now)):
            text = request.arg(name)
            if not text:
                bounds.append(default)
                continue
            try:
                moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            except ValueError:
                raise HttpError(400, "400", f"{name} {text!r} is not a date; use ISO 8601, e.g. "
                                "2026-01-31 or 2026-01-31T08:00:00Z.") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            if len(text.strip()) == 10 and name == "endDate":
                moment += dt.timedelta(days=1)
            bounds.append(moment.astimezone(dt.UTC))
        start, end = bounds
        if start < now - dt.timedelta(days=90):
            raise HttpError(400, "400", "Audit records are kept for 90 days: startDate must be within the last "
                            "90 days.")
        if end <= start:
            raise HttpError(400, "400", "endDate must be after startDate.")
        if end - start > dt.timedelta(days=30, minutes=1):
            raise HttpError(400, "400", "The maximum window is 30 days: narrow startDate and endDate.")
        return start, end

    @staticmethod
    def _audit_filter(text: str | None) -> tuple[str, str, str] | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            field_name, value, operator = str(data["Field"]), str(data["Value"]), str(data["Operator"])
        except (ValueError, KeyError, TypeError):
            raise HttpError(400, "400", 'filter must be JSON like {"Field": "CustomerId", "Value": "<id>", '
                            '"Operator": "equals"}.') from None
        allowed = {"companyname": "substring", "customerid": "equals", "resourcetype": "equals"}
        if allowed.get(field_name.lower()) != operator.lower():
            raise HttpError(400, "400", "filter supports CompanyName with substring, CustomerId with equals and "
                            "ResourceType with equals.")
        return field_name.lower(), value.lower(), operator.lower()

    @staticmethod
    def _audit_matches(record: dict[str, Any], start: dt.datetime, end: dt.datetime,
                       wanted: tuple[str, str, str] | None) -> bool:
        text = str(_get(record, "operationDate", ""))
        try:
            moment = dt.datetime.fromisoformat(text.rstrip("Z")[:26]).replace(tzinfo=dt.UTC)
        except ValueError:
            return True  # a malformed record (a test's): served so readers prove they skip it
        if not start <= moment < end:
            return False
        if wanted is None:
            return True
        name, value, _ = wanted
        if name == "companyname":
            return value in str(_get(record, "customerName", "")).lower()
        if name == "customerid":
            return str(_get(record, "customerId", "")).lower() == value
        return str(_get(record, "resourceType", "")).lower() == value

    @route("GET", r"/v1/auditrecords")
    def list_audit_records(self, request: Request) -> Response:
        """``Get a record of Partner Center activity``: ``startDate``/``endDate`` (90 days kept, 30-day
        window), ``filter`` (JSON), oldest first, paged by continuation token."""
        state = self._continuation(request)
        start, end = self._audit_window(request, state)
        wanted = self._audit_filter((state or {}).get("f") or request.arg("filter"))
        offset = int((state or {}).get("o", 0))
        with self.lock:
            matching = [r for r in self.audit_records if self._audit_matches(r, start, end, wanted)]
        page = [copy.deepcopy(r) for r in matching[offset:offset + self.audit_page_size]]
        following = None
        if offset + self.audit_page_size < len(matching):
            following = {"o": offset + self.audit_page_size, "s": start.isoformat(), "e": end.isoformat(),
                         "f": (state or {}).get("f") or request.arg("filter") or ""}
        return json_response(200, self._collection(page, "/auditrecords", "/auditrecords?seekOperation=Next",
                                                   following))

    def add_audit_record(self, record: dict[str, Any]) -> None:
        """Append an audit record (tests: bursts of new customers, malformed records)."""
        with self.lock:
            self.audit_records.append(record)

    # -- subscriptions ---------------------------------------------------------------------------

    def _subscription(self, request: Request) -> dict[str, Any]:
        key = (request.params["customer"].lower(), request.params["subscription"].lower())
        resource = self.subscriptions.get(key)
        if resource is None:
            raise HttpError(404, "800111", f"Subscription {request.params['subscription']} was not found for "
                            f"customer {request.params['customer']}.")
        return resource

    @route("GET", r"/v1/customers/(?P<customer>[^/]+)/subscriptions")
    def list_subscriptions(self, request: Request) -> Response:
        """Every subscription of one customer (the Azure plan among them), as a PC collection."""
        customer = request.params["customer"]
        with self.lock:
            items = [resource for key, resource in self.subscriptions.items() if key[0] == customer.lower()]
            return json_response(200, {"totalCount": len(items), "items": items, "links": {"self": {
                "uri": f"/customers/{customer}/subscriptions", "method": "GET", "headers": []}},
                "attributes": {"objectType": "Collection"}})

    @route("GET", r"/v1/customers/(?P<customer>[^/]+)/subscriptions/(?P<subscription>[^/]+)")
    def get_subscription(self, request: Request) -> Response:
        with self.lock:
            return json_response(200, self._subscription(request))

    @route("PATCH", r"/v1/customers/(?P<customer>[^/]+)/subscriptions/(?P<subscription>[^/]+)")
    def update_subscription(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise HttpError(400, "400", "The body must be the full subscription resource with its status.")
        status = body["status"].lower()
        if status not in SUBSCRIPTION_STATUSES:
            raise HttpError(400, "400", f"Subscription status {body['status']!r} cannot be set here; use "
                            f"{' or '.join(SUBSCRIPTION_STATUSES)}.")
        with self.lock:
            resource = self._subscription(request)
            if str(body.get("id", resource["id"])).lower() != str(resource["id"]).lower():
                raise HttpError(400, "400", "The id in the body does not match the subscription in the path.")
            missing = [name for name in ("id", "offerId", "friendlyName", "quantity") if name in resource
                       and name not in body]
            if missing:
                raise HttpError(400, "400", f"PATCH takes the full subscription resource; {missing[0]} is missing. "
                                "GET it first and send it back with the new status.")
            resource["status"] = status
            if status == "suspended":
                resource["suspensionReasons"] = body.get("suspensionReasons") or ["fraud"]
            else:
                resource.pop("suspensionReasons", None)
            resource["attributes"] = {**resource.get("attributes", {}), "etag": uuid.uuid4().hex}
            return json_response(200, resource)

    # -- Azure entitlements ----------------------------------------------------------------------

    _PLAN = r"/v1/customers/(?P<customer>[^/]+)/subscriptions/(?P<plan>[^/]+)/azureEntitlements"

    def _entitlement(self, request: Request) -> dict[str, Any]:
        key = (request.params["customer"].lower(), request.params["plan"].lower(),
               request.params["entitlement"].lower())
        entitlement = self.entitlements.get(key)
        if entitlement is None:
            raise HttpError(404, "800111", f"Azure entitlement {request.params['entitlement']} was not found in "
                            f"subscription {request.params['plan']}.")
        return entitlement

    @route("GET", _PLAN)
    def list_entitlements(self, request: Request) -> Response:
        customer, plan = request.params["customer"].lower(), request.params["plan"].lower()
        with self.lock:
            if (customer, plan) not in self.subscriptions and not any(
                    k[:2] == (customer, plan) for k in self.entitlements):
                raise HttpError(404, "800111", f"Subscription {request.params['plan']} was not found.")
            items = [e for k, e in self.entitlements.items() if k[:2] == (customer, plan)]
            return json_response(200, {"totalCount": len(items), "items": items, "links": {"self": {
                "uri": f"/customers/{request.params['customer']}/subscriptions/{request.params['plan']}"
                       "/azureEntitlements", "method": "GET", "headers": []}},
                "attributes": {"objectType": "Collection"}})

    @route("GET", _PLAN + r"/(?P<entitlement>[^/]+)")
    def get_entitlement(self, request: Request) -> Response:
        with self.lock:
            return json_response(200, self._entitlement(request))

    @route("POST", _PLAN + r"/(?P<entitlement>[^/]+)/cancel")
    def cancel_entitlement(self, request: Request) -> Response:
        body = request.json()
        reason = _get(body, "cancellationReason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or reason.lower() not in CANCELLATION_REASONS:
            raise HttpError(400, "900307", f"Invalid cancellation reason {reason!r}; the accepted value is "
                            "\"compromise\".")
        with self.lock:
            entitlement = self._entitlement(request)
            entitlement["status"] = "inactive"
            return json_response(200, entitlement)

    @route("POST", _PLAN + r"/(?P<entitlement>[^/]+)/reactivate")
    def reactivate_entitlement(self, request: Request) -> Response:
        with self.lock:
            entitlement = self._entitlement(request)
            entitlement["status"] = "active"
            return json_response(202, entitlement)
