"""cancel_azure_subscription: cancel the Azure subscription (entitlement) with reason "compromise".

Destructive: Partner Center stops the subscription (its status goes to inactive within minutes)
and only ``reactivate`` brings it back. The policy turns enforce into approve unless
ALLOW_AUTOMATIC_CANCELLATION is true; this action checks again (defence in depth): while the
setting is false it refuses to run for the policy itself (actor "policy:<rule>", or
``params["_mode"] == "enforce"`` when the engine passes the mode): only an operator's approval
(actor "operator:<name>") runs it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from shared.response.actions._errors import permanent_errors
from shared.response.actions._partner_center import azure_entitlement, customer_of
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target

CANCELLED: Final = ("inactive", "cancelled", "canceled", "disabled")
"""Entitlement statuses that mean the subscription is already cancelled (or being cancelled)."""


class CancelAzureSubscription:
    name: ClassVar[str] = "cancel_azure_subscription"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        entitlement = azure_entitlement(ctx)
        return [Target(
            kind="entitlement", id=entitlement.id, tenant=ctx.alert.customer_tenant_id,
            display=f"Azure subscription {entitlement.friendly_name or entitlement.id} ({entitlement.id}): "
                    "cancel with reason compromise",
            details={"plan_subscription_id": entitlement.plan_subscription_id, "status": entitlement.status,
                     "customer_tenant_id": ctx.alert.customer_tenant_id},
        )]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        plan = _plan(ctx, target)
        with permanent_errors(f"reading Azure entitlement {target.id}"):
            current = ctx.clients.partner_center().get_azure_entitlement(customer_of(ctx, target), plan, target.id)
        return current.status.lower() in CANCELLED

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        refuse_unapproved(ctx)
        client = ctx.clients.partner_center()
        customer, plan = customer_of(ctx, target), _plan(ctx, target)
        with permanent_errors(f"cancelling Azure subscription {target.id}"):
            before = client.get_azure_entitlement(customer, plan, target.id)
            if before.status.lower() in CANCELLED:
                return Outcome(f"Azure subscription {target.id} was already {before.status}, nothing done",
                               {"previous_status": before.status, "status": before.status,
                                "found_status": before.status, "plan_subscription_id": plan}, already_done=True)
            after = client.cancel_azure_entitlement(customer, plan, target.id)
        status = after.status if after is not None else "cancellation accepted"
        return Outcome(f"Azure subscription {target.id} cancelled with reason compromise ({status}; Partner Center "
                       "completes it within about 10 minutes)",
                       {"previous_status": before.status, "status": status, "plan_subscription_id": plan,
                        "reason": "compromise"})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        if recorded.get("found_status"):  # cancelled by the customer or someone else: not ours to reverse
            raise NotReversible(f"Azure subscription {target.id} was already {recorded['found_status']} when the "
                                "responder looked; it did not cancel it, so undo leaves it")
        client = ctx.clients.partner_center()
        customer = customer_of(ctx, target)
        plan = str(recorded.get("plan_subscription_id") or _plan(ctx, target))
        with permanent_errors(f"reactivating Azure subscription {target.id}"):
            current = client.get_azure_entitlement(customer, plan, target.id)
            if current.status.lower() not in CANCELLED:
                return Outcome(f"Azure subscription {target.id} is {current.status}: nothing to reactivate",
                               {"status": current.status}, already_done=True)
            after = client.reactivate_azure_entitlement(customer, plan, target.id)
        status = after.status if after is not None else "reactivation accepted"
        return Outcome(f"Azure subscription {target.id} reactivated ({status})", {"status": status})


ACTION = CancelAzureSubscription()


def refuse_unapproved(ctx: ActionContext) -> None:
    """ActionFailed when an enforce rule would cancel without an operator while that is not allowed."""
    if ctx.settings.allow_automatic_cancellation:
        return
    if ctx.params.get("_mode") == "enforce" or ctx.actor.startswith("policy:"):
        raise ActionFailed("refusing to cancel an Azure subscription without an operator's approval: "
                           "ALLOW_AUTOMATIC_CANCELLATION is false (set the rule's mode to approve, or set "
                           "ALLOW_AUTOMATIC_CANCELLATION=true to allow automatic cancellation)")


def _plan(ctx: ActionContext, target: Target) -> str:
    plan = str(target.details.get("plan_subscription_id") or "")
    if plan:
        return plan
    return azure_entitlement(ctx).plan_subscription_id
