"""Entra stand-in driven by azure-identity and MSAL; tokens checked with PyJWT against its JWKS.

azure-identity's ClientSecretCredential and MSAL's refresh-token redemption discover the tenant
(``/{tenant}/v2.0/.well-known/openid-configuration``) and call the v2.0 token endpoint; their
errors must surface as the libraries' own (``ClientAuthenticationError`` naming the AADSTS code,
MSAL's error dict). No SDK speaks the v1 endpoints any more: those are checked against the
documented v1 response fields.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import jwt
import msal
import pytest
from azure.core.exceptions import ClientAuthenticationError

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.entra import EntraService
from tests.contract.conftest import (
    GRAPH_APP_SECRET,
    GRAPH_SCOPE,
    PARTNER_APP_SECRET,
    RefreshTokenCredential,
    _CaSession,
    app_credential,
)
from tests.contract.routes import covers


@pytest.fixture
def http(fresh_sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fresh_sandbox.url("entra"),
                      verify=ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))) as client:
        yield client


def verified_claims(http: httpx.Client, sandbox: Sandbox, token: str, tenant: str, audience: str) -> dict[str, object]:
    """The token's claims, verified by PyJWT with the key from the tenant's published JWKS."""
    config = http.get(f"/{tenant}/v2.0/.well-known/openid-configuration").json()
    keys = jwt.PyJWKSet.from_dict(http.get(config["jwks_uri"]).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims: dict[str, object] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience,
                                          issuer=config["issuer"])
    return claims


@covers("entra", "GET /{tenant}/v2.0/.well-known/openid-configuration", "POST /{tenant}/oauth2/v2.0/token",
        "GET /{tenant}/discovery/v2.0/keys")
def test_client_secret_credential_gets_a_verifiable_app_only_token(fresh_sandbox: Sandbox,
                                                                  http: httpx.Client) -> None:
    token = app_credential(fresh_sandbox, ids.GRAPH_APP_CLIENT_ID, GRAPH_APP_SECRET).get_token(GRAPH_SCOPE)
    claims = verified_claims(http, fresh_sandbox, token.token, ids.PARTNER_TENANT_ID, "https://graph.microsoft.com")
    assert claims["tid"] == ids.PARTNER_TENANT_ID and claims["appid"] == ids.GRAPH_APP_CLIENT_ID
    assert "PartnerSecurity.Read.All" in claims["roles"]  # type: ignore[operator]
    paths = [r.path for r in fresh_sandbox.requests("entra")]
    assert f"/{ids.PARTNER_TENANT_ID}/v2.0/.well-known/openid-configuration" in paths


def test_refresh_token_redemption_in_a_customer_tenant(fresh_sandbox: Sandbox, http: httpx.Client) -> None:
    token = RefreshTokenCredential(fresh_sandbox, ids.CUSTOMER_FABRIKAM).get_token(
        "https://management.azure.com/user_impersonation")
    claims = verified_claims(http, fresh_sandbox, token.token, ids.CUSTOMER_FABRIKAM, "https://management.azure.com")
    assert claims["oid"] == ids.ADMIN_AGENT_USER_ID and "mfa" in claims["amr"]  # type: ignore[operator]
    assert claims["scp"] == "user_impersonation"


def test_wrong_client_secret_is_a_client_authentication_error(fresh_sandbox: Sandbox) -> None:
    credential = app_credential(fresh_sandbox, ids.GRAPH_APP_CLIENT_ID, "not-the-secret")
    with pytest.raises(ClientAuthenticationError) as caught:
        credential.get_token(GRAPH_SCOPE)
    assert "AADSTS7000215" in str(caught.value) and "not-the-secret" not in str(caught.value)


@pytest.mark.parametrize(("state", "error", "code", "suberror"), [
    ("expired", "invalid_grant", 700082, None),
    ("mfa_required", "interaction_required", 50076, "basic_action"),
    ("consent_required", "invalid_grant", 65001, "consent_required"),
])
def test_msal_reports_entras_refresh_token_errors(fresh_sandbox: Sandbox, state: str, error: str, code: int,
                                                  suberror: str | None) -> None:
    entra = fresh_sandbox.services["entra"]
    assert isinstance(entra, EntraService)
    refresh_token = entra.issue_refresh_token()
    entra.set_state(refresh_token_state=state)
    app = msal.ConfidentialClientApplication(
        ids.PARTNER_APP_CLIENT_ID, client_credential=PARTNER_APP_SECRET, instance_discovery=False,
        authority=f"{fresh_sandbox.url('entra')}/{ids.PARTNER_TENANT_ID}",
        http_client=_CaSession(str(fresh_sandbox.ca_cert_path)))
    result = app.acquire_token_by_refresh_token(refresh_token, ["https://api.partnercenter.microsoft.com/.default"])
    assert "access_token" not in result
    assert result["error"] == error and result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    assert result.get("suberror") == suberror


@covers("entra", "GET /{tenant}/.well-known/openid-configuration", "POST /{tenant}/oauth2/token",
        "GET /{tenant}/discovery/keys")
def test_v1_endpoints_answer_with_the_documented_fields(fresh_sandbox: Sandbox, http: httpx.Client) -> None:
    config = http.get(f"/{ids.PARTNER_TENANT_ID}/.well-known/openid-configuration").json()
    assert config["token_endpoint"].endswith(f"/{ids.PARTNER_TENANT_ID}/oauth2/token")
    response = http.post(config["token_endpoint"].removeprefix(fresh_sandbox.url("entra")), data={
        "grant_type": "client_credentials", "client_id": ids.GRAPH_APP_CLIENT_ID, "client_secret": GRAPH_APP_SECRET,
        "resource": "https://graph.microsoft.com"})
    assert response.status_code == 200
    body = response.json()
    assert {"access_token", "token_type", "expires_in", "expires_on", "not_before", "resource"} <= set(body)
    assert body["token_type"] == "Bearer" and body["resource"] == "https://graph.microsoft.com"
    assert all(isinstance(body[name], str) and body[name].isdigit()
               for name in ("expires_in", "expires_on", "not_before"))
    # The v1 document's jwks_uri (/{tenant}/discovery/keys) publishes the key the token is signed with.
    assert config["jwks_uri"].endswith(f"/{ids.PARTNER_TENANT_ID}/discovery/keys")
    keys = jwt.PyJWKSet.from_dict(http.get(config["jwks_uri"].removeprefix(fresh_sandbox.url("entra"))).json())
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims = jwt.decode(body["access_token"], key.key, algorithms=["RS256"], audience="https://graph.microsoft.com")
    assert claims["tid"] == ids.PARTNER_TENANT_ID
