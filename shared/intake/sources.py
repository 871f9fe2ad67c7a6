"""The two alert sources behind one interface (``shared.intake.sync.AlertSource``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.alerts import Source, parse_time
from shared.clients.graph import GraphClient, is_missing_mfa
from shared.clients.partner_center import PartnerCenterClient
from shared.intake.sync import SyncScope

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

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
    """Graph beta security/partner/securityAlerts, one status at a time, paged.

    App-only first. When Graph answers 403 ``Unauthorized_MissingMFA`` (it has been reported to
    demand MFA claims even from app-only tokens), the rest of the run reads with the delegated
    SAM token (``delegated``: a client in the partner tenant) and ``on_mode`` records which token
    served the run. Each run tries app-only again, so recovery is noticed.
    """

    name: Source = "graph"

    def __init__(self, client: GraphClient, *, page_size: int = PAGE_SIZE,
                 delegated: Callable[[], GraphClient] | None = None,
                 on_mode: Callable[[str, str], None] | None = None) -> None:
        self._client = client
        self._page_size = page_size
        self._delegated = delegated
        self._on_mode = on_mode

    def pages(self, scope: SyncScope) -> Iterator[list[dict[str, Any]]]:
        now = datetime.now(UTC)
        client, reason = self._client, ""
        for status in scope.statuses:
            query = f"status eq '{status}'"
            if scope.subscription_id:
                query += f" and subscriptionId eq '{scope.subscription_id}'"
            try:
                for page in client.security_alert_pages(filter=query, top=self._page_size):
                    yield self._recent(page, status, now)
            except Exception as exc:
                if reason or self._delegated is None or not is_missing_mfa(exc):
                    raise
                reason = f"Graph refused the app-only token: {' '.join(str(exc).split())[:300]}"
                log.warning("graph alerts: app-only call answered 403 Unauthorized_MissingMFA; reading with the "
                            "delegated SAM token instead")
                client = self._delegated()
                # From the start of this status: a page read before the refusal is read again (the sync is idempotent).
                for page in client.security_alert_pages(filter=query, top=self._page_size):
                    yield self._recent(page, status, now)
        if self._on_mode is not None:
            self._on_mode("delegated" if reason else "app_only", reason)

    @staticmethod
    def _recent(page: list[dict[str, Any]], status: str, now: datetime) -> list[dict[str, Any]]:
        return [r for r in page if status != "resolved" or _recently_resolved(_field(r, "resolvedOnDateTime"), now)]


def graph_source(settings: Settings, store: TableStore, providers: dict[str, Any]) -> GraphSource:
    """The Graph source with its tokens: app-only (GRAPH_APP_CLIENT_ID), and the SAM refresh token
    (shared with the Partner Center source through ``providers``) as the MFA fallback."""
    from shared import factory
    from shared.operations.token_status import record_graph_alerts_mode

    if "graph" not in providers:
        providers["graph"] = factory.app_tokens(settings)
    client = factory.graph_app(settings, providers["graph"])

    def delegated() -> GraphClient:
        if "partner_center" not in providers:
            providers["partner_center"] = factory.partner_tokens(settings)
        return factory.graph_delegated(settings, providers["partner_center"])

    def on_mode(mode: str, reason: str) -> None:
        try:
            record_graph_alerts_mode(store, mode=mode, reason=reason)
        except Exception as exc:  # a report: the alerts were read, the run goes on
            log.warning("could not record which token read Graph alerts (%s)", type(exc).__name__)

    has_sam = bool(settings.partner_app_client_id and settings.partner_tenant_id)
    return GraphSource(client, delegated=delegated if has_sam else None, on_mode=on_mode)
