"""The responder engine against Azurite and the sandbox: modes, crash recovery, transient errors,
unbuilt actions, poison messages and malformed jobs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.response import contacts, registry
from shared.response.actions.base import ActionContext, Outcome, Target
from shared.response.engine import DEFAULT_LEASE_SECONDS, RetryLater
from shared.response.jobs import poison_records
from shared.response.ledger import DRY_RUN, FAILED, RUNNING, SUCCEEDED, now_utc
from shared.response.policy import PolicyError
from tests.response.respond_support import MINING_KEY, by_action, policy, respond_one, stage, take_job, writes


class Crash(BaseException):
    """The worker dies (not an exception any handler catches)."""


class CrashAfterFirstExecute:
    """The real stop_resources, but the worker dies right after its first external call returns,
    before the engine can write the ledger: the seam where a real crash would hurt most."""

    name: ClassVar[str] = "stop_resources"
    reversible: ClassVar[bool] = True

    def __init__(self) -> None:
        self.inner = registry.get_action("stop_resources")
        self.executed: list[str] = []

    def plan(self, ctx: ActionContext) -> list[Target]:
        return self.inner.plan(ctx)

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        return self.inner.verify(ctx, target)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        outcome = self.inner.execute(ctx, target)
        self.executed.append(target.id)
        if len(self.executed) == 1:
            raise Crash
        return outcome

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return self.inner.undo(ctx, target, recorded)


def _deallocations(sandbox: Sandbox, vm: str) -> int:
    return sum(1 for r in sandbox.requests("arm")
               if r.method == "POST" and r.path.lower() == (vm + "/deallocate").lower() and r.status < 300)


def test_dry_run_for_a_tagged_customer_records_the_plan_and_calls_nothing(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                          tmp_path: Path) -> None:
    every = [(a, "dry-run", "") for a in ("update_status", "investigate", "stop_resources", "revoke_sessions",
                                          "suspend_subscription", "notify")]
    text = policy(*every, match='customer_tags = ["lab"]') + policy(("stop_resources", "enforce", "")).replace(
        "version = 1\n", "").replace('name = "test-rule"', 'name = "enforce-rule"').replace('name = "rest"',
                                                                                           'name = "rest2"')
    st = stage(azurite, fresh_sandbox, policy=text, tmp_path=tmp_path)
    contacts.set_contacts(st.store, ids.CUSTOMER_FABRIKAM, tags=["Lab"], emails=["secops@fabrikam.example"])
    job, body = take_job(st)
    mark = len(fresh_sandbox.requests())

    result = respond_one(body, responder=st.responder())

    assert result is not None and result.rule == "test-rule" and not result.deferred
    assert writes(fresh_sandbox, mark) == []
    assert fresh_sandbox.services["graph"].sent_mail() == []  # type: ignore[attr-defined]
    arm = fresh_sandbox.services["arm"]
    assert arm.power_state(ids.MINING_VM_1) == "running"  # type: ignore[attr-defined]
    rows = st.responder().list_actions(alert=MINING_KEY)
    assert {r.state for r in rows} == {DRY_RUN}
    assert {r.target.id for r in by_action(rows, "stop_resources")} == {ids.MINING_VM_1, ids.MINING_VM_2}
    assert {r.action for r in rows} >= {"update_status", "investigate", "stop_resources", "suspend_subscription",
                                        "notify"}
    assert st.job_state(job) == "handled"


def test_a_crash_after_the_external_call_is_resolved_by_verify_without_a_second_call(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", "")), tmp_path=tmp_path)
    job, body = take_job(st)
    crashing = CrashAfterFirstExecute()

    with pytest.raises(Crash):
        respond_one(body, responder=st.responder(actions={"stop_resources": crashing}))

    first_vm = crashing.executed[0]
    assert _deallocations(fresh_sandbox, first_vm) == 1
    row = next(r for r in st.responder().list_actions() if r.target.id == first_vm)
    assert row.state == RUNNING and row.summary == ""  # the ledger never heard of the deallocation
    assert st.job_state(job) == "pending"

    # another copy of the job while the crashed worker's lease holds: it leaves that VM alone (the
    # other VM, never claimed, is independent work and goes ahead), then asks for a retry
    with pytest.raises(RetryLater, match="held by"):
        respond_one(body, responder=st.responder())
    assert _deallocations(fresh_sandbox, first_vm) == 1
    mark = len(fresh_sandbox.requests())

    # the queue redelivers the crashed job once the dead worker's lease has expired: verify sees the VM
    # deallocated; nothing is called twice
    later = now_utc() + timedelta(seconds=DEFAULT_LEASE_SECONDS + 60)
    result = respond_one(body, dequeue_count=2, responder=st.responder(clock=lambda: later))

    assert result is not None and not result.deferred
    assert _deallocations(fresh_sandbox, first_vm) == 1
    rows = {r.target.id: r for r in result.rows if r.action == "stop_resources"}
    assert rows[first_vm].state == SUCCEEDED and rows[first_vm].already_done and rows[first_vm].attempts == 2
    other = next(vm for vm in (ids.MINING_VM_1, ids.MINING_VM_2) if vm != first_vm)
    assert rows[other].state == SUCCEEDED and _deallocations(fresh_sandbox, other) == 1
    assert writes(fresh_sandbox, mark) == []  # the redelivery only looked
    assert st.job_state(job) == "handled"


def test_a_transient_error_leaves_the_row_running_and_a_redelivery_completes_it(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("stop_resources", "enforce", ""), ("notify", "enforce", "")),
               tmp_path=tmp_path)
    job, body = take_job(st)
    fresh_sandbox.add_fault(Fault("arm", "status", method="POST", path="vm-gpu-01/deallocate", times=None,
                                  status=503, retry_after=0))

    with pytest.raises(RetryLater, match="stop_resources"):
        respond_one(body, responder=st.responder())

    rows = {r.target.id: r for r in st.responder().list_actions() if r.action == "stop_resources"}
    assert rows[ids.MINING_VM_1].state == RUNNING and "retrying" in rows[ids.MINING_VM_1].error
    assert rows[ids.MINING_VM_2].state == SUCCEEDED  # independent work went on
    assert len(fresh_sandbox.services["graph"].sent_mail()) == 1  # type: ignore[attr-defined]
    assert st.job_state(job) == "pending"  # not handled yet

    fresh_sandbox.clear_faults()
    result = respond_one(body, dequeue_count=2, responder=st.responder())

    assert result is not None and not result.deferred
    assert fresh_sandbox.services["arm"].power_state(ids.MINING_VM_1) == "deallocated"  # type: ignore[attr-defined]
    row = next(r for r in result.rows if r.target.id == ids.MINING_VM_1)
    assert row.state == SUCCEEDED and row.attempts == 2 and row.error == ""
    assert _deallocations(fresh_sandbox, ids.MINING_VM_2) == 1
    assert len(fresh_sandbox.services["graph"].sent_mail()) == 1  # type: ignore[attr-defined]
    assert st.job_state(job) == "handled"


def test_an_action_that_is_not_built_fails_loudly(azurite: Azurite, fresh_sandbox: Sandbox,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    monkeypatch.setattr(registry, "PACKAGE", "tests.response")  # a package with no action modules
    mark = len(fresh_sandbox.requests())

    result = respond_one(body, responder=st.responder())

    assert result is not None
    assert {r.state for r in result.rows} == {FAILED}
    assert {r.action for r in result.rows} == {"update_status", "investigate", "notify", "stop_resources",
                                               "revoke_sessions", "rotate_credentials", "suspend_subscription"}
    assert all(f"action {r.action} is not built" in r.error for r in result.rows)
    assert writes(fresh_sandbox, mark) == []


def test_the_last_delivery_of_a_failing_job_is_recorded_as_poison(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                  tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy="version = 1\n[[rules]]\nname = \"x\"\n", tmp_path=tmp_path)
    job, body = take_job(st)
    responder = st.responder()

    with pytest.raises(PolicyError):
        respond_one(body, dequeue_count=1, responder=responder)
    assert poison_records(st.store) == [] and st.job_state(job) == "pending"
    with pytest.raises(PolicyError):
        respond_one(body, dequeue_count=5, responder=responder)
    assert st.job_state(job) == "poisoned"  # the sync will not re-send it as if it were lost

    [record] = poison_records(st.store)
    assert record["queue"] == "alerts-respond" and record["alert_key"] == MINING_KEY
    assert record["error_type"] == "PolicyError" and "no actions" in record["error"]
    assert json.loads(record["body"])["alert_key"] == MINING_KEY


@pytest.mark.parametrize("body", [
    b"not json",
    b'{"alert_key": "partner_center:x"}',
    b'{"alert_key": "partner_center:x", "partition": "p", "row": "a/b", "version": 1}',
    b'{"alert_key": "partner_center:x", "partition": "p", "row": "r", "version": "1"}',
])
def test_a_malformed_job_is_dropped_not_retried(azurite: Azurite, fresh_sandbox: Sandbox, body: bytes) -> None:
    st = stage(azurite, fresh_sandbox)
    assert respond_one(body, dequeue_count=5, responder=st.responder()) is None
    assert poison_records(st.store) == []


def test_the_log_says_when_an_answer_started_and_how_long_its_version_waited(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The respond queue's wait is visible per alert in the log (and to the containment benchmark)."""
    import logging

    st = stage(azurite, fresh_sandbox, policy=policy(("notify", "dry-run", "")), tmp_path=tmp_path)
    _job, body = take_job(st)
    with caplog.at_level(logging.INFO, logger="shared.response"):
        result = respond_one(body, dequeue_count=2, responder=st.responder())
    assert result is not None and not result.deferred
    started = [r for r in caplog.records if r.getMessage().startswith(f"respond {MINING_KEY} v1 started")]
    assert len(started) == 1
    assert "delivery count 2" in started[0].getMessage() and " ago)" in started[0].getMessage()
    assert getattr(started[0], "alert_id", "") == ids.MINING_ALERT_EVENT_ID
