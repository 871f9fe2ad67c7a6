"""Partner Center REST client: fraud events, their status, customers, subscriptions, Azure entitlements,
audit records, webhooks.

Fraud events come back as the raw JSON dicts Partner Center sends (normalising them into the alert
model is the intake's job: field casing and types vary, see the contract). Small responses that
the app acts on are typed dataclasses. Every call goes through the shared retry policy
(shared.http) with Partner Center's MS-CorrelationId / MS-RequestId headers.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.http import MalformedResponse, MicrosoftClient, NotFound, RetryPolicy, ServiceClient, verify_from_settings
from shared.settings import Settings

SCOPE = "https://api.partnercenter.microsoft.com/.default"
"""The scope a token for these calls is requested with (v2 form of the PC resource id)."""
NEW_EVENTS_MODEL_HEADER = "X-NewEventsModel"
FRAUD_EVENT_WEBHOOK = "azure-fraud-event-detected"
DEFAULT_PAGE_SIZE = 100
CUSTOMER_PAGE_SIZE = 100
AUDIT_WINDOW = dt.timedelta(days=30)
"""The longest window one audit-records query may span; longer spans are read window by window."""
AUDIT_RETENTION = dt.timedelta(days=90)
CONTINUATION_HEADER = "MS-ContinuationToken"
AZURE_PLAN_OFFER_ID = "DZH318Z0BCZC"
"""Product id of the Azure plan; its subscriptions' offerId starts with it."""


@dataclass(frozen=True)
class SubscriptionState:
    """A Partner Center subscription (e.g. the customer's Azure plan) and its status."""

    id: str
    customer_id: str
    status: str
    friendly_name: str
    offer_id: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def suspended(self) -> bool:
        return self.status.lower() == "suspended"

    @property
    def is_azure_plan(self) -> bool:
        """The Azure plan (the subscription that holds the customer's Azure subscriptions)."""
        return self.offer_id.upper().startswith(AZURE_PLAN_OFFER_ID)


@dataclass(frozen=True)
class AzureEntitlement:
    """An Azure subscription inside an Azure plan (``id`` is the Azure subscription id)."""

    id: str
    plan_subscription_id: str
    friendly_name: str
    status: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Customer:
    """A customer of the partner (``GET /v1/customers``): its tenant, name and indirect reseller if any."""

    id: str
    """The customer's tenant id (lower case)."""
    company_name: str
    domain: str
    reseller_id: str
    """``associatedPartnerId``: the indirect reseller's partner id, "" for a direct customer."""
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Customer:
        """:raises ValueError: when the item has no id."""
        profile = _field(data, "companyProfile", {})
        profile = profile if isinstance(profile, dict) else {}
        identifier = str(_field(data, "id", "") or _field(profile, "tenantId", "")).strip().lower()
        if not identifier:
            raise ValueError("a customer item has no id")
        return cls(id=identifier, company_name=str(_field(profile, "companyName", "") or ""),
                   domain=str(_field(profile, "domain", "") or ""),
                   reseller_id=str(_field(data, "associatedPartnerId", "") or ""), raw=data)


@dataclass(frozen=True)
class MfaAdoption:
    """One day's App+User requests of one application, and how many carried MFA
    (GET /v1/applicationmfaadoptionstatus; App+User calls without MFA are refused with 900421)."""

    login_date: str
    application_id: str
    application_name: str
    mfa_compliant_requests: int
    total_requests: int


def _count(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class WebhookRegistration:
    subscriber_id: str
    webhook_url: str
    webhook_events: tuple[str, ...]
    signature_in_ms_signature_header: bool = False


@dataclass(frozen=True)
class ValidationAttempt:
    """One delivery attempt of a test event; ``response_code`` is "OK" on success."""

    response_code: str
    response_message: str
    system_error: str
    date_time_utc: str

    @property
    def succeeded(self) -> bool:
        return self.response_code.upper() == "OK"


@dataclass(frozen=True)
class ValidationEvent:
    correlation_id: str
    partner_id: str
    status: str
    callback_url: str
    results: tuple[ValidationAttempt, ...]


def _field(item: dict[str, Any], name: str, default: Any = "") -> Any:
    """A field by name, ignoring case (Partner Center mixes PascalCase and camelCase)."""
    if name in item:
        return item[name]
    wanted = name.lower()
    return next((value for key, value in item.items() if key.lower() == wanted), default)


def _event_key(item: Any) -> str:
    """What identifies an item of a page: its event id (any key case), or the whole of a non-object."""
    return str(_field(item, "eventId")) if isinstance(item, dict) else json.dumps(item, default=str)


def _pc_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segment(value: str) -> str:
    return quote(value, safe="")


class PartnerCenterClient(ServiceClient):
    """Calls ``{PARTNER_CENTER_URL}``; ``token`` returns a Partner Center access token (App+User for fraud events)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Callable[[], str],
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http: MicrosoftClient | None = None,
    ) -> None:
        self.http = http or MicrosoftClient(base_url, token=token, verify=verify, retry=retry, sleep=sleep,
                                            service="Partner Center")
        self.skipped_customers = 0
        """Customer items without an id (skipped, not fatal)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, token: Callable[[], str], retry: RetryPolicy | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> PartnerCenterClient:
        return cls(settings.partner_center_url, token=token, verify=verify_from_settings(settings), retry=retry,
                   sleep=sleep)

    # -- fraud events ----------------------------------------------------------------------------

    def fraud_event_pages(
        self,
        *,
        new_model: bool = True,
        event_status: str | None = None,
        subscription_id: str | None = None,
        event_type: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        keep_non_objects: bool = False,
    ) -> Iterator[list[Any]]:
        """Pages of raw fraud events (GET /v1/fraudEvents).

        The new events model pages with PageSize/PageNumber until a short or empty page (the API
        has no continuation token or total). The legacy model has no paging: one page, the whole list.
        An item that is not a JSON object makes the page malformed, unless ``keep_non_objects``: then
        it is passed on as it is (the sync quarantines it and stores the rest of the page).
        """
        params: dict[str, str | int] = {}
        if event_status:
            params["EventStatus"] = event_status
        if subscription_id:
            params["SubscriptionId"] = subscription_id
        headers: dict[str, str] = {}
        if new_model:
            headers[NEW_EVENTS_MODEL_HEADER] = "true"
            if event_type:
                headers["EventType"] = event_type
        objects_only = not keep_non_objects
        if not new_model:
            yield self._event_list("GET", "/v1/fraudEvents", params=params, headers=headers, objects_only=objects_only)
            return
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        previous_first: str | None = None
        page_number = 1
        while True:
            page: list[Any] = self._event_list("GET", "/v1/fraudEvents", headers=headers, objects_only=objects_only,
                                               params={**params, "PageSize": page_size, "PageNumber": page_number})
            first = _event_key(page[0]) if page else None
            if page and first == previous_first:
                return  # the service ignored PageNumber: stop rather than loop forever
            if page:
                yield page
            if len(page) < page_size:
                return
            previous_first = first
            page_number += 1

    def fraud_events(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every raw fraud event, page after page (see :meth:`fraud_event_pages` for the filters)."""
        for page in self.fraud_event_pages(**filters):
            yield from page

    def update_fraud_event_status(
        self,
        subscription_id: str,
        *,
        event_ids: list[str],
        status: str,
        resolved_reason: str | None = None,
        new_model: bool = True,
    ) -> list[dict[str, Any]]:
        """POST .../subscription/{id}/status; an empty ``event_ids`` updates every event on the subscription.

        ``resolved_reason`` is Fraud or Ignore (the documented codes) when ``status`` is Resolved.
        Returns the updated events.
        """
        body: dict[str, Any] = {"EventIds": list(event_ids), "EventStatus": status}
        if resolved_reason is not None:
            body["ResolvedReason"] = resolved_reason
        headers = {NEW_EVENTS_MODEL_HEADER: "true"} if new_model else {}
        return self._event_list("POST", f"/v1/fraudEvents/subscription/{_segment(subscription_id)}/status",
                                json=body, headers=headers)

    def _event_list(self, method: str, path: str, *, objects_only: bool = True, **kwargs: Any) -> list[Any]:
        data = self.http.request_json(method, path, **kwargs)
        if not isinstance(data, list) or (objects_only and not all(isinstance(item, dict) for item in data)):
            raise MalformedResponse("expected a JSON array of fraud events", status=200, service="Partner Center",
                                    method=method, path=path)
        return data

    # -- MFA readiness ---------------------------------------------------------------------------

    def application_mfa_adoption_status(self, *, start_date: str | None = None,
                                        end_date: str | None = None) -> list[MfaAdoption]:
        """Per day and application, App+User requests with and without MFA (dates YYYY-MM-DD)."""
        params = {k: v for k, v in (("startDate", start_date), ("endDate", end_date)) if v}
        path = "/v1/applicationmfaadoptionstatus"
        data = self.http.request_json("GET", path, params=params or None)
        if isinstance(data, dict):  # tolerate a {"items": [...]} collection wrapper
            data = next((v for k, v in data.items() if k.lower() == "items"), None)
        if not isinstance(data, list):
            raise MalformedResponse("expected a JSON array of MFA adoption records", status=200,
                                    service="Partner Center", method="GET", path=path)
        return [MfaAdoption(login_date=str(_field(row, "loginDate"))[:10],
                            application_id=str(_field(row, "applicationId")).lower(),
                            application_name=str(_field(row, "applicationName") or ""),
                            mfa_compliant_requests=_count(_field(row, "mfaCompliantRequestCount")),
                            total_requests=_count(_field(row, "totalRequestCount")))
                for row in data if isinstance(row, dict)]

    # -- subscriptions ---------------------------------------------------------------------------

    def list_subscriptions(self, customer_id: str) -> list[SubscriptionState]:
        """Every subscription of a customer (GET /v1/customers/{id}/subscriptions)."""
        path = f"/v1/customers/{_segment(customer_id)}/subscriptions"
        items = _field(self._object("GET", path), "items", [])
        if not isinstance(items, list):
            raise MalformedResponse("expected 'items' to be an array of subscriptions", status=200,
                                    service="Partner Center", method="GET", path=path)
        return [self._subscription(customer_id, item) for item in items if isinstance(item, dict)]

    def find_azure_entitlement(self, customer_id: str, azure_subscription_id: str) -> AzureEntitlement | None:
        """The entitlement for an Azure subscription id, looked up in the customer's Azure plan(s).

        Its ``plan_subscription_id`` is the Partner Center id of the Azure plan that holds it, which
        is what suspending (the plan) and cancelling (the entitlement) address. None when no Azure
        plan of this customer holds that Azure subscription.
        """
        wanted = azure_subscription_id.lower()
        for plan in self.list_subscriptions(customer_id):
            if not plan.is_azure_plan:
                continue
            for entitlement in self.list_azure_entitlements(customer_id, plan.id):
                if entitlement.id.lower() == wanted:
                    if not entitlement.plan_subscription_id:
                        return AzureEntitlement(entitlement.id, plan.id, entitlement.friendly_name,
                                                entitlement.status, entitlement.raw)
                    return entitlement
        return None

    def get_subscription(self, customer_id: str, subscription_id: str) -> SubscriptionState:
        data = self._object("GET", self._subscription_path(customer_id, subscription_id))
        return self._subscription(customer_id, data)

    def suspend_subscription(self, customer_id: str, subscription_id: str) -> SubscriptionState:
        """PATCH the full subscription resource with status "suspended" (reversible)."""
        return self._set_subscription_status(customer_id, subscription_id, "suspended")

    def reactivate_subscription(self, customer_id: str, subscription_id: str) -> SubscriptionState:
        """PATCH the full subscription resource with status "active" (undoes a suspension)."""
        return self._set_subscription_status(customer_id, subscription_id, "active")

    def _set_subscription_status(self, customer_id: str, subscription_id: str, status: str) -> SubscriptionState:
        path = self._subscription_path(customer_id, subscription_id)
        resource = self._object("GET", path)
        resource["status"] = status
        return self._subscription(customer_id, self._object("PATCH", path, json=resource))

    @staticmethod
    def _subscription_path(customer_id: str, subscription_id: str) -> str:
        return f"/v1/customers/{_segment(customer_id)}/subscriptions/{_segment(subscription_id)}"

    @staticmethod
    def _subscription(customer_id: str, data: dict[str, Any]) -> SubscriptionState:
        return SubscriptionState(id=str(_field(data, "id")), customer_id=customer_id,
                                 status=str(_field(data, "status")),
                                 friendly_name=str(_field(data, "friendlyName")), offer_id=str(_field(data, "offerId")),
                                 raw=data)

    # -- Azure entitlements ----------------------------------------------------------------------

    def list_azure_entitlements(self, customer_id: str, plan_subscription_id: str) -> list[AzureEntitlement]:
        data = self._object("GET", self._entitlements_path(customer_id, plan_subscription_id))
        items = _field(data, "items", [])
        if not isinstance(items, list):
            raise MalformedResponse("expected 'items' to be an array of entitlements", status=200,
                                    service="Partner Center", method="GET", path="azureEntitlements")
        return [self._entitlement(item) for item in items if isinstance(item, dict)]

    def get_azure_entitlement(self, customer_id: str, plan_subscription_id: str,
                              entitlement_id: str) -> AzureEntitlement:
        path = f"{self._entitlements_path(customer_id, plan_subscription_id)}/{_segment(entitlement_id)}"
        return self._entitlement(self._object("GET", path))

    def cancel_azure_entitlement(self, customer_id: str, plan_subscription_id: str,
                                 entitlement_id: str) -> AzureEntitlement | None:
        """Cancel an Azure subscription (reason "compromise", the only documented one). Destructive.

        Returns the entitlement when the service sends it (200); None on a bare 202.
        """
        path = f"{self._entitlements_path(customer_id, plan_subscription_id)}/{_segment(entitlement_id)}/cancel"
        return self._optional_entitlement("POST", path, {"cancellationReason": "compromise"})

    def reactivate_azure_entitlement(self, customer_id: str, plan_subscription_id: str,
                                     entitlement_id: str) -> AzureEntitlement | None:
        """Undo a cancellation (202 Accepted)."""
        path = f"{self._entitlements_path(customer_id, plan_subscription_id)}/{_segment(entitlement_id)}/reactivate"
        return self._optional_entitlement("POST", path, None)

    def _optional_entitlement(self, method: str, path: str, body: Any) -> AzureEntitlement | None:
        response = self.http.request(method, path, json=body, expected=(200, 202))
        if not response.content.strip():
            return None
        data = self.http.parse_json(response, method=method, path=path)
        return self._entitlement(data) if isinstance(data, dict) and _field(data, "id") else None

    @staticmethod
    def _entitlements_path(customer_id: str, plan_subscription_id: str) -> str:
        return (f"/v1/customers/{_segment(customer_id)}/subscriptions/{_segment(plan_subscription_id)}"
                "/azureEntitlements")

    @staticmethod
    def _entitlement(data: dict[str, Any]) -> AzureEntitlement:
        return AzureEntitlement(id=str(_field(data, "id")), plan_subscription_id=str(_field(data, "subscriptionId")),
                                friendly_name=str(_field(data, "friendlyName")), status=str(_field(data, "status")),
                                raw=data)

    # -- customers and audit records -----------------------------------------------------------------

    def customer_pages(self, *, size: int = CUSTOMER_PAGE_SIZE) -> Iterator[list[Customer]]:
        """Every customer, a page at a time (``GET /v1/customers?size=``, then links.next with the
        ``MS-ContinuationToken`` header). Items without an id are skipped (``skipped_customers``).

        :raises ValueError: when ``size`` is not between 1 and 500.
        :raises shared.http.MicrosoftApiError: what Partner Center answered.
        """
        if not 1 <= size <= 500:
            raise ValueError("size must be between 1 and 500")
        for items in self._collection_pages("/v1/customers", {"size": size}):
            page: list[Customer] = []
            for item in items:
                try:
                    page.append(Customer.from_json(item))
                except (ValueError, TypeError, AttributeError):
                    self.skipped_customers += 1
            yield page

    def customers(self, *, size: int = CUSTOMER_PAGE_SIZE) -> Iterator[Customer]:
        """Every customer (see :meth:`customer_pages`)."""
        for page in self.customer_pages(size=size):
            yield from page

    def audit_record_pages(self, *, start: dt.datetime, end: dt.datetime | None = None,
                           filter_field: str | None = None, filter_value: str | None = None) -> Iterator[list[Any]]:
        """Audit records of [start, end) as Partner Center sends them (raw items, any JSON), a page at a time.

        Partner Center keeps 90 days and answers at most 30 days per query: a longer span is read
        window by window, oldest first. ``filter_field`` is ``CustomerId`` or ``ResourceType``
        (equals) or ``CompanyName`` (substring). Items are raw so a reader can skip one it cannot parse.

        :raises ValueError: for naive times, an empty window, or a start beyond the 90 days kept.
        :raises shared.http.MicrosoftApiError: what Partner Center answered.
        """
        if start.tzinfo is None or (end is not None and end.tzinfo is None):
            raise ValueError("use timezone-aware datetimes (UTC) for the audit-record window")
        stop = end or dt.datetime.now(dt.UTC)
        if stop <= start:
            raise ValueError("the audit-record window must end after it starts")
        query: dict[str, str | int] = {}
        if filter_field:
            operator = "substring" if filter_field.lower() == "companyname" else "equals"
            query["filter"] = json.dumps({"Field": filter_field, "Value": filter_value or "", "Operator": operator})
        window_start = start
        while window_start < stop:
            window_end = min(stop, window_start + AUDIT_WINDOW)
            params = {**query, "startDate": _pc_time(window_start), "endDate": _pc_time(window_end)}
            yield from self._collection_pages("/v1/auditrecords", params)
            window_start = window_end

    def _collection_pages(self, path: str, params: dict[str, str | int]) -> Iterator[list[Any]]:
        """Pages of a Partner Center collection, following links.next and its continuation header."""
        next_path: str | None = path
        query: dict[str, str | int] | None = params
        headers: dict[str, str] | None = None
        while next_path is not None:
            data = self.http.request_json("GET", next_path, params=query, headers=headers)
            if not isinstance(data, dict):
                raise MalformedResponse("expected a JSON object", status=200, service="Partner Center", method="GET",
                                        path=path)
            items = _field(data, "items", [])
            if not isinstance(items, list):
                raise MalformedResponse("expected 'items' to be an array", status=200, service="Partner Center",
                                        method="GET", path=path)
            yield items
            next_path, query, headers = self._next_link(data, path)

    @staticmethod
    def _next_link(data: dict[str, Any], path: str) -> tuple[str | None, None, dict[str, str] | None]:
        links = _field(data, "links", {})
        following = _field(links, "next", None) if isinstance(links, dict) else None
        if not isinstance(following, dict):
            return None, None, None
        uri = str(_field(following, "uri", "") or "")
        if not uri.startswith("/") or "://" in uri:
            raise MalformedResponse("links.next.uri is not a relative Partner Center path", status=200,
                                    service="Partner Center", method="GET", path=path)
        headers = {str(_field(h, "key", "")): str(_field(h, "value", ""))
                   for h in _field(following, "headers", []) or [] if isinstance(h, dict) and _field(h, "key", "")}
        token = _field(data, "continuationToken", "")
        if token and CONTINUATION_HEADER not in headers:
            headers[CONTINUATION_HEADER] = str(token)
        return (uri if uri.lower().startswith("/v1/") else "/v1" + uri), None, headers

    # -- webhooks --------------------------------------------------------------------------------

    def webhook_event_names(self) -> list[str]:
        data = self.http.request_json("GET", "/webhooks/v1/registration/events")
        if not isinstance(data, list):
            raise MalformedResponse("expected a JSON array of event names", status=200, service="Partner Center",
                                    method="GET", path="/webhooks/v1/registration/events")
        return [str(name) for name in data]

    def get_webhook_registration(self) -> WebhookRegistration | None:
        """The current registration, or None when the partner has none."""
        try:
            return self._registration(self._object("GET", "/webhooks/v1/registration"))
        except NotFound:
            return None

    def register_webhook(self, url: str, events: list[str], *, signature_in_ms_signature_header: bool = False,
                         update: bool = False) -> WebhookRegistration:
        """Create (POST) or, with ``update``, replace (PUT) the registration."""
        body: dict[str, Any] = {"WebhookUrl": url, "WebhookEvents": list(events)}
        if signature_in_ms_signature_header:
            body["SignatureTokenToMsSignatureHeader"] = True
        return self._registration(self._object("PUT" if update else "POST", "/webhooks/v1/registration", json=body))

    def send_validation_event(self) -> str:
        """POST a test-created event to the registered URL; returns its correlation id (2 per minute)."""
        data = self._object("POST", "/webhooks/v1/registration/validationEvents")
        return str(_field(data, "correlationId"))

    def get_validation_event(self, correlation_id: str) -> ValidationEvent:
        data = self._object("GET", f"/webhooks/v1/registration/validationEvents/{_segment(correlation_id)}")
        results = _field(data, "results", []) or []
        return ValidationEvent(
            correlation_id=str(_field(data, "correlationId")), partner_id=str(_field(data, "partnerId")),
            status=str(_field(data, "status")), callback_url=str(_field(data, "callbackUrl")),
            results=tuple(
                ValidationAttempt(str(_field(r, "responseCode") or ""), str(_field(r, "responseMessage") or ""),
                                  str(_field(r, "systemError") or ""), str(_field(r, "dateTimeUtc") or ""))
                for r in results if isinstance(r, dict)
            ),
        )

    @staticmethod
    def _registration(data: dict[str, Any]) -> WebhookRegistration:
        events = _field(data, "WebhookEvents", []) or []
        flag = _field(data, "SignatureTokenToMsSignatureHeader", False)
        return WebhookRegistration(subscriber_id=str(_field(data, "SubscriberId")),
                                   webhook_url=str(_field(data, "WebhookUrl")),
                                   webhook_events=tuple(str(e) for e in events),
                                   signature_in_ms_signature_header=flag is True or str(flag).lower() == "true")

    # -- helpers ---------------------------------------------------------------------------------

    def _object(self, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        data = self.http.request_json(method, path, json=json)
        if not isinstance(data, dict):
            raise MalformedResponse("expected a JSON object", status=200, service="Partner Center", method=method,
                                    path=path)
        return data
