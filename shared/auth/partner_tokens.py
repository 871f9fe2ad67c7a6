"""Secure Application Model tokens: the Key Vault refresh token redeemed with MSAL, rolled back to the vault.

One refresh token (REFRESH_TOKEN_SECRET_NAME) serves the partner tenant (Partner Center) and,
through GDAP, customer tenants (ARM, Graph). Each redemption may return a new refresh token;
it is written back as a new secret version (only when it changed), so the next run, on any
instance, redeems the newest one. Access tokens are cached per (tenant, resource) until five
minutes before they expire.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from shared.auth.errors import (
    ClientSecretInvalid,
    ConsentRequired,
    MfaRequired,
    RefreshTokenExpired,
    TokenHealthError,
    error_from_result,
)
from shared.auth.msal_client import confidential_client
from shared.auth.secrets import SecretStore
from shared.auth.token_cache import TokenCache
from shared.settings import Settings

__all__ = [
    "ClientSecretInvalid",
    "ConsentRequired",
    "MfaRequired",
    "PartnerTokenProvider",
    "RefreshTokenExpired",
    "TokenHealthError",
]


class PartnerTokenProvider:
    """App+User access tokens for any tenant and resource, from the SAM refresh token."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None, *, cache: TokenCache | None = None):
        if not settings.partner_tenant_id or not settings.partner_app_client_id:
            raise ValueError(
                "PARTNER_TENANT_ID and PARTNER_APP_CLIENT_ID must be set to use Partner Center App+User tokens; "
                "example: PARTNER_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47"
            )
        self._settings = settings
        self._secrets = secrets or SecretStore(settings)
        self._cache = cache or TokenCache()
        self._redeem_lock = threading.Lock()
        self._apps: dict[str, Any] = {}
        self._client_secret: str | None = None

    @property
    def partner_tenant(self) -> str:
        return self._settings.partner_tenant_id

    def token(self, resource: str, tenant: str | None = None) -> str:
        """An access token for ``resource`` (a resource id such as https://graph.microsoft.com) in ``tenant``.

        Raises a TokenHealthError subclass (RefreshTokenExpired, MfaRequired, ConsentRequired,
        ClientSecretInvalid) when Entra refuses; its message says what the operator must do.
        """
        tenant_id = (tenant or self.partner_tenant).lower()
        resource_id = resource.rstrip("/")
        cached = self._cache.get(tenant_id, resource_id)
        if cached is not None:
            return cached.token
        with self._redeem_lock:  # one redemption at a time: each one rolls the shared refresh token
            cached = self._cache.get(tenant_id, resource_id)
            if cached is not None:
                return cached.token
            return self._redeem(tenant_id, resource_id)

    def _app(self, tenant: str) -> Any:
        if tenant not in self._apps:
            if self._client_secret is None:
                self._client_secret = self._secrets.get(self._settings.partner_app_secret_name)
            self._apps[tenant] = confidential_client(
                self._settings, client_id=self._settings.partner_app_client_id,
                client_secret=self._client_secret, tenant=tenant,
            )
        return self._apps[tenant]

    def _redeem(self, tenant: str, resource: str) -> str:
        secret_name = self._settings.refresh_token_secret_name
        refresh_token = self._secrets.get(secret_name)  # always the newest: another instance may have rolled it
        result = self._app(tenant).acquire_token_by_refresh_token(refresh_token, scopes=[f"{resource}/.default"])
        if "access_token" not in result:
            error = error_from_result(result, tenant=tenant, resource=resource, secret_name=secret_name,
                                      client_secret_name=self._settings.partner_app_secret_name)
            if isinstance(error, ClientSecretInvalid):
                self._client_secret = None  # read it again next time: the operator may have rotated it
                self._apps.clear()
            raise error
        rolled = result.get("refresh_token")
        if rolled and rolled != refresh_token:
            self._secrets.set(secret_name, rolled)
        return self._cache.put(tenant, resource, result["access_token"], float(result.get("expires_in", 3599))).token

    def refresh_token_last_rolled(self) -> dt.datetime | None:
        """When the refresh token secret last got a new version (token-health reporting)."""
        return self._secrets.get_value(self._settings.refresh_token_secret_name).info.updated_on

    def clear_cache(self) -> None:
        self._cache.clear()
