"""The sandbox's crypto-mining alert, end to end with the default policy: sync -> respond job ->
Investigating at the source, investigation, e-mail, approval rows; approvals change the sandbox;
undo puts it back; replaying the job changes nothing."""

from __future__ import annotations

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.response.engine import OperatorError
from shared.response.investigation import load_investigation
from shared.response.ledger import AWAITING_APPROVAL, SUCCEEDED, UNDONE
from tests.response.respond_support import MINING_KEY, by_action, respond_one, stage, take_job, writes


def _event(sandbox: Sandbox) -> dict[str, object]:
    alerts = sandbox.services["partner_center"].alerts  # type: ignore[attr-defined]
    return next(a for a in alerts if a["eventId"] == ids.MINING_ALERT_EVENT_ID)


def _plan_subscription(sandbox: Sandbox) -> dict[str, object]:
    subs = sandbox.services["partner_center"].subscriptions  # type: ignore[attr-defined]
    return subs[(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)]  # type: ignore[no-any-return]


def test_mining_alert_with_the_default_policy_investigates_notifies_and_waits(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    job, body = take_job(st)
    responder = st.responder()
    assert str(_event(fresh_sandbox)["eventStatus"]).lower() == "active"

    result = respond_one(body, responder=responder)

    assert result is not None and result.rule == "crypto-mining-high" and not result.deferred
    # Investigating at the source
    assert _event(fresh_sandbox)["eventStatus"] == "Investigating"
    # the investigation names the user and the service principal that created the VMs
    investigation = load_investigation(st.store, st.alert())
    assert investigation is not None
    assert ids.COMPROMISED_USER_ID in {u["id"] for u in investigation["users"]}
    assert ids.ROGUE_SP_ID in {s["id"] for s in investigation["service_principals"]}
    # one e-mail, saying what was done and what waits
    mail = fresh_sandbox.services["graph"].sent_mail()  # type: ignore[attr-defined]
    assert len(mail) == 1
    text = mail[0]["message"]["body"]["content"]
    rows = responder.list_actions(alert=MINING_KEY)
    pending = [r for r in rows if r.state == AWAITING_APPROVAL]
    assert {r.action for r in pending} == {"stop_resources", "revoke_sessions", "rotate_credentials",
                                           "suspend_subscription"}
    assert {r.target.id for r in by_action(pending, "stop_resources")} == {ids.MINING_VM_1, ids.MINING_VM_2}
    assert ids.COMPROMISED_USER_ID in {r.target.id for r in by_action(pending, "revoke_sessions")}
    assert ids.ROGUE_SP_ID in {r.target.id for r in by_action(pending, "rotate_credentials")}
    assert [r.target.id for r in by_action(pending, "suspend_subscription")] == [ids.PLAN_FABRIKAM]
    for row in pending:
        assert f"actions approve {row.action_id}" in text
    assert {r.action for r in rows if r.state == SUCCEEDED} == {"update_status", "investigate", "notify"}
    assert all(r.actor == "policy:crypto-mining-high" for r in rows)
    assert responder.list_actions(pending_only=True) == pending
    # the job is handled: the alert row says so
    assert st.job_state(job) == "handled"


def test_replaying_the_job_changes_nothing(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    job, body = take_job(st)
    responder = st.responder()
    respond_one(body, responder=responder)
    ledger_before = st.ledger_rows()
    mark = len(fresh_sandbox.requests())

    # the queue delivers it again after it was handled: nothing at all happens
    again = respond_one(body, dequeue_count=2, responder=responder)
    assert again is not None and again.handled_before
    assert fresh_sandbox.requests()[mark:] == []

    # the job is delivered while the alert row still says pending (e.g. the sync re-sent it): the
    # ledger stops every action; only reads reach the stand-ins
    st.make_pending(job)
    replay = respond_one(body, responder=responder)
    assert replay is not None and not replay.handled_before and not replay.deferred
    assert writes(fresh_sandbox, mark) == []
    assert len(fresh_sandbox.services["graph"].sent_mail()) == 1  # type: ignore[attr-defined]
    assert st.ledger_rows() == ledger_before
    assert st.job_state(job) == "handled"


def test_approving_changes_the_sandbox_and_undo_puts_it_back(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    responder = st.responder()
    respond_one(body, responder=responder)
    arm, graph, vault = (fresh_sandbox.services[n] for n in ("arm", "graph", "key_vault"))
    old_keys = {c["keyId"] for kind, object_id in (("servicePrincipals", ids.ROGUE_SP_ID),
                                                   ("applications", ids.ROGUE_APP_ID))
                for c in graph.credentials(ids.CUSTOMER_FABRIKAM, kind, object_id)}  # type: ignore[attr-defined]
    assert old_keys and arm.power_state(ids.MINING_VM_1) == "running"  # type: ignore[attr-defined]

    approved = {r.action_id: responder.approve(r.action_id, "alice") for r in responder.list_actions(pending_only=True)}

    assert {r.state for r in approved.values()} == {SUCCEEDED}, {r.action: r.error for r in approved.values()}
    assert all(r.approved_by == "alice" and r.actor == "operator:alice" for r in approved.values())
    assert responder.list_actions(pending_only=True) == []
    assert arm.power_state(ids.MINING_VM_1) == arm.power_state(ids.MINING_VM_2) == "deallocated"  # type: ignore[attr-defined]
    assert graph.user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)["_revocations"] >= 1  # type: ignore[attr-defined]
    rotated = next(r for r in approved.values() if r.action == "rotate_credentials"
                   and r.target.kind == "service_principal")
    holder = "applications" if str(rotated.data["holder"]).startswith("application") else "servicePrincipals"
    new_keys = {c["keyId"] for c in graph.credentials(ids.CUSTOMER_FABRIKAM, holder,  # type: ignore[attr-defined]
                                                       rotated.data["holder_id"])}
    assert new_keys and not new_keys & old_keys
    assert rotated.data["added_key_id"] in new_keys and set(rotated.data["removed_key_ids"]) == old_keys
    assert rotated.data["secret_name"].lower() in vault.secrets  # type: ignore[attr-defined]  # the new secret
    assert _plan_subscription(fresh_sandbox)["status"] == "suspended"

    with pytest.raises(OperatorError, match="only actions awaiting approval"):
        responder.approve(next(iter(approved)), "alice")

    for row in approved.values():
        if row.action in ("stop_resources", "suspend_subscription"):
            undone = responder.undo(row.action_id, "bob")
            assert undone.state == UNDONE and undone.undone_by == "bob", undone.error
    assert arm.power_state(ids.MINING_VM_1) == arm.power_state(ids.MINING_VM_2) == "running"  # type: ignore[attr-defined]
    assert _plan_subscription(fresh_sandbox)["status"] == "active"
    with pytest.raises(OperatorError, match="only succeeded actions"):
        responder.undo(next(r.action_id for r in approved.values() if r.action == "stop_resources"), "bob")
