"""Azure Resource Manager client: activity log, VM / scale-set power, subscription cancel.

One client per customer tenant: ``token`` returns an ARM token issued in the tenant that owns the
subscriptions (the SAM refresh token redeemed there); ARM refuses tokens from any other tenant.

Power actions (deallocate, powerOff, start) are long-running operations: the client follows the
``Azure-AsyncOperation`` (or ``Location``) URL, honouring ``Retry-After``, until the operation
ends or the time bound runs out, and returns the resource's power state read afterwards.
:class:`OperationTimedOut` carries the status URL so a later job can pick the operation up.
Polling URLs are followed only on the client's own host, so a token never leaves for elsewhere.

Throttling: 429 and 503 honour ``Retry-After`` (shared.http). Reads also watch ARM's token bucket
through ``x-ms-ratelimit-remaining-subscription-reads``: when fewer than ``low_reads`` (default 25)
reads remain, the next read waits until the bucket has refilled to ``low_reads`` at ARM's
documented refill rate (``read_refill_per_second``, 25 a second): ``(low_reads - remaining) /
read_refill_per_second`` seconds, so a fan-out slows down before ARM answers 429 instead of after.

An accepted operation shows in the instance view at once as a transitional power state
(``deallocating``, ``stopping``, ``starting``). A caller that lost the operation (its worker died
after the 202) follows it with :meth:`ArmClient.wait_while` instead of calling again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import ssl
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from shared.formats import GUID_PATTERN, is_guid, parse_time
from shared.http import (
    MalformedResponse,
    MicrosoftApiError,
    MicrosoftClient,
    RetryPolicy,
    ServiceClient,
    TransientError,
    parse_retry_after,
    verify_from_settings,
)
from shared.settings import Settings

SCOPE = "https://management.azure.com/.default"
"""The scope ARM tokens are requested with (v2 form of the ARM resource id)."""
COMPUTE_API_VERSION = "2024-07-01"
ACTIVITY_LOG_API_VERSION = "2015-04-01"
SUBSCRIPTION_API_VERSION = "2021-10-01"
"""Microsoft.Subscription (cancel / enable)."""
RESOURCES_API_VERSION = "2022-12-01"
"""GET /subscriptions/{id}."""

COMPUTE_USAGE_API_VERSION = "2024-07-01"
LOW_READS = 25
"""Below this many remaining subscription reads, reads pause for the bucket to refill (see the module doc)."""
READ_REFILL_PER_SECOND = 25.0
"""ARM's token-bucket refill rate for subscription reads (Azure Resource Manager throttling)."""
REMAINING_READS_HEADER = "x-ms-ratelimit-remaining-subscription-reads"

DEFAULT_LRO_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 10.0
"""Seconds between polls when the service sends no Retry-After."""
DEFAULT_TRANSITION_WAIT = 300.0
"""How long :meth:`ArmClient.wait_while` follows a transitional power state: half the function timeout,
so the job can still record what it found."""
FIRST_TRANSITION_DELAY = 0.25
"""The first pause between reads of a resource in transition; it doubles up to ``poll_interval``."""

_NAME = r"[^/?#\s]+"
_COMPUTE_ID = re.compile(
    rf"/subscriptions/(?P<sub>{GUID_PATTERN})/resourceGroups/(?P<rg>{_NAME})/providers/Microsoft\.Compute/"
    rf"(?P<kind>virtualMachines|virtualMachineScaleSets)/(?P<name>{_NAME})",
    re.IGNORECASE,
)

ResourceKind = Literal["virtualMachines", "virtualMachineScaleSets"]


class OperationFailed(MicrosoftApiError):
    """A long-running operation ended in Failed or Canceled; ``code``/``message`` are ARM's."""

    hint = "the operation did not complete: read the resource again and retry, or act on it by hand"


class OperationTimedOut(MicrosoftApiError):
    """The operation was still running when the time bound ran out; ``operation_url`` can be polled later."""

    hint = "the operation is still running at Azure: poll it again later or check the resource's state"

    def __init__(self, message: str, *, operation_url: str, **kwargs: Any) -> None:
        self.operation_url = operation_url
        super().__init__(message, **kwargs)


class StillInTransition(TransientError):
    """The resource was still in a transitional power state when the wait ran out (retryable)."""

    hint = "an operation on the resource is still under way at Azure: it is followed again on the next attempt"


def _value(item: Any) -> str:
    """ARM's ``{value, localizedValue}`` pair (or a plain string) as its value."""
    if isinstance(item, dict):
        return str(item.get("value") or "")
    return str(item or "")


def _utc_text(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("use timezone-aware datetimes (UTC) for the activity-log window")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscription(subscription_id: str) -> str:
    if not is_guid(subscription_id.strip()):
        raise ValueError(f"{subscription_id!r} is not a subscription id (a GUID)")
    return subscription_id.strip()


def _compute_id(resource_id: str, kind: ResourceKind) -> str:
    match = _COMPUTE_ID.fullmatch(resource_id.strip().rstrip("/"))
    if not match or match["kind"].lower() != kind.lower():
        example = (f"/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Compute/{kind}/<name>")
        raise ValueError(f"{resource_id!r} is not a {kind} resource id; expected {example}")
    return resource_id.strip().rstrip("/")


@dataclass(frozen=True)
class ActivityLogEvent:
    """One Azure Monitor activity-log event, with who did what to which resource."""

    event_data_id: str
    timestamp: dt.datetime | None
    operation: str
    operation_display: str
    status: str
    sub_status: str
    caller: str
    caller_object_id: str
    caller_app_id: str
    resource_id: str
    resource_group: str
    resource_type: str
    resource_provider: str
    subscription_id: str
    correlation_id: str
    level: str
    category: str
    authorization_action: str
    authorization_scope: str
    submitted: dt.datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    caller_tenant_id: str = ""
    """The caller's home tenant: the identity provider's tenant for a foreign principal (the partner's admin
    agent through GDAP), else the ``tenantid`` claim."""
    ip_address: str = ""
    """The ``ipaddr`` claim (or ``httpRequest.clientIpAddress``)."""
    properties: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """``properties`` with ``requestbody`` / ``responseBody`` parsed from their JSON strings where they are JSON."""

    @property
    def caller_is_user(self) -> bool:
        """True for a user (caller is a UPN); False for a service principal or managed identity."""
        return "@" in self.caller

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActivityLogEvent:
        claims = data.get("claims") if isinstance(data.get("claims"), dict) else {}
        authorization = data.get("authorization") if isinstance(data.get("authorization"), dict) else {}
        assert isinstance(claims, dict) and isinstance(authorization, dict)
        return cls(
            event_data_id=str(data.get("eventDataId") or ""),
            timestamp=parse_time(data.get("eventTimestamp")),
            operation=_value(data.get("operationName")),
            operation_display=str((data.get("operationName") or {}).get("localizedValue") or "")
            if isinstance(data.get("operationName"), dict) else _value(data.get("operationName")),
            status=_value(data.get("status")),
            sub_status=_value(data.get("subStatus")),
            caller=str(data.get("caller") or ""),
            caller_object_id=str(claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier") or ""),
            caller_app_id=str(claims.get("appid") or ""),
            resource_id=str(data.get("resourceId") or ""),
            resource_group=str(data.get("resourceGroupName") or ""),
            resource_type=_value(data.get("resourceType")),
            resource_provider=_value(data.get("resourceProviderName")),
            subscription_id=str(data.get("subscriptionId") or ""),
            correlation_id=str(data.get("correlationId") or ""),
            level=str(data.get("level") or ""),
            category=_value(data.get("category")),
            authorization_action=str(authorization.get("action") or ""),
            authorization_scope=str(authorization.get("scope") or ""),
            submitted=parse_time(data.get("submissionTimestamp")),
            raw=data,
            caller_tenant_id=_caller_tenant(claims),
            ip_address=str(claims.get("ipaddr") or _field_of(data.get("httpRequest"), "clientIpAddress")),
            properties=parsed_properties(data.get("properties")),
        )


_IDP_TENANT = re.compile(r"https://sts\.windows\.net/(?P<tenant>[0-9a-fA-F-]{36})/?")


def _field_of(value: Any, name: str) -> str:
    return str(value.get(name) or "") if isinstance(value, dict) else ""


def _caller_tenant(claims: dict[str, Any]) -> str:
    provider = str(claims.get("http://schemas.microsoft.com/identity/claims/identityprovider") or "")
    match = _IDP_TENANT.fullmatch(provider)
    if match:
        return match["tenant"].lower()
    return str(claims.get("http://schemas.microsoft.com/identity/claims/tenantid") or "").lower()


def parsed_properties(value: Any) -> dict[str, Any]:
    """An event's ``properties`` with the JSON-string bodies (``requestbody``, ``responseBody``, any case)
    parsed; a body that is not JSON is kept as its string."""
    if not isinstance(value, dict):
        return {}
    parsed: dict[str, Any] = {}
    for key, item in value.items():
        if key.lower() in ("requestbody", "responsebody") and isinstance(item, str) and item.strip():
            try:
                parsed[key] = json.loads(item)
            except ValueError:
                parsed[key] = item
        else:
            parsed[key] = item
    return parsed


@dataclass(frozen=True)
class ComputeUsage:
    """One row of ``Microsoft.Compute/locations/{location}/usages``: a quota and how much of it is used."""

    location: str
    name: str
    """``name.value``: ``cores`` (total regional vCPUs) or a VM family, e.g. ``standardDSv5Family``."""
    localized_name: str
    current_value: int
    limit: int
    unit: str = "Count"

    @classmethod
    def from_json(cls, data: dict[str, Any], *, location: str) -> ComputeUsage:
        """:raises ValueError: when ``name``, ``currentValue`` or ``limit`` is missing or not a number."""
        name = data.get("name")
        value = _value(name)
        if not value:
            raise ValueError("a usage row has no name.value")
        localized = str(name.get("localizedValue") or value) if isinstance(name, dict) else value
        return cls(location=location.lower(), name=value, localized_name=localized,
                   current_value=int(data["currentValue"]), limit=int(data["limit"]), unit=str(data.get("unit") or
                                                                                              "Count"))


@dataclass(frozen=True)
class PowerState:
    """A VM's or scale set's power and provisioning state (``power_state``: running, deallocated, …)."""

    resource_id: str
    kind: ResourceKind
    name: str
    location: str
    power_state: str
    provisioning_state: str
    size: str = ""
    capacity: int | None = None
    instance_power_states: dict[str, int] = field(default_factory=dict)
    """Scale sets only: instances per power state."""

    @property
    def running(self) -> bool:
        return self.power_state == "running"

    @property
    def stopped(self) -> bool:
        """Deallocated or stopped: not mining any more (stopped VMs still bill compute)."""
        return self.power_state in ("deallocated", "stopped")


@dataclass(frozen=True)
class SubscriptionInfo:
    subscription_id: str
    tenant_id: str
    display_name: str
    state: str


def _power_from_statuses(statuses: Any) -> tuple[str, str]:
    power, provisioning = "unknown", ""
    for status in statuses if isinstance(statuses, list) else []:
        code = str(status.get("code", "")) if isinstance(status, dict) else ""
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1]
        elif code.startswith("ProvisioningState/"):
            provisioning = code.split("/", 1)[1]
    return power, provisioning


class ArmClient(ServiceClient):
    """Calls ``{ARM_URL}``; ``token`` returns an ARM token for the tenant owning the subscriptions."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Callable[[], str],
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        http: MicrosoftClient | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        low_reads: int = LOW_READS,
        read_refill_per_second: float = READ_REFILL_PER_SECOND,
    ) -> None:
        self.http = http or MicrosoftClient(base_url, token=token, verify=verify, retry=retry, sleep=sleep,
                                            clock=clock, service="Azure Resource Manager",
                                            correlation_header="x-ms-correlation-request-id",
                                            request_id_header="x-ms-client-request-id")
        self._origin = urlsplit(self.http.base_url)
        self._sleep = sleep
        self._clock = clock
        self.poll_interval = poll_interval
        self.low_reads = low_reads
        self.read_refill_per_second = read_refill_per_second
        self._read_pause = 0.0
        self.skipped_usages = 0
        """Usage rows that could not be read (skipped, not fatal)."""
        self.remaining_reads: int | None = None
        """The last ``x-ms-ratelimit-remaining-subscription-reads`` seen (None before any read)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, token: Callable[[], str], retry: RetryPolicy | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> ArmClient:
        return cls(settings.arm_url, token=token, verify=verify_from_settings(settings), retry=retry, sleep=sleep)

    # -- activity log ---------------------------------------------------------------------------

    def activity_log_pages(
        self,
        subscription_id: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        resource_uri: str | None = None,
        resource_group: str | None = None,
        correlation_id: str | None = None,
        select: Collection[str] | None = None,
    ) -> Iterator[list[ActivityLogEvent]]:
        """Pages of activity-log events between ``start`` and ``end`` (both inclusive, to the second; newest
        first), following nextLink. ``select`` limits the fields ARM returns (``$select``).

        Azure keeps 90 days; a window longer than that is refused by the service.

        :raises ValueError: when the window is empty or its times are naive.
        :raises shared.http.MicrosoftApiError: what ARM answered (BadRequest for a window beyond 90 days,
            Throttled when throttling outlasts the retry budget).
        """
        if end <= start:
            raise ValueError("the activity-log window must end after it starts")
        ceiling = end.replace(microsecond=0) + (dt.timedelta(seconds=1) if end.microsecond else dt.timedelta())
        clauses = [f"eventTimestamp ge '{_utc_text(start)}'", f"eventTimestamp le '{_utc_text(ceiling)}'"]
        for name, value in (("resourceUri", resource_uri), ("resourceGroupName", resource_group),
                            ("correlationId", correlation_id)):
            if value:
                clauses.append(f"{name} eq '{value.replace(chr(39), chr(39) * 2)}'")
        path = (f"/subscriptions/{_subscription(subscription_id)}/providers/Microsoft.Insights/eventtypes/"
                "management/values")
        next_path: str | None = path
        params: dict[str, str | int] | None = {"api-version": ACTIVITY_LOG_API_VERSION,
                                               "$filter": " and ".join(clauses)}
        if select:
            assert params is not None
            params["$select"] = ",".join(select)
        while next_path is not None:
            data = self._object("GET", next_path, params=params)
            value = data.get("value")
            if not isinstance(value, list):
                raise MalformedResponse("expected a 'value' array of events", status=200, service=self.http.service,
                                        method="GET", path=path)
            yield [ActivityLogEvent.from_json(item) for item in value if isinstance(item, dict)]
            link = data.get("nextLink")
            next_path = self._same_origin(str(link), path) if link else None
            params = None

    def activity_log_raw_pages(self, subscription_id: str, *, start: dt.datetime,
                               end: dt.datetime) -> Iterator[list[Any]]:
        """Pages of activity-log entries as ARM sent them (``value`` items, any JSON), for readers that
        parse each entry themselves and skip the ones they cannot read.

        :raises ValueError: when the window is empty or its times are naive.
        :raises shared.http.MicrosoftApiError: what ARM answered.
        """
        if end <= start:
            raise ValueError("the activity-log window must end after it starts")
        ceiling = end.replace(microsecond=0) + (dt.timedelta(seconds=1) if end.microsecond else dt.timedelta())
        path = (f"/subscriptions/{_subscription(subscription_id)}/providers/Microsoft.Insights/eventtypes/"
                "management/values")
        next_path: str | None = path
        params: dict[str, str | int] | None = {
            "api-version": ACTIVITY_LOG_API_VERSION,
            "$filter": f"eventTimestamp ge '{_utc_text(start)}' and eventTimestamp le '{_utc_text(ceiling)}'"}
        while next_path is not None:
            data = self._object("GET", next_path, params=params)
            value = data.get("value")
            if not isinstance(value, list):
                raise MalformedResponse("expected a 'value' array of events", status=200, service=self.http.service,
                                        method="GET", path=path)
            yield value
            link = data.get("nextLink")
            next_path = self._same_origin(str(link), path) if link else None
            params = None

    # -- compute usages -----------------------------------------------------------------------------

    def compute_usages(self, subscription_id: str, location: str) -> list[ComputeUsage]:
        """Core quotas and their use in one region (``Usage - List``), every page.

        A row that is not a usage (no name, a non-number) is skipped; ``skipped_usages`` counts them.

        :raises ValueError: when the subscription id is not a GUID or the location is empty.
        :raises shared.http.MicrosoftApiError: what ARM answered.
        """
        region = location.strip().lower()
        if not region or "/" in region:
            raise ValueError(f"{location!r} is not an Azure region name (e.g. westeurope)")
        path = f"/subscriptions/{_subscription(subscription_id)}/providers/Microsoft.Compute/locations/{region}/usages"
        rows: list[ComputeUsage] = []
        next_path: str | None = path
        params: dict[str, str | int] | None = {"api-version": COMPUTE_USAGE_API_VERSION}
        while next_path is not None:
            data = self._object("GET", next_path, params=params)
            value = data.get("value")
            if not isinstance(value, list):
                raise MalformedResponse("expected a 'value' array of usages", status=200, service=self.http.service,
                                        method="GET", path=path)
            for item in value:
                try:
                    rows.append(ComputeUsage.from_json(item, location=region))
                except (ValueError, TypeError, KeyError, AttributeError):
                    self.skipped_usages += 1
            link = data.get("nextLink")
            next_path = self._same_origin(str(link), path) if link else None
            params = None
        return rows

    def activity_log(self, subscription_id: str, **window: Any) -> Iterator[ActivityLogEvent]:
        """Every event in the window (arguments as for :meth:`activity_log_pages`)."""
        for page in self.activity_log_pages(subscription_id, **window):
            yield from page

    # -- VMs and scale sets -----------------------------------------------------------------------

    def get_vm(self, resource_id: str) -> PowerState:
        """The VM with its instance view (power state)."""
        path = _compute_id(resource_id, "virtualMachines")
        data = self._object("GET", path, params={"api-version": COMPUTE_API_VERSION, "$expand": "instanceView"})
        properties = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        assert isinstance(properties, dict)
        view = properties.get("instanceView") if isinstance(properties.get("instanceView"), dict) else {}
        assert isinstance(view, dict)
        power, provisioning = _power_from_statuses(view.get("statuses"))
        return PowerState(
            resource_id=str(data.get("id") or path), kind="virtualMachines", name=str(data.get("name") or ""),
            location=str(data.get("location") or ""), power_state=power,
            provisioning_state=str(properties.get("provisioningState") or provisioning),
            size=str((properties.get("hardwareProfile") or {}).get("vmSize") or ""),
        )

    def get_vmss(self, resource_id: str) -> PowerState:
        """The scale set and its instance view (instances per power state)."""
        path = _compute_id(resource_id, "virtualMachineScaleSets")
        data = self._object("GET", path, params={"api-version": COMPUTE_API_VERSION})
        view = self._object("GET", f"{path}/instanceView", params={"api-version": COMPUTE_API_VERSION})
        counts: dict[str, int] = {}
        summary = (view.get("virtualMachine") or {}).get("statusesSummary") if isinstance(
            view.get("virtualMachine"), dict) else None
        for entry in summary if isinstance(summary, list) else []:
            code = str(entry.get("code", "")) if isinstance(entry, dict) else ""
            if code.startswith("PowerState/"):
                counts[code.split("/", 1)[1]] = int(entry.get("count") or 0)
        running = [state for state, count in counts.items() if count]
        power = running[0] if len(running) == 1 else ("mixed" if running else "unknown")
        properties = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        sku = data.get("sku") if isinstance(data.get("sku"), dict) else {}
        assert isinstance(properties, dict) and isinstance(sku, dict)
        capacity = sku.get("capacity")
        return PowerState(
            resource_id=str(data.get("id") or path), kind="virtualMachineScaleSets", name=str(data.get("name") or ""),
            location=str(data.get("location") or ""), power_state=power,
            provisioning_state=str(properties.get("provisioningState") or ""), size=str(sku.get("name") or ""),
            capacity=capacity if isinstance(capacity, int) else None, instance_power_states=counts,
        )

    def deallocate_vm(self, resource_id: str, *, timeout: float = DEFAULT_LRO_TIMEOUT) -> PowerState:
        """Stop the VM and release its compute (no compute billing); reversible with :meth:`start_vm`."""
        return self._power_action("virtualMachines", resource_id, "deallocate", {}, timeout)

    def power_off_vm(self, resource_id: str, *, skip_shutdown: bool = False,
                     timeout: float = DEFAULT_LRO_TIMEOUT) -> PowerState:
        """Stop the VM but keep its compute allocated (still billed)."""
        params = {"skipShutdown": "true"} if skip_shutdown else {}
        return self._power_action("virtualMachines", resource_id, "powerOff", params, timeout)

    def start_vm(self, resource_id: str, *, timeout: float = DEFAULT_LRO_TIMEOUT) -> PowerState:
        return self._power_action("virtualMachines", resource_id, "start", {}, timeout)

    def deallocate_vmss(self, resource_id: str, *, timeout: float = DEFAULT_LRO_TIMEOUT) -> PowerState:
        """Deallocate every instance of the scale set."""
        return self._power_action("virtualMachineScaleSets", resource_id, "deallocate", {}, timeout)

    def power_off_vmss(self, resource_id: str, *, timeout: float = DEFAULT_LRO_TIMEOUT) -> PowerState:
        return self._power_action("virtualMachineScaleSets", resource_id, "powerOff", {}, timeout)

    def start_vmss(self, resource_id: str, *, timeout: float = DEFAULT_LRO_TIMEOUT) -> PowerState:
        return self._power_action("virtualMachineScaleSets", resource_id, "start", {}, timeout)

    def wait_while(self, resource_id: str, kind: ResourceKind, states: Collection[str], *,
                   timeout: float = DEFAULT_TRANSITION_WAIT) -> PowerState:
        """Read the resource until its power state is none of ``states`` and return that state.

        For following an operation someone started (or an attempt that died after ARM's 202) without
        its status URL. Raises StillInTransition when it is still in ``states`` after ``timeout``.
        """
        read = self.get_vm if kind == "virtualMachines" else self.get_vmss
        state = read(resource_id)
        deadline = self._clock() + timeout
        delay = FIRST_TRANSITION_DELAY
        while state.power_state in states:
            pause = min(delay, self.poll_interval)
            if self._clock() + pause > deadline:
                raise StillInTransition(f"{state.name or resource_id} is still {state.power_state} after "
                                        f"{timeout:g} s", status=200, service=self.http.service, method="GET",
                                        path=_compute_id(resource_id, kind))
            self._sleep(pause)
            delay *= 2
            state = read(resource_id)
        return state

    def _power_action(self, kind: ResourceKind, resource_id: str, action: str, params: dict[str, str],
                      timeout: float) -> PowerState:
        path = f"{_compute_id(resource_id, kind)}/{action}"
        response = self.http.request("POST", path, params={"api-version": COMPUTE_API_VERSION, **params},
                                     expected=(200, 202))
        if response.status_code == 202:
            self.wait_for_operation(response, timeout=timeout, path=path)
        return self.get_vm(resource_id) if kind == "virtualMachines" else self.get_vmss(resource_id)

    def wait_for_operation(self, accepted: httpx.Response, *, timeout: float = DEFAULT_LRO_TIMEOUT,
                           path: str = "") -> None:
        """Follow a 202's Azure-AsyncOperation (else Location) until it succeeds.

        Raises OperationFailed when it fails and OperationTimedOut when it outlasts ``timeout``.
        """
        async_url = accepted.headers.get("Azure-AsyncOperation")
        location = accepted.headers.get("Location")
        url = async_url or location
        if not url:
            raise MalformedResponse("202 Accepted without Azure-AsyncOperation or Location", status=202,
                                    service=self.http.service, method="POST", path=path)
        url = self._same_origin(url, path)
        deadline = self._clock() + timeout
        delay = self._delay(accepted)
        while True:
            if self._clock() + delay > deadline:
                raise OperationTimedOut(f"still running after {timeout:g} s", operation_url=url, status=202,
                                        service=self.http.service, method="POST", path=path)
            self._sleep(delay)
            if async_url:
                response = self.http.request("GET", url, expected=(200,))
                body = self.http.parse_json(response, method="GET", path=path)
                status = str(body.get("status", "")) if isinstance(body, dict) else ""
                if status.lower() == "succeeded":
                    return
                if status.lower() in ("failed", "canceled", "cancelled"):
                    error = body.get("error") if isinstance(body.get("error"), dict) else {}
                    raise OperationFailed(str(error.get("message") or f"the operation ended {status}"),
                                          status=200, code=str(error.get("code") or status),
                                          service=self.http.service, method="POST", path=path)
                if not status:
                    raise MalformedResponse("the operation status has no 'status'", status=200,
                                            service=self.http.service, method="GET", path=path)
            else:
                try:
                    response = self.http.request("GET", url, expected=(200, 202, 204))
                except MicrosoftApiError as exc:
                    if exc.status >= 400 and exc.status not in (408, 429):
                        raise OperationFailed(exc.message, status=exc.status, code=exc.code,
                                              service=self.http.service, method="POST", path=path) from None
                    raise
                if response.status_code != 202:
                    return
            delay = self._delay(response)

    def _delay(self, response: httpx.Response) -> float:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return self.poll_interval if retry_after is None else retry_after

    # -- subscriptions ------------------------------------------------------------------------------

    def get_subscription(self, subscription_id: str) -> SubscriptionInfo:
        data = self._object("GET", f"/subscriptions/{_subscription(subscription_id)}",
                            params={"api-version": RESOURCES_API_VERSION})
        return SubscriptionInfo(subscription_id=str(data.get("subscriptionId") or subscription_id),
                                tenant_id=str(data.get("tenantId") or ""),
                                display_name=str(data.get("displayName") or ""), state=str(data.get("state") or ""))

    def cancel_subscription(self, subscription_id: str) -> str:
        """Cancel the Azure subscription (destructive: resources stop; reversible for a while). Returns its id."""
        return self._subscription_action(subscription_id, "cancel")

    def enable_subscription(self, subscription_id: str) -> str:
        """Re-enable a cancelled subscription. Returns its id."""
        return self._subscription_action(subscription_id, "enable")

    def _subscription_action(self, subscription_id: str, action: str) -> str:
        path = f"/subscriptions/{_subscription(subscription_id)}/providers/Microsoft.Subscription/{action}"
        data = self._object("POST", path, params={"api-version": SUBSCRIPTION_API_VERSION})
        return str(data.get("subscriptionId") or subscription_id)

    # -- helpers ------------------------------------------------------------------------------------

    def _object(self, method: str, path: str, *, params: dict[str, str | int] | None = None) -> dict[str, Any]:
        if method == "GET" and self._read_pause > 0:
            pause, self._read_pause = self._read_pause, 0.0
            self._sleep(pause)
        response = self.http.request(method, path, params=params)
        self._note_remaining_reads(response)
        data = self.http.parse_json(response, method=method, path=path)
        if not isinstance(data, dict):
            raise MalformedResponse("expected a JSON object", status=200, service=self.http.service, method=method,
                                    path=path)
        return data

    def _note_remaining_reads(self, response: httpx.Response) -> None:
        """Remember ARM's remaining subscription reads; below ``low_reads``, the next read waits for the refill."""
        text = response.headers.get(REMAINING_READS_HEADER)
        if text is None:
            return
        try:
            remaining = int(text)
        except ValueError:
            return
        self.remaining_reads = remaining
        if remaining < self.low_reads and self.read_refill_per_second > 0:
            self._read_pause = math.ceil(100 * (self.low_reads - remaining) / self.read_refill_per_second) / 100

    def _same_origin(self, link: str, path: str) -> str:
        """A service-given URL (nextLink, operation status), only if it is on this client's host."""
        target = urlsplit(link)
        if (target.scheme, target.netloc) != (self._origin.scheme, self._origin.netloc):
            raise MalformedResponse(f"the service pointed at another host ({target.netloc}); refusing to send the "
                                    "token there", status=200, service=self.http.service, method="GET", path=path)
        return link
