"""revoke_sessions against the sandbox's Graph, in the customer's tenant with the SAM token."""

from __future__ import annotations

from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.response.actions.base import ActionFailed, NotReversible, Target
from shared.response.actions.revoke_sessions import ACTION
from tests.response.actions.sandbox_context import action_context, pc_alert

INVESTIGATION = {
    "users": [{"id": ids.COMPROMISED_USER_ID, "display": ids.COMPROMISED_USER_UPN, "operations": []}],
    "service_principals": [{"id": ids.ROGUE_SP_ID, "display": "batch-render-tool", "app_id": ids.ROGUE_APP_CLIENT_ID,
                            "operations": []}],
}


def _user(sandbox: Sandbox, user: str) -> dict[str, Any]:
    graph: Any = sandbox.services["graph"]
    return graph.user(ids.CUSTOMER_FABRIKAM, user)  # type: ignore[no-any-return]


def test_plans_the_implicated_user_and_on_request_the_global_admins(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "revoke_sessions", investigation=INVESTIGATION)
    assert [(t.kind, t.id, t.display) for t in ACTION.plan(ctx)] == [
        ("user", ids.COMPROMISED_USER_ID, ids.COMPROMISED_USER_UPN)]

    with_admins = action_context(azurite, fresh_sandbox, alert, "revoke_sessions", investigation=INVESTIGATION,
                                 include_global_admins=True)
    targets = ACTION.plan(with_admins)
    assert [t.display for t in targets] == [ids.COMPROMISED_USER_UPN, ids.FABRIKAM_GLOBAL_ADMIN_UPN,
                                            "ops@fabrikam.example"]
    assert targets[1].details["why"] == "Global Administrator of the customer tenant"
    assert all(t.tenant == ids.CUSTOMER_FABRIKAM for t in targets)


def test_a_user_who_is_also_a_global_admin_is_one_target(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    investigation = {"users": [{"id": ids.FABRIKAM_GLOBAL_ADMIN_ID, "display": ids.FABRIKAM_GLOBAL_ADMIN_UPN}]}
    ctx = action_context(azurite, fresh_sandbox, alert, "revoke_sessions", investigation=investigation,
                         include_global_admins=True)
    assert [t.id for t in ACTION.plan(ctx)] == [ids.FABRIKAM_GLOBAL_ADMIN_ID, "dddddddd-0003-4000-8000-000000000003"]


def test_without_an_investigation_there_is_nobody_to_revoke(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    assert ACTION.plan(action_context(azurite, fresh_sandbox, alert, "revoke_sessions")) == []


def test_revokes_the_sessions_and_a_redo_after_a_crash_is_harmless(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "revoke_sessions", investigation=INVESTIGATION)
    [target] = ACTION.plan(ctx)
    assert _user(fresh_sandbox, ids.COMPROMISED_USER_ID)["signInSessionsValidFromDateTime"] is None

    outcome = ACTION.execute(ctx, target)

    after = _user(fresh_sandbox, ids.COMPROMISED_USER_ID)
    assert after["_revocations"] == 1 and after["signInSessionsValidFromDateTime"]
    assert outcome.summary == f"revoked every sign-in session of {ids.COMPROMISED_USER_UPN}"
    assert _user(fresh_sandbox, ids.FABRIKAM_GLOBAL_ADMIN_ID)["_revocations"] == 0
    # Graph keeps no trace to verify against, so a crash-interrupted job revokes again: harmless.
    assert not ACTION.verify(ctx, target)
    ACTION.execute(ctx, target)
    assert _user(fresh_sandbox, ids.COMPROMISED_USER_ID)["_revocations"] == 2


def test_an_unknown_user_is_a_permanent_failure_and_undo_is_refused(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = pc_alert(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)
    ctx = action_context(azurite, fresh_sandbox, alert, "revoke_sessions")
    ghost = Target("user", "dddddddd-0999-4000-8000-000000000999", display="ghost@fabrikam.example",
                   tenant=ids.CUSTOMER_FABRIKAM)
    with pytest.raises(ActionFailed, match=r"revoking the sign-in sessions of ghost@fabrikam\.example"):
        ACTION.execute(ctx, ghost)
    with pytest.raises(NotReversible, match="cannot be restored"):
        ACTION.undo(ctx, ghost, {})
    assert not ACTION.reversible
