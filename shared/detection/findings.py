"""Findings become alerts: a finding's record, and a sync source whose pages are those records.

Why through the sync: a detector alert gets exactly what a Microsoft alert gets (one row per
detector, subject and episode; fingerprint; material-change versions; the outbox entry and its
respond job), so the policy, the response, the digest and the admin API need nothing new.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.detection.base import Finding


def to_record(finding: Finding, *, customer_tenant_id: str, customer_name: str = "", status: str = "active",
              resolved_reason: str = "", partner_tenant_id: str = "") -> dict[str, Any]:
    """The record ``shared.sources.detectors.parse`` reads (JSON-safe).

    ``customer_tenant_id``: the finding's, or the partner's own tenant for a finding about a
    reseller (alert rows are partitioned by a tenant). ``status``: the one stored on the row, so
    an operator's verdict outlives the episode's growth.
    """
    return {
        "id": finding.alert_id,
        "detector": finding.detector,
        "type": finding.type,
        "customerTenantId": customer_tenant_id,
        "customerName": customer_name,
        "subscriptionId": finding.subscription_id,
        "partnerTenantId": partner_tenant_id,
        "severity": finding.severity,
        "confidence": finding.confidence,
        "title": finding.title,
        "description": finding.description,
        "detectedAt": _iso(finding.first_observed_at),
        "firstObserved": _iso(finding.first_observed_at),
        "lastObserved": _iso(finding.last_observed_at),
        "hitCount": finding.count,
        "affectedResources": [{"resourceId": r.resource_id, "type": r.resource_type} for r in finding.resources],
        "evidence": _json_safe(finding.evidence),
        "episode": finding.episode,
        "status": status,
        "resolvedReason": resolved_reason if status == "resolved" else "",
    }


@dataclass
class FindingSource:
    """An ``AlertSource`` (``shared.intake.sync``) of one detector's records: one page."""

    name: str
    records: Sequence[Mapping[str, Any]]

    def pages(self, scope: Any) -> Iterator[list[Any]]:
        yield [dict(r) for r in self.records]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
