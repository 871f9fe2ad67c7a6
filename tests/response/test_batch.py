"""Batched respond messages and concurrent answering (issue 16, items 3 and 4), against Azurite and
the sandbox: a batch of one sync transaction's alerts is answered, exactly once per action and
target; an alert that fails is split off and retries (and ends in poison) alone, the others are
not redone; single-alert messages already queued still work; poison replay re-arms both shapes;
the concurrency is bounded by its settings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.http import TransientError
from shared.jobs import RESPOND_BATCH_KIND, RespondBatch, RespondJob, respond_jobs_of
from shared.names import ALERTS_TABLE, RESPOND_QUEUE
from shared.operations.poison import replay
from shared.response import jobs as respond_jobs
from shared.response import registry
from shared.response.actions.base import ActionContext, Outcome, Target
from shared.response.jobs import BatchResult, handle_respond_message, max_dequeue_count, poison_records, record_poison
from shared.response.ledger import SUCCEEDED
from tests.response.respond_support import MINING_KEY, Stage, by_action, policy, respond_one, stage

STOP = policy(("stop_resources", "enforce", ""))


@pytest.fixture(autouse=True)
def split_messages_visible_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A split-off alert waits the host's visibilityTimeout (10 s) before its retry; not here."""
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__visibilityTimeout", "00:00:00")
    respond_jobs._host_queues_and_timeout.cache_clear()
    yield
    respond_jobs._host_queues_and_timeout.cache_clear()


def take_batch(st: Stage, key: str = MINING_KEY) -> tuple[list[dict[str, Any]], bytes]:
    """The batch message the sync queued with ``key``'s job (taken off the queue): its jobs and body."""
    queue = st.runtime.queue
    for _ in range(200):
        messages = queue.receive(RESPOND_QUEUE, visibility_timeout=1)
        if not messages:
            break
        for message in messages:
            document = message.json()
            jobs = [j.to_json() for j in respond_jobs_of(document)]
            if any(j["alert_key"] == key and _stored_job(st, j) == j for j in jobs):
                assert document.get("kind") == RESPOND_BATCH_KIND, "the sync batches one transaction's jobs"
                queue.delete(RESPOND_QUEUE, message)
                return jobs, message.body()
    raise AssertionError(f"no batch with {key} on {RESPOND_QUEUE}")


def _stored_job(st: Stage, job: dict[str, Any]) -> Any:
    """The job the alert row of ``job`` records (another test's rows are under another table prefix)."""
    entity = st.store.get(ALERTS_TABLE, job["partition"], job["row"])
    return None if entity is None else json.loads(entity.get("respond_job") or "null")


def take_single(st: Stage, job: dict[str, Any]) -> bytes:
    """The single-alert message for ``job`` (what a batch split off), taken off the queue."""
    queue = st.runtime.queue
    for _ in range(50):
        for message in queue.receive(RESPOND_QUEUE, visibility_timeout=1):
            document = message.json()
            if "alerts" not in document and document == job:
                queue.delete(RESPOND_QUEUE, message)
                return message.body()
        time.sleep(0.1)
    raise AssertionError(f"no single message for {job['alert_key']} on {RESPOND_QUEUE}")


def _deallocations(sandbox: Sandbox, vm: str) -> int:
    return sum(1 for r in sandbox.requests("arm")
               if r.method == "POST" and r.path.lower() == (vm + "/deallocate").lower() and r.status < 300)


class Failing:
    """The real stop_resources whose execute meets a transient error (ARM throttling that outlasted retries)."""

    name: ClassVar[str] = "stop_resources"
    reversible: ClassVar[bool] = True

    def __init__(self) -> None:
        self.inner = registry.get_action("stop_resources")
        self.calls = 0

    def plan(self, ctx: ActionContext) -> list[Target]:
        return self.inner.plan(ctx)

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        return self.inner.verify(ctx, target)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        self.calls += 1
        raise TransientError("injected: ARM kept answering 503", status=503)

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return self.inner.undo(ctx, target, recorded)


class Gauge:
    """How many counted calls are in flight now, and the most ever; ``events`` in time order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls = 0
        self.events: list[tuple[str, str]] = []


class Counting:
    """A real action with a seam that counts how many of its calls are in flight at once (``gauge``:
    shared between actions to count across them)."""

    reversible: ClassVar[bool] = False

    def __init__(self, name: str, pause: float = 0.3, gauge: Gauge | None = None) -> None:
        self.name = name
        self.inner = registry.get_action(name)
        self.pause = pause
        self.gauge = gauge or Gauge()

    @property
    def most(self) -> int:
        return self.gauge.most

    @property
    def calls(self) -> int:
        return self.gauge.calls

    def plan(self, ctx: ActionContext) -> list[Target]:
        with self.gauge.lock:
            self.gauge.events.append(("plan", self.name))
        return self.inner.plan(ctx)

    def _enter(self) -> None:
        gauge = self.gauge
        with gauge.lock:
            gauge.now += 1
            gauge.calls += 1
            gauge.most = max(gauge.most, gauge.now)
            gauge.events.append(("start", self.name))
        time.sleep(self.pause)
        with gauge.lock:
            gauge.now -= 1
            gauge.events.append(("end", self.name))

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        self._enter()
        return self.inner.verify(ctx, target)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        return self.inner.execute(ctx, target)

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        return self.inner.undo(ctx, target, recorded)


# --- a batch is answered ----------------------------------------------------------------------------


def test_a_batch_message_answers_every_alert_with_one_ledger_row_per_action_and_target(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path)
    jobs, body = take_batch(st)
    assert len(jobs) > 1

    result = handle_respond_message(body, responder=st.responder())

    assert isinstance(result, BatchResult) and result.split == []
    assert sorted(r.alert_key for r in result.results) == sorted(j["alert_key"] for j in jobs)
    assert {st.job_state(j) for j in jobs} == {"handled"}
    stops = by_action(st.responder().list_actions(alert=MINING_KEY), "stop_resources")
    assert sorted(r.target.id for r in stops) == sorted([ids.MINING_VM_1, ids.MINING_VM_2])
    assert {r.state for r in stops} == {SUCCEEDED}
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm
    every = [(r.alert_key, r.action, r.target.kind, r.target.id) for r in st.responder().list_actions()]
    assert len(every) == len(set(every))  # one row per alert, action and target

    # the same batch again (the queue redelivered it): nothing is redone
    again = handle_respond_message(body, dequeue_count=2, responder=st.responder())
    assert isinstance(again, BatchResult) and all(r.handled_before for r in again.results)
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm


def test_a_failing_alert_is_split_off_retries_alone_and_ends_in_poison_alone(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path)
    jobs, body = take_batch(st)
    [mining] = [j for j in jobs if j["alert_key"] == MINING_KEY]
    others = [j for j in jobs if j is not mining]
    failing = Failing()

    result = handle_respond_message(body, responder=st.responder(actions={"stop_resources": failing}))

    # the batch is done (not raised): the others are handled, the mining alert is sent on alone
    assert isinstance(result, BatchResult) and [s.split(" ")[0] for s in result.split] == [MINING_KEY]
    assert {st.job_state(j) for j in others} == {"handled"} and st.job_state(mining) == "pending"
    others_rows = [dict(e) for j in others for e in st.store.list_partition("ledger", j["row"])]
    sent_before = len(fresh_sandbox.requests())
    single = take_single(st, mining)
    assert json.loads(single) == mining  # the single shape, exactly the job the alert row stores

    for delivery in range(1, max_dequeue_count() + 1):
        with pytest.raises(Exception, match="left for a retry"):
            handle_respond_message(single, dequeue_count=delivery,
                                   responder=st.responder(actions={"stop_resources": failing}))

    # poison for the mining alert alone; the others were not redone (no new rows, no new calls but ARM's)
    [record] = [r for r in poison_records(st.store) if r.get("alert_key") == MINING_KEY]
    assert json.loads(record["body"]) == mining and record["version"] == mining["version"]
    assert st.job_state(mining) == "poisoned" and {st.job_state(j) for j in others} == {"handled"}
    assert [dict(e) for j in others for e in st.store.list_partition("ledger", j["row"])] == others_rows
    assert {r.service for r in fresh_sandbox.requests()[sent_before:]} <= {"arm", "entra", "key_vault"}
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 0, vm

    # the cause is fixed: replay re-arms the one alert and its single message answers it
    st.runtime.queue.send_json(f"{RESPOND_QUEUE}-poison", mining)
    replayed = replay(st.settings, RESPOND_QUEUE, store=st.store, sender=st.runtime.queue, operator="ops")
    assert replayed["rearmed"] == 1 and st.job_state(mining) == "pending"
    done = handle_respond_message(take_single(st, mining), responder=st.responder())
    assert done is not None and not isinstance(done, BatchResult) and not done.deferred
    assert st.job_state(mining) == "handled"
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm


def test_a_single_alert_message_of_the_old_shape_is_still_answered(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path)
    jobs, _body = take_batch(st)
    [mining] = [j for j in jobs if j["alert_key"] == MINING_KEY]
    old = {k: v for k, v in mining.items() if k != "schema_version"}  # queued before schema_version existed

    result = handle_respond_message(json.dumps(old).encode(), responder=st.responder())

    assert result is not None and not isinstance(result, BatchResult) and not result.deferred
    assert st.job_state(mining) == "handled"
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm


def test_poison_replay_re_arms_every_alert_of_a_poisoned_batch(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path)
    jobs, body = take_batch(st)
    batch = RespondBatch.from_json(body)
    responder = st.responder()
    for job in batch.jobs:  # the batch gave up on its last delivery: each of its alerts marked poisoned
        assert responder.mark_job(job.partition, job.row, job.version, "poisoned")
    record_poison(st.store, queue=RESPOND_QUEUE, body=body, error=RuntimeError("storage kept failing"),
                  dequeue_count=max_dequeue_count())
    st.runtime.queue.send_json(f"{RESPOND_QUEUE}-poison", json.loads(body))

    replayed = replay(st.settings, RESPOND_QUEUE, store=st.store, sender=st.runtime.queue, operator="ops")

    assert replayed["rearmed"] == len(jobs) and {st.job_state(j) for j in jobs} == {"pending"}
    _again, moved = take_batch(st)
    result = handle_respond_message(moved, responder=st.responder())
    assert isinstance(result, BatchResult) and result.split == [] and {st.job_state(j) for j in jobs} == {"handled"}


# --- bounded concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2])
def test_a_batchs_alerts_are_answered_at_most_respond_concurrency_at_once(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path, limit: int) -> None:
    # one call at a time within an alert, so what is counted is alerts at once
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path, RESPOND_CONCURRENCY=str(limit),
               RESPOND_ACTION_CONCURRENCY="1")
    jobs, body = take_batch(st)
    gauge = Gauge()
    counted = {name: Counting(name, gauge=gauge) for name in ("notify", "stop_resources")}
    assert len(jobs) > limit  # more alerts than the limit

    result = handle_respond_message(body, responder=st.responder(actions=counted))

    assert isinstance(result, BatchResult) and result.split == []
    assert gauge.calls >= len(jobs) and gauge.most == limit
    assert {st.job_state(j) for j in jobs} == {"handled"}


@pytest.mark.parametrize("limit", [1, 2])
def test_the_vms_of_one_alert_are_checked_side_by_side_up_to_the_action_limit(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path, limit: int) -> None:
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path, RESPOND_ACTION_CONCURRENCY=str(limit))
    jobs, _body = take_batch(st)
    [mining] = [j for j in jobs if j["alert_key"] == MINING_KEY]
    stop = Counting("stop_resources")

    result = handle_respond_message(json.dumps(mining).encode(), responder=st.responder(
        actions={"stop_resources": stop}))

    assert result is not None and not isinstance(result, BatchResult) and not result.deferred
    assert stop.calls == 2 and stop.most == limit
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm


def test_two_alerts_on_one_vm_answered_at_once_deallocate_it_once(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    """Two alerts of one customer about the same VM in one batch: the target lock makes the second
    wait, look, and find it done (recorded as found, so undo never reverses it twice)."""
    st = stage(azurite, fresh_sandbox, policy=STOP, tmp_path=tmp_path, RESPOND_CONCURRENCY="2")
    jobs, _body = take_batch(st)
    [mining] = [j for j in jobs if j["alert_key"] == MINING_KEY]
    twin = _twin_alert(st, mining)
    batch = RespondBatch(jobs=(RespondJob.from_json(mining), RespondJob.from_json(twin)))

    result = handle_respond_message(json.dumps(batch.to_json()).encode(), responder=st.responder())

    assert isinstance(result, BatchResult) and result.split == []
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm
    rows = [r for key in (mining["alert_key"], twin["alert_key"])
            for r in by_action(st.responder().list_actions(alert=key), "stop_resources")]
    assert len(rows) == 4 and {r.state for r in rows} == {SUCCEEDED}
    assert sorted(bool(r.found_state) for r in rows) == [False, False, True, True]  # each VM: one did it


def _twin_alert(st: Stage, job: dict[str, Any]) -> dict[str, Any]:
    """A second stored alert of the same customer naming the same VMs, pending its own job."""
    from shared.alerts import row_key

    entity = st.store.get(ALERTS_TABLE, job["partition"], job["row"])
    assert entity is not None
    twin = {k: v for k, v in entity.items() if not k.startswith("raw_")}  # rebuilt from its columns
    twin_id = f"{entity['alert_id']}-twin"
    twin_job = {**job, "alert_key": f"{entity['source']}:{twin_id}", "row": row_key(f"{entity['source']}:{twin_id}")}
    twin.update(RowKey=twin_job["row"], alert_id=twin_id, raw_chunks=0, respond_job=json.dumps(twin_job))
    st.store.upsert(ALERTS_TABLE, twin, mode="replace")
    return twin_job


@pytest.mark.parametrize("limit", [1, 2])
def test_the_investigation_runs_beside_stopping_the_vms_and_before_what_reads_it(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path, limit: int) -> None:
    text = policy(("investigate", "enforce", ""), ("stop_resources", "enforce", ""), ("revoke_sessions", "enforce", ""))
    st = stage(azurite, fresh_sandbox, policy=text, tmp_path=tmp_path, RESPOND_ACTION_CONCURRENCY=str(limit))
    jobs, _body = take_batch(st)
    [mining] = [j for j in jobs if j["alert_key"] == MINING_KEY]
    gauge = Gauge()
    counted = {name: Counting(name, pause=0.6 if name == "investigate" else 0.3, gauge=gauge)
               for name in ("investigate", "stop_resources", "revoke_sessions")}

    result = respond_one(json.dumps(mining).encode(), responder=st.responder(actions=counted))

    assert result is not None and not result.deferred
    # limit 2: the investigation and both VMs' checks at once; limit 1: one thing at a time
    assert gauge.most == (3 if limit == 2 else 1)
    # revoke_sessions reads the investigation: planned only once it has ended
    ended = max(i for i, event in enumerate(gauge.events) if event == ("end", "investigate"))
    assert gauge.events.index(("plan", "revoke_sessions")) > ended
    assert [r.action for r in result.rows][:1] == ["investigate"]  # rows in plan order, whatever ended first
    for vm in (ids.MINING_VM_1, ids.MINING_VM_2):
        assert _deallocations(fresh_sandbox, vm) == 1, vm
