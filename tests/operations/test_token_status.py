"""Token status and the token-health watch against the sandbox's Key Vault, Entra ID and Graph, on Azurite.

The refresh token's age comes from its Key Vault secret version (the sandbox's vault, over TLS);
token failures are the ones a real sync records when the sandbox's Entra refuses the token.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.health import check_tokens
from shared.intake.checkpoints import record_token_health
from shared.intake.jobs import IntakeRuntime, run_sync
from shared.intake.sync import SyncScope
from shared.operations.token_status import EXPIRED, EXPIRING, FAILING, OK, UNKNOWN, token_status
from shared.operations.token_watch import watch_tokens
from shared.settings import Settings, load_settings
from shared.storage.tables import TableStore
from tests.conftest import REPO_ROOT, settings_env

NO_FILE = REPO_ROOT / "does-not-exist.json"


def sandbox_settings(azurite: Azurite, sandbox: Sandbox, **overrides: str) -> Settings:
    return load_settings(settings_env(azurite, **{**sandbox.app_settings(), **overrides}), local_settings=NO_FILE)


def age_refresh_token(sandbox: Sandbox, settings: Settings, days: float) -> datetime:
    """Make the vault's newest refresh token version ``days`` old (as if nobody had redeemed it since)."""
    vault: Any = sandbox.services["key_vault"]
    latest = vault.latest(settings.refresh_token_secret_name)
    latest.created = latest.updated = int(time.time() - days * 86400)
    return datetime.fromtimestamp(latest.updated, UTC)


def assert_published_shape(status: dict[str, Any]) -> None:
    """The admin API serves token status as is: it must match the OpenAPI document's TokenStatus."""
    from shared.admin.openapi import openapi_document
    from tests.admin.openapi_support import Contract

    Contract(openapi_document()).schema_validator("TokenStatus").validate(status)


def mail(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.services["graph"].sent_mail()  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def config(azurite: Azurite, fresh_sandbox: Sandbox) -> Settings:
    return sandbox_settings(azurite, fresh_sandbox)


def test_fresh_token_is_ok_with_ninety_days_to_go(config: Settings, fresh_sandbox: Sandbox) -> None:
    status = token_status(config, TableStore(config))
    age = status["refresh_token"]
    assert (status["state"], status["ok"], status["warnings"], status["next_steps"]) == (OK, True, [], [])
    assert age["days_left"] in (89, 90) and age["error"] == ""
    rolled = datetime.fromisoformat(age["last_rolled_at"])
    assert datetime.fromisoformat(age["expires_if_unused_at"]) - rolled == timedelta(days=90)


def test_warns_under_token_warn_days_and_says_how_to_reconsent(config: Settings, fresh_sandbox: Sandbox) -> None:
    age_refresh_token(fresh_sandbox, config, days=80)
    status = token_status(config, TableStore(config))
    assert (status["state"], status["ok"], status["refresh_token"]["days_left"]) == (EXPIRING, True, 9)
    [warning] = status["warnings"]
    assert "9 day(s) left" in warning and "fewer than 14" in warning
    steps = " ".join(status["next_steps"])
    assert config.partner_app_client_id in steps and config.partner_tenant_id in steps
    assert config.refresh_token_secret_name in steps and "New-PartnerAccessToken" in steps

    later = datetime.now(UTC) + timedelta(days=11)
    expired = token_status(config, TableStore(config), now=later)
    assert (expired["state"], expired["ok"], expired["refresh_token"]["days_left"]) == (EXPIRED, False, 0)


def test_the_warning_threshold_is_a_setting(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    config = sandbox_settings(azurite, fresh_sandbox, TOKEN_WARN_DAYS="5")
    age_refresh_token(fresh_sandbox, config, days=80)
    assert token_status(config, TableStore(config))["state"] == OK


def test_expired_refresh_token_recorded_by_a_sync_is_the_last_error(config: Settings, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.services["entra"].set_state(refresh_token_state="expired")  # type: ignore[attr-defined]
    runtime = IntakeRuntime.from_settings(config)
    assert not run_sync(runtime, SyncScope(), trigger="test", sources=("partner_center",)).ok

    status = token_status(config, runtime.store)

    assert (status["state"], status["ok"]) == (FAILING, False)
    error = status["last_error"]
    assert (error["principal"], error["kind"], error["code"]) == ("partner_center", "refresh_token_expired", 700082)
    assert "AADSTS700082" in error["message"] and error["failed_at"]
    assert any("New-PartnerAccessToken" in step for step in status["next_steps"])
    # /api/health's tokens part fails with the same message and carries the steps
    part = check_tokens(config)
    assert not part.ok and "AADSTS700082" in part.detail
    assert part.extra["principals"] == {"partner_center": "refresh_token_expired"}
    assert part.extra["next_steps"] == status["next_steps"]


def test_health_warns_but_stays_ok_when_the_token_is_near_expiry(config: Settings, fresh_sandbox: Sandbox) -> None:
    from shared.health import HealthReport

    age_refresh_token(fresh_sandbox, config, days=85)
    part = check_tokens(config)
    assert part.ok and part.detail.startswith("WARNING: ") and part.extra["refresh_token_days_left"] == 4
    doc = HealthReport({"tokens": part}).as_dict()
    assert doc["status"] == "ok" and doc["warnings"] and doc["warnings"][0].startswith("tokens: the SAM refresh")


def test_a_bad_client_secret_points_at_the_secret_not_at_reconsent(config: Settings) -> None:
    store = TableStore(config)
    record_token_health(store, principal="graph_app", ok=False, detail={
        "kind": "client_secret_invalid", "code": 7000215, "message": "The app's client secret was rejected"})
    status = token_status(config, store)
    assert status["state"] == FAILING
    assert config.graph_app_secret_name in status["next_steps"][0]
    assert not any("New-PartnerAccessToken" in step for step in status["next_steps"])


def test_without_key_vault_the_age_is_unknown_not_a_failure(azurite: Azurite) -> None:
    config = load_settings(settings_env(azurite), local_settings=NO_FILE)
    status = token_status(config, TableStore(config))
    assert (status["state"], status["ok"]) == (UNKNOWN, True)
    assert "KEY_VAULT_URL" in status["refresh_token"]["error"]


def test_watch_mails_the_contacts_once_a_day_per_kind(config: Settings, fresh_sandbox: Sandbox) -> None:
    store = TableStore(config)
    assert watch_tokens(config, store)["notified"] is False  # healthy: nothing to say
    assert mail(fresh_sandbox) == []

    age_refresh_token(fresh_sandbox, config, days=80)
    first = watch_tokens(config, store)
    again = watch_tokens(config, store)
    assert (first["notified"], again["notified"]) == (True, False)
    [warning] = mail(fresh_sandbox)
    message = warning["message"]
    assert "expires in 9 day(s)" in message["subject"]
    assert [r["emailAddress"]["address"] for r in message["toRecipients"]] == list(config.security_contacts)
    assert "New-PartnerAccessToken" in message["body"]["content"]

    # a refused token on the same day is announced at once, then also only once
    record_token_health(store, principal="partner_center", ok=False, detail={
        "kind": "mfa_required", "code": 50076, "message": "Entra ID requires a new multi-factor sign-in"})
    assert watch_tokens(config, store)["notified"] is True
    assert watch_tokens(config, store)["notified"] is False
    subjects = [m["message"]["subject"] for m in mail(fresh_sandbox)]
    assert len(subjects) == 2 and "ACTION NEEDED" in subjects[1]


def test_watch_without_recipients_sends_nothing(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    config = sandbox_settings(azurite, fresh_sandbox, SECURITY_CONTACTS="")
    age_refresh_token(fresh_sandbox, config, days=80)
    result = watch_tokens(config, TableStore(config))
    assert result["notified"] is False and "SECURITY_CONTACTS" in result["reason"]
    assert mail(fresh_sandbox) == []


def test_a_failed_send_is_tried_again_on_the_next_run(config: Settings, fresh_sandbox: Sandbox) -> None:
    from sandbox.faults import Fault

    age_refresh_token(fresh_sandbox, config, days=80)
    fresh_sandbox.add_fault(Fault("graph", "status", method="POST", path="/sendMail$", status=403))
    store = TableStore(config)
    assert watch_tokens(config, store)["notified"] is False
    assert watch_tokens(config, store)["notified"] is True
    assert len(mail(fresh_sandbox)) == 1


def test_reconsent_steps_name_this_deployments_vault_secret_and_app(azurite: Azurite) -> None:
    from shared.operations.token_status import reconsent_steps

    config = load_settings(settings_env(azurite, KEY_VAULT_URL="https://contoso-fraud-kv.vault.azure.net",
                                        PARTNER_APP_CLIENT_ID="0b8f6a0e-3c1c-4a43-9a4e-6f1d2b1b9e11",
                                        REFRESH_TOKEN_SECRET_NAME="sam-token"), local_settings=NO_FILE)
    steps = reconsent_steps(config)
    assert "-ApplicationId 0b8f6a0e-3c1c-4a43-9a4e-6f1d2b1b9e11" in steps[0]
    assert "az keyvault secret set --vault-name contoso-fraud-kv --name sam-token --file refresh-token.txt" in steps[1]


def test_the_poll_timer_runs_the_watch(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    from devhost.host import DevHost

    fresh_sandbox.services["entra"].set_state(refresh_token_state="mfa_required")  # type: ignore[attr-defined]
    environ = settings_env(azurite, **fresh_sandbox.app_settings(), POLL_SCHEDULE="0 0 0 1 1 *",
                           FRAUD_RESPONDER_LOCAL_SETTINGS=str(NO_FILE))
    with DevHost(environ=environ, http_port=0, functions=["poll_alerts"]) as host:
        host.fire("poll_alerts")
        [run] = host.invocations.wait_for(lambda i: i.function == "poll_alerts")
    assert run.succeeded, run.error  # the token failure is recorded, not raised
    [notice] = mail(fresh_sandbox)
    assert "ACTION NEEDED" in notice["message"]["subject"]
    assert "AADSTS50076" in notice["message"]["body"]["content"]


def test_a_rolled_refresh_token_that_cannot_be_written_back_is_kept_used_and_flagged(
        config: Settings, fresh_sandbox: Sandbox) -> None:
    """Issue 10 item 8: Key Vault refuses the write-back; nothing is lost and the operator is told."""
    from sandbox.faults import Fault
    from shared.auth import PARTNER_CENTER_RESOURCE
    from shared.auth.partner_tokens import PartnerTokenProvider
    from shared.operations.token_status import NOT_PERSISTED

    entra: Any = fresh_sandbox.services["entra"]
    vault: Any = fresh_sandbox.services["key_vault"]
    entra.set_state(refresh_token_grace_seconds=0)  # the vault's (old) refresh token dies when it rolls
    secret = config.refresh_token_secret_name
    write = Fault("key_vault", "status", method="PUT", path=f"/secrets/{secret}$", status=403, times=None)
    fresh_sandbox.add_fault(write)
    runtime = IntakeRuntime.from_settings(config)

    run = run_sync(runtime, SyncScope(), trigger="test", sources=("partner_center",))

    assert run.ok and run.results["partner_center"].fetched > 0  # the access token was used
    writes = [r for r in fresh_sandbox.requests("key_vault") if r.method == "PUT" and secret in r.path]
    assert 2 <= len(writes) <= 5  # retried, bounded
    assert len(vault.secrets[secret]) == 1  # nothing reached the vault
    status = token_status(config, runtime.store)
    assert (status["state"], status["ok"]) == (NOT_PERSISTED, False)
    assert_published_shape(status)
    assert any("not written back" in w and secret in w for w in status["warnings"])
    assert any("Key Vault Secrets Officer" in step for step in status["next_steps"])
    part = check_tokens(config)
    assert not part.ok and "not written back" in part.detail
    from shared.operations.digest import build_digest

    digest = build_digest(config, runtime.store)
    assert digest.tokens_need_attention and "token not_persisted" in digest.subject()
    assert "TOKEN HEALTH: NOT_PERSISTED" in digest.as_text() and "Key Vault Secrets Officer" in digest.as_text()
    [notice] = [m["message"] for m in mail(fresh_sandbox)] if watch_tokens(config, runtime.store)["notified"] else [{}]
    assert "could not be saved" in notice["subject"] and "Key Vault Secrets Officer" in notice["body"]["content"]
    live = [t for t, g in entra.refresh_tokens.items() if g.superseded_at is None]  # the rolled, unsaved one
    assert live and not any(t in repr(status) or t in part.detail or t in notice["body"]["content"] for t in live)

    # The next redemption in this process uses the rolled token kept in memory (the vault's is dead).
    PartnerTokenProvider(config).token(PARTNER_CENTER_RESOURCE)
    assert token_status(config, runtime.store)["state"] == NOT_PERSISTED

    # Once the vault accepts writes again, the next roll is stored and the flag clears.
    fresh_sandbox.clear_faults()
    PartnerTokenProvider(config).token(PARTNER_CENTER_RESOURCE)
    assert len(vault.secrets[secret]) == 2
    healed = token_status(config, runtime.store)
    assert (healed["state"], healed["ok"]) == (OK, True)
    assert check_tokens(config).ok
    # ... and a fresh process (no memory) redeems the stored version.
    from shared.auth import partner_tokens

    partner_tokens.forget_unsaved_refresh_tokens()
    PartnerTokenProvider(config).token(PARTNER_CENTER_RESOURCE)


def test_token_status_shows_partner_center_mfa_readiness(config: Settings, fresh_sandbox: Sandbox) -> None:
    """Issue 10 item 13: readiness from GET /v1/applicationmfaadoptionstatus, refreshed by the check."""
    from shared.operations.token_status import check_now

    store = TableStore(config)
    assert token_status(config, store)["mfa_readiness"]["ready"] is None  # never checked
    pc: Any = fresh_sandbox.services["partner_center"]
    pc.seed_mfa_adoption(pc.today(), config.partner_app_client_id, compliant=3, total=5)

    assert check_now(config, store)["ok"]

    status = token_status(config, store)
    readiness = status["mfa_readiness"]
    assert readiness["ready"] is False and readiness["checked_at"] and readiness["error"] == ""
    mine = readiness["this_app"]
    assert (mine["application_id"], mine["mfa_compliant_requests"], mine["total_requests"]) == (
        config.partner_app_client_id, 4, 6)  # the seeded day plus the check's own status call
    assert status["ok"] and status["state"] == OK  # a warning: the refused calls are failures of their own
    [warning] = [w for w in status["warnings"] if "MFA" in w]
    assert "2 of 6" in warning and "900421" in warning
    assert_published_shape(status)

    # Readiness that cannot be read is said so, without failing token status.
    fresh_sandbox.services["entra"].set_state(mfa=False)  # type: ignore[attr-defined]
    assert not check_now(config, store)["ok"]
    again = token_status(config, store)["mfa_readiness"]
    assert "900421" in again["error"] and again["this_app"]["total_requests"] == 6  # last good figures kept


def test_the_poll_refreshes_mfa_readiness_once_a_day(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    from shared.operations.token_watch import watch_after_poll

    config = sandbox_settings(azurite, fresh_sandbox)
    watch_after_poll(config)
    first = token_status(config, TableStore(config))["mfa_readiness"]
    assert first["ready"] is True and first["checked_at"]
    calls = len([r for r in fresh_sandbox.requests("partner_center") if "mfaadoption" in r.path.lower()])
    watch_after_poll(config)
    assert len([r for r in fresh_sandbox.requests("partner_center") if "mfaadoption" in r.path.lower()]) == calls == 1
