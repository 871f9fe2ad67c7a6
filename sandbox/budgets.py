"""Partner Center customer spending budgets and month-to-date usage records (stand-in routes).

The contract (Partner Center REST, App+User for the reads; budget PATCH App or App+User):

* ``GET /v1/customers/usagerecords``: a collection of ``CustomerMonthlyUsageRecord``
  (``budget {amount?}``, ``percentUsed``, ``isUpgraded``, ``resourceId``/``id`` = the customer,
  ``resourceName``/``name``, ``totalCost``, ``currencyCode``, ``usdTotalCost``,
  ``lastModifiedDate``); a customer without a budget has ``budget`` without ``amount``. Paged with
  ``size`` and a ``continuationToken`` in ``links.next`` (the PC collection convention).
* ``GET /v1/customers/{id}/usagebudget``: ``SpendingBudget`` ``{amount, attributes}`` (no amount
  when none is set).
* ``PATCH /v1/customers/{id}/usagebudget`` with ``{"Amount": n}`` (the full resource): the updated
  budget. A budget never stops spending; it only drives ``percentUsed`` and the
  ``usagerecords-thresholdExceeded`` webhook.

Month-to-date cost comes from the Graph stand-in's billing data (``sandbox/billing.py``: the same
customers and days), so budgets, usage records and the billing export agree. Scenario section
``partner_center.budgets``: ``{customer tenant id: amount}``.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any, Final

from sandbox.core import HttpError, Request, Response, json_response, route
from sandbox.paging import offset_token, read_offset_token

if TYPE_CHECKING:
    from sandbox.core import Sandbox

MAX_PAGE: Final = 1000


class BudgetRoutes:
    """Usage records and spending budgets of the Partner Center stand-in (needs the Service attributes)."""

    sandbox: Sandbox
    section: dict[str, Any]
    lock: threading.RLock

    def reset_budgets(self) -> None:
        self.budgets: dict[str, float] = {str(k).lower(): float(v) for k, v in
                                          (self.section.get("budgets") or {}).items()}
        self.budget_writes: list[dict[str, Any]] = []
        self.cost_overrides: dict[str, float] = {}

    # -- Python API -------------------------------------------------------------------------------

    def set_month_to_date(self, customer: str, total_cost: float) -> None:
        """Pretend ``customer`` has spent ``total_cost`` this month (tests of the threshold rules)."""
        with self.lock:
            self.cost_overrides[customer.lower()] = float(total_cost)

    def month_to_date(self) -> dict[str, tuple[str, float, str]]:
        """customer -> (name, month-to-date cost, currency) from the billing data, then the overrides."""
        graph: Any = self.sandbox.services.get("graph")
        totals: dict[str, tuple[str, float, str]] = {}
        billing = getattr(graph, "billing", None)
        if billing is not None:
            for line in billing.lines("current", "basic"):
                customer = str(line["CustomerId"]).lower()
                name, cost, currency = totals.get(customer, (line["CustomerName"], 0.0, line["BillingCurrency"]))
                totals[customer] = (name, cost + float(line["BillingPreTaxTotal"]), currency)
            for sub in billing.subscriptions:
                totals.setdefault(sub.customer, (sub.customer_name, 0.0, billing.currency))
        with self.lock:
            for customer, cost in self.cost_overrides.items():
                name, _, currency = totals.get(customer, ("", 0.0, "USD"))
                totals[customer] = (name, cost, currency)
        return totals

    # -- routes -----------------------------------------------------------------------------------

    @route("GET", r"/v1/customers/usagerecords")
    def list_usage_records(self, request: Request) -> Response:
        _require_app_user(request)
        size_text = request.arg("size") or str(MAX_PAGE)
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE:
            raise HttpError(400, "400", f"size must be 1 to {MAX_PAGE}.")
        offset = read_offset_token(request.arg("continuationToken"), message="The continuation token is not valid.")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")
        records = []
        with self.lock:
            budgets = dict(self.budgets)
        for customer, (name, cost, currency) in sorted(self.month_to_date().items()):
            amount = budgets.get(customer)
            budget: dict[str, Any] = {"attributes": {"objectType": "SpendingBudget"}}
            if amount is not None:
                budget["amount"] = amount
            records.append({
                "budget": budget, "percentUsed": round(cost / amount * 100, 2) if amount else 0,
                "isUpgraded": True, "resourceId": customer, "id": customer, "resourceName": name, "name": name,
                "totalCost": round(cost, 6), "currencyCode": currency, "usdTotalCost": round(cost, 6),
                "lastModifiedDate": now, "attributes": {"objectType": "CustomerMonthlyUsageRecord"},
            })
        size = int(size_text)
        page = records[offset:offset + size]
        links: dict[str, Any] = {"self": {"uri": "/customers/usagerecords", "method": "GET", "headers": []}}
        if offset + size < len(records):
            links["next"] = {"uri": f"/customers/usagerecords?size={size}&continuationToken="
                                    f"{offset_token(offset + size)}", "method": "GET", "headers": []}
        return json_response(200, {"totalCount": len(page), "items": page, "links": links,
                                   "attributes": {"objectType": "Collection"}})

    @route("GET", r"/v1/customers/(?P<customer>[^/]+)/usagebudget")
    def get_usage_budget(self, request: Request) -> Response:
        customer = self._budget_customer(request)
        with self.lock:
            amount = self.budgets.get(customer)
        return json_response(200, _budget(customer, amount, "GET"))

    @route("PATCH", r"/v1/customers/(?P<customer>[^/]+)/usagebudget")
    def update_usage_budget(self, request: Request) -> Response:
        customer = self._budget_customer(request)
        body = request.json()
        fields = {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}
        amount = fields.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount <= 1e9:
            raise HttpError(400, "400", "The body must be a SpendingBudget with a numeric Amount from 0 up.")
        with self.lock:
            self.budgets[customer] = float(amount)
            self.budget_writes.append({"customer": customer, "amount": float(amount),
                                       "at": dt.datetime.now(dt.UTC).isoformat()})
        return json_response(200, _budget(customer, float(amount), "PATCH"))

    def _budget_customer(self, request: Request) -> str:
        customer = request.params["customer"].lower()
        if customer not in self.month_to_date():
            raise HttpError(404, "600002", f"Customer {request.params['customer']} was not found.")
        return customer


def _require_app_user(request: Request) -> None:
    if "scp" not in (request.claims or {}):
        raise HttpError(403, "403", "This API supports App+User credentials only; an App-only token was sent.")


def _budget(customer: str, amount: float | None, method: str) -> dict[str, Any]:
    budget: dict[str, Any] = {"attributes": {"objectType": "SpendingBudget"},
                              "links": {"self": {"uri": f"/v1/customers/{customer}/usagebudget", "method": method,
                                                 "headers": []}}}
    if amount is not None:
        budget["amount"] = amount
    return budget
