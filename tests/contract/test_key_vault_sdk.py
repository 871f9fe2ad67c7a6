"""Key Vault stand-in driven by azure-keyvault-secrets' SecretClient and azure-identity.

The client meets the bearer challenge, gets a token from the sandbox Entra with the function
app's local identity and reads, writes, lists, pages and deletes secrets; deletion completes
through the SDK's own poller (which polls ``/deletedsecrets/{name}``).
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.key_vault import PAGE_SIZE
from tests.contract.conftest import GRAPH_APP_SECRET, LOCAL_APP_SECRET, app_credential
from tests.contract.routes import covers


def secret_client(sandbox: Sandbox, client_id: str = ids.LOCAL_APP_CLIENT_ID,
                  secret: str = LOCAL_APP_SECRET) -> SecretClient:
    """SecretClient as the app builds it for a non-Azure vault host (see sandbox/README.md)."""
    return SecretClient(sandbox.url("key_vault"), app_credential(sandbox, client_id, secret),
                        verify_challenge_resource=False, connection_verify=str(sandbox.ca_cert_path))


@covers("key_vault", "GET /secrets/{name}", "GET /secrets/{name}/{version}", "PUT /secrets/{name}")
def test_set_and_get_latest_and_by_version(fresh_sandbox: Sandbox) -> None:
    client = secret_client(fresh_sandbox)
    seeded = client.get_secret("partner-center-refresh-token")
    assert seeded.value == "0.sandbox.initial-sam-refresh-token-Hc81vT" and seeded.properties.enabled is True
    rolled = client.set_secret("partner-center-refresh-token", "0.sandbox.rolled", content_type="text/plain",
                               tags={"rolledBy": "contract"})
    assert rolled.properties.version != seeded.properties.version
    assert client.get_secret("partner-center-refresh-token").value == "0.sandbox.rolled"
    old = client.get_secret("partner-center-refresh-token", seeded.properties.version)
    assert old.value == seeded.value
    assert rolled.properties.content_type == "text/plain" and rolled.properties.tags == {"rolledBy": "contract"}
    assert rolled.properties.created_on is not None and rolled.properties.vault_url.startswith("https://")


@covers("key_vault", "GET /secrets", "GET /secrets/{name}/versions")
def test_list_secrets_and_page_through_versions(fresh_sandbox: Sandbox) -> None:
    client = secret_client(fresh_sandbox)
    names = {p.name for p in client.list_properties_of_secrets()}
    assert {"partner-center-refresh-token", "partner-app-client-secret", "graph-app-client-secret"} <= names
    for index in range(PAGE_SIZE + 2):
        client.set_secret("paged", f"value-{index}")
    versions = list(client.list_properties_of_secret_versions("paged"))
    assert len(versions) == PAGE_SIZE + 2 and len({v.version for v in versions}) == PAGE_SIZE + 2


@covers("key_vault", "DELETE /secrets/{name}", "GET /deletedsecrets/{name}")
def test_delete_completes_through_the_sdk_poller(fresh_sandbox: Sandbox) -> None:
    client = secret_client(fresh_sandbox)
    client.set_secret("doomed", "x")
    deleted = client.begin_delete_secret("doomed").result()
    assert deleted.name == "doomed" and deleted.recovery_id and deleted.scheduled_purge_date is not None
    assert client.get_deleted_secret("doomed").name == "doomed"
    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_secret("doomed")
    assert caught.value.error is not None and caught.value.error.code == "SecretNotFound"


def test_a_client_without_access_gets_forbidden(fresh_sandbox: Sandbox) -> None:
    client = secret_client(fresh_sandbox, ids.GRAPH_APP_CLIENT_ID, GRAPH_APP_SECRET)
    with pytest.raises(HttpResponseError) as caught:
        client.get_secret("partner-center-refresh-token")
    assert caught.value.status_code == 403 and caught.value.error is not None
    assert caught.value.error.code == "Forbidden"
