"""require_admin_password_change and report_admin_recovery_methods against the sandbox's Graph, directly and
through the engine (dry-run, approval, exactly-once, undo), in the customer's tenant with the SAM token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.response.actions._admins import mask_email, mask_phone
from shared.response.actions.report_admin_recovery_methods import ACTION as REPORT
from shared.response.actions.require_admin_password_change import ACTION as PASSWORD
from shared.response.engine import OperatorError
from shared.response.jobs import handle_respond_message
from shared.response.ledger import AWAITING_APPROVAL, DRY_RUN, SUCCEEDED, UNDONE
from tests.conftest import REPO_ROOT
from tests.response.actions.sandbox_context import action_context, pc_alert
from tests.response.respond_support import MINING_KEY, by_action, policy, stage, take_job, writes

OPS_ID = "dddddddd-0003-4000-8000-000000000003"
ADMINS = [ids.FABRIKAM_GLOBAL_ADMIN_UPN, "ops@fabrikam.example"]


def _profile(sandbox: Sandbox, user: str) -> dict[str, Any]:
    graph: Any = sandbox.services["graph"]
    return graph.user(ids.CUSTOMER_FABRIKAM, user)["passwordProfile"]  # type: ignore[no-any-return]


def _patches(sandbox: Sandbox, since: int = 0) -> list[str]:
    return [r.path for r in sandbox.requests()[since:] if r.service == "graph" and r.method == "PATCH"]


def test_masks_keep_the_country_code_and_last_digits_or_the_domain() -> None:
    assert mask_phone("+1 4255550123") == "+1 *** *** 0123"
    assert mask_phone("+44 7700900461x12") == "+44 *** *** 0461"
    assert mask_email("ada.admin@outlook.example") == "a***@outlook.example"
    assert mask_email("not-an-address") == "***"


def test_plans_one_target_per_global_admin(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    for action, name in ((PASSWORD, "require_admin_password_change"), (REPORT, "report_admin_recovery_methods")):
        targets = action.plan(action_context(azurite, fresh_sandbox, alert, name))
        assert [t.display for t in targets] == ADMINS
        assert all(t.kind == "user" and t.tenant == ids.CUSTOMER_FABRIKAM for t in targets)


def test_requires_the_change_with_mfa_and_undo_clears_only_what_it_set(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "require_admin_password_change")
    admin, ops = PASSWORD.plan(ctx)
    # someone else already required a change (without MFA) for ops
    ctx.clients.graph_customer(ids.CUSTOMER_FABRIKAM).update_user(OPS_ID, force_change_password_next_sign_in=True)
    assert not PASSWORD.verify(ctx, admin) and not PASSWORD.verify(ctx, ops)

    done = PASSWORD.execute(ctx, admin)
    partly = PASSWORD.execute(ctx, ops)

    both = {"forceChangePasswordNextSignIn": True, "forceChangePasswordNextSignInWithMfa": True}
    assert {k: _profile(fresh_sandbox, ids.FABRIKAM_GLOBAL_ADMIN_ID)[k] for k in both} == both
    assert PASSWORD.verify(ctx, admin) and PASSWORD.verify(ctx, ops)
    assert done.summary == f"{ids.FABRIKAM_GLOBAL_ADMIN_UPN} must change password at next sign-in, with MFA"
    assert partly.data["changed"] == ["forceChangePasswordNextSignInWithMfa"]

    PASSWORD.undo(ctx, admin, done.data)
    PASSWORD.undo(ctx, ops, partly.data)
    assert not any(_profile(fresh_sandbox, ids.FABRIKAM_GLOBAL_ADMIN_ID)[k] for k in both)
    ops_profile = _profile(fresh_sandbox, OPS_ID)
    assert ops_profile["forceChangePasswordNextSignIn"] is True  # someone else's: left
    assert ops_profile["forceChangePasswordNextSignInWithMfa"] is False
    # undo again: nothing still set by us, nothing called
    mark = len(fresh_sandbox.requests())
    assert PASSWORD.undo(ctx, admin, done.data).already_done and _patches(fresh_sandbox, mark) == []


def test_dry_run_records_the_admins_and_changes_nothing(azurite: Azurite, fresh_sandbox: Sandbox,
                                                       tmp_path: Path) -> None:
    rule = policy(("require_admin_password_change", "dry-run", ""), ("report_admin_recovery_methods", "dry-run", ""))
    st = stage(azurite, fresh_sandbox, policy=rule, tmp_path=tmp_path)
    _job, body = take_job(st)
    mark = len(fresh_sandbox.requests())

    handle_respond_message(body, responder=st.responder())

    rows = st.responder().list_actions(alert=MINING_KEY)
    for action in ("require_admin_password_change", "report_admin_recovery_methods"):
        assert sorted(r.target.display for r in by_action(rows, action)) == ADMINS
        assert {r.state for r in by_action(rows, action)} == {DRY_RUN}
    assert writes(fresh_sandbox, mark) == []
    assert not _profile(fresh_sandbox, ids.FABRIKAM_GLOBAL_ADMIN_ID)["forceChangePasswordNextSignIn"]


def test_enforce_waits_for_approval_runs_exactly_once_and_undo_reverses_it(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                          tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("require_admin_password_change", "enforce", "")),
               tmp_path=tmp_path)
    _job, body = take_job(st)
    mark = len(fresh_sandbox.requests())

    handle_respond_message(body, responder=st.responder())
    handle_respond_message(body, dequeue_count=2, responder=st.responder())  # a redelivered copy

    rows = by_action(st.responder().list_actions(alert=MINING_KEY), "require_admin_password_change")
    assert len(rows) == 2 and {r.state for r in rows} == {AWAITING_APPROVAL}  # destructive: held for approval
    assert _patches(fresh_sandbox, mark) == []
    admin = next(r for r in rows if r.target.id == ids.FABRIKAM_GLOBAL_ADMIN_ID)

    done = st.responder().approve(admin.action_id, "alice")
    with pytest.raises(OperatorError):
        st.responder().approve(admin.action_id, "bob")  # approving twice does not act twice
    handle_respond_message(body, dequeue_count=3, responder=st.responder())

    assert done.state == SUCCEEDED and done.approved_by == "alice" and not done.found_state
    assert _patches(fresh_sandbox, mark) == [f"/v1.0/users/{ids.FABRIKAM_GLOBAL_ADMIN_ID}"]
    assert _profile(fresh_sandbox, ids.FABRIKAM_GLOBAL_ADMIN_ID)["forceChangePasswordNextSignInWithMfa"] is True
    assert _profile(fresh_sandbox, OPS_ID)["forceChangePasswordNextSignIn"] is False  # not approved yet

    undone = st.responder().undo(admin.action_id, "carol")
    assert undone.state == UNDONE
    assert _profile(fresh_sandbox, ids.FABRIKAM_GLOBAL_ADMIN_ID)["forceChangePasswordNextSignIn"] is False


def test_undo_refuses_an_admin_whose_change_someone_else_required(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                 tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=policy(("require_admin_password_change", "approve", "")),
               tmp_path=tmp_path)
    _job, body = take_job(st)
    handle_respond_message(body, responder=st.responder())
    ops = next(r for r in st.responder().list_actions(alert=MINING_KEY) if r.target.id == OPS_ID)
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    other = action_context(azurite, fresh_sandbox, alert, "require_admin_password_change")
    other.clients.graph_customer(ids.CUSTOMER_FABRIKAM).update_user(
        OPS_ID, force_change_password_next_sign_in=True, force_change_password_next_sign_in_with_mfa=True)
    mark = len(fresh_sandbox.requests())

    done = st.responder().approve(ops.action_id, "alice")

    assert done.state == SUCCEEDED and done.already_done and done.found_state
    with pytest.raises(OperatorError, match="did nothing"):
        st.responder().undo(ops.action_id, "bob")
    assert _profile(fresh_sandbox, OPS_ID)["forceChangePasswordNextSignInWithMfa"] is True
    assert _patches(fresh_sandbox, mark) == []


def test_report_flags_the_phone_added_before_the_incident_and_masks_it(azurite: Azurite,
                                                                      fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "report_admin_recovery_methods")
    admin, ops = REPORT.plan(ctx)

    old = REPORT.execute(ctx, admin)
    recent = REPORT.execute(ctx, ops)

    assert old.data["recent_count"] == 0
    assert [(m["label"], m["masked"], m["evidence"]) for m in old.data["methods"]] == [
        ("e-mail", "a***@outlook.example", "registration date unknown"),
        ("phone (mobile)", "+1 *** *** 0123", old.data["methods"][1]["evidence"])]
    assert old.data["methods"][1]["evidence"].startswith("registered ")
    assert recent.data["recent_count"] == 1
    [phone] = [m for m in recent.data["methods"] if m["kind"] == "phone"]
    assert phone["recent"] and phone["evidence"].startswith("audit log: User registered security info at ")
    assert "RECENT" in recent.summary and "+44 *** *** 0461" in recent.summary
    for outcome in (old, recent):  # the summary (notifications, alerts show) never holds the full values
        assert "7700900461" not in outcome.summary and "4255550123" not in outcome.summary
        assert "outlook.example" not in json.dumps(outcome.data["methods"]).replace("a***@outlook.example", "")
    assert [m["value"] for m in recent.data["personal_data"]["methods"]] == ["fabrikam-ops@contoso.example",
                                                                             "+44 7700900461"]
    assert not REPORT.verify(ctx, ops) and not REPORT.reversible


def test_report_flags_a_method_by_its_own_date_and_goes_on_without_the_audit_log(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, f"{ids.SUB_NORTHWIND_DEV}_vm-build-07")
    ctx = action_context(azurite, fresh_sandbox, alert, "report_admin_recovery_methods")
    targets = REPORT.plan(ctx)
    assert [t.display for t in targets] == ["admin@northwind.example", "it@northwind.example"]
    fresh_sandbox.add_fault(Fault("graph", "status", path="auditLogs/directoryAudits", status=403, times=None))

    outcome = REPORT.execute(ctx, targets[1])

    assert outcome.data["recent_count"] == 1
    assert [m["recent"] for m in outcome.data["methods"]] == [False, True]
    assert outcome.data["methods"][1]["evidence"].startswith("registered ")
    assert outcome.data["audit_note"].startswith("the audit log could not be read")


def test_report_through_the_engine_notifies_masked_and_the_ledger_json_withholds_values(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    rule = policy(("report_admin_recovery_methods", "enforce", ""), ("notify", "enforce", ""))
    st = stage(azurite, fresh_sandbox, policy=rule, tmp_path=tmp_path)
    _job, body = take_job(st)

    handle_respond_message(body, responder=st.responder())

    rows = by_action(st.responder().list_actions(alert=MINING_KEY), "report_admin_recovery_methods")
    assert {r.state for r in rows} == {SUCCEEDED} and len(rows) == 2
    ops = next(r for r in rows if r.target.id == OPS_ID)
    assert ops.data["personal_data"]["methods"][1]["value"] == "+44 7700900461"  # the incident record's source
    shown = json.dumps(ops.as_json())
    assert "7700900461" not in shown and "withheld" in shown
    mail = fresh_sandbox.services["graph"].sent_mail()  # type: ignore[attr-defined]
    assert mail and "+44 *** *** 0461" in mail[-1]["content"]
    assert all("7700900461" not in m["content"] and "fabrikam-ops@contoso.example" not in m["content"]
               for m in mail)
    env = {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    shown_cli = subprocess.run([sys.executable, "-m", "shared.cli", "alerts", "show", MINING_KEY], env=env,
                               capture_output=True, text=True, check=False, timeout=120, cwd=REPO_ROOT)
    assert shown_cli.returncode == 0, shown_cli.stderr
    assert "report_admin_recovery_methods: ops@fabrikam.example: 1 added or changed recently" in shown_cli.stdout
    assert "+44 *** *** 0461 RECENT" in shown_cli.stdout
    assert "7700900461" not in shown_cli.stdout and "fabrikam-ops@contoso.example" not in shown_cli.stdout
