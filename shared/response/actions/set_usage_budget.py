"""set_usage_budget: give a customer a monthly spending budget in Partner Center (reversible).

Why: a budget never stops spending, but without one Partner Center never sends
``usagerecords-thresholdExceeded`` and the budget source has nothing to measure against, so a
customer without a budget is a blind spot. The amount is fixed (``amount``) or a multiple of the
customer's recent monthly spend from our own spend series (``multiple``, at least ``minimum``,
rounded up to a hundred). A customer that already has a budget keeps it unless
``replace_existing``; that budget is recorded as found (``found_amount``) and undo leaves it.
Undo sets back the amount we replaced; Partner Center cannot delete a budget, so a customer that had
none is set back to 0.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target

RECENT_DAYS = 60


class SetUsageBudget:
    name: ClassVar[str] = "set_usage_budget"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        customer = ctx.alert.customer_tenant_id
        if not customer:
            raise ActionFailed(f"alert {ctx.alert.key} names no customer, so there is no budget to set")
        amount, basis = proposed_amount(ctx)
        return [Target(kind="spending_budget", id=customer, tenant=customer,
                       display=f"monthly spending budget of {ctx.alert.customer_name or customer}",
                       details={"amount": amount, "basis": basis,
                                "replace_existing": bool(ctx.params.get("replace_existing", False))})]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        current = self._current(ctx, target)
        if current is None:
            return False
        return current == float(target.details["amount"]) or not target.details.get("replace_existing")

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        client = ctx.clients.partner_center()
        amount = float(target.details["amount"])
        before = self._current(ctx, target)
        if before is not None and not target.details.get("replace_existing"):
            return Outcome(f"{target.display} is already {before:,.2f}; left as it is",
                           {"found_amount": before, "amount": before}, already_done=True)
        if before == amount:
            return Outcome(f"{target.display} is already {amount:,.2f}", {"found_amount": before, "amount": before},
                           already_done=True)
        with permanent_errors(f"setting the spending budget of customer {target.id} in Partner Center"):
            after = client.update_usage_budget(target.id, amount)
        if after != amount:
            raise ActionFailed(f"Partner Center answered the budget of {amount:,.2f} with {after!r}; check the "
                               "customer's budget in Partner Center")
        was = "none" if before is None else f"{before:,.2f}"
        return Outcome(f"{target.display} set to {amount:,.2f} (was {was}; {target.details.get('basis', '')})",
                       {"previous_amount": before, "amount": amount})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        if "found_amount" in recorded:
            raise NotReversible(f"the customer already had a budget of {recorded['found_amount']}: the responder did "
                                "not set it, so undo leaves it")
        current = self._current(ctx, target)
        if current != recorded.get("amount"):
            raise NotReversible(f"the budget is {current} now, not the {recorded.get('amount')} the responder set: "
                                "someone changed it since, so undo leaves it")
        previous = recorded.get("previous_amount")
        restore = float(previous) if previous is not None else 0.0
        with permanent_errors(f"restoring the spending budget of customer {target.id} in Partner Center"):
            after = ctx.clients.partner_center().update_usage_budget(target.id, restore)
        note = "" if previous is not None else " (Partner Center cannot delete a budget: 0 stands for none)"
        return Outcome(f"{target.display} set back to {after if after is not None else restore:,.2f}{note}",
                       {"amount": after})

    @staticmethod
    def _current(ctx: ActionContext, target: Target) -> float | None:
        with permanent_errors(f"reading the spending budget of customer {target.id} in Partner Center"):
            return ctx.clients.partner_center().get_usage_budget(target.id)


def proposed_amount(ctx: ActionContext) -> tuple[float, str]:
    """The amount to set and why: the fixed ``amount``, or ``multiple`` x the recent monthly spend."""
    fixed = float(ctx.params.get("amount", 0) or 0)
    minimum = float(ctx.params.get("minimum", 100) or 0)
    if fixed > 0:
        return fixed, "a fixed amount (policy)"
    multiple = float(ctx.params.get("multiple", 1.5) or 1.5)
    monthly, days = recent_monthly_spend(ctx)
    if days == 0:
        return max(minimum, 100.0), f"no spend data yet: the minimum of {minimum:,.2f}"
    amount = max(minimum, math.ceil(monthly * multiple / 100) * 100)
    return float(amount), f"{multiple:g} x the recent monthly spend of {monthly:,.2f} ({days} days of usage)"


def recent_monthly_spend(ctx: ActionContext) -> tuple[float, int]:
    """The customer's spend over the last ``RECENT_DAYS`` days, as a 30-day month, and the days it covers."""
    from shared import factory
    from shared.names import SPEND_TABLE

    since = (datetime.now(UTC).date() - timedelta(days=RECENT_DAYS)).isoformat()
    store = factory.table_store(ctx.settings)
    total, days = 0.0, set()
    for page in store.query(SPEND_TABLE, "customer_id eq @c and RowKey ge @since",
                            {"c": ctx.alert.customer_tenant_id, "since": since}, select=["RowKey", "total"]):
        for entity in page.entities:
            total += float(entity.get("total") or 0.0)
            days.add(entity["RowKey"])
    return (total / len(days) * 30 if days else 0.0), len(days)


ACTION = SetUsageBudget()
