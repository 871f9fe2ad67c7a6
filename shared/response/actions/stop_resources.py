"""stop_resources: deallocate (or power off) the affected VMs and scale sets through ARM.

One target per VM / scale set in ``alert.affected_resources`` (recognised by its resource id,
compared case-insensitively; duplicates named with other casing are one target). Other resource
types (an ML workspace, a storage account) cannot be stopped this way: they are not targets; each
VM target's details list them under ``not_stopped`` and the plan logs them, so an approver sees
what is left to do by hand.

Parameters: ``operation`` = ``deallocate`` (default: releases the compute, so billing stops and
mining cannot resume without a start) or ``power_off`` (keeps the allocation; still billed).

Before acting, the power state is written down once per alert and target (``notes``: the first
observation wins), so undo knows to start a VM that was running even when a crash came between the
ARM call and the ledger write. The long-running operation is followed to its end (ArmClient);
verify reads the power state: deallocated for ``deallocate``, deallocated or stopped for
``power_off``. Undo starts the resource again only if it was running before.

A resource found in a transitional state that ends where the operation wants it (``deallocating``;
``stopping`` too for ``power_off``) has an operation under way: an earlier attempt whose worker died
after ARM's 202, or someone else's. verify and execute follow it (re-reading the power state) and
never send the call a second time; if it is still under way after the wait, the job is retried.
Undo does the same with a ``starting`` resource.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, Outcome, Target
from shared.response.actions.notes import read_note, write_note_once

if TYPE_CHECKING:
    from shared.clients.arm import ArmClient, PowerState

logger = logging.getLogger(__name__)

OPERATIONS = ("deallocate", "power_off")
_COMPUTE_ID = re.compile(
    r"^/subscriptions/[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"(?P<kind>virtualMachines|virtualMachineScaleSets)/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
_KINDS = {"virtualmachines": "vm", "virtualmachinescalesets": "vmss"}


def _operation(ctx: ActionContext) -> str:
    operation = str(ctx.params.get("operation", "deallocate"))
    if operation not in OPERATIONS:
        raise ActionFailed(f"stop_resources: operation must be one of {', '.join(OPERATIONS)}, not {operation!r}; "
                           "fix the policy")
    return operation


_IN_PROGRESS = {"deallocate": ("deallocating",), "power_off": ("stopping", "deallocating")}
"""Transitional power states that end in the state each operation wants: followed, never called again."""


def _done(state: PowerState, operation: str) -> bool:
    return state.power_state == "deallocated" if operation == "deallocate" else state.stopped


class StopResources:
    """Deallocate or power off the alert's VMs and scale sets; undo starts the ones that were running."""

    name: ClassVar[str] = "stop_resources"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        operation = _operation(ctx)
        compute: dict[str, tuple[str, re.Match[str]]] = {}
        others: list[str] = []
        for resource in ctx.alert.affected_resources:
            resource_id = resource.resource_id.strip()
            match = _COMPUTE_ID.match(resource_id)
            if match is None:
                others.append(resource_id)
            else:
                compute.setdefault(resource_id.lower(), (resource_id, match))  # ARM ids ignore case
        if others:
            logger.info("stop_resources: alert %s: %d affected resource(s) are not VMs or scale sets and are not "
                        "stopped: %s", ctx.alert.key, len(others), ", ".join(others))
        details: dict[str, Any] = {"operation": operation, **({"not_stopped": others} if others else {})}
        return [Target(_KINDS[match["kind"].lower()], resource_id, display=match["name"],
                       tenant=ctx.alert.customer_tenant_id, details={"resource_group": match["rg"], **details})
                for resource_id, match in compute.values()]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """True when the resource is already in the state execute would leave it in."""
        from shared.http import NotFound

        operation = _operation(ctx)
        with permanent_errors(f"reading the power state of {target.id}"):
            try:
                state = _settled(ctx.clients.arm(target.tenant), target, _IN_PROGRESS[operation])
            except NotFound:
                return False  # gone: execute records that it no longer exists
        ctx.seen[target.id] = state
        return _done(state, operation)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        from shared.http import NotFound

        operation = _operation(ctx)
        arm = ctx.clients.arm(target.tenant)
        state: PowerState | None = ctx.seen.pop(target.id, None)  # verify's reading, just now
        if state is None:
            with permanent_errors(f"reading the power state of {target.id}"):
                try:
                    state = _settled(arm, target, _IN_PROGRESS[operation])
                except NotFound:
                    return Outcome(f"{target.display} no longer exists; nothing to stop",
                                   {"previous_power_state": "absent", "operation": operation}, already_done=True)
        note = write_note_once(ctx.clients.store, self.name, ctx.alert, target,
                               {"previous_power_state": state.power_state})
        previous = str(note.get("previous_power_state") or state.power_state)
        if _done(state, operation):
            return Outcome(f"{target.display} is already {state.power_state}",
                           {"previous_power_state": previous, "power_state": state.power_state,
                            "operation": operation}, already_done=True)
        with permanent_errors(f"{operation} {target.id}"):
            after = _act(arm, target, operation)
        if not _done(after, operation):
            raise ActionFailed(f"{operation} of {target.id} finished but the power state is {after.power_state}; "
                               "check the resource in the Azure portal")
        return Outcome(f"{_past(operation)} {target.display} (was {previous})",
                       {"previous_power_state": previous, "power_state": after.power_state, "operation": operation})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        note = read_note(ctx.clients.store, self.name, ctx.alert, target) or {}
        # The note holds the first observation; the ledger's copy can be missing after a crash.
        previous = str(note.get("previous_power_state") or recorded.get("previous_power_state") or "")
        if previous != "running":
            return Outcome(f"{target.display} was {previous or 'not known to be running'} before; left as it is",
                           {"previous_power_state": previous, "started": False})
        arm = ctx.clients.arm(target.tenant)
        with permanent_errors(f"starting {target.id}"):
            state = _settled(arm, target, ("starting",))
            if state.running:
                return Outcome(f"{target.display} is already running", {"power_state": "running", "started": False})
            after = arm.start_vm(target.id) if target.kind == "vm" else arm.start_vmss(target.id)
        return Outcome(f"started {target.display} again", {"power_state": after.power_state, "started": True})


def _settled(arm: ArmClient, target: Target, in_progress: tuple[str, ...]) -> PowerState:
    """The power state once no operation in ``in_progress`` is under way (followed by re-reading)."""
    return arm.wait_while(target.id, "virtualMachines" if target.kind == "vm" else "virtualMachineScaleSets",
                          in_progress)


def _act(arm: ArmClient, target: Target, operation: str) -> PowerState:
    if target.kind == "vm":
        return arm.deallocate_vm(target.id) if operation == "deallocate" else arm.power_off_vm(target.id)
    return arm.deallocate_vmss(target.id) if operation == "deallocate" else arm.power_off_vmss(target.id)


def _past(operation: str) -> str:
    return "deallocated" if operation == "deallocate" else "powered off"


ACTION = StopResources()
