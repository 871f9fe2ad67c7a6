"""The fraud verdict's actions one by one against the stand-ins: plan, verify, execute, a crash, undo.

suspend_customer_subscriptions and open_service_request against Partner Center, remove_role_assignments
against ARM (its targets from a real investigation of the sandbox's activity log). The engine's
modes (dry-run, approval, exactly-once over two deliveries) are in tests/response/test_fraud_verdict.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import Alert
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible
from shared.response.actions.investigate import ACTION as INVESTIGATE
from shared.response.actions.open_service_request import ACTION as OPEN_REQUEST
from shared.response.actions.remove_role_assignments import ACTION as REMOVE
from shared.response.actions.suspend_customer_subscriptions import ACTION as SUSPEND_ALL
from tests.response.actions.partner_support import again, context
from tests.response.actions.sandbox_context import pc_alert


def fraud(alert: Alert) -> Alert:
    return replace(alert, status="resolved", resolved_reason="fraud", resolved_by="operator:alice")


def requests(sandbox: Sandbox, service: str, method: str, prefix: str = "") -> list[Any]:
    return [r for r in sandbox.requests(service) if r.method == method and r.path.startswith(prefix)]


def investigated(azurite: Azurite, sandbox: Sandbox) -> ActionContext:
    """A context for remove_role_assignments holding the investigation of the mining alert."""
    alert = pc_alert(sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = context(azurite, sandbox, alert, "investigate")
    [target] = INVESTIGATE.plan(ctx)
    INVESTIGATE.execute(ctx, target)
    return ActionContext(settings=ctx.settings, alert=alert, params={}, clients=ctx.clients, actor="policy:test",
                         investigation=ctx.investigation)


# -- suspend_customer_subscriptions -------------------------------------------------------------------


def test_every_active_subscription_of_the_customer_is_a_target(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    service: Any = fresh_sandbox.services["partner_center"]
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "suspend_customer_subscriptions")
    targets = {t.id: t for t in SUSPEND_ALL.plan(ctx)}
    assert set(targets) == {ids.PLAN_FABRIKAM, ids.LICENCE_FABRIKAM_M365}
    assert targets[ids.PLAN_FABRIKAM].details["azure_plan"] is True
    assert "licence-based" in targets[ids.LICENCE_FABRIKAM_M365].display
    service.subscriptions[(ids.CUSTOMER_FABRIKAM, ids.LICENCE_FABRIKAM_M365)]["status"] = "suspended"
    assert [t.id for t in SUSPEND_ALL.plan(ctx)] == [ids.PLAN_FABRIKAM]  # only active ones
    assert requests(fresh_sandbox, "partner_center", "PATCH") == []


def test_suspend_verify_after_a_crash_and_undo_only_that_subscription(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    service: Any = fresh_sandbox.services["partner_center"]
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "suspend_customer_subscriptions")
    licence = next(t for t in SUSPEND_ALL.plan(ctx) if t.id == ids.LICENCE_FABRIKAM_M365)
    assert SUSPEND_ALL.verify(ctx, licence) is False
    outcome = SUSPEND_ALL.execute(ctx, licence)
    assert outcome.data["previous_status"] == "active" and not outcome.already_done

    def status(sub: str) -> str:
        return str(service.subscriptions[(ids.CUSTOMER_FABRIKAM, sub)]["status"])

    assert (status(ids.LICENCE_FABRIKAM_M365), status(ids.PLAN_FABRIKAM)) == ("suspended", "active")
    # a crash after the PATCH: the next delivery looks first and calls nothing
    patches = requests(fresh_sandbox, "partner_center", "PATCH")
    assert SUSPEND_ALL.verify(again(ctx), licence) is True
    assert SUSPEND_ALL.execute(again(ctx), licence).already_done
    assert requests(fresh_sandbox, "partner_center", "PATCH") == patches
    SUSPEND_ALL.undo(ctx, licence, outcome.data)
    assert (status(ids.LICENCE_FABRIKAM_M365), status(ids.PLAN_FABRIKAM)) == ("active", "active")
    with pytest.raises(NotReversible, match="already suspended"):
        SUSPEND_ALL.undo(ctx, licence, {"found_status": "suspended"})


# -- remove_role_assignments ----------------------------------------------------------------------------


def test_the_investigation_names_the_owner_assignment_the_compromised_user_created(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = investigated(azurite, fresh_sandbox)
    assert ctx.investigation is not None
    [written] = ctx.investigation["role_assignments"]
    assert (written["id"], written["principal"]) == (ids.ROGUE_ROLE_ASSIGNMENT_ID, ids.COMPROMISED_USER_ID)
    [target] = REMOVE.plan(ctx)
    assert (target.kind, target.id, target.tenant) == ("role_assignment", ids.ROGUE_ROLE_ASSIGNMENT_ID,
                                                        ids.CUSTOMER_FABRIKAM)


def test_remove_then_undo_after_a_crash_recreates_it_exactly(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    arm: Any = fresh_sandbox.services["arm"]
    ctx = investigated(azurite, fresh_sandbox)
    [target] = REMOVE.plan(ctx)
    before = next(a for a in arm.role_assignments() if a["name"] == ids.ROGUE_ROLE_ASSIGNMENT_NAME)
    assert REMOVE.verify(ctx, target) is False
    outcome = REMOVE.execute(ctx, target)
    assert outcome.data["assignment"]["principalId"] == ids.ROGUE_SP_ID
    assert all(a["name"] != ids.ROGUE_ROLE_ASSIGNMENT_NAME for a in arm.role_assignments())
    deletes = requests(fresh_sandbox, "arm", "DELETE")
    assert REMOVE.verify(ctx, target) is True  # a redelivery looks and calls nothing
    assert requests(fresh_sandbox, "arm", "DELETE") == deletes == [d for d in deletes if d.path == target.id]

    # the ledger's copy was lost in a crash: the note written before the DELETE still has it
    undone = REMOVE.undo(ctx, target, {})
    assert undone.data["recreated"] is True
    after = next(a for a in arm.role_assignments() if a["name"] == ids.ROGUE_ROLE_ASSIGNMENT_NAME)
    assert {k: after[k] for k in ("scope", "principalId", "roleDefinitionName", "principalType")} == \
        {k: before[k] for k in ("scope", "principalId", "roleDefinitionName", "principalType")}
    assert REMOVE.undo(ctx, target, outcome.data).already_done  # a second undo changes nothing


def test_an_assignment_already_gone_is_found_and_undo_refuses_it(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    arm: Any = fresh_sandbox.services["arm"]
    ctx = investigated(azurite, fresh_sandbox)
    [target] = REMOVE.plan(ctx)
    with arm.lock:
        arm._assignments = [a for a in arm._assignments if a["name"] != ids.ROGUE_ROLE_ASSIGNMENT_NAME]
    outcome = REMOVE.execute(ctx, target)
    assert outcome.already_done and requests(fresh_sandbox, "arm", "DELETE") == []
    with pytest.raises(NotReversible, match="already gone"):
        REMOVE.undo(ctx, target, outcome.data)


def test_without_an_investigation_the_plan_says_what_to_do(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "remove_role_assignments")
    with pytest.raises(ActionFailed, match="needs the investigation"):
        REMOVE.plan(ctx)


# -- open_service_request -------------------------------------------------------------------------------


def test_one_service_request_with_what_microsoft_asks_for_even_after_a_crash(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    service: Any = fresh_sandbox.services["partner_center"]
    ctx = context(azurite, fresh_sandbox, fraud(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)),
                  "open_service_request")
    [target] = OPEN_REQUEST.plan(ctx)
    assert OPEN_REQUEST.verify(ctx, target) is False
    outcome = OPEN_REQUEST.execute(ctx, target)
    [opened] = service.service_requests
    assert outcome.data["ticket_id"] == opened["id"] and opened["severity"] == "critical"
    assert opened["supportTopicId"] == ids.FRAUD_SUPPORT_TOPIC_ID and target.id in opened["title"]
    for line in (f"Partner tenant ID: {ids.PARTNER_TENANT_ID}", f"Customer tenant ID: {ids.CUSTOMER_FABRIKAM}",
                 f"Subscription ID: {ids.SUB_FABRIKAM_PROD}", ids.MINING_VM_1, "Impact start: 20",
                 "Impact end: 20"):
        assert line in opened["description"], line
    # a crash after the POST, a retried call: looked up by the marker, never opened twice
    assert OPEN_REQUEST.verify(again(ctx), target) is True
    repeat = OPEN_REQUEST.execute(again(ctx), target)
    assert repeat.already_done and repeat.data["ticket_id"] == opened["id"]
    assert len(requests(fresh_sandbox, "partner_center", "POST", "/v1/servicerequests/")) == 1
    assert len(service.service_requests) == 1
    with pytest.raises(NotReversible, match="cannot be unsent"):
        OPEN_REQUEST.undo(ctx, target, outcome.data)


def test_no_service_request_for_an_alert_not_confirmed_as_fraud(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), "open_service_request")
    with pytest.raises(ActionFailed, match="confirmed fraud only"):
        OPEN_REQUEST.plan(ctx)


def test_a_topic_no_support_topic_mentions_fails_with_the_topics(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    service: Any = fresh_sandbox.services["partner_center"]
    service.support_topics = [t for t in service.support_topics if t["id"] != ids.FRAUD_SUPPORT_TOPIC_ID]
    ctx = context(azurite, fresh_sandbox, fraud(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)),
                  "open_service_request", topic="security")
    [target] = OPEN_REQUEST.plan(ctx)
    with pytest.raises(ActionFailed, match=r"no Partner Center support topic mentions 'security'.*Billing"):
        OPEN_REQUEST.execute(ctx, target)
    assert requests(fresh_sandbox, "partner_center", "POST", "/v1/servicerequests/") == []
