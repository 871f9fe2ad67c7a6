"""stop_resources against the sandbox's ARM: real long-running operations, power states read back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import AffectedResource
from shared.response.actions.base import ActionFailed
from shared.response.actions.stop_resources import ACTION
from tests.response.actions.sandbox_context import action_context, pc_alert, same_store

VMSS = (f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/resourceGroups/{ids.MINING_RESOURCE_GROUP}/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/vmss-gpu-pool")
DEV_VM = (f"/subscriptions/{ids.SUB_NORTHWIND_DEV}/resourceGroups/rg-dev/providers/Microsoft.Compute/"
          "virtualMachines/vm-dev-01")  # deallocated in the scenario


def _arm(sandbox: Sandbox) -> Any:
    return sandbox.services["arm"]


def test_plan_has_one_target_per_vm_and_scale_set_and_names_what_it_cannot_stop(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    alert = dataclasses.replace(alert, affected_resources=(
        *alert.affected_resources,
        AffectedResource(ids.MINING_VM_1.upper(), "Microsoft.Compute/virtualMachines"),  # the same VM, other casing
        AffectedResource(VMSS, "Microsoft.Compute/virtualMachineScaleSets"),
        AffectedResource(f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/resourceGroups/rg/providers/"
                         "Microsoft.Storage/storageAccounts/loot", "Microsoft.Storage/storageAccounts")))
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources")
    targets = ACTION.plan(ctx)
    assert [(t.kind, t.id) for t in targets] == [("vm", ids.MINING_VM_1), ("vm", ids.MINING_VM_2), ("vmss", VMSS)]
    assert all(t.tenant == ids.CUSTOMER_FABRIKAM for t in targets)
    assert targets[0].display == "vm-gpu-01" and targets[0].details["operation"] == "deallocate"
    assert targets[0].details["not_stopped"] == [alert.affected_resources[-1].resource_id]


def test_a_resolved_ml_workspace_alert_has_no_targets(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, f"{ids.SUB_TAILSPIN_LAB}_mlw-lab")
    assert ACTION.plan(action_context(azurite, fresh_sandbox, alert, "stop_resources")) == []


def test_deallocates_the_mining_vms_and_undo_starts_them_again(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources")
    vm1, vm2 = ACTION.plan(ctx)
    assert not ACTION.verify(ctx, vm1)

    outcome = ACTION.execute(ctx, vm1)

    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_1) == "deallocated"
    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_2) == "running"
    assert outcome.data == {"previous_power_state": "running", "power_state": "deallocated",
                            "operation": "deallocate"}
    assert not outcome.already_done
    # Crash after the ARM call and before the ledger write: verify sees it done; a second execute
    # calls nothing and still knows the VM was running before.
    assert ACTION.verify(ctx, vm1)
    posts = len([r for r in fresh_sandbox.requests("arm") if r.method == "POST"])
    again = ACTION.execute(same_store(ctx, alert, "stop_resources"), vm1)
    assert again.already_done and again.data["previous_power_state"] == "running"
    assert len([r for r in fresh_sandbox.requests("arm") if r.method == "POST"]) == posts

    # Undo with what the ledger recorded, and with nothing recorded (the engine's verify-first path).
    ACTION.execute(ctx, vm2)
    assert ACTION.undo(ctx, vm1, outcome.data).data["started"] is True
    assert ACTION.undo(ctx, vm2, {}).data["started"] is True
    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_1) == "running"
    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_2) == "running"


def test_verify_then_execute_reads_the_power_state_once(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    # The chain to containment: one instance-view read and the deallocate, as a bare client would make them.
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources")
    vm1, _vm2 = ACTION.plan(ctx)
    before = len(fresh_sandbox.requests("arm"))

    assert not ACTION.verify(ctx, vm1)
    ACTION.execute(ctx, vm1)

    calls = [(r.method, r.path.rsplit("/", 1)[1]) for r in fresh_sandbox.requests("arm")[before:]]
    assert calls[:2] == [("GET", "vm-gpu-01"), ("POST", "deallocate")], calls
    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_1) == "deallocated"


def test_power_off_stops_a_scale_set_and_verify_accepts_stopped(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    scale_set = AffectedResource(VMSS, "Microsoft.Compute/virtualMachineScaleSets")
    alert = dataclasses.replace(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID), affected_resources=(scale_set,))
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources", operation="power_off")
    [target] = ACTION.plan(ctx)
    assert target.kind == "vmss"
    outcome = ACTION.execute(ctx, target)
    assert _arm(fresh_sandbox).power_state(VMSS) == "stopped"
    assert outcome.summary == "powered off vmss-gpu-pool (was running)"
    assert ACTION.verify(ctx, target)
    # deallocate wants more than stopped: a stopped scale set still holds (and bills) its compute.
    deallocate = same_store(ctx, alert, "stop_resources")
    assert not ACTION.verify(deallocate, target)
    ACTION.undo(ctx, target, outcome.data)
    assert _arm(fresh_sandbox).power_state(VMSS) == "running"


def test_undo_leaves_a_vm_that_was_already_deallocated(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = dataclasses.replace(pc_alert(fresh_sandbox, f"{ids.SUB_NORTHWIND_DEV}_vm-build-07"),
                                affected_resources=(AffectedResource(DEV_VM, "Microsoft.Compute/virtualMachines"),))
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources")
    [target] = ACTION.plan(ctx)
    assert target.tenant == ids.CUSTOMER_NORTHWIND
    outcome = ACTION.execute(ctx, target)
    assert outcome.already_done and outcome.data["previous_power_state"] == "deallocated"
    undone = ACTION.undo(ctx, target, outcome.data)
    assert undone.data["started"] is False
    assert _arm(fresh_sandbox).power_state(DEV_VM) == "deallocated"


def test_a_deleted_vm_is_reported_not_failed(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    gone = ids.MINING_VM_1.replace("vm-gpu-01", "vm-gpu-09")
    alert = dataclasses.replace(pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                                affected_resources=(AffectedResource(gone, "Microsoft.Compute/virtualMachines"),))
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources")
    [target] = ACTION.plan(ctx)
    assert not ACTION.verify(ctx, target)
    outcome = ACTION.execute(ctx, target)
    assert outcome.already_done and outcome.summary == "vm-gpu-09 no longer exists; nothing to stop"


def test_a_failed_operation_leaves_the_vm_running_and_is_reported(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    from shared.clients.arm import OperationFailed

    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources")
    vm1, _ = ACTION.plan(ctx)
    _arm(fresh_sandbox).fail_next_operation("OperationPreempted", "The operation was preempted.")
    with pytest.raises(OperationFailed, match="preempted"):
        ACTION.execute(ctx, vm1)
    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_1) == "running"
    assert not ACTION.verify(ctx, vm1)
    outcome = ACTION.execute(ctx, vm1)  # the retry (an operator's approve) finishes it
    assert outcome.data["previous_power_state"] == "running"
    assert _arm(fresh_sandbox).power_state(ids.MINING_VM_1) == "deallocated"


def test_an_unknown_operation_is_a_permanent_failure(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "stop_resources", operation="delete")
    with pytest.raises(ActionFailed, match="operation must be one of deallocate, power_off"):
        ACTION.plan(ctx)
