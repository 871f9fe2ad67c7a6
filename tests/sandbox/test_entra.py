"""The Entra ID stand-in driven by the real MSAL client: SAM refresh tokens, client credentials, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.entra import EntraService
from sandbox.testing import sandbox_settings
from sandbox.tokens import unverified_claims
from shared.auth.msal_client import confidential_client

SAM_SECRET = "sandbox-sam-app-secret-7Qm2"
GRAPH_SECRET = "sandbox-graph-app-secret-4Xk9"
INITIAL_RT = "0.sandbox.initial-sam-refresh-token-Hc81vT"
PC = "https://api.partnercenter.microsoft.com"


def sam_app(sandbox: Sandbox, tenant: str = ids.PARTNER_TENANT_ID, secret: str = SAM_SECRET) -> Any:
    return confidential_client(sandbox_settings(sandbox), client_id=ids.PARTNER_APP_CLIENT_ID,
                               client_secret=secret, tenant=tenant)


def entra(sandbox: Sandbox) -> EntraService:
    service = sandbox.services["entra"]
    assert isinstance(service, EntraService)
    return service


def test_refresh_token_redeems_rolls_and_old_token_dies_after_grace(fresh_sandbox: Sandbox) -> None:
    entra(fresh_sandbox).set_state(refresh_token_grace_seconds=0)
    app = sam_app(fresh_sandbox)
    first = app.acquire_token_by_refresh_token(INITIAL_RT, scopes=[f"{PC}/.default"])
    assert "access_token" in first, first
    claims = unverified_claims(first["access_token"])
    assert claims["aud"] == PC
    assert claims["tid"] == ids.PARTNER_TENANT_ID
    assert claims["scp"] == "user_impersonation"
    assert "mfa" in claims["amr"]
    assert first["refresh_token"] != INITIAL_RT

    stale = app.acquire_token_by_refresh_token(INITIAL_RT, scopes=[f"{PC}/.default"])
    assert stale["error"] == "invalid_grant"
    assert stale["error_codes"] == [50173]

    second = app.acquire_token_by_refresh_token(first["refresh_token"], scopes=[f"{PC}/.default"])
    assert "access_token" in second


def test_old_refresh_token_still_works_within_the_grace_period(fresh_sandbox: Sandbox) -> None:
    app = sam_app(fresh_sandbox)  # default scenario: 30 s grace
    first = app.acquire_token_by_refresh_token(INITIAL_RT, scopes=[f"{PC}/.default"])
    again = app.acquire_token_by_refresh_token(INITIAL_RT, scopes=[f"{PC}/.default"])
    assert "access_token" in first and "access_token" in again


def test_gdap_redemption_in_a_customer_tenant_carries_that_tenant(fresh_sandbox: Sandbox) -> None:
    app = sam_app(fresh_sandbox, tenant=ids.CUSTOMER_FABRIKAM)
    result = app.acquire_token_by_refresh_token(INITIAL_RT, scopes=["https://management.azure.com/user_impersonation"])
    claims = unverified_claims(result["access_token"])
    assert (claims["tid"], claims["aud"]) == (ids.CUSTOMER_FABRIKAM, "https://management.azure.com")
    assert claims["oid"] == entra(fresh_sandbox).user_oid


def test_client_credentials_gives_app_roles(fresh_sandbox: Sandbox) -> None:
    app = confidential_client(sandbox_settings(fresh_sandbox), client_id=ids.GRAPH_APP_CLIENT_ID,
                              client_secret=GRAPH_SECRET, tenant=ids.PARTNER_TENANT_ID)
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    claims = unverified_claims(result["access_token"])
    assert claims["roles"] == ["PartnerSecurity.Read.All", "PartnerSecurity.ReadWrite.All", "Mail.Send",
                               "DelegatedAdminRelationship.Read.All", "PartnerBilling.Read.All"]
    assert "scp" not in claims
    wrong = confidential_client(sandbox_settings(fresh_sandbox), client_id=ids.GRAPH_APP_CLIENT_ID,
                                client_secret="not-the-secret", tenant=ids.PARTNER_TENANT_ID)
    refused = wrong.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert (refused["error"], refused["error_codes"]) == ("invalid_client", [7000215])


@pytest.mark.parametrize(
    ("state", "error", "code", "suberror"),
    [
        ("expired", "invalid_grant", 700082, None),
        ("mfa_required", "interaction_required", 50076, "basic_action"),
        ("mfa_expired", "interaction_required", 50078, "basic_action"),
        ("consent_required", "invalid_grant", 65001, "consent_required"),
    ],
)
def test_error_switches_answer_in_entra_shape(
    fresh_sandbox: Sandbox, state: str, error: str, code: int, suberror: str | None
) -> None:
    with httpx.Client(verify=fresh_sandbox.tls.client_context()) as http:
        switched = http.post(f"{fresh_sandbox.url('entra')}/_sandbox/entra/state", json={"refresh_token_state": state})
    assert switched.status_code == 200
    result = sam_app(fresh_sandbox).acquire_token_by_refresh_token(INITIAL_RT, scopes=[f"{PC}/.default"])
    assert result["error"] == error
    assert result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)
    assert result.get("suberror") == suberror


def test_token_without_mfa_claim_when_switched_off(fresh_sandbox: Sandbox) -> None:
    entra(fresh_sandbox).set_state(mfa=False)
    result = sam_app(fresh_sandbox).acquire_token_by_refresh_token(INITIAL_RT, scopes=[f"{PC}/.default"])
    assert unverified_claims(result["access_token"])["amr"] == ["pwd"]


def test_jwks_and_discovery_match_the_issued_tokens(fresh_sandbox: Sandbox) -> None:
    base = f"{fresh_sandbox.url('entra')}/{ids.PARTNER_TENANT_ID}"
    with httpx.Client(verify=fresh_sandbox.tls.client_context()) as http:
        config = http.get(f"{base}/v2.0/.well-known/openid-configuration").json()
        keys = http.get(config["jwks_uri"]).json()["keys"]
        unknown = http.get(f"{fresh_sandbox.url('entra')}/no-such-tenant/v2.0/.well-known/openid-configuration")
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["issuer"] == f"{base}/v2.0"
    assert keys[0]["kid"] == fresh_sandbox.tokens.kid
    assert unknown.status_code == 400
    assert unknown.json()["error_codes"] == [90002]


def test_operator_tokens_for_the_apps_api_carry_app_roles_and_verify_against_the_published_keys(
        fresh_sandbox: Sandbox) -> None:
    import ssl

    import jwt

    verify = ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))
    base = fresh_sandbox.url("entra")
    configuration = httpx.get(f"{base}/{ids.PARTNER_TENANT_ID}/v2.0/.well-known/openid-configuration",
                              verify=verify).json()
    jwks = httpx.get(configuration["jwks_uri"], verify=verify).json()
    keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}

    def verified(token: str) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token)["kid"]
        claims: dict[str, Any] = jwt.decode(token, keys[kid], algorithms=["RS256"], audience=ids.ADMIN_API_CLIENT_ID,
                                            issuer=configuration["issuer"])
        return claims

    # an application by client credentials (MSAL): roles assigned to it, v2 audience = the API's client id
    for client_id, secret, roles in ((ids.OPERATOR_APP_CLIENT_ID, ids.OPERATOR_APP_SECRET,
                                      [ids.ROLE_READ, ids.ROLE_DECIDE]),
                                     (ids.READER_APP_CLIENT_ID, ids.READER_APP_SECRET, [ids.ROLE_READ])):
        app = confidential_client(sandbox_settings(fresh_sandbox), client_id=client_id, client_secret=secret,
                                  tenant=ids.PARTNER_TENANT_ID)
        result = app.acquire_token_for_client(scopes=[f"{ids.ADMIN_API_URI}/.default"])
        claims = verified(result["access_token"])
        assert claims["roles"] == roles and claims["idtyp"] == "app" and claims["azp"] == client_id
    # a user (sandbox-only endpoint: no sign-in page): the scenario's role assignments
    issued = httpx.post(f"{base}/_sandbox/entra/operator_tokens", json={"username": "Alice@contoso-csp.example"},
                        verify=verify)
    assert issued.status_code == 201
    claims = verified(issued.json()["access_token"])
    assert (claims["upn"], claims["roles"], claims["idtyp"]) == ("alice@contoso-csp.example",
                                                                 [ids.ROLE_READ, ids.ROLE_DECIDE], "user")
    unknown = httpx.post(f"{base}/_sandbox/entra/operator_tokens", json={"username": "nobody@x"}, verify=verify)
    assert unknown.status_code == 400 and "No operator" in unknown.json()["error_description"]
    bad_role = httpx.post(f"{base}/_sandbox/entra/operator_tokens", json={"username": "x@y", "roles": ["Admin"]},
                          verify=verify)
    assert bad_role.status_code == 400 and "not defined" in bad_role.json()["error_description"]
