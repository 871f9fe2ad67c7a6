"""The app's authentication: its own identity, Key Vault secrets, SAM and app-only tokens.

Modules import their SDKs (azure-identity, azure-keyvault-secrets, msal) inside functions, so
importing this package costs nothing at cold start.
"""

from typing import Final

PARTNER_CENTER_RESOURCE: Final = "https://api.partnercenter.microsoft.com"
GRAPH_RESOURCE: Final = "https://graph.microsoft.com"
ARM_RESOURCE: Final = "https://management.azure.com"
"""Resource ids (token audiences): the same whatever base URL the app calls (sandbox or Microsoft)."""
