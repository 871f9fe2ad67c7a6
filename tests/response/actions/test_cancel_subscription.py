"""cancel_azure_subscription against the Partner Center stand-in: approval only, compromise, undo."""

from __future__ import annotations

from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.response.actions.base import ActionFailed
from shared.response.actions.cancel_azure_subscription import ACTION
from tests.response.actions.partner_support import again, context
from tests.response.actions.sandbox_context import pc_alert


def entitlement_status(sandbox: Sandbox) -> str:
    service: Any = sandbox.services["partner_center"]
    key = (ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM, ids.SUB_FABRIKAM_PROD)
    return str(service.entitlements[key]["status"])


def cancel_calls(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests("partner_center") if r.method == "POST" and r.path.endswith("/cancel")]


def test_the_target_is_the_entitlement_with_its_plan(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "cancel_azure_subscription", actor="operator:alice")
    [target] = ACTION.plan(ctx)
    assert (target.kind, target.id, target.tenant) == ("entitlement", ids.SUB_FABRIKAM_PROD, ids.CUSTOMER_FABRIKAM)
    assert target.details["plan_subscription_id"] == ids.PLAN_FABRIKAM


@pytest.mark.parametrize(("actor", "params"), [("policy:crypto-mining-high", {}),
                                               ("policy:crypto-mining-high", {"_mode": "enforce"}),
                                               ("operator:alice", {"_mode": "enforce"})])
def test_without_the_setting_the_policy_cannot_cancel_on_its_own(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                 actor: str, params: dict[str, Any]) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "cancel_azure_subscription", actor=actor, **params)
    [target] = ACTION.plan(ctx)
    with pytest.raises(ActionFailed, match="ALLOW_AUTOMATIC_CANCELLATION"):
        ACTION.execute(ctx, target)
    assert entitlement_status(fresh_sandbox) == "active"
    assert cancel_calls(fresh_sandbox) == []


def test_an_approved_cancellation_sends_compromise_and_survives_redelivery(azurite: Azurite,
                                                                          fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "cancel_azure_subscription", actor="operator:alice")
    [target] = ACTION.plan(ctx)
    assert ACTION.verify(ctx, target) is False

    outcome = ACTION.execute(ctx, target)
    assert entitlement_status(fresh_sandbox) == "inactive"
    assert outcome.data["reason"] == "compromise"
    assert outcome.data["plan_subscription_id"] == ids.PLAN_FABRIKAM
    [call] = cancel_calls(fresh_sandbox)
    assert call.json() == {"cancellationReason": "compromise"}
    assert call.path == (f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.PLAN_FABRIKAM}"
                         f"/azureEntitlements/{ids.SUB_FABRIKAM_PROD}/cancel")
    # Crash after the call, before the ledger write: verify sees it; executing again calls nothing.
    assert ACTION.verify(ctx, target) is True
    assert ACTION.execute(ctx, target).already_done
    assert len(cancel_calls(fresh_sandbox)) == 1

    undone = ACTION.undo(again(ctx, actor="operator:bob"), target, outcome.data)
    assert entitlement_status(fresh_sandbox) == "active"
    assert "reactivated" in undone.summary


def test_the_setting_allows_the_policy_to_cancel(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "cancel_azure_subscription", env={"ALLOW_AUTOMATIC_CANCELLATION": "true"},
                  actor="policy:crypto-mining-high", _mode="enforce")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    assert entitlement_status(fresh_sandbox) == "inactive"


def test_undo_of_an_entitlement_that_is_active_changes_nothing(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "cancel_azure_subscription", actor="operator:alice")
    [target] = ACTION.plan(ctx)
    assert ACTION.undo(ctx, target, {}).already_done
    assert not [r for r in fresh_sandbox.requests("partner_center") if r.path.endswith("/reactivate")]
