"""Key Vault secrets for the app: get, set (new version) and list versions, with errors that say what to do."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.auth.hosts import host_of, is_microsoft_key_vault
from shared.errors import FraudResponderError
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


class SecretStoreError(FraudResponderError):
    """Key Vault could not be used; the message names the vault, the secret and the fix."""


class KeyVaultNotConfigured(SecretStoreError):
    pass


class SecretNotFound(SecretStoreError):
    pass


class SecretAccessDenied(SecretStoreError):
    pass


class SecretStoreUnreachable(SecretStoreError):
    """No answer: the vault or the sign-in authority is not listening, or its TLS certificate is not trusted."""


class SecretStoreUnavailable(SecretStoreError):
    """Transient: the vault throttled (429) or failed (5xx), or a connection was dropped; a retry can pass."""

    http_status = 503
    error_code = "unavailable"
    retryable = True


def _transport_cause(exc: BaseException) -> tuple[str, str] | None:
    """("tls" | "connect", detail) when ``exc`` (or what it wraps) is a TLS trust or connection failure.

    azure-identity reports a sign-in that never reached the authority as ClientAuthenticationError,
    which would otherwise read as a missing role; the text is checked too, as it does not always chain.
    """
    import ssl

    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        text = str(current)
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            reason = getattr(current, "verify_message", "") or "certificate verify failed"
            return "tls", str(reason)
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in text \
                or "Failed to establish a new connection" in text:
            return "connect", "connection refused"
        if isinstance(current, (ConnectionResetError, ConnectionAbortedError, TimeoutError)) or any(
                sign in text for sign in ("Connection aborted", "Remote end closed", "Connection reset",
                                          "Server disconnected", "timed out")):
            return "dropped", "the connection was dropped or timed out"
        pending += [current.__cause__, current.__context__, getattr(current, "inner_exception", None)]
    return None


@dataclass(frozen=True)
class SecretInfo:
    """A secret version's metadata (never the value)."""

    name: str
    version: str
    enabled: bool
    created_on: dt.datetime | None
    updated_on: dt.datetime | None


@dataclass(frozen=True)
class SecretValue:
    value: str
    info: SecretInfo

    def __repr__(self) -> str:  # keep the value out of logs and tracebacks
        return f"SecretValue(info={self.info!r})"


def _vault_name(url: str) -> str:
    host = host_of(url)
    return host.split(".", 1)[0] if is_microsoft_key_vault(url) else url


def _info(name: str, props: Any) -> SecretInfo:
    return SecretInfo(name, str(props.version or ""), bool(props.enabled), props.created_on, props.updated_on)


class SecretStore:
    """Secrets in KEY_VAULT_URL through azure-keyvault-secrets, as the app's own identity."""

    def __init__(self, settings: Settings, *, credential: TokenCredential | None = None) -> None:
        if not settings.key_vault_url:
            raise KeyVaultNotConfigured(
                "KEY_VAULT_URL is not set: set it to the vault holding the refresh token and client secrets, "
                "e.g. KEY_VAULT_URL=https://contoso-fraud-kv.vault.azure.net"
            )
        self.vault_url = settings.key_vault_url
        self._settings = settings
        self._credential = credential
        self._client: Any = None
        self._lock = threading.Lock()

    def _secret_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient

                from shared.auth.credentials import app_credential

                self._client = SecretClient(
                    self.vault_url,
                    self._credential or app_credential(self._settings),
                    connection_verify=self._settings.tls_verify(),
                    # The SDK requires the vault to be a subdomain of the challenge resource
                    # (*.vault.azure.net); a loopback stand-in cannot be, so only there it is off.
                    verify_challenge_resource=is_microsoft_key_vault(self.vault_url),
                )
            return self._client

    def _translate(self, exc: Exception, name: str, action: str) -> SecretStoreError:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

        vault = _vault_name(self.vault_url)
        cause = _transport_cause(exc)
        if cause is not None:
            where = (f"the sign-in authority {self._settings.entra_authority_host} (ENTRA_AUTHORITY_HOST)"
                     if isinstance(exc, ClientAuthenticationError) else f"the vault {self.vault_url}")
            if cause[0] == "dropped":
                return SecretStoreUnavailable(f"cannot {action} secret {name}: {where} dropped the connection "
                                              f"({cause[1]}); retried later")
            if cause[0] == "tls":
                return SecretStoreUnreachable(
                    f"cannot {action} secret {name}: the TLS certificate of {where} is not trusted ({cause[1]}); "
                    "check TRUSTED_CA_BUNDLE (locally it is the sandbox's CA, which a restarted sandbox replaces: "
                    "restart the stack)"
                )
            return SecretStoreUnreachable(
                f"cannot {action} secret {name}: cannot connect to {where} ({cause[1]}); check that it is running "
                "and that the URL is right"
            )
        if isinstance(exc, ResourceNotFoundError):
            return SecretNotFound(
                f"secret {name} not found in vault {self.vault_url}: set it with "
                f"`az keyvault secret set --vault-name {vault} --name {name} --value <value>`"
            )
        if isinstance(exc, ClientAuthenticationError) or (
            isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
        ):
            return SecretAccessDenied(
                f"cannot {action} secret {name} in vault {self.vault_url}: the app's identity is not allowed; "
                "grant it the 'Key Vault Secrets Officer' role on the vault (or check AZURE_CLIENT_ID / "
                "AZURE_TENANT_ID / AZURE_CLIENT_SECRET locally)"
            )
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and (status == 429 or status >= 500):
            return SecretStoreUnavailable(f"cannot {action} secret {name} in vault {self.vault_url}: HTTP {status} "
                                          "(throttled or failing); retried later")
        return SecretStoreError(
            f"cannot {action} secret {name} in vault {self.vault_url} (HTTP {status or 'no response'}, "
            f"{type(exc).__name__}): check that the vault URL is right and reachable"
        )

    def get_value(self, name: str, version: str | None = None) -> SecretValue:
        """The value and metadata of the latest (or a given) version."""
        try:
            secret = self._secret_client().get_secret(name, version)
        except Exception as exc:
            raise self._translate(exc, name, "read") from None
        return SecretValue(str(secret.value or ""), _info(name, secret.properties))

    def get(self, name: str) -> str:
        """The latest value of ``name``."""
        return self.get_value(name).value

    def set(self, name: str, value: str, *, content_type: str | None = None) -> str:
        """Store ``value`` as a new version of ``name``; returns the version id."""
        try:
            secret = self._secret_client().set_secret(name, value, content_type=content_type)
        except Exception as exc:
            raise self._translate(exc, name, "write") from None
        return str(secret.properties.version or "")

    def versions(self, name: str) -> list[SecretInfo]:
        """Every version's metadata, oldest first."""
        try:
            items = [_info(name, p) for p in self._secret_client().list_properties_of_secret_versions(name)]
        except Exception as exc:
            raise self._translate(exc, name, "list versions of") from None
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(items, key=lambda i: i.created_on or epoch)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
