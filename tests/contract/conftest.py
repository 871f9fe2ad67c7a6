"""Contract-suite fixtures: Microsoft's own SDKs and credentials, pointed at the running sandbox.

Nothing here is written against the stand-ins' code: credentials are azure-identity's
``ClientSecretCredential`` (app-only) and MSAL's refresh-token redemption (App+User, the Secure
Application Model), the clients are the SDKs' own, and the only changes from production are the
base URLs, the sandbox CA and Entra's authority host.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import requests
from azure.core.credentials import AccessToken, TokenCredential
from azure.identity import ClientSecretCredential

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.entra import EntraService

T = TypeVar("T")

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"
PARTNER_APP_SECRET = "sandbox-sam-app-secret-7Qm2"
GRAPH_APP_SECRET = "sandbox-graph-app-secret-4Xk9"
LOCAL_APP_SECRET = "sandbox-local-app-secret-9Vd3"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one msgraph-sdk (kiota, async) scenario to completion on a loop of its own.

    Not ``asyncio.run``: it leaves the main thread without a current event loop, which breaks
    later tests in the same process that rely on ``asyncio.get_event_loop()`` (Pulumi's mocks).
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def app_credential(sandbox: Sandbox, client_id: str, secret: str,
                   tenant: str = ids.PARTNER_TENANT_ID) -> ClientSecretCredential:
    """azure-identity's client-secret credential against the sandbox Entra authority."""
    return ClientSecretCredential(tenant, client_id, secret, authority=sandbox.url("entra"),
                                  disable_instance_discovery=True, connection_verify=str(sandbox.ca_cert_path))


class _CaSession(requests.Session):
    """A requests session that trusts the sandbox CA on every request.

    requests lets REQUESTS_CA_BUNDLE override a session-wide ``verify`` (MSAL's own ``verify=``),
    so the CA goes in per request.
    """

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self._ca_file = ca_file

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self._ca_file
        return super().request(*args, **kwargs)


class RefreshTokenCredential(TokenCredential):
    """App+User tokens the Secure Application Model way: MSAL redeems the partner's refresh token.

    MSAL is Microsoft's library; the rolled refresh token it returns replaces the old one, as a
    real SAM client must do.
    """

    def __init__(self, sandbox: Sandbox, tenant: str) -> None:
        import msal

        entra = sandbox.services["entra"]
        assert isinstance(entra, EntraService)
        self._refresh_token = entra.issue_refresh_token(ids.PARTNER_APP_CLIENT_ID)
        self._app = msal.ConfidentialClientApplication(
            ids.PARTNER_APP_CLIENT_ID, client_credential=PARTNER_APP_SECRET,
            authority=f"{sandbox.url('entra')}/{tenant}", instance_discovery=False,
            http_client=_CaSession(str(sandbox.ca_cert_path)),
        )

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        result = self._app.acquire_token_by_refresh_token(self._refresh_token, list(scopes))
        if "access_token" not in result:
            raise RuntimeError(f"token request failed: {result.get('error')}: {result.get('error_description')}")
        self._refresh_token = result.get("refresh_token", self._refresh_token)
        return AccessToken(result["access_token"], int(result["expires_in"]) + int(time.time()))


def graph_client(sandbox: Sandbox, credential: TokenCredential, *, beta: bool = False) -> Any:
    """msgraph-sdk's (or msgraph-beta-sdk's) GraphServiceClient with its default middleware.

    Only the base URL, the allowed host (kiota sends tokens to Microsoft hosts only) and the CA
    differ from production. Create it inside the coroutine that uses it (httpx pools are per loop).
    """
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph_core import GraphClientFactory

    if beta:
        from msgraph_beta import GraphRequestAdapter, GraphServiceClient
    else:
        from msgraph.graph_request_adapter import GraphRequestAdapter  # type: ignore[assignment]
        from msgraph.graph_service_client import GraphServiceClient  # type: ignore[assignment]
    host = httpx.URL(sandbox.url("graph")).host
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(sandbox.ca_cert_path))))
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = sandbox.url("graph") + ("/beta" if beta else "/v1.0")
    return GraphServiceClient(request_adapter=adapter)


def arm_client(client_class: type[T], sandbox: Sandbox, credential: TokenCredential, *args: Any) -> T:
    """An azure-mgmt-* client against the sandbox ARM (base URL and CA are the only changes).

    ``polling_interval`` 0: the stand-in answers ``Retry-After: 0``, which azure-core treats as
    absent (its default is 30 s between polls).
    """
    return client_class(credential, *args, base_url=sandbox.url("arm"),  # type: ignore[call-arg]
                        credential_scopes=[ARM_SCOPE], connection_verify=str(sandbox.ca_cert_path),
                        polling_interval=0)
