"""Partner Center lookups shared by the actions that act on a customer's Azure plan.

Suspending the plan and cancelling one Azure subscription both start from the same question:
which Azure plan (and entitlement) holds the alert's Azure subscription. It lives here, not in
either action, so no action imports a sibling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target

if TYPE_CHECKING:
    from shared.clients.partner_center import AzureEntitlement


def azure_entitlement(ctx: ActionContext) -> AzureEntitlement:
    """The entitlement for the alert's Azure subscription, with the id of the Azure plan holding it."""
    alert = ctx.alert
    if not alert.subscription_id:
        raise ActionFailed(f"alert {alert.key} names no Azure subscription, so there is nothing to suspend or cancel")
    with permanent_errors(f"finding the Azure plan of customer {alert.customer_tenant_id} in Partner Center"):
        found = ctx.clients.partner_center().find_azure_entitlement(alert.customer_tenant_id, alert.subscription_id)
    if found is None:
        raise ActionFailed(f"no Azure plan of customer {alert.customer_tenant_id} holds Azure subscription "
                           f"{alert.subscription_id}: it may be a legacy (non Azure plan) subscription or belong to "
                           "another customer; act on it in Partner Center")
    return found


def customer_of(ctx: ActionContext, target: Target) -> str:
    """The customer tenant the call goes to: the target's, else the alert's."""
    return target.tenant or ctx.alert.customer_tenant_id


def suspend_pc_subscription(ctx: ActionContext, target: Target, what: str, data: dict[str, Any]) -> Outcome:
    """Suspend one Partner Center subscription (verify-before-act): one found not active is recorded
    as found (``found_status``) and left, so undo never reactivates what the responder did not suspend."""
    client = ctx.clients.partner_center()
    customer = customer_of(ctx, target)
    with permanent_errors(f"suspending Partner Center subscription {target.id}"):
        before = client.get_subscription(customer, target.id)
        if before.status.lower() != "active":
            return Outcome(f"{what} was already {before.status}, nothing done",
                           {"previous_status": before.status, "status": before.status,
                            "found_status": before.status}, already_done=True)
        after = client.suspend_subscription(customer, target.id)
    if not after.suspended:
        raise ActionFailed(f"Partner Center answered the suspension of {target.id} with status {after.status!r}; "
                           "check the subscription in Partner Center")
    return Outcome(f"{what} suspended (was {before.status})",
                   {"previous_status": before.status, "status": after.status, **data})


def reactivate_pc_subscription(ctx: ActionContext, target: Target, what: str,
                               recorded: dict[str, Any]) -> Outcome:
    """Undo of ``suspend_pc_subscription``: reactivate only what it suspended from active."""
    if recorded.get("found_status"):
        raise NotReversible(f"{what} was already {recorded['found_status']} when the responder looked; it did not "
                            "suspend it, so undo leaves it (reactivate it in Partner Center if wanted)")
    previous = str(recorded.get("previous_status") or "active").lower()
    if previous != "active":
        raise NotReversible(f"{what} was {previous} before it was suspended; reactivate it in Partner Center if that "
                            "is still wanted")
    client = ctx.clients.partner_center()
    customer = customer_of(ctx, target)
    with permanent_errors(f"reactivating Partner Center subscription {target.id}"):
        current = client.get_subscription(customer, target.id)
        if not current.suspended:
            return Outcome(f"{what} is already {current.status}", {"status": current.status}, already_done=True)
        after = client.reactivate_subscription(customer, target.id)
    return Outcome(f"{what} reactivated ({after.status})", {"status": after.status})
