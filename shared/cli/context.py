"""What CLI commands share: settings (the same environment and local.settings.json as the app),
the stores built from them, created once per process, and who the operator is.

Which settings file: FRAUD_RESPONDER_LOCAL_SETTINGS when set; otherwise, in the checkout the CLI
runs in (found going up from the current directory, else the one it is installed from), the
settings of the local stack running from it (``.run/local.settings.json``, written by
``make run``), then ``local.settings.json``, then a stopped stack's settings (with a note). So
``make run`` in one terminal and ``fraud-responder ...`` in another need no export.

Who decides is the identity of the credential the CLI acts with, never a typed name: against
Azurite (the well-known development account) the local OS user, marked ``local:``; against a real
storage account the Entra ID identity DefaultAzureCredential signs in as (``az login``, a managed
identity, ...), read from the claims of the token it obtains: a user's upn, an application's
``app:<client id>``.
"""

from __future__ import annotations

import functools
import getpass
from pathlib import Path

from shared.cli.errors import CommandFailed
from shared.formats import one_line
from shared.local_stack import CLI_SETTINGS_FILE, STATE_DIR_NAME, find_checkout, running_stack
from shared.settings import (
    APP_ROOT,
    LOCAL_SETTINGS_FILE,
    Settings,
    SettingsError,
    get_settings,
    local_settings_named,
    local_settings_path,
    use_local_settings,
)
from shared.storage.tables import TableStore

STORAGE_SCOPE = "https://storage.azure.com/.default"
LOCAL_PREFIX = "local:"

HOW_TO_CONFIGURE = (
    "no settings were found: start the local stack with `make run` in this checkout (the CLI then reads its "
    f"{STATE_DIR_NAME}/{CLI_SETTINGS_FILE} by itself), or copy local.settings.sample.json to "
    f"{LOCAL_SETTINGS_FILE} and fill it in, or point FRAUD_RESPONDER_LOCAL_SETTINGS at a settings file "
    "(or set the settings themselves in the environment)"
)


def discover_settings_file(cwd: Path) -> tuple[Path | None, str]:
    """The settings file this CLI run should read (None: leave it to shared.settings) and a note for stderr."""
    if local_settings_named():
        return None, ""
    checkout = find_checkout(cwd, APP_ROOT)
    state_dir = checkout / STATE_DIR_NAME
    stack_settings = state_dir / CLI_SETTINGS_FILE
    if stack_settings.is_file() and running_stack(state_dir) is not None:
        return stack_settings, ""
    if (checkout / LOCAL_SETTINGS_FILE).is_file():
        return checkout / LOCAL_SETTINGS_FILE, ""
    if stack_settings.is_file():
        return stack_settings, (f"note: using {STATE_DIR_NAME}/{CLI_SETTINGS_FILE} of a local stack that is not "
                                "running now; start it with `make run` if the commands cannot connect")
    return None, ""


def use_discovered_settings(cwd: Path | None = None) -> str:
    """Point this process (every get_settings() caller) at the discovered settings file; the note to print."""
    found, note = discover_settings_file(cwd or Path.cwd())
    if found is not None:
        use_local_settings(found)
    return note


def _settings_source() -> Path | None:
    """The settings file get_settings() reads, when there is one."""
    path = local_settings_path()
    return path if path.is_file() else None


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        source = _settings_source()
        if source is None:
            raise CommandFailed(f"{exc}; {HOW_TO_CONFIGURE}") from None
        raise CommandFailed(f"{exc} (set it in {source} or the environment)") from None


@functools.cache
def store() -> TableStore:
    from shared.factory import table_store

    return table_store(settings())


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
                            f"{one_line(exc, 200, first_only=True)}") from None
    finally:
        credential.close()
    identity, _kind = identity_of(unverified_claims(token))
    return identity
