"""What Partner Center and Graph share: one set of alert types, so one way to categorise them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from shared.alerts import parse_time

RESOLVED_WINDOW: Final = timedelta(days=30)
"""Resolved alerts are fetched to notice resolutions; older ones are history, not news."""
PAGE_SIZE: Final = 500


def categorise(alert_type: str) -> str:
    """A coarse category for policies and throttling; unknown types stay 'other', never dropped."""
    t = alert_type.lower()
    if "crypto" in t or t == "legacyfraudevent":
        return "crypto_mining"
    if "servicehealth" in t:
        return "service_health"
    if "anomal" in t or "deployment" in t or "consumption" in t or "usage" in t:
        return "anomalous_compute"
    if "suspicious" in t:
        return "suspicious_operations"
    return "other"


def recently_resolved(resolved_on: Any, now: datetime) -> bool:
    when = parse_time(resolved_on)
    return when is None or now - when <= RESOLVED_WINDOW


def field(record: Any, name: str) -> Any:
    """A field of a raw record, whatever the key's case; None for a record that is not an object."""
    if not isinstance(record, dict):
        return None  # not an event at all: passed on, the sync quarantines it
    lower = name.lower()
    return next((v for k, v in record.items() if str(k).lower() == lower), None)
