"""Who is calling the admin API: Microsoft Entra ID access tokens for the app, validated in the app.

Validated here rather than by App Service Authentication so the same check runs under the
Functions host, Core Tools and the dev host (locally against the sandbox's Entra). A token is
accepted when it is RS256-signed by a key the tenant publishes (the JWKS named by the tenant's
v2.0 OpenID configuration, fetched once and cached; an unknown ``kid`` refetches it, at most once a
minute, because Entra rolls its keys), its issuer is the tenant's, its audience is the app
(``ADMIN_API_CLIENT_ID`` or ``api://<that id>``), and it is inside its ``nbf``..``exp`` window.

App roles decide what the caller may do: ``FraudResponder.Read`` reads, ``FraudResponder.Decide``
approves, rejects, undoes and resolves (and reads). The identity recorded for a decision is the
token's: a user's ``upn`` / ``preferred_username`` (their object id when neither is present), an
application's ``app:<client id>``; never a name the caller types.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared.errors import FraudResponderError
from shared.formats import one_line

if TYPE_CHECKING:
    from shared.settings import Settings

ROLE_READ: Final = "FraudResponder.Read"
ROLE_DECIDE: Final = "FraudResponder.Decide"
ROLES: Final = (ROLE_READ, ROLE_DECIDE)
LEEWAY_SECONDS: Final = 60
"""Clock skew allowed on exp and nbf."""
KEYS_MAX_AGE_SECONDS: Final = 24 * 3600
KEYS_MIN_REFRESH_SECONDS: Final = 60
"""An unknown ``kid`` refetches the keys, but not more often than this (a bad token cannot flood Entra)."""


class TokenInvalid(FraudResponderError):
    """No usable token (missing, malformed, expired, wrong issuer, audience or signature): answer 401."""

    http_status = 401
    error_code = "unauthorized"


class TokenForbidden(FraudResponderError):
    """A valid token without the app role the operation needs: answer 403."""

    http_status = 403
    error_code = "forbidden"


class KeysUnavailable(FraudResponderError):
    """The tenant's signing keys cannot be fetched now, so no token can be checked: answer 503."""

    http_status = 503
    error_code = "unavailable"
    retryable = True


@dataclass(frozen=True)
class Caller:
    """A validated caller: the identity recorded for its decisions and its app roles."""

    identity: str
    roles: frozenset[str]
    kind: str
    """``user`` or ``app``."""

    def allows(self, role: str) -> bool:
        """Decide includes read: whoever may contain an alert may see it."""
        return role in self.roles or (role == ROLE_READ and ROLE_DECIDE in self.roles)

    def require(self, role: str) -> None:
        if not self.allows(role):
            held = ", ".join(sorted(self.roles)) or "no app role"
            raise TokenForbidden(f"{self.identity} has {held}; this needs the app role {role}: assign it to the "
                                 "user or application in the app registration's Enterprise application "
                                 "(Users and groups, or API permissions for an application)")


def identity_of(claims: Mapping[str, Any]) -> tuple[str, str]:
    """(identity, kind) of validated claims: ``app:<client id>`` for app-only tokens, else the user."""
    client = str(claims.get("azp") or claims.get("appid") or "")
    user = claims.get("upn") or claims.get("preferred_username") or claims.get("unique_name")
    if claims.get("idtyp") == "app" or ("scp" not in claims and not user):
        return f"app:{client.lower()}", "app"
    if isinstance(user, str) and user.strip():
        return user.strip().lower(), "user"
    return f"oid:{claims.get('oid', '')}", "user"


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token this process obtained itself from Entra over TLS (to learn who it acts as).

    Never for a token a caller presents: those go through ``OperatorTokens.validate``.
    """
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (any header-name case), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class OperatorTokens:
    """Validates access tokens for one app in one tenant; holds the tenant's keys between calls."""

    def __init__(self, *, authority_host: str, tenant_id: str, client_id: str,
                 fetch_json: Callable[[str], Any], clock: Callable[[], float] = time.time) -> None:
        self.authority = authority_host.rstrip("/")
        self.tenant_id = tenant_id.lower()
        self.client_id = client_id.lower()
        self.audiences = [self.client_id, f"api://{self.client_id}"]
        self._fetch_json = fetch_json
        self._clock = clock
        self._lock = threading.Lock()
        self._issuer = ""
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")

    @property
    def configuration_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def scope(self) -> str:
        """What a client asks Entra for to call the API (``api://<client id>/.default``)."""
        return f"api://{self.client_id}/.default"

    def _refresh(self) -> None:
        import jwt

        try:
            configuration = self._fetch_json(self.configuration_url)
            issuer, jwks_uri = str(configuration["issuer"]), str(configuration["jwks_uri"])
            jwks = self._fetch_json(jwks_uri)
            keys = {str(k["kid"]): jwt.PyJWK(k).key for k in jwks["keys"]
                    if k.get("kty") == "RSA" and k.get("use", "sig") == "sig" and k.get("kid")}
        except KeysUnavailable:
            raise
        except (KeyError, TypeError, ValueError, jwt.PyJWTError) as exc:
            raise KeysUnavailable(f"the signing keys at {self.configuration_url} are unreadable "
                                  f"({type(exc).__name__})") from None
        self._issuer = issuer.replace("{tenantid}", self.tenant_id)
        self._keys = keys
        self._fetched_at = self._clock()

    def _key(self, kid: str) -> Any:
        with self._lock:
            age = self._clock() - self._fetched_at
            if age > KEYS_MAX_AGE_SECONDS or (kid not in self._keys and age > KEYS_MIN_REFRESH_SECONDS):
                try:
                    self._refresh()
                except KeysUnavailable:
                    if kid not in self._keys:  # keys already held stay good while Entra is unreachable
                        raise
            key = self._keys.get(kid)
        if key is None:
            raise TokenInvalid("the token is not signed by a key the tenant publishes")
        return key

    def validate(self, token: str) -> Caller:
        """The caller a token proves, or TokenInvalid naming the first failed check (never the token)."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise TokenInvalid(f"the token's signing algorithm {header.get('alg')!r} is not RS256")
        key = self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self.audiences, issuer=self._issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "nbf", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("the token has expired; get a new one") from None
        except jwt.ImmatureSignatureError:
            raise TokenInvalid("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid(f"the token is not for this app (audience must be {self.client_id} or "
                               f"api://{self.client_id}; ask Entra for the scope {self.scope})") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid(f"the token was not issued by tenant {self.tenant_id}") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"the token is invalid ({type(exc).__name__})") from None
        if str(claims.get("tid", "")).lower() != self.tenant_id:
            raise TokenInvalid(f"the token was not issued by tenant {self.tenant_id}")
        raw_roles = claims.get("roles", [])
        roles = frozenset(r for r in raw_roles if isinstance(r, str)) if isinstance(raw_roles, list) else frozenset()
        identity, kind = identity_of(claims)
        return Caller(identity, roles, kind)


_validators: dict[tuple[str, str, str, str], OperatorTokens] = {}
_validators_lock = threading.Lock()


def operator_tokens(settings: Settings) -> OperatorTokens:
    """The validator for ``settings`` (one per process, so the tenant's keys are fetched once)."""
    from shared.settings import SettingsError

    if not settings.admin_api_client_id:
        raise SettingsError("ADMIN_API_CLIENT_ID is not set: the admin API accepts Entra ID access tokens for the "
                            "app registration with that client id; example: "
                            "ADMIN_API_CLIENT_ID=5a1f0c9e-2b7d-4e8a-9c3f-1d2e3f4a5b6c")
    if not settings.partner_tenant_id:
        raise SettingsError("PARTNER_TENANT_ID is not set: admin API tokens are issued by the partner tenant; "
                            "example: PARTNER_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47")
    key = (settings.entra_authority_host, settings.partner_tenant_id, settings.admin_api_client_id,
           str(settings.trusted_ca_bundle or ""))
    with _validators_lock:
        found = _validators.get(key)
        if found is None:
            found = OperatorTokens(authority_host=settings.entra_authority_host, tenant_id=settings.partner_tenant_id,
                                   client_id=settings.admin_api_client_id, fetch_json=_json_fetcher(settings))
            _validators[key] = found
        return found


def _json_fetcher(settings: Settings) -> Callable[[str], Any]:
    def fetch(url: str) -> Any:
        import httpx

        from shared.http import verify_from_settings

        try:
            response = httpx.get(url, verify=verify_from_settings(settings), timeout=10.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeysUnavailable(f"cannot read {url}: {type(exc).__name__}: {one_line(exc, 200, first_only=True)}"
                                  if str(exc) else f"cannot read {url}: {type(exc).__name__}") from None

    return fetch


def authenticate(settings: Settings, headers: Mapping[str, str], role: str) -> Caller:
    """The caller of a request that needs ``role``: TokenInvalid (401), TokenForbidden (403), KeysUnavailable."""
    token = bearer_token(headers)
    if token is None:
        raise TokenInvalid("no access token: send Authorization: Bearer <Entra ID access token for the app>")
    caller = operator_tokens(settings).validate(token)
    caller.require(role)
    return caller
