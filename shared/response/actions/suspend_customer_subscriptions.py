"""suspend_customer_subscriptions: suspend every active subscription of the customer (a fraud verdict).

Why: Microsoft's guidance says a partner "must investigate and suspend all other customer
subscriptions of the customer account if it's determined to be fraudulent", not only the Azure plan
the alert named. The targets are the customer's Partner Center subscriptions whose status is active
when planned (``GET /v1/customers/{id}/subscriptions``): the Azure plan and the licence-based ones
(Microsoft 365, ...), one ledger row each, so each is approved, verified, done and undone on its own.

Suspending is ``PATCH`` of the full subscription resource with status "suspended" (Partner Center's
"Suspend a subscription"). verify reads the status first: a subscription no longer active (suspended
by Microsoft, billing, another action of ours, or deleted) is not touched, and the engine records
that as found (``found_state``), so undo refuses the row. Undo reactivates only what this row
suspended, and only if it was active before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions._partner_center import customer_of, reactivate_pc_subscription, suspend_pc_subscription
from shared.response.actions.base import ActionContext, ActionFailed, Outcome, Target

if TYPE_CHECKING:
    from shared.clients.partner_center import SubscriptionState

ACTIVE = "active"


def _kind(subscription: SubscriptionState) -> str:
    return "Azure plan" if subscription.is_azure_plan else "licence-based subscription"


class SuspendCustomerSubscriptions:
    name: ClassVar[str] = "suspend_customer_subscriptions"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        customer = ctx.alert.customer_tenant_id
        if not customer:
            raise ActionFailed(f"alert {ctx.alert.key} names no customer tenant, so there are no subscriptions to "
                               "suspend")
        with permanent_errors(f"listing the subscriptions of customer {customer} in Partner Center"):
            subscriptions = ctx.clients.partner_center().list_subscriptions(customer)
        who = ctx.alert.customer_name or customer
        return [Target(
            kind="subscription", id=s.id, tenant=customer,
            display=f"{s.friendly_name or s.id} ({_kind(s)}, {s.offer_id}) of {who}",
            details={"offer_id": s.offer_id, "offer_name": str(s.raw.get("offerName") or ""),
                     "azure_plan": s.is_azure_plan, "status_when_planned": s.status,
                     "quantity": s.raw.get("quantity"), "customer_tenant_id": customer},
        ) for s in subscriptions if s.status.lower() == ACTIVE]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """Done when the subscription is no longer active (suspended, or gone some other way)."""
        with permanent_errors(f"reading Partner Center subscription {target.id}"):
            current = ctx.clients.partner_center().get_subscription(customer_of(ctx, target), target.id)
        return current.status.lower() != ACTIVE

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        return suspend_pc_subscription(ctx, target, target.display, {"offer_id": target.details.get("offer_id", "")})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return reactivate_pc_subscription(ctx, target, target.display, recorded)


ACTION = SuspendCustomerSubscriptions()
