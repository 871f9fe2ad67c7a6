"""suspend_subscription: suspend the customer's Azure plan in Partner Center (reversible).

Partner Center suspends the Azure plan (the subscription that holds the customer's Azure
subscriptions), not a single Azure subscription: it is found by listing the customer's
subscriptions and picking the Azure plan whose azureEntitlements hold the alert's Azure
subscription. Suspending is ``PATCH`` of the full subscription resource with status "suspended";
undo PATCHes it back to the status recorded before (active). A plan found already suspended (by
Microsoft, billing or someone else) is recorded as such (``found_status``) and undo leaves it:
undo never reverses what the responder did not do.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions._partner_center import (
    azure_entitlement,
    customer_of,
    reactivate_pc_subscription,
    suspend_pc_subscription,
)
from shared.response.actions.base import ActionContext, Outcome, Target


class SuspendSubscription:
    name: ClassVar[str] = "suspend_subscription"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        entitlement = azure_entitlement(ctx)
        return [Target(
            kind="subscription", id=entitlement.plan_subscription_id, tenant=ctx.alert.customer_tenant_id,
            display=f"Azure plan {entitlement.plan_subscription_id} of {ctx.alert.customer_name or 'the customer'} "
                    f"(holds {entitlement.friendly_name or entitlement.id})",
            details={"azure_subscription_id": entitlement.id, "azure_subscription_name": entitlement.friendly_name,
                     "customer_tenant_id": ctx.alert.customer_tenant_id},
        )]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        with permanent_errors(f"reading Partner Center subscription {target.id}"):
            return ctx.clients.partner_center().get_subscription(customer_of(ctx, target), target.id).suspended

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        return suspend_pc_subscription(ctx, target, f"Azure plan {target.id}",
                                       {"azure_subscription_id": target.details.get("azure_subscription_id", "")})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return reactivate_pc_subscription(ctx, target, f"Azure plan {target.id}", recorded)


ACTION = SuspendSubscription()
