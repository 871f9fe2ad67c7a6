"""Partner Center fraud events (``GET /v1/fraudEvents``, new events model) as an alert source.

One module per source (see ``shared.sources``): how to parse a record into the one ``Alert``
model, how to fetch pages, and how to write status back
(``POST /v1/fraudEvents/subscription/{sub}/status`` with this event's id only: an empty EventIds
would update every event on the subscription). Partner Center REST documents only Fraud and
Ignore as ResolvedReason, so "legitimate" is sent as Ignore and the outcome notes it.
Heavy imports (clients, tokens) stay inside functions: parsing runs at every sync and read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.alerts import (
    SEVERITIES,
    STATUSES,
    AffectedResource,
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
    from shared.clients.partner_center import PartnerCenterClient
    from shared.intake.sync import SyncScope
    from shared.response.actions.base import Clients
    from shared.settings import Settings
    from shared.storage.tables import TableStore

__all__ = ["PartnerCenterSource", "categorise", "fetcher", "parse", "read_status", "sent_reason", "write_status"]

NAME: Final = "partner_center"
PC_STATUS: Final = {"active": "Active", "investigating": "Investigating", "resolved": "Resolved"}
PC_REASON: Final = {"fraud": "Fraud", "ignore": "Ignore", "legitimate": "Ignore"}
LEGITIMATE_NOTE: Final = ("Partner Center REST accepts only Fraud or Ignore as ResolvedReason; Legitimate was sent "
                          "as Ignore")


def parse(record: Mapping[str, Any]) -> Alert:
    """A /v1/fraudEvents item, legacy or new events model."""
    if not isinstance(record, Mapping):
        raise AlertParseError("record is not a JSON object")
    f = _Fields(record)
    event_id = _require(f, "event id", "eventId")
    customer = _require(f, "customer tenant", "customerTenantId")
    subscription = f.text("subscriptionId")
    resources = _resources(f.get("affectedResources"))
    if not resources and f.text("entityUrl", "entityId"):
        # Legacy events name one entity instead of a resource list.
        resources = (AffectedResource(f.text("entityUrl") or f.text("entityId"), f.text("serviceName")),)
    return Alert(
        id=event_id,
        source=NAME,
        customer_tenant_id=customer.lower(),
        subscription_id=subscription.lower(),
        type=f.text("eventType") or "LegacyFraudEvent",
        status=_lower_enum(f.text("eventStatus"), STATUSES),
        severity=_lower_enum(f.text("severity"), SEVERITIES) if f.text("severity") else "unknown",
        confidence=_lower_enum(f.text("confidenceLevel"), ("low", "medium", "high")) if f.text("confidenceLevel")
        else "unknown",
        detected_at=parse_time(f.get("eventTime")),
        first_observed_at=parse_time(f.get("firstObserved", "firstOccurrence")),
        last_observed_at=parse_time(f.get("lastObserved", "lastOccurrence")),
        hit_count=_int(f.get("hitCount")),
        affected_resources=resources,
        additional_details=_details(f.get("additionalDetails")),
        is_test=_bool(f.get("isTest")),
        raw=dict(record),
        customer_name=f.text("customerFriendlyName"),
        subscription_name=f.text("subscriptionName"),
        display_name=f.text("displayName"),
        description=f.text("description"),
        partner_tenant_id=f.text("partnerTenantId").lower(),
        resolved_reason="" if f.text("resolvedReason").lower() in ("", "none") else f.text("resolvedReason").lower(),
        resolved_by=f.text("resolvedBy"),
        resolved_at=parse_time(f.get("resolvedOn")),
        activity_logs=_activity_logs(f.get("activityLogs")),
        catalog_offer_id=f.text("catalogOfferId"),
    )


# --- fetch ------------------------------------------------------------------------------------------


class PartnerCenterSource:
    """GET /v1/fraudEvents with the new events model, one status at a time, paged."""

    name: str = NAME

    def __init__(self, client: PartnerCenterClient, *, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._page_size = page_size

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]:
        now = datetime.now(UTC)
        for status in scope.statuses:
            for page in self._client.fraud_event_pages(new_model=True, event_status=PC_STATUS[status],
                                                        subscription_id=scope.subscription_id,
                                                        page_size=self._page_size, keep_non_objects=True):
                yield [r for r in page if status != "resolved" or recently_resolved(field(r, "resolvedOn"), now)]


def fetcher(settings: Settings, store: TableStore, providers: dict[str, Any]) -> PartnerCenterSource:
    """The source with its App+User token (the SAM refresh token, shared with Graph's MFA fallback)."""
    from shared import factory

    if NAME not in providers:
        providers[NAME] = factory.partner_tokens(settings)
    return PartnerCenterSource(factory.partner_center(settings, providers[NAME]))


# --- status write-back ------------------------------------------------------------------------------


def sent_reason(reason: str) -> str:
    """The ResolvedReason Partner Center records for ours (Legitimate becomes Ignore)."""
    return PC_REASON[reason]


def read_status(clients: Clients, alert: Alert) -> Alert | None:
    """The event as Partner Center shows it now (None when it no longer lists it)."""
    from shared.response.actions._errors import permanent_errors
    from shared.response.actions.base import ActionFailed

    if not alert.subscription_id:
        raise ActionFailed(f"fraud event {alert.id} has no subscription id, so its status cannot be read or set")
    with permanent_errors(f"reading fraud events of subscription {alert.subscription_id} from Partner Center"):
        for event in clients.partner_center().fraud_events(subscription_id=alert.subscription_id):
            if str(field(event, "eventId") or "").lower() == alert.id.lower():
                return parse(event)
    return None


def write_status(clients: Clients, alert: Alert, status: str, reason: str) -> dict[str, Any]:
    """Set the event's status; returns what was sent (and a note when it differs from the ask)."""
    from shared.response.actions._errors import permanent_errors
    from shared.response.actions.base import ActionFailed

    if not alert.subscription_id or not alert.id:
        raise ActionFailed(f"fraud event {alert.id!r} has no subscription id; refusing to update every event")
    sent = PC_REASON[reason] if reason else None
    with permanent_errors(f"updating fraud event {alert.id} in Partner Center"):
        updated = clients.partner_center().update_fraud_event_status(
            alert.subscription_id, event_ids=[alert.id], status=PC_STATUS[status], resolved_reason=sent)
    if not any(str(field(e, "eventId") or "").lower() == alert.id.lower() for e in updated):
        raise ActionFailed(f"Partner Center did not return fraud event {alert.id} as updated; check the event id "
                           f"and subscription {alert.subscription_id}")
    result: dict[str, Any] = {"sent_status": PC_STATUS[status], "sent_reason": sent or ""}
    if reason == "legitimate":
        result["note"] = LEGITIMATE_NOTE
    return result
