"""App-only (client credentials) tokens for the Graph partner security alerts app, cached."""

from __future__ import annotations

import threading
from typing import Any

from shared.auth import GRAPH_RESOURCE
from shared.auth.errors import ClientSecretInvalid, error_from_result
from shared.auth.msal_client import confidential_client
from shared.auth.secrets import SecretStore
from shared.auth.token_cache import TokenCache
from shared.settings import Settings


class GraphAppTokenProvider:
    """Client-credentials tokens for GRAPH_APP_CLIENT_ID, secret from GRAPH_APP_SECRET_NAME."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None, *, cache: TokenCache | None = None):
        if not settings.graph_app_client_id or not settings.partner_tenant_id:
            raise ValueError(
                "GRAPH_APP_CLIENT_ID and PARTNER_TENANT_ID must be set to read Graph partner security alerts; "
                "example: GRAPH_APP_CLIENT_ID=5d2c1b4e-8e0a-4b57-9c0c-3a1f0e8d7c22"
            )
        self._settings = settings
        self._secrets = secrets or SecretStore(settings)
        self._cache = cache or TokenCache()
        self._lock = threading.Lock()
        self._apps: dict[str, Any] = {}

    def token(self, resource: str = GRAPH_RESOURCE, tenant: str | None = None) -> str:
        tenant_id = (tenant or self._settings.partner_tenant_id).lower()
        resource_id = resource.rstrip("/")
        cached = self._cache.get(tenant_id, resource_id)
        if cached is not None:
            return cached.token
        with self._lock:
            cached = self._cache.get(tenant_id, resource_id)
            if cached is not None:
                return cached.token
            if tenant_id not in self._apps:
                self._apps[tenant_id] = confidential_client(
                    self._settings, client_id=self._settings.graph_app_client_id,
                    client_secret=self._secrets.get(self._settings.graph_app_secret_name), tenant=tenant_id,
                )
            result = self._apps[tenant_id].acquire_token_for_client(scopes=[f"{resource_id}/.default"])
            if "access_token" not in result:
                error = error_from_result(result, tenant=tenant_id, resource=resource_id, secret_name="",
                                          client_secret_name=self._settings.graph_app_secret_name)
                if isinstance(error, ClientSecretInvalid):
                    self._apps.pop(tenant_id, None)
                raise error
            return self._cache.put(tenant_id, resource_id, result["access_token"],
                                   float(result.get("expires_in", 3599))).token

    def clear_cache(self) -> None:
        self._cache.clear()
