"""suspend_subscription against the Partner Center stand-in: find the Azure plan, suspend, undo."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.response.actions.base import ActionFailed, NotReversible
from shared.response.actions.suspend_subscription import ACTION
from tests.response.actions.partner_support import context
from tests.response.actions.sandbox_context import pc_alert


def plan_status(sandbox: Sandbox, customer: str, plan: str) -> str:
    service: Any = sandbox.services["partner_center"]
    return str(service.subscriptions[(customer.lower(), plan.lower())]["status"])


def test_the_target_is_the_azure_plan_holding_the_alerts_subscription(azurite: Azurite,
                                                                      fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), "suspend_subscription")
    [target] = ACTION.plan(ctx)
    assert (target.kind, target.id, target.tenant) == ("subscription", ids.PLAN_FABRIKAM, ids.CUSTOMER_FABRIKAM)
    assert target.details["azure_subscription_id"] == ids.SUB_FABRIKAM_PROD
    assert "Fabrikam Production" in target.display
    assert plan_status(fresh_sandbox, ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM) == "active"  # planning changes nothing


def test_suspend_verify_redeliver_and_undo(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), "suspend_subscription")
    [target] = ACTION.plan(ctx)
    assert ACTION.verify(ctx, target) is False

    outcome = ACTION.execute(ctx, target)
    assert not outcome.already_done
    assert outcome.data["previous_status"] == "active"
    assert plan_status(fresh_sandbox, ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM) == "suspended"
    # Crash after the PATCH, before the ledger write: the next delivery looks before acting.
    assert ACTION.verify(ctx, target) is True
    patches = [r for r in fresh_sandbox.requests("partner_center") if r.method == "PATCH"]
    assert ACTION.execute(ctx, target).already_done
    assert [r for r in fresh_sandbox.requests("partner_center") if r.method == "PATCH"] == patches

    undone = ACTION.undo(ctx, target, outcome.data)
    assert plan_status(fresh_sandbox, ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM) == "active"
    assert "reactivated" in undone.summary
    assert ACTION.undo(ctx, target, outcome.data).already_done  # a second undo changes nothing


def test_undo_after_a_crash_that_lost_the_recorded_status_still_reactivates(azurite: Azurite,
                                                                            fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), "suspend_subscription")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    ACTION.undo(ctx, target, {})
    assert plan_status(fresh_sandbox, ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM) == "active"


def test_undo_refuses_to_reactivate_a_plan_that_was_not_active_before(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), "suspend_subscription")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    with pytest.raises(NotReversible, match="disabled"):
        ACTION.undo(ctx, target, {"previous_status": "disabled"})
    assert plan_status(fresh_sandbox, ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM) == "suspended"


def test_an_azure_subscription_no_plan_holds_fails_with_what_to_do(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = replace(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                    subscription_id="bbbbbbbb-0099-4000-8000-000000000099")
    ctx = context(azurite, fresh_sandbox, alert, "suspend_subscription")
    with pytest.raises(ActionFailed, match=r"no Azure plan of customer .* holds Azure subscription bbbbbbbb-0099"):
        ACTION.plan(ctx)


def test_another_customers_subscription_is_not_found_in_this_customers_plan(azurite: Azurite,
                                                                           fresh_sandbox: Sandbox) -> None:
    alert = replace(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), subscription_id=ids.SUB_NORTHWIND_DEV)
    ctx = context(azurite, fresh_sandbox, alert, "suspend_subscription")
    with pytest.raises(ActionFailed, match="no Azure plan"):
        ACTION.plan(ctx)
    assert plan_status(fresh_sandbox, ids.CUSTOMER_NORTHWIND, ids.PLAN_NORTHWIND) == "active"
