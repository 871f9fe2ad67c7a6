"""Findings become alerts: a finding's record with what the alert row already says, and a sync
source whose pages are those records.

Why through the sync: a detector alert gets exactly what a Microsoft alert gets (one row per
detector, subject and episode; fingerprint; material-change versions; the outbox entry and its
respond job), so the policy, the response, the digest and the admin API need nothing new.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.detection.base import Finding


def record_of(finding: Finding, *, customer_name: str = "", status: str = "active",
              resolved_reason: str = "") -> dict[str, Any]:
    """The record ``shared.sources.detectors.parse`` reads (JSON-safe).

    ``status`` and ``resolved_reason``: what the stored alert row says, so a verdict an operator
    gave (or the status the response recorded) outlives the episode's growth: a detector alert's
    status is ours, not the detector's.
    """
    from shared.sources.detectors import to_record

    record = to_record(finding)
    record.update({"status": status, "resolvedReason": resolved_reason if status == "resolved" else "",
                   "customerName": customer_name, "evidence": _json_safe(record.get("evidence", {}))})
    return record


@dataclass
class FindingSource:
    """An ``AlertSource`` (``shared.intake.sync``) of one detector's records: one page."""

    name: str
    records: Sequence[Mapping[str, Any]]

    def pages(self, scope: Any) -> Iterator[list[Any]]:
        yield [dict(r) for r in self.records]


def _json_safe(value: Any) -> Any:
    from datetime import datetime

    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
