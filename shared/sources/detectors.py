"""Our own detectors (``shared.detection``) as alert sources: one module for the four of them.

Why one module: a detector's alert is a ``shared.detection.base.Finding`` that the runner turns
into a record (``shared.detection.findings.to_record``) and stores through the same sync as
Microsoft's alerts; the record names its detector, so one parser serves every detector. Detector
alerts are local only (``writes_status=False``): resolving one records the verdict in our tables,
nothing is written to Microsoft. The record carries the status stored on the alert row, so a
verdict an operator gave is kept while the episode goes on. Detectors are not fetched by the
poll (``fetcher`` yields nothing): the detection runner stores their findings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from shared.alerts import (
    SEVERITIES,
    STATUSES,
    Alert,
    AlertParseError,
    _Fields,
    _int,
    _lower_enum,
    _require,
    _resources,
    parse_time,
)

if TYPE_CHECKING:
    from shared.intake.sync import SyncScope
    from shared.settings import Settings
    from shared.storage.tables import TableStore

CATEGORY_OF_TYPE: Final = {
    "computeburst": "compute_burst",
    "privilegechange": "privilege_change",
    "quotajump": "quota_jump",
    "microfraud": "micro_fraud",
}
"""Alert type (lower case) -> category; the detectors' type names are an open set like Microsoft's."""


def parse(record: Mapping[str, Any]) -> Alert:
    """A finding record (``shared.detection.findings.to_record``) as an Alert."""
    from shared import sources

    if not isinstance(record, Mapping):
        raise AlertParseError("record is not a JSON object")
    f = _Fields(record)
    detector = _require(f, "detector", "detector")
    if detector not in sources.names():
        raise AlertParseError(f"record names detector {detector!r}, which is not a registered source")
    alert_id = _require(f, "id", "id")
    customer = _require(f, "customer tenant", "customerTenantId")
    evidence = f.get("evidence")
    return Alert(
        id=alert_id,
        source=detector,
        customer_tenant_id=customer.lower(),
        subscription_id=f.text("subscriptionId").lower(),
        type=f.text("type") or "Detection",
        status=_lower_enum(f.text("status") or "active", STATUSES),
        severity=_lower_enum(f.text("severity"), SEVERITIES) if f.text("severity") else "unknown",
        confidence=_lower_enum(f.text("confidence"), ("low", "medium", "high")) if f.text("confidence")
        else "unknown",
        detected_at=parse_time(f.get("detectedAt")),
        first_observed_at=parse_time(f.get("firstObserved")),
        last_observed_at=parse_time(f.get("lastObserved")),
        hit_count=_int(f.get("hitCount")),
        affected_resources=_resources(f.get("affectedResources")),
        additional_details=dict(evidence) if isinstance(evidence, Mapping) else {},
        is_test=False,
        raw=dict(record),
        customer_name=f.text("customerName"),
        display_name=f.text("title"),
        description=f.text("description"),
        partner_tenant_id=f.text("partnerTenantId").lower(),
        resolved_reason=f.text("resolvedReason").lower(),
    )


def categorise(alert_type: str) -> str:
    return CATEGORY_OF_TYPE.get(alert_type.strip().lower(), "other")


class _NothingToPoll:
    """Detector alerts are stored by the detection runner, never polled."""

    def __init__(self, name: str) -> None:
        self.name = name

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]:
        return iter(())


def fetcher(settings: Settings, store: TableStore, providers: dict[str, Any]) -> _NothingToPoll:
    return _NothingToPoll("detector")
