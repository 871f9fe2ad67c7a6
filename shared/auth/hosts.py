"""Is an endpoint one of Microsoft's? Decides when SDK checks that only make sense there are kept.

MSAL validates an unknown authority host against login.microsoftonline.com (instance discovery)
and SecretClient insists that a vault URL is a subdomain of its challenge's resource. Both are
right for Microsoft's clouds and impossible for a loopback stand-in, so they are switched off only
when the configured host is not a known Microsoft host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

KNOWN_AUTHORITY_HOSTS = frozenset({
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
    "sts.windows.net",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
    "login.sovcloud-identity.fr",
    "login.sovcloud-identity.de",
    "login.sovcloud-identity.sg",
})
KNOWN_KEY_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
)


def host_of(url: str) -> str:
    return (urlsplit(url if "//" in url else "https://" + url).hostname or "").lower()


def is_microsoft_authority(authority_host: str) -> bool:
    """True for Entra's public and sovereign cloud hosts (MSAL's instance discovery knows them)."""
    return host_of(authority_host) in KNOWN_AUTHORITY_HOSTS


def is_microsoft_key_vault(vault_url: str) -> bool:
    """True when the vault URL is under a Key Vault DNS suffix of a Microsoft cloud."""
    return host_of(vault_url).endswith(KNOWN_KEY_VAULT_SUFFIXES)
