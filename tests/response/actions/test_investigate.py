"""investigate against the sandbox: the real ARM client reads the activity log, Graph names the callers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import AffectedResource
from shared.response.actions.base import NotReversible
from shared.response.actions.investigate import ACTION
from shared.response.investigation import load_investigation
from tests.response.actions.sandbox_context import action_context, pc_alert, same_store

VMSS = (f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/resourceGroups/{ids.MINING_RESOURCE_GROUP}/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/vmss-gpu-pool")


def _at(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_requests(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("arm") if r.path.endswith("/eventtypes/management/values"))


def test_names_the_user_and_the_service_principal_that_created_the_mining_vms(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "investigate")
    [target] = ACTION.plan(ctx)
    assert (target.kind, target.id) == ("alert", alert.key)
    assert not ACTION.verify(ctx, target)

    outcome = ACTION.execute(ctx, target)

    assert outcome.summary == ("2 principals created or changed the affected resources: "
                               "mallory@fabrikam.example (user), batch-render-tool (service principal)")
    document = load_investigation(ctx.clients.store, alert)
    assert document is not None
    assert document["events_examined"] == 9  # every page (the sandbox pages by 4), nothing older than the window
    [user] = document["users"]
    assert (user["id"], user["upn"], user["name"]) == (ids.COMPROMISED_USER_ID, ids.COMPROMISED_USER_UPN,
                                                       "Mallory (Fabrikam IT)")
    # What else she did: granted a role (to the rogue service principal), beside creating VM 1
    # (its Started and Succeeded events are one operation).
    assert [(o["operation"], o["status"]) for o in user["operations"]] == [
        ("Microsoft.Authorization/roleAssignments/write", "Succeeded"),
        ("Microsoft.Compute/virtualMachines/write", "Succeeded")]
    [sp] = document["service_principals"]
    assert (sp["id"], sp["app_id"], sp["display"]) == (ids.ROGUE_SP_ID, ids.ROGUE_APP_CLIENT_ID, "batch-render-tool")
    assert {o["resource_id"].rsplit("/", 1)[1] for o in sp["operations"]} == {"nsg-gpu", "vm-gpu-02", "vmss-gpu-pool",
                                                                               "vm-gpu-03"}
    assert document["resources"][ids.MINING_VM_1]["principals"] == [ids.COMPROMISED_USER_ID]
    assert document["resources"][ids.MINING_VM_2]["principals"] == [ids.ROGUE_SP_ID]
    # The admin listed storage keys in the window but touched no affected resource: not implicated.
    assert ids.FABRIKAM_GLOBAL_ADMIN_UPN not in str(document["users"])
    assert outcome.data["users"] == [ids.COMPROMISED_USER_ID]
    assert outcome.data["service_principals"] == [ids.ROGUE_SP_ID]

    # Later actions get it through the context.
    later = same_store(ctx, alert, "revoke_sessions")
    later.investigation = load_investigation(ctx.clients.store, alert)
    implicated = later.implicated()
    assert implicated.users == ((ids.COMPROMISED_USER_ID, ids.COMPROMISED_USER_UPN),)
    assert implicated.service_principals == ((ids.ROGUE_SP_ID, "batch-render-tool"),)

    # A crash after storing and before the ledger write: verify finds it (so the engine calls nothing again).
    reads = _log_requests(fresh_sandbox)
    assert ACTION.verify(same_store(ctx, alert, "investigate"), target)
    assert _log_requests(fresh_sandbox) == reads


def test_the_window_starts_a_day_before_the_first_observation(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    arm: Any = fresh_sandbox.services["arm"]
    arm.add_event({"eventTimestamp": _at(dt.timedelta(hours=26)),
                   "operationName": "Microsoft.Compute/virtualMachines/extensions/write",
                   "resourceId": ids.MINING_VM_1 + "/extensions/x",
                   "caller": "bob@fabrikam.example", "callerObjectId": "dddddddd-0004-4000-8000-000000000004"})
    arm.add_event({"eventTimestamp": _at(dt.timedelta(hours=28)), "operationName":
                   "Microsoft.Compute/virtualMachines/write", "resourceId": ids.MINING_VM_1,
                   "caller": "ops@fabrikam.example", "callerObjectId": "dddddddd-0003-4000-8000-000000000003"})
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)  # first observed 3 h ago
    ctx = action_context(azurite, fresh_sandbox, alert, "investigate")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    document = load_investigation(ctx.clients.store, alert)
    assert document is not None
    users = [u["display"] for u in document["users"]]
    assert users == ["bob@fabrikam.example", ids.COMPROMISED_USER_UPN]  # a change under VM 1 counts; 28 h ago does not
    assert document["events_examined"] == 10
    start = dt.datetime.fromisoformat(document["window"]["start"])
    assert alert.first_observed_at is not None
    assert start == alert.first_observed_at - dt.timedelta(hours=24)


def test_the_partners_own_gdap_activity_is_not_implicated(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    arm: Any = fresh_sandbox.services["arm"]
    arm.add_event({
        "eventTimestamp": _at(dt.timedelta(minutes=30)), "operationName": "Microsoft.Compute/virtualMachines/write",
        "resourceId": ids.MINING_VM_1, "caller": "admin-agent@contoso-csp.example",
        "claims": {"http://schemas.microsoft.com/identity/claims/objectidentifier":
                       "99999999-0001-4000-8000-000000000001",
                   "http://schemas.microsoft.com/identity/claims/identityprovider":
                       f"https://sts.windows.net/{ids.PARTNER_TENANT_ID}/",
                   "appid": ids.PARTNER_APP_CLIENT_ID}})
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "investigate")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    document = load_investigation(ctx.clients.store, alert)
    assert document is not None
    assert [u["id"] for u in document["users"]] == [ids.COMPROMISED_USER_ID]
    assert document["partner_events_left_out"] == 1


def test_an_alert_without_resources_is_investigated_and_says_nobody_was_found(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, f"{ids.SUB_TAILSPIN_LAB}_usage-anomaly-0001")
    ctx = action_context(azurite, fresh_sandbox, alert, "investigate")
    [target] = ACTION.plan(ctx)
    outcome = ACTION.execute(ctx, target)
    assert outcome.summary.startswith("no principal in the activity log created or changed the affected resources")
    assert ACTION.verify(ctx, target)
    document = load_investigation(ctx.clients.store, alert)
    assert document is not None and document["users"] == [] and document["service_principals"] == []


def test_a_version_naming_new_resources_is_investigated_again(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "investigate")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    grown = dataclasses.replace(alert, affected_resources=(
        *alert.affected_resources, AffectedResource(VMSS, "Microsoft.Compute/virtualMachineScaleSets")))
    later = same_store(ctx, grown, "investigate")
    assert not ACTION.verify(later, target)
    outcome = ACTION.execute(later, target)
    assert not outcome.already_done
    document = load_investigation(ctx.clients.store, grown)
    assert document is not None and document["resources"][VMSS]["principals"] == [ids.ROGUE_SP_ID]


def test_undo_is_refused_and_the_evidence_stays(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "investigate")
    [target] = ACTION.plan(ctx)
    ACTION.execute(ctx, target)
    with pytest.raises(NotReversible, match="nothing to undo"):
        ACTION.undo(ctx, target, {})
    assert load_investigation(ctx.clients.store, alert) is not None
    assert not ACTION.reversible
