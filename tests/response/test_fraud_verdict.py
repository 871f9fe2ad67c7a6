"""The fraud verdict (issue 15 items 1, 3, 4): resolving an alert as fraud plans the policy's [verdict.fraud].

Real parts throughout: the sandbox's alerts synced into Azurite by the real poller, the real
responder and ledger, the operators' resolve, and real clients against the Partner Center and ARM
stand-ins. The verdict here names the three actions of this branch (the default policy also names
the Global Administrator actions built elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.operations.resolve import resolve
from shared.response.engine import OperatorError
from shared.response.ledger import AWAITING_APPROVAL, DRY_RUN, SUCCEEDED, UNDONE
from shared.response.policy import PolicyError, load_policy, parse_policy
from shared.settings import APP_ROOT
from tests.response.respond_support import MINING_KEY, Stage, by_action, stage, take_job, writes

VERDICT_ACTIONS = ("suspend_customer_subscriptions", "remove_role_assignments", "open_service_request")


def verdict_policy(mode: str = "approve", *, rule_actions: str = "") -> str:
    """The crypto rule (investigate, notify, and ``rule_actions``), a catch-all, and the verdict in ``mode``."""
    text = ('version = 1\n[[rules]]\nname = "crypto"\n[rules.match]\ncategory = "crypto_mining"\n'
            '[[rules.actions]]\naction = "investigate"\nmode = "enforce"\n'
            '[[rules.actions]]\naction = "notify"\nmode = "enforce"\n' + rule_actions +
            '[[rules]]\nname = "rest"\n[[rules.actions]]\naction = "notify"\nmode = "enforce"\n'
            '[verdict.fraud]\ndescription = "test verdict"\n')
    for action in VERDICT_ACTIONS:
        text += f'[[verdict.fraud.actions]]\naction = "{action}"\nmode = "{mode}"\n'
    return text


def pc(sandbox: Sandbox) -> Any:
    return sandbox.services["partner_center"]


def arm(sandbox: Sandbox) -> Any:
    return sandbox.services["arm"]


def sub_status(sandbox: Sandbox, sub: str) -> str:
    return str(pc(sandbox).subscriptions[(ids.CUSTOMER_FABRIKAM, sub)]["status"])


def rogue_assignment(sandbox: Sandbox) -> dict[str, str] | None:
    return next((a for a in arm(sandbox).role_assignments() if a["name"] == ids.ROGUE_ROLE_ASSIGNMENT_NAME), None)


def verdict_rows(st: Stage) -> dict[str, list[Any]]:
    rows = st.responder().list_actions(alert=MINING_KEY)
    return {action: by_action(rows, action) for action in VERDICT_ACTIONS}


@pytest.fixture
def staged(azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> Stage:
    return stage(azurite, fresh_sandbox, policy=verdict_policy(), tmp_path=tmp_path)


def test_resolving_the_mining_alert_as_fraud_plans_the_verdict_for_the_whole_customer(
        staged: Stage, fresh_sandbox: Sandbox) -> None:
    st = staged
    before = len(fresh_sandbox.requests())
    result = resolve(st.settings, st.store, ids.MINING_ALERT_EVENT_ID, "fraud", "alice")

    rows = verdict_rows(st)
    # every active Fabrikam subscription: the Azure plan and the Microsoft 365 licences, one row each
    assert sorted(r.target.id for r in rows["suspend_customer_subscriptions"]) == sorted(
        [ids.PLAN_FABRIKAM, ids.LICENCE_FABRIKAM_M365])
    [removal] = rows["remove_role_assignments"]
    assert removal.target.id == ids.ROGUE_ROLE_ASSIGNMENT_ID
    [ticket] = rows["open_service_request"]
    planned = [r for group in rows.values() for r in group]
    assert {r.state for r in planned} == {AWAITING_APPROVAL}
    assert {r.actor for r in planned} == {"operator:alice"} and {r.rule for r in planned} == {"verdict.fraud"}
    assert {r.action_id for r in planned} <= set(result["verdict_actions"])
    # nothing changed at Microsoft but the alert's status (the investigation only read)
    assert [(w.service, w.method) for w in writes(fresh_sandbox, before)] == [("partner_center", "POST")]
    assert {sub_status(fresh_sandbox, s) for s in (ids.PLAN_FABRIKAM, ids.LICENCE_FABRIKAM_M365)} == {"active"}
    assert rogue_assignment(fresh_sandbox) is not None
    # resolving again plans nothing twice
    again = resolve(st.settings, st.store, ids.MINING_ALERT_EVENT_ID, "fraud", "alice")
    assert sorted(r.action_id for g in verdict_rows(st).values() for r in g) == sorted(r.action_id for r in planned)
    assert set(again["verdict_actions"]) >= {r.action_id for r in planned}

    # approval runs each one, and undo reverses exactly what it did
    responder = st.responder()
    done = {r.target.id: responder.approve(r.action_id, "bob") for r in rows["suspend_customer_subscriptions"]}
    assert {e.state for e in done.values()} == {SUCCEEDED}
    assert {sub_status(fresh_sandbox, s) for s in (ids.PLAN_FABRIKAM, ids.LICENCE_FABRIKAM_M365)} == {"suspended"}
    assert responder.approve(removal.action_id, "bob").state == SUCCEEDED
    assert rogue_assignment(fresh_sandbox) is None
    opened = responder.approve(ticket.action_id, "bob")
    assert opened.state == SUCCEEDED and opened.data["ticket_id"]
    [request] = pc(fresh_sandbox).service_requests
    assert request["id"] == opened.data["ticket_id"]
    for fact in (ids.PARTNER_TENANT_ID, ids.CUSTOMER_FABRIKAM, ids.SUB_FABRIKAM_PROD, ids.MINING_VM_1,
                 "Impact start", "Impact end"):
        assert fact in request["description"], fact

    assert responder.undo(done[ids.LICENCE_FABRIKAM_M365].action_id, "carol").state == UNDONE
    assert sub_status(fresh_sandbox, ids.LICENCE_FABRIKAM_M365) == "active"
    assert sub_status(fresh_sandbox, ids.PLAN_FABRIKAM) == "suspended"  # only what that row suspended
    assert responder.undo(removal.action_id, "carol").state == UNDONE
    back = rogue_assignment(fresh_sandbox)
    assert back is not None and (back["principalId"], back["roleDefinitionName"], back["principalType"]) == \
        (ids.ROGUE_SP_ID, "Owner", "ServicePrincipal")
    with pytest.raises(OperatorError, match="not reversible"):
        responder.undo(ticket.action_id, "carol")


def test_the_policy_path_two_deliveries_one_effect_per_target(azurite: Azurite, fresh_sandbox: Sandbox,
                                                              tmp_path: Path) -> None:
    """A rule resolving the alert as fraud in enforce: the verdict runs in the same job, exactly once."""
    resolve_rule = ('[[rules.actions]]\naction = "update_status"\nmode = "enforce"\nstatus = "resolved"\n'
                    'reason = "fraud"\n')
    st = stage(azurite, fresh_sandbox, policy=verdict_policy("enforce", rule_actions=resolve_rule),
               tmp_path=tmp_path)
    job, _ = take_job(st)
    before = len(fresh_sandbox.requests())
    first = st.responder().respond(job["partition"], job["row"], job["version"], job=job)
    st.make_pending(job)
    second = st.responder().respond(job["partition"], job["row"], job["version"], job=job)

    states = {k: v for k, v in first.states().items() if k.split()[0] in VERDICT_ACTIONS}
    assert len(states) == 4 and set(states.values()) == {SUCCEEDED}, states
    # the second delivery finds every row done (suspended subscriptions are no longer planned at all)
    assert all(v == SUCCEEDED for k, v in second.states().items() if k.split()[0] in VERDICT_ACTIONS)
    sent = writes(fresh_sandbox, before)
    patches = [w.path for w in sent if w.method == "PATCH"]
    assert sorted(patches) == sorted(f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{s}"
                                     for s in (ids.PLAN_FABRIKAM, ids.LICENCE_FABRIKAM_M365))
    assert [w.path for w in sent if w.method == "DELETE"] == [ids.ROGUE_ROLE_ASSIGNMENT_ID]
    assert len([w for w in sent if w.method == "POST" and w.path.startswith("/v1/servicerequests/")]) == 1
    assert len(pc(fresh_sandbox).service_requests) == 1


def test_dry_run_records_what_the_verdict_would_do_and_calls_nothing(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                      tmp_path: Path) -> None:
    st = stage(azurite, fresh_sandbox, policy=verdict_policy("dry-run"), tmp_path=tmp_path)
    before = len(fresh_sandbox.requests())
    resolve(st.settings, st.store, ids.MINING_ALERT_EVENT_ID, "fraud", "alice")
    rows = [r for group in verdict_rows(st).values() for r in group]
    assert len(rows) == 4 and {r.state for r in rows} == {DRY_RUN}
    assert [(w.service, w.method) for w in writes(fresh_sandbox, before)] == [("partner_center", "POST")]
    assert pc(fresh_sandbox).service_requests == []


def test_undo_refuses_what_the_responder_did_not_do(staged: Stage, fresh_sandbox: Sandbox) -> None:
    st = staged
    resolve(st.settings, st.store, ids.MINING_ALERT_EVENT_ID, "fraud", "alice")
    rows = verdict_rows(st)
    licence = next(r for r in rows["suspend_customer_subscriptions"] if r.target.id == ids.LICENCE_FABRIKAM_M365)
    [removal] = rows["remove_role_assignments"]
    # someone else acts before the approval: the licences are suspended, the assignment removed
    pc(fresh_sandbox).subscriptions[(ids.CUSTOMER_FABRIKAM, ids.LICENCE_FABRIKAM_M365)]["status"] = "suspended"
    service = arm(fresh_sandbox)
    with service.lock:
        service._assignments = [a for a in service._assignments if a["name"] != ids.ROGUE_ROLE_ASSIGNMENT_NAME]
    responder = st.responder()
    before = len(fresh_sandbox.requests())
    for row in (licence, removal):
        done = responder.approve(row.action_id, "bob")
        assert done.state == SUCCEEDED and done.found_state, done
    assert [w for w in writes(fresh_sandbox, before)] == []
    for row in (licence, removal):
        with pytest.raises(OperatorError, match="undo would reverse what the responder did not do"):
            responder.undo(row.action_id, "carol")
    assert sub_status(fresh_sandbox, ids.LICENCE_FABRIKAM_M365) == "suspended"


def test_resolving_as_legitimate_plans_no_verdict(staged: Stage) -> None:
    result = resolve(staged.settings, staged.store, ids.MINING_ALERT_EVENT_ID, "legitimate", "alice")
    assert result["verdict_actions"] == [] and all(not g for g in verdict_rows(staged).values())


def test_the_default_policy_s_verdict_names_the_checklist() -> None:
    verdict = load_policy(APP_ROOT / "policy" / "default.toml").verdict("fraud")
    assert verdict is not None
    assert [a.action for a in verdict.actions] == [
        "suspend_customer_subscriptions", "remove_role_assignments", "require_admin_password_change",
        "report_admin_recovery_methods", "open_service_request"]
    assert {a.mode for a in verdict.actions if a.action != "report_admin_recovery_methods"} == {"approve"}


def test_policy_check_names_what_is_wrong_in_a_verdict() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy('[[rules]]\nname = "r"\nactions = []\n[verdict.frud]\n[verdict.fraud]\nsummary = "x"\n'
                     '[[verdict.fraud.actions]]\naction = "suspend_customer_subscription"\nmode = "approve"\n'
                     '[[verdict.fraud.actions]]\naction = "open_service_request"\nmode = "later"\n', path="p.toml")
    text = str(caught.value)
    assert 'unknown verdict "frud" (did you mean "fraud"?); valid verdicts: fraud' in text
    assert 'verdict fraud: unknown field "summary"' in text
    assert 'unknown action "suspend_customer_subscription" (did you mean "suspend_customer_subscriptions"?)' in text
    assert 'action "open_service_request": unknown mode "later"' in text
