"""rotate_credentials against the sandbox: Graph in the customer tenant, the Key Vault stand-in, Azurite."""

from __future__ import annotations

from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.names import ALERTS_TABLE
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Target
from shared.response.actions.rotate_credentials import ACTION, marker, secret_name
from tests.response.actions.sandbox_context import action_context, pc_alert, same_store

INVESTIGATION = {
    "users": [{"id": ids.COMPROMISED_USER_ID, "display": ids.COMPROMISED_USER_UPN}],
    "service_principals": [{"id": ids.ROGUE_SP_ID, "display": "batch-render-tool", "app_id": ids.ROGUE_APP_CLIENT_ID}],
}
OLD_KEYS = {"eeeeeeee-1001-4000-8000-000000000001", "eeeeeeee-1002-4000-8000-000000000002"}
SECRET_NAME = secret_name(ids.CUSTOMER_FABRIKAM, ids.ROGUE_APP_CLIENT_ID)


def _context(azurite: Azurite, sandbox: Sandbox, **params: Any) -> ActionContext:
    alert = pc_alert(sandbox, ids.MINING_ALERT_EVENT_ID)
    return action_context(azurite, sandbox, alert, "rotate_credentials", investigation=INVESTIGATION, **params)


def _credentials(sandbox: Sandbox) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    graph: Any = sandbox.services["graph"]
    return (graph.credentials(ids.CUSTOMER_FABRIKAM, "applications", ids.ROGUE_APP_ID),
            graph.credentials(ids.CUSTOMER_FABRIKAM, "servicePrincipals", ids.ROGUE_SP_ID))


def _vault_secret(sandbox: Sandbox) -> Any:
    vault: Any = sandbox.services["key_vault"]
    return vault.latest(SECRET_NAME)


def _calls(sandbox: Sandbox, suffix: str) -> int:
    return sum(1 for r in sandbox.requests("graph") if r.path.endswith(suffix))


def _sp_target(ctx: ActionContext) -> Target:
    return next(t for t in ACTION.plan(ctx) if t.kind == "service_principal")


def test_plan_follows_the_investigation_and_the_rule(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    both = ACTION.plan(_context(azurite, fresh_sandbox))
    assert [(t.kind, t.id) for t in both] == [("service_principal", ids.ROGUE_SP_ID),
                                             ("user", ids.COMPROMISED_USER_ID)]
    assert both[0].details["app_id"] == ids.ROGUE_APP_CLIENT_ID
    assert [t.kind for t in ACTION.plan(_context(azurite, fresh_sandbox, users=False))] == ["service_principal"]
    assert [t.kind for t in ACTION.plan(_context(azurite, fresh_sandbox, applications=False))] == ["user"]


def test_rotates_the_secret_into_key_vault_and_removes_every_old_one(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = _context(azurite, fresh_sandbox)
    target = _sp_target(ctx)
    assert not ACTION.verify(ctx, target)

    outcome = ACTION.execute(ctx, target)

    app_credentials, sp_credentials = _credentials(fresh_sandbox)
    [new] = app_credentials  # the old secret on the application AND the one on the service principal are gone
    assert sp_credentials == []
    assert new["displayName"] == marker(ctx) == f"rotated by fraud-responder {ids.MINING_ALERT_EVENT_ID}"
    stored = _vault_secret(fresh_sandbox)
    assert stored is not None and stored.value[:3] == new["hint"]  # Key Vault holds the new credential's secret
    assert outcome.data["added_key_id"] == new["keyId"]
    assert set(outcome.data["removed_key_ids"]) == OLD_KEYS
    assert (outcome.data["secret_name"], outcome.data["secret_version"]) == (SECRET_NAME, stored.version)
    assert f"rotated-{ids.CUSTOMER_FABRIKAM}-{ids.ROGUE_APP_CLIENT_ID}" == SECRET_NAME
    # The secret value is nowhere but Key Vault: not in the outcome, not in any row.
    rows = list(ctx.clients.store.list_partition(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM))
    assert rows and stored.value not in repr(outcome) + repr(rows)

    # Crash after the last removal and before the ledger write: verify sees it, execute adds nothing.
    assert ACTION.verify(ctx, target)
    again = ACTION.execute(same_store(ctx, ctx.alert, "rotate_credentials"), target)
    assert again.already_done and again.data["added_key_id"] == new["keyId"]
    assert _calls(fresh_sandbox, "/addPassword") == 1
    with pytest.raises(NotReversible, match="new secret from Key Vault"):
        ACTION.undo(ctx, target, outcome.data)


def test_a_crash_before_the_old_secrets_were_removed_finishes_without_a_second_secret(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = _context(azurite, fresh_sandbox)
    target = _sp_target(ctx)
    fresh_sandbox.add_fault(Fault(service="graph", kind="status", status=403, method="POST",
                                  path="/removePassword$"))
    with pytest.raises(ActionFailed, match="removing client secret"):
        ACTION.execute(ctx, target)
    app_credentials, _ = _credentials(fresh_sandbox)
    assert len(app_credentials) == 2  # ours and the old one: the crash came between the steps
    assert not ACTION.verify(ctx, target)

    outcome = ACTION.execute(same_store(ctx, ctx.alert, "rotate_credentials"), target)

    app_credentials, sp_credentials = _credentials(fresh_sandbox)
    assert [c["keyId"] for c in app_credentials] == [outcome.data["added_key_id"]] and sp_credentials == []
    assert _calls(fresh_sandbox, "/addPassword") == 1
    assert _vault_secret(fresh_sandbox).value[:3] == app_credentials[0]["hint"]
    assert ACTION.verify(ctx, target)


def test_a_credential_whose_secret_never_reached_key_vault_is_replaced(azurite: Azurite,
                                                                      fresh_sandbox: Sandbox) -> None:
    ctx = _context(azurite, fresh_sandbox)
    target = _sp_target(ctx)
    # The vault refuses the write and the clean-up cannot remove the new credential either: the
    # state a crash right after addPassword leaves behind.
    fresh_sandbox.add_fault(Fault(service="key_vault", kind="status", status=403, method="PUT",
                                  path=f"/secrets/{SECRET_NAME}"))
    fresh_sandbox.add_fault(Fault(service="graph", kind="status", status=403, method="POST",
                                  path="/removePassword$"))
    with pytest.raises(ActionFailed, match="Key Vault failed"):
        ACTION.execute(ctx, target)
    app_credentials, _ = _credentials(fresh_sandbox)
    lost = next(c for c in app_credentials if c["displayName"] == marker(ctx))
    assert _vault_secret(fresh_sandbox) is None
    assert not ACTION.verify(ctx, target)

    outcome = ACTION.execute(same_store(ctx, ctx.alert, "rotate_credentials"), target)

    app_credentials, sp_credentials = _credentials(fresh_sandbox)
    [new] = app_credentials
    assert new["keyId"] == outcome.data["added_key_id"] != lost["keyId"]
    assert sp_credentials == []
    assert _vault_secret(fresh_sandbox).value[:3] == new["hint"]


def test_a_key_vault_failure_takes_the_new_credential_away_and_keeps_the_old_ones(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = _context(azurite, fresh_sandbox)
    target = _sp_target(ctx)
    fresh_sandbox.add_fault(Fault(service="key_vault", kind="status", status=403, method="PUT",
                                  path=f"/secrets/{SECRET_NAME}"))
    with pytest.raises(ActionFailed, match="removed again and the old secrets were kept"):
        ACTION.execute(ctx, target)
    app_credentials, sp_credentials = _credentials(fresh_sandbox)
    assert {c["keyId"] for c in app_credentials + sp_credentials} == OLD_KEYS


def test_forces_the_implicated_user_to_change_the_password_with_mfa(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = _context(azurite, fresh_sandbox)
    target = next(t for t in ACTION.plan(ctx) if t.kind == "user")
    assert not ACTION.verify(ctx, target)

    outcome = ACTION.execute(ctx, target)

    graph: Any = fresh_sandbox.services["graph"]
    profile = graph.user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)["passwordProfile"]
    assert profile["forceChangePasswordNextSignIn"] is True
    assert profile["forceChangePasswordNextSignInWithMfa"] is True
    assert not outcome.already_done
    assert ACTION.verify(ctx, target)
    assert ACTION.execute(ctx, target).already_done
    assert graph.user(ids.CUSTOMER_FABRIKAM, ids.FABRIKAM_GLOBAL_ADMIN_ID)["passwordProfile"][
        "forceChangePasswordNextSignIn"] is False
    with pytest.raises(NotReversible):
        ACTION.undo(ctx, target, outcome.data)
