"""Access tokens for the admin API from the sandbox's Entra, obtained as real clients obtain them."""

from __future__ import annotations

import ssl

import httpx

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.testing import sandbox_settings
from shared.auth.msal_client import confidential_client

ALICE = "alice@contoso-csp.example"
"""Reads and decides (FraudResponder.Read and FraudResponder.Decide in the default scenario)."""
BOB = "bob@contoso-csp.example"
"""Only reads (FraudResponder.Read)."""


def user_token(sandbox: Sandbox, username: str = ALICE, roles: list[str] | None = None) -> str:
    """A signed-in user's access token for the admin API (the sandbox's stand-in for interactive sign-in)."""
    body: dict[str, object] = {"username": username}
    if roles is not None:
        body["roles"] = roles
    response = httpx.post(f"{sandbox.url('entra')}/_sandbox/entra/operator_tokens", json=body,
                          verify=ssl.create_default_context(cafile=str(sandbox.ca_cert_path)), timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


def app_token(sandbox: Sandbox, client_id: str = ids.OPERATOR_APP_CLIENT_ID,
              secret: str = ids.OPERATOR_APP_SECRET, scope: str = f"{ids.ADMIN_API_URI}/.default") -> str:
    """An application's token by client credentials through MSAL, as an automation would get it."""
    app = confidential_client(sandbox_settings(sandbox), client_id=client_id, client_secret=secret,
                              tenant=ids.PARTNER_TENANT_ID)
    result = app.acquire_token_for_client(scopes=[scope])
    assert "access_token" in result, result
    return str(result["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
