"""The app's auth code (shared/auth) against the sandbox: SAM rolling, caching, typed errors, Key Vault."""

from __future__ import annotations

import pytest

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.entra import EntraService
from sandbox.key_vault import KeyVaultService
from sandbox.testing import sandbox_settings
from sandbox.tokens import unverified_claims
from shared.auth import ARM_RESOURCE, GRAPH_RESOURCE, PARTNER_CENTER_RESOURCE
from shared.auth.app_tokens import GraphAppTokenProvider
from shared.auth.errors import ClientSecretInvalid, ConsentRequired, MfaRequired, RefreshTokenExpired, TokenHealthError
from shared.auth.partner_tokens import PartnerTokenProvider
from shared.auth.secrets import SecretNotFound, SecretStore
from shared.errors import is_retryable

RT_SECRET = "partner-center-refresh-token"


def services(sandbox: Sandbox) -> tuple[EntraService, KeyVaultService]:
    entra, vault = sandbox.services["entra"], sandbox.services["key_vault"]
    assert isinstance(entra, EntraService) and isinstance(vault, KeyVaultService)
    return entra, vault


def token_requests(sandbox: Sandbox, client_id: str = ids.PARTNER_APP_CLIENT_ID) -> int:
    """Token requests made by ``client_id`` (the app's own Key Vault identity asks for tokens too)."""
    return sum(
        1 for r in sandbox.requests("entra")
        if r.method == "POST" and r.path.endswith("/token") and f"client_id={client_id}".encode() in r.body
    )


def test_rolled_refresh_token_is_written_back_and_the_old_one_stops_working(fresh_sandbox: Sandbox) -> None:
    entra, vault = services(fresh_sandbox)
    entra.set_state(refresh_token_grace_seconds=0)
    original = vault.latest(RT_SECRET)
    assert original is not None
    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))

    token = provider.token(PARTNER_CENTER_RESOURCE)

    assert unverified_claims(token)["aud"] == PARTNER_CENTER_RESOURCE
    rolled = vault.latest(RT_SECRET)
    assert rolled is not None and rolled.version != original.version and rolled.value != original.value
    assert len(vault.secrets[RT_SECRET]) == 2
    # The old refresh token is dead; the provider keeps working because it reads the newest version.
    stale = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    vault.put(RT_SECRET, original.value)
    with pytest.raises(RefreshTokenExpired):
        stale.token(PARTNER_CENTER_RESOURCE)


def test_cache_hit_makes_no_second_token_request(fresh_sandbox: Sandbox) -> None:
    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    first = provider.token(PARTNER_CENTER_RESOURCE)
    before = token_requests(fresh_sandbox)
    assert provider.token(PARTNER_CENTER_RESOURCE) == first
    assert token_requests(fresh_sandbox) == before == 1


def test_customer_tenant_tokens_are_separate_and_carry_the_customer_tenant(fresh_sandbox: Sandbox) -> None:
    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    arm = provider.token(ARM_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM)
    graph = provider.token(GRAPH_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM)
    assert unverified_claims(arm)["tid"] == ids.CUSTOMER_FABRIKAM
    assert unverified_claims(graph)["aud"] == GRAPH_RESOURCE
    assert token_requests(fresh_sandbox) == 2
    assert provider.refresh_token_last_rolled() is not None


@pytest.mark.parametrize(
    ("state", "error_type", "code"),
    [
        ("expired", RefreshTokenExpired, 700082),
        ("mfa_required", MfaRequired, 50076),
        ("mfa_expired", MfaRequired, 50078),
        ("consent_required", ConsentRequired, 65001),
    ],
)
def test_aadsts_errors_map_to_typed_errors_without_secrets(
    fresh_sandbox: Sandbox, state: str, error_type: type[TokenHealthError], code: int
) -> None:
    entra, vault = services(fresh_sandbox)
    entra.set_state(refresh_token_state=state)
    refresh_token = vault.latest(RT_SECRET)
    client_secret = vault.latest("partner-app-client-secret")
    assert refresh_token is not None and client_secret is not None
    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    with pytest.raises(error_type) as err:
        provider.token(PARTNER_CENTER_RESOURCE)
    assert err.value.code == code
    message = str(err.value)
    assert f"AADSTS{code}" in message
    assert RT_SECRET in message  # tells the operator where the new refresh token goes
    for secret in (refresh_token.value, client_secret.value):
        assert secret not in message
        assert secret not in repr(err.value.to_health())
    assert len(vault.secrets[RT_SECRET]) == 1  # nothing was written back


def test_wrong_client_secret_in_the_vault_is_client_secret_invalid(fresh_sandbox: Sandbox) -> None:
    _, vault = services(fresh_sandbox)
    vault.put("partner-app-client-secret", "an-old-rotated-secret")
    with pytest.raises(ClientSecretInvalid) as err:
        PartnerTokenProvider(sandbox_settings(fresh_sandbox)).token(PARTNER_CENTER_RESOURCE)
    assert err.value.code == 7000215
    assert "an-old-rotated-secret" not in str(err.value)
    assert "partner-app-client-secret" in str(err.value)


def test_graph_app_tokens_are_app_only_and_cached(fresh_sandbox: Sandbox) -> None:
    provider = GraphAppTokenProvider(sandbox_settings(fresh_sandbox))
    token = provider.token()
    assert provider.token() == token
    claims = unverified_claims(token)
    assert claims["roles"] == ["PartnerSecurity.Read.All", "PartnerSecurity.ReadWrite.All", "Mail.Send",
                               "DelegatedAdminRelationship.Read.All", "PartnerBilling.Read.All"]
    assert claims["appid"] == ids.GRAPH_APP_CLIENT_ID
    assert token_requests(fresh_sandbox, ids.GRAPH_APP_CLIENT_ID) == 1


def test_secret_store_round_trip_and_helpful_not_found(fresh_sandbox: Sandbox) -> None:
    store = SecretStore(sandbox_settings(fresh_sandbox))
    version = store.set("notify-webhook-url", "https://hooks.example/x")
    assert store.get("notify-webhook-url") == "https://hooks.example/x"
    assert [v.version for v in store.versions("notify-webhook-url")] == [version]
    with pytest.raises(SecretNotFound, match=r"secret missing-one not found in vault .*az keyvault secret set"):
        store.get("missing-one")
    store.close()


@pytest.mark.parametrize("path", [r"/\.well-known/openid-configuration", r"/oauth2/v2\.0/token"])
def test_a_connection_entra_drops_is_a_transient_error_and_the_next_call_works(fresh_sandbox: Sandbox,
                                                                              path: str) -> None:
    """MSAL lets a dropped connection (discovery or token request) through as a raw requests error,
    which the responder recorded as a defect (failed for good). It is a retryable TransientError."""
    from sandbox.faults import Fault
    from shared.http import TransientError

    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    provider.token(PARTNER_CENTER_RESOURCE)  # the vault and the app's own sign-in are behind us
    fresh_sandbox.add_fault(Fault(service="entra", kind="drop", path=path, times=None))
    with pytest.raises(TransientError) as caught:
        provider.token(ARM_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM)  # a new tenant: discovery, then a token
    assert caught.value.service == "Microsoft Entra ID" and is_retryable(caught.value)
    fresh_sandbox.clear_faults()
    assert unverified_claims(provider.token(ARM_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM))["tid"] == ids.CUSTOMER_FABRIKAM


@pytest.mark.parametrize("path", [r"/\.well-known/openid-configuration", r"/oauth2/v2\.0/token"])
@pytest.mark.parametrize("status", [503, 429])
def test_a_sign_in_authority_that_answers_503_or_429_is_a_transient_error(fresh_sandbox: Sandbox, path: str,
                                                                          status: int) -> None:
    """MSAL raises its own MsalServiceError (5xx) or a ValueError (4xx) when the authority's discovery
    fails: the responder recorded a chaos run's 503 on discovery as a defect, and the VM was never stopped."""
    from sandbox.faults import Fault

    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    provider.token(PARTNER_CENTER_RESOURCE)  # the vault and the app's own sign-in are behind us
    fresh_sandbox.add_fault(Fault(service="entra", kind="status", status=status, retry_after=0, path=path, times=None))
    with pytest.raises(Exception) as caught:
        provider.token(ARM_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM)  # a new tenant: discovery, then a token
    assert is_retryable(caught.value), repr(caught.value)
    fresh_sandbox.clear_faults()
    assert unverified_claims(provider.token(ARM_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM))["tid"] == ids.CUSTOMER_FABRIKAM


@pytest.mark.parametrize("fault", [{"kind": "drop"}, {"kind": "status", "status": 503},
                                   {"kind": "status", "status": 429, "retry_after": 0}])
def test_a_vault_or_sign_in_that_fails_transiently_is_retryable_not_a_missing_role(
        fresh_sandbox: Sandbox, fault: dict[str, object]) -> None:
    from sandbox.faults import Fault
    from shared.auth.secrets import SecretStoreUnavailable

    service = "entra" if fault["kind"] == "drop" else "key_vault"  # the vault identity's sign-in, or the vault
    fresh_sandbox.add_fault(Fault.from_dict({"service": service, "times": None, **fault}))
    with pytest.raises(SecretStoreUnavailable) as caught:
        GraphAppTokenProvider(sandbox_settings(fresh_sandbox)).token(GRAPH_RESOURCE)
    assert "role" not in str(caught.value) and is_retryable(caught.value)
    fresh_sandbox.clear_faults()
    assert GraphAppTokenProvider(sandbox_settings(fresh_sandbox)).token(GRAPH_RESOURCE)


def test_tokens_for_different_customers_are_redeemed_at_once_not_one_after_the_other(fresh_sandbox: Sandbox) -> None:
    # 50 customers contained together each need a token: redeeming them one at a time made the last wait for all.
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.faults import Fault

    entra, vault = services(fresh_sandbox)
    before = len(vault.secrets[RT_SECRET])
    fresh_sandbox.add_fault(Fault(service="entra", kind="delay", seconds=1.5, method="POST", path="/token$",
                                  times=None))
    provider = PartnerTokenProvider(sandbox_settings(fresh_sandbox))
    tenants = [ids.CUSTOMER_FABRIKAM, ids.CUSTOMER_NORTHWIND, ids.CUSTOMER_WOODGROVE]

    with ThreadPoolExecutor(max_workers=3) as pool:
        tokens = list(pool.map(lambda tenant: provider.token(ARM_RESOURCE, tenant=tenant), tenants))

    assert [unverified_claims(t)["tid"] for t in tokens] == tenants
    answered = sorted(r.time for r in fresh_sandbox.requests("entra") if r.path.endswith("/token")
                      and f"client_id={ids.PARTNER_APP_CLIENT_ID}".encode() in r.body)  # not the vault's own
    assert len(answered) == 3
    assert answered[-1] - answered[0] < 1.0  # one after the other, they end 1.5 s apart at least
    # Each rolled the refresh token and wrote it back; the newest in the vault still works.
    assert len(vault.secrets[RT_SECRET]) == before + 3
    entra.set_state(refresh_token_grace_seconds=0)
    assert PartnerTokenProvider(sandbox_settings(fresh_sandbox)).token(GRAPH_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM)


def test_a_redemption_that_lost_the_race_to_a_concurrent_roll_retries_with_the_newer_token(
        fresh_sandbox: Sandbox) -> None:
    # Entra here retires a refresh token as soon as it is redeemed: the redemption that presented it second fails
    # with AADSTS50173 and must go on with the token the first one wrote back, not report an expired token.
    entra, vault = services(fresh_sandbox)
    entra.set_state(refresh_token_grace_seconds=0)
    first, second = (PartnerTokenProvider(sandbox_settings(fresh_sandbox)) for _ in range(2))
    stale = vault.latest(RT_SECRET)
    assert stale is not None
    first.token(ARM_RESOURCE, tenant=ids.CUSTOMER_FABRIKAM)  # rolls it: the vault holds a newer one
    real_get, earlier = second._secrets.get, [stale.value]

    def read_just_before_the_roll(name: str) -> str:
        return earlier.pop() if earlier else real_get(name)

    second._secrets.get = read_just_before_the_roll  # type: ignore[method-assign]

    assert unverified_claims(second.token(ARM_RESOURCE, tenant=ids.CUSTOMER_NORTHWIND))["tid"] == \
        ids.CUSTOMER_NORTHWIND
