"""The two alert sources behind one interface (``shared.intake.sync.AlertSource``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.alerts import Source, parse_time
from shared.clients.graph import GraphClient
from shared.clients.partner_center import PartnerCenterClient
from shared.intake.sync import SyncScope

PAGE_SIZE = 500
RESOLVED_WINDOW = timedelta(days=30)
"""Resolved alerts are fetched to notice resolutions; older ones are history, not news."""

_PC_STATUS = {"active": "Active", "investigating": "Investigating", "resolved": "Resolved"}


def _recently_resolved(resolved_on: Any, now: datetime) -> bool:
    when = parse_time(resolved_on)
    return when is None or now - when <= RESOLVED_WINDOW


def _field(record: Any, name: str) -> Any:
    if not isinstance(record, dict):
        return None  # not an event at all: passed on, the sync quarantines it
    lower = name.lower()
    return next((v for k, v in record.items() if str(k).lower() == lower), None)


class PartnerCenterSource:
    """GET /v1/fraudEvents with the new events model, one status at a time, paged."""

    name: Source = "partner_center"

    def __init__(self, client: PartnerCenterClient, *, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._page_size = page_size

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]:
        now = datetime.now(UTC)
        for status in scope.statuses:
            for page in self._client.fraud_event_pages(new_model=True, event_status=_PC_STATUS[status],
                                                        subscription_id=scope.subscription_id,
                                                        page_size=self._page_size, keep_non_objects=True):
                yield [r for r in page if status != "resolved" or _recently_resolved(_field(r, "resolvedOn"), now)]


class GraphSource:
    """Graph beta security/partner/securityAlerts (app-only), one status at a time, paged."""

    name: Source = "graph"

    def __init__(self, client: GraphClient, *, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._page_size = page_size

    def pages(self, scope: SyncScope) -> Iterator[list[dict[str, Any]]]:
        now = datetime.now(UTC)
        for status in scope.statuses:
            query = f"status eq '{status}'"
            if scope.subscription_id:
                query += f" and subscriptionId eq '{scope.subscription_id}'"
            for page in self._client.security_alert_pages(filter=query, top=self._page_size):
                yield [r for r in page
                       if status != "resolved" or _recently_resolved(_field(r, "resolvedOnDateTime"), now)]
