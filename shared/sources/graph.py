"""Microsoft Graph partner security alerts (beta ``security/partner/securityAlerts``) as an alert source.

One module per source (see ``shared.sources``): parse, fetch (app-only first; the delegated SAM
token when Graph demands MFA claims) and status write-back (``PATCH .../securityAlerts/{id}``,
which takes fraud, ignore and legitimate as they are). Heavy imports stay inside functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.alerts import (
    SEVERITIES,
    STATUSES,
    Alert,
    AlertParseError,
    _activity_logs,
    _bool,
    _details,
    _Fields,
    _int,
    _lower_enum,
    _require,
    _resources,
    parse_time,
)
from shared.sources._microsoft import PAGE_SIZE, categorise, field, recently_resolved

if TYPE_CHECKING:
    from shared.clients.graph import GraphClient
    from shared.intake.sync import SyncScope
    from shared.response.actions.base import Clients
    from shared.settings import Settings
    from shared.storage.tables import TableStore

__all__ = ["GraphSource", "categorise", "fetcher", "parse", "read_status", "sent_reason", "write_status"]

log = logging.getLogger(__name__)

NAME: Final = "graph"


def parse(record: Mapping[str, Any]) -> Alert:
    """A Graph beta security/partner/securityAlerts item."""
    if not isinstance(record, Mapping):
        raise AlertParseError("record is not a JSON object")
    f = _Fields(record)
    alert_id = _require(f, "alert id", "id")
    customer = _require(f, "customer tenant", "customerTenantId")
    return Alert(
        id=alert_id,
        source=NAME,
        customer_tenant_id=customer.lower(),
        subscription_id=f.text("subscriptionId").lower(),
        type=f.text("alertType") or "unknown",
        status=_lower_enum(f.text("status"), STATUSES),
        severity=_lower_enum(f.text("severity"), SEVERITIES),
        confidence=_lower_enum(f.text("confidenceLevel"), ("low", "medium", "high")),
        detected_at=parse_time(f.get("detectedDateTime")),
        first_observed_at=parse_time(f.get("firstObservedDateTime")),
        last_observed_at=parse_time(f.get("lastObservedDateTime")),
        hit_count=_int(_details(f.get("additionalDetails")).get("connectionCount")),
        affected_resources=_resources(f.get("affectedResources")),
        additional_details=_details(f.get("additionalDetails")),
        is_test=_bool(f.get("isTest")),
        raw=dict(record),
        display_name=f.text("displayName"),
        description=f.text("description"),
        resolved_reason=f.text("resolvedReason").lower(),
        resolved_by=f.text("resolvedBy"),
        resolved_at=parse_time(f.get("resolvedOnDateTime")),
        activity_logs=_activity_logs(f.get("activityLogs")),
        catalog_offer_id=f.text("catalogOfferId"),
    )


# --- fetch ------------------------------------------------------------------------------------------


class GraphSource:
    """Graph beta security/partner/securityAlerts, one status at a time, paged.

    App-only first. When Graph answers 403 ``Unauthorized_MissingMFA`` (it has been reported to
    demand MFA claims even from app-only tokens), the rest of the run reads with the delegated
    SAM token (``delegated``: a client in the partner tenant) and ``on_mode`` records which token
    served the run. Each run tries app-only again, so recovery is noticed.
    """

    name: str = NAME

    def __init__(self, client: GraphClient, *, page_size: int = PAGE_SIZE,
                 delegated: Callable[[], GraphClient] | None = None,
                 on_mode: Callable[[str, str], None] | None = None) -> None:
        self._client = client
        self._page_size = page_size
        self._delegated = delegated
        self._on_mode = on_mode

    def pages(self, scope: SyncScope) -> Iterator[list[dict[str, Any]]]:
        from shared.clients.graph import is_missing_mfa

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
        return [r for r in page if status != "resolved" or recently_resolved(field(r, "resolvedOnDateTime"), now)]


def fetcher(settings: Settings, store: TableStore, providers: dict[str, Any]) -> GraphSource:
    """The Graph source with its tokens: app-only (GRAPH_APP_CLIENT_ID), and the SAM refresh token
    (shared with the Partner Center source through ``providers``) as the MFA fallback."""
    from shared import factory
    from shared.operations.token_status import record_graph_alerts_mode

    if NAME not in providers:
        providers[NAME] = factory.app_tokens(settings)
    client = factory.graph_app(settings, providers[NAME])

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


# --- status write-back ------------------------------------------------------------------------------


def sent_reason(reason: str) -> str:
    """Graph records our reasons as they are."""
    return reason


def read_status(clients: Clients, alert: Alert) -> Alert | None:
    """The alert as Graph shows it now (None when Graph no longer has it)."""
    from shared.http import NotFound
    from shared.response.actions._errors import permanent_errors
    from shared.response.actions.base import ActionFailed

    try:
        with permanent_errors(f"reading security alert {alert.id} from Microsoft Graph"):
            return parse(clients.graph_app().get_security_alert(alert.id))
    except ActionFailed as exc:
        if isinstance(exc.__cause__, NotFound):
            return None
        raise


def write_status(clients: Clients, alert: Alert, status: str, reason: str) -> dict[str, Any]:
    from shared.response.actions._errors import permanent_errors

    with permanent_errors(f"updating security alert {alert.id} in Microsoft Graph"):
        clients.graph_app().update_security_alert(alert.id, status=status, resolved_reason=reason or None)
    return {"sent_status": status, "sent_reason": reason}
