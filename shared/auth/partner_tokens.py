"""Secure Application Model tokens: the Key Vault refresh token redeemed with MSAL, rolled back to the vault.

One refresh token (REFRESH_TOKEN_SECRET_NAME) serves the partner tenant (Partner Center) and,
through GDAP, customer tenants (ARM, Graph). Each redemption may return a new refresh token;
it is written back as a new secret version (only when it changed), so the next run, on any
instance, redeems the newest one. Access tokens are cached per (tenant, resource) until five
minutes before they expire.

The write-back can fail (Key Vault throttled or down, the identity lacks the write role). Entra
may already have retired the token the vault holds, so dropping the rolled one would lose the only
working refresh token. Instead the write is retried a few times; if it still fails, the rolled
token is kept in this process's memory (shared by every provider in the process) and redeemed
next, the access token is used, and token health says "not persisted" until a later write
succeeds (``shared.operations.token_status``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from shared.auth.errors import (
    ClientSecretInvalid,
    ConsentRequired,
    MfaRequired,
    RefreshTokenExpired,
    TokenHealthError,
    error_from_result,
)
from shared.auth.msal_client import confidential_client
from shared.auth.secrets import SecretStore, SecretStoreError
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

log = logging.getLogger(__name__)

WRITE_BACK_DELAYS: Final = (0.5, 2.0)
"""Pauses between write-back attempts (three attempts in all): bounded, so a poll is not held up."""
MAX_APPS: Final = 16
"""MSAL apps (one per tenant a token was redeemed in) kept at once."""

WriteHealth = Callable[[Settings, bool, str], None]
"""Records the write-back outcome: (settings, ok, operator message). Must not raise."""


@dataclass
class _Unsaved:
    """A rolled refresh token Key Vault did not accept: the newest one this process holds."""

    value: str = ""
    failure_recorded: bool = False

    def __repr__(self) -> str:  # never the value
        return "_Unsaved(...)"


_unsaved: dict[tuple[str, str], _Unsaved] = {}
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_process_lock = threading.Lock()
RACE_RETRIES: Final = 3
"""Redemptions retried with the newer token when a concurrent one (here or on another instance) rolled it first."""


def _shared(key: tuple[str, str]) -> _Unsaved:
    """The process-wide unsaved-token slot for one vault secret (read and written under ``_process_lock``)."""
    with _process_lock:
        return _unsaved.setdefault(key, _Unsaved())


def _tenant_lock(key: tuple[str, str], tenant: str) -> threading.Lock:
    """One redemption at a time per vault secret and tenant: the callers that wait find the token cached.

    Different tenants redeem at once (50 customers contained together each need their own token);
    each redemption rolls the shared refresh token, and Entra keeps the one presented valid while
    the others are redeemed (a race it lost is retried with the newer token, ``RACE_RETRIES``).
    """
    with _process_lock:
        return _locks.setdefault((*key, tenant), threading.Lock())


def forget_unsaved_refresh_tokens() -> None:
    """Drop every rolled token held in memory, as a process restart would (tests)."""
    with _process_lock:
        for slot in _unsaved.values():
            slot.value, slot.failure_recorded = "", False


def _record_write_health(settings: Settings, ok: bool, message: str) -> None:
    try:
        from shared.intake.checkpoints import record_refresh_token_write

        record_refresh_token_write(settings, ok=ok, message=message)
    except Exception as exc:  # health is a report; it must never cost the token
        log.warning("could not record the refresh token write-back outcome (%s)", type(exc).__name__)


class PartnerTokenProvider:
    """App+User access tokens for any tenant and resource, from the SAM refresh token."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None, *, cache: TokenCache | None = None,
                 write_health: WriteHealth | None = _record_write_health,
                 sleep: Callable[[float], None] = time.sleep):
        if not settings.partner_tenant_id or not settings.partner_app_client_id:
            raise ValueError(
                "PARTNER_TENANT_ID and PARTNER_APP_CLIENT_ID must be set to use Partner Center App+User tokens; "
                "example: PARTNER_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47"
            )
        self._settings = settings
        self._secrets = secrets or SecretStore(settings)
        self._cache = cache or TokenCache()
        self._secret_key = (settings.key_vault_url, settings.refresh_token_secret_name)
        self._unsaved = _shared(self._secret_key)
        self._apps_lock = threading.Lock()
        self._write_health = write_health
        self._sleep = sleep
        self._apps: OrderedDict[str, Any] = OrderedDict()
        """MSAL apps by tenant, the most recently used last (at most MAX_APPS: detection redeems a token in
        every customer tenant, and each app holds its own HTTP session)."""
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
        with _tenant_lock(self._secret_key, tenant_id):
            cached = self._cache.get(tenant_id, resource_id)
            if cached is not None:
                return cached.token
            return self._redeem(tenant_id, resource_id)

    def _app(self, tenant: str) -> Any:
        """The tenant's MSAL app; the least recently used one is dropped beyond MAX_APPS (an app in use
        by another redemption keeps working: MSAL apps are not closed)."""
        with self._apps_lock:
            if tenant not in self._apps:
                if self._client_secret is None:
                    self._client_secret = self._secrets.get(self._settings.partner_app_secret_name)
                self._apps[tenant] = confidential_client(
                    self._settings, client_id=self._settings.partner_app_client_id,
                    client_secret=self._client_secret, tenant=tenant,
                )
                while len(self._apps) > MAX_APPS:
                    self._apps.popitem(last=False)
            self._apps.move_to_end(tenant)
            return self._apps[tenant]

    def _redeem(self, tenant: str, resource: str) -> str:
        secret_name = self._settings.refresh_token_secret_name
        with _process_lock:
            held = self._unsaved.value
        # A rolled token the vault refused is newer than the vault's; otherwise always read the vault:
        # another instance, or another tenant's redemption here, may have rolled it.
        refresh_token = held or self._secrets.get(secret_name)
        for attempt in range(RACE_RETRIES + 1):
            try:
                result = self._acquire(tenant, resource, refresh_token)
                break
            except RefreshTokenExpired:
                # Another instance re-consented, or a concurrent redemption rolled past the token presented:
                # the vault's version is the one to use. The same token again means it really expired.
                with _process_lock:
                    if self._unsaved.value == refresh_token:
                        self._unsaved.value = ""
                newer = self._secrets.get(secret_name)
                if newer == refresh_token or attempt == RACE_RETRIES:
                    raise
                refresh_token = newer
        rolled = result.get("refresh_token")
        if rolled and rolled != refresh_token:
            self._write_back(secret_name, str(rolled))
        elif held and refresh_token == held:
            self._write_back(secret_name, held)  # not rolled this time: still try to save the held one
        return self._cache.put(tenant, resource, result["access_token"], float(result.get("expires_in", 3599))).token

    def _acquire(self, tenant: str, resource: str, refresh_token: str) -> dict[str, Any]:
        result: dict[str, Any] = self._app(tenant).acquire_token_by_refresh_token(
            refresh_token, scopes=[f"{resource}/.default"])
        if "access_token" not in result:
            error = error_from_result(result, tenant=tenant, resource=resource,
                                      secret_name=self._settings.refresh_token_secret_name,
                                      client_secret_name=self._settings.partner_app_secret_name)
            if isinstance(error, ClientSecretInvalid):
                with self._apps_lock:
                    self._client_secret = None  # read it again next time: the operator may have rotated it
                    self._apps.clear()
            raise error
        return result

    def _write_back(self, secret_name: str, rolled: str) -> None:
        """Store ``rolled`` as the secret's new version, retrying; on failure keep it in memory."""
        failure: SecretStoreError | None = None
        for attempt in range(len(WRITE_BACK_DELAYS) + 1):
            if attempt:
                self._sleep(WRITE_BACK_DELAYS[attempt - 1])
            try:
                self._secrets.set(secret_name, rolled)
            except SecretStoreError as exc:
                failure = exc
                continue
            self._unsaved.value = ""
            if self._unsaved.failure_recorded and self._write_health is not None:
                # Other instances' later writes clear it too: token status compares the vault's newest
                # version with the failure, so a success costs no storage call here.
                self._write_health(self._settings, True, "")
            self._unsaved.failure_recorded = False
            return
        self._unsaved.value = rolled
        message = (f"the rolled SAM refresh token was not written back to Key Vault secret {secret_name} after "
                   f"{len(WRITE_BACK_DELAYS) + 1} attempts ({failure}); this process keeps it in memory and goes "
                   "on working, but if it restarts before a write succeeds the token is lost and an Admin Agent "
                   "must consent again")
        log.error("%s", message)
        if self._write_health is not None:
            self._write_health(self._settings, False, message)
            self._unsaved.failure_recorded = True

    def refresh_token_last_rolled(self) -> dt.datetime | None:
        """When the refresh token secret last got a new version (token-health reporting)."""
        return self._secrets.get_value(self._settings.refresh_token_secret_name).info.updated_on

    def clear_cache(self) -> None:
        self._cache.clear()
