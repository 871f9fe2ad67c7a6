"""Approvals that do not rot: expiry after APPROVAL_EXPIRY_HOURS with a re-notification, the commands
in the notification, and approving or rejecting all waiting actions of one alert in one step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.operations.approvals import expire_stale_approvals
from shared.response import decisions
from shared.response.engine import APPROVAL_TIMEOUT
from shared.response.jobs import handle_respond_message
from shared.response.ledger import AWAITING_APPROVAL, EXPIRED, FAILED, REJECTED, SUCCEEDED
from shared.response.notify_message import compose
from tests.conftest import REPO_ROOT
from tests.response.respond_support import MINING_KEY, Stage, stage, take_job


@pytest.fixture
def responded(azurite: Azurite, fresh_sandbox: Sandbox) -> Stage:
    st = stage(azurite, fresh_sandbox, APPROVAL_EXPIRY_HOURS="4")
    _job, body = take_job(st)
    handle_respond_message(body, responder=st.responder())
    return st


def mail(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.services["graph"].sent_mail()  # type: ignore[attr-defined,no-any-return]


def cli(st: Stage, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=120, cwd=REPO_ROOT)


def test_the_notification_gives_each_waiting_action_its_command_and_api_call_and_the_bulk_one(
        responded: Stage, fresh_sandbox: Sandbox) -> None:
    responder = responded.responder()
    alert = responded.alert()
    pending = responder.list_actions(pending_only=True, alert=MINING_KEY)
    assert pending
    body = compose(alert, summary=responder.summary(alert)).body
    for row in pending:
        assert f"approve: fraud-responder actions approve {row.action_id}\n" in body
        assert f"POST /api/manage/actions/{row.action_id}/approve" in body
    assert f"fraud-responder actions approve --alert {MINING_KEY} --all" in body
    assert f"POST /api/manage/alerts/{MINING_KEY}/actions/approve" in body


def test_waiting_too_long_expires_each_row_records_it_and_notifies_what_to_do_and_it_can_still_be_approved(
        responded: Stage, fresh_sandbox: Sandbox) -> None:
    pending = {r.action_id: r for r in responded.responder().list_actions(pending_only=True, alert=MINING_KEY)}
    before = len(mail(fresh_sandbox))
    now = datetime.now(UTC)

    early = expire_stale_approvals(responded.settings, responded.store, now=now + timedelta(hours=3))
    assert early["expired"] == [] and len(mail(fresh_sandbox)) == before  # not yet 4 hours

    report = expire_stale_approvals(responded.settings, responded.store, now=now + timedelta(hours=5))
    assert {r["id"] for r in report["expired"]} == set(pending) and report["errors"] == []
    rows = {r.action_id: r for r in responded.responder().list_actions(alert=MINING_KEY)}
    for action_id in pending:
        assert rows[action_id].state == EXPIRED and rows[action_id].expired_by == APPROVAL_TIMEOUT
        assert "waited 4 hours" in rows[action_id].expired_reason
    made = [d for d in decisions.for_alert(responded.store, MINING_KEY) if d.kind == "expire"]
    assert sorted(d.action_id for d in made) == sorted(pending)  # one decision record per row
    assert all(d.operator == APPROVAL_TIMEOUT for d in made)

    [sent] = mail(fresh_sandbox)[before:]  # one e-mail for the alert, listing every expired action
    text = sent["message"]["body"]["content"]
    assert sent["message"]["subject"].startswith("[Action needed] ")
    assert f"{len(pending)} approvals expired" in sent["message"]["subject"]
    for action_id in pending:
        assert f"fraud-responder actions approve {action_id}" in text
        assert f"POST /api/manage/actions/{action_id}/approve" in text
    assert f"fraud-responder actions approve --alert {MINING_KEY} --all" in text
    assert "--reason legitimate" in text

    from shared.operations.digest import build_digest

    digest = build_digest(responded.settings, responded.store)  # seen even if that e-mail was lost
    assert {r["id"] for r in digest.expired} == set(pending) and digest.needs_attention
    assert f"actions approve {next(iter(pending))}" in digest.as_text()

    again = expire_stale_approvals(responded.settings, responded.store, now=now + timedelta(hours=9))
    assert again["expired"] == [] and len(mail(fresh_sandbox)) == before + 1  # each expiry notified once

    # an expired-by-timeout action can still be approved: it runs (verify first), recorded as usual
    stop = next(r for r in pending.values() if r.action == "stop_resources" and r.target.id == ids.MINING_VM_1)
    done = responded.responder().approve(stop.action_id, "local:carol")
    assert done.state == SUCCEEDED and done.approved_by == "local:carol" and done.expired_by == ""
    assert fresh_sandbox.services["arm"].power_state(ids.MINING_VM_1) == "deallocated"  # type: ignore[attr-defined]


def test_zero_hours_means_approvals_never_expire(responded: Stage) -> None:
    settings = replace(responded.settings, approval_expiry_hours=0)
    report = expire_stale_approvals(settings, responded.store, now=datetime.now(UTC) + timedelta(days=365))
    assert report["expired"] == [] and "never" in report["note"]
    assert responded.responder().list_actions(pending_only=True, alert=MINING_KEY)


def test_cli_approves_all_waiting_actions_of_an_alert_each_on_its_own_row_and_one_failure_stops_nothing(
        responded: Stage, fresh_sandbox: Sandbox) -> None:
    pending = responded.responder().list_actions(pending_only=True, alert=MINING_KEY)
    stops = [r for r in pending if r.action == "stop_resources"]
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", method="POST", path="deallocate", status=403,
                                  times=1))
    run = cli(responded, "actions", "approve", "--alert", ids.MINING_ALERT_EVENT_ID, "--all", "--json")
    assert run.returncode == 1, run.stderr  # one did not take: exit 1, the others still ran
    results = json.loads(run.stdout)["results"]
    assert sorted(r["action"]["id"] for r in results) == sorted(r.action_id for r in pending)
    failed = [r for r in results if not r["ok"]]
    assert len(failed) == 1 and failed[0]["action"]["action"] == "stop_resources"
    assert failed[0]["action"]["state"] == FAILED
    assert all(r["action"]["state"] == SUCCEEDED for r in results if r["ok"])
    approvals = [d for d in decisions.for_alert(responded.store, MINING_KEY) if d.kind == "approve"]
    assert sorted(d.action_id for d in approvals) == sorted(r.action_id for r in pending)
    # containment ran in the catalogue's order: the VMs were stopped before anything else
    order = [r["action"]["action"] for r in results]
    assert order.index("stop_resources") < order.index("suspend_subscription")
    assert len(stops) == 2

    nothing = cli(responded, "actions", "approve", "--alert", ids.MINING_ALERT_EVENT_ID, "--all")
    assert nothing.returncode == 0 and "no action of alert" in nothing.stdout


def test_cli_rejects_all_with_one_reason_and_refuses_half_a_bulk_command(responded: Stage) -> None:
    pending = responded.responder().list_actions(pending_only=True, alert=MINING_KEY)
    for args in (("approve", "--all"), ("approve", "--alert", MINING_KEY), ("reject", "abc", "--alert", "x", "--all")):
        usage = cli(responded, "actions", *args)
        assert usage.returncode == 2 and usage.stderr.startswith("usage:"), (args, usage.stderr)
    assert all(r.state == AWAITING_APPROVAL for r in responded.responder().list_actions(pending_only=True))
    run = cli(responded, "actions", "reject", "--alert", MINING_KEY, "--all", "--reason", "customer's own test")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": rejected") == len(pending)
    rows = {r.action_id: r for r in responded.responder().list_actions(alert=MINING_KEY)}
    assert all(rows[r.action_id].state == REJECTED and rows[r.action_id].reject_reason == "customer's own test"
               for r in pending)
    rejections = [d for d in decisions.for_alert(responded.store, MINING_KEY) if d.kind == "reject"]
    assert len(rejections) == len(pending)
    unknown = cli(responded, "actions", "approve", "--alert", "no-such-alert", "--all")
    assert unknown.returncode == 1 and "has no actions" in unknown.stderr
