"""Exactly one effect per action and target, against Azurite and the sandbox (issue 10, items 5-7):
two live copies of one job never both act, a row left running by a crash is retaken once its lease
expires (by the job's redelivery and by operators), and undo never reverses what the responder
did not do."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.intake.jobs import run_sync
from shared.intake.sync import SyncScope
from shared.response import registry
from shared.response.actions.base import ActionContext, Outcome, Target
from shared.response.engine import DEFAULT_LEASE_SECONDS, OperatorError, Responder, RetryLater
from shared.response.jobs import max_dequeue_count, poison_records
from shared.response.ledger import AWAITING_APPROVAL, REJECTED, RUNNING, SUCCEEDED, UNDONE, LedgerEntry, now_utc
from tests.response.respond_support import MINING_KEY, Stage, by_action, policy, respond_one, stage, take_job, writes


class Crash(BaseException):
    """The worker dies (not an exception any handler catches)."""


class Wrapped:
    """The real stop_resources with a seam around execute: ``before`` / ``after`` run around the call."""

    name: ClassVar[str] = "stop_resources"
    reversible: ClassVar[bool] = True

    def __init__(self, *, before: Any = None, after: Any = None) -> None:
        self.inner = registry.get_action("stop_resources")
        self.before, self.after = before, after
        self.executed: list[str] = []

    def plan(self, ctx: ActionContext) -> list[Target]:
        return self.inner.plan(ctx)

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        return self.inner.verify(ctx, target)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        if self.before is not None:
            self.before(target)
        outcome = self.inner.execute(ctx, target)
        self.executed.append(target.id)
        if self.after is not None:
            self.after(target)
        return outcome

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return self.inner.undo(ctx, target, recorded)


def _deallocations(sandbox: Sandbox, vm: str) -> int:
    return sum(1 for r in sandbox.requests("arm")
               if r.method == "POST" and r.path.lower() == (vm + "/deallocate").lower() and r.status < 300)


def _power(sandbox: Sandbox, vm: str) -> str:
    return str(sandbox.services["arm"].power_state(vm))  # type: ignore[attr-defined]


def _later(st: Stage, **kwargs: Any) -> Responder:
    """A responder whose clock is past every lease taken now (the crashed holder is gone)."""
    return st.responder(clock=lambda: now_utc() + timedelta(seconds=DEFAULT_LEASE_SECONDS + 60), **kwargs)


def _row(responder: Responder, action: str, target_id: str) -> LedgerEntry:
    return next(r for r in responder.list_actions(alert=MINING_KEY) if r.action == action and r.target.id == target_id)


# --- item 5: two live copies of one job --------------------------------------------------------------


def test_two_live_copies_of_the_same_job_deallocate_each_vm_exactly_once(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                        tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    _job, body = take_job(st)
    inside, go = threading.Event(), threading.Event()

    def hold_first(target: Target) -> None:
        if not inside.is_set():
            inside.set()
            assert go.wait(60)

    first = Wrapped(before=hold_first)
    outcome: dict[str, Any] = {}

    def run_first() -> None:
        try:
            outcome["result"] = respond_one(body, responder=st.responder(actions={"stop_resources": first}))
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    worker = threading.Thread(target=run_first)
    worker.start()
    try:
        assert inside.wait(60), outcome
        # The first copy is inside its deallocate of the first VM. A second copy of the same job (the
        # sync re-sent it; the queue hands it out on its second delivery) must leave that VM alone.
        with pytest.raises(RetryLater, match="held by"):
            respond_one(body, dequeue_count=2, responder=st.responder())
    finally:
        go.set()
        worker.join(60)
    assert "error" not in outcome, outcome

    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm
        assert _power(fresh_sandbox, vm) == "deallocated"
    rows = by_action(st.responder().list_actions(alert=MINING_KEY), "stop_resources")
    assert {r.state for r in rows} == {SUCCEEDED}


def test_a_redelivery_waits_for_the_crashed_lease_then_finishes_without_a_second_call(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    job, body = take_job(st)

    def crash(target: Target) -> None:
        raise Crash

    crashing = Wrapped(after=crash)
    with pytest.raises(Crash):
        respond_one(body, responder=st.responder(actions={"stop_resources": crashing}))
    # The VMs are stopped side by side (RESPOND_ACTION_CONCURRENCY): the crash may come after one
    # deallocate or after both.
    crashed = crashing.executed
    assert crashed and all(_row(st.responder(), "stop_resources", vm).state == RUNNING for vm in crashed)

    # the queue's redelivery while the dead worker's lease still holds: nothing is taken over
    with pytest.raises(RetryLater, match="held by"):
        respond_one(body, dequeue_count=2, responder=st.responder())
    # after the lease expired: retaken, verify sees the effect, no second call
    result = respond_one(body, dequeue_count=3, responder=_later(st))

    assert result is not None and not result.deferred
    for vm in crashed:
        assert _deallocations(fresh_sandbox, vm) == 1
        row = _row(st.responder(), "stop_resources", vm)
        assert row.state == SUCCEEDED and row.already_done and row.found_state == ""  # ours: undo may reverse it
    assert st.job_state(job) == "handled"


def test_a_row_whose_run_here_failed_to_record_it_is_retaken_at_once_not_after_the_lease(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Storage fails as the deallocate's success is recorded: the row stays running under this process's lease.
    # That run has ended (it raised), so its lease guards nothing: the retry need not wait 10 minutes.
    from shared.response.ledger import Ledger
    from shared.storage.errors import StorageUnreachable

    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    job, body = take_job(st)
    transition = Ledger.transition
    failed: list[str] = []

    def storage_down(self: Ledger, entry: LedgerEntry, changes: Any) -> LedgerEntry:
        if (changes.get("state") == SUCCEEDED and not failed) or entry.target.id in failed:
            failed.append(entry.target.id)  # from the success on, this row's writes fail (its lease's release too)
            raise StorageUnreachable("cannot reach Table Storage (injected)")
        return transition(self, entry, changes)

    monkeypatch.setattr(Ledger, "transition", storage_down)
    with pytest.raises(StorageUnreachable):  # the queue retries the job (a batch sends that alert on alone)
        respond_one(body, responder=st.responder())
    monkeypatch.setattr(Ledger, "transition", transition)  # storage is back
    vm = failed[0]
    row = _row(st.responder(), "stop_resources", vm)
    assert row.state == RUNNING and not row.lease_free(now_utc())  # held for the function timeout

    result = respond_one(body, dequeue_count=2, responder=st.responder())  # the retry, a few seconds later

    assert result is not None and not result.deferred
    row = _row(st.responder(), "stop_resources", vm)
    assert row.state == SUCCEEDED and _deallocations(fresh_sandbox, vm) == 1  # verified, not called again
    assert st.job_state(job) == "handled"


def test_the_last_delivery_of_a_job_held_by_a_live_lease_is_sent_again_not_poisoned(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    job, body = take_job(st)

    def crash(target: Target) -> None:
        raise Crash

    with pytest.raises(Crash):  # a worker with a short lease dies after its first deallocate
        respond_one(body, responder=st.responder(actions={"stop_resources": Wrapped(after=crash)},
                                                            lease_seconds=3))

    result = respond_one(body, dequeue_count=max_dequeue_count(), responder=st.responder())

    assert result is not None and any("held by" in d for d in result.deferred)
    assert poison_records(st.store) == [] and st.job_state(job) == "pending"  # not given up
    time.sleep(4)  # the re-sent copy becomes visible once the dead worker's lease has ended
    again, again_body = take_job(st)
    assert again == job
    done = respond_one(again_body, responder=st.responder())
    assert done is not None and not done.deferred and st.job_state(job) == "handled"
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm


def _crash_once_arm_accepted(monkeypatch: pytest.MonkeyPatch) -> Wrapped:
    """stop_resources whose worker dies right after ARM accepted the deallocate (202), before the
    long-running operation ended and before anything reached the ledger."""

    def execute(ctx: ActionContext, target: Target) -> Outcome:
        arm = ctx.clients.arm(target.tenant)  # the job's own client: the action's call goes through it

        def die(*args: Any, **kwargs: Any) -> None:
            raise Crash

        monkeypatch.setattr(arm, "wait_for_operation", die)
        return wrapped.inner.execute(ctx, target)

    wrapped = Wrapped()
    wrapped.execute = execute  # type: ignore[method-assign]
    return wrapped


def test_a_deallocate_accepted_before_a_crash_is_followed_on_retake_not_called_again(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    fresh_sandbox.services["arm"].lro_polls = 4  # type: ignore[attr-defined]  # a deallocate takes a while
    job, body = take_job(st)
    with pytest.raises(Crash):
        respond_one(body, responder=st.responder(actions={"stop_resources":
                                                                     _crash_once_arm_accepted(monkeypatch)}))
    accepted = [vm for vm in (ids.MINING_VM_1, ids.MINING_VM_2) if _deallocations(fresh_sandbox, vm)]
    # the worker died inside its first deallocate (or both: the VMs are stopped side by side)
    assert accepted
    for vm in accepted:
        # ARM accepted it: the instance view reads deallocating from that moment, as Azure's does.
        assert _power(fresh_sandbox, vm) == "deallocating"
        assert _row(st.responder(), "stop_resources", vm).state == RUNNING

    result = respond_one(body, dequeue_count=2, responder=_later(st))

    assert result is not None and not result.deferred
    for each in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, each) == 1, each  # the accepted one was followed, not sent again
        assert _power(fresh_sandbox, each) == "deallocated"
    for vm in accepted:
        row = _row(st.responder(), "stop_resources", vm)
        assert row.state == SUCCEEDED and row.already_done and row.found_state == ""  # ours: undo may reverse it
    assert st.job_state(job) == "handled"


def test_a_deallocate_whose_operation_could_not_be_followed_is_not_sent_again(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    """ARM accepted the deallocate, then every poll of its operation was dropped: the job is retried,
    and the retry finds the VM deallocating and follows it instead of deallocating it a second time."""
    from sandbox.faults import Fault

    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    fresh_sandbox.services["arm"].lro_polls = 4  # type: ignore[attr-defined]  # a deallocate takes a while
    job, body = take_job(st)
    fresh_sandbox.add_fault(Fault(service="arm", kind="drop", path="/operations/", times=None))
    with pytest.raises(RetryLater):
        respond_one(body, responder=st.responder())
    fresh_sandbox.clear_faults()
    assert {_power(fresh_sandbox, vm) for vm in (ids.MINING_VM_1, ids.MINING_VM_2)} == {"deallocating"}

    result = respond_one(body, dequeue_count=2, responder=st.responder())

    assert result is not None and not result.deferred
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm
        assert _power(fresh_sandbox, vm) == "deallocated"
        assert _row(st.responder(), "stop_resources", vm).state == SUCCEEDED
    assert st.job_state(job) == "handled"


class CrashAfterExecute:
    """Any real action whose worker dies right after its external call returned (nothing recorded)."""

    reversible: ClassVar[bool] = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.inner = registry.get_action(name)

    def plan(self, ctx: ActionContext) -> list[Target]:
        return self.inner.plan(ctx)

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        return self.inner.verify(ctx, target)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        self.inner.execute(ctx, target)
        raise Crash

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return self.inner.undo(ctx, target, recorded)


def test_a_row_left_running_by_a_superseded_version_is_closed_by_the_next_versions_job(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    """Version 1's job dies inside update_status; the alert changes (version 2) before it comes back,
    so version 1's job never runs again. Version 2's job closes version 1's row: none stays running."""
    st = stage(azurite, fresh_sandbox, tmp_path=tmp_path, policy=policy(
        ("update_status", "enforce", 'status = "investigating"'), ("stop_resources", "enforce", "")))
    _job, body = take_job(st)
    with pytest.raises(Crash):
        respond_one(body, responder=st.responder(
            actions={"update_status": CrashAfterExecute("update_status")}))
    [orphan] = [r for r in st.responder().list_actions(alert=MINING_KEY) if r.state == RUNNING]
    assert orphan.action == "update_status" and orphan.version == 1
    _event(fresh_sandbox)["hitCount"] = str(2 * int(_event(fresh_sandbox)["hitCount"]))  # a new version
    assert run_sync(st.runtime, SyncScope(), trigger="test", sources=("partner_center",)).ok
    job2, body2 = take_job(st)
    assert job2["version"] == 2

    # Version 1's worker may still live: version 2 waits for its lease like for any held row.
    with pytest.raises(RetryLater, match="held by"):
        respond_one(body2, responder=st.responder())
    result = respond_one(body2, dequeue_count=2, responder=_later(st))

    assert result is not None and not result.deferred
    rows = st.responder().list_actions(alert=MINING_KEY)
    assert [r for r in rows if r.state == RUNNING] == []
    closed = next(r for r in rows if r.action_id == orphan.action_id)
    # Version 1's call went through before the crash: its effect is found and put on record.
    assert closed.state == SUCCEEDED and closed.already_done, closed
    assert st.job_state(job2) == "handled"
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm


# --- item 6: operators retake a row left running by a crash ------------------------------------------


def test_an_approval_that_died_mid_call_is_approved_again_after_its_lease_and_can_be_undone(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)  # the default policy: containment waits for approval
    _job, body = take_job(st)
    respond_one(body, responder=st.responder())
    pending = _row(st.responder(), "stop_resources", ids.MINING_VM_1)
    assert pending.state == AWAITING_APPROVAL

    def crash(target: Target) -> None:
        raise Crash

    with pytest.raises(Crash):  # the approval dies right after the deallocate returned
        st.responder(actions={"stop_resources": Wrapped(after=crash)}).approve(pending.action_id, "alice")
    assert _row(st.responder(), "stop_resources", ids.MINING_VM_1).state == RUNNING
    with pytest.raises(OperatorError, match="held by"):  # the lease still holds: nobody takes it yet
        st.responder().approve(pending.action_id, "bob")

    done = _later(st).approve(pending.action_id, "bob")

    assert done.state == SUCCEEDED and done.already_done and done.approved_by == "bob", done.error
    assert _deallocations(fresh_sandbox, ids.MINING_VM_1) == 1
    undone = _later(st).undo(pending.action_id, "carol")
    assert undone.state == UNDONE, undone.error
    assert _power(fresh_sandbox, ids.MINING_VM_1) == "running"


def test_reject_and_undo_retake_rows_left_running_once_their_lease_expired(azurite: Azurite,
                                                                          fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    respond_one(body, responder=st.responder())
    vm1 = _row(st.responder(), "stop_resources", ids.MINING_VM_1).action_id
    vm2 = _row(st.responder(), "stop_resources", ids.MINING_VM_2).action_id

    def crash(target: Target) -> None:
        raise Crash

    with pytest.raises(Crash):  # died before its call reached Azure
        st.responder(actions={"stop_resources": Wrapped(before=crash)}).approve(vm1, "alice")
    with pytest.raises(Crash):  # died after its call reached Azure
        st.responder(actions={"stop_resources": Wrapped(after=crash)}).approve(vm2, "alice")

    rejected = _later(st).reject(vm1, "bob", "not this one")
    assert rejected.state == REJECTED and rejected.rejected_by == "bob"
    assert _power(fresh_sandbox, ids.MINING_VM_1) == "running" and _deallocations(fresh_sandbox, ids.MINING_VM_1) == 0

    undone = _later(st).undo(vm2, "bob")
    assert undone.state == UNDONE, undone.error
    assert _power(fresh_sandbox, ids.MINING_VM_2) == "running"
    assert _deallocations(fresh_sandbox, ids.MINING_VM_2) == 1


# --- item 7: undo never reverses what the responder did not do ----------------------------------------


def _plan_subscription(sandbox: Sandbox) -> dict[str, Any]:
    subs = sandbox.services["partner_center"].subscriptions  # type: ignore[attr-defined]
    return subs[(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)]  # type: ignore[no-any-return]


def _event(sandbox: Sandbox) -> dict[str, Any]:
    alerts = sandbox.services["partner_center"].alerts  # type: ignore[attr-defined]
    return next(a for a in alerts if a["eventId"] == ids.MINING_ALERT_EVENT_ID)  # type: ignore[no-any-return]


def test_a_plan_suspended_by_someone_else_is_recorded_and_undo_refuses_to_reactivate_it(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    respond_one(body, responder=st.responder())
    suspend = _row(st.responder(), "suspend_subscription", ids.PLAN_FABRIKAM)
    _plan_subscription(fresh_sandbox)["status"] = "suspended"  # Microsoft (or billing) got there first
    mark = len(fresh_sandbox.requests())

    done = st.responder().approve(suspend.action_id, "alice")

    assert done.state == SUCCEEDED and done.already_done and "nothing done" in done.summary, done
    assert done.found_state
    assert writes(fresh_sandbox, mark) == []
    with pytest.raises(OperatorError, match="did nothing"):
        st.responder().undo(suspend.action_id, "bob")
    assert _plan_subscription(fresh_sandbox)["status"] == "suspended"
    assert writes(fresh_sandbox, mark) == []


def test_an_alert_resolved_by_someone_else_is_not_reopened_by_undo(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                   tmp_path: Path) -> None:
    rule = policy(("update_status", "enforce", 'status = "resolved"\nreason = "fraud"'))
    st = stage(azurite, fresh_sandbox, policy=rule, tmp_path=tmp_path)
    _job, body = take_job(st)
    _event(fresh_sandbox).update(eventStatus="Resolved", resolvedReason="Fraud")  # resolved in Partner Center
    mark = len(fresh_sandbox.requests())

    result = respond_one(body, responder=st.responder())

    assert result is not None
    [row] = [r for r in result.rows if r.action == "update_status"]
    assert row.state == SUCCEEDED and row.found_state and writes(fresh_sandbox, mark) == []
    with pytest.raises(OperatorError, match="did nothing"):
        st.responder().undo(row.action_id, "bob")
    assert _event(fresh_sandbox)["eventStatus"] == "Resolved"
    assert writes(fresh_sandbox, mark) == []


def test_a_cancelled_subscription_found_so_is_not_reactivated(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    from shared.response.actions.base import NotReversible
    from shared.response.actions.cancel_azure_subscription import ACTION
    from tests.response.actions.partner_support import context
    from tests.response.actions.sandbox_context import pc_alert

    ctx = context(azurite, fresh_sandbox, pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID),
                  "cancel_azure_subscription", actor="operator:alice")
    [target] = ACTION.plan(ctx)
    first = ACTION.execute(ctx, target)  # the customer (here: someone else) cancelled it
    outcome = ACTION.execute(ctx, target)
    assert outcome.already_done and "nothing done" in outcome.summary
    with pytest.raises(NotReversible, match="did not cancel it"):
        ACTION.undo(ctx, target, outcome.data)
    assert not first.already_done
