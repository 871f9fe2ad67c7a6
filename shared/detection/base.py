"""The detection seams: typed readings, detector inputs and outcomes, findings, and the protocols.

Why a seam here: the readers (HTTP clients of ARM and Partner Center), the detectors (pure
rules) and the runner (fan-out, checkpoints, storage) change for different reasons and are tested
apart. A detector never does I/O: it gets readings and the state it returned last time, and
returns findings and its new state. That makes "a run that dies resumes without double counting"
a property of the runner alone: the runner stores the findings (idempotent, one alert per
detector, subscription and episode) before it stores the new state and checkpoint, so a crash in
between replays the same readings against the same old state and yields the same findings.

Times are timezone-aware UTC. Identifiers (subscription, tenant, principal ids) are lower case.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from shared.alerts import AffectedResource

SUBSCRIPTION_SCOPE: Final = "subscription"
PARTNER_SCOPE: Final = "partner"
Scope = Literal["subscription", "partner"]


# --- what we watch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One customer subscription to watch (an Azure plan entitlement in Partner Center)."""

    customer_tenant_id: str
    subscription_id: str
    customer_name: str = ""
    reseller_id: str = ""
    """The indirect reseller's partner id (MPN id) when the customer has one, else ""."""


# --- readings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityEvent:
    """One ARM activity-log entry (``eventtypes/management/values``), reduced to what detectors use."""

    event_id: str
    """``eventDataId``: unique per entry; the runner dedupes on it."""
    operation: str
    """``operationName.value``, lower case, e.g. ``microsoft.compute/virtualmachines/write``."""
    status: str
    """``status.value``, lower case: started, accepted, succeeded, failed, ..."""
    timestamp: datetime
    """``eventTimestamp``."""
    subscription_id: str
    resource_id: str
    """``resourceId`` (lower case)."""
    caller: str = ""
    """``caller``: a UPN, or an object id for a service principal."""
    principal_id: str = ""
    """The caller's object id (claim ``http://schemas.microsoft.com/identity/claims/objectidentifier``)."""
    principal_tenant_id: str = ""
    """The caller's tenant (claim ``http://schemas.microsoft.com/identity/claims/tenantid``)."""
    ip_address: str = ""
    """Claim ``ipaddr`` when present."""
    location: str = ""
    """The resource's region (from the request or response body), lower case, "" when unknown."""
    properties: Mapping[str, Any] = field(default_factory=dict)
    """``properties`` with ``requestbody`` / ``responseBody`` parsed from their JSON strings."""
    correlation_id: str = ""


@dataclass(frozen=True)
class QuotaReading:
    """One row of ``Microsoft.Compute/locations/{location}/usages`` at one time."""

    location: str
    name: str
    """``name.value``, e.g. ``cores``, ``standardNCSv3Family``."""
    current: int
    limit: int
    read_at: datetime
    display_name: str = ""
    """``name.localizedValue``."""


@dataclass(frozen=True)
class AuditRecord:
    """One Partner Center audit record (``GET /v1/auditrecords``)."""

    record_id: str
    operation_type: str
    """``operationType``, e.g. ``AddCustomer``, ``CreateOrder``, ``UpdateSubscription``."""
    resource_type: str
    """``resourceType``, e.g. ``Customer``, ``Order``, ``Subscription``."""
    operation_date: datetime
    customer_id: str = ""
    customer_name: str = ""
    resource_id: str = ""
    status: str = ""
    user_principal: str = ""
    """``userPrincipalName`` of the partner user (or app) who did it."""
    reseller_id: str = ""
    """The indirect reseller on the record (partner id on record), when the record names one."""
    new_value: Mapping[str, Any] = field(default_factory=dict)
    """``resourceNewValue`` parsed from its JSON string."""


# --- detector inputs and outcomes -------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionInput:
    """What a subscription-scope detector judges in one run."""

    target: Target
    now: datetime
    events: tuple[ActivityEvent, ...]
    """New since the checkpoint (deduped, oldest first): judged."""
    baseline: tuple[ActivityEvent, ...] = ()
    """First run only: older history (the look-back before the judged window), learned, not judged."""
    quotas: tuple[QuotaReading, ...] = ()
    """This run's usages for the regions of interest (every region seen in events, baseline or state)."""


@dataclass(frozen=True)
class PartnerInput:
    """What a partner-scope detector (micro-fraud) judges in one run."""

    now: datetime
    records: tuple[AuditRecord, ...]
    """New since the checkpoint (deduped, oldest first): judged."""
    baseline: tuple[AuditRecord, ...] = ()
    """First run only: older audit history, learned, not judged."""
    targets: tuple[Target, ...] = ()
    """Every watched subscription (customer and reseller names)."""


@dataclass(frozen=True)
class Finding:
    """What a detector concluded: becomes (or updates) one alert of the detector's source.

    One alert per detector, subject and episode: ``episode`` is a stable key the detector keeps in
    its state while an episode goes on (e.g. the time its first event was seen), so later runs
    update the same alert (new resources, higher count) instead of raising another.
    """

    detector: str
    """The detector's source name (``shared.sources``)."""
    type: str
    """Alert type, e.g. ``ComputeBurst``; an open set like Microsoft's."""
    customer_tenant_id: str
    subscription_id: str
    """"" for a finding about a customer or reseller as a whole (micro-fraud)."""
    episode: str
    severity: str
    """informational | low | medium | high."""
    confidence: str
    """low | medium | high."""
    title: str
    description: str
    """Why it fired, in one or two sentences an operator can act on."""
    first_observed_at: datetime
    last_observed_at: datetime
    count: int
    """The episode's size (events, resources or records): the alert's hit count."""
    resources: tuple[AffectedResource, ...] = ()
    """Resources the response may act on (``stop_resources``): full ARM ids."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """JSON-safe: principals, sizes, regions, counts, the threshold and rule that fired."""
    subject_key: str = ""
    """What a finding about neither one subscription nor one customer is about (micro-fraud:
    ``reseller-<partner id>`` or ``user-<upn>``); "" otherwise."""

    @property
    def subject(self) -> str:
        return self.subscription_id or self.customer_tenant_id or self.subject_key

    @property
    def alert_id(self) -> str:
        return f"{self.subject}:{self.episode}"


@dataclass(frozen=True)
class Outcome:
    """A detector's answer for one run: its findings and the state to keep for the next run."""

    findings: tuple[Finding, ...]
    state: Mapping[str, Any]
    """JSON-safe and bounded (at most ~30,000 characters as JSON): prune old history."""


# --- protocols ---------------------------------------------------------------------------------------


class Detector(Protocol):
    """A detector: pure, deterministic for the same input and state."""

    name: str
    """Its source name in ``shared.sources`` (lower case)."""
    scope: Scope

    def detect(self, data: SubscriptionInput | PartnerInput, state: Mapping[str, Any],
               config: Any) -> Outcome: ...
    # ``config``: this detector's section of ``shared.detection.config.DetectionConfig``.


class DetectionReader(Protocol):
    """Reads what detectors judge, from Partner Center and ARM (``shared.detection.reader``).

    Every method raises the client errors of ``shared.clients`` (throttling already honoured:
    ``Retry-After`` and ``x-ms-ratelimit-remaining-subscription-reads``).
    """

    def targets(self) -> Iterator[Target]:
        """Every customer's Azure plan subscriptions (customers, then their entitlements)."""
        ...

    def activity_events(self, subscription_id: str, *, since: datetime,
                        until: datetime | None = None) -> Iterator[ActivityEvent]:
        """Activity-log entries with ``eventTimestamp`` in [since, until), any order, paged."""
        ...

    def quota_readings(self, subscription_id: str, location: str) -> list[QuotaReading]:
        """Compute usages in one region."""
        ...

    def audit_records(self, *, since: datetime, until: datetime | None = None) -> Iterator[AuditRecord]:
        """Partner Center audit records in [since, until), paged."""
        ...


def oldest_first(items: Sequence[Any], key: str = "timestamp") -> tuple[Any, ...]:
    """Readings sorted by their time attribute (ARM returns newest first)."""
    return tuple(sorted(items, key=lambda item: getattr(item, key)))
