"""Partner Center lookups shared by the actions that act on a customer's Azure plan.

Suspending the plan and cancelling one Azure subscription both start from the same question:
which Azure plan (and entitlement) holds the alert's Azure subscription. It lives here, not in
either action, so no action imports a sibling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, Target

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
