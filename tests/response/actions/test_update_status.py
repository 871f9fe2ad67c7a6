"""update_status against the Partner Center and Graph stand-ins, and the stored alert row."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.graph import MINING_SECURITY_ALERT_ID
from shared.alerts import row_key
from shared.names import ALERTS_TABLE
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible
from shared.response.actions.update_status import ACTION, resolve_alert
from shared.sources.partner_center import LEGITIMATE_NOTE
from tests.response.actions.partner_support import again, context, store_alert
from tests.response.actions.sandbox_context import graph_alert, pc_alert

OTHER_FABRIKAM_EVENT = f"{ids.SUB_FABRIKAM_PROD}_service-health-advisory"


def pc_event(sandbox: Sandbox, event_id: str) -> dict[str, Any]:
    service: Any = sandbox.services["partner_center"]
    return dict(next(a for a in service.alerts if a["eventId"] == event_id))


def stored(ctx: ActionContext) -> dict[str, Any]:
    entity = ctx.clients.store.get(ALERTS_TABLE, ctx.alert.customer_tenant_id, row_key(ctx.alert.key))
    assert entity is not None
    return dict(entity)


def status_posts(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests("partner_center") if r.method == "POST" and r.path.endswith("/status")]


def test_investigating_is_written_to_partner_center_for_this_event_only(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = context(azurite, fresh_sandbox, alert, "update_status", actor="policy:crypto-mining-high")
    store_alert(ctx, alert)
    [target] = ACTION.plan(ctx)
    assert (target.kind, target.id) == ("alert", f"{alert.key}#investigating")
    assert target.details["status"] == "investigating"
    assert ACTION.verify(ctx, target) is False

    outcome = ACTION.execute(ctx, target)
    assert pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Investigating"
    assert pc_event(fresh_sandbox, OTHER_FABRIKAM_EVENT)["eventStatus"] == "Active"
    [post] = status_posts(fresh_sandbox)
    assert post.json() == {"EventIds": [ids.MINING_ALERT_EVENT_ID], "EventStatus": "Investigating"}
    assert post.headers["X-NewEventsModel"] == "true"
    assert outcome.data["previous_status"] == "active"
    row = stored(ctx)
    assert row["status"] == "investigating"  # `alerts list` shows it at once
    assert row["status_updated_by"] == "policy:crypto-mining-high"

    # Crash after the call, before the ledger write: verify sees it, executing again posts nothing.
    assert ACTION.verify(ctx, target) is True
    assert ACTION.execute(ctx, target).already_done
    assert len(status_posts(fresh_sandbox)) == 1


def test_resolved_fraud_and_undo_back_to_active(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = context(azurite, fresh_sandbox, alert, "update_status", status="resolved", reason="fraud")
    store_alert(ctx, alert)
    [target] = ACTION.plan(ctx)
    outcome = ACTION.execute(ctx, target)
    event = pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    assert (event["eventStatus"], event["resolvedReason"]) == ("Resolved", "Fraud")
    assert (stored(ctx)["status"], stored(ctx)["resolved_reason"]) == ("resolved", "fraud")
    assert ACTION.verify(ctx, target) is True

    ACTION.undo(again(ctx, actor="operator:alice"), target, outcome.data)
    event = pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    assert (event["eventStatus"], event["resolvedReason"]) == ("Active", "None")
    assert (stored(ctx)["status"], stored(ctx)["resolved_reason"]) == ("active", "")


def test_legitimate_is_sent_to_partner_center_as_ignore_and_says_so(azurite: Azurite,
                                                                    fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = context(azurite, fresh_sandbox, alert, "update_status", status="resolved", reason="legitimate")
    store_alert(ctx, alert)
    [target] = ACTION.plan(ctx)
    assert target.details["sent_reason"] == "Ignore"  # an approver sees the substitution before it happens
    outcome = ACTION.execute(ctx, target)
    assert pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["resolvedReason"] == "Ignore"
    assert outcome.data["note"] == LEGITIMATE_NOTE
    assert "Legitimate was sent as Ignore" in outcome.summary
    assert stored(ctx)["resolved_reason"] == "legitimate"  # what the operator concluded is kept
    assert ACTION.verify(ctx, target) is True


def test_graph_alerts_are_patched_with_the_reason_graph_accepts(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = graph_alert(fresh_sandbox, MINING_SECURITY_ALERT_ID)
    ctx = context(azurite, fresh_sandbox, alert, "update_status")
    store_alert(ctx, alert)
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    service: Any = fresh_sandbox.services["graph"]
    assert service.alert(MINING_SECURITY_ALERT_ID)["status"] == "investigating"
    assert ACTION.verify(ctx, target) is True

    resolve = again(ctx, status="resolved", reason="legitimate")
    [target] = ACTION.plan(resolve)
    assert ACTION.verify(resolve, target) is False
    outcome = ACTION.execute(resolve, target)
    graph_state = service.alert(MINING_SECURITY_ALERT_ID)
    assert (graph_state["status"], graph_state["resolvedReason"]) == ("resolved", "legitimate")
    assert "note" not in outcome.data
    assert outcome.data["previous_status"] == "investigating"
    assert stored(ctx)["status"] == "resolved"


def test_resolve_alert_for_the_cli_records_the_operator(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = context(azurite, fresh_sandbox, alert, "update_status")
    store_alert(ctx, alert)
    outcome = resolve_alert(ctx.settings, ctx.clients.store, alert.key, "Fraud", "alice")
    assert not outcome.already_done
    assert pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["resolvedReason"] == "Fraud"
    row = stored(ctx)
    assert (row["status"], row["resolved_by"]) == ("resolved", "operator:alice")
    assert resolve_alert(ctx.settings, ctx.clients.store, alert.key, "fraud", "alice").already_done
    with pytest.raises(ValueError, match="reason must be one of"):
        resolve_alert(ctx.settings, ctx.clients.store, alert.key, "oops", "alice")
    with pytest.raises(ActionFailed, match="no stored alert partner_center:nope"):
        resolve_alert(ctx.settings, ctx.clients.store, "partner_center:nope", "fraud", "alice")


def test_an_event_partner_center_does_not_have_fails_without_touching_others(azurite: Azurite,
                                                                            fresh_sandbox: Sandbox) -> None:
    alert = replace(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), id=f"{ids.SUB_FABRIKAM_PROD}_gone")
    ctx = context(azurite, fresh_sandbox, alert, "update_status")
    [target] = ACTION.plan(ctx)
    assert ACTION.verify(ctx, target) is False
    with pytest.raises(ActionFailed, match=r"updating fraud event .*_gone in Partner Center"):
        ACTION.execute(ctx, target)
    assert pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Active"
    assert pc_event(fresh_sandbox, OTHER_FABRIKAM_EVENT)["eventStatus"] == "Active"


def test_undo_goes_back_to_active_unless_the_alert_was_resolved_before(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = context(azurite, fresh_sandbox, alert, "update_status")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    ACTION.undo(ctx, target, {})  # nothing recorded (verify found it done after a crash): it was active
    assert pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Active"
    with pytest.raises(NotReversible, match="was resolved"):
        ACTION.undo(ctx, target, {"previous_status": "resolved"})
    assert pc_event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Active"


def test_a_reopened_alert_gets_its_own_status_row(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    """Each alert version answered has its own update_status row: an alert Microsoft reopens (a new
    version) is marked Investigating again rather than skipped as done."""
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    first = context(azurite, fresh_sandbox, alert, "update_status", actor="policy:crypto-mining-high")
    [v1] = ACTION.plan(replace(first, params={**first.params, "_version": 1}))
    [v2] = ACTION.plan(replace(first, params={**first.params, "_version": 2}))
    assert v1.id != v2.id and v1.id.endswith("#investigating#v1") and v2.id.endswith("#investigating#v2")
