"""The app's own identity, for Key Vault (and identity-based Storage).

In Azure: DefaultAzureCredential (the managed identity). Locally, when AZURE_TENANT_ID,
AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are all set (the sandbox prints them), a
ClientSecretCredential against ENTRA_AUTHORITY_HOST that trusts TRUSTED_CA_BUNDLE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.auth.hosts import is_microsoft_authority
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def uses_client_secret(settings: Settings) -> bool:
    return bool(settings.azure_tenant_id and settings.azure_client_id and settings.azure_client_secret)


def app_credential(settings: Settings) -> TokenCredential:
    """The credential the app uses for Azure resources it owns (Key Vault, Storage)."""
    if uses_client_secret(settings):
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            settings.azure_tenant_id,
            settings.azure_client_id,
            settings.azure_client_secret,
            authority=settings.entra_authority_host,
            disable_instance_discovery=not is_microsoft_authority(settings.entra_authority_host),
            connection_verify=settings.tls_verify(),
        )
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(authority=settings.entra_authority_host)
