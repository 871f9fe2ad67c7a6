"""The Key Vault stand-in driven by the real SecretClient through the bearer-challenge flow."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.key_vault import KeyVaultService

LOCAL_SECRET = "sandbox-local-app-secret-9Vd3"


def secret_client(
    sandbox: Sandbox, client_id: str = ids.LOCAL_APP_CLIENT_ID, secret: str = LOCAL_SECRET
) -> SecretClient:
    credential = ClientSecretCredential(
        ids.PARTNER_TENANT_ID, client_id, secret, authority=sandbox.url("entra"),
        disable_instance_discovery=True, connection_verify=str(sandbox.ca_cert_path),
    )
    return SecretClient(sandbox.url("key_vault"), credential, connection_verify=str(sandbox.ca_cert_path),
                        verify_challenge_resource=False)


@pytest.fixture
def kv(fresh_sandbox: Sandbox) -> Iterator[SecretClient]:
    with secret_client(fresh_sandbox) as client:
        yield client


def test_get_set_versions_and_get_version_through_the_challenge(fresh_sandbox: Sandbox, kv: SecretClient) -> None:
    assert kv.get_secret("graph-app-client-secret").value == "sandbox-graph-app-secret-4Xk9"
    first = kv.set_secret("notify-webhook-url", "https://hooks.example/one")
    second = kv.set_secret("notify-webhook-url", "https://hooks.example/two")
    assert first.properties.version != second.properties.version
    assert kv.get_secret("notify-webhook-url").value == "https://hooks.example/two"
    assert kv.get_secret("notify-webhook-url", first.properties.version).value == "https://hooks.example/one"
    versions = [p.version for p in kv.list_properties_of_secret_versions("notify-webhook-url")]
    assert versions == [first.properties.version, second.properties.version]
    assert "notify-webhook-url" in {p.name for p in kv.list_properties_of_secrets()}
    statuses = [r.status for r in fresh_sandbox.requests("key_vault")]
    # At most one challenge (the SDK caches it per vault for the process), then tokens are reused.
    assert statuses.count(401) <= 1 and statuses[-1] == 200
    assert all(status == 200 for status in statuses[statuses.count(401):])


def test_unauthenticated_request_gets_the_bearer_challenge(fresh_sandbox: Sandbox) -> None:
    vault = fresh_sandbox.url("key_vault")
    with httpx.Client(verify=fresh_sandbox.tls.client_context()) as http:
        response = http.get(f"{vault}/secrets/graph-app-client-secret", params={"api-version": "7.5"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{fresh_sandbox.url("entra")}/{ids.PARTNER_TENANT_ID}", resource="{vault}"'
    )


def test_versions_are_paged_with_next_link(fresh_sandbox: Sandbox, kv: SecretClient) -> None:
    service = fresh_sandbox.services["key_vault"]
    assert isinstance(service, KeyVaultService)
    for n in range(30):
        service.put("many-versions", f"value-{n}")
    assert len(list(kv.list_properties_of_secret_versions("many-versions"))) == 30
    pages = [r for r in fresh_sandbox.requests("key_vault") if r.path == "/secrets/many-versions/versions"]
    assert len(pages) == 2


def test_missing_secret_is_404_secret_not_found(kv: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as err:
        kv.get_secret("no-such-secret")
    assert err.value.error is not None and err.value.error.code == "SecretNotFound"


def test_client_not_allowed_on_the_vault_is_403(fresh_sandbox: Sandbox) -> None:
    with secret_client(fresh_sandbox, ids.GRAPH_APP_CLIENT_ID, "sandbox-graph-app-secret-4Xk9") as client, \
            pytest.raises(HttpResponseError) as err:
        client.get_secret("graph-app-client-secret")
    assert err.value.status_code == 403


@pytest.mark.parametrize(
    ("audience", "lifetime", "forged", "reason"),
    [
        ("vault", -120, False, "expired"),
        ("https://graph.microsoft.com", 3600, False, "wrong audience"),
        ("vault", 3600, True, "bad signature"),
    ],
)
def test_bad_tokens_get_401_with_the_challenge(
    fresh_sandbox: Sandbox, audience: str, lifetime: int, forged: bool, reason: str
) -> None:
    from sandbox.tokens import TokenIssuer

    vault = fresh_sandbox.url("key_vault")
    issuer = TokenIssuer(fresh_sandbox.url("entra")) if forged else fresh_sandbox.tokens
    token = issuer.issue(tenant=ids.PARTNER_TENANT_ID, audience=vault if audience == "vault" else audience,
                         client_id=ids.LOCAL_APP_CLIENT_ID, lifetime=lifetime)
    with httpx.Client(verify=fresh_sandbox.tls.client_context()) as http:
        response = http.get(f"{vault}/secrets/graph-app-client-secret", params={"api-version": "7.5"},
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"
    assert reason in response.json()["error"]["message"]
    challenge = response.headers["WWW-Authenticate"]
    assert f'authorization="{fresh_sandbox.url("entra")}/{ids.PARTNER_TENANT_ID}"' in challenge
    assert f'resource="{vault}"' in challenge
