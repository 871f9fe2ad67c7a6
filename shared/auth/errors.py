"""Typed token failures: what went wrong (the AADSTS code) and what the operator must do.

Messages never contain a token, a secret or Entra's full error text (which can echo request
details): only the code, the tenant, the resource and the fix.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.errors import FraudResponderError

RECONSENT_STEPS = (
    "an Admin Agent of the partner tenant signs in with MFA to the Secure Application Model app "
    "(the consent flow that produced the first refresh token) and stores the new refresh token as a new "
    "version of the Key Vault secret {secret}"
)


class TokenHealthError(FraudResponderError):
    """A token could not be obtained; ``code`` is the AADSTS number (0 when there was none)."""

    http_status = 503
    error_code = "unavailable"
    retryable = True

    kind: ClassVar[str] = "token_error"
    action: ClassVar[str] = "check the app registration and the AADSTS code at https://login.microsoftonline.com/error"

    def __init__(self, code: int, *, tenant: str, resource: str, secret_name: str = "", detail: str = "",
                 correlation_id: str = "") -> None:
        self.code = code
        self.tenant = tenant
        self.resource = resource
        self.correlation_id = correlation_id
        self.operator_message = self._message(secret_name, detail)
        super().__init__(self.operator_message)

    def _message(self, secret_name: str, detail: str) -> str:
        code = f"AADSTS{self.code}" if self.code else "no AADSTS code"
        action = self.action.format(secret=secret_name or "holding the refresh token")
        what = f" ({detail})" if detail else ""
        return f"{self.summary} ({code}) in tenant {self.tenant} for {self.resource}{what}: {action}."

    @property
    def summary(self) -> str:
        return "Token request failed"

    def to_health(self) -> dict[str, Any]:
        """A log- and table-safe description for token-health records."""
        return {"kind": self.kind, "code": self.code, "tenant": self.tenant, "resource": self.resource,
                "message": self.operator_message, "correlation_id": self.correlation_id}


class RefreshTokenExpired(TokenHealthError):
    """The SAM refresh token is expired (90 days unused), revoked or replaced: re-consent."""

    kind = "refresh_token_expired"
    action = RECONSENT_STEPS

    @property
    def summary(self) -> str:
        return "The Secure Application Model refresh token is expired or revoked"


class MfaRequired(TokenHealthError):
    """Entra wants a fresh MFA sign-in (AADSTS50076 / 50078 / 50079): re-consent with MFA."""

    kind = "mfa_required"
    action = RECONSENT_STEPS

    @property
    def summary(self) -> str:
        return "Entra ID requires a new multi-factor sign-in for the refresh token"


class ConsentRequired(TokenHealthError):
    """The app lacks consent for the resource or tenant (AADSTS65001 and similar)."""

    kind = "consent_required"
    action = ("grant the app the missing delegated permission (or the GDAP relationship for a customer tenant), "
              "then have an Admin Agent consent again; " + RECONSENT_STEPS)

    @property
    def summary(self) -> str:
        return "The app has no consent for this resource or tenant"


class ClientSecretInvalid(TokenHealthError):
    """The app's client secret in Key Vault is wrong or expired (AADSTS7000215 / 7000222)."""

    kind = "client_secret_invalid"
    action = ("create a new client secret for the app registration and store it as a new version of the "
              "Key Vault secret {secret}")

    @property
    def summary(self) -> str:
        return "The app's client secret was rejected"


_EXPIRED = {700082, 70008, 50173, 70043, 70000, 9002313, 50132, 50133}
_MFA = {50076, 50078, 50079, 50074}
_CONSENT = {65001, 65004, 50105, 90094, 90099, 700016, 50020}
_SECRET = {7000215, 7000222, 7000218}


def error_from_result(result: dict[str, Any], *, tenant: str, resource: str, secret_name: str,
                      client_secret_name: str = "") -> TokenHealthError:
    """The typed error for an MSAL error result (a dict with "error", "error_codes", ...)."""
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    code = codes[0] if codes else 0
    error = str(result.get("error", ""))
    kwargs: dict[str, Any] = {"tenant": tenant, "resource": resource,
                              "correlation_id": str(result.get("correlation_id", ""))}
    if code in _SECRET or error == "invalid_client":
        return ClientSecretInvalid(code, secret_name=client_secret_name, **kwargs)
    if code in _MFA:
        return MfaRequired(code, secret_name=secret_name, **kwargs)
    if code in _CONSENT or result.get("suberror") == "consent_required":
        return ConsentRequired(code, secret_name=secret_name, **kwargs)
    if code in _EXPIRED or error == "invalid_grant":
        return RefreshTokenExpired(code, secret_name=secret_name, **kwargs)
    if error == "interaction_required":
        return MfaRequired(code, secret_name=secret_name, **kwargs)
    return TokenHealthError(code, secret_name=secret_name, detail=error[:60], **kwargs)
