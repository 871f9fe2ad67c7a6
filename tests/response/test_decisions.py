"""Every decision on record (issue 10, items 10 and 11), against Azurite and the sandbox: each
resolve, approve, reject, undo and expiry is its own insert-only record; resolving an alert as
legitimate or ignore expires its containment that waits for approval, and an alert that comes back
as a new version asks for approval afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.intake.jobs import run_sync
from shared.intake.sync import SyncScope
from shared.operations.digest import build_digest
from shared.operations.resolve import resolve
from shared.response import catalogue, decisions
from shared.response.engine import OperatorError
from shared.response.ledger import AWAITING_APPROVAL, EXPIRED, SUCCEEDED
from tests.conftest import REPO_ROOT
from tests.response.respond_support import MINING_KEY, Stage, respond_one, stage, take_job, writes


def _responded(azurite: Azurite, sandbox: Sandbox) -> Stage:
    """The mining alert answered with the default policy: containment waits for approval."""
    st = stage(azurite, sandbox)
    _job, body = take_job(st)
    result = respond_one(body, responder=st.responder())
    assert result is not None and not result.deferred
    return st


def _cli(st: Stage, *args: str, user: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI as the local OS user ``user`` (against Azurite decisions are recorded as local:<user>)."""
    env = {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    if user:
        env.update({"USER": user, "LOGNAME": user, "LNAME": user, "USERNAME": user})
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=120, cwd=REPO_ROOT)


def _event(sandbox: Sandbox) -> dict[str, Any]:
    alerts = sandbox.services["partner_center"].alerts  # type: ignore[attr-defined]
    return next(a for a in alerts if a["eventId"] == ids.MINING_ALERT_EVENT_ID)  # type: ignore[no-any-return]


def test_two_resolutions_by_two_operators_are_both_on_record(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)

    first = _cli(st, "alerts", "resolve", ids.MINING_ALERT_EVENT_ID, "--reason", "legitimate", "--json", user="alice")
    second = _cli(st, "alerts", "resolve", ids.MINING_ALERT_EVENT_ID, "--reason", "fraud", "--json", user="bob")

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    ids_ = {json.loads(first.stdout)["action_id"], json.loads(second.stdout)["action_id"]}
    rows = json.loads(_cli(st, "actions", "list", "--alert", ids.MINING_ALERT_EVENT_ID, "--json").stdout)
    assert len(ids_) == 2  # a row each: the second did not overwrite the first
    resolutions = {r["id"]: r for r in rows if r["id"] in ids_}
    assert {(r["approved_by"], r["state"]) for r in resolutions.values()} == {("local:alice", SUCCEEDED),
                                                                            ("local:bob", SUCCEEDED)}
    shown = json.loads(_cli(st, "alerts", "show", ids.MINING_ALERT_EVENT_ID, "--json").stdout)
    assert [(d["decision"], d["operator"], d["reason"]) for d in shown["decisions"]] == [
        ("resolve", "local:alice", "legitimate"), ("resolve", "local:bob", "fraud")]
    assert all(d["at"] for d in shown["decisions"])
    assert (shown["resolved_reason"], shown["resolved_by"]) == ("fraud", "operator:local:bob")  # the latest
    text = _cli(st, "alerts", "show", ids.MINING_ALERT_EVENT_ID).stdout
    assert "alice" in text and "legitimate" in text and "bob" in text
    listed = _cli(st, "actions", "list", "--alert", ids.MINING_ALERT_EVENT_ID).stdout
    assert "resolve" in listed and "alice" in listed and "bob" in listed


def test_approve_reject_and_undo_are_each_recorded(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = _responded(azurite, fresh_sandbox)
    responder = st.responder()
    pending = {(r.action, r.target.id): r for r in responder.list_actions(pending_only=True)}
    vm1, vm2 = pending[("stop_resources", ids.MINING_VM_1)], pending[("stop_resources", ids.MINING_VM_2)]

    responder.approve(vm1.action_id, "alice")
    responder.reject(vm2.action_id, "bob", "a build agent, not mining")
    responder.undo(vm1.action_id, "carol")

    recorded = [(d.kind, d.operator, d.action_id, d.reason) for d in decisions.for_alert(st.store, MINING_KEY)]
    assert recorded == [("approve", "alice", vm1.action_id, ""), ("reject", "bob", vm2.action_id,
                                                                  "a build agent, not mining"),
                        ("undo", "carol", vm1.action_id, "")]


def test_resolving_as_legitimate_expires_pending_containment_until_the_alert_comes_back(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = _responded(azurite, fresh_sandbox)
    responder = st.responder()
    containment = [r for r in responder.list_actions(pending_only=True) if r.action in catalogue.containment()]
    assert {r.action for r in containment} >= {"stop_resources", "suspend_subscription"}

    result = resolve(st.settings, st.store, ids.MINING_ALERT_EVENT_ID, "legitimate", "alice")

    assert sorted(result["expired"]) == sorted(r.action_id for r in containment)
    for row in containment:
        expired = next(r for r in responder.list_actions(alert=MINING_KEY) if r.action_id == row.action_id)
        assert expired.state == EXPIRED and expired.expired_by == "alice" and "legitimate" in expired.expired_reason
    mark = len(fresh_sandbox.requests())
    stop = next(r for r in containment if r.action == "stop_resources")
    with pytest.raises(OperatorError, match="expired"):
        responder.approve(stop.action_id, "bob")
    assert writes(fresh_sandbox, mark) == []
    assert not any(p["id"] in result["expired"] for p in build_digest(st.settings, st.store).pending)
    kinds = [(d.kind, d.operator) for d in decisions.for_alert(st.store, MINING_KEY)]
    assert kinds[0] == ("resolve", "alice") and kinds.count(("expire", "alice")) == len(containment)

    # Microsoft reopens the alert: a new version, and its containment asks for approval afresh
    _event(fresh_sandbox).update(eventStatus="Active", resolvedReason="None")
    assert run_sync(st.runtime, SyncScope(), trigger="test", sources=("partner_center",)).ok
    job, body = take_job(st)
    assert job["version"] == 2
    respond_one(body, responder=st.responder())
    again = {r.action_id: r for r in responder.list_actions(pending_only=True)}
    assert set(again) >= {r.action_id for r in containment}
    assert all(again[r.action_id].version == 2 and again[r.action_id].state == AWAITING_APPROVAL
               for r in containment)
    done = responder.approve(stop.action_id, "bob")
    assert done.state == SUCCEEDED, done.error


def test_an_alert_resolved_as_ignore_at_the_source_expires_its_pending_containment(azurite: Azurite,
                                                                                 fresh_sandbox: Sandbox) -> None:
    st = _responded(azurite, fresh_sandbox)
    pending = st.responder().list_actions(pending_only=True)
    containment = {r.action_id for r in pending if r.action in catalogue.containment()}
    _event(fresh_sandbox).update(eventStatus="Resolved", resolvedReason="Ignore")  # someone else, in Partner Center
    assert run_sync(st.runtime, SyncScope(), trigger="test", sources=("partner_center",)).ok
    _job, body = take_job(st)

    respond_one(body, responder=st.responder())

    rows = {r.action_id: r for r in st.responder().list_actions(alert=MINING_KEY)}
    assert containment and all(rows[i].state == EXPIRED and "ignore" in rows[i].expired_reason for i in containment)
    assert not {p["id"] for p in build_digest(st.settings, st.store).pending} & containment
    with pytest.raises(OperatorError, match="expired"):
        st.responder().approve(next(iter(containment)), "bob")


def test_fraud_keeps_containment_waiting(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = _responded(azurite, fresh_sandbox)
    before = {r.action_id for r in st.responder().list_actions(pending_only=True)}

    result = resolve(st.settings, st.store, ids.MINING_ALERT_EVENT_ID, "fraud", "alice")

    assert result["expired"] == []
    assert {r.action_id for r in st.responder().list_actions(pending_only=True)} == before
