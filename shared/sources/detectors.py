"""Our own detectors as alert sources (one module for the four; ``shared.detection``).

Why one module: a detector's finding has one shape whichever detector made it
(``shared.detection.base.Finding``), so turning it into the record the alerts table keeps
(``to_record``) and back into the one ``Alert`` model (``parse``) is the same code for all four.
The record is what the runner stores as the alert's raw payload, so an alert can always be
re-parsed from its row like Microsoft's.

A detector is not polled (``SourceEntry.polled=False``): the detection runner stores its findings;
``fetcher`` returns a source with no pages so a sync that names it does nothing. Detectors are
local only (``writes_status=False``): resolving one records the verdict in our tables.

A finding about neither one subscription nor one customer (micro-fraud, about a reseller or a
partner user) is stored under its subject (``reseller-<id>`` / ``user-<upn>``) as customer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared.alerts import (
    SEVERITIES,
    STATUSES,
    Alert,
    AlertParseError,
    _details,
    _Fields,
    _int,
    _lower_enum,
    _require,
    _resources,
    parse_time,
)

if TYPE_CHECKING:
    from shared.detection.base import Finding
    from shared.intake.sync import SyncScope
    from shared.settings import Settings
    from shared.storage.tables import TableStore

__all__ = ["CATEGORIES", "DETECTOR_NAMES", "categorise", "fetcher", "parse", "to_record"]

CATEGORIES: Final[dict[str, str]] = {
    "ComputeBurst": "compute_burst",
    "PrivilegeChange": "privilege_change",
    "QuotaJump": "quota_jump",
    "MicroFraud": "micro_fraud",
    "SpendSpike": "spend_spike",
    "NewSubscriptionOverCap": "spend_new_subscription",
    "NewMeters": "spend_new_meters",
    "SpendMicroFraud": "spend_micro_fraud",
}
"""Alert type -> category (each detector's types; the set is open: unknown types are 'other')."""

DETECTOR_NAMES: Final = ("compute_burst", "privilege_change", "quota_jump", "micro_fraud", "spend_spike",
                         "spend_new_subscription", "spend_new_meters", "spend_micro_fraud")
"""The activity-log, quota and audit detectors (``shared.detection.detectors``), then the spend rules
(``shared.spend.rules``, judged on the daily series by ``shared.spend.detect``)."""
RECORD_KIND: Final = "detector_finding"


def to_record(finding: Finding) -> dict[str, Any]:
    """The JSON record of a finding: what the alerts table keeps as the alert's raw payload."""
    return {
        "kind": RECORD_KIND,
        "id": finding.alert_id,
        "detector": finding.detector,
        "type": finding.type,
        "status": "active",
        "customerTenantId": finding.customer_tenant_id,
        "subscriptionId": finding.subscription_id,
        "subjectKey": finding.subject_key,
        "episode": finding.episode,
        "severity": finding.severity,
        "confidence": finding.confidence,
        "title": finding.title,
        "description": finding.description,
        "firstObserved": finding.first_observed_at.isoformat(),
        "lastObserved": finding.last_observed_at.isoformat(),
        "count": finding.count,
        "affectedResources": [{"resourceId": r.resource_id, "resourceType": r.resource_type}
                              for r in finding.resources],
        "evidence": dict(finding.evidence),
    }


def parse(record: Mapping[str, Any]) -> Alert:
    """A detector's record (``to_record``) as an alert of that detector's source."""
    if not isinstance(record, Mapping):
        raise AlertParseError("record is not a JSON object")
    f = _Fields(record)
    alert_id = _require(f, "alert id", "id")
    detector = _require(f, "detector", "detector").lower()
    if detector not in DETECTOR_NAMES:
        raise AlertParseError(f"record names no known detector ({detector!r})")
    customer = f.text("customerTenantId") or f.text("subjectKey")
    if not customer:
        raise AlertParseError("record has no customer tenant or subject (customerTenantId / subjectKey)")
    first = parse_time(f.get("firstObserved"))
    details = _details(f.get("evidence"))
    for extra in ("episode", "subjectKey"):
        if f.text(extra):
            details.setdefault(extra, f.text(extra))
    return Alert(
        id=alert_id,
        source=detector,
        customer_tenant_id=customer.lower(),
        subscription_id=f.text("subscriptionId").lower(),
        type=f.text("type") or "DetectorFinding",
        status=_lower_enum(f.text("status") or "active", STATUSES),
        severity=_lower_enum(f.text("severity"), SEVERITIES) if f.text("severity") else "unknown",
        confidence=_lower_enum(f.text("confidence"), ("low", "medium", "high")) if f.text("confidence")
        else "unknown",
        detected_at=first,
        first_observed_at=first,
        last_observed_at=parse_time(f.get("lastObserved")),
        hit_count=_int(f.get("count")),
        affected_resources=_resources(f.get("affectedResources")),
        additional_details=details,
        is_test=False,
        raw=dict(record),
        display_name=f.text("title"),
        description=f.text("description"),
        customer_name=f.text("customerName"),
        resolved_reason=f.text("resolvedReason").lower(),
    )


def categorise(alert_type: str) -> str:
    """A detector's alert type -> its category; 'other' for a type no detector makes."""
    return CATEGORIES.get(alert_type.strip(), "") or next(
        (c for t, c in CATEGORIES.items() if t.lower() == alert_type.strip().lower()), "other")


@dataclass(frozen=True)
class _NotPolled:
    """A detector's source for the sync: no pages (the detection runner stores its findings)."""

    name: str

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]:
        return iter(())


def fetcher(settings: Settings, store: TableStore, providers: dict[str, Any]) -> _NotPolled:
    """A source with no pages: detectors are run by ``detect``, not polled."""
    return _NotPolled("detector")
