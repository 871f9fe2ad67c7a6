"""The detection reader: what detectors judge, read from Partner Center and ARM through the project's clients.

``ClientReader`` implements :class:`shared.detection.base.DetectionReader` over
:class:`shared.clients.partner_center.PartnerCenterClient` (customers, their Azure plans and
entitlements, audit records) and :class:`shared.clients.arm.ArmClient` (activity log, compute
usages). ARM tokens are per customer tenant, so the reader takes a factory (tenant id ->
``ArmClient``) and learns which tenant owns each subscription from :meth:`ClientReader.targets`
(or :meth:`ClientReader.remember`, for a worker that got its targets in a queue message).

The parsing functions turn one raw item into one typed reading. They are tolerant: keys in any
case, optional fields missing, bodies that are JSON strings or already objects. An item that
cannot be read raises ``ValueError`` there; the reader skips it, counts it in ``skipped`` (and
``skipped_by_kind``) and logs it once, and goes on with the others.

Throttling is the clients' job: ``Retry-After`` on 429/503 (shared.http) and the slow-down on
``x-ms-ratelimit-remaining-subscription-reads`` (shared.clients.arm).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shared.detection.base import ActivityEvent, AuditRecord, QuotaReading, Target
from shared.formats import is_guid, parse_time

if TYPE_CHECKING:
    from shared.clients.arm import ArmClient
    from shared.clients.partner_center import PartnerCenterClient

logger = logging.getLogger(__name__)

OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
TENANT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/tenantid"
IDENTITY_PROVIDER_CLAIM = "http://schemas.microsoft.com/identity/claims/identityprovider"
_STS = re.compile(r"https://sts\.windows\.net/(?P<tenant>[0-9a-fA-F-]{36})/?")


# --- tolerant access ---------------------------------------------------------------------------------


def _get(item: Any, name: str, default: Any = None) -> Any:
    """A field of a JSON object by name, ignoring case; ``default`` when absent or not an object."""
    if not isinstance(item, dict):
        return default
    if name in item:
        return item[name]
    wanted = name.lower()
    return next((value for key, value in item.items() if str(key).lower() == wanted), default)


def _text(value: Any) -> str:
    """A string field, or ARM's ``{value, localizedValue}`` pair's value; "" for anything else."""
    if isinstance(value, dict):
        value = _get(value, "value", "")
    return value.strip() if isinstance(value, str) else ""


def _json_object(value: Any) -> dict[str, Any]:
    """A JSON object that may arrive as a JSON string (Azure and Partner Center write bodies as strings)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _time(value: Any, name: str) -> dt.datetime:
    moment = parse_time(value)
    if moment is None:
        raise ValueError(f"{name} is missing or not a time")
    return moment


def _properties(raw: Any) -> dict[str, Any]:
    properties = _get(raw, "properties", {})
    if not isinstance(properties, dict):
        return {}
    parsed = dict(properties)
    for key, value in properties.items():
        if str(key).lower() in ("requestbody", "responsebody"):
            body = _json_object(value)
            parsed[key] = body if body or not isinstance(value, str) else value
    return parsed


def _location(properties: Mapping[str, Any]) -> str:
    """The resource's region from the request or response body (``location``, any case)."""
    for key, body in properties.items():
        if str(key).lower() in ("requestbody", "responsebody"):
            location = _get(body, "location")
            if isinstance(location, str) and location.strip():
                return location.strip().lower().replace(" ", "")
    return ""


# --- parsers -----------------------------------------------------------------------------------------


def parse_activity_event(raw: Any) -> ActivityEvent:
    """One ARM activity-log entry as an :class:`ActivityEvent`.

    :raises ValueError: when it is not an object or lacks ``eventDataId``, ``operationName``,
        ``eventTimestamp`` or ``subscriptionId`` (the reader skips and counts it).
    """
    if not isinstance(raw, dict):
        raise ValueError("an activity-log entry must be a JSON object")
    event_id = _text(_get(raw, "eventDataId"))
    operation = _text(_get(raw, "operationName"))
    if not event_id or not operation:
        raise ValueError("an activity-log entry needs eventDataId and operationName")
    timestamp = _time(_get(raw, "eventTimestamp"), "eventTimestamp")
    resource_id = _text(_get(raw, "resourceId"))
    subscription = _text(_get(raw, "subscriptionId"))
    if not subscription:
        match = re.match(r"/subscriptions/([^/]+)", resource_id, re.IGNORECASE)
        subscription = match.group(1) if match else ""
    if not subscription:
        raise ValueError("an activity-log entry needs subscriptionId")
    claims = _get(raw, "claims", {})
    claims = claims if isinstance(claims, dict) else {}
    caller = _text(_get(raw, "caller"))
    principal = _text(_get(claims, OBJECT_ID_CLAIM)) or (caller if is_guid(caller) else "")
    provider = _STS.fullmatch(_text(_get(claims, IDENTITY_PROVIDER_CLAIM)))
    principal_tenant = provider["tenant"] if provider else _text(_get(claims, TENANT_ID_CLAIM))
    ip_address = _text(_get(claims, "ipaddr")) or _text(_get(_get(raw, "httpRequest", {}), "clientIpAddress"))
    properties = _properties(raw)
    return ActivityEvent(
        event_id=event_id.lower(), operation=operation.lower(), status=_text(_get(raw, "status")).lower(),
        timestamp=timestamp, subscription_id=subscription.lower(), resource_id=resource_id.lower(),
        caller=caller, principal_id=principal.lower(), principal_tenant_id=principal_tenant.lower(),
        ip_address=ip_address, location=_location(properties), properties=properties,
        correlation_id=_text(_get(raw, "correlationId")).lower(),
    )


def parse_quota(raw: Any, location: str, read_at: dt.datetime) -> QuotaReading:
    """One ``Usage - List`` row as a :class:`QuotaReading`.

    :raises ValueError: when ``name.value``, ``currentValue`` or ``limit`` is missing or not a number.
    """
    name = _get(raw, "name")
    value = _text(name)
    if not value:
        raise ValueError("a usage row needs name.value")
    try:
        current = int(_get(raw, "currentValue"))
        limit = int(_get(raw, "limit"))
    except (TypeError, ValueError):
        raise ValueError(f"usage {value}: currentValue and limit must be numbers") from None
    display = _get(name, "localizedValue", "") if isinstance(name, dict) else ""
    return QuotaReading(location=location.strip().lower(), name=value, current=current, limit=limit,
                        read_at=read_at, display_name=display if isinstance(display, str) else "")


def _pascal(value: str) -> str:
    """``add_customer`` -> ``AddCustomer`` (the resources page's spelling -> the REST example's); kept otherwise."""
    if "_" in value or value.islower():
        return "".join(part[:1].upper() + part[1:] for part in value.split("_") if part)
    return value


def _reseller(new_value: Mapping[str, Any]) -> str:
    """The indirect reseller a record names: the customer's ``associatedPartnerId``, an order line's
    ``partnerIdOnRecord``, or a subscription's ``partnerId``."""
    direct = _text(_get(new_value, "associatedPartnerId")) or _text(_get(new_value, "partnerIdOnRecord"))
    if direct:
        return direct
    for line in _get(new_value, "lineItems", []) or []:
        on_record = _text(_get(line, "partnerIdOnRecord"))
        if on_record:
            return on_record
    return _text(_get(new_value, "partnerId"))


def parse_audit_record(raw: Any) -> AuditRecord:
    """One Partner Center audit record as an :class:`AuditRecord`.

    ``operation_type`` and ``resource_type`` are PascalCase (``AddCustomer``, ``Customer``) whichever
    spelling the service used; a record without ``id`` gets a stable one from its content.

    :raises ValueError: when it is not an object or lacks ``operationType``, ``resourceType`` or a
        readable ``operationDate``.
    """
    if not isinstance(raw, dict):
        raise ValueError("an audit record must be a JSON object")
    operation = _text(_get(raw, "operationType"))
    resource_type = _text(_get(raw, "resourceType"))
    if not operation or not resource_type:
        raise ValueError("an audit record needs operationType and resourceType")
    when = _time(_get(raw, "operationDate"), "operationDate")
    new_value = _json_object(_get(raw, "resourceNewValue"))
    record_id = _text(_get(raw, "id"))
    if not record_id:
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
        record_id = f"sha256:{digest[:32]}"
    return AuditRecord(
        record_id=record_id.lower(), operation_type=_pascal(operation), resource_type=_pascal(resource_type),
        operation_date=when, customer_id=_text(_get(raw, "customerId")).lower(),
        customer_name=_text(_get(raw, "customerName")), resource_id=_text(_get(new_value, "id")).lower(),
        status=_text(_get(raw, "operationStatus")), user_principal=_text(_get(raw, "userPrincipalName")),
        reseller_id=_reseller(new_value), new_value=new_value,
    )


# --- the reader --------------------------------------------------------------------------------------


class ClientReader:
    """:class:`DetectionReader` over the Partner Center client and per-tenant ARM clients.

    ``arm``: tenant id -> ``ArmClient`` for that tenant (the caller caches and closes them; see
    :func:`shared.factory.detection_reader`). ``tenants``: subscription id -> tenant id already
    known (optional; :meth:`targets` and :meth:`remember` add to it).
    """

    def __init__(self, *, arm: Callable[[str], ArmClient], partner_center: PartnerCenterClient,
                 tenants: Mapping[str, str] | None = None, customer_page_size: int = 100,
                 clock: Callable[[], dt.datetime] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self._arm = arm
        self._pc = partner_center
        self._tenants: dict[str, str] = {k.lower(): v.lower() for k, v in (tenants or {}).items()}
        self._page_size = customer_page_size
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._on_close = on_close
        self._lock = threading.Lock()
        self.skipped = 0
        """Items that could not be read and were skipped (all kinds)."""
        self.skipped_by_kind: dict[str, int] = {}
        """``activity_event``, ``quota``, ``audit_record``, ``customer``: how many of each were skipped."""

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the clients the factory made (nothing when the caller owns them)."""
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> ClientReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _skip(self, kind: str, error: Exception, where: str) -> None:
        with self._lock:
            self.skipped += 1
            self.skipped_by_kind[kind] = self.skipped_by_kind.get(kind, 0) + 1
        logger.warning("detection reader: skipped an unreadable %s in %s: %s", kind.replace("_", " "), where,
                       str(error)[:200])

    # -- targets -------------------------------------------------------------------------------------

    def remember(self, targets: Iterable[Target]) -> None:
        """Learn which tenant owns each subscription (a worker handed its targets in a message)."""
        for target in targets:
            self._tenants[target.subscription_id.lower()] = target.customer_tenant_id.lower()

    def targets(self) -> Iterator[Target]:
        """Every customer's active Azure plan entitlements (customers, then their Azure plans).

        A customer Partner Center will not show (404 / 403 / 400 on its subscriptions) is skipped
        and counted; throttling and outages propagate (the run retries later).

        :raises shared.http.MicrosoftApiError: what Partner Center answered (other than the above).
        """
        from shared.http import BadRequest, Forbidden, NotFound

        before = self._pc.skipped_customers
        for customer in self._pc.customers(size=self._page_size):
            try:
                plans = [plan for plan in self._pc.list_subscriptions(customer.id) if plan.is_azure_plan]
                entitlements = [(plan, e) for plan in plans
                                for e in self._pc.list_azure_entitlements(customer.id, plan.id)]
            except (NotFound, Forbidden, BadRequest) as exc:
                self._skip("customer", exc, f"customer {customer.id}")
                continue
            for _, entitlement in entitlements:
                if entitlement.status.lower() != "active" or not is_guid(entitlement.id):
                    continue
                subscription = entitlement.id.lower()
                self._tenants[subscription] = customer.id
                yield Target(customer_tenant_id=customer.id, subscription_id=subscription,
                             customer_name=customer.company_name, reseller_id=customer.reseller_id)
        for _ in range(self._pc.skipped_customers - before):
            self._skip("customer", ValueError("a customer item has no id"), "the customer list")

    def _tenant_of(self, subscription_id: str) -> str:
        tenant = self._tenants.get(subscription_id.lower())
        if tenant is None:
            for _ in self.targets():  # learn every subscription's tenant once
                pass
            tenant = self._tenants.get(subscription_id.lower())
        if tenant is None:
            raise LookupError(f"subscription {subscription_id} is not an active Azure plan entitlement of any "
                              "customer: nothing to read")
        return tenant

    # -- readings ------------------------------------------------------------------------------------

    def activity_events(self, subscription_id: str, *, since: dt.datetime,
                        until: dt.datetime | None = None) -> Iterator[ActivityEvent]:
        """Activity-log entries with ``eventTimestamp`` in [since, until) (newest first, paged).

        :raises LookupError: when no customer holds the subscription.
        :raises ValueError: for naive times or an empty window.
        :raises shared.http.MicrosoftApiError: what ARM answered (after the clients' retries).
        """
        end = until or self._clock()
        client = self._arm(self._tenant_of(subscription_id))
        for page in client.activity_log_raw_pages(subscription_id, start=since, end=end):
            for raw in page:
                try:
                    event = parse_activity_event(raw)
                except ValueError as exc:
                    self._skip("activity_event", exc, f"subscription {subscription_id}")
                    continue
                if since <= event.timestamp < end:
                    yield event

    def quota_readings(self, subscription_id: str, location: str) -> list[QuotaReading]:
        """Compute usages in one region (every row ARM lists, per VM family and the regional total).

        :raises LookupError: when no customer holds the subscription.
        :raises shared.http.MicrosoftApiError: what ARM answered.
        """
        client = self._arm(self._tenant_of(subscription_id))
        read_at = self._clock()
        before = client.skipped_usages
        readings = [QuotaReading(location=u.location, name=u.name, current=u.current_value, limit=u.limit,
                                 read_at=read_at, display_name=u.localized_name)
                    for u in client.compute_usages(subscription_id, location)]
        for _ in range(client.skipped_usages - before):
            self._skip("quota", ValueError("a usage row without name, currentValue or limit"),
                       f"subscription {subscription_id}, {location}")
        return readings

    def audit_records(self, *, since: dt.datetime, until: dt.datetime | None = None) -> Iterator[AuditRecord]:
        """Partner Center audit records in [since, until), paged (30-day windows, 90 days kept).

        :raises ValueError: for naive times or an empty window.
        :raises shared.http.MicrosoftApiError: what Partner Center answered.
        """
        end = until or self._clock()
        for page in self._pc.audit_record_pages(start=since, end=end):
            for raw in page:
                try:
                    record = parse_audit_record(raw)
                except ValueError as exc:
                    self._skip("audit_record", exc, "the Partner Center audit log")
                    continue
                if since <= record.operation_date < end:
                    yield record
