"""What CLI commands share: settings (the same environment and local.settings.json as the app),
the stores built from them, created once per process, and who the operator is.

Who decides is the identity of the credential the CLI acts with, never a typed name: against
Azurite (the well-known development account) the local OS user, marked ``local:``; against a real
storage account the Entra ID identity DefaultAzureCredential signs in as (``az login``, a managed
identity, ...), read from the claims of the token it obtains: a user's upn, an application's
``app:<client id>``.
"""

from __future__ import annotations

import functools
import getpass

from shared.cli import CommandFailed
from shared.settings import Settings, SettingsError, get_settings
from shared.storage.tables import TableStore

STORAGE_SCOPE = "https://storage.azure.com/.default"
LOCAL_PREFIX = "local:"


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise CommandFailed(f"{exc} (set it in the environment or local.settings.json)") from None


@functools.cache
def store() -> TableStore:
    return TableStore(settings())


@functools.cache
def operator() -> str:
    """The identity recorded for this process's decisions (see the module docstring)."""
    config = settings()
    if config.storage.is_development_storage:
        try:
            return LOCAL_PREFIX + getpass.getuser()
        except (KeyError, OSError):  # no user name in this environment
            raise CommandFailed("cannot tell who you are: set USER (decisions against Azurite are recorded "
                                "as local:<OS user>)") from None
    return entra_identity(config)


def entra_identity(config: Settings) -> str:
    """The signed-in Entra ID identity of DefaultAzureCredential, from its token's claims."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError, DefaultAzureCredential

    from shared.auth.hosts import is_microsoft_authority
    from shared.auth.operator_tokens import identity_of, unverified_claims

    local: dict[str, object] = {}
    if not is_microsoft_authority(config.entra_authority_host):  # the sandbox's Entra, trusted via its CA
        local = {"disable_instance_discovery": True, "connection_verify": config.tls_verify()}
    credential = DefaultAzureCredential(authority=config.entra_authority_host, **local)
    try:
        token = credential.get_token(STORAGE_SCOPE).token
    except (CredentialUnavailableError, ClientAuthenticationError) as exc:
        raise CommandFailed("cannot tell who you are: decisions are recorded as your Entra ID identity; sign in "
                            f"with `az login` (or set AZURE_CLIENT_ID / a managed identity): "
                            f"{str(exc).splitlines()[0][:200]}") from None
    finally:
        credential.close()
    identity, _kind = identity_of(unverified_claims(token))
    return identity
