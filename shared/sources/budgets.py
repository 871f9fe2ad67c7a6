"""Spending budgets as an alert source: month-to-date estimates against each customer's budget.

One Partner Center call (``GET /v1/customers/usagerecords``, App+User, paged) reads every
customer. It raises, per customer and month, one alert per threshold crossed (defaults 80 %,
100 %, 150 %: once per threshold per month, because the alert id names both) and one alert for a
customer with no budget at all (the policy can answer it with ``set_usage_budget``); that alert is
resolved here once the customer has a budget. Polled like Microsoft's sources and nudged by
Partner Center's ``usagerecords-thresholdExceeded`` webhook. Local only: resolving one records the
verdict in our tables; Partner Center has no status to write back.

Records carry only what stays true for the month (threshold, budget, the month), so polling an
unchanged month writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.alerts import Alert, AlertParseError, parse_time

if TYPE_CHECKING:
    from shared.clients.partner_center import PartnerCenterClient, UsageRecord
    from shared.intake.sync import SyncScope
    from shared.settings import Settings
    from shared.storage.tables import TableStore

NAME: Final = "budget"
THRESHOLD_TYPE: Final = "BudgetThresholdExceeded"
MISSING_TYPE: Final = "NoSpendingBudget"
DEFAULT_THRESHOLDS: Final = (80.0, 100.0, 150.0)
CATEGORIES: Final = {THRESHOLD_TYPE: "budget_threshold", MISSING_TYPE: "budget_missing"}


def severity_for(threshold: float) -> str:
    return "high" if threshold >= 150 else "medium" if threshold >= 100 else "low"


def records_for(record: UsageRecord, *, month: str, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """The alert records one customer's usage record gives this month."""
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    base = {"customerTenantId": record.customer_id, "customerName": record.customer_name, "month": month,
            "currency": record.currency, "detectedAt": when}
    if record.budget is None:
        return [{**base, "id": f"{record.customer_id}:no-budget", "type": MISSING_TYPE, "severity": "informational",
                 "status": "active", "title": f"{record.customer_name or record.customer_id} has no spending budget",
                 "description": "Partner Center has no monthly spending budget for this customer, so no threshold "
                                "alert can ever fire. Set one (policy action set_usage_budget)."}]
    crossed = [t for t in sorted(thresholds) if record.percent_used >= t]
    return [{**base, "id": f"{record.customer_id}:{month}:{t:g}", "type": THRESHOLD_TYPE, "severity": severity_for(t),
             "status": "active", "threshold": t, "budget": record.budget,
             "title": f"{record.customer_name or record.customer_id} passed {t:g} % of its {month} budget",
             "description": f"The month-to-date estimate passed {t:g} % of the {record.budget:,.2f} "
                            f"{record.currency} budget (Partner Center usage records; estimates, a day late)."}
            for t in crossed]


def parse(record: Mapping[str, Any]) -> Alert:
    """One of our own budget records (``records_for``)."""
    if not isinstance(record, Mapping) or not record.get("id") or not record.get("customerTenantId"):
        raise AlertParseError("budget record has no id or customer")
    details = {k: record[k] for k in ("month", "threshold", "budget", "currency") if k in record}
    detected = parse_time(record.get("detectedAt"))
    return Alert(
        id=str(record["id"]), source=NAME, customer_tenant_id=str(record["customerTenantId"]).lower(),
        subscription_id="", type=str(record.get("type", THRESHOLD_TYPE)), status=str(record.get("status", "active")),
        severity=str(record.get("severity", "low")), confidence="high", detected_at=detected,
        first_observed_at=detected, last_observed_at=None, hit_count=None, affected_resources=(),
        additional_details=details, is_test=False, raw=dict(record), customer_name=str(record.get("customerName", "")),
        display_name=str(record.get("title", "")), description=str(record.get("description", "")),
    )


def categorise(alert_type: str) -> str:
    return CATEGORIES.get(alert_type, "")


class BudgetSource:
    """Usage records -> budget alert records; resolves no-budget alerts of customers that now have one."""

    name: str = NAME

    def __init__(self, client: PartnerCenterClient, store: TableStore, *,
                 thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> None:
        self._client = client
        self._store = store
        self._thresholds = tuple(thresholds)

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]:
        now = datetime.now(UTC)
        month = now.strftime("%Y-%m")
        budgeted: list[UsageRecord] = []
        page: list[Any] = []
        for record in self._client.usage_records():
            if record.budget is not None:
                budgeted.append(record)
            page.extend(records_for(record, month=month, thresholds=self._thresholds, now=now))
            if len(page) >= 100:
                yield page
                page = []
        page.extend(self._resolved_missing(budgeted, now))
        if page:
            yield page

    def _resolved_missing(self, budgeted: list[UsageRecord], now: datetime) -> list[dict[str, Any]]:
        """A resolved version of each open no-budget alert whose customer has a budget now."""
        from shared.names import ALERTS_TABLE

        have = {r.customer_id: r for r in budgeted}
        if not have:
            return []
        out = []
        for page in self._store.query(ALERTS_TABLE, "source eq @source and type eq @type and status ne 'resolved'",
                                      {"source": NAME, "type": MISSING_TYPE}, select=["customer_tenant_id"]):
            for entity in page.entities:
                record = have.get(str(entity.get("customer_tenant_id", "")).lower())
                if record is not None:
                    out.append({"id": f"{record.customer_id}:no-budget", "type": MISSING_TYPE,
                                "customerTenantId": record.customer_id, "customerName": record.customer_name,
                                "severity": "informational", "status": "resolved", "detectedAt": now.isoformat(),
                                "title": f"{record.customer_name or record.customer_id} has a spending budget now",
                                "description": f"A budget of {record.budget:,.2f} {record.currency} is set."})
        return out


def fetcher(settings: Settings, store: TableStore, providers: dict[str, Any]) -> BudgetSource:
    """The source with the App+User token (usage records are App+User only)."""
    from shared import factory

    if "partner_center" not in providers:
        providers["partner_center"] = factory.partner_tokens(settings)
    return BudgetSource(factory.partner_center(settings, providers["partner_center"]), store,
                        thresholds=settings.budget_thresholds)
